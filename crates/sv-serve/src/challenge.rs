//! Validator-style challenges: each labelled image goes through one of the validator's
//! four augmentation levels, is encoded as a 224 × 224 quality-75 JPEG, and is sent,
//! signed, through our dendrite to a miner; the answers are scored as the subnet does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};
use sv_augment::rng::AugRng;
use sv_augment::validator::ValidatorSettings;
use sv_axon::dendrite::{Dendrite, Target};
use sv_axon::keys::Hotkey;
use sv_records::metrics::{Confusion, Report, nearest_rank, subnet_reward};

/// How to challenge.
#[derive(Debug, Clone)]
pub struct ChallengeSettings {
    /// The synapse route (`ImageSynapse`).
    pub route: String,
    /// Seconds a miner has (validators: 9).
    pub timeout: f64,
    /// Seed of the augmentation draws.
    pub seed: u64,
    /// Requests in flight at once (each from its own dendrite).
    pub concurrency: usize,
    /// Levels, output size and JPEG quality.
    pub validator: ValidatorSettings,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        Self {
            route: "ImageSynapse".into(),
            timeout: 9.0,
            seed: 0,
            concurrency: 1,
            validator: ValidatorSettings::default(),
        }
    }
}

/// One challenge's result.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// The sample's id.
    pub id: String,
    /// Whether it shows roadwork.
    pub roadwork: bool,
    /// The augmentation level used.
    pub level: u8,
    /// SHA-256 hex of the challenge bytes sent: the id the miner logs for it (none
    /// when no challenge could be made).
    pub sent_sha256: Option<String>,
    /// HTTP status (0: no response).
    pub status: u16,
    /// The answer, when valid (in [0, 1]).
    pub prediction: Option<f64>,
    /// Round trip, milliseconds.
    pub latency_ms: f64,
    /// Error message of a failed exchange.
    pub message: Option<String>,
}

/// Everything a challenge run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ChallengeReport {
    /// Challenges sent.
    pub sent: usize,
    /// Valid answers.
    pub answered: usize,
    /// Failed exchanges by HTTP status (0: no response).
    pub failures: BTreeMap<u16, usize>,
    /// Metrics over every challenge, a failure counted as a wrong answer (the validator
    /// scores it 0).
    pub scored: Option<Report>,
    /// Accuracy per augmentation level: (level, challenges, accuracy).
    pub per_level: Vec<(u8, usize, f64)>,
    /// Mean of the validator's per-answer reward, `(0.5·max(0, MCC of the last 100) +
    /// 0.5·accuracy of the last 10)³`, in sending order.
    pub mean_reward: f64,
    /// Latency percentiles of answered challenges (ms): p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Each exchange.
    pub exchanges: Vec<Exchange>,
}

/// An image to challenge a miner with.
pub trait ChallengeImage: Sync {
    /// Its id: names the exchange and, with the seed, draws its augmentation.
    fn id(&self) -> &str;
    /// Whether it shows roadwork; `None` (unlabelled) leaves it out.
    fn roadwork(&self) -> Option<bool>;
    /// Its encoded bytes, or why they cannot be read.
    fn bytes(&self) -> Result<Vec<u8>, String>;
}

/// Challenge `target` with every labelled image, signing with `hotkey`; `progress` gets
/// the number done after each one.
pub fn run<I: ChallengeImage>(
    images: &[I],
    hotkey: &Hotkey,
    target: &Target,
    settings: &ChallengeSettings,
    progress: &(dyn Fn(usize) + Sync),
) -> ChallengeReport {
    let labelled: Vec<(&I, bool)> = images
        .iter()
        .filter_map(|s| Some((s, s.roadwork()?)))
        .collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Exchange)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..settings.concurrency.max(1) {
            scope.spawn(|| {
                // One dendrite per worker: nonces are then increasing per (hotkey, uuid)
                // whatever order the requests arrive in.
                let dendrite = Dendrite::new(hotkey.clone());
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(sample, roadwork)) = labelled.get(i) else {
                        break;
                    };
                    let ex = exchange(&dendrite, sample, roadwork, target, settings, i);
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, ex));
                    progress(done.fetch_add(1, Ordering::SeqCst) + 1);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    summarise(results.into_iter().map(|(_, e)| e).collect())
}

