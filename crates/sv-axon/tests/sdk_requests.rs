//! Requests signed by the real Bittensor SDK (`bittensor==9.12.2`'s `Dendrite`, written by
//! `tools/gen_axon_fixtures.py`): the message rebuilt from the headers, the signature, the
//! `<Bytes>` form, the body hash and the SS58 keys must all agree with what the SDK did,
//! and any change to the signed fields must fail.

use serde_json::Value;
use sv_axon::ss58;
use sv_axon::verify::{body_hash, signing_message, verify_signature};

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/axon/requests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn sdk_signed_request_verifies_and_tampering_does_not() {
    let f = fixture();
    let h = &f["headers"];
    let get = |k: &str| h[k].as_str().unwrap().to_string();
    let nonce: u64 = get("bt_header_dendrite_nonce").parse().unwrap();
    let hotkey = get("bt_header_dendrite_hotkey");
    let axon = get("bt_header_axon_hotkey");
    let uuid = get("bt_header_dendrite_uuid");
    let hash = get("computed_body_hash");
    assert_eq!(
        hash,
        body_hash(&[]),
        "no required hash fields in this subnet"
    );
    assert_eq!(hash, f["body_hash"].as_str().unwrap());
    let message = signing_message(nonce, &hotkey, &axon, &uuid, &hash);
    assert_eq!(message, f["message"].as_str().unwrap());
    let sig = get("bt_header_dendrite_signature");
    verify_signature(&hotkey, &message, &sig).unwrap();
    verify_signature(
        &hotkey,
        &message,
        f["signature_bytes_wrapped"].as_str().unwrap(),
    )
    .unwrap();

    let forged = [
        signing_message(nonce + 1, &hotkey, &axon, &uuid, &hash),
        signing_message(nonce, &hotkey, &hotkey, &uuid, &hash),
        signing_message(nonce, &hotkey, &axon, "other-uuid", &hash),
    ];
    for m in &forged {
        assert!(verify_signature(&hotkey, m, &sig).is_err(), "{m}");
    }
    // The miner's key did not sign it.
    assert!(verify_signature(&axon, &message, &sig).is_err());
    assert!(verify_signature(&hotkey, &message, "0x1234").is_err());
}

#[test]
fn ss58_keys_equal_the_sdk_keypairs() {
    let f = fixture();
    for who in ["validator", "miner"] {
        let address = f[who]["ss58"].as_str().unwrap();
        let (key, prefix) = ss58::decode(address).unwrap();
        assert_eq!(prefix, 42);
        assert_eq!(
            hex::encode(key),
            f[who]["public"].as_str().unwrap(),
            "{who}"
        );
        assert_eq!(ss58::encode(&key, 42), address);
    }
}
