//! Binary classification metrics on roadwork probabilities, with the validator's rule
//! for a decision (`p > 0.5` is roadwork), and nearest-rank quantiles for latencies.

use serde::{Deserialize, Serialize};

/// Counts at the decision threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Roadwork predicted as roadwork.
    pub tp: u64,
    /// No roadwork predicted as roadwork.
    pub fp: u64,
    /// No roadwork predicted as no roadwork.
    pub tn: u64,
    /// Roadwork predicted as no roadwork.
    pub fn_: u64,
}

/// The subnet's reward for an answer history scoring `mcc` and `accuracy`:
/// `(0.5·max(0, MCC) + 0.5·accuracy)³`.
pub fn subnet_reward(mcc: f64, accuracy: f64) -> f64 {
    (0.5 * mcc.max(0.0) + 0.5 * accuracy).powi(3)
}

impl Confusion {
    /// Count `(probability, is_roadwork)` pairs with `p > 0.5` as roadwork.
    pub fn of(pairs: &[(f64, bool)]) -> Self {
        let mut c = Confusion::default();
        for &pair in pairs {
            c.add(pair);
        }
        c
    }

    /// Count one `(probability, is_roadwork)` pair.
    pub fn add(&mut self, (p, y): (f64, bool)) {
        match (p > 0.5, y) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// Number of samples.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// Mean of the recall of each class present.
    pub fn balanced_accuracy(&self) -> f64 {
        let mut recalls = Vec::new();
        if self.tp + self.fn_ > 0 {
            recalls.push(ratio(self.tp, self.tp + self.fn_));
        }
        if self.tn + self.fp > 0 {
            recalls.push(ratio(self.tn, self.tn + self.fp));
        }
        if recalls.is_empty() {
            0.0
        } else {
            recalls.iter().sum::<f64>() / recalls.len() as f64
        }
    }

    /// Matthews correlation coefficient (0 when undefined, as scikit-learn).
    pub fn mcc(&self) -> f64 {
        let (tp, fp, tn, fn_) = (
            self.tp as f64,
            self.fp as f64,
            self.tn as f64,
            self.fn_ as f64,
        );
        let den = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        if den == 0.0 {
            0.0
        } else {
            (tp * tn - fp * fn_) / den
        }
    }

    /// F1 of the roadwork class (0 when undefined).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Area under the ROC curve: the probability that a random roadwork sample scores above
/// a random other one, ties counting half (scikit-learn's `roc_auc_score`). `None` when
/// only one class is present.
pub fn roc_auc(pairs: &[(f64, bool)]) -> Option<f64> {
    let pos = pairs.iter().filter(|p| p.1).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks (1-based) over ties, then Mann–Whitney U.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += rank * sorted[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// The ROC curve's `(false positive rate, true positive rate)` points at every distinct
/// threshold, from (0, 0) to (1, 1).
pub fn roc_curve(pairs: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let pos = pairs.iter().filter(|p| p.1).count().max(1) as f64;
    let neg = pairs.iter().filter(|p| !p.1).count().max(1) as f64;
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, &(p, y)) in sorted.iter().enumerate() {
        if y {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if sorted.get(i + 1).is_none_or(|n| n.0 != p) {
            points.push((fp / neg, tp / pos));
        }
    }
    points
}

/// Mean squared error of the probabilities.
pub fn brier(pairs: &[(f64, bool)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs
        .iter()
        .map(|&(p, y)| (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / pairs.len() as f64
}

/// Expected calibration error over `bins` equal-width bins of the roadwork probability:
/// Σ (bin size / n) · |fraction roadwork in the bin − mean probability in the bin|. A
/// probability of exactly 1 falls in the last bin.
pub fn ece(pairs: &[(f64, bool)], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for &(p, y) in pairs {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(y));
        count[b] += 1;
    }
    let n = pairs.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (sum_y[b] - sum_p[b]).abs() / n)
        .sum()
}

/// Every metric of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Samples scored.
    pub samples: u64,
    /// Fraction correct at `p > 0.5`.
    pub accuracy: f64,
    /// Mean per-class recall.
    pub balanced_accuracy: f64,
    /// Matthews correlation coefficient.
    pub mcc: f64,
    /// F1 of the roadwork class.
    pub f1: f64,
    /// Area under the ROC curve (absent with one class).
    pub roc_auc: Option<f64>,
    /// Brier score.
    pub brier: f64,
    /// Expected calibration error, 10 bins.
    pub ece: f64,
    /// Confusion counts.
    pub confusion: Confusion,
    /// The subnet's reward for these answers if they were the last 100 (MCC) and the
    /// last 10 (accuracy) it saw: `(0.5·max(0, MCC) + 0.5·accuracy)³`.
    pub subnet_reward: f64,
}

impl Report {
    /// One line of the main scores: images, accuracy, balanced accuracy, MCC, F1,
    /// ROC-AUC (`-` when one class is absent), Brier score and ECE.
    pub fn summary(&self) -> String {
        format!(
            "{} images, accuracy {:.3}, balanced accuracy {:.3}, MCC {:.3}, F1 {:.3}, ROC-AUC {}, Brier {:.4}, ECE {:.4}",
            self.samples,
            self.accuracy,
            self.balanced_accuracy,
            self.mcc,
            self.f1,
            self.roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
            self.brier,
            self.ece
        )
    }

    /// Score `(probability, is_roadwork)` pairs.
    pub fn of(pairs: &[(f64, bool)]) -> Self {
        let confusion = Confusion::of(pairs);
        let (accuracy, mcc) = (confusion.accuracy(), confusion.mcc());
        Self {
            samples: confusion.total(),
            accuracy,
            balanced_accuracy: confusion.balanced_accuracy(),
            mcc,
            f1: confusion.f1(),
            roc_auc: roc_auc(pairs),
            brier: brier(pairs),
            ece: ece(pairs, 10),
            confusion,
            subnet_reward: subnet_reward(mcc, accuracy),
        }
    }
}

/// The `q` quantile (0–1) of sorted values by nearest rank; 0 for no values.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_predictions() {
        let good = [(0.9, true), (0.8, true), (0.1, false), (0.3, false)];
        let r = Report::of(&good);
        assert_eq!((r.accuracy, r.mcc, r.roc_auc), (1.0, 1.0, Some(1.0)));
        let bad: Vec<_> = good.iter().map(|&(p, y)| (1.0 - p, y)).collect();
        let r = Report::of(&bad);
        assert_eq!((r.accuracy, r.mcc, r.roc_auc), (0.0, -1.0, Some(0.0)));
        assert_eq!(r.subnet_reward, 0.0);
    }
}
