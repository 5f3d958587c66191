//! The miner's configuration: defaults, then a TOML file (unknown keys refused by name),
//! then the environment (the subnet's `miner.env` names), then command-line flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ServeError;

/// Everything `sv-miner serve` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Subnet (`NETUID`).
    pub netuid: u16,
    /// Wallet name (`WALLET_NAME`).
    pub wallet_name: String,
    /// Hotkey name (`WALLET_HOTKEY`).
    pub wallet_hotkey: String,
    /// Wallets directory (`BT_WALLET_PATH`; default `~/.bittensor/wallets`).
    pub wallet_path: Option<PathBuf>,
    /// Address to listen on.
    pub host: String,
    /// Axon port (`MINER_AXON_PORT`).
    pub axon_port: u16,
    /// Serve `/metrics` and `/healthz`.
    pub metrics: bool,
    /// Their port (0: any free port).
    pub metrics_port: u16,
    /// Address the metrics listener (`/metrics`, `/healthz`, the dashboard) binds:
    /// loopback unless asked, since it shows the miner's log and state.
    pub metrics_host: String,
    /// The improvement loop's `work_dir`, when it is on this host: the dashboard shows
    /// its journal.
    pub loop_dir: Option<PathBuf>,
    /// One line per request on standard error (outcome, status, caller, time).
    pub log_requests: bool,
    /// Refuse callers without a validator permit (`BLACKLIST_FORCE_VALIDATOR_PERMIT`).
    pub force_validator_permit: bool,
    /// Subtensor endpoint (`SUBTENSOR_CHAIN_ENDPOINT`): chain mode — check registration,
    /// serve the axon on chain, refresh the metagraph for blacklist and priority.
    pub chain_endpoint: Option<String>,
    /// Chain mode: the public IP validators reach the axon at (announced with
    /// `serve_axon`).
    pub external_ip: Option<String>,
    /// Chain mode: the public port (default: `axon_port`), for a port-forwarding setup.
    pub external_port: Option<u16>,
    /// Chain mode: announce the axon with `serve_axon` at start (skipped when the chain
    /// already holds the same endpoint).
    pub serve_axon: bool,
    /// Chain mode: seconds between metagraph refreshes.
    pub metagraph_refresh_seconds: u64,
    /// Offline mode: a file of validator hotkeys (one per line, optional stake).
    pub allowlist: Option<PathBuf>,
    /// A metagraph snapshot (JSON list of uid, hotkey, validator_permit, stake), re-read
    /// when it changes.
    pub metagraph: Option<PathBuf>,
    /// The model: an export directory, ensemble file, checkpoint, or `owner/name[@rev]`.
    pub model: Option<String>,
    /// Device: `cpu`, `cuda[:N]`, `vulkan[:N]` or `wgpu` (GPU backends need their build
    /// feature).
    pub device: String,
    /// What the networks compute in: `f32`, `bf16` or `f16` (answers are f32 either
    /// way; half precision is for GPUs, where it is faster).
    pub precision: sv_models::Precision,
    /// Most images per forward pass.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch (ms). At 0 a batch is what
    /// queued while the previous one ran: no wait when idle, full batches under load.
    pub max_wait_ms: u64,
    /// Answer this long before the caller's timeout runs out (ms).
    pub deadline_margin_ms: u64,
    /// Requests verified and answered at once (handler threads).
    pub http_workers: usize,
    /// Open axon connections in all; over it a new connection is closed at once.
    pub max_connections: usize,
    /// Open axon connections from one IP address.
    pub max_connections_per_peer: usize,
    /// Close a connection that has not sent a complete request head this long after
    /// connecting or after its last answer (ms): idle keep-alive and slow headers.
    pub idle_timeout_ms: u64,
    /// Longest a request body may take to arrive (ms).
    pub body_timeout_ms: u64,
    /// Largest request head: request line and headers (bytes).
    pub max_header_bytes: usize,
    /// Largest request body (bytes).
    pub max_body_bytes: usize,
    /// Largest challenge image (pixels).
    pub max_pixels: u64,
    /// Largest ratio of a challenge image's long side to its short side.
    pub max_aspect_ratio: u32,
    /// Prediction log directory.
    pub log_dir: PathBuf,
    /// Rotate the log at this size (bytes).
    pub log_max_bytes: u64,
    /// Rotated log files kept.
    pub log_keep: usize,
    /// Store each challenge image by hash beside the log.
    pub store_images: bool,
    /// Reload the model when its files change (seconds between checks; 0: off).
    pub watch_seconds: u64,
    /// For a Hugging Face model (`hf://ORG/NAME`, or `ORG/NAME[@BRANCH]`), ask the Hub
    /// for the branch's commit every this many seconds and swap in a new commit once it
    /// loads and answers a smoke image (0: off; a pinned commit is never followed).
    pub hub_poll_seconds: u64,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            netuid: 72,
            wallet_name: "default".into(),
            wallet_hotkey: "default".into(),
            wallet_path: None,
            host: "0.0.0.0".into(),
            axon_port: 8091,
            metrics: true,
            metrics_port: 9091,
            force_validator_permit: true,
            chain_endpoint: None,
            external_ip: None,
            external_port: None,
            serve_axon: true,
            metagraph_refresh_seconds: 120,
            allowlist: None,
            metagraph: None,
            model: None,
            device: "cpu".into(),
            precision: sv_models::Precision::F32,
            max_batch: 8,
            max_wait_ms: 0,
            deadline_margin_ms: 500,
            http_workers: 32,
            max_connections: 1024,
            max_connections_per_peer: 64,
            idle_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            max_header_bytes: 16 << 10,
            max_body_bytes: 4 << 20,
            max_pixels: 4096 * 4096,
            max_aspect_ratio: 32,
            log_dir: PathBuf::from("miner-log"),
            metrics_host: "127.0.0.1".into(),
            loop_dir: None,
            log_requests: false,
            log_max_bytes: 64 << 20,
            log_keep: 20,
            store_images: false,
            watch_seconds: 2,
            hub_poll_seconds: 300,
        }
    }
}

