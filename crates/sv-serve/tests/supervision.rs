//! The miner's supervision path: `/healthz` tells the truth about a stopped axon
//! listener, `check` starts it again on the same port, and when it cannot,
//! `wait_for_termination` returns the error that makes `sv-miner serve` exit non-zero.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sv_axon::Hotkey;
use sv_serve::config::MinerConfig;
use sv_serve::miner::Miner;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// A plain GET: (status, body), or None when the connection is refused or cut.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let status = reply.get(9..12)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The axon answers HTTP at all (any status; an unknown route is 404).
fn axon_answers(addr: SocketAddr) -> bool {
    get(addr, "/nothing-here").is_some()
}

fn start(dir: &Path) -> Miner {
    let allowlist = dir.join("allowlist.txt");
    std::fs::write(&allowlist, Hotkey::from_seed(&[0x11; 32]).ss58 + "\n").unwrap();
    let config = MinerConfig {
        host: "127.0.0.1".into(),
        axon_port: 0,
        metrics_port: 0,
        allowlist: Some(allowlist),
        model: Some(fixture("convnext/hf_cls.safetensors").display().to_string()),
        log_dir: dir.join("log"),
        ..MinerConfig::default()
    };
    Miner::start_with_key(&config, Hotkey::from_seed(&[0x22; 32])).unwrap()
}

#[test]
fn a_stopped_listener_fails_the_health_check_and_is_started_again_on_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let miner = start(dir.path());
    let health = miner.metrics_addr.unwrap();
    assert_eq!(get(health, "/healthz").unwrap().0, 200);
    assert!(axon_answers(miner.axon_addr));
    miner.stop_axon_listener();
    let (status, body) = get(health, "/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"axon_listening\":false"), "{body}");
    assert!(!axon_answers(miner.axon_addr));
    miner.check().unwrap();
    assert!(axon_answers(miner.axon_addr));
    assert_eq!(get(health, "/healthz").unwrap().0, 200);
    miner.shutdown();
}

#[test]
fn a_listener_that_cannot_be_restarted_ends_wait_for_termination_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let miner = start(dir.path());
    let port = miner.axon_addr;
    miner.stop_axon_listener();
    // Another process takes the port before the miner can.
    let _squatter = TcpListener::bind(port).unwrap();
    let t0 = Instant::now();
    let err = miner.wait_for_termination().unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert!(err.to_string().contains(&port.port().to_string()), "{err}");
    miner.shutdown();
}
