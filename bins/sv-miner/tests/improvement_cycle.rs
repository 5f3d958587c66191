//! The improvement loop end to end, as a miner runs it: `sv-trainer loop` (a real
//! process) against a loopback Hub and subnet operator, and a real `sv-miner serve`
//! following `hf://…` on that Hub, answering labelled challenges that become the loop's
//! input. The first cycle, stopped at `publish` by a Hub that does not answer, continues
//! there once it does, publishes a better model and the miner swaps to it; the second
//! cycle (trained on a mislabelled pool) is killed with SIGKILL during training, rerun to
//! its end from the first unfinished step, and kept out: nothing is published and the
//! miner keeps answering with the first cycle's model. Everything is asserted from files,
//! the Hub's and operator's records and the miner's answers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use sv_axon::dendrite::Dendrite;
use sv_data::{Label, Sample, Split, SplitFractions};
use sv_tests::hub_writer::fake_hub;

const REPO: &str = "streetvision/roadwork-loop";

/// `sv-trainer`, built beside `sv-miner` by `cargo test --workspace`.
fn trainer() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_sv-miner")).with_file_name("sv-trainer");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p sv-trainer` (cargo test --workspace does)",
        path.display()
    );
    path
}

fn hub_env<'a>(c: &'a mut Command, endpoint: &str, cache: &Path) -> &'a mut Command {
    c.env("HF_ENDPOINT", endpoint)
        .env("HF_TOKEN", "hf_test")
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn scene(sample: &Sample) -> &str {
    sample.metadata["scene"].as_str().unwrap()
}

fn write(path: &Path, samples: &[Sample]) {
    sv_data::write_manifest(path, samples.iter()).unwrap();
}

/// The operator's endpoints: every registration succeeds; the bodies received.
fn operator() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let answer = if request.url() == "/participants/register" {
                seen2
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or_default());
                r#"{"status": "queued"}"#
            } else {
                r#"{"status": "succeeded"}"#
            };
            let _ = request.respond(tiny_http::Response::from_string(answer));
        }
    });
    (base, seen)
}