/// The environment variables read, in the subnet's `miner.env` names.
pub const ENV_NAMES: [&str; 9] = [
    "NETUID",
    "WALLET_NAME",
    "WALLET_HOTKEY",
    "MINER_AXON_PORT",
    "BLACKLIST_FORCE_VALIDATOR_PERMIT",
    "SUBTENSOR_CHAIN_ENDPOINT",
    "BT_WALLET_PATH",
    "SUBTENSOR_NETWORK",
    "MODEL_URL",
];

/// The model source of a `MODEL_URL`: `https://huggingface.co/ORG/NAME` (with an
/// optional `/tree/REV`) or `ORG/NAME` becomes `hf://ORG/NAME[@REV]`; a local path is
/// kept as it is.
fn model_from_url(url: &str) -> Option<String> {
    let u = url.trim().trim_end_matches('/');
    let id = u
        .strip_prefix("https://huggingface.co/")
        .or_else(|| u.strip_prefix("http://huggingface.co/"))
        .or_else(|| u.strip_prefix("hf://"));
    let Some(id) = id else {
        if u.starts_with('/') || u.starts_with('.') {
            return Some(u.to_string());
        }
        let parts: Vec<&str> = u.split('/').collect();
        return (parts.len() == 2 && parts.iter().all(|p| !p.is_empty()))
            .then(|| format!("hf://{u}"));
    };
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        [org, name] if !org.is_empty() && !name.is_empty() => Some(format!("hf://{org}/{name}")),
        [org, name, "tree", rev] if !org.is_empty() && !name.is_empty() => {
            Some(format!("hf://{org}/{name}@{rev}"))
        }
        _ => None,
    }
}

