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

mod gate {
    use std::collections::HashMap;

    use sv_axon::gate::{Allowlist, Gate};
    use sv_axon::synapse::IMAGE_ROUTES;

    fn request() -> (HashMap<String, String>, Vec<u8>, u64, String, String) {
        let f = super::fixture();
        let headers: HashMap<String, String> = f["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let body = serde_json::to_vec(&f["body"]).unwrap();
        let nonce: u64 = headers["bt_header_dendrite_nonce"].parse().unwrap();
        let validator = f["validator"]["ss58"].as_str().unwrap().to_string();
        let miner = f["miner"]["ss58"].as_str().unwrap().to_string();
        (headers, body, nonce, validator, miner)
    }

    fn gate(miner: &str, allowed: &[&str]) -> Gate {
        let list = Allowlist(allowed.iter().map(|h| (h.to_string(), 1000.0)).collect());
        Gate::new(miner, &IMAGE_ROUTES, Box::new(list))
    }

    #[test]
    fn the_sdk_request_is_answered_with_the_sdk_status_headers() {
        let (headers, body, nonce, validator, miner) = request();
        let g = gate(&miner, &[&validator]);
        let reply = g.process(
            "ImageSynapse",
            &headers,
            &body,
            nonce + 1_000_000,
            |s, _| {
                assert_eq!(s.image_synapse().unwrap().image, "aGVsbG8=");
                s.set_prediction(0.75);
                Ok(())
            },
        );
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.headers["bt_header_axon_status_code"], "200");
        assert_eq!(reply.headers["bt_header_axon_status_message"], "Success");
        assert!(reply.headers.contains_key("bt_header_axon_process_time"));
        let echoed: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(echoed["prediction"], 0.75);
        assert_eq!(echoed["testnet_label"], -1, "unknown fields are echoed");
        assert_eq!(reply.stake, Some(1000.0));

        // The same request again: a replayed nonce.
        let again = g.process(
            "ImageSynapse",
            &headers,
            &body,
            nonce + 2_000_000,
            |_, _| Ok(()),
        );
        assert_eq!(again.status, 401);
    }

    /// The `timeout` header is outside the signature: a non-number is refused without a
    /// panic, and a raised one does not let a request captured 20 s ago be replayed.
    #[test]
    fn an_unsigned_timeout_header_neither_panics_nor_widens_the_replay_window() {
        let (headers, body, nonce, validator, miner) = request();
        let ok = |_: &mut sv_axon::synapse::Synapse, _: &sv_axon::gate::Caller| Ok(());
        for bad in ["nan", "inf", "-inf", "1e400", "-3", "soon"] {
            let mut h = headers.clone();
            h.insert("timeout".into(), bad.into());
            let r = gate(&miner, &[&validator]).process("ImageSynapse", &h, &body, nonce, ok);
            assert_eq!(r.status, 400, "timeout {bad}");
        }
        let twenty_s = 20_000_000_000;
        for raised in ["3600", "1e300"] {
            let mut h = headers.clone();
            h.insert("timeout".into(), raised.into());
            let r = gate(&miner, &[&validator]).process(
                "ImageSynapse",
                &h,
                &body,
                nonce + twenty_s,
                ok,
            );
            assert_eq!(r.status, 401, "timeout {raised} widened the window");
        }
    }

    #[test]
    fn strangers_forgeries_stale_and_future_nonces_are_refused() {
        let (headers, body, nonce, validator, miner) = request();
        let ok = |_: &mut sv_axon::synapse::Synapse, _: &sv_axon::gate::Caller| Ok(());
        // Unknown hotkey: 403.
        let r = gate(&miner, &[]).process("ImageSynapse", &headers, &body, nonce, ok);
        assert_eq!(r.status, 403);
        // Addressed to another axon (the signature covers the axon's hotkey): 401.
        let r = gate(&validator, &[&validator]).process("ImageSynapse", &headers, &body, nonce, ok);
        assert_eq!(r.status, 401);
        // A forged signature: 401.
        let mut forged = headers.clone();
        forged.insert(
            "bt_header_dendrite_signature".into(),
            format!("0x{}", "00".repeat(64)),
        );
        let r = gate(&miner, &[&validator]).process("ImageSynapse", &forged, &body, nonce, ok);
        assert_eq!(r.status, 401);
        // Stale (a minute later) and future (a minute earlier) nonces: 401.
        let minute = 60_000_000_000;
        let r = gate(&miner, &[&validator]).process(
            "ImageSynapse",
            &headers,
            &body,
            nonce + minute,
            ok,
        );
        assert_eq!(r.status, 401);
        let r = gate(&miner, &[&validator]).process(
            "ImageSynapse",
            &headers,
            &body,
            nonce - minute,
            ok,
        );
        assert_eq!(r.status, 401);
        // Unknown route: 404; oversized and nesting-bomb bodies: 400.
        let r = gate(&miner, &[&validator]).process("Other", &headers, &body, nonce, ok);
        assert_eq!(r.status, 404);
        let mut g = gate(&miner, &[&validator]);
        g.max_body = 100;
        assert_eq!(
            g.process("ImageSynapse", &headers, &body, nonce, ok).status,
            400
        );
        let bomb = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = gate(&miner, &[&validator]).process(
            "ImageSynapse",
            &headers,
            bomb.as_bytes(),
            nonce,
            ok,
        );
        assert_eq!(r.status, 400);
        let msg: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(msg["message"].as_str().unwrap().contains("not a synapse"));
    }
}

