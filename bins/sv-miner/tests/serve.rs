//! `sv-miner serve` as a real process on loopback, called by our dendrite: answers equal the
//! reference pipeline (transformers, `tests/fixtures/ensemble`) under concurrent load, bad
//! images are refused before the model, the prediction log and metrics record what was
//! answered, a model swap under load fails no request, and a deadline that cannot be met
//! is answered with an error.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Map, Value};
use sv_axon::dendrite::{Answer, Dendrite};
use sv_axon::keys::Hotkey;
use sv_tests::fixture;

#[test]
fn concurrent_answers_equal_the_reference_and_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            "model = {:?}\nallowlist = {:?}\nmax_batch = 4\n",
            model,
            allowlist(dir.path())
        ),
    );
    let want = reference("mixed");
    let photos = photos();
    let target = miner.target();
    // 6 validators' dendrites × 4 requests each, all at once.
    let answers: Vec<(usize, Answer)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                let (photos, target) = (&photos, &target);
                s.spawn(move || {
                    let d = Dendrite::new(validator());
                    (0..4)
                        .map(|i| {
                            let which = (t + i) % 2;
                            let a =
                                d.call("ImageSynapse", image_fields(&photos[which]), target, 30.0);
                            (which, a)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for (which, a) in &answers {
        assert_eq!(
            a.status,
            200,
            "{:?}\n{}",
            a.message,
            miner.log.lock().unwrap()
        );
        let p = a.prediction().unwrap() as f32;
        assert!(
            (p - want[*which]).abs() <= 1e-4,
            "image {which}: {p} vs {}",
            want[*which]
        );
        assert_eq!(a.axon.status_code, Some(200));
    }
    // The older route answers too.
    let d = Dendrite::new(validator());
    let a = d.call(
        "ExtendedImageSynapse",
        image_fields(&photos[0]),
        &target,
        30.0,
    );
    assert_eq!(a.status, 200, "{:?}", a.message);

    // Bad images: 400, never reaching the model or the log.
    let mut huge = Vec::new();
    image::RgbImage::new(5000, 4000)
        .write_to(
            &mut std::io::Cursor::new(&mut huge),
            image::ImageFormat::Png,
        )
        .unwrap();
    let truncated = &photos[0][..photos[0].len() / 2];
    let bad: Vec<Map<String, Value>> = vec![
        image_fields(b"GIF89a not allowed"),
        image_fields(truncated),
        image_fields(&huge),
        {
            let mut f = Map::new();
            f.insert("image".into(), Value::from("%%% not base64"));
            f
        },
        Map::new(),
    ];
    for fields in bad {
        let a = d.call("ImageSynapse", fields, &target, 30.0);
        assert_eq!(a.status, 400, "{:?}", a.message);
        assert!(a.prediction().is_none());
    }
    // An unknown hotkey: 403.
    let stranger = Dendrite::new(Hotkey::from_seed(&[0x44; 32]));
    assert_eq!(
        stranger
            .call("ImageSynapse", image_fields(&photos[0]), &target, 30.0)
            .status,
        403
    );

    assert_eq!(
        miner.metric("sv_miner_requests_total{outcome=\"answered\""),
        25.0
    );
    assert_eq!(
        miner.metric("sv_miner_requests_total{outcome=\"bad_request\""),
        5.0
    );
    assert_eq!(
        miner.metric("sv_miner_requests_total{outcome=\"blacklisted\""),
        1.0
    );
    assert_eq!(miner.metric("sv_miner_batch_size_sum"), 25.0);
    let health: Value = serde_json::from_str(&miner.get("/healthz")).unwrap();
    assert_eq!(health["status"], "ok");
    let version = health["model_version"].as_str().unwrap().to_string();

    let log_dir = dir.path().join("log");
    assert!(miner.stop().success());
    // The log: one line per answer, with the image hash and the answer.
    let text = std::fs::read_to_string(log_dir.join("predictions.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 25);
    let hashes: Vec<String> = photos
        .iter()
        .map(|p| {
            use sha2::Digest;
            sv_serve::payload::hex(&sha2::Sha256::digest(p))
        })
        .collect();
    for l in &lines {
        let which = hashes
            .iter()
            .position(|h| h == l["image_sha256"].as_str().unwrap())
            .expect("a sent image");
        let p = l["prediction"].as_f64().unwrap() as f32;
        assert!((p - want[which]).abs() <= 1e-4);
        assert_eq!(l["validator"], validator().ss58.as_str());
        assert_eq!(l["model_version"], version.as_str());
    }
}

#[test]
fn a_model_swap_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    let ensemble = model.join("ensemble.json");
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            "model = {:?}\nallowlist = {:?}\n",
            model,
            allowlist(dir.path())
        ),
    );
    let (mixed, shared) = (reference("mixed")[0], reference("shared")[0]);
    let photo = photos().swap_remove(0);
    let target = miner.target();
    let stop = AtomicBool::new(false);
    let seen_shared = AtomicBool::new(false);
    let answers = std::thread::scope(|s| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let d = Dendrite::new(validator());
                    let mut out = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let a = d.call("ImageSynapse", image_fields(&photo), &target, 30.0);
                        if a.prediction()
                            .is_some_and(|p| ((p as f32) - shared).abs() <= 1e-4)
                        {
                            seen_shared.store(true, Ordering::SeqCst);
                        }
                        out.push(a);
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        // A broken model file first: the old model keeps serving.
        write_atomic(&ensemble, b"{\"members\": 3}");
        let t0 = Instant::now();
        while miner.metric("sv_miner_model_swap_failures_total") < 1.0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no failed swap seen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Then the new model.
        write_atomic(
            &ensemble,
            &serde_json::to_vec(&ensemble_json("shared")).unwrap(),
        );
        let t0 = Instant::now();
        while !seen_shared.load(Ordering::SeqCst) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the new model never answered:\n{}",
                miner.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect::<Vec<Answer>>()
    });
    assert!(answers.len() >= 6, "{} answers", answers.len());
    for a in &answers {
        assert_eq!(a.status, 200, "{:?}", a.message);
        let p = a.prediction().unwrap() as f32;
        assert!(
            (p - mixed).abs() <= 1e-4 || (p - shared).abs() <= 1e-4,
            "{p} is neither model's answer"
        );
    }
    assert_eq!(miner.metric("sv_miner_model_swaps_total"), 1.0);
    // SIGHUP reloads too.
    miner.signal("-HUP");
    let t0 = Instant::now();
    while miner.metric("sv_miner_model_swaps_total") < 2.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(miner.stop().success());
}

/// The model's age comes from its card's `submission_time` and is exported in days.
#[test]
fn the_model_age_is_a_gauge_in_days() {
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        model.join("model_card.json"),
        serde_json::json!({"version": "1.0", "submission_time": now - 61 * 86_400}).to_string(),
    )
    .unwrap();
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            "model = {:?}\nallowlist = {:?}\n",
            model,
            allowlist(dir.path())
        ),
    );
    let days = miner.metric("sv_miner_model_age_days");
    assert!((61.0..61.1).contains(&days), "{days}");
    let seconds = miner.metric("sv_miner_model_age_seconds");
    assert!(
        (days * 86_400.0 - seconds).abs() < 100.0,
        "{days} {seconds}"
    );
}