fn exchange(
    dendrite: &Dendrite,
    sample: &impl ChallengeImage,
    roadwork: bool,
    target: &Target,
    settings: &ChallengeSettings,
    index: usize,
) -> Exchange {
    let mut rng = AugRng::for_sample(settings.seed, sample.id(), index as u64);
    let failed = |level: u8, message: String| Exchange {
        id: sample.id().to_string(),
        roadwork,
        level,
        sent_sha256: None,
        status: 0,
        prediction: None,
        latency_ms: 0.0,
        message: Some(message),
    };
    let bytes = match sample.bytes() {
        Ok(b) => b,
        Err(e) => return failed(0, format!("reading the image: {e}")),
    };
    let (level, jpeg) = match settings.validator.challenge(&bytes, &mut rng) {
        Ok(c) => c,
        Err(e) => return failed(0, format!("making the challenge: {e}")),
    };
    let mut fields = Map::new();
    fields.insert("image".into(), Value::from(crate::payload::encode(&jpeg)));
    fields.insert("prediction".into(), Value::from(-1.0));
    fields.insert("testnet_label".into(), Value::from(-1));
    let answer = dendrite.call(&settings.route, fields, target, settings.timeout);
    let prediction = answer
        .prediction()
        .filter(|p| answer.status == 200 && (0.0..=1.0).contains(p));
    let message = match (answer.status, prediction) {
        (200, None) => Some(format!("invalid prediction {:?}", answer.prediction())),
        (200, Some(_)) => None,
        _ => answer.message.clone(),
    };
    Exchange {
        id: sample.id().to_string(),
        roadwork,
        level,
        sent_sha256: Some(sv_image::content_id(&jpeg)),
        status: answer.status,
        prediction,
        latency_ms: answer.latency.as_secs_f64() * 1e3,
        message,
    }
}

impl ChallengeReport {
    /// The label of every challenge sent, keyed by the id the miner logs for it, to
    /// join with the miner's prediction log ([`sv_records::labels`]).
    pub fn labels(&self) -> Vec<sv_records::labels::ChallengeLabel> {
        self.exchanges
            .iter()
            .filter_map(|e| {
                Some(sv_records::labels::ChallengeLabel {
                    image_sha256: e.sent_sha256.clone()?,
                    label: i64::from(e.roadwork),
                    source_id: Some(e.id.clone()),
                    level: Some(e.level),
                })
            })
            .collect()
    }
}

/// Score the exchanges as the validator would.
pub fn summarise(exchanges: Vec<Exchange>) -> ChallengeReport {
    // A failure answers -1, which the validator scores as wrong.
    let scored_pairs: Vec<(f64, bool)> = exchanges
        .iter()
        .map(|e| {
            let p = e.prediction.unwrap_or(if e.roadwork { 0.0 } else { 1.0 });
            (p, e.roadwork)
        })
        .collect();
    let mut failures = BTreeMap::new();
    for e in exchanges.iter().filter(|e| e.prediction.is_none()) {
        *failures.entry(e.status).or_default() += 1;
    }
    let mut rewards = Vec::with_capacity(scored_pairs.len());
    for i in 0..scored_pairs.len() {
        let last100 = &scored_pairs[i.saturating_sub(99)..=i];
        let last10 = &scored_pairs[i.saturating_sub(9)..=i];
        let mcc = Confusion::of(last100).mcc();
        let acc = Confusion::of(last10).accuracy();
        rewards.push(subnet_reward(mcc, acc));
    }
    let per_level = (0..4u8)
        .filter_map(|level| {
            let pairs: Vec<(f64, bool)> = exchanges
                .iter()
                .zip(&scored_pairs)
                .filter(|(e, _)| e.level == level)
                .map(|(_, p)| *p)
                .collect();
            (!pairs.is_empty()).then(|| (level, pairs.len(), Confusion::of(&pairs).accuracy()))
        })
        .collect();
    let mut latencies: Vec<f64> = exchanges
        .iter()
        .filter(|e| e.prediction.is_some())
        .map(|e| e.latency_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    ChallengeReport {
        sent: exchanges.len(),
        answered: exchanges.iter().filter(|e| e.prediction.is_some()).count(),
        failures,
        scored: (!scored_pairs.is_empty()).then(|| Report::of(&scored_pairs)),
        per_level,
        mean_reward: if rewards.is_empty() {
            0.0
        } else {
            rewards.iter().sum::<f64>() / rewards.len() as f64
        },
        latency_ms: [
            nearest_rank(&latencies, 0.50),
            nearest_rank(&latencies, 0.95),
            nearest_rank(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
        exchanges,
    }
}
