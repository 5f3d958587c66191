//! `sv-trainer finetune` as a real process: a run killed with SIGKILL mid-epoch and
//! resumed ends with exactly the weights (and the same metric log) of a run that was
//! never interrupted; bad configs and manifests fail with errors that name the fault.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sv_data::{SplitFractions, assign_splits, write_manifest};
use sv_train::checkpoint::Checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_sv-trainer");

const CONFIG: &str = r#"
model = "convnextv2-quickstart"
image_size = 32
epochs = 2
batch_size = 8
lr = 0.002
backbone_lr = 0.001
layer_decay = 0.8
warmup_steps = 3
drop_path = 0.1
ema = 0.9
checkpoint_every = 2
seed = 5
"#;

const PIPELINE: &str = r#"
[[step]]
op = "random_resized_crop"
size = 32
scale = [0.5, 1.0]

[[step]]
op = "horizontal_flip"

[[step]]
op = "gaussian_noise"
std = [2.0, 5.0]
"#;

/// A small synthetic set with splits, a pipeline and a config in `dir`.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let mut samples = sv_data::synthetic::generate(&dir.join("data"), 120, 32, 1).unwrap();
    assign_splits(&mut samples, &SplitFractions::default(), 1).unwrap();
    let manifest = dir.join("manifest.jsonl");
    write_manifest(&manifest, samples.iter()).unwrap();
    let pipeline = dir.join("augment.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("{CONFIG}augment = {:?}\n", pipeline.display().to_string()),
    )
    .unwrap();
    (manifest, config)
}

/// A finished one-epoch run in `dir/run` of the setup's config with `edits` (from, to)
/// applied; returns the manifest and the run directory.
fn one_epoch_run(dir: &Path, edits: &[(&str, String)]) -> (PathBuf, PathBuf) {
    let (manifest, config) = setup(dir);
    let mut text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("epochs = 2", "epochs = 1");
    for (from, to) in edits {
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).unwrap();
    let run = dir.join("run");
    succeed(&mut finetune(&manifest, &config, &run));
    (manifest, run)
}

