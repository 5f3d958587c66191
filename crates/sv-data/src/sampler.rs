//! A class-balanced weighted sampler: each epoch draws indices with replacement so that
//! every label appears equally often in expectation, from (seed, epoch) alone.

use crate::error::{DataError, Result};
use crate::rng::SplitMix64;
use crate::sample::Label;

/// Draws sample indices with probability inversely proportional to the size of the
/// sample's class. Unlabelled samples are never drawn.
#[derive(Debug, Clone)]
pub struct BalancedSampler {
    cumulative: Vec<f64>,
    seed: u64,
}

impl BalancedSampler {
    /// A sampler over samples with these labels.
    pub fn new(labels: &[Label], seed: u64) -> Result<Self> {
        let count = |l: Label| labels.iter().filter(|x| **x == l).count();
        let (pos, neg) = (count(Label::Roadwork), count(Label::NoRoadwork));
        if pos + neg == 0 {
            return Err(DataError::Invalid(
                "no labelled samples to draw from".into(),
            ));
        }
        let mut total = 0.0;
        let cumulative = labels
            .iter()
            .map(|l| {
                total += match l {
                    Label::Roadwork => 1.0 / pos as f64,
                    Label::NoRoadwork => 1.0 / neg as f64,
                    Label::Unknown => 0.0,
                };
                total
            })
            .collect();
        Ok(Self { cumulative, seed })
    }

    /// `n` indices for `epoch`.
    pub fn epoch(&self, epoch: u64, n: usize) -> Vec<usize> {
        let total = *self.cumulative.last().expect("non-empty");
        let mut rng = SplitMix64::new(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (0..n)
            .map(|_| {
                let u = rng.next_f64() * total;
                self.cumulative
                    .partition_point(|c| *c <= u)
                    .min(self.cumulative.len() - 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_classes_equally_and_reproducibly() {
        let mut labels = vec![Label::NoRoadwork; 900];
        labels.extend(vec![Label::Roadwork; 100]);
        labels.push(Label::Unknown);
        let s = BalancedSampler::new(&labels, 5).unwrap();
        let draw = s.epoch(0, 20_000);
        let pos = draw
            .iter()
            .filter(|&&i| labels[i] == Label::Roadwork)
            .count() as f64;
        assert!((pos / 20_000.0 - 0.5).abs() < 0.02, "{pos}");
        assert!(draw.iter().all(|&i| labels[i] != Label::Unknown));
        assert_eq!(draw, s.epoch(0, 20_000));
        assert_ne!(draw, s.epoch(1, 20_000));
    }
}
