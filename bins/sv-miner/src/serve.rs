//! `sv-miner serve` and `sv-miner challenge`: flags onto sv-serve.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sv_axon::dendrite::Target;
use sv_serve::challenge::{ChallengeImage, ChallengeSettings, run};
use sv_serve::{Miner, MinerConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML config file (keys as in `MinerConfig`: model, chain_endpoint, external_ip,
    /// allowlist, metagraph, axon_port,
    /// metrics_port, max_batch, max_wait_ms, log_dir, store_images, …).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model: an export directory (`sv-trainer export`), ensemble file, checkpoint, or a
    /// Hugging Face repository `owner/name[@revision]`.
    #[arg(long)]
    model: Option<String>,
    /// Offline mode: file of validator hotkeys allowed to call (one per line, optional stake).
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Metagraph snapshot (JSON list of {uid, hotkey, validator_permit, stake}), re-read
    /// when it changes.
    #[arg(long, value_name = "FILE")]
    metagraph: Option<PathBuf>,
    /// Chain mode: subtensor endpoint (env SUBTENSOR_CHAIN_ENDPOINT; e.g.
    /// wss://entrypoint-finney.opentensor.ai:443). Checks the hotkey's registration,
    /// serves the axon on chain and refreshes the metagraph for blacklist and priority.
    #[arg(long, value_name = "URL")]
    chain_endpoint: Option<String>,
    /// Chain mode: the public IP validators reach this axon at.
    #[arg(long)]
    external_ip: Option<String>,
    /// Chain mode: the public port, when it differs from --port (port forwarding).
    #[arg(long)]
    external_port: Option<u16>,
    /// Chain mode: do not announce the axon with serve_axon.
    #[arg(long)]
    no_serve_axon: bool,
    /// Chain mode: the subnet (default 72; env NETUID).
    #[arg(long)]
    netuid: Option<u16>,
    /// Chain mode: seconds between metagraph refreshes (default 120).
    #[arg(long)]
    metagraph_refresh_seconds: Option<u64>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Axon port (default 8091; env MINER_AXON_PORT).
    #[arg(long)]
    port: Option<u16>,
    /// Port of /metrics, /healthz and the dashboard (default 9091).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Address the metrics listener binds (default 127.0.0.1: the dashboard shows the
    /// miner's log; give 0.0.0.0 to reach it from elsewhere).
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<String>,
    /// The improvement loop's work_dir, shown on the dashboard when on this host.
    #[arg(long, value_name = "DIR")]
    loop_dir: Option<PathBuf>,
    /// Wallet name (env WALLET_NAME).
    #[arg(long)]
    wallet_name: Option<String>,
    /// Hotkey name (env WALLET_HOTKEY).
    #[arg(long)]
    wallet_hotkey: Option<String>,
    /// Wallets directory (env BT_WALLET_PATH; default ~/.bittensor/wallets).
    #[arg(long)]
    wallet_path: Option<PathBuf>,
    /// Accept registered callers without a validator permit.
    #[arg(long)]
    no_permit_required: bool,
    /// Most images per forward pass (default 8).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest a request waits for a batch to fill, ms (default 0: a batch is what queued
    /// while the previous one ran).
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// Prediction log directory (default miner-log).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Store each challenge image by hash beside the log (for `sv-curator`).
    #[arg(long)]
    store_images: bool,
    /// One line per request on standard error (outcome, status, caller, time).
    #[arg(long)]
    log_requests: bool,
    /// Device: cpu, cuda or cuda:N, vulkan or vulkan:N, or wgpu (GPU backends need their
    /// build feature).
    #[arg(long)]
    device: Option<String>,
    /// What the networks compute in: f32, bf16 or f16 [default: f32]. Half precision is
    /// for GPUs; answers stay within about 0.03 (bf16) or 0.005 (f16) of f32's.
    #[arg(long)]
    precision: Option<sv_models::Precision>,
}

/// Resolve the layers: defaults < file < environment < flags.
fn resolve(args: &ServeArgs) -> Result<MinerConfig> {
    let mut c = MinerConfig::load(args.config.as_deref())?;
    c.apply_env(|k| std::env::var(k).ok())?;
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value.clone() {
                c.$field = v;
            }
        };
    }
    if args.model.is_some() {
        c.model = args.model.clone();
    }
    // A source of callers given as a flag replaces the others from file and environment.
    if args.allowlist.is_some() {
        c.allowlist = args.allowlist.clone();
        c.metagraph = None;
        c.chain_endpoint = None;
    }
    if args.metagraph.is_some() {
        c.metagraph = args.metagraph.clone();
        c.allowlist = None;
        c.chain_endpoint = None;
    }
    if args.chain_endpoint.is_some() {
        c.chain_endpoint = args.chain_endpoint.clone();
        c.allowlist = None;
        c.metagraph = None;
    }
    if args.external_ip.is_some() {
        c.external_ip = args.external_ip.clone();
    }
    if args.external_port.is_some() {
        c.external_port = args.external_port;
    }
    if args.no_serve_axon {
        c.serve_axon = false;
    }
    set!(metagraph_refresh_seconds, args.metagraph_refresh_seconds);
    set!(netuid, args.netuid);
    set!(metrics_host, args.metrics_bind);
    if args.loop_dir.is_some() {
        c.loop_dir = args.loop_dir.clone();
    }
    if args.wallet_path.is_some() {
        c.wallet_path = args.wallet_path.clone();
    }
    set!(host, args.host);
    set!(axon_port, args.port);
    set!(metrics_port, args.metrics_port);
    set!(wallet_name, args.wallet_name);
    set!(wallet_hotkey, args.wallet_hotkey);
    set!(max_batch, args.max_batch);
    set!(max_wait_ms, args.max_wait_ms);
    set!(log_dir, args.log_dir);
    set!(device, args.device);
    set!(precision, args.precision);
    if args.no_permit_required {
        c.force_validator_permit = false;
    }
    if args.log_requests {
        c.log_requests = true;
    }
    if args.store_images {
        c.store_images = true;
    }
    Ok(c)
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let config = resolve(&args)?;
    // The connection caps, not the default 1,024 descriptors, bound a connection flood.
    sv_axon::http::raise_fd_limit();
    let miner = Miner::start(&config).context("starting the miner")?;
    eprintln!(
        "sv-miner: serving netuid {} as {} on {} (model {}); metrics on {}; log in {}",
        config.netuid,
        miner.hotkey,
        miner.axon_addr,
        miner.model_version(),
        miner
            .metrics_addr
            .map_or_else(|| "(off)".to_string(), |a| a.to_string()),
        config.log_dir.display()
    );
    let outcome = miner.wait_for_termination();
    eprintln!("sv-miner: stopping");
    miner.shutdown();
    // Exit non-zero when the miner can no longer serve, so that its supervisor restarts it.
    outcome.context("the miner cannot serve any more")
}