#[test]
fn a_deadline_that_cannot_be_met_is_an_error_not_a_late_answer() {
    let dir = tempfile::tempdir().unwrap();
    let miner = MinerProcess::start(
        dir.path(),
        &format!(
            // The timeout is clamped to at least 1 s: a 1.5 s margin leaves nothing.
            "model = {:?}\nallowlist = {:?}\ndeadline_margin_ms = 1500\n",
            fixture("convnext/hf_cls.safetensors"),
            allowlist(dir.path())
        ),
    );
    let d = Dendrite::new(validator());
    let photo = photos().swap_remove(0);
    let a = d.call("ImageSynapse", image_fields(&photo), &miner.target(), 0.3);
    assert_eq!(a.status, 408, "{:?}", a.message);
    assert!(a.prediction().is_none());
    let a = d.call("ImageSynapse", image_fields(&photo), &miner.target(), 30.0);
    assert_eq!(a.status, 200, "{:?}", a.message);
    assert_eq!(
        miner.metric("sv_miner_requests_total{outcome=\"late\""),
        1.0
    );
}

#[test]
fn bad_configs_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sv-miner"))
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "axon_prot = 1\n").unwrap();
    let err = run(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert!(
        err.contains("bad.toml") && err.contains("axon_prot"),
        "{err}"
    );
    let err = run(
        &["serve", "--model", "x/y"],
        &[("MINER_AXON_PORT", "eighty")],
    );
    assert!(err.contains("MINER_AXON_PORT"), "{err}");
    let err = run(&["serve", "--model", "x/y"], &[]);
    assert!(
        err.contains("allowlist") && err.contains("chain_endpoint"),
        "{err}"
    );
    // Chain mode must know the public address it announces.
    let err = run(
        &["serve", "--model", "x/y"],
        &[("SUBTENSOR_CHAIN_ENDPOINT", "ws://127.0.0.1:9")],
    );
    assert!(err.contains("external_ip"), "{err}");
    let err = run(
        &["serve", "--model", "x/y", "--external-ip", "somewhere"],
        &[("SUBTENSOR_CHAIN_ENDPOINT", "ws://127.0.0.1:9")],
    );
    assert!(err.contains("\"somewhere\" is not an IP address"), "{err}");
    // An unreachable chain is named.
    let model = ensemble_dir(dir.path(), "mixed");
    let wallets = wallets();
    let err = run(
        &[
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--no-serve-axon",
            "--wallet-path",
            wallets.to_str().unwrap(),
            "--wallet-name",
            "fixture",
            "--wallet-hotkey",
            "seeded",
        ],
        &[("SUBTENSOR_CHAIN_ENDPOINT", "ws://127.0.0.1:9")],
    );
    assert!(err.contains("ws://127.0.0.1:9"), "{err}");
}