impl MinerConfig {
    /// Defaults overlaid with `file` (TOML) when given.
    pub fn load(file: Option<&Path>) -> Result<Self, ServeError> {
        let Some(path) = file else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::io(path, e))?;
        toml::from_str(&text).map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
    }

    /// Overlay the environment (`get` reads a variable); a value that does not parse is an
    /// error naming the variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ServeError> {
        let bad = |name: &str, v: &str, what: &str| {
            ServeError::Config(format!("environment {name}={v:?} is not {what}"))
        };
        if let Some(v) = get("NETUID") {
            self.netuid = v
                .trim()
                .parse()
                .map_err(|_| bad("NETUID", &v, "a subnet id"))?;
        }
        if let Some(v) = get("WALLET_NAME") {
            self.wallet_name = v;
        }
        if let Some(v) = get("WALLET_HOTKEY") {
            self.wallet_hotkey = v;
        }
        if let Some(v) = get("MINER_AXON_PORT") {
            self.axon_port = v
                .trim()
                .parse()
                .map_err(|_| bad("MINER_AXON_PORT", &v, "a port"))?;
        }
        if let Some(v) = get("BLACKLIST_FORCE_VALIDATOR_PERMIT") {
            self.force_validator_permit = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(bad("BLACKLIST_FORCE_VALIDATOR_PERMIT", &v, "true or false")),
            };
        }
        if let Some(v) = get("SUBTENSOR_CHAIN_ENDPOINT") {
            self.chain_endpoint = Some(v);
        } else if let Some(v) = get("SUBTENSOR_NETWORK") {
            // As the SDK maps `--subtensor.network`; an explicit endpoint wins.
            self.chain_endpoint = Some(sv_chain::network_endpoint(&v).ok_or_else(|| {
                bad(
                    "SUBTENSOR_NETWORK",
                    &v,
                    "finney, test, archive, local, subvortex, latent-lite or a ws:// URL",
                )
            })?);
        }
        if let Some(v) = get("MODEL_URL")
            && self.model.is_none()
        {
            // The base miner's model: a Hugging Face URL or id, followed on its branch.
            self.model = Some(model_from_url(&v).ok_or_else(|| {
                bad(
                    "MODEL_URL",
                    &v,
                    "a Hugging Face model (https://huggingface.co/ORG/NAME or ORG/NAME)",
                )
            })?);
        }
        if let Some(v) = get("BT_WALLET_PATH") {
            self.wallet_path = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// Check the values that cannot work.
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |m: &str| Err(ServeError::Config(m.to_string()));
        if self.model.is_none() {
            return bad(
                "no model: set `model` (an export directory, ensemble file, checkpoint or owner/name)",
            );
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1");
        }
        if self.http_workers == 0 {
            return bad("http_workers must be at least 1");
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 {
            return bad("max_connections and max_connections_per_peer must be at least 1");
        }
        if self.idle_timeout_ms == 0 || self.body_timeout_ms == 0 {
            return bad("idle_timeout_ms and body_timeout_ms must be at least 1");
        }
        if self.max_header_bytes < 1024 {
            return bad("max_header_bytes must be at least 1024");
        }
        if self.max_aspect_ratio == 0 {
            return bad("max_aspect_ratio must be at least 1");
        }
        let sources = [
            self.allowlist.is_some(),
            self.metagraph.is_some(),
            self.chain_endpoint.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => {
                return bad(
                    "no callers: give `chain_endpoint` (SUBTENSOR_CHAIN_ENDPOINT; the metagraph from the chain), `allowlist` (a file of validator hotkeys) or `metagraph` (a snapshot file)",
                );
            }
            1 => {}
            _ => {
                return bad(
                    "give one source of callers: `chain_endpoint` (SUBTENSOR_CHAIN_ENDPOINT), `allowlist` or `metagraph`",
                );
            }
        }
        if self.chain_endpoint.is_some() {
            if self.metagraph_refresh_seconds == 0 {
                return bad("metagraph_refresh_seconds must be at least 1");
            }
            if self.serve_axon {
                let Some(ip) = &self.external_ip else {
                    return bad(
                        "chain mode serves the axon on chain: give `external_ip` (--external-ip, the public address validators reach) or set `serve_axon = false`",
                    );
                };
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return bad(&format!("external_ip {ip:?} is not an IP address"));
                }
            }
        }
        Ok(())
    }

    /// The axon listener's limits.
    pub fn http_limits(&self) -> sv_axon::http::HttpLimits {
        use std::time::Duration;
        sv_axon::http::HttpLimits {
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            max_header_bytes: self.max_header_bytes,
            max_body: self.max_body_bytes,
            handler_threads: self.http_workers,
            ..sv_axon::http::HttpLimits::default()
        }
    }

    /// The wallets directory in use.
    pub fn wallets_dir(&self) -> PathBuf {
        self.wallet_path
            .clone()
            .unwrap_or_else(sv_axon::keys::default_wallets_dir)
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<MinerConfig, ServeError> {
        let mut c = MinerConfig::default();
        c.apply_env(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })?;
        Ok(c)
    }

    #[test]
    fn subtensor_network_maps_as_the_sdk_and_an_endpoint_wins() {
        let c = with(&[("SUBTENSOR_NETWORK", "test")]).unwrap();
        assert_eq!(
            c.chain_endpoint.as_deref(),
            Some("wss://test.finney.opentensor.ai:443")
        );
        let c = with(&[
            ("SUBTENSOR_NETWORK", "finney"),
            ("SUBTENSOR_CHAIN_ENDPOINT", "ws://10.0.0.2:9944"),
        ])
        .unwrap();
        assert_eq!(c.chain_endpoint.as_deref(), Some("ws://10.0.0.2:9944"));
        let e = with(&[("SUBTENSOR_NETWORK", "mainnet")]).unwrap_err();
        assert!(e.to_string().contains("SUBTENSOR_NETWORK"), "{e}");
    }

    #[test]
    fn model_url_names_the_model_unless_one_is_set() {
        for (url, model) in [
            ("https://huggingface.co/org/roadwork", "hf://org/roadwork"),
            ("https://huggingface.co/org/roadwork/", "hf://org/roadwork"),
            (
                "https://huggingface.co/org/roadwork/tree/v2",
                "hf://org/roadwork@v2",
            ),
            ("org/roadwork", "hf://org/roadwork"),
            ("/srv/model", "/srv/model"),
        ] {
            let c = with(&[("MODEL_URL", url)]).unwrap();
            assert_eq!(c.model.as_deref(), Some(model), "{url}");
        }
        assert!(with(&[("MODEL_URL", "https://example.com/x")]).is_err());
        let mut c = MinerConfig {
            model: Some("export".into()),
            ..MinerConfig::default()
        };
        c.apply_env(|k| (k == "MODEL_URL").then(|| "org/other".to_string()))
            .unwrap();
        assert_eq!(c.model.as_deref(), Some("export"));
    }
}
