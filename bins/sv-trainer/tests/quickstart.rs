//! `sv-trainer quickstart` as a real process, cut down to CI size (1 000 scenes, 12
//! epochs): the fine-tuned model must be well above chance on its own held-out test
//! split, and the run directory must hold what the command says it wrote. Then a linear
//! probe on the exported backbone must be too, and a second probe must take every
//! feature from the cache.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sv-trainer");

/// The `name=value` figure after `key` on the line starting with `prefix`.
fn figure(out: &str, prefix: &str, key: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{out}"));
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()..];
    rest.trim_start()
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn quickstart_learns_roadwork_from_synthetic_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["quickstart", "--scenes", "1000", "--epochs", "12", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accuracy = figure(&stdout, "test:", "accuracy");
    let auc = figure(&stdout, "test:", "ROC-AUC");
    assert!(accuracy >= 0.7 && auc >= 0.75, "{stdout}");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "eval.json",
    ] {
        assert!(dir.path().join("run").join(f).exists(), "{f} missing");
    }
    assert!(dir.path().join("data/manifest.jsonl").exists());
    for f in [
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "ensemble.json",
    ] {
        assert!(
            dir.path().join("export").join(f).exists(),
            "export/{f} missing"
        );
    }
    for plot in ["loss.png", "validation.png", "roc.png", "confusion.png"] {
        let img = image::open(dir.path().join("run/plots").join(plot)).unwrap();
        assert_eq!((img.width(), img.height()), (640, 400), "{plot}");
    }

    let export = dir.path().join("export");
    let out = Command::new(BIN)
        .args(["export", "--model-name", "qs", "--hotkey"])
        .arg("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = |lr: &str| {
        let out = Command::new(BIN)
            .args(["probe", "--lr", lr, "--backbone"])
            .arg(export.join("model.safetensors"))
            .arg("--manifest")
            .arg(dir.path().join("data/manifest.jsonl"))
            .arg("--run-dir")
            .arg(dir.path().join("probe"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (stdout, stderr) = probe("0.01");
    assert!(
        stderr.contains("1000 computed, 0 from the cache"),
        "{stderr}"
    );
    let accuracy = figure(&stdout, "test:", "accuracy");
    assert!(accuracy >= 0.7, "{stdout}");
    let (stdout, stderr) = probe("0.003");
    assert!(
        stderr.contains("0 computed, 1000 from the cache"),
        "{stderr}"
    );

    // The probe is a model: `eval` scores its run directory as the probe scored its
    // features, and its export answers as the probe's network does.
    let probe_dir = dir.path().join("probe");
    let out = Command::new(BIN)
        .args(["eval", "--json", "--split", "test", "--model"])
        .arg(&probe_dir)
        .arg("--manifest")
        .arg(dir.path().join("data/manifest.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = e["overall"]["samples"].as_f64().unwrap();
    let probe_accuracy = figure(&stdout, "test:", "accuracy");
    let eval_accuracy = e["overall"]["accuracy"].as_f64().unwrap();
    assert!(
        (eval_accuracy - probe_accuracy).abs() <= 1.0 / n + 1e-3,
        "eval {eval_accuracy} against the probe's own {probe_accuracy} on {n} images"
    );
    let probe_export = dir.path().join("probe-export");
    let out = Command::new(BIN)
        .args(["export", "--model-name", "qs-probe", "--hotkey"])
        .arg("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
        .arg("--run-dir")
        .arg(&probe_dir)
        .arg("--out")
        .arg(&probe_export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let device = sv_models::Device::default();
    let (network, pre) = sv_train::probe::load_network(&probe_dir, &device).unwrap();
    let exported = sv_models::RoadworkClassifier::load(
        &probe_export.join("model.safetensors"),
        &Default::default(),
        None,
        device.clone(),
    )
    .unwrap();
    assert_eq!(
        exported.preprocessor, pre,
        "the backbone's own preprocessing"
    );
    let images: Vec<std::path::PathBuf> =
        sv_data::read_manifest(&dir.path().join("data/manifest.jsonl"))
            .unwrap()
            .iter()
            .take(8)
            .map(|s| match &s.location {
                sv_data::Location::File { path } => path.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
    let served: Vec<f32> = exported
        .classify_files(&images)
        .unwrap()
        .iter()
        .map(|p| p.roadwork)
        .collect();
    let decoded: Vec<image::DynamicImage> =
        images.iter().map(|p| image::open(p).unwrap()).collect();
    let direct: Vec<f32> = sv_models::softmax_rows(network.forward(pre.batch(&decoded, &device)))
        .into_iter()
        .map(|row| row[1])
        .collect();
    for (a, b) in served.iter().zip(&direct) {
        assert!((a - b).abs() < 1e-5, "{served:?} against {direct:?}");
    }
}
