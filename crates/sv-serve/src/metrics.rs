//! Prometheus metrics of a miner: requests by outcome and validator, answer latency,
//! batch sizes and times, the model's version and age, swaps and dropped log lines.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use sv_axon::http::HttpStats;

const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

#[derive(Debug, Default)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            ..Self::default()
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, name: &str, out: &mut String) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug, Default)]
struct ModelInfo {
    version: String,
    created_unix: Option<u64>,
    loaded_unix: u64,
}

/// The miner's counters; every method is cheap and never blocks for long.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: Mutex<Histogram>,
    batch_size: Mutex<Histogram>,
    batch_seconds: Mutex<Histogram>,
    model: Mutex<ModelInfo>,
    swaps: AtomicU64,
    swap_failures: AtomicU64,
    /// Prediction-log lines not written: the writer fell behind or the write failed.
    pub log_dropped: AtomicU64,
    chain: Mutex<Option<ChainInfo>>,
    http: Mutex<Option<Arc<HttpStats>>>,
    history: Mutex<crate::history::History>,
    /// Write one line per request to standard error.
    pub log_requests: std::sync::atomic::AtomicBool,
}

/// The chain link's state (chain mode only).
#[derive(Debug, Default, Clone)]
struct ChainInfo {
    connected: bool,
    /// The hotkey holds a uid (None: not checked yet).
    registered: Option<bool>,
    /// The axon is announced as configured (None: not asked to announce).
    axon_served: Option<bool>,
    uid: Option<u16>,
    axon: Option<String>,
    errors: u64,
    block: u64,
    neurons: usize,
    refreshed_unix: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            batch_size: Mutex::new(Histogram::new(&BATCH_BUCKETS)),
            batch_seconds: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            model: Mutex::default(),
            swaps: AtomicU64::new(0),
            swap_failures: AtomicU64::new(0),
            log_dropped: AtomicU64::new(0),
            chain: Mutex::default(),
            http: Mutex::default(),
            history: Mutex::default(),
            log_requests: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The miner's state as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// (outcome, validator, requests).
    pub requests: Vec<(String, String, u64)>,
    /// The model in service.
    pub model_version: String,
    /// Unix seconds it was made, when known.
    pub model_created_unix: Option<u64>,
    /// Unix seconds it went into service.
    pub model_loaded_unix: u64,
    /// Models swapped in since start.
    pub swaps: u64,
    /// New models that failed to load.
    pub swap_failures: u64,
    /// Prediction-log lines not written.
    pub log_dropped: u64,
    /// Five-minute buckets of the last six hours.
    pub points: Vec<crate::history::Point>,
    /// Answers per probability bin.
    pub answers: [u64; 10],
    /// The chain link (chain mode only).
    pub chain: Option<ChainView>,
}

/// The chain link as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// The last connect or refresh succeeded.
    pub connected: bool,
    /// The hotkey holds a uid.
    pub registered: Option<bool>,
    /// The chain holds the announced axon.
    pub axon_served: Option<bool>,
    /// The hotkey's uid.
    pub uid: Option<u16>,
    /// The endpoint announced.
    pub axon: Option<String>,
    /// Block of the metagraph in use.
    pub block: u64,
    /// Neurons in it.
    pub neurons: usize,
    /// Failed connects and refreshes.
    pub errors: u64,
    /// When it was read.
    pub refreshed_unix: Option<u64>,
}

