//! Deterministic train/val/test split keyed on the sample id alone.
//!
//! Each sample's split comes from a hash of (seed, its id), cut at the requested
//! fractions. A split is therefore a property of the image: it never changes when other
//! samples are added or removed, nor when the sample is relabelled, mined as a hard case
//! or moved to another source, and every label × source stratum gets the fractions in
//! expectation (`stats` shows the realised ones). An assigned split is never replaced.

use crate::error::{DataError, Result};
use crate::rng::unit_hash;
use crate::sample::{Sample, Split};

/// Fractions of each split; they must sum to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// Training.
    pub train: f64,
    /// Validation.
    pub val: f64,
    /// Test.
    pub test: f64,
}

impl std::str::FromStr for SplitFractions {
    type Err = crate::DataError;
    /// Three fractions `train,val,test`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parts: Option<Vec<f64>> = s.split(',').map(|p| p.trim().parse().ok()).collect();
        match parts.as_deref() {
            Some(&[train, val, test]) => Ok(Self { train, val, test }),
            _ => Err(crate::DataError::Invalid(format!(
                "{s:?}: give three fractions, train,val,test"
            ))),
        }
    }
}

impl Default for SplitFractions {
    /// 80 / 10 / 10.
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.1,
            test: 0.1,
        }
    }
}

impl SplitFractions {
    fn validate(&self) -> Result<()> {
        let parts = [self.train, self.val, self.test];
        if parts.iter().any(|p| !(0.0..=1.0).contains(p))
            || (parts.iter().sum::<f64>() - 1.0).abs() > 1e-9
        {
            return Err(DataError::Invalid(format!(
                "split fractions {}/{}/{} must be in [0, 1] and sum to 1",
                self.train, self.val, self.test
            )));
        }
        Ok(())
    }
}

/// The split of one sample: a function of its id (and the seed) only.
pub fn split_of(sample: &Sample, fractions: &SplitFractions, seed: u64) -> Split {
    let u = unit_hash(seed, "split", &sample.id);
    if u < fractions.train {
        Split::Train
    } else if u < fractions.train + fractions.val {
        Split::Val
    } else {
        Split::Test
    }
}

/// Assign a split to every sample that has none (existing assignments are kept, so a
/// manifest can grow without moving old samples).
pub fn assign_splits(samples: &mut [Sample], fractions: &SplitFractions, seed: u64) -> Result<()> {
    fractions.validate()?;
    for s in samples.iter_mut().filter(|s| s.split.is_none()) {
        s.split = Some(split_of(s, fractions, seed));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sample::{Label, Location, Source};

    pub(crate) fn samples(n: usize, label: Label, source: Source) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                id: crate::content_id(format!("{label:?}{source}{i}").as_bytes()),
                location: Location::File {
                    path: format!("{i}.jpg").into(),
                },
                label,
                source: source.clone(),
                split: None,
                size: None,
                metadata: Default::default(),
            })
            .collect()
    }

    #[test]
    fn fractions_hold_per_stratum_and_old_samples_keep_their_split() {
        let mut all = samples(3000, Label::Roadwork, Source::Natix);
        all.extend(samples(1000, Label::NoRoadwork, Source::Synthetic));
        assign_splits(&mut all, &SplitFractions::default(), 42).unwrap();
        for label in [Label::Roadwork, Label::NoRoadwork] {
            let stratum: Vec<_> = all.iter().filter(|s| s.label == label).collect();
            let val = stratum
                .iter()
                .filter(|s| s.split == Some(Split::Val))
                .count() as f64;
            let frac = val / stratum.len() as f64;
            assert!((frac - 0.1).abs() < 0.03, "{label:?}: {frac}");
        }
        // Adding samples moves nobody; a fresh assignment gives the same answer.
        let before: Vec<_> = all.iter().map(|s| s.split).collect();
        let mut more = all.clone();
        more.extend(samples(500, Label::Roadwork, Source::HardCase));
        assign_splits(&mut more, &SplitFractions::default(), 42).unwrap();
        assert_eq!(
            before,
            more[..all.len()]
                .iter()
                .map(|s| s.split)
                .collect::<Vec<_>>()
        );
        for s in &mut all {
            s.split = None;
        }
        assign_splits(&mut all, &SplitFractions::default(), 42).unwrap();
        assert_eq!(before, all.iter().map(|s| s.split).collect::<Vec<_>>());
    }

    #[test]
    fn a_split_follows_the_id_through_relabelling_and_mining() {
        let f = SplitFractions::default();
        for s in samples(300, Label::Unknown, Source::Natix) {
            let before = split_of(&s, &f, 7);
            let mut mined = s.clone();
            mined.label = Label::NoRoadwork;
            mined.source = Source::HardNegative;
            assert_eq!(split_of(&mined, &f, 7), before, "{}", s.id);
        }
    }

    #[test]
    fn bad_fractions_are_refused() {
        let f = SplitFractions {
            train: 0.9,
            val: 0.2,
            test: 0.0,
        };
        assert!(assign_splits(&mut [], &f, 0).is_err());
    }
}