/// Run `command` and return its output, failing the test with its stderr if it failed.
fn succeed(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn finetune(manifest: &Path, config: &Path, run: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["finetune", "--manifest"])
        .arg(manifest)
        .arg("--config")
        .arg(config)
        .arg("--run-dir")
        .arg(run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The final weights of runs `a` and `b` are equal bit for bit.
fn assert_same_weights(a: &Path, b: &Path) {
    let weights = |run: &Path| {
        Checkpoint::load(&run.join("model.safetensors"))
            .unwrap()
            .model
    };
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    for (k, (shape, values)) in &a {
        assert_eq!(&b[k].0, shape, "{k}");
        assert!(
            values
                .iter()
                .zip(&b[k].1)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{k} differs after resuming"
        );
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    kill_and_resume("");
}

/// The contrastive term's feature bank travels in the checkpoint: small enough here to
/// wrap around within an epoch.
#[test]
fn a_killed_run_with_hard_negatives_resumes_to_the_same_weights() {
    let ck = kill_and_resume("\n[hard_negatives]\nweight = 0.5\nbank_size = 20\nper_anchor = 3\n");
    let (shape, labels) = &ck.extra["bank.labels"];
    assert!(shape[0] > 0 && shape[0] <= 20, "{shape:?}");
    assert!(labels.iter().all(|l| *l == 0.0 || *l == 1.0));
    let ids: Vec<String> = serde_json::from_str(&ck.meta["bank_ids"]).unwrap();
    assert_eq!(ids.len(), shape[0]);
}

/// An f16 run's loss scale travels in the checkpoint, so the resumed run scales (and
/// skips overflowing steps) as the whole run did.
#[test]
fn a_killed_f16_run_resumes_to_the_same_weights() {
    let ck = kill_and_resume("precision = \"f16\"\n");
    let (shape, state) = &ck.extra["loss_scale"];
    assert_eq!(shape, &vec![2]);
    assert!(
        state[0] > 0.0 && state[0].log2().fract() == 0.0,
        "{state:?}"
    );
}

/// A resumed run with gradient checkpointing keeps it: the restored weights carry the
/// device's strategy, so the first step after the resume runs.
#[test]
fn a_killed_run_with_gradient_checkpointing_resumes_to_the_same_weights() {
    kill_and_resume("gradient_checkpointing = true\n");
}

/// Run the setup's config (plus `extra` TOML) whole, and again killed with SIGKILL after
/// its first mid-epoch checkpoint and resumed: the final weights must be equal bit for
/// bit and the metric logs line for line. Returns the checkpoint the kill left.
fn kill_and_resume(extra: &str) -> Checkpoint {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = setup(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();

    let whole = dir.path().join("whole");
    succeed(&mut finetune(&manifest, &config, &whole));

    let killed = dir.path().join("killed");
    let mut child = finetune(&manifest, &config, &killed).spawn().unwrap();
    let checkpoint = killed.join("checkpoint.safetensors");
    let started = Instant::now();
    // Kill as soon as a mid-epoch checkpoint exists.
    loop {
        if let Ok(ck) = Checkpoint::load(&checkpoint)
            && ck.position.batch > 0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no mid-epoch checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("model.safetensors").exists(),
        "killed before the end"
    );
    let ck = Checkpoint::load(&checkpoint).unwrap();
    let position = ck.position;
    assert!(position.epoch == 0 && position.batch > 0, "{position:?}");
    assert_eq!(
        ck.ema.len(),
        ck.model.len(),
        "the checkpoint carries the weight average"
    );
    assert!(
        ck.ema.iter().any(|(k, v)| v.1 != ck.model[k].1),
        "the average differs from the weights"
    );

    let out = succeed(
        Command::new(BIN)
            .args(["finetune", "--resume", "--manifest"])
            .arg(&manifest)
            .arg("--run-dir")
            .arg(&killed),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming at epoch 1"));

    assert_same_weights(&whole, &killed);
    let log = |run: &Path| std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        log(&whole),
        log(&killed),
        "the metric logs agree line for line"
    );
    ck
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = setup(dir.path());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    let out = finetune(&manifest, &bad, &dir.path().join("r1"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("learning_rate") && err.contains("bad.toml"),
        "{err}"
    );

    let missing = dir.path().join("nope.jsonl");
    let good = dir.path().join("config.toml");
    let out = finetune(&missing, &good, &dir.path().join("r2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nope.jsonl"), "{err}");

    // A manifest whose images are gone.
    let samples = sv_data::read_manifest(&manifest).unwrap();
    let train = samples
        .iter()
        .find(|s| s.split == Some(sv_data::Split::Train))
        .unwrap();
    let gone = match &train.location {
        sv_data::Location::File { path } => path.clone(),
        other => panic!("{other:?}"),
    };
    std::fs::remove_file(&gone).unwrap();
    let out = finetune(&manifest, &good, &dir.path().join("r3"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing") && err.contains(&*gone.to_string_lossy()),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["finetune", "--resume", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(dir.path().join("never-ran"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("config.toml"),
        "{err}"
    );
}

#[test]
fn an_exported_run_loads_as_transformers_layout_with_the_same_logits() {
    use burn::tensor::{Distribution, Tensor};
    use sv_models::{ConvNextLoadOptions, ConvNextV2Classifier, Device};
    use sv_train::finetune::{FinetuneConfig, Logits, RunDir, load_trained};

    let dir = tempfile::tempdir().unwrap();
    let (manifest, run) = one_epoch_run(dir.path(), &[]);
    let export = dir.path().join("export");
    succeed(
        Command::new(BIN)
            .args(["export", "--model-name", "test-model", "--hotkey"])
            .arg("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
            .arg("--run-dir")
            .arg(&run)
            .arg("--out")
            .arg(&export),
    );
    for f in [
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "model_card.json",
    ] {
        assert!(export.join(f).exists(), "{f}");
    }
    let device = Device::default();
    let cfg = FinetuneConfig::from_toml(
        &std::fs::read_to_string(run.join("config.toml")).unwrap(),
        "config.toml",
    )
    .unwrap();
    let trained = load_trained(&RunDir { root: run.clone() }, &cfg, &device).unwrap();
    let exported = ConvNextV2Classifier::load(
        &export.join("model.safetensors"),
        &ConvNextLoadOptions::default(),
        &device,
    )
    .unwrap();
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let (a, b) = (trained.logits(x.clone()), exported.forward(x));
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-5, "logits differ by {diff}");

    // The export's ensemble file takes a fitted temperature.
    let fitted = dir.path().join("fitted.json");
    succeed(
        Command::new(BIN)
            .args([
                "fit-ensemble",
                "--no-weights",
                "--split",
                "all",
                "--ensemble",
            ])
            .arg(export.join("ensemble.json"))
            .arg("--manifest")
            .arg(&manifest)
            .arg("--out")
            .arg(&fitted),
    );
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fitted).unwrap()).unwrap();
    let fit = &spec["fit"];
    assert!(
        fit["log_loss"].as_f64().unwrap() <= fit["initial_log_loss"].as_f64().unwrap(),
        "{spec}"
    );
    assert_eq!(fit["temperatures"].as_bool(), Some(true));
}

#[test]
fn eval_reports_per_source_and_ab_keeps_production_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, run) = one_epoch_run(dir.path(), &[]);

    let out = succeed(
        Command::new(BIN)
            .args(["eval", "--json", "--latency", "5", "--model"])
            .arg(&run)
            .arg("--manifest")
            .arg(&manifest),
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests = sv_data::read_manifest(&manifest)
        .unwrap()
        .into_iter()
        .filter(|s| s.split == Some(sv_data::Split::Test))
        .count() as u64;
    assert_eq!(e["overall"]["samples"].as_u64(), Some(tests));
    assert_eq!(e["by_source"]["synthetic"]["samples"].as_u64(), Some(tests));
    assert_eq!(e["latency"]["images"].as_u64(), Some(5));

    let set = format!("synthetic={}", manifest.display());
    let out = Command::new(BIN)
        .args(["ab", "--json", "--set", &set, "--candidate"])
        .arg(&run)
        .arg("--production")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["reward_difference_points"].as_f64(), Some(0.0));
    assert_eq!(r["pass"].as_bool(), Some(false));
    // Each set named, clean and as validator challenges; the decision on the latter.
    let names: Vec<&str> = r["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["synthetic", "synthetic/validator"]);
    assert_eq!(r["decided_on"], serde_json::json!(["synthetic/validator"]));
    assert_eq!(r["sets"][1]["images"], r["sets"][0]["images"]);
    // Production of unknown age counts as new; 120 days old, an equal candidate is
    // deployed.
    assert_eq!(r["required_points"].as_f64(), Some(1.0));
    let out = Command::new(BIN)
        .args([
            "ab",
            "--json",
            "--production-age-days",
            "120",
            "--set",
            &set,
        ])
        .arg("--candidate")
        .arg(&run)
        .arg("--production")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["required_points"].as_f64(), Some(0.0));
}

/// A manifest none of whose images can be read (say, read from another directory than
/// its relative paths assume) is an error naming the first image, never a panic; a
/// partly readable one is scored on what can be read.
#[test]
fn eval_and_ab_name_unreadable_images_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, run) = one_epoch_run(dir.path(), &[]);
    let mut samples = sv_data::read_manifest(&manifest).unwrap();
    samples.retain(|s| s.split == Some(sv_data::Split::Test));
    let gone = dir.path().join("gone.jsonl");
    let mut missing = samples.clone();
    for s in &mut missing {
        s.location = sv_data::Location::File {
            path: dir.path().join("nowhere").join(format!("{}.png", s.id)),
        };
    }
    sv_data::write_manifest(&gone, missing.iter()).unwrap();
    let out = Command::new(BIN)
        .args(["eval", "--latency", "3", "--model"])
        .arg(&run)
        .arg("--manifest")
        .arg(&gone)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "none of the {} images could be read",
            samples.len()
        )) && err.contains("nowhere"),
        "{err}"
    );
    let set = format!("gone={}", gone.display());
    let out = Command::new(BIN)
        .args(["ab", "--set", &set, "--candidate"])
        .arg(&run)
        .arg("--production")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("could be read"), "{err}");

    // Half the images gone, the first among them: scored on the rest, latency too.
    let half = dir.path().join("half.jsonl");
    let mut partly = samples.clone();
    for s in partly.iter_mut().step_by(2) {
        s.location = sv_data::Location::File {
            path: dir.path().join("nowhere.png"),
        };
    }
    sv_data::write_manifest(&half, partly.iter()).unwrap();
    let out = succeed(
        Command::new(BIN)
            .args(["eval", "--json", "--latency", "3", "--model"])
            .arg(&run)
            .arg("--manifest")
            .arg(&half),
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        e["overall"]["samples"].as_u64(),
        Some((samples.len() / 2) as u64)
    );
    assert_eq!(e["latency"]["images"].as_u64(), Some(3));
}