#[derive(Args, Debug)]
pub struct ChallengeArgs {
    /// The miner's axon, host:port.
    #[arg(long, default_value = "127.0.0.1:8091")]
    miner: String,
    /// The miner's hotkey (SS58), signed into every request.
    #[arg(long)]
    miner_hotkey: String,
    /// Image folder with `roadwork/` and `no_roadwork/` (or `1/` and `0/`) at any depth.
    #[arg(
        long,
        conflicts_with = "manifest",
        required_unless_present = "manifest"
    )]
    folder: Option<PathBuf>,
    /// Or a manifest (JSON Lines) of labelled samples.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Only samples of this split: train, val or test (manifests carry splits).
    #[arg(long)]
    split: Option<String>,
    /// Challenge at most this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// The wallet whose hotkey signs (a validator's; the miner must allow it).
    #[command(flatten)]
    wallet: crate::wallet_args::ChallengerWalletArgs,
    /// Exit 1 when fewer than this fraction of the challenges were answered.
    #[arg(long, default_value_t = 0.9)]
    min_answered: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds the miner has per challenge (validators: 9).
    #[arg(long, default_value_t = 9.0)]
    timeout: f64,
    /// Seed of the augmentation draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Synapse route: ImageSynapse or ExtendedImageSynapse.
    #[arg(long, default_value = "ImageSynapse")]
    route: String,
    /// Write the full report (every exchange) as JSON here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the full report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write each challenge's label here (JSON Lines), keyed by the SHA-256 of the bytes
    /// sent, the id the miner logs: `sv-curator ingest --challenge-labels` and `mine
    /// --challenge-labels` join it to the miner's log to find its wrong answers.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
}

