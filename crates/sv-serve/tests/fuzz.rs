//! Property tests over what a stranger controls: request bodies and headers through the
//! axon's gate, and challenge payloads through the image checks. Nothing may panic, every
//! refusal carries one of the SDK's status codes, and only valid JPEG/PNG images pass.
//! Each property runs `CASES` inputs (docs/benchmarks.md records the totals).

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;
use sv_axon::gate::{Allowlist, Gate};
use sv_axon::synapse::IMAGE_ROUTES;
use sv_serve::payload::{Limits, decode, encode};

const CASES: u32 = 10_000;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

fn gate() -> Gate {
    let validator = sv_axon::Hotkey::from_seed(&[0x11; 32]).ss58;
    let mut g = Gate::new(
        &sv_axon::Hotkey::from_seed(&[0x22; 32]).ss58,
        &IMAGE_ROUTES,
        Box::new(Allowlist([(validator, 1.0)].into_iter().collect())),
    );
    g.max_body = 64 << 10;
    g
}

/// JSON-like text: nesting, strings, numbers, and the synapse's own keys.
fn jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v}")),
        "[a-zA-Z0-9+/=\\\\\"]{0,40}".prop_map(|s| format!("\"{s}\"")),
    ];
    leaf.prop_recursive(8, 256, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("image".to_string()),
                        Just("dendrite".to_string()),
                        Just("axon".to_string()),
                        Just("timeout".to_string()),
                        Just("prediction".to_string()),
                        "[a-z_]{1,12}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| format!(
                "{{{}}}",
                kv.iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ]
    })
}

fn headers() -> impl Strategy<Value = HashMap<String, String>> {
    let keys = prop_oneof![
        Just("bt_header_dendrite_hotkey".to_string()),
        Just("bt_header_dendrite_nonce".to_string()),
        Just("bt_header_dendrite_uuid".to_string()),
        Just("bt_header_dendrite_signature".to_string()),
        Just("computed_body_hash".to_string()),
        Just("timeout".to_string()),
        "[a-z_]{1,20}",
    ];
    let values = prop_oneof![
        Just(sv_axon::Hotkey::from_seed(&[0x11; 32]).ss58),
        Just(sv_axon::verify::body_hash(&[])),
        "0x[0-9a-f]{0,130}",
        "[0-9]{0,22}",
        "-?[0-9.e+]{0,12}",
        ".{0,40}",
    ];
    prop::collection::hash_map(keys, values, 0..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn the_gate_refuses_garbage_without_panicking(
        route in prop_oneof![Just("ImageSynapse".to_string()), "[A-Za-z]{0,20}"],
        body in prop_oneof![jsonish().prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..512)],
        headers in headers(),
        now in any::<u64>(),
    ) {
        let reply = gate().process(&route, &headers, &body, now, |_, _| {
            panic!("an unsigned request reached the handler")
        });
        prop_assert!([400, 401, 403, 404].contains(&reply.status), "status {}", reply.status);
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        prop_assert!(v["message"].is_string());
    }

    #[test]
    fn random_payloads_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048), raw in ".{0,64}") {
        prop_assert!(decode(&encode(&bytes), &Limits::default()).is_err() || bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.starts_with(b"\x89PNG"));
        let _ = decode(&raw, &Limits::default());
    }

    #[test]
    fn damaged_images_never_panic(
        which in 0usize..2,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = if which == 0 { small_jpeg() } else { small_png() };
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(c) = decode(&encode(&bytes), &Limits { max_pixels: 1 << 20, ..Limits::default() }) {
            prop_assert!(c.image.width() > 0 && c.image.height() > 0);
            prop_assert!(u64::from(c.image.width()) * u64::from(c.image.height()) <= 1 << 20);
        }
    }
}

fn small_jpeg() -> Vec<u8> {
    thread_local!(static J: Vec<u8> = {
        let img = image::load_from_memory(&fixture("images/chelsea_q90.jpg")).unwrap().to_rgb8();
        let small = image::imageops::thumbnail(&img, 64, 48);
        sv_augment::ops::jpeg_encode(&small, 75).unwrap()
    });
    J.with(Clone::clone)
}

fn small_png() -> Vec<u8> {
    thread_local!(static P: Vec<u8> = {
        let img = image::load_from_memory(&fixture("images/chelsea.png")).unwrap();
        let mut out = Vec::new();
        img.thumbnail(48, 32).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    });
    P.with(Clone::clone)
}

#[test]
fn valid_challenges_pass_and_oversized_ones_do_not() {
    let jpeg = small_jpeg();
    let c = decode(&encode(&jpeg), &Limits::default()).unwrap();
    assert_eq!((c.image.width(), c.image.height()), (64, 48));
    let err = decode(
        &encode(&jpeg),
        &Limits {
            max_pixels: 100,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("JPEG"), "{err}");
    assert!(
        decode(&encode(b"GIF89a...."), &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("not a JPEG or PNG")
    );
    assert!(
        decode("", &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
}
