//! `sv-miner challenge` against a running `sv-miner serve`, both as real processes: every
//! validator-style challenge is answered, the levels are drawn, and the report's answers
//! are the ones the miner logged.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use sv_tests::fixture;

/// `sv-miner challenge` against `miner` with the images of `manifest`, from the fixture
/// wallets; the challenger's key is left to the caller.
fn challenge_command(miner: &MinerProcess, manifest: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sv-miner"));
    command
        .args(["challenge", "--miner", &miner.axon.to_string()])
        .args(["--miner-hotkey", &miner_key().ss58])
        .arg("--manifest")
        .arg(manifest)
        .arg("--wallet-path")
        .arg(wallets());
    command
}

#[test]
fn challenge_scores_every_answer_the_miner_logged() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = sv_data::synthetic::generate(&dir.path().join("scenes"), 16, 96, 3).unwrap();
    let manifest = dir.path().join("manifest.jsonl");
    sv_data::write_manifest(&manifest, scenes.iter()).unwrap();
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            "model = {:?}\nallowlist = {:?}\n",
            fixture("convnext/hf_cls.safetensors"),
            fixture("axon/demo-validators.txt")
        ),
    );
    let report_path = dir.path().join("report.json");
    let labels_path = dir.path().join("labels.jsonl");
    let out = challenge_command(&miner, &manifest)
        .args(["--wallet-name", "fixture", "--wallet-hotkey", "seeded"])
        .args(["--concurrency", "3", "--seed", "5"])
        .arg("--report")
        .arg(&report_path)
        .arg("--labels")
        .arg(&labels_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("16 challenges") && stdout.contains("16 answered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("subnet reward") && stdout.contains("latency ms"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let exchanges = report["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 16);
    let mut levels = std::collections::BTreeSet::new();
    let mut answered: Vec<f64> = Vec::new();
    for e in exchanges {
        assert_eq!(e["status"], 200, "{e}");
        levels.insert(e["level"].as_u64().unwrap());
        answered.push(e["prediction"].as_f64().unwrap());
    }
    assert!(levels.len() >= 3, "levels drawn: {levels:?}");
    // The validator's reward per answer, recomputed from the exchanges in order.
    let pairs: Vec<(f64, bool)> = exchanges
        .iter()
        .map(|e| {
            (
                e["prediction"].as_f64().unwrap(),
                e["roadwork"].as_bool().unwrap(),
            )
        })
        .collect();
    let mcc = |w: &[(f64, bool)]| {
        let (mut tp, mut tn, mut fp, mut fn_) = (0.0, 0.0, 0.0, 0.0);
        for &(p, y) in w {
            match (p > 0.5, y) {
                (true, true) => tp += 1.0,
                (false, false) => tn += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
            }
        }
        let d: f64 = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_);
        if d == 0.0 {
            0.0
        } else {
            (tp * tn - fp * fn_) / d.sqrt()
        }
    };
    let acc = |w: &[(f64, bool)]| {
        w.iter().filter(|(p, y)| (*p > 0.5) == *y).count() as f64 / w.len() as f64
    };
    let mean: f64 = (0..pairs.len())
        .map(|i| {
            let m = mcc(&pairs[i.saturating_sub(99)..=i]).max(0.0);
            let a = acc(&pairs[i.saturating_sub(9)..=i]);
            (0.5 * m + 0.5 * a).powi(3)
        })
        .sum::<f64>()
        / pairs.len() as f64;
    assert!((report["mean_reward"].as_f64().unwrap() - mean).abs() < 1e-12);
    // The miner logged the same answers (as f32).
    let log_dir = dir.path().join("log");
    assert!(miner.stop().success());
    let mut logged: Vec<f32> = std::fs::read_to_string(log_dir.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["prediction"]
                .as_f64()
                .unwrap() as f32
        })
        .collect();
    let mut sent: Vec<f32> = answered.iter().map(|p| *p as f32).collect();
    logged.sort_by(f32::total_cmp);
    sent.sort_by(f32::total_cmp);
    assert_eq!(logged, sent);

    // The challenge labels are keyed by the ids the miner logged, with each source
    // image's label: the join that finds wrong answers.
    let labels = sv_records::labels::read_labels(&[&labels_path]).unwrap();
    let logged_ids: std::collections::BTreeSet<String> =
        std::fs::read_to_string(log_dir.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["image_sha256"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    assert_eq!(
        labels
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        logged_ids
    );
    let text = std::fs::read_to_string(&labels_path).unwrap();
    for line in text.lines() {
        let l: sv_records::labels::ChallengeLabel = serde_json::from_str(line).unwrap();
        let source = scenes
            .iter()
            .find(|s| Some(&s.id) == l.source_id.as_ref())
            .unwrap();
        assert_eq!(Some(l.label as f32), source.label.target(), "{line}");
    }
}

#[test]
fn a_challenge_the_miner_refuses_exits_1_with_the_reason_and_ignores_the_miners_keys() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = sv_data::synthetic::generate(&dir.path().join("scenes"), 4, 96, 3).unwrap();
    let manifest = dir.path().join("manifest.jsonl");
    sv_data::write_manifest(&manifest, scenes.iter()).unwrap();
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            "model = {:?}\nallowlist = {:?}\n",
            fixture("convnext/hf_cls.safetensors"),
            fixture("axon/demo-validators.txt")
        ),
    );
    let challenge = |hotkey_var: (&str, &str)| {
        challenge_command(&miner, &manifest)
            .env("CHALLENGE_WALLET_NAME", "fixture")
            .env_remove("CHALLENGE_WALLET_HOTKEY")
            // The miner's own variables (a sourced miner.env) are not the challenger's.
            .env("WALLET_NAME", "fixture")
            .env("WALLET_HOTKEY", "seeded")
            .env(hotkey_var.0, hotkey_var.1)
            .output()
            .unwrap()
    };
    // Signed by the miner's own key (not an allowed validator): every request refused.
    let out = challenge(("CHALLENGE_WALLET_HOTKEY", "phrase"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("0 answered"), "{stdout}");
    assert!(
        stdout.contains("is not in the miner's allowlist"),
        "the refusal's real reason: {stdout}"
    );
    assert!(stderr.contains("--min-answered"), "{stderr}");
    // The allowed validator's key through the challenger's variable: answered.
    let out = challenge(("CHALLENGE_WALLET_HOTKEY", "seeded"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // --json: the whole report on standard output.
    let out = challenge_command(&miner, &manifest)
        .arg("--json")
        .args(["--wallet-name", "fixture", "--wallet-hotkey", "seeded"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["answered"], 4, "{report}");
    assert_eq!(report["exchanges"].as_array().unwrap().len(), 4);
    // WALLET_HOTKEY=seeded alone does not make the challenger the validator.
    let out = challenge(("UNUSED", ""));
    assert_eq!(
        out.status.code(),
        Some(2),
        "no challenger hotkey `default` in the fixture wallet"
    );
}