#[test]
fn finetunes_from_dinov2_and_convnext_checkpoints() {
    use sv_models::Network;
    use sv_train::finetune::{FinetuneConfig, RunDir, initial_model, load_trained};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for (checkpoint, size, dinov2) in [
        ("dinov2/hf_mlp.safetensors", 56, true),
        ("convnext/hf_cls.safetensors", 32, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = fixtures.join(checkpoint);
        let (_, run) = one_epoch_run(
            dir.path(),
            &[
                ("image_size = 32", format!("image_size = {size}")),
                (
                    "model = \"convnextv2-quickstart\"",
                    format!("model = {:?}", path.display().to_string()),
                ),
            ],
        );
        let cfg = FinetuneConfig::from_toml(
            &std::fs::read_to_string(run.join("config.toml")).unwrap(),
            "config.toml",
        )
        .unwrap();
        let device = sv_models::Device::default();
        let trained = load_trained(&RunDir { root: run.clone() }, &cfg, &device).unwrap();
        assert_eq!(
            matches!(trained, Network::Dinov2(_)),
            dinov2,
            "{checkpoint}"
        );
        // The weights moved away from the checkpoint's.
        let start = initial_model(&cfg, &device).unwrap();
        let (a, b) = match (&trained, &start) {
            (Network::Dinov2(a), Network::Dinov2(b)) => (
                a.head.weight.val().into_data().try_to_vec::<f32>().unwrap(),
                b.head.weight.val().into_data().try_to_vec::<f32>().unwrap(),
            ),
            (Network::ConvNextV2(a), Network::ConvNextV2(b)) => (
                a.head.weight.val().into_data().try_to_vec::<f32>().unwrap(),
                b.head.weight.val().into_data().try_to_vec::<f32>().unwrap(),
            ),
            _ => panic!("architectures differ"),
        };
        assert_ne!(a, b, "{checkpoint}: the head did not train");
    }
}

/// `--incremental` starts a new run from a finished run's final weights and config, and
/// refuses a run directory that is the source itself or a model the source did not
/// start from.
#[test]
fn an_incremental_run_starts_from_the_source_runs_weights() {
    use sv_models::Network;
    use sv_train::finetune::{FinetuneConfig, initial_model};
    let dir = tempfile::tempdir().unwrap();
    let (manifest, source) = one_epoch_run(dir.path(), &[]);
    let next = dir.path().join("next");
    let incremental = |run: &Path, extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["finetune", "--epochs", "1", "--lr", "0.0005", "--manifest"])
            .arg(&manifest)
            .arg("--run-dir")
            .arg(run)
            .arg("--incremental")
            .arg(&source)
            .args(extra);
        c
    };
    let fails = |c: &mut Command, words: &[&str]| {
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && words.iter().all(|w| err.contains(w)),
            "{err}"
        );
    };
    succeed(&mut incremental(&next, &["--hard-negatives"]));
    // A finished run is not overwritten by accident: --resume or --force.
    let model = std::fs::read(next.join("model.safetensors")).unwrap();
    fails(
        &mut incremental(&next, &["--hard-negatives"]),
        &["holds a run already", "--resume", "--force"],
    );
    assert_eq!(
        std::fs::read(next.join("model.safetensors")).unwrap(),
        model,
        "the refused run changed nothing"
    );
    succeed(&mut incremental(&next, &["--hard-negatives", "--force"]));
    let cfg = FinetuneConfig::from_toml(
        &std::fs::read_to_string(next.join("config.toml")).unwrap(),
        "config.toml",
    )
    .unwrap();
    let source_cfg = FinetuneConfig::from_toml(
        &std::fs::read_to_string(source.join("config.toml")).unwrap(),
        "config.toml",
    )
    .unwrap();
    assert_eq!(
        cfg.incremental.as_deref().map(Path::new),
        Some(std::path::absolute(&source).unwrap().as_path())
    );
    assert!(cfg.hard_negatives.is_some());
    // The source's settings, the flags' changes.
    assert_eq!(cfg.model, source_cfg.model);
    assert_eq!(cfg.image_size, source_cfg.image_size);
    assert_eq!(cfg.augment, source_cfg.augment);
    assert_eq!(cfg.lr, 0.0005);
    // The run started from exactly the source's final weights (its moving average).
    let device = sv_models::Device::default();
    let start = match initial_model(&cfg, &device).unwrap() {
        Network::ConvNextV2(m) => sv_train::checkpoint::params_of(&m),
        Network::Dinov2(_) => panic!("architecture changed"),
    };
    let source_weights = Checkpoint::load(&source.join("model.safetensors"))
        .unwrap()
        .model;
    assert_eq!(start, source_weights);
    let trained = Checkpoint::load(&next.join("model.safetensors"))
        .unwrap()
        .model;
    assert_ne!(trained, source_weights, "the incremental run trained");
    let log = std::fs::read_to_string(next.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(
        first["contrastive"].as_f64().is_some() && first["ce"].as_f64().is_some(),
        "{first}"
    );

    fails(
        &mut incremental(&source, &[]),
        &["incremental", "own directory"],
    );
    fails(
        &mut incremental(&dir.path().join("other"), &["--model", "convnextv2-atto"]),
        &["incremental", "convnextv2-quickstart", "convnextv2-atto"],
    );
    let mut c = Command::new(BIN);
    c.args(["finetune", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(dir.path().join("third"))
        .arg("--incremental")
        .arg(dir.path().join("no-such-run"));
    fails(&mut c, &["no-such-run"]);
}

/// A spot instance's preemption: SIGTERM mid-epoch makes the run write its checkpoint at
/// the next step boundary, push it (with config and metrics) to the loopback Hub and
/// exit 75; a fresh run directory with an empty Hub cache — another machine — resumes
/// from the Hub and ends with the weights and metric log of a run never interrupted.
#[test]
fn sigterm_checkpoints_and_another_machine_resumes_from_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (manifest, config) = setup(d);
    let whole = d.join("whole");
    succeed(&mut finetune(&manifest, &config, &whole));

    let (base, store) = sv_tests::hub_writer::fake_hub();
    let hub_env = |c: &mut Command, cache: &str| {
        c.env("HF_ENDPOINT", &base)
            .env("HF_TOKEN", "hf_test")
            .env("HF_HUB_CACHE", d.join(cache))
            .env_remove("HF_HUB_OFFLINE");
    };
    let first = d.join("first");
    let mut command = finetune(&manifest, &config, &first);
    command.args(["--checkpoint-sync", "hf://me/spot@preempt"]);
    hub_env(&mut command, "cache-1");
    let mut child = command.spawn().unwrap();
    let steps = |run: &Path| {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"loss\""))
            .count()
    };
    let started = Instant::now();
    while steps(&first) < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no steps");
        assert!(child.try_wait().unwrap().is_none(), "finished too early");
        std::thread::sleep(Duration::from_millis(2));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("sv-trainer: stopped: stopped at step"),
        "{err}"
    );
    assert!(err.contains("--resume hf://me/spot@preempt"), "{err}");
    assert!(!first.join("model.safetensors").exists());
    assert!(
        !first.join(".sync").exists(),
        "the staged pushes are removed"
    );
    let ck = Checkpoint::load(&first.join("checkpoint.safetensors")).unwrap();
    assert!(ck.position.step >= 3, "{:?}", ck.position);
    assert_eq!(
        steps(&first) as u64,
        ck.position.step,
        "no step lost or redone"
    );
    {
        // The newest commit holds exactly the checkpoint on disk, with its config.
        let st = store.lock().unwrap();
        let (_, files) = st.commits.last().expect("a commit");
        assert_eq!(
            files["checkpoint.safetensors"],
            std::fs::read(first.join("checkpoint.safetensors")).unwrap()
        );
        assert_eq!(
            files["config.toml"],
            std::fs::read(first.join("config.toml")).unwrap()
        );
        assert!(st.repos.contains(&"me/spot".to_string()));
        assert_eq!(st.branches, ["me/spot@preempt"], "the branch is made first");
        assert!(st.unauthorised.is_empty(), "{:?}", st.unauthorised);
    }

    // Another machine: a new run directory and an empty Hub cache.
    let second = d.join("second");
    let mut command = Command::new(BIN);
    command
        .args(["finetune", "--resume", "hf://me/spot@preempt", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(&second)
        .args(["--checkpoint-sync", "hf://me/spot@preempt"]);
    hub_env(&mut command, "cache-2");
    let out = succeed(&mut command);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "restored the checkpoint at step {}",
            ck.position.step
        )),
        "{err}"
    );
    assert_same_weights(&whole, &second);
    assert!(
        !second.join(".sync").exists(),
        "the staged pushes are removed"
    );
    let log = |run: &Path| std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(log(&whole), log(&second));
    // The finished model went to the Hub too.
    let st = store.lock().unwrap();
    let (_, files) = st.commits.last().unwrap();
    assert_eq!(
        files["model.safetensors"],
        std::fs::read(second.join("model.safetensors")).unwrap()
    );

    // A run directory that holds a run is not overwritten by a restore.
    drop(st);
    let mut command = Command::new(BIN);
    command
        .args(["finetune", "--resume", "hf://me/spot@preempt", "--manifest"])
        .arg(&manifest)
        .arg("--run-dir")
        .arg(&second);
    hub_env(&mut command, "cache-3");
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already holds a run"), "{err}");
}
