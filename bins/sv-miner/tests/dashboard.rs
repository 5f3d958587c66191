//! The miner's dashboard in a real browser: a `sv-miner serve` process in chain mode
//! (against the loopback subtensor node) with a known history (labelled challenges
//! answered through the axon, a model 50 days old, an improvement loop whose last cycle
//! kept production) is loaded by headless Chromium.
//! The test asserts on the DOM Chromium built, checks that the browser logged no
//! console error (a thumbnail that failed to load would be one), and keeps Chromium's
//! screenshot as `<target>/tmp/dashboard.png`.
//!
//! Chromium comes from Debian's `chromium` package (`.ci/run` installs it); `SV_CHROMIUM`
//! names another binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sv_axon::dendrite::Dendrite;
use sv_tests::chain_node::{ChainFixture, ChainNode};
use sv_tests::tiny_repo_files;

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("SV_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "no Chromium: install Debian's `chromium` package (apt-get install chromium), as .ci/run does, or set SV_CHROMIUM"
    );
}

/// Run headless Chromium on `url` with `extra` arguments; (stdout, stderr).
fn browse(profile: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "chromium failed: {stderr}");
    (stdout, stderr)
}

/// The text inside the element with `id` in `dom`.
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let open = at + dom[at..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    &dom[open..close]
}

/// A model export 50 days old: the tiny DINOv2 classifier with a card.
fn old_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for (name, file) in tiny_repo_files() {
        std::fs::copy(file, model.join(name)).unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let card = serde_json::json!({"model_name": "roadwork-owl", "description": "d",
        "version": "1.4.0", "submitted_by": miner_key().ss58,
        "submission_time": now - 50 * 86_400});
    std::fs::write(model.join("model_card.json"), card.to_string()).unwrap();
    model
}

/// A loop work folder whose production came from cycle 2 and whose cycle 3 kept it.
fn loop_dir(dir: &Path) -> PathBuf {
    use sv_loop::journal::Entry;
    use sv_loop::{Journal, Outcome, Production, Step};
    let work = dir.join("loop");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let production = Production {
        run: work.join("cycles/0002/run"),
        export: Some(work.join("cycles/0002/export")),
        repo: Some("streetvision/roadwork-owl".into()),
        commit: Some("a09b5b1d3919c3036cd674d6505e5c68985127fc".into()),
        submission_time: Some(now - 50 * 86_400),
        cycle: Some(2),
    };
    std::fs::create_dir_all(work.join("cycles/0003")).unwrap();
    std::fs::write(
        work.join("production.json"),
        serde_json::to_vec(&production).unwrap(),
    )
    .unwrap();
    // The gate's report, computed by the gate itself on answers where the candidate is
    // worse.
    let answers = |wrong_every: usize| -> Vec<(f64, bool)> {
        (0..200)
            .map(|i| {
                let y = i % 2 == 0;
                let right = i % wrong_every != 0;
                (if y == right { 0.9 } else { 0.1 }, y)
            })
            .collect()
    };
    let sets = [sv_train::gate::ScoredSet {
        name: "held-out/validator".into(),
        validator_style: true,
        candidate: answers(4),
        production: answers(8),
    }];
    let report = sv_train::gate::reward_gate(&sets, Some(50.0), &Default::default()).unwrap();
    assert!(!report.pass);
    std::fs::write(
        work.join("cycles/0003/gate.json"),
        serde_json::to_vec(&report).unwrap(),
    )
    .unwrap();
    let steps = Step::ALL[..8]
        .iter()
        .map(|s| Entry {
            step: *s,
            finished: now - 3600,
            note: format!("{s} done"),
        })
        .collect();
    let journal = Journal {
        cycle: 3,
        started: now - 7200,
        production: production.run.clone(),
        production_age_days: Some(50.0),
        steps,
        outcome: Some(Outcome::Kept {
            reason: report.reason.clone(),
        }),
    };
    journal.save(&work.join("cycles/0003")).unwrap();
    work
}

