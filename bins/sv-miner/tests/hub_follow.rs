//! The Hub as the deploy channel: `sv-miner serve --model hf://ORG/NAME` as a real
//! process follows the repository's `main` on a loopback Hub, swaps in a new commit
//! once it loads and answers, and refuses a broken commit while the model in service
//! keeps answering.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use sv_axon::dendrite::Dendrite;
use sv_tests::{MovingHub, fixture};

const REPO: &str = "streetvision/roadwork";

fn repo(model: &str) -> HashMap<&'static str, PathBuf> {
    HashMap::from([
        (
            "config.json",
            fixture(&format!("dinov2/{model}.config.json")),
        ),
        (
            "model.safetensors",
            fixture(&format!("dinov2/{model}.safetensors")),
        ),
        (
            "preprocessor_config.json",
            fixture("dinov2/hub/preprocessor_config.json"),
        ),
    ])
}

#[test]
fn a_miner_follows_its_hub_branch_and_refuses_a_broken_commit() {
    let dir = tempfile::tempdir().unwrap();
    let hub = MovingHub::start(REPO);
    hub.publish(&"1".repeat(40), repo("hf_mlp"));
    let cache = dir.path().join("hub-cache");
    let miner = MinerProcess::start_with(
        dir.path(),
        "phrase",
        &format!(
            "model = \"hf://{REPO}\"\nallowlist = {:?}\nhub_poll_seconds = 1\n",
            allowlist(dir.path())
        ),
        |c| {
            c.env("HF_ENDPOINT", &hub.endpoint)
                .env("HF_HUB_CACHE", &cache)
                .env_remove("HF_HUB_OFFLINE")
                .env_remove("HF_TOKEN");
        },
    );
    let photo = photos().swap_remove(0);
    let dendrite = Dendrite::new(validator());
    let answer = || {
        let a = dendrite.call("ImageSynapse", image_fields(&photo), &miner.target(), 30.0);
        assert_eq!(a.status, 200, "{:?}", a.message);
        a.prediction().unwrap()
    };
    let first = answer();

    // A new commit on main: loaded, smoke-checked and swapped in.
    hub.publish(&"2".repeat(40), repo("hf_swiglu"));
    wait_for_metric(&miner, "sv_miner_model_swaps_total", 1.0);
    let second = answer();
    assert_ne!(first, second, "the new commit answers");

    // A broken commit (its config is not JSON): refused, the second keeps serving.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b"not json").unwrap();
    let mut bad = repo("hf_swiglu");
    bad.insert("config.json", broken);
    hub.publish(&"3".repeat(40), bad);
    wait_for_metric(&miner, "sv_miner_model_swap_failures_total", 1.0);
    assert_eq!(answer(), second);
    // Refused once, not retried every poll.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(miner.metric("sv_miner_model_swap_failures_total"), 1.0);
    assert_eq!(miner.metric("sv_miner_model_swaps_total"), 1.0);
}
