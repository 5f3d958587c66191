//! The loop's one TOML file: paths, the Hub repository, the wallet, the operator and
//! the knobs of each step. Relative paths are relative to the file's folder, so the
//! loop behaves the same from any working directory (and under a service manager).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{LoopError, Result};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Where cycles, their journals and `production.json` live.
    pub work_dir: PathBuf,
    /// The model in production before the loop's first publication: a run directory
    /// of `sv-trainer finetune` (the loop continues training from it).
    pub production: PathBuf,
    /// The labelled pool (a manifest with splits) that curation draws from.
    pub pool: PathBuf,
    /// The miner's prediction-log folder (`log_dir` of `sv-miner serve`).
    pub miner_log: PathBuf,
    /// Label files written by `sv-miner challenge --labels`.
    #[serde(default)]
    pub challenge_labels: Vec<PathBuf>,
    /// Held-out sets the gate scores, `NAME=MANIFEST` (their `gate.split`); default:
    /// the pool, as `pool`.
    #[serde(default)]
    pub held_out: Vec<String>,
    /// Retrain only when production is at least this many days old (0: every run).
    #[serde(default = "one")]
    pub retrain_after_days: f64,
    /// Device: cpu, cuda or cuda:N.
    #[serde(default = "cpu")]
    pub device: String,
    /// Curation knobs.
    #[serde(default)]
    pub curate: CurateSettings,
    /// Fine-tuning knobs.
    #[serde(default)]
    pub train: TrainSettings,
    /// The gate's knobs.
    #[serde(default)]
    pub gate: GateKnobs,
    /// The Hub repository and the model card.
    pub publish: PublishSettings,
    /// The hotkey that signs the card and the registration.
    #[serde(default)]
    pub wallet: WalletSettings,
    /// Registration with the subnet operator (left out: not registered).
    #[serde(default)]
    pub register: Option<RegisterSettings>,
}

fn one() -> f64 {
    1.0
}
fn cpu() -> String {
    "cpu".into()
}

/// Curation: dedup, mining, auto-labelling and the mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurateSettings {
    /// Cosine similarity at which pool images are near-duplicates.
    pub dedup_threshold: f32,
    /// Dedup is skipped (and the journal says why) when it would drop more than this
    /// fraction of the pool: an embedding that puts most of the pool in one group
    /// cannot tell duplicates apart.
    pub dedup_max_drop: f64,
    /// Source preference when a group keeps one copy.
    pub source_order: String,
    /// A checkpoint whose backbone embeds for dedup and mining (left out: production's
    /// own backbone). A general one (e.g. a DINOv2 with registers) separates
    /// near-duplicates better than a classifier's.
    pub embedder: Option<PathBuf>,
    /// Neighbours taken per failure.
    pub mine_k: usize,
    /// Neighbours less similar than this are left out.
    pub mine_min_similarity: f32,
    /// An unlabelled answer less confident than this is a failure.
    pub mine_min_confidence: f32,
    /// An ensemble file whose members label unlabelled hard cases (left out: those
    /// cases are not trained on).
    pub autolabel_ensemble: Option<PathBuf>,
    /// Every member must pick the class with at least this probability.
    pub autolabel_min_confidence: f32,
    /// Shares by source, `name=share,…` (left out: everything curated, once).
    pub ratios: Option<String>,
    /// Mix size with `ratios`.
    pub total: Option<usize>,
    /// A source short of its share: shrink, redistribute or oversample.
    pub policy: String,
    /// Train, validation and test fractions for samples without a split.
    pub splits: String,
    /// Seed of the mix and of new splits.
    pub seed: u64,
}

impl Default for CurateSettings {
    fn default() -> Self {
        Self {
            dedup_threshold: 0.95,
            dedup_max_drop: 0.25,
            embedder: None,
            source_order: "natix,miner_log,hard_case,hard_negative,synthetic".into(),
            mine_k: 10,
            mine_min_similarity: 0.5,
            mine_min_confidence: 0.2,
            autolabel_ensemble: None,
            autolabel_min_confidence: 0.8,
            ratios: None,
            total: None,
            policy: "redistribute".into(),
            splits: "0.8,0.1,0.1".into(),
            seed: 0,
        }
    }
}

