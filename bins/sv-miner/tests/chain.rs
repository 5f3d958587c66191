//! `sv-miner serve` in chain mode and `sv-miner register`, as real processes against the
//! loopback subtensor node (`sv_tests::chain_node`: Bittensor mainnet metadata, storage
//! encoded by the Python substrate stack). What they submit is decoded by that Python
//! stack and compared with its own encoding of the call.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sv_axon::dendrite::Dendrite;
use sv_axon::keys::Hotkey;
use sv_tests::chain_node::{ChainFixture, ChainNode, python_decode};

fn wait_for(miner: &MinerProcess, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the miner said:\n{}",
            miner.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chain_mode_serves_the_axon_follows_the_metagraph_and_outlives_the_chain() {
    let f = ChainFixture::load("mainnet");
    let mut node = ChainNode::start(f.clone());
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    let serve = &f.json["calls"]["serve_axon"]["args"];
    let miner = MinerProcess::start_as(
        dir.path(),
        "seeded",
        &format!(
            "model = {model:?}\nchain_endpoint = {:?}\nexternal_ip = \"203.0.113.9\"\nexternal_port = {}\nmetagraph_refresh_seconds = 1\n",
            node.url(),
            serve["port"]
        ),
    );
    // serve_axon went out once, hotkey-signed, equal to the Python encoding.
    let sent = node.submitted();
    assert_eq!(sent.len(), 1, "{}", miner.log.lock().unwrap());
    let decoded = python_decode("mainnet", &sent[0]);
    assert_eq!(decoded["call_hex"], f.json["calls"]["serve_axon"]["hex"]);
    assert_eq!(decoded["address"], miner.hotkey.as_str());
    assert!(
        miner.log.lock().unwrap().contains("is uid 3 on subnet 72"),
        "{}",
        miner.log.lock().unwrap()
    );
    assert_eq!(miner.metric("sv_miner_chain_connected"), 1.0);
    assert_eq!(miner.metric("sv_miner_metagraph_neurons"), 5.0);

    // Blacklist from the chain's metagraph: a validator with a permit is answered, a
    // registered neuron without one and an unknown key are refused.
    let photo = &photos()[0];
    let target = miner.target();
    let ask =
        |key: Hotkey| Dendrite::new(key).call("ImageSynapse", image_fields(photo), &target, 30.0);
    let answered = ask(seeded(&f, 0));
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(ask(seeded(&f, 4)).status, 403);
    assert_eq!(ask(Hotkey::from_seed(&[0x99; 32])).status, 403);

    // The chain goes away: the miner says so and keeps serving on the last metagraph.
    node.stop();
    wait_for(&miner, "sv_miner_chain_connected 0", || {
        miner.metric("sv_miner_chain_connected") == 0.0
    });
    assert!(miner.metric("sv_miner_chain_errors_total") >= 1.0);
    assert_eq!(ask(seeded(&f, 0)).status, 200);
    assert_eq!(ask(seeded(&f, 4)).status, 403);

    // It comes back: the miner reconnects (with backoff) and refreshes again.
    node.restart();
    wait_for(&miner, "sv_miner_chain_connected 1", || {
        miner.metric("sv_miner_chain_connected") == 1.0
    });
    assert!(miner.log.lock().unwrap().contains("reconnected"));
    assert_eq!(ask(seeded(&f, 1)).status, 200);
    assert!(miner.stop().success());
}

fn sv_miner(args: &[&str], endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sv-miner"));
    cmd.args(args)
        .arg("--wallet-path")
        .arg(wallets())
        .args(["--wallet-name", "fixture"])
        .env("SUBTENSOR_CHAIN_ENDPOINT", endpoint)
        .env_remove("NETUID")
        .env_remove("WALLET_NAME")
        .env_remove("WALLET_HOTKEY")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn chain_mode_refuses_an_unregistered_hotkey() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f);
    let dir = tempfile::tempdir().unwrap();
    let model = ensemble_dir(dir.path(), "mixed");
    let out = sv_miner(
        &[
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--host",
            "127.0.0.1",
            "--external-ip",
            "203.0.113.9",
            "--wallet-hotkey",
            "phrase",
        ],
        &node.url(),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not registered on subnet 72"), "{err}");
    assert!(err.contains("sv-miner register"), "{err}");
    assert!(node.submitted().is_empty());
}

#[test]
fn register_burns_once_with_the_coldkey_and_reports_the_uid() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    let password = "correct horse battery";

    // Without --yes and without a terminal, nothing is spent (and the coldkey stays shut).
    let out = sv_miner(&["register", "--wallet-hotkey", "phrase"], &node.url())
        .env_remove("SV_WALLET_PASSWORD")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("burning τ1.234567890"), "{text}");
    assert!(text.contains("balance τ5.000000001"), "{text}");
    assert!(err.contains("--yes"), "{err}");
    assert!(node.submitted().is_empty());

    // With --yes: one burned_register, signed by the coldkey, equal to Python's call.
    // The node has no `transactionWatch_v1` (as subtensor's runtime): the client falls
    // back to `author_submitAndWatchExtrinsic` without a line on standard error, even
    // with RUST_LOG asking for everything.
    let out = sv_miner(
        &["register", "--wallet-hotkey", "phrase", "--yes"],
        &node.url(),
    )
    .env("SV_WALLET_PASSWORD", password)
    .env("RUST_LOG", "trace")
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    assert!(err.trim().is_empty(), "{err}");
    assert!(text.contains("registered as uid 5"), "{text}");
    let sent = node.submitted();
    assert_eq!(sent.len(), 1);
    let decoded = python_decode("mainnet", &sent[0]);
    assert_eq!(
        decoded["call_hex"],
        f.json["calls"]["burned_register"]["hex"]
    );
    assert_eq!(decoded["address"], f.json["coldkey"]);

    // Registered already: nothing to burn.
    let out = sv_miner(
        &["register", "--wallet-hotkey", "seeded", "--yes"],
        &node.url(),
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("already registered on subnet 72 as uid 3"),
        "{text}"
    );
    assert_eq!(node.submitted().len(), 1);
}

