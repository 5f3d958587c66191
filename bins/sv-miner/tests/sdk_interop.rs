//! The real Python client against our miner: `tools/axon_interop.py` calls a running
//! `sv-miner serve` through PyPI `bittensor==9.12.2`'s `Dendrite` with the subnet's own
//! synapse classes. The SDK must read our prediction (equal to the transformers reference)
//! and see the SDK's status codes for every refusal. `tools/test.sh` provides the Python
//! (a venv from `tools/requirements-test.txt`) through `SV_TEST_PYTHON`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use sv_axon::keys::Hotkey;
use sv_tests::fixture;

#[test]
fn the_python_sdk_reads_our_answers_and_our_refusals() {
    let python = sv_tests::test_python();
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    // The metagraph: the validator with a permit, 0x55… registered without one.
    let snapshot = dir.path().join("metagraph.json");
    let no_permit = Hotkey::from_seed(&[0x55; 32]).ss58;
    std::fs::write(
        &snapshot,
        serde_json::to_vec(&serde_json::json!([
            {"uid": 0, "hotkey": validator().ss58, "validator_permit": true, "stake": 5000.0},
            {"uid": 1, "hotkey": no_permit, "validator_permit": false, "stake": 10.0},
        ]))
        .unwrap(),
    )
    .unwrap();
    let miner = MinerProcess::start(
        dir.path(),
        &format!("model = {model:?}\nmetagraph = {snapshot:?}\n"),
    );
    let out = Command::new(python)
        .arg(fixture("../../tools/axon_interop.py"))
        .args(["--port", &miner.axon.port().to_string()])
        .args(["--miner-hotkey", &miner_key().ss58])
        .arg("--image")
        .arg(fixture("images/chelsea.png"))
        .arg("--wallets")
        .arg(dir.path().join("wallets"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        miner.log.lock().unwrap()
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{r:#}");
    assert_eq!(r["keys"]["validator"], validator().ss58.as_str());
    assert_eq!(r["keys"]["no_permit"], no_permit.as_str());
    let want = reference("mixed")[0];
    for case in ["image_synapse", "extended_image_synapse", "replay_first"] {
        assert_eq!(r[case]["status"], 200, "{case}: {}", r[case]);
        let p = r[case]["prediction"].as_f64().unwrap() as f32;
        assert!((p - want).abs() <= 1e-4, "{case}: {p} vs {want}");
    }
    for (case, status) in [
        ("forged_signature", 401),
        ("replayed_nonce", 401),
        ("stale_nonce", 401),
        ("future_nonce", 401),
        ("unknown_hotkey", 403),
        ("no_validator_permit", 403),
        ("oversized_body", 413),
    ] {
        assert_eq!(r[case]["status"], status, "{case}: {}", r[case]);
        assert_eq!(r[case]["prediction"], -1.0, "{case}: no answer leaks");
    }
    assert_eq!(
        miner.metric("sv_miner_requests_total{outcome=\"answered\""),
        3.0
    );
}