/// Fine-tuning: production's own run config, with these overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Epochs of the incremental run.
    pub epochs: Option<u64>,
    /// Head learning rate.
    pub lr: Option<f64>,
    /// Backbone learning rate.
    pub backbone_lr: Option<f64>,
    /// Batch size.
    pub batch_size: Option<usize>,
    /// Augmentation preset or pipeline file.
    pub augment: Option<String>,
    /// Warm-up steps.
    pub warmup_steps: Option<u64>,
    /// Steps between checkpoints (what a killed run loses at most).
    pub checkpoint_every: Option<u64>,
    /// The contrastive hard-negative loss.
    pub hard_negatives: bool,
    /// Seed of the run; each cycle adds its number.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: None,
            lr: None,
            backbone_lr: None,
            batch_size: None,
            augment: None,
            warmup_steps: None,
            checkpoint_every: None,
            hard_negatives: true,
            seed: 0,
        }
    }
}

/// The gate (see `sv-trainer ab`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateKnobs {
    /// Reward points asked against a new production model (falls to 0 at 90 days).
    pub threshold_points: f64,
    /// Split of each held-out manifest.
    pub split: String,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Seed of the validator-style challenges.
    pub challenge_seed: u64,
}

impl Default for GateKnobs {
    fn default() -> Self {
        Self {
            threshold_points: 1.0,
            split: "test".into(),
            resamples: 2000,
            seed: 0,
            challenge_seed: 0,
        }
    }
}

/// The Hub repository and the card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// `owner/name`.
    pub repo: String,
    /// Branch.
    #[serde(default = "main")]
    pub revision: String,
    /// The card's model_name (unique on the subnet).
    pub model_name: String,
    /// The card's description.
    #[serde(default = "description")]
    pub description: String,
    /// Create the repository private.
    #[serde(default)]
    pub private: bool,
    /// Names other miners use (a file, one per line).
    #[serde(default)]
    pub taken_names: Option<PathBuf>,
}

fn main() -> String {
    "main".into()
}
fn description() -> String {
    "Roadwork classifier retrained by the streetvision-rs improvement loop".into()
}

/// A btcli wallet's hotkey.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletSettings {
    /// Wallet name.
    pub name: String,
    /// Hotkey name.
    pub hotkey: String,
    /// Wallets directory (default $BT_WALLET_PATH or ~/.bittensor/wallets).
    pub path: Option<PathBuf>,
}

impl Default for WalletSettings {
    fn default() -> Self {
        Self {
            name: "default".into(),
            hotkey: "default".into(),
            path: None,
        }
    }
}

impl WalletSettings {
    /// The hotkey.
    pub fn hotkey(&self) -> Result<sv_axon::Hotkey> {
        let root = self
            .path
            .clone()
            .unwrap_or_else(sv_axon::keys::default_wallets_dir);
        sv_axon::Hotkey::from_wallet(&root, &self.name, &self.hotkey).map_err(|e| {
            LoopError::Config {
                file: PathBuf::from("[wallet]"),
                reason: format!(
                    "hotkey {}/{} in {}: {e}",
                    self.name,
                    self.hotkey,
                    root.display()
                ),
            }
        })
    }
}

/// Registration with the subnet operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSettings {
    /// The miner's uid.
    pub uid: u16,
    /// The operator's endpoint.
    #[serde(default = "operator")]
    pub base_url: String,
    /// Seconds between status polls.
    #[serde(default = "three")]
    pub poll_seconds: f64,
}

fn operator() -> String {
    sv_hub::operator::DEFAULT_BASE.into()
}
fn three() -> f64 {
    3.0
}