mod http {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;

    use sv_axon::gate::{Allowlist, Gate};
    use sv_axon::server::serve;
    use sv_axon::synapse::IMAGE_ROUTES;

    /// Send a raw HTTP/1.1 POST and return (status, headers, body).
    fn post(
        addr: std::net::SocketAddr,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut req = format!(
            "POST /{path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let hs = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        (status, hs, raw[split + 4..].to_vec())
    }

    #[test]
    fn the_sdk_request_over_http_gets_the_prediction_and_status_headers() {
        let f = super::fixture();
        let headers: Vec<(String, String)> = f["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let nonce: u64 = f["headers"]["bt_header_dendrite_nonce"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let validator = f["validator"]["ss58"].as_str().unwrap();
        let miner = f["miner"]["ss58"].as_str().unwrap();
        let list = Allowlist([(validator.to_string(), 1.0)].into_iter().collect());
        let gate = Arc::new(Gate::new(miner, &IMAGE_ROUTES, Box::new(list)));
        let handler: sv_axon::server::Handler = Arc::new(|s, _| {
            s.set_prediction(0.25);
            Ok(())
        });
        let running = serve(
            "127.0.0.1:0",
            gate,
            handler,
            Arc::new(move || nonce + 1_000_000),
            2,
        )
        .unwrap();
        let body = serde_json::to_vec(&f["body"]).unwrap();
        let (status, hs, reply) = post(running.addr, "ImageSynapse", &headers, &body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        let get = |k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("bt_header_axon_status_code").as_deref(), Some("200"));
        let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(v["prediction"], 0.25);
        // The replay over HTTP: 401 with a JSON message.
        let (status, _, reply) = post(running.addr, "ImageSynapse", &headers, &body);
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&reply));
        let (status, _, _) = post(running.addr, "Nope", &headers, &body);
        assert_eq!(status, 404);
        running.shutdown();
    }
}

#[test]
fn the_sdk_body_reads_as_the_subnets_typed_synapses() {
    use sv_axon::synapse::{ExtendedImageSynapse, ImageSynapse, Synapse};
    let f = fixture();
    let s: Synapse = serde_json::from_value(f["body"].clone()).unwrap();
    assert_eq!(
        s.image_synapse().unwrap(),
        ImageSynapse {
            image: "aGVsbG8=".into(),
            prediction: -1.0,
            testnet_label: -1
        }
    );
    // The older route's fields, and an unknown one kept for the echo.
    let mut body = f["body"].clone();
    body["model_url"] = "owner/model".into();
    body["explanation"] = "cones".into();
    body["future_field"] = serde_json::json!({"x": 1});
    let s: Synapse = serde_json::from_value(body).unwrap();
    let e: ExtendedImageSynapse = s.fields_as().unwrap();
    assert_eq!(
        (e.model_url.as_str(), e.explanation.as_str()),
        ("owner/model", "cones")
    );
    assert_eq!(e.base.image, "aGVsbG8=");
    let echoed = serde_json::to_value(&s).unwrap();
    assert_eq!(echoed["future_field"]["x"], 1);
    // A field of the wrong type is named.
    let mut body = f["body"].clone();
    body["image"] = 5.into();
    let s: Synapse = serde_json::from_value(body).unwrap();
    let err = s.image_synapse().unwrap_err().to_string();
    assert!(err.contains("synapse fields"), "{err}");
}
