//! The `sv-miner classify` command as a user runs it: a real process on fixture files.

use std::process::Command;

use burn::tensor::Device;
use sv_models::{Dinov2Classifier, LoadOptions, softmax_rows};
use sv_tests::{fixture, read_expected};

fn miner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sv-miner"))
}

/// Run `cmd`, fail with its stderr unless it succeeds, and return its stdout.
fn stdout_of(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `sv-miner classify --json --checkpoint CHECKPOINT chelsea.png`: the printed line.
fn classify_chelsea(checkpoint: &std::path::Path) -> serde_json::Value {
    let stdout = stdout_of(
        miner()
            .args(["classify", "--json", "--checkpoint"])
            .arg(checkpoint)
            .arg(fixture("images/chelsea.png")),
    );
    serde_json::from_slice(&stdout).unwrap()
}

#[test]
fn classify_prints_the_probability_of_the_reference_pipeline() {
    let checkpoint = fixture("dinov2/hf_mlp.safetensors");
    let line = classify_chelsea(&checkpoint);
    let got = line["roadwork_probability"].as_f64().unwrap() as f32;

    // The same network on the pixels HF's BitImageProcessor produced for this image.
    let device = Device::default();
    let pixels =
        read_expected("preprocess/chelsea.safetensors")["pixel_values"].tensor::<4>(&device);
    let model = Dinov2Classifier::load(&checkpoint, &LoadOptions::default(), &device).unwrap();
    let want = softmax_rows(model.forward(pixels))[0][1]; // id2label 1 = Roadwork
    assert!(
        (got - want).abs() <= 1e-4,
        "CLI {got} vs reference pipeline {want}"
    );
    assert!(line["forward_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn missing_image_fails_naming_it() {
    let out = miner()
        .args(["classify", "--checkpoint"])
        .arg(fixture("dinov2/hf_mlp.safetensors"))
        .arg("/no/such/street.jpg")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/street.jpg"), "{err}");
}

#[test]
fn cuda_without_the_feature_is_refused_clearly() {
    if cfg!(feature = "cuda") {
        return;
    }
    let out = miner()
        .args(["classify", "--device", "cuda", "--checkpoint"])
        .arg(fixture("dinov2/hf_mlp.safetensors"))
        .arg(fixture("images/chelsea.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features cuda"));
}

#[test]
fn hub_model_follows_python_environment_variables() {
    const REPO: &str = "streetvision/cli-env-check";
    let hub = sv_tests::FakeHub::serve(REPO, sv_tests::tiny_repo_files(), None);
    let home = tempfile::tempdir().unwrap();
    let run = |endpoint: &str, offline: bool| {
        let mut cmd = miner();
        cmd.args(["classify", "--json", "--hub", REPO])
            .arg(fixture("images/chelsea.png"))
            .env("HF_HOME", home.path())
            .env("HF_ENDPOINT", endpoint)
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_TOKEN");
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        } else {
            cmd.env_remove("HF_HUB_OFFLINE");
        }
        let line: serde_json::Value = serde_json::from_slice(&stdout_of(&mut cmd)).unwrap();
        line["roadwork_probability"].as_f64().unwrap()
    };
    let online = run(&hub.endpoint, false);
    // HF_HOME/hub is the cache, in Python's layout.
    assert!(
        home.path()
            .join("hub/models--streetvision--cli-env-check/refs/main")
            .is_file()
    );
    let requests = hub.requests.load(std::sync::atomic::Ordering::SeqCst);
    // Offline with an unreachable endpoint: served from that cache, no request made.
    let offline = run("http://127.0.0.1:9", true);
    assert_eq!(online, offline);
    assert_eq!(
        hub.requests.load(std::sync::atomic::Ordering::SeqCst),
        requests
    );
}

/// The fixture ensemble (DINOv2 + ConvNeXt-V2, with temperatures) written into `dir`.
fn fixture_ensemble(dir: &std::path::Path) -> std::path::PathBuf {
    let spec = dir.join("ensemble.json");
    let processor = fixture("dinov2/hub/preprocessor_config.json");
    let text = serde_json::json!({"members": [
        {"name": "dino", "checkpoint": fixture("dinov2/hf_mlp.safetensors"),
         "preprocessor": processor, "temperature": 1.5},
        {"name": "cnx", "checkpoint": fixture("convnext/hf_cls.safetensors"),
         "preprocessor": processor, "temperature": 0.7},
    ]});
    std::fs::write(&spec, text.to_string()).unwrap();
    spec
}

/// `classify --json` of chelsea and camera_grey with `args` added: the combined
/// probabilities.
fn classify_pair(args: &[&str], model: &std::path::Path) -> Vec<f32> {
    let stdout = stdout_of(
        miner()
            .arg("classify")
            .args(args)
            .arg(model)
            .arg(fixture("images/chelsea.png"))
            .arg(fixture("images/camera_grey.png")),
    );
    String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| v["roadwork_probability"].as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn half_precision_answers_stay_near_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture_ensemble(dir.path());
    let expected = read_expected("ensemble/expected.safetensors");
    let want = &expected["shared.combined"].data;
    for (precision, tolerance) in [("bf16", 3e-2), ("f16", 5e-3)] {
        let got = classify_pair(&["--json", "--precision", precision, "--ensemble"], &spec);
        for (s, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(
                (g - w).abs() <= tolerance,
                "{precision} image {s}: {g} vs transformers' {w}"
            );
        }
        let got = classify_pair(
            &["--json", "--precision", precision, "--checkpoint"],
            &fixture("convnext/hf_cls.safetensors"),
        );
        assert_eq!(got.len(), 2, "{precision}: single checkpoint");
    }
    let out = miner()
        .args(["classify", "--precision", "f8", "--checkpoint"])
        .arg(fixture("convnext/hf_cls.safetensors"))
        .arg(fixture("images/chelsea.png"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("f8") && err.contains("bf16"), "{err}");
}

#[test]
fn ensemble_prints_the_reference_pipelines_probabilities() {
    // DINOv2 + ConvNeXt-V2 with the fixture temperatures and default weights; the
    // reference ran each member's HF processor and model in transformers.
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture_ensemble(dir.path());
    let stdout = stdout_of(
        miner()
            .args(["classify", "--json", "--ensemble"])
            .arg(&spec)
            .arg(fixture("images/chelsea.png"))
            .arg(fixture("images/camera_grey.png")),
    );
    let expected = read_expected("ensemble/expected.safetensors");
    let lines: Vec<serde_json::Value> = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (s, line) in lines.iter().enumerate() {
        let got = line["roadwork_probability"].as_f64().unwrap() as f32;
        let want = expected["shared.combined"].data[s];
        assert!((got - want).abs() <= 1e-4, "image {s}: {got} vs {want}");
        let cnx = line["members"]["cnx"].as_f64().unwrap() as f32;
        let want = expected["shared.members"].data[2 + s];
        assert!((cnx - want).abs() <= 1e-4, "cnx image {s}: {cnx} vs {want}");
    }
}

#[test]
fn convnext_checkpoint_is_detected_and_classified() {
    let line = classify_chelsea(&fixture("convnext/hf_cls.safetensors"));
    let got = line["roadwork_probability"].as_f64().unwrap() as f32;
    // The reference's untempered ConvNeXt probability, from its tempered one (T = 0.7).
    let tempered =
        f64::from(read_expected("ensemble/expected.safetensors")["shared.members"].data[2]);
    let logit = (tempered / (1.0 - tempered)).ln() * 0.7;
    let want = (1.0 / (1.0 + (-logit).exp())) as f32;
    assert!((got - want).abs() <= 1e-4, "CLI {got} vs reference {want}");
}
