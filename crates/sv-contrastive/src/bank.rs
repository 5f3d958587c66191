//! The feature bank and the synthetic hard negatives drawn from it.

use std::collections::VecDeque;

use crate::ContrastiveError;

/// One remembered embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct BankEntry {
    /// The sample it came from.
    pub id: String,
    /// Its label (0 no roadwork, 1 roadwork).
    pub label: u8,
    /// The L2-normalised embedding.
    pub feature: Vec<f32>,
}

/// A bounded FIFO of recent embeddings; pushing past the capacity drops the oldest.
#[derive(Debug, Clone)]
pub struct FeatureBank {
    dim: usize,
    capacity: usize,
    entries: VecDeque<BankEntry>,
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl FeatureBank {
    /// An empty bank of `dim`-dimensional features holding at most `capacity`.
    pub fn new(dim: usize, capacity: usize) -> Self {
        Self {
            dim,
            capacity,
            entries: VecDeque::with_capacity(capacity),
        }
    }

    /// A bank holding `entries` as they are (already normalised, e.g. read back from a
    /// checkpoint), oldest first; only the newest `capacity` are kept.
    pub fn from_entries(
        dim: usize,
        capacity: usize,
        entries: Vec<BankEntry>,
    ) -> Result<Self, ContrastiveError> {
        if let Some(e) = entries.iter().find(|e| e.feature.len() != dim) {
            return Err(ContrastiveError::Shape(format!(
                "feature of {:?} has {} values, the bank holds {dim}",
                e.id,
                e.feature.len()
            )));
        }
        let skip = entries.len().saturating_sub(capacity);
        Ok(Self {
            dim,
            capacity,
            entries: entries.into_iter().skip(skip).collect(),
        })
    }

    /// Dimension of the features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Most features held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Features held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &BankEntry> {
        self.entries.iter()
    }

    /// Remember `feature` (normalised here; detached values) of sample `id`.
    pub fn push(&mut self, id: &str, label: u8, feature: &[f32]) -> Result<(), ContrastiveError> {
        if feature.len() != self.dim {
            return Err(ContrastiveError::Shape(format!(
                "feature of {id:?} has {} values, the bank holds {}",
                feature.len(),
                self.dim
            )));
        }
        if self.capacity == 0 {
            return Ok(());
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(BankEntry {
            id: id.to_string(),
            label,
            feature: normalised(feature),
        });
        Ok(())
    }

    /// The `n` entries of a label other than `label` most similar to `anchor`
    /// (normalised), most similar first; ties go to the older entry.
    pub fn hardest_other_class(&self, anchor: &[f32], label: u8, n: usize) -> Vec<&BankEntry> {
        let mut scored: Vec<(f32, usize, &BankEntry)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.label != label)
            .map(|(i, e)| (dot(anchor, &e.feature), i, e))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(n).map(|(_, _, e)| e).collect()
    }
}

/// Synthetic hard negatives for a batch: `anchors` (B × D, row-major, detached values),
/// their `labels`, and `alphas` (B × M mixing weights, each in [0.5, 0.9]). Row i, slot m
/// is `normalise(a·b + (1 − a)·z_i)` for the m-th hardest other-class bank entry `b`;
/// returns the B × M × D values and, per anchor, how many slots are filled (fewer when
/// the bank holds fewer other-class entries; the rest are zero).
pub fn synthetic_negatives(
    anchors: &[f32],
    labels: &[u8],
    bank: &FeatureBank,
    alphas: &[f32],
    per_anchor: usize,
) -> Result<(Vec<f32>, Vec<usize>), ContrastiveError> {
    let d = bank.dim;
    let b = labels.len();
    if anchors.len() != b * d || alphas.len() != b * per_anchor {
        return Err(ContrastiveError::Shape(format!(
            "{b} labels need {} anchor values and {} alphas; got {} and {}",
            b * d,
            b * per_anchor,
            anchors.len(),
            alphas.len()
        )));
    }
    if let Some(a) = alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(ContrastiveError::Shape(format!(
            "mixing weight {a} is outside [0, 1]"
        )));
    }
    let mut out = vec![0f32; b * per_anchor * d];
    let mut filled = Vec::with_capacity(b);
    for i in 0..b {
        let z = normalised(&anchors[i * d..(i + 1) * d]);
        let hard = bank.hardest_other_class(&z, labels[i], per_anchor);
        for (m, e) in hard.iter().enumerate() {
            let a = alphas[i * per_anchor + m];
            let mixed: Vec<f32> = e
                .feature
                .iter()
                .zip(&z)
                .map(|(bv, zv)| a * bv + (1.0 - a) * zv)
                .collect();
            let at = (i * per_anchor + m) * d;
            out[at..at + d].copy_from_slice(&normalised(&mixed));
        }
        filled.push(hard.len());
    }
    Ok((out, filled))
}

/// Mixing weights uniform in [`low`, `high`] from a seeded generator (SplitMix64).
pub fn draw_alphas(seed: u64, n: usize, low: f32, high: f32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            low + (high - low) * u
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, feature: Vec<f32>) -> BankEntry {
        BankEntry {
            id: id.into(),
            label: 0,
            feature,
        }
    }

    #[test]
    fn a_restored_bank_keeps_the_newest_entries_as_given() {
        // Not unit length: restoring must not renormalise.
        let entries = vec![
            entry("a", vec![2.0, 0.0]),
            entry("b", vec![0.0, 3.0]),
            entry("c", vec![1.0, 1.0]),
        ];
        let bank = FeatureBank::from_entries(2, 2, entries).unwrap();
        let kept: Vec<(&str, &[f32])> = bank
            .entries()
            .map(|e| (e.id.as_str(), e.feature.as_slice()))
            .collect();
        assert_eq!(kept, vec![("b", &[0.0, 3.0][..]), ("c", &[1.0, 1.0][..])]);
        let err = FeatureBank::from_entries(3, 2, vec![entry("x", vec![1.0])]).unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }
}