#[test]
fn the_dashboard_shows_every_panel_with_data_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = old_model(d);
    let work = loop_dir(d);
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    let miner = MinerProcess::start_as(
        d,
        "seeded",
        &format!(
            "model = {model:?}\nstore_images = true\nloop_dir = {work:?}\n\
             chain_endpoint = {:?}\nexternal_ip = \"203.0.113.9\"\nexternal_port = 8091\n\
             metagraph_refresh_seconds = 1\nlog_requests = true\n",
            node.url()
        ),
    );
    let validator = seeded(&f, 0);

    // A known history: 12 images, each sent labelled roadwork and then labelled not,
    // so that one of the two answers on each is wrong; and one refused request.
    let images: Vec<Vec<u8>> = sv_data::synthetic::generate(&d.join("scenes"), 10, 96, 5)
        .unwrap()
        .iter()
        .map(|s| match &s.location {
            sv_data::Location::File { path } => std::fs::read(path).unwrap(),
            other => panic!("{other:?}"),
        })
        .chain(photos())
        .collect();
    let dendrite = Dendrite::new(validator.clone());
    for label in [1, 0] {
        for bytes in &images {
            let mut fields = image_fields(bytes);
            fields.insert("testnet_label".into(), label.into());
            let a = dendrite.call("ImageSynapse", fields, &miner.target(), 30.0);
            assert_eq!(a.status, 200, "{:?}", a.message);
        }
    }
    let stranger = Dendrite::new(sv_axon::keys::Hotkey::from_seed(&[0x42; 32]));
    let refused = stranger.call(
        "ImageSynapse",
        image_fields(&images[0]),
        &miner.target(),
        30.0,
    );
    assert_eq!(refused.status, 403);
    let answered = 2 * images.len();
    // One log line per request, and the process's own figures beside the miner's.
    let log = miner.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("sv-miner: request answered (200) from ")
            .count(),
        answered,
        "{log}"
    );
    assert!(log.contains("sv-miner: request blacklisted (403) from unattributed"));
    assert!(miner.metric("process_resident_memory_bytes") > 1e6);
    assert!(miner.metric("process_open_fds") >= 3.0);

    let url = format!("http://{}/dashboard", miner.metrics);
    let profile = d.join("chromium-profile");
    let (dom, log) = browse(&profile, &url, &["--dump-dom"]);

    // Model: version, age and its warning band, with a banner.
    assert!(by_id(&dom, "model-version").contains("1.4.0"), "{dom}");
    assert!(dom.contains("id=\"model-age\" data-warning=\"past-45\""));
    assert!(by_id(&dom, "banner-age").contains("past 45"));
    // Requests per validator and outcome.
    assert_eq!(by_id(&dom, "answered-total"), answered.to_string());
    assert_eq!(by_id(&dom, "requests-total"), (answered + 1).to_string());
    let row = &dom[dom
        .find(&format!("data-hotkey=\"{}\"", validator.ss58))
        .expect("the validator's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("data-outcome=\"answered\">{answered}<")),
        "{row}"
    );
    assert!(dom.contains("data-outcome=\"blacklisted\">1<"));
    // Latency and batches, the distribution of answers.
    assert!(dom.contains("id=\"latency-chart\"") && dom.contains("id=\"batch-chart\""));
    assert!(by_id(&dom, "latency-p99").parse::<f64>().unwrap() > 0.0);
    assert_eq!(by_id(&dom, "answers-total"), answered.to_string());
    let bins: u64 = dom
        .match_indices("class=\"bin\" data-count=\"")
        .map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            rest[..rest.find('"').unwrap()].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(bins, answered as u64);
    // Wrong answers with their thumbnails, served from the log's stored images.
    let wrong = dom.matches("class=\"failure\" data-kind=\"wrong\"").count();
    assert!(wrong >= 1, "{dom}");
    let thumb = dom.find("src=\"/dashboard/image/").expect("a thumbnail");
    let src = &dom[thumb + 5..];
    let src = &src[..src.find('"').unwrap()];
    let image = ureq::get(&format!("http://{}{src}", miner.metrics))
        .call()
        .unwrap();
    assert!(image.content_type().starts_with("image/"));
    assert_eq!(
        ureq::get(&format!(
            "http://{}/dashboard/image/..%2F..%2Fetc",
            miner.metrics
        ))
        .call()
        .unwrap_err()
        .into_response()
        .map(|r| r.status()),
        Some(404)
    );
    // The loop: production, the last cycle's outcome and gate margins.
    assert!(by_id(&dom, "loop-production").contains("streetvision/roadwork-owl @ a09b5b1d39"));
    assert!(dom.contains("id=\"loop-outcome\" data-state=\"kept\""));
    assert!(
        by_id(&dom, "loop-gate").starts_with("keep: reward -"),
        "{dom}"
    );
    assert!(by_id(&dom, "loop-last").starts_with("3, started"));
    // The chain link: connected, registered as uid 3, the axon announced and served.
    assert_eq!(by_id(&dom, "chain-connected"), "yes");
    assert_eq!(by_id(&dom, "chain-registered"), "yes");
    assert_eq!(by_id(&dom, "chain-uid"), "3");
    assert_eq!(by_id(&dom, "chain-axon"), "203.0.113.9:8091 (served: yes)");
    let block = by_id(&dom, "chain-block");
    let number: u64 = block["block ".len()..block.find(',').unwrap()]
        .parse()
        .unwrap();
    assert!(
        number >= f.json["block"]["number"].as_u64().unwrap(),
        "{block}"
    );
    assert!(block.contains(", 5 neurons, read "), "{block}");
    assert!(!dom.contains("id=\"banner-deregistered\""));

    // The browser logged no console error (a missing thumbnail would be one).
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "{console:?}");

    // The screenshot, kept for a look.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1700",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    assert!(miner.stop().success());
}