impl LoopConfig {
    /// Read and check `path`; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LoopError::io(path, e))?;
        let mut config: Self = toml::from_str(&text).map_err(|e| LoopError::Config {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The folder exists (the file was just read), so it has a canonical form, free
        // of `..` and links, for every path the loop prints.
        let base = base.canonicalize().map_err(|e| LoopError::io(base, e))?;
        config.resolve(&base);
        config.check().map_err(|reason| LoopError::Config {
            file: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let at = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        at(&mut self.work_dir);
        at(&mut self.production);
        at(&mut self.pool);
        at(&mut self.miner_log);
        self.challenge_labels.iter_mut().for_each(at);
        if let Some(p) = &mut self.curate.autolabel_ensemble {
            at(p);
        }
        if let Some(p) = &mut self.curate.embedder {
            at(p);
        }
        if let Some(p) = &mut self.publish.taken_names {
            at(p);
        }
        if let Some(p) = &mut self.wallet.path {
            at(p);
        }
        for set in &mut self.held_out {
            if let Some((name, file)) = set.split_once('=') {
                let mut file = PathBuf::from(file);
                at(&mut file);
                *set = format!("{name}={}", file.display());
            }
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        let parts: Vec<&str> = self.publish.repo.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "publish.repo {:?} is not owner/name",
                self.publish.repo
            ));
        }
        if self.publish.model_name.trim().is_empty() {
            return Err("publish.model_name is empty".into());
        }
        if !(self.retrain_after_days.is_finite() && self.retrain_after_days >= 0.0) {
            return Err(format!(
                "retrain_after_days = {} is not a number of days ≥ 0",
                self.retrain_after_days
            ));
        }
        for set in &self.held_out {
            if !set.contains('=') {
                return Err(format!("held_out {set:?}: expected NAME=MANIFEST"));
            }
        }
        if !(0.0..=1.0).contains(&self.curate.dedup_max_drop) {
            return Err(format!(
                "curate.dedup_max_drop = {} is not a fraction in [0, 1]",
                self.curate.dedup_max_drop
            ));
        }
        self.curate
            .policy
            .parse::<sv_data::ShortPolicy>()
            .map_err(|e| format!("curate.policy: {e}"))?;
        self.curate
            .splits
            .parse::<sv_data::SplitFractions>()
            .map_err(|e| format!("curate.splits: {e}"))?;
        if let Some(r) = &self.curate.ratios {
            sv_data::parse_ratios(r).map_err(|e| format!("curate.ratios: {e}"))?;
        }
        self.gate
            .split
            .parse::<sv_data::Split>()
            .map(|_| ())
            .or_else(|_| {
                if self.gate.split == "all" {
                    Ok(())
                } else {
                    Err(format!(
                        "gate.split {:?}: expected test, val, train or all",
                        self.gate.split
                    ))
                }
            })
    }

    /// The gate's sets, `(name, manifest)`.
    pub fn held_out_sets(&self) -> Vec<(String, PathBuf)> {
        if self.held_out.is_empty() {
            return vec![("pool".into(), self.pool.clone())];
        }
        self.held_out
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(n, f)| (n.to_string(), PathBuf::from(f)))
            .collect()
    }
}

/// A commented example, as `sv-trainer loop --example-config` prints it.
pub const EXAMPLE: &str = include_str!("../loop.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/loop.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, EXAMPLE).unwrap();
        let c = LoopConfig::load(&file).unwrap();
        assert!(c.work_dir.starts_with(dir.path().join("sub")), "{c:?}");
        assert!(c.pool.is_absolute());
        assert_eq!(c.publish.revision, "main");
    }

    #[test]
    fn mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loop.toml");
        std::fs::write(&file, EXAMPLE.replace("[publish]", "[publish]\nrepos = 1")).unwrap();
        let e = LoopConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("repos") && e.contains("loop.toml"), "{e}");
        let text = EXAMPLE.replace("retrain_after_days = 1", "retrain_after_days = -2");
        std::fs::write(&file, text).unwrap();
        let e = LoopConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("retrain_after_days"), "{e}");
        std::fs::write(&file, EXAMPLE.replace("owner/", "")).unwrap();
        let e = LoopConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("publish.repo"), "{e}");
    }
}
