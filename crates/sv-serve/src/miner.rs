//! A running miner: the axon (verified, blacklisted, prioritised requests), the batcher
//! over the model slot, the prediction log, `/metrics` + `/healthz` on their own port, and
//! a watcher that swaps in a new model when its files change or on SIGHUP, and re-reads
//! a metagraph snapshot when it changes; in chain mode, the chain link (registration
//! check, `serve_axon`, metagraph refresh).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use sv_axon::gate::{Callers, Gate};
use sv_axon::http::{HttpHandler, HttpLimits, HttpResponse, HttpServer};
use sv_axon::metagraph::{Metagraph, read_allowlist};
use sv_axon::server::{self, Handler};
use sv_axon::synapse::IMAGE_ROUTES;
use sv_axon::{Caller, Hotkey};
use sv_models::device::device_computing_in;
use sv_models::{Device, Precision};

use crate::batcher::{BatchSettings, Batcher, Outcome};
use crate::chain_link::ChainLink;
use crate::config::MinerConfig;
use crate::error::ServeError;
use crate::hub_follow::{HubFollower, followed};
use crate::metrics::{Metrics, unix_now};
use crate::model::{LoadedModel, ModelSource};
use crate::payload::{self, Limits};
use crate::predlog::{Entry, LogSettings, PredictionLog};
use crate::slot::ModelSlot;

/// A miner serving requests until [`Miner::shutdown`].
pub struct Miner {
    /// Where the axon listens.
    pub axon_addr: SocketAddr,
    /// Where `/metrics` and `/healthz` listen (None when off).
    pub metrics_addr: Option<SocketAddr>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The axon's hotkey.
    pub hotkey: String,
    slot: Arc<ModelSlot>,
    reloader: Arc<Reloader>,
    axon: Arc<Mutex<Option<server::Running>>>,
    restart_axon: Box<dyn Fn() -> Result<server::Running, ServeError> + Send + Sync>,
    health: Option<HttpServer>,
    watcher: Option<JoinHandle<()>>,
    chain: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    reload_requested: Arc<AtomicBool>,
    batcher: Option<Arc<Batcher>>,
    log: Option<Arc<PredictionLog>>,
}

/// Loads a model beside the one in service and swaps it in.
struct Reloader {
    /// What a reload (a file change, SIGHUP) loads; a followed Hub branch's commit once
    /// one is swapped in.
    source: Mutex<ModelSource>,
    device: Device,
    precision: Precision,
    slot: Arc<ModelSlot>,
    metrics: Arc<Metrics>,
    busy: Mutex<()>,
}

impl Reloader {
    fn source(&self) -> ModelSource {
        self.source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn reload(&self) -> Result<String, ServeError> {
        self.swap_in(&self.source(), false)
    }

    /// Load `source` and, when it loads (and, with `smoke`, answers the smoke image),
    /// put it in service; otherwise keep the model in service.
    fn swap_in(&self, source: &ModelSource, smoke: bool) -> Result<String, ServeError> {
        let _one_at_a_time = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = LoadedModel::load(source, &self.device).and_then(|model| {
            let model = model.in_precision(self.precision);
            if smoke {
                crate::hub_follow::smoke_check(&model)?;
            }
            Ok(model)
        });
        match loaded {
            Ok(model) => {
                let version = model.version.clone();
                self.metrics
                    .model_loaded(&model.version, model.created_unix, true);
                let old = self.slot.swap(model);
                eprintln!("sv-miner: model {version} in service (was {})", old.version);
                Ok(version)
            }
            Err(e) => {
                self.metrics.swap_failed();
                eprintln!("sv-miner: new model not loaded, the old one keeps serving: {e}");
                Err(e)
            }
        }
    }
}

impl Miner {
    /// Start serving with `config` (validated here), signing answers with the wallet's hotkey.
    pub fn start(config: &MinerConfig) -> Result<Self, ServeError> {
        config.validate()?;
        let hotkey = Hotkey::from_wallet(
            &config.wallets_dir(),
            &config.wallet_name,
            &config.wallet_hotkey,
        )?;
        Self::start_with_key(config, hotkey)
    }