/// Challenge a miner; `false` when too few challenges were answered.
pub fn challenge(args: ChallengeArgs) -> Result<bool> {
    let hotkey = args.wallet.hotkey()?;
    sv_axon::ss58::decode(&args.miner_hotkey)
        .with_context(|| format!("--miner-hotkey {}", args.miner_hotkey))?;
    let (ip, port) = args
        .miner
        .rsplit_once(':')
        .with_context(|| format!("--miner {} is not host:port", args.miner))?;
    let target = Target {
        ip: ip.to_string(),
        port: port
            .parse()
            .with_context(|| format!("--miner {}: port", args.miner))?,
        hotkey: args.miner_hotkey.clone(),
    };
    let mut samples = if let Some(folder) = &args.folder {
        let (samples, skipped) = sv_data::read_folder(folder, &sv_data::FolderOptions::default())
            .with_context(|| format!("reading {}", folder.display()))?;
        if skipped.total() > 0 {
            eprintln!("skipped {} unreadable images", skipped.total());
        }
        samples
    } else {
        let path = args.manifest.as_ref().expect("clap requires one");
        sv_data::read_manifest(path).with_context(|| format!("reading {}", path.display()))?
    };
    samples.retain(|s| s.label.target().is_some());
    if let Some(split) = &args.split {
        samples.retain(|s| s.split.is_some_and(|sp| sp.as_str() == split));
    }
    if let Some(n) = args.limit {
        samples.truncate(n);
    }
    if samples.is_empty() {
        bail!("no labelled images to challenge with");
    }
    let settings = ChallengeSettings {
        route: args.route.clone(),
        timeout: args.timeout,
        seed: args.seed,
        concurrency: args.concurrency,
        ..ChallengeSettings::default()
    };
    let bar = ProgressBar::new(samples.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("challenges {bar:40} {pos}/{len} {elapsed_precise}")
            .expect("template")
            .progress_chars("=> "),
    );
    let images: Vec<Labelled> = samples.iter().map(Labelled).collect();
    let report = run(&images, &hotkey, &target, &settings, &|n| {
        bar.set_position(n as u64)
    });
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_challenge_summary(&report, &args);
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        sv_fs::atomic_write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.labels {
        let labels = report.labels();
        sv_records::labels::write_labels(path, &labels)?;
        println!(
            "{} challenge labels written to {}",
            labels.len(),
            path.display()
        );
    }
    let answered = report.answered as f64 / report.sent.max(1) as f64;
    if answered < args.min_answered {
        eprintln!(
            "sv-miner: {} of {} challenges answered, below --min-answered {}",
            report.answered, report.sent, args.min_answered
        );
        return Ok(false);
    }
    Ok(true)
}

/// The challenge report as text.
fn print_challenge_summary(report: &sv_serve::challenge::ChallengeReport, args: &ChallengeArgs) {
    println!(
        "{} challenges to {} ({}), {} answered",
        report.sent, args.miner, args.miner_hotkey, report.answered
    );
    for (status, n) in &report.failures {
        let what = if *status == 0 {
            "no response".to_string()
        } else {
            format!("status {status}")
        };
        let example = report
            .exchanges
            .iter()
            .find(|e| e.status == *status && e.prediction.is_none())
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        println!("  failed: {n} × {what} (e.g. {example})");
    }
    if let Some(r) = &report.scored {
        println!(
            "accuracy {:.4}  MCC {:.4}  ROC-AUC {}  (failures count as wrong)",
            r.accuracy,
            r.mcc,
            r.roc_auc.map_or("n/a".into(), |a| format!("{a:.4}"))
        );
        println!(
            "subnet reward: {:.4} over the whole run, {:.4} per answer on average (MCC of the last 100, accuracy of the last 10, cubed)",
            r.subnet_reward, report.mean_reward
        );
    }
    for (level, n, acc) in &report.per_level {
        println!("  level {level}: {n} challenges, accuracy {acc:.4}");
    }
    let [p50, p95, p99, max] = report.latency_ms;
    println!("latency ms: p50 {p50:.1}  p95 {p95:.1}  p99 {p99:.1}  max {max:.1}");
}

/// A dataset sample as a challenge image.
struct Labelled<'a>(&'a sv_data::Sample);

impl ChallengeImage for Labelled<'_> {
    fn id(&self) -> &str {
        &self.0.id
    }

    fn roadwork(&self) -> Option<bool> {
        Some(self.0.label.target()? > 0.5)
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        self.0.location.read().map_err(|e| e.to_string())
    }
}
