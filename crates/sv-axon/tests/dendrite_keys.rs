//! Hotkeys read from key files written by the real SDK (`bittensor==9.12.2`,
//! `tools/gen_axon_fixtures.py`), our dendrite's requests against the SDK's own prepared
//! request, the axon's answer signature, and the caller views.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use sv_axon::dendrite::{Dendrite, Target};
use sv_axon::gate::{Access, Callers, Gate};
use sv_axon::keys::Hotkey;
use sv_axon::metagraph::{Metagraph, Neuron, read_allowlist};
use sv_axon::synapse::IMAGE_ROUTES;
use sv_axon::verify::verify_signature;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/axon")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn sdk_key_files_give_the_sdk_addresses() {
    let expected = json(&fixtures().join("wallets/expected.json"));
    for name in ["seeded", "phrase"] {
        let key = Hotkey::from_wallet(&fixtures().join("wallets"), "fixture", name).unwrap();
        assert_eq!(key.ss58, expected[name]["ss58"].as_str().unwrap(), "{name}");
        assert_eq!(
            hex::encode(key.public()),
            expected[name]["public"].as_str().unwrap()
        );
    }
    // Each field alone gives the same key: the phrase, the seed, the private key.
    let file = json(&fixtures().join("wallets/fixture/hotkeys/phrase"));
    let dir = tempfile::tempdir().unwrap();
    for keep in ["secretPhrase", "secretSeed", "privateKey"] {
        let mut one = Map::new();
        one.insert(keep.into(), file[keep].clone());
        let path = dir.path().join(keep);
        std::fs::write(&path, serde_json::to_vec(&one).unwrap()).unwrap();
        let key = Hotkey::from_key_file(&path).unwrap();
        assert_eq!(
            key.ss58,
            expected["phrase"]["ss58"].as_str().unwrap(),
            "{keep}"
        );
    }
    // A wrong address, an encrypted file and a non-key are refused, naming the file.
    let mut wrong = file.as_object().unwrap().clone();
    wrong.insert("ss58Address".into(), expected["seeded"]["ss58"].clone());
    let path = dir.path().join("wrong");
    std::fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let err = Hotkey::from_key_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("wrong") && err.contains("does not match"),
        "{err}"
    );
    std::fs::write(&path, b"$NACL\x00\x01").unwrap();
    let err = Hotkey::from_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("encrypted"), "{err}");
    std::fs::write(&path, b"{}").unwrap();
    assert!(Hotkey::from_key_file(&path).is_err());
    assert!(Hotkey::from_key_file(&dir.path().join("missing")).is_err());
}

#[test]
fn our_dendrite_prepares_the_sdk_request() {
    let f = json(&fixtures().join("requests.json"));
    let h = f["headers"].as_object().unwrap();
    let get = |k: &str| h[k].as_str().unwrap().to_string();
    let mut dendrite = Dendrite::new(Hotkey::from_seed(&[0x11; 32]));
    assert_eq!(dendrite.hotkey(), f["validator"]["ss58"].as_str().unwrap());
    dendrite.uuid = get("bt_header_dendrite_uuid");
    let target = Target {
        ip: get("bt_header_axon_ip"),
        port: get("bt_header_axon_port").parse().unwrap(),
        hotkey: get("bt_header_axon_hotkey"),
    };
    let mut fields = Map::new();
    for k in ["image", "prediction", "testnet_label"] {
        fields.insert(k.into(), f["body"][k].clone());
    }
    let nonce: u64 = get("bt_header_dendrite_nonce").parse().unwrap();
    let prepared = dendrite.prepare("ImageSynapse", fields, &target, 9.0, nonce);
    // Every header the SDK sends, with the same value, except the randomised signature and
    // the sizes (the SDK counts Python object sizes).
    for (k, v) in h {
        if ["bt_header_dendrite_signature", "header_size", "total_size"].contains(&k.as_str()) {
            assert!(prepared.headers.contains_key(k), "{k}");
            continue;
        }
        assert_eq!(
            prepared.headers.get(k),
            v.as_str().map(str::to_string).as_ref(),
            "{k}"
        );
    }
    assert_eq!(
        prepared.headers.len(),
        h.len(),
        "{:?}",
        prepared.headers.keys()
    );
    verify_signature(
        dendrite.hotkey(),
        f["message"].as_str().unwrap(),
        &prepared.headers["bt_header_dendrite_signature"],
    )
    .unwrap();
    // The body carries the same fields as the SDK's model_dump.
    let body: Value = serde_json::from_slice(&prepared.body).unwrap();
    for (k, v) in f["body"].as_object().unwrap() {
        if ["total_size", "header_size", "dendrite"].contains(&k.as_str()) {
            continue;
        }
        assert_eq!(&body[k], v, "{k}");
    }
    for k in ["ip", "version", "nonce", "uuid", "hotkey"] {
        assert_eq!(
            body["dendrite"][k], f["body"]["dendrite"][k],
            "dendrite.{k}"
        );
    }
}