/// Start a chain-mode miner as the fixture's uid 3, refreshing every second.
fn chain_miner(f: &ChainFixture, node: &ChainNode, dir: &std::path::Path) -> MinerProcess {
    let model = ensemble_dir(dir, "mixed");
    let serve = &f.json["calls"]["serve_axon"]["args"];
    MinerProcess::start_as(
        dir,
        "seeded",
        &format!(
            "model = {model:?}\nchain_endpoint = {:?}\nexternal_ip = \"203.0.113.9\"\nexternal_port = {}\nmetagraph_refresh_seconds = 1\n",
            node.url(),
            serve["port"]
        ),
    )
}

#[test]
fn a_refused_serve_axon_at_start_is_retried_while_the_miner_serves() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    // The chain refuses the first serve_axon (as its serving rate limit does).
    node.fail_next();
    let dir = tempfile::tempdir().unwrap();
    let miner = chain_miner(&f, &node, dir.path());
    assert!(
        miner.log.lock().unwrap().contains("failed, serving anyway"),
        "{}",
        miner.log.lock().unwrap()
    );
    let answered = Dendrite::new(seeded(&f, 0)).call(
        "ImageSynapse",
        image_fields(&photos()[0]),
        &miner.target(),
        30.0,
    );
    assert_eq!(answered.status, 200, "the miner serves meanwhile");
    // Retried with backoff until the chain takes it.
    wait_for(&miner, "sv_miner_axon_served 1", || {
        miner.metric("sv_miner_axon_served") == 1.0
    });
    let sent = node.submitted();
    assert_eq!(sent.len(), 2);
    let decoded = python_decode("mainnet", &sent[1]);
    assert_eq!(decoded["call_hex"], f.json["calls"]["serve_axon"]["hex"]);
    assert!(miner.log.lock().unwrap().contains("served on chain"));
    assert!(miner.stop().success());
}

