//! Our dendrite against the real verifier: the Bittensor SDK's own axon
//! (`tools/sdk_axon.py`, bittensor==9.12.2) must accept our signed requests and answer them
//! with the status headers our gate also writes, and refuse a replayed nonce and a request
//! signed for another axon. `tools/test.sh` provides the Python through `SV_TEST_PYTHON`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};
use sv_axon::dendrite::{Dendrite, Target, now_ns};
use sv_axon::keys::Hotkey;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_sdk_axon_accepts_and_answers_our_dendrite() {
    let python = sv_tests::test_python();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/sdk_axon.py");
    let mut child = Killed(
        Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--answer", "0.37"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let axon_hotkey = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the SDK axon did not start: {line:?}"))
        .trim()
        .to_string();
    assert_eq!(axon_hotkey, Hotkey::from_seed(&[0x22; 32]).ss58);
    let target = Target {
        ip: "127.0.0.1".into(),
        port,
        hotkey: axon_hotkey.clone(),
    };
    let validator = Hotkey::from_seed(&[0x11; 32]);
    let dendrite = Dendrite::new(validator.clone());
    let mut fields = Map::new();
    fields.insert("image".into(), Value::from("aGVsbG8="));
    // The axon starts in the background: retry until it listens.
    let mut answer = dendrite.call("ImageSynapse", fields.clone(), &target, 5.0);
    for _ in 0..100 {
        if answer.status != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        answer = dendrite.call("ImageSynapse", fields.clone(), &target, 5.0);
    }
    assert_eq!(answer.status, 200, "{:?}", answer.message);
    assert_eq!(answer.prediction(), Some(0.37));
    // Its status headers, as our gate writes them. (The SDK's axon signs its side in
    // `preprocess`, but the synapse it answers with is parsed again from the body, so no
    // axon nonce, uuid or signature reaches the caller.)
    let a = &answer.axon;
    assert_eq!(a.status_code, Some(200));
    assert_eq!(a.status_message.as_deref(), Some("Success"));
    assert_eq!(a.hotkey.as_deref(), Some(axon_hotkey.as_str()));
    assert!(a.process_time.is_some());
    // A replayed request is refused by the SDK too.
    let prepared = dendrite.prepare("ImageSynapse", fields.clone(), &target, 5.0, now_ns());
    assert_eq!(dendrite.send(&prepared, &target, 5.0).status, 200);
    let replay = dendrite.send(&prepared, &target, 5.0);
    assert_eq!(replay.status, 401, "{:?}", replay.message);
    // Addressed to another hotkey: the SDK's verification fails.
    let wrong = Target {
        hotkey: validator.ss58.clone(),
        ..target.clone()
    };
    let prepared = dendrite.prepare("ImageSynapse", fields, &wrong, 5.0, now_ns());
    assert_eq!(dendrite.send(&prepared, &target, 5.0).status, 401);
}