#[test]
fn dendrite_to_gate_over_loopback_with_a_signed_answer() {
    let validator = Hotkey::from_seed(&[0x11; 32]);
    let miner = Hotkey::from_seed(&[0x22; 32]);
    let metagraph = Arc::new(Metagraph::new());
    metagraph.replace(vec![Neuron {
        uid: 3,
        hotkey: validator.ss58.clone(),
        validator_permit: true,
        stake: 5000.0,
    }]);
    let gate = Arc::new(
        Gate::new("ignored", &IMAGE_ROUTES, Box::new(metagraph.clone())).with_signer(miner.clone()),
    );
    assert_eq!(gate.axon_hotkey, miner.ss58);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let handler: sv_axon::server::Handler = Arc::new(move |s, caller| {
        *seen2.lock().unwrap() = Some(caller.clone());
        s.set_prediction(0.75);
        Ok(())
    });
    let running = sv_axon::server::serve(
        "127.0.0.1:0",
        gate,
        handler,
        sv_axon::server::system_clock(),
        2,
    )
    .unwrap();
    let target = Target {
        ip: "127.0.0.1".into(),
        port: running.addr.port(),
        hotkey: miner.ss58.clone(),
    };
    let dendrite = Dendrite::new(validator.clone());
    let mut fields = Map::new();
    fields.insert("image".into(), Value::from("aGVsbG8="));
    let answer = dendrite.call("ImageSynapse", fields.clone(), &target, 5.0);
    assert_eq!(answer.status, 200, "{:?}", answer.message);
    assert_eq!(answer.prediction(), Some(0.75));
    let caller = seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        (caller.hotkey.as_str(), caller.stake),
        (validator.ss58.as_str(), 5000.0)
    );
    // The axon signed "{axon_nonce}.{dendrite_hotkey}.{axon_hotkey}.{axon_uuid}".
    let a = &answer.axon;
    let message = format!(
        "{}.{}.{}.{}",
        a.nonce.unwrap(),
        validator.ss58,
        miner.ss58,
        a.uuid.clone().unwrap()
    );
    verify_signature(&miner.ss58, &message, a.signature.as_deref().unwrap()).unwrap();
    assert_eq!(a.status_code, Some(200));
    // The refresh drops the permit: 403 from then on.
    metagraph.replace(vec![Neuron {
        uid: 3,
        hotkey: validator.ss58.clone(),
        validator_permit: false,
        stake: 5000.0,
    }]);
    let answer = dendrite.call("ImageSynapse", fields.clone(), &target, 5.0);
    assert_eq!(answer.status, 403, "{:?}", answer.message);
    // Addressed to another axon: the signature does not verify here.
    let other = Target {
        hotkey: validator.ss58.clone(),
        ..target.clone()
    };
    metagraph.replace(vec![Neuron {
        uid: 3,
        hotkey: validator.ss58.clone(),
        validator_permit: true,
        stake: 1.0,
    }]);
    assert_eq!(
        dendrite.call("ImageSynapse", fields, &other, 5.0).status,
        401
    );
    running.shutdown();
}

#[test]
fn allowlist_and_snapshot_files() {
    let dir = tempfile::tempdir().unwrap();
    let v = Hotkey::from_seed(&[0x11; 32]).ss58;
    let w = Hotkey::from_seed(&[0x33; 32]).ss58;
    let path = dir.path().join("validators.txt");
    std::fs::write(
        &path,
        format!("# validators\n{v} 120.5\n\n{w}   # no stake\n"),
    )
    .unwrap();
    let list = read_allowlist(&path).unwrap();
    assert_eq!(
        list.access(&v),
        Access::Registered {
            permit: true,
            stake: 120.5
        }
    );
    assert_eq!(
        list.access(&w),
        Access::Registered {
            permit: true,
            stake: 0.0
        }
    );
    assert_eq!(
        list.access("5Fpfx4iDtrrY99VGkQnLXASytC2y9Z3o8KUyTtD4w7o5SZcA"),
        Access::Unknown
    );
    std::fs::write(&path, format!("{v}\nnot-an-address\n")).unwrap();
    let err = read_allowlist(&path).unwrap_err().to_string();
    assert!(err.contains("validators.txt:2"), "{err}");
    std::fs::write(&path, format!("{v} lots\n")).unwrap();
    assert!(
        read_allowlist(&path)
            .unwrap_err()
            .to_string()
            .contains(":1:")
    );

    let snap = dir.path().join("metagraph.json");
    let neurons = vec![Neuron {
        uid: 1,
        hotkey: v.clone(),
        validator_permit: false,
        stake: 2.0,
    }];
    std::fs::write(&snap, serde_json::to_vec(&neurons).unwrap()).unwrap();
    let m = Metagraph::new();
    m.replace(Metagraph::read_snapshot(&snap).unwrap());
    assert_eq!(
        m.access(&v),
        Access::Registered {
            permit: false,
            stake: 2.0
        }
    );
    std::fs::write(
        &snap,
        br#"[{"uid": 1, "hotkey": "x", "validator_permit": true, "stake": 1}]"#,
    )
    .unwrap();
    assert!(
        Metagraph::read_snapshot(&snap)
            .unwrap_err()
            .to_string()
            .contains("uid 1")
    );
}