fn loop_config(d: &Path, pool: &str, epochs: u32, operator: &str) -> PathBuf {
    let file = d.join(format!("loop-{pool}.toml"));
    std::fs::write(
        &file,
        format!(
            r#"work_dir = "work"
production = "runs/base"
pool = "{pool}.jsonl"
miner_log = "miner/log"
held_out = ["held-out=held-out.jsonl"]
retrain_after_days = 0

[curate]
mine_k = 8

[train]
epochs = {epochs}
warmup_steps = 5
checkpoint_every = 2

[gate]
resamples = 500

[publish]
repo = "{REPO}"
model_name = "roadwork-loop"

[wallet]
name = "fixture"
hotkey = "phrase"
path = {wallets:?}

[register]
uid = 17
base_url = "{operator}"
poll_seconds = 0.05
"#,
            wallets = wallets()
        ),
    )
    .unwrap();
    file
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn the_loop_publishes_what_the_miner_follows_survives_a_kill_and_keeps_a_worse_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("hub-cache");
    let (hub, store) = fake_hub();
    let (operator, registrations) = operator();
    let hotkey = miner_key().ss58;

    // Data: the base model never sees orange-but-not-roadwork scenes; the pool and the
    // held-out set have every kind.
    let mut base = sv_data::synthetic::generate(&d.join("base"), 240, 64, 11).unwrap();
    base.retain(|s| scene(s) != "hard_negative");
    sv_data::assign_splits(&mut base, &SplitFractions::default(), 12).unwrap();
    write(&d.join("base.jsonl"), &base);
    let mut pool = sv_data::synthetic::generate(&d.join("pool"), 600, 64, 33).unwrap();
    sv_data::assign_splits(&mut pool, &SplitFractions::default(), 34).unwrap();
    write(&d.join("pool.jsonl"), &pool);
    let mut held_out = sv_data::synthetic::generate(&d.join("held-out"), 160, 64, 44).unwrap();
    held_out
        .iter_mut()
        .for_each(|s| s.split = Some(Split::Test));
    write(&d.join("held-out.jsonl"), &held_out);
    // A mislabelled copy of the pool: every training label flipped.
    let flipped: Vec<Sample> = pool
        .iter()
        .cloned()
        .map(|mut s| {
            if s.split == Some(Split::Train) {
                s.label = match s.label {
                    Label::Roadwork => Label::NoRoadwork,
                    _ => Label::Roadwork,
                };
            }
            s
        })
        .collect();
    write(&d.join("flipped.jsonl"), &flipped);

    // The base model: one short epoch, exported, published as the miner's first model.
    let pipeline = d.join("pipeline.toml");
    std::fs::write(&pipeline, sv_train::quickstart::PIPELINE).unwrap();
    let (_, _, config) =
        sv_train::quickstart::prepare(&sv_train::quickstart::Layout::under(&d.join("qs")), 8, 1, 3)
            .unwrap();
    let config = sv_train::finetune::FinetuneConfig {
        augment: pipeline.to_string_lossy().into_owned(),
        ..config
    };
    let data = sv_train::finetune::Data::from_samples(base.clone()).unwrap();
    let base_run = sv_train::finetune::RunDir {
        root: d.join("runs/base"),
    };
    sv_train::finetune::finetune(
        &config,
        &data,
        &base_run,
        false,
        &sv_models::Device::default().autodiff(),
        &mut |_| {},
    )
    .unwrap();
    let base_export = d.join("base-export");
    let ok = run(Command::new(trainer())
        .args([
            "export",
            "--model-name",
            "roadwork-loop",
            "--hotkey",
            &hotkey,
        ])
        .arg("--run-dir")
        .arg(&base_run.root)
        .arg("--out")
        .arg(&base_export));
    assert!(ok.status.success());
    let ok = run(hub_env(&mut Command::new(trainer()), &hub, &cache)
        .args(["publish", "--hub-repo", REPO, "--hotkey", &hotkey, "--yes"])
        .arg("--export")
        .arg(&base_export));
    assert!(ok.status.success());

    // The miner follows the repository and answers labelled challenges, which it logs.
    let miner_dir = d.join("miner");
    std::fs::create_dir_all(&miner_dir).unwrap();
    let miner = MinerProcess::start_with(
        &miner_dir,
        "phrase",
        &format!(
            "model = \"hf://{REPO}\"\nallowlist = {:?}\nhub_poll_seconds = 1\nstore_images = true\n",
            allowlist(&miner_dir)
        ),
        |c| {
            hub_env(c, &hub, &d.join("miner-hub-cache")).env_remove("HF_TOKEN");
        },
    );
    let dendrite = Dendrite::new(validator());
    let ask = |sample: &Sample, label: i64| -> f64 {
        let bytes = std::fs::read(common_file(sample)).unwrap();
        let mut fields = image_fields(&bytes);
        fields.insert("testnet_label".into(), label.into());
        let a = dendrite.call("ImageSynapse", fields, &miner.target(), 30.0);
        assert_eq!(a.status, 200, "{:?}", a.message);
        a.prediction().unwrap()
    };
    let challenges = sv_data::synthetic::generate(&d.join("challenges"), 80, 64, 22).unwrap();
    for s in &challenges {
        ask(s, i64::from(s.label == Label::Roadwork));
    }
    let probes: Vec<Sample> = held_out.iter().take(12).cloned().collect();
    let answers =
        |miner_label: i64| -> Vec<f64> { probes.iter().map(|s| ask(s, miner_label)).collect() };
    let before = answers(-1);
    // The miner's log writer is a thread of its own: wait until every answer is on disk
    // before a loop reads the log.
    let logged = || {
        std::fs::read_to_string(miner_dir.join("log/predictions.jsonl"))
            .map_or(0, |t| t.lines().count())
    };
    let started = Instant::now();
    while logged() < challenges.len() + probes.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} logged",
            logged()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Cycle 1: published, registered, recorded; the miner swaps to it.
    let config1 = loop_config(d, "pool", 16, &operator);
    let dry = run(Command::new(trainer())
        .args(["loop", "--dry-run", "--config"])
        .arg(&config1));
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("to do: read the miner's log"));
    // A Hub that does not answer: the cycle trains, passes the gate and exports, then
    // stops at `publish` (exit 2, named); nothing is recorded or sent.
    let dead = run(
        hub_env(&mut Command::new(trainer()), "http://127.0.0.1:9", &cache)
            .args(["loop", "--config"])
            .arg(&config1),
    );
    assert_eq!(dead.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dead.stderr).contains("error: step publish"));
    assert!(!d.join("work/production.json").exists());
    assert_eq!(store.lock().unwrap().commits.len(), 1);
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("work/cycles/0001/journal.json")).unwrap())
            .unwrap();
    assert_eq!(
        journal["steps"].as_array().unwrap().last().unwrap()["step"],
        "export"
    );
    assert!(journal["outcome"].is_null());
    // The Hub is back: the rerun continues at `publish`, without training again.
    let first = run(hub_env(&mut Command::new(trainer()), &hub, &cache)
        .args(["loop", "--config"])
        .arg(&config1));
    assert_eq!(first.status.code(), Some(0), "the first cycle publishes");
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(
        said.contains("continuing at its first unfinished step"),
        "{said}"
    );
    assert!(!said.contains("finetune: done"), "{said}");
    let (commits, card) = {
        let st = store.lock().unwrap();
        let (id, files) = st.commits.last().unwrap();
        let card: serde_json::Value = serde_json::from_slice(&files["model_card.json"]).unwrap();
        (st.commits.len(), (id.clone(), card))
    };
    assert_eq!(commits, 2, "the base model and cycle 1");
    assert_eq!(card.1["submitted_by"], hotkey.as_str());
    assert_eq!(card.1["version"], "1.1.0");
    let cycle1 = d.join("work/cycles/0001");
    let exported = std::fs::read(cycle1.join("export/model.safetensors")).unwrap();
    assert_eq!(
        store.lock().unwrap().commits[1].1["model.safetensors"],
        exported,
        "the Hub holds the cycle's export byte for byte"
    );
    let regs = registrations.lock().unwrap().clone();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["model_repo"], REPO);
    assert_eq!(regs[0]["uid"], "17");
    let production: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("work/production.json")).unwrap()).unwrap();
    assert_eq!(production["commit"], card.0.as_str());
    // Mining saw wrong answers from the challenge labels.
    let log = std::fs::read_to_string(cycle1.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), challenges.len() + probes.len());
    wait_for_metric(&miner, "sv_miner_model_swaps_total", 1.0);
    let after_first = answers(-1);
    assert_ne!(
        before, after_first,
        "the miner answers with cycle 1's model"
    );

    // Cycle 2 on a mislabelled pool, killed while it trains.
    let config2 = loop_config(d, "flipped", 6, &operator);
    let cycle2 = d.join("work/cycles/0002");
    let mut child = hub_env(&mut Command::new(trainer()), &hub, &cache)
        .args(["loop", "--config"])
        .arg(&config2)
        .stdout(std::fs::File::create(d.join("killed.out")).unwrap())
        .stderr(std::fs::File::create(d.join("killed.err")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !cycle2.join("run/checkpoint.safetensors").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the loop ended early: {}",
            std::fs::read_to_string(d.join("killed.err")).unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cycle2.join("journal.json")).unwrap()).unwrap();
    let done: Vec<&str> = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        done,
        ["ingest", "embed", "dedup", "mine", "autolabel", "mix"]
    );
    let curated = mtime(&cycle2.join("train.jsonl"));
    let production_before = std::fs::read(d.join("work/production.json")).unwrap();

    let second = run(hub_env(&mut Command::new(trainer()), &hub, &cache)
        .args(["loop", "--config"])
        .arg(&config2));
    assert_eq!(second.status.code(), Some(1), "the gate keeps production");
    assert_eq!(
        mtime(&cycle2.join("train.jsonl")),
        curated,
        "curation not redone"
    );
    let gate: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cycle2.join("gate.json")).unwrap()).unwrap();
    assert_eq!(gate["pass"], false);
    assert!(!cycle2.join("export").exists() && !cycle2.join("published.json").exists());
    assert_eq!(store.lock().unwrap().commits.len(), 2, "nothing published");
    assert_eq!(registrations.lock().unwrap().len(), 1, "nothing registered");
    assert_eq!(
        std::fs::read(d.join("work/production.json")).unwrap(),
        production_before
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(miner.metric("sv_miner_model_swaps_total"), 1.0);
    assert_eq!(answers(-1), after_first, "the miner keeps cycle 1's model");

    // A third run has nothing unfinished and production is due: cycle 3's plan.
    let dry = run(Command::new(trainer())
        .args(["loop", "--dry-run", "--config"])
        .arg(&config2));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("cycle 3"));
}

/// The image file of a synthetic sample.
fn common_file(sample: &Sample) -> PathBuf {
    match &sample.location {
        sv_data::Location::File { path } => path.clone(),
        other => panic!("not a file: {other:?}"),
    }
}