    /// Start serving with `config`, signing with `hotkey`.
    pub fn start_with_key(config: &MinerConfig, hotkey: Hotkey) -> Result<Self, ServeError> {
        config.validate()?;
        let source = ModelSource::parse(config.model.as_deref().expect("validated"))?;
        let (source, follower) = follow_start(source, config.hub_poll_seconds);
        let device = device_computing_in(&config.device, config.precision)
            .map_err(|e| ServeError::Config(format!("device {:?}: {e}", config.device)))?;
        let model = LoadedModel::load(&source, &device)?.in_precision(config.precision);
        let mut age_warnings = crate::age::AgeWarnings::default();
        warn_of_age(&mut age_warnings, &model);
        let metrics = Arc::new(Metrics::default());
        metrics
            .log_requests
            .store(config.log_requests, std::sync::atomic::Ordering::Relaxed);
        metrics.model_loaded(&model.version, model.created_unix, false);
        let slot = Arc::new(ModelSlot::new(model));
        let mut callers = CallerSource::open(config, &hotkey.ss58, &metrics)?;
        let log = open_log(config, &metrics)?;
        let batcher = start_batcher(config, &slot, &metrics);
        let gate = Arc::new(build_gate(config, &hotkey, callers.boxed(), &metrics));
        let handler = answer_handler(
            batcher.clone(),
            log.clone(),
            metrics.clone(),
            Limits {
                max_pixels: config.max_pixels,
                max_aspect_ratio: config.max_aspect_ratio,
            },
            Duration::from_millis(config.deadline_margin_ms),
        );
        let start_axon = axon_starter(gate, handler, config.http_limits(), metrics.clone());
        let axon = start_axon(&format!("{}:{}", config.host, config.axon_port))?;
        // A restarted listener takes the same port.
        let axon_addr = axon.addr;
        let restart_axon = Box::new(move || start_axon(&axon_addr.to_string()));
        let axon = Arc::new(Mutex::new(Some(axon)));
        let health = if !config.metrics {
            None
        } else {
            Some(serve_health(
                &format!("{}:{}", config.metrics_host, config.metrics_port),
                crate::dashboard::Sources {
                    log_dir: config.log_dir.clone(),
                    loop_dir: config.loop_dir.clone(),
                },
                metrics.clone(),
                slot.clone(),
                batcher.clone(),
                axon.clone(),
            )?)
        };
        let reloader = Arc::new(Reloader {
            source: Mutex::new(source.clone()),
            device,
            precision: config.precision,
            slot: slot.clone(),
            metrics: metrics.clone(),
            busy: Mutex::new(()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let chain = match callers.take_link() {
            None => None,
            Some(link) => Some(start_chain_link(config, &hotkey, link, axon_addr, &stop)?),
        };
        let reload_requested = Arc::new(AtomicBool::new(false));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_requested.clone());
        let watcher = {
            let (reloader, stop, flag) = (reloader.clone(), stop.clone(), reload_requested.clone());
            let every = Duration::from_secs(config.watch_seconds);
            let snapshot = callers.snapshot_source();
            std::thread::Builder::new()
                .name("sv-watch".into())
                .spawn(move || {
                    watch(
                        &reloader,
                        &stop,
                        &flag,
                        every,
                        snapshot,
                        age_warnings,
                        follower,
                    )
                })
                .map_err(|e| ServeError::Config(format!("starting the watcher: {e}")))?
        };
        Ok(Self {
            axon_addr,
            metrics_addr: health.as_ref().map(|s| s.addr),
            metrics,
            hotkey: hotkey.ss58,
            slot,
            reloader,
            axon,
            restart_axon,
            health,
            watcher: Some(watcher),
            chain,
            stop,
            reload_requested,
            batcher: Some(batcher),
            log: Some(log),
        })
    }

    /// The version of the model in service.
    pub fn model_version(&self) -> String {
        self.slot.current().version.clone()
    }

    /// Load the model source again beside the current model and swap it in; on failure the
    /// current model keeps serving.
    pub fn reload(&self) -> Result<String, ServeError> {
        self.reloader.reload()
    }

    /// Ask the watcher to reload (what SIGHUP does).
    pub fn request_reload(&self) {
        self.reload_requested.store(true, Ordering::SeqCst);
    }

    /// Check the axon listener and the inference worker: a listener that stopped is
    /// started again on the same port. An error means the miner cannot serve (the
    /// listener could not be restarted, or the inference worker is gone) and should exit
    /// so that its supervisor restarts it.
    pub fn check(&self) -> Result<(), ServeError> {
        if !self.batcher.as_ref().is_some_and(|b| b.is_alive()) {
            return Err(ServeError::Stopped("the inference worker is gone".into()));
        }
        if axon_alive(&self.axon) {
            return Ok(());
        }
        eprintln!(
            "sv-miner: the axon listener on {} stopped; starting it again",
            self.axon_addr
        );
        let mut axon = self.axon.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dead) = axon.take() {
            dead.shutdown();
        }
        *axon = Some((self.restart_axon)()?);
        Ok(())
    }

    /// Stop the axon listener the way a crash of its accept loop would, leaving the rest
    /// running: what [`check`](Self::check) repairs. For tests of that path.
    #[doc(hidden)]
    pub fn stop_axon_listener(&self) {
        let axon = self.axon.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(axon) = axon {
            axon.shutdown();
        }
    }

    /// Block until SIGINT or SIGTERM (`Ok`), or until the miner cannot serve any more
    /// (the error of [`check`](Self::check)), checking every second.
    pub fn wait_for_termination(&self) -> Result<(), ServeError> {
        let term = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, term.clone());
        }
        let mut last_check = Instant::now();
        while !term.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if last_check.elapsed() >= Duration::from_secs(1) {
                self.check()?;
                last_check = Instant::now();
            }
        }
        Ok(())
    }

    /// Stop accepting, answer what is in flight, write out the log.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let axon = self.axon.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(axon) = axon {
            axon.shutdown();
        }
        if let Some(server) = self.health.take() {
            server.shutdown();
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        if let Some(c) = self.chain.take() {
            let _ = c.join();
        }
        self.batcher.take();
        self.log.take();
    }
}

