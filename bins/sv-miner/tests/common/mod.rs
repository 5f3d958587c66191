//! A real `sv-miner serve` process for the tests: start it on loopback ports with a
//! config, find its addresses, read its metrics, signal and stop it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sv_axon::dendrite::Target;
use sv_axon::keys::Hotkey;
use sv_tests::{fixture, read_expected};

/// The validator key the miners allow (the SDK fixture's seed 0x11…).
pub fn validator() -> Hotkey {
    Hotkey::from_seed(&[0x11; 32])
}

pub fn wallets() -> PathBuf {
    fixture("axon/wallets")
}

/// The miner's key: the SDK-written `fixture/phrase` hotkey.
pub fn miner_key() -> Hotkey {
    Hotkey::from_wallet(&wallets(), "fixture", "phrase").unwrap()
}

/// The reference ensemble of `tests/ensemble.rs` (`shared` or `mixed` processors).
pub fn ensemble_json(tag: &str) -> Value {
    let cnx = match tag {
        "shared" => "dinov2/hub/preprocessor_config.json",
        _ => "preprocess/convnext384.preprocessor_config.json",
    };
    let member = |name: &str, ckpt: &str, pre: &str, t: f64| serde_json::json!({"name": name, "checkpoint": fixture(ckpt), "preprocessor": fixture(pre), "temperature": t});
    serde_json::json!({"members": [
        member("dinov2", "dinov2/hf_mlp.safetensors", "dinov2/hub/preprocessor_config.json", 1.5),
        member("convnext", "convnext/hf_cls.safetensors", cnx, 0.7),
    ]})
}

/// `dir/model/ensemble.json` holding the `tag` reference ensemble; returns the directory.
pub fn ensemble_dir(dir: &Path, tag: &str) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    write_atomic(
        &model.join("ensemble.json"),
        &serde_json::to_vec(&ensemble_json(tag)).unwrap(),
    );
    model
}

pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

pub struct MinerProcess {
    pub child: Child,
    pub axon: SocketAddr,
    pub metrics: SocketAddr,
    pub log: Arc<Mutex<String>>,
    /// The miner's hotkey (SS58).
    pub hotkey: String,
}

impl MinerProcess {
    /// Start `sv-miner serve` with `extra` config lines (the model dir, callers, ports 0).
    pub fn start(dir: &Path, extra: &str) -> Self {
        Self::start_as(dir, "phrase", extra)
    }

    /// Start `sv-miner serve` with the fixture wallet's hotkey `hotkey`.
    pub fn start_as(dir: &Path, hotkey: &str, extra: &str) -> Self {
        Self::start_with(dir, hotkey, extra, |_| {})
    }

    /// Start `sv-miner serve`, letting `configure` adjust the command first.
    pub fn start_with(
        dir: &Path,
        hotkey: &str,
        extra: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let config = dir.join("miner.toml");
        std::fs::write(
            &config,
            format!(
                "host = \"127.0.0.1\"\naxon_port = 0\nmetrics_port = 0\nwallet_name = \"fixture\"\nwallet_hotkey = {hotkey:?}\nwallet_path = {:?}\nlog_dir = {:?}\nwatch_seconds = 1\nmax_wait_ms = 20\n{extra}",
                wallets(),
                dir.join("log"),
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sv-miner"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("MINER_AXON_PORT")
            .env_remove("BLACKLIST_FORCE_VALIDATOR_PERMIT")
            .env_remove("SUBTENSOR_CHAIN_ENDPOINT")
            .env_remove("NETUID")
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the miner did not start:\n{}", log.lock().unwrap());
            };
            if let Some(rest) = line.strip_prefix("sv-miner: serving") {
                let addr = |after: &str| -> SocketAddr {
                    let tail = rest.split(after).nth(1).unwrap().trim_start();
                    tail.split([' ', ';']).next().unwrap().parse().unwrap()
                };
                let (axon, metrics) = (addr(" on "), addr("metrics on"));
                return Self {
                    child,
                    axon,
                    metrics,
                    log,
                    hotkey: Hotkey::from_wallet(&wallets(), "fixture", hotkey)
                        .unwrap()
                        .ss58,
                };
            }
        }
    }

    pub fn target(&self) -> Target {
        Target {
            ip: "127.0.0.1".into(),
            port: self.axon.port(),
            hotkey: self.hotkey.clone(),
        }
    }

    pub fn get(&self, path: &str) -> String {
        ureq::get(&format!("http://{}{path}", self.metrics))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(line_prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    /// The process's resident memory in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for MinerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn image_fields(bytes: &[u8]) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(
        "image".into(),
        Value::from(sv_serve::payload::encode(bytes)),
    );
    fields.insert("prediction".into(), Value::from(-1.0));
    fields.insert("testnet_label".into(), Value::from(-1));
    fields
}

pub fn photos() -> Vec<Vec<u8>> {
    ["images/chelsea.png", "images/camera_grey.png"]
        .iter()
        .map(|p| std::fs::read(fixture(p)).unwrap())
        .collect()
}

pub fn reference(tag: &str) -> Vec<f32> {
    read_expected("ensemble/expected.safetensors")[&format!("{tag}.combined")]
        .data
        .clone()
}

pub fn allowlist(dir: &Path) -> PathBuf {
    let path = dir.join("validators.txt");
    std::fs::write(&path, format!("{} 1000\n", validator().ss58)).unwrap();
    path
}

/// The key of the chain fixture's neuron `uid` (its seed is in the fixture).
pub fn seeded(f: &sv_tests::chain_node::ChainFixture, uid: usize) -> Hotkey {
    let hotkey = f.json["metagraph"][uid]["hotkey"].as_str().unwrap();
    let seed = f.json["seeds"][hotkey].as_str().unwrap();
    let bytes: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let key = Hotkey::from_seed(&bytes);
    assert_eq!(key.ss58, hotkey);
    key
}

/// Wait until the miner's `metric` reaches `value` (two minutes at most).
pub fn wait_for_metric(miner: &MinerProcess, metric: &str, value: f64) {
    let start = Instant::now();
    while miner.metric(metric) < value {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{metric} stayed at {}",
            miner.metric(metric)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
