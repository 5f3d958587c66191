//! Training starts from a Hugging Face model: `finetune --model ORG/NAME` and
//! `probe --backbone ORG/NAME` download the repository (from a Hub-compatible server on
//! loopback) into the shared cache and start from it; a two-label head whose roadwork
//! label is label 0 is kept with its labels reordered, so the starting model answers as
//! transformers does (the zoo's reference probabilities).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sv_data::{SplitFractions, assign_splits, write_manifest};
use sv_models::{Device, Preprocessor};
use sv_tests::{FakeHub, fixture};
use sv_train::finetune::Logits;

const BIN: &str = env!("CARGO_BIN_EXE_sv-trainer");
const REPO: &str = "streetvision/zoo-convnext";

/// A transformers ConvNeXt-V2 of the zoo, preferring one whose roadwork label is 0.
fn zoo_model() -> (PathBuf, serde_json::Value) {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("zoo/expected.json")).unwrap())
            .unwrap();
    let models = meta["models"].as_array().unwrap();
    let pick = |index: u64| {
        models.iter().find(|m| {
            m["name"].as_str().unwrap().starts_with("convnextv2_hf") && m["roadwork"] == index
        })
    };
    let m = pick(0).or_else(|| pick(1)).unwrap().clone();
    (fixture(&format!("zoo/{}", m["name"].as_str().unwrap())), m)
}

fn hub(dir: &Path) -> FakeHub {
    let files: HashMap<&'static str, PathBuf> = [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    .into_iter()
    .map(|f| (f, dir.join(f)))
    .collect();
    FakeHub::serve(REPO, files, None)
}

fn command(hub: &FakeHub, cache: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run `command`, failing the test with its stderr if it failed.
fn succeed(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest(dir: &Path) -> PathBuf {
    let mut samples = sv_data::synthetic::generate(&dir.join("data"), 40, 32, 3).unwrap();
    assign_splits(&mut samples, &SplitFractions::default(), 3).unwrap();
    let manifest = dir.join("manifest.jsonl");
    write_manifest(&manifest, samples.iter()).unwrap();
    manifest
}

#[test]
fn a_kept_head_answers_as_transformers_with_roadwork_as_label_one() {
    let (dir, m) = zoo_model();
    let trained = sv_train::finetune::start_from_checkpoint(
        &dir.join("model.safetensors"),
        &Device::default(),
    )
    .unwrap();
    let pre = Preprocessor::from_hf_json(
        &std::fs::read_to_string(dir.join("preprocessor_config.json")).unwrap(),
    )
    .unwrap();
    let image = "validator.png";
    let img = image::open(fixture(&format!("zoo/images/{image}"))).unwrap();
    let probs = sv_models::softmax_rows(trained.logits(pre.batch(&[img], &Device::default())));
    let want = m["probs"][image][m["roadwork"].as_u64().unwrap() as usize]
        .as_f64()
        .unwrap();
    assert!(
        (f64::from(probs[0][1]) - want).abs() < 1e-4,
        "label 1 {} vs transformers' roadwork {want}",
        probs[0][1]
    );
}

#[test]
fn finetune_and_probe_start_from_a_hub_model() {
    let (dir, _) = zoo_model();
    let hub = hub(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hf");
    let manifest = manifest(tmp.path());
    // Two training images become unreadable after the manifest was written: the run
    // goes on without them and says so.
    let broken: Vec<PathBuf> = sv_data::read_manifest(&manifest)
        .unwrap()
        .into_iter()
        .filter(|s| s.split == Some(sv_data::Split::Train))
        .filter_map(|s| match s.location {
            sv_data::Location::File { path } => Some(path),
            _ => None,
        })
        .take(2)
        .collect();
    for path in &broken {
        std::fs::write(path, b"no longer an image").unwrap();
    }
    let run = tmp.path().join("run");
    let mut finetune = command(&hub, &cache);
    finetune
        .args(["finetune", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(&run)
        .args([
            "--model",
            &format!("{REPO}@main"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ]);
    let out = finetune.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The epoch's draw decides how often the broken images come up: at least once.
    assert!(
        stderr.contains("could not be read or decoded and left out"),
        "{stderr}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let left_out: u64 = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["train_images_left_out"].as_u64())
        .sum();
    assert!(left_out >= 1, "{metrics}");
    assert!(run.join("model.safetensors").is_file());
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains(REPO), "{config}");
    // Python's cache layout, shared with huggingface_hub.
    let snapshots = cache.join("models--streetvision--zoo-convnext/snapshots");
    let snapshot = std::fs::read_dir(&snapshots)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        assert!(snapshot.join(f).is_file(), "{f} in {}", snapshot.display());
    }

    let probe_run = tmp.path().join("probe");
    let mut probe = command(&hub, &cache);
    probe
        .args(["probe", "--backbone", REPO, "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(&probe_run)
        .arg("--cache-dir")
        .arg(tmp.path().join("features"))
        .args(["--epochs", "20"]);
    succeed(&mut probe);
    assert!(probe_run.join("probe.json").is_file());

    // A repository that does not exist is an error naming it, not a panic.
    let out = command(&hub, &cache)
        .args(["finetune", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(tmp.path().join("missing"))
        .args(["--model", "streetvision/no-such-model", "--epochs", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no-such-model"), "{err}");
}