/// The answer path: check the image, queue it, wait for the batch or the deadline, log.
fn answer_handler(
    batcher: Arc<Batcher>,
    log: Arc<PredictionLog>,
    metrics: Arc<Metrics>,
    limits: Limits,
    margin: Duration,
) -> Handler {
    Arc::new(move |synapse, caller: &Caller| {
        // The caller's clock started when its request arrived, queueing included.
        let started = caller.received;
        let request = synapse.image_synapse().map_err(|e| (400, e.to_string()))?;
        if request.image.is_empty() {
            return Err((400, "the synapse has no image".to_string()));
        }
        let image = request.image;
        let challenge = payload::decode(&image, &limits).map_err(|e| (400, e.to_string()))?;
        // The gate passes only finite timeouts within its range; anything else maps to 0.
        let budget = Duration::try_from_secs_f64(caller.timeout).unwrap_or(Duration::ZERO);
        let deadline = started + budget.saturating_sub(margin);
        let rx = batcher.submit(challenge.image, deadline, caller.stake);
        let outcome = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(Outcome::Late);
        match outcome {
            Outcome::Answered {
                probability,
                version,
                ..
            } => {
                synapse.set_prediction(f64::from(probability));
                metrics.answer(probability);
                let label = Some(request.testnet_label).filter(|l| *l >= 0);
                log.record(
                    Entry {
                        time: SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs_f64())
                            .unwrap_or(0.0),
                        validator: caller.hotkey.clone(),
                        synapse: synapse.name.clone().unwrap_or_default(),
                        image_sha256: challenge.sha256,
                        prediction: probability,
                        latency_ms: started.elapsed().as_secs_f64() * 1e3,
                        model_version: version.to_string(),
                        label,
                    },
                    Some(challenge.bytes),
                );
                Ok(())
            }
            Outcome::Late => Err((
                408,
                format!(
                    "no answer could be ready within the caller's {:.1} s timeout",
                    caller.timeout
                ),
            )),
            Outcome::Failed(m) => Err((500, m)),
        }
    })
}