/// The outcome label of an HTTP status.
pub fn outcome(status: u16) -> &'static str {
    match status {
        200 => "answered",
        400 => "bad_request",
        401 => "unverified",
        403 => "blacklisted",
        404 => "unknown_synapse",
        408 => "late",
        _ => "error",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Count a request that ended with `status`, from `validator` (a verified caller's
    /// hotkey; refused requests are counted without one) after `elapsed`.
    pub fn request(&self, status: u16, validator: Option<&str>, elapsed: Duration) {
        let who = validator.unwrap_or("unattributed").to_string();
        if self.log_requests.load(Ordering::Relaxed) {
            eprintln!(
                "sv-miner: request {} ({status}) from {who} in {:.1} ms",
                outcome(status),
                elapsed.as_secs_f64() * 1e3
            );
        }
        *lock(&self.requests)
            .entry((outcome(status), who))
            .or_default() += 1;
        if status == 200 {
            lock(&self.latency).observe(elapsed.as_secs_f64());
            lock(&self.history).answered(unix_now(), elapsed.as_secs_f64() * 1e3);
        }
    }

    /// Record a batch of `size` that took `took`.
    pub fn batch(&self, size: usize, took: Duration) {
        lock(&self.batch_size).observe(size as f64);
        lock(&self.history).batch(unix_now(), size);
        lock(&self.batch_seconds).observe(took.as_secs_f64());
    }

    /// An answer's probability of roadwork, for the distribution of answers.
    pub fn answer(&self, probability: f32) {
        lock(&self.history).answer(probability);
    }

    /// Chain mode: the uid the hotkey holds.
    pub fn chain_uid(&self, uid: Option<u16>) {
        let mut c = lock(&self.chain);
        c.get_or_insert_with(ChainInfo::default).uid = uid;
    }

    /// Chain mode: the axon endpoint the miner announces.
    pub fn axon_endpoint(&self, endpoint: String) {
        let mut c = lock(&self.chain);
        c.get_or_insert_with(ChainInfo::default).axon = Some(endpoint);
    }

    /// What the dashboard shows, read at once.
    pub fn snapshot(&self) -> Snapshot {
        let model = lock(&self.model);
        let history = lock(&self.history);
        Snapshot {
            requests: lock(&self.requests)
                .iter()
                .map(|((o, who), n)| (o.to_string(), who.clone(), *n))
                .collect(),
            model_version: model.version.clone(),
            model_created_unix: model.created_unix,
            model_loaded_unix: model.loaded_unix,
            swaps: self.swaps.load(Ordering::Relaxed),
            swap_failures: self.swap_failures.load(Ordering::Relaxed),
            log_dropped: self.log_dropped.load(Ordering::Relaxed),
            points: history.points(),
            answers: history.answers(),
            chain: lock(&self.chain).as_ref().map(|c| ChainView {
                connected: c.connected,
                registered: c.registered,
                axon_served: c.axon_served,
                uid: c.uid,
                axon: c.axon.clone(),
                block: c.block,
                neurons: c.neurons,
                errors: c.errors,
                refreshed_unix: c.refreshed_unix,
            }),
        }
    }

    /// A model went into service.
    pub fn model_loaded(&self, version: &str, created_unix: Option<u64>, swap: bool) {
        *lock(&self.model) = ModelInfo {
            version: version.to_string(),
            created_unix,
            loaded_unix: unix_now(),
        };
        if swap {
            self.swaps.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Chain mode: the metagraph was read at `block` with `neurons` neurons.
    pub fn chain_refreshed(&self, block: u64, neurons: usize) {
        let mut c = lock(&self.chain);
        let c = c.get_or_insert_with(ChainInfo::default);
        c.connected = true;
        c.block = block;
        c.neurons = neurons;
        c.refreshed_unix = Some(unix_now());
    }

    /// Chain mode: whether the hotkey holds a uid, as the last refresh found.
    pub fn chain_registered(&self, registered: bool) {
        let mut c = lock(&self.chain);
        c.get_or_insert_with(ChainInfo::default).registered = Some(registered);
    }

    /// Chain mode: whether the chain holds the axon as configured.
    pub fn axon_served(&self, served: bool) {
        let mut c = lock(&self.chain);
        c.get_or_insert_with(ChainInfo::default).axon_served = Some(served);
    }

    /// Chain mode: a connect or refresh failed; the last metagraph stays in use.
    pub fn chain_failed(&self) {
        let mut c = lock(&self.chain);
        let c = c.get_or_insert_with(ChainInfo::default);
        c.connected = false;
        c.errors += 1;
    }

    /// Chain mode: whether the last connect or refresh succeeded (None outside chain mode).
    pub fn chain_connected(&self) -> Option<bool> {
        lock(&self.chain).as_ref().map(|c| c.connected)
    }

    /// A new model failed to load (the old one stays).
    pub fn swap_failed(&self) {
        self.swap_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far with each outcome (all validators).
    pub fn count(&self, outcome_label: &str) -> u64 {
        lock(&self.requests)
            .iter()
            .filter(|((o, _), _)| *o == outcome_label)
            .map(|(_, n)| n)
            .sum()
    }

    /// Report the axon listener's counters with the others.
    pub fn watch_http(&self, stats: Arc<HttpStats>) {
        *lock(&self.http) = Some(stats);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP sv_miner_requests_total Requests by outcome and validator hotkey.\n");
        out.push_str("# TYPE sv_miner_requests_total counter\n");
        for ((o, who), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "sv_miner_requests_total{{outcome=\"{o}\",validator=\"{}\"}} {n}",
                escape(who)
            );
        }
        out.push_str("# HELP sv_miner_answer_seconds Time from request to answer.\n");
        out.push_str("# TYPE sv_miner_answer_seconds histogram\n");
        lock(&self.latency).render("sv_miner_answer_seconds", &mut out);
        out.push_str("# HELP sv_miner_batch_size Images per forward pass.\n");
        out.push_str("# TYPE sv_miner_batch_size histogram\n");
        lock(&self.batch_size).render("sv_miner_batch_size", &mut out);
        out.push_str("# HELP sv_miner_batch_seconds Time of one forward pass.\n");
        out.push_str("# TYPE sv_miner_batch_seconds histogram\n");
        lock(&self.batch_seconds).render("sv_miner_batch_seconds", &mut out);
        let m = lock(&self.model);
        out.push_str("# HELP sv_miner_model_info The model in service.\n");
        out.push_str("# TYPE sv_miner_model_info gauge\n");
        let _ = writeln!(
            out,
            "sv_miner_model_info{{version=\"{}\"}} 1",
            escape(&m.version)
        );
        out.push_str("# HELP sv_miner_model_loaded_timestamp_seconds When it went into service.\n");
        out.push_str("# TYPE sv_miner_model_loaded_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "sv_miner_model_loaded_timestamp_seconds {}",
            m.loaded_unix
        );
        if let Some(c) = m.created_unix {
            out.push_str(
                "# HELP sv_miner_model_age_seconds Age of the model (rewards decay with it).\n",
            );
            out.push_str("# TYPE sv_miner_model_age_seconds gauge\n");
            let age = unix_now().saturating_sub(c);
            let _ = writeln!(out, "sv_miner_model_age_seconds {age}");
            out.push_str(
                "# HELP sv_miner_model_age_days Age of the model in days (warnings at 45, 60, 75, 90).\n",
            );
            out.push_str("# TYPE sv_miner_model_age_days gauge\n");
            let _ = writeln!(out, "sv_miner_model_age_days {:.3}", age as f64 / 86_400.0);
        }
        drop(m);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "sv_miner_model_swaps_total",
            "Models swapped in while serving.",
            self.swaps.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "sv_miner_model_swap_failures_total",
            "New models that failed to load (the old one kept serving).",
            self.swap_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "sv_miner_log_dropped_total",
            "Prediction-log lines not written: the writer fell behind or the write failed.",
            self.log_dropped.load(Ordering::Relaxed),
        );
        if let Some(h) = lock(&self.http).clone() {
            let _ = writeln!(
                out,
                "# HELP sv_miner_http_connections Axon connections open now.\n# TYPE sv_miner_http_connections gauge\nsv_miner_http_connections {}",
                h.open.load(Ordering::Relaxed)
            );
            for (name, help, v) in [
                ("accepted", "Axon connections accepted.", &h.accepted),
                (
                    "refused",
                    "Axon connections closed at once at the connection caps.",
                    &h.refused,
                ),
                (
                    "evicted",
                    "Idle axon connections closed to make room at the total cap.",
                    &h.evicted,
                ),
                (
                    "accept_errors",
                    "Axon accept errors (such as no file descriptor left), each retried.",
                    &h.accept_errors,
                ),
                (
                    "rejected",
                    "Axon requests refused before verification: too large, too slow, malformed or no capacity.",
                    &h.rejected,
                ),
                (
                    "panics",
                    "Axon handler panics, each answered with 500.",
                    &h.panics,
                ),
            ] {
                counter(
                    &mut out,
                    &format!("sv_miner_http_{name}_total"),
                    help,
                    v.load(Ordering::Relaxed),
                );
            }
        }
        if let Some(c) = lock(&self.chain).clone() {
            let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            };
            gauge(
                &mut out,
                "sv_miner_chain_connected",
                "1 while the chain answers; 0 while serving on the last metagraph.",
                c.connected as u64,
            );
            if let Some(r) = c.registered {
                gauge(
                    &mut out,
                    "sv_miner_registered",
                    "1 while the hotkey holds a uid on the subnet; 0 once deregistered.",
                    r as u64,
                );
            }
            if let Some(a) = c.axon_served {
                gauge(
                    &mut out,
                    "sv_miner_axon_served",
                    "1 once serve_axon announced the axon; 0 while it is retried.",
                    a as u64,
                );
            }
            counter(
                &mut out,
                "sv_miner_chain_errors_total",
                "Failed chain connects and metagraph refreshes.",
                c.errors,
            );
            gauge(
                &mut out,
                "sv_miner_metagraph_block",
                "Block the metagraph in use was read at.",
                c.block,
            );
            gauge(
                &mut out,
                "sv_miner_metagraph_neurons",
                "Neurons in the metagraph in use.",
                c.neurons as u64,
            );
            if let Some(t) = c.refreshed_unix {
                gauge(
                    &mut out,
                    "sv_miner_metagraph_age_seconds",
                    "Seconds since the metagraph in use was read.",
                    unix_now().saturating_sub(t),
                );
            }
        }
        crate::process_metrics::render(&mut out);
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