#[test]
fn a_deregistration_is_reported_and_a_new_registration_announces_the_axon_again() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    let dir = tempfile::tempdir().unwrap();
    let miner = chain_miner(&f, &node, dir.path());
    assert_eq!(node.submitted().len(), 1);
    assert_eq!(miner.metric("sv_miner_registered"), 1.0);

    // The uid is taken away (deregistered), with the axon the chain held for it.
    let me = sv_axon::ss58::decode(&miner.hotkey).unwrap().0;
    let removed = node.remove_storage(&f.uids_prefix(), &me);
    assert_eq!(removed.len(), 1, "the Uids entry of the miner's hotkey");
    let axon = node.remove_storage(&axons_prefix(&f), &me);
    assert_eq!(axon.len(), 1, "the Axons entry its serve_axon stored");
    wait_for(&miner, "sv_miner_registered 0", || {
        miner.metric("sv_miner_registered") == 0.0
    });
    assert!(miner.log.lock().unwrap().contains("no longer registered"));
    assert_eq!(miner.metric("sv_miner_axon_served"), 0.0);
    assert_eq!(
        node.submitted().len(),
        1,
        "nothing is announced while deregistered"
    );

    // Registered again: the axon is announced again, without a restart.
    node.insert_storage(removed);
    wait_for(&miner, "a second serve_axon", || {
        node.submitted().len() == 2
    });
    wait_for(&miner, "sv_miner_axon_served 1", || {
        miner.metric("sv_miner_axon_served") == 1.0
    });
    assert_eq!(miner.metric("sv_miner_registered"), 1.0);
    assert!(miner.log.lock().unwrap().contains("registered again"));
    let decoded = python_decode("mainnet", &node.submitted()[1]);
    assert_eq!(decoded["call_hex"], f.json["calls"]["serve_axon"]["hex"]);
    assert!(miner.stop().success());
}

/// The key prefix of `SubtensorModule.Axons`: the fixture's axon entries (82-byte keys
/// holding 34-byte `AxonInfo` values).
fn axons_prefix(f: &ChainFixture) -> Vec<u8> {
    f.json["storage"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (sv_tests::chain_node::unhex(k), v.as_str().unwrap().len()))
        .find(|(k, v)| k.len() == 82 && *v == 2 + 68)
        .map(|(k, _)| k[..32].to_vec())
        .expect("an Axons entry")
}

#[test]
fn an_axon_the_chain_holds_elsewhere_is_announced_again() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    let dir = tempfile::tempdir().unwrap();
    let miner = chain_miner(&f, &node, dir.path());
    assert_eq!(node.submitted().len(), 1);
    // Refreshes that find the chain holding our axon send nothing.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node.submitted().len(), 1, "{}", miner.log.lock().unwrap());

    // The chain now holds another address for the hotkey (an IP change elsewhere).
    let me = sv_axon::ss58::decode(&miner.hotkey).unwrap().0;
    assert!(sv_tests::chain_node::set_axon(
        &node,
        &me,
        [198, 51, 100, 7],
        8091
    ));
    wait_for(&miner, "a second serve_axon", || {
        node.submitted().len() == 2
    });
    assert!(
        miner
            .log
            .lock()
            .unwrap()
            .contains("the chain holds axon 198.51.100.7:8091"),
        "{}",
        miner.log.lock().unwrap()
    );
    let decoded = python_decode("mainnet", &node.submitted()[1]);
    assert_eq!(decoded["call_hex"], f.json["calls"]["serve_axon"]["hex"]);
    wait_for(&miner, "sv_miner_axon_served 1", || {
        miner.metric("sv_miner_axon_served") == 1.0
    });
    // Ours again on chain: no more announcements.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node.submitted().len(), 2);
    assert!(miner.stop().success());
}

#[test]
fn register_refuses_a_subnet_that_does_not_exist_before_signing() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f);
    let out = sv_miner(
        &[
            "register",
            "--wallet-hotkey",
            "phrase",
            "--yes",
            "--netuid",
            "99",
        ],
        &node.url(),
    )
    .env("SV_WALLET_PASSWORD", "correct horse battery")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("subnet 99 does not exist"), "{err}");
    assert!(node.submitted().is_empty());
}
