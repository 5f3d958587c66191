//! The auxiliary contrastive term of a fine-tuning run (`hard_negatives` in the config):
//! a supervised-contrastive loss on the classifier's pooled features, with synthetic
//! hard negatives mixed from a feature bank of recent batches (sv-contrastive), added to
//! the cross-entropy with a weight. The bank goes into every checkpoint, so a resumed
//! run draws the same negatives as one that was never interrupted.

use std::path::Path;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use sv_contrastive::{BankEntry, FeatureBank, supcon_loss, synthetic_negatives};

use crate::checkpoint::{Checkpoint, values_of};
use crate::error::{Result, TrainError};

/// Settings of the contrastive term, the `[hard_negatives]` table of a run's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardNegatives {
    /// Weight of the term beside cross-entropy.
    pub weight: f64,
    /// Softmax temperature of the similarities.
    pub temperature: f64,
    /// Features the bank remembers (the newest).
    pub bank_size: usize,
    /// Synthetic negatives per anchor.
    pub per_anchor: usize,
    /// Range of the mixing weight `a` in `a·bank + (1 − a)·anchor`.
    pub alpha: [f64; 2],
}

impl Default for HardNegatives {
    fn default() -> Self {
        Self {
            weight: 0.1,
            temperature: 0.07,
            bank_size: 4096,
            per_anchor: 8,
            alpha: [0.5, 0.9],
        }
    }
}

impl HardNegatives {
    /// The first setting out of range, as `key: why`.
    pub fn problem(&self) -> Option<String> {
        let [low, high] = self.alpha;
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            Some("hard_negatives.weight: must be 0 or more".into())
        } else if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            Some("hard_negatives.temperature: must be positive".into())
        } else if !(0.0..=1.0).contains(&low) || !(low..=1.0).contains(&high) {
            Some("hard_negatives.alpha: must be [low, high] with 0 ≤ low ≤ high ≤ 1".into())
        } else {
            None
        }
    }
}

/// Salt of the mixing-weight draws, so they differ from the run's other draws.
const ALPHA_SALT: u64 = 0x6861_7264_6e65_6773;

/// The contrastive term's state during a run: its settings and the feature bank.
#[derive(Debug, Clone)]
pub struct HardNegativeTerm {
    settings: HardNegatives,
    seed: u64,
    bank: Option<FeatureBank>,
}

/// What one step of the term gave.
pub struct TermStep {
    /// The weighted loss to add to the cross-entropy.
    pub loss: Tensor<1>,
    /// The unweighted contrastive loss, for the log.
    pub value: f64,
}

impl HardNegativeTerm {
    /// A term with an empty bank; `seed` is the run's.
    pub fn new(settings: HardNegatives, seed: u64) -> Self {
        Self {
            settings,
            seed,
            bank: None,
        }
    }

    /// Features in the bank.
    pub fn bank_len(&self) -> usize {
        self.bank.as_ref().map_or(0, FeatureBank::len)
    }

    /// The term for a batch: `features` `[B, D]` (gradients flow through them), their
    /// `labels` (1 roadwork) and sample `ids`, at optimizer step `step` (which seeds the
    /// mixing weights). The batch's features then join the bank.
    pub fn step(
        &mut self,
        features: Tensor<2>,
        labels: &[u8],
        ids: &[String],
        step: u64,
    ) -> Result<TermStep> {
        let [b, d] = features.dims();
        let capacity = self.settings.bank_size;
        let bank = self
            .bank
            .get_or_insert_with(|| FeatureBank::new(d, capacity));
        let values = values_of(features.clone().detach());
        let m = self.settings.per_anchor;
        let [low, high] = self.settings.alpha;
        let alphas = sv_contrastive::bank::draw_alphas(
            self.seed ^ ALPHA_SALT ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            b * m,
            low as f32,
            high as f32,
        );
        let (negatives, filled) = synthetic_negatives(&values, labels, bank, &alphas, m)?;
        let loss = supcon_loss(
            features,
            labels,
            Some((&negatives, &filled, m)),
            self.settings.temperature as f32,
        )?;
        let value = f64::from(loss.clone().into_scalar::<f32>());
        for (i, (id, label)) in ids.iter().zip(labels).enumerate() {
            bank.push(id, *label, &values[i * d..(i + 1) * d])?;
        }
        Ok(TermStep {
            loss: loss.mul_scalar(self.settings.weight as f32),
            value,
        })
    }

    /// Put the bank into `ck` (`extra` tensors `bank.features` `[N, D]` and
    /// `bank.labels` `[N]`, the ids in `meta["bank_ids"]`).
    pub fn save_into(&self, ck: &mut Checkpoint) {
        let Some(bank) = self.bank.as_ref().filter(|b| !b.is_empty()) else {
            return;
        };
        let entries: Vec<&BankEntry> = bank.entries().collect();
        let features: Vec<f32> = entries
            .iter()
            .flat_map(|e| e.feature.iter().copied())
            .collect();
        let labels: Vec<f32> = entries.iter().map(|e| f32::from(e.label)).collect();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        ck.extra.insert(
            "bank.features".into(),
            (vec![entries.len(), bank.dim()], features),
        );
        ck.extra
            .insert("bank.labels".into(), (vec![entries.len()], labels));
        ck.meta.insert(
            "bank_ids".into(),
            serde_json::to_string(&ids).expect("serialisable"),
        );
    }

    /// Take the bank back from a checkpoint read from `path` (an empty bank when it has
    /// none).
    pub fn restore(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let (Some((fshape, features)), Some((_, labels)), Some(ids)) = (
            ck.extra.get("bank.features"),
            ck.extra.get("bank.labels"),
            ck.meta.get("bank_ids"),
        ) else {
            self.bank = None;
            return Ok(());
        };
        let ids: Vec<String> =
            serde_json::from_str(ids).map_err(|e| bad(format!("bank_ids: {e}")))?;
        let (n, d) = match fshape.as_slice() {
            [n, d] => (*n, *d),
            other => return Err(bad(format!("bank.features has shape {other:?}"))),
        };
        if ids.len() != n || labels.len() != n || features.len() != n * d {
            return Err(bad(format!(
                "the bank's {n} features, {} labels and {} ids disagree",
                labels.len(),
                ids.len()
            )));
        }
        let entries = ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| BankEntry {
                id,
                label: labels[i] as u8,
                feature: features[i * d..(i + 1) * d].to_vec(),
            })
            .collect();
        self.bank = Some(
            FeatureBank::from_entries(d, self.settings.bank_size, entries)
                .map_err(|e| bad(e.to_string()))?,
        );
        Ok(())
    }
}