/// The caller view chosen by the config: an allowlist, a snapshot file to re-read, or
/// the chain's metagraph with the link that refreshes it.
enum CallerSource {
    Allowlist(sv_axon::Allowlist),
    Snapshot(Arc<Metagraph>, PathBuf),
    Chain(Arc<Metagraph>, Option<ChainLink>),
}

impl CallerSource {
    fn open(
        config: &MinerConfig,
        hotkey: &str,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, ServeError> {
        if let Some(path) = &config.allowlist {
            return Ok(Self::Allowlist(read_allowlist(path)?));
        }
        let metagraph = Arc::new(Metagraph::new());
        if let Some(endpoint) = &config.chain_endpoint {
            let link = ChainLink::open(
                endpoint,
                config.netuid,
                hotkey,
                metagraph.clone(),
                metrics.clone(),
            )?;
            return Ok(Self::Chain(metagraph, Some(link)));
        }
        let path = config.metagraph.clone().expect("validated");
        metagraph.replace(Metagraph::read_snapshot(&path)?);
        Ok(Self::Snapshot(metagraph, path))
    }

    fn boxed(&self) -> Box<dyn Callers> {
        match self {
            Self::Allowlist(list) => Box::new(list.clone()),
            Self::Snapshot(m, _) | Self::Chain(m, _) => Box::new(m.clone()),
        }
    }

    fn snapshot_source(&self) -> Option<(Arc<Metagraph>, PathBuf)> {
        match self {
            Self::Snapshot(m, p) => Some((m.clone(), p.clone())),
            Self::Allowlist(_) | Self::Chain(..) => None,
        }
    }

    fn take_link(&mut self) -> Option<ChainLink> {
        match self {
            Self::Chain(_, link) => link.take(),
            _ => None,
        }
    }
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok();
            (
                f.clone(),
                m.as_ref().map_or(0, |m| m.len()),
                m.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}

/// Reload on SIGHUP at once; reload when the model's files changed and then stayed the
/// same for one more check (a copy in progress is not loaded); re-read the snapshot.
fn watch(
    reloader: &Reloader,
    stop: &AtomicBool,
    flag: &AtomicBool,
    every: Duration,
    snapshot: Option<(Arc<Metagraph>, PathBuf)>,
    mut age_warnings: crate::age::AgeWarnings,
    mut follower: Option<HubFollower>,
) {
    let files = || reloader.source().watched_files();
    let mut last_age_check = Instant::now();
    let mut loaded = fingerprint(&files());
    let mut pending: Option<Fingerprint> = None;
    let mut snap_print = snapshot
        .as_ref()
        .map(|(_, p)| fingerprint(std::slice::from_ref(p)));
    let mut last_check = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last_age_check.elapsed() >= Duration::from_secs(60) {
            last_age_check = Instant::now();
            warn_of_age(&mut age_warnings, &reloader.slot.current());
        }
        if let Some(f) = follower.as_mut() {
            follow_hub(reloader, f);
        }
        if flag.swap(false, Ordering::SeqCst) {
            let before = fingerprint(&files());
            if reloader.reload().is_ok() {
                loaded = before;
            }
            pending = None;
            continue;
        }
        if every.is_zero() || last_check.elapsed() < every {
            continue;
        }
        last_check = Instant::now();
        let now = fingerprint(&files());
        if now != loaded {
            if pending.as_ref() == Some(&now) {
                // Reload once per change; a failed load waits for the next change.
                let _ = reloader.reload();
                loaded = now;
                pending = None;
            } else {
                pending = Some(now);
            }
        }
        if let Some((metagraph, path)) = &snapshot {
            let p = fingerprint(std::slice::from_ref(path));
            if snap_print.as_ref() != Some(&p) {
                match Metagraph::read_snapshot(path) {
                    Ok(neurons) => {
                        metagraph.replace(neurons);
                        snap_print = Some(p);
                    }
                    Err(e) => eprintln!("sv-miner: metagraph snapshot not re-read: {e}"),
                }
            }
        }
    }
}

/// For a followed Hub branch (see [`crate::hub_follow`]): the branch's commit now, so a
/// moving branch is not served from a stale cache, and its follower; otherwise the
/// source as given. When the Hub does not answer, the cached model serves until it
/// does.
fn follow_start(source: ModelSource, poll_seconds: u64) -> (ModelSource, Option<HubFollower>) {
    let Some((repo, branch)) = followed(&source).filter(|_| poll_seconds > 0) else {
        return (source, None);
    };
    let every = Duration::from_secs(poll_seconds);
    match ask_hub(&repo, branch.as_deref()) {
        Ok(commit) => {
            let follower = HubFollower::new(repo, branch, Some(commit.clone()), every);
            (follower.source_at(&commit), Some(follower))
        }
        Err(e) => {
            eprintln!("sv-miner: {e}; serving {source} from the cache until the Hub answers");
            (source, Some(HubFollower::new(repo, branch, None, every)))
        }
    }
}

/// The commit `branch` of `repo` points at, asked of the Hub the environment names.
fn ask_hub(repo: &str, branch: Option<&str>) -> Result<String, String> {
    sv_hub::HubClient::from_env()
        .and_then(|c| c.commit_of(repo, branch))
        .map_err(|e| e.to_string())
}

/// When the followed branch moved, swap in its new commit if it loads and answers the
/// smoke image; otherwise refuse that commit and keep serving.
fn follow_hub(reloader: &Reloader, follower: &mut HubFollower) {
    let Some(commit) = follower.poll(Instant::now(), ask_hub) else {
        return;
    };
    let source = follower.source_at(&commit);
    match reloader.swap_in(&source, true) {
        Ok(_) => {
            follower.commit = Some(commit);
            *reloader.source.lock().unwrap_or_else(|p| p.into_inner()) = source;
        }
        Err(_) => follower.refused = Some(commit),
    }
}

/// Print the age warning due now for `model` ([`crate::age`]): past 45, 60, 75 and 90
/// days, and daily while past 45.
fn warn_of_age(warnings: &mut crate::age::AgeWarnings, model: &LoadedModel) {
    if let Some(line) = warnings.due(model.age_days(SystemTime::now()), Instant::now()) {
        eprintln!("{line}");
    }
}

/// The prediction log the configuration asks for.
fn open_log(
    config: &MinerConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<PredictionLog>, ServeError> {
    let settings = LogSettings {
        dir: config.log_dir.clone(),
        max_bytes: config.log_max_bytes,
        keep: config.log_keep,
        store_images: config.store_images,
    };
    Ok(Arc::new(PredictionLog::open(settings, metrics.clone())?))
}

/// The inference worker over `slot`.
fn start_batcher(
    config: &MinerConfig,
    slot: &Arc<ModelSlot>,
    metrics: &Arc<Metrics>,
) -> Arc<Batcher> {
    let settings = BatchSettings {
        max_batch: config.max_batch,
        max_wait: Duration::from_millis(config.max_wait_ms),
    };
    Arc::new(Batcher::start(slot.clone(), settings, metrics.clone()))
}

/// The request gate: the image routes, signed answers, the body limit and the permit rule,
/// every outcome counted.
fn build_gate(
    config: &MinerConfig,
    hotkey: &Hotkey,
    callers: Box<dyn Callers>,
    metrics: &Arc<Metrics>,
) -> Gate {
    let observer = metrics.clone();
    let mut gate = Gate::new(&hotkey.ss58, &IMAGE_ROUTES, callers)
        .with_signer(hotkey.clone())
        .with_observer(Box::new(move |status, caller, took| {
            observer.request(status, caller.map(|c| c.hotkey.as_str()), took)
        }));
    gate.max_body = config.max_body_bytes;
    gate.require_permit = config.force_validator_permit;
    gate
}

/// What starts the axon listener on an address (at start, and again after it stopped),
/// its connection counters watched by `metrics`.
fn axon_starter(
    gate: Arc<Gate>,
    handler: Handler,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
) -> impl Fn(&str) -> Result<server::Running, ServeError> + Send + Sync + 'static {
    move |addr: &str| {
        let running = server::serve_with(
            addr,
            gate.clone(),
            handler.clone(),
            server::system_clock(),
            limits,
        )?;
        metrics.watch_http(running.stats());
        Ok(running)
    }
}

/// Announce the axon on chain when asked, then refresh the metagraph on a thread until
/// `stop`.
fn start_chain_link(
    config: &MinerConfig,
    hotkey: &Hotkey,
    mut link: ChainLink,
    axon_addr: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ServeError> {
    if config.serve_axon {
        let ip = config
            .external_ip
            .as_deref()
            .expect("validated")
            .parse()
            .expect("validated");
        let port = config.external_port.unwrap_or(axon_addr.port());
        link.serve_axon(hotkey, ip, port);
    }
    let stop = stop.clone();
    let every = Duration::from_secs(config.metagraph_refresh_seconds);
    std::thread::Builder::new()
        .name("sv-chain".into())
        .spawn(move || link.run(&stop, every))
        .map_err(|e| ServeError::Config(format!("starting the chain link: {e}")))
}

fn axon_alive(axon: &Mutex<Option<server::Running>>) -> bool {
    axon.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|a| a.is_alive())
}

/// `/metrics` (Prometheus text), `/healthz` (JSON: 200 when the axon listener accepts
/// and the inference worker runs, else 503) and the dashboard (`/`, `/dashboard`, and
/// `/dashboard/image/<sha256>` for stored challenge images) on their own bounded
/// listener.
fn serve_health(
    addr: &str,
    sources: crate::dashboard::Sources,
    metrics: Arc<Metrics>,
    slot: Arc<ModelSlot>,
    batcher: Arc<Batcher>,
    axon: Arc<Mutex<Option<server::Running>>>,
) -> Result<HttpServer, ServeError> {
    let handler: HttpHandler = Arc::new(move |request| {
        let path = request.path.split('?').next().unwrap_or("");
        if let Some(sha) = path.strip_prefix("/dashboard/image/") {
            let found = crate::dashboard::image_file(&sources.log_dir, sha)
                .and_then(|(file, kind)| Some((std::fs::read(file).ok()?, kind)));
            return match found {
                Some((body, kind)) => HttpResponse {
                    status: 200,
                    headers: vec![
                        ("content-type".into(), kind.into()),
                        ("cache-control".into(), "max-age=86400".into()),
                    ],
                    body,
                },
                None => HttpResponse {
                    status: 404,
                    headers: vec![("content-type".into(), "text/plain".into())],
                    body: b"no such image\n".to_vec(),
                },
            };
        }
        let (status, body, kind) = match path {
            "/" | "/dashboard" => {
                let health = crate::dashboard::Health {
                    listening: axon_alive(&axon),
                    inference: batcher.is_alive(),
                    model_age_days: slot.current().age_days(SystemTime::now()),
                };
                let page =
                    crate::dashboard::page(&metrics.snapshot(), health, &sources, unix_now());
                (200, page, "text/html; charset=utf-8")
            }
            "/metrics" => (200, metrics.render(), "text/plain; version=0.0.4"),
            "/healthz" => {
                let model = slot.current();
                let (listening, inference) = (axon_alive(&axon), batcher.is_alive());
                let ok = listening && inference;
                let body = serde_json::json!({
                    "status": if ok { "ok" } else { "failing" },
                    "axon_listening": listening,
                    "inference_worker": inference,
                    "model_version": model.version,
                    "model_age_days": model.age_days(SystemTime::now()),
                    "queued": batcher.queued(),
                    "time": unix_now(),
                });
                (
                    if ok { 200 } else { 503 },
                    body.to_string(),
                    "application/json",
                )
            }
            _ => (404, "not found\n".to_string(), "text/plain"),
        };
        HttpResponse {
            status,
            headers: vec![("content-type".into(), kind.into())],
            body: body.into_bytes(),
        }
    });
    let limits = HttpLimits {
        max_connections: 64,
        max_connections_per_peer: 16,
        max_body: 64 << 10,
        body_memory: 1 << 20,
        handler_threads: 4,
        ..HttpLimits::default()
    };
    HttpServer::bind(addr, limits, handler)
        .map_err(|e| ServeError::Config(format!("metrics listener: {e}")))
}
