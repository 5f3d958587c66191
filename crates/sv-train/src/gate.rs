//! The deploy gate: a candidate against the model in production on the same held-out
//! images, both as they are and as validators send them (each image made into a
//! validator challenge: a level 0–3 drawn with a fixed seed, 224² JPEG at quality 75),
//! decided on the subnet's reward, `(0.5·max(0, MCC) + 0.5·accuracy)³`, with a paired
//! bootstrap, and relaxed as production ages.
//!
//! The decision uses the validator-style sets (what validators score); clean sets are
//! reported beside them. With `base` the improvement asked of a candidate against a new
//! production model (in reward points, 1 point = 0.01 of reward) and production `age`
//! days old, the required improvement is `r = base · (1 − min(age, 90) / 90)`, and the
//! candidate passes when the observed difference is at least `r` and the 95 % interval's
//! lower bound is above `r − base`. So a new production needs a clear improvement (lower
//! bound above 0), and one 90 days old only needs a candidate that is not worse (by more
//! than `base` at the lower bound) — the reward it would otherwise lose to age decides.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sv_augment::rng::AugRng;
use sv_augment::validator::ValidatorSettings;
use sv_data::{Location, Sample};

use crate::error::{Result, TrainError};
use crate::finetune::{Logits, ScoredInput, predict};
use crate::metrics::{Confusion, subnet_reward};

/// Days after which a production model is not worth keeping over an equal candidate.
pub const DECAY_DAYS: f64 = 90.0;

/// Both models' answers on one set of images, in the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSet {
    /// The set's name (`NAME` for clean images, `NAME/validator` for challenges).
    pub name: String,
    /// Whether the images are validator challenges.
    pub validator_style: bool,
    /// The candidate's (probability, label) per image.
    pub candidate: Vec<(f64, bool)>,
    /// Production's (probability, label) per image.
    pub production: Vec<(f64, bool)>,
}

/// Accuracy, MCC and the subnet's reward of one model on one set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Fraction right at `p > 0.5`.
    pub accuracy: f64,
    /// Matthews correlation (0 when a row or column of the confusion is empty).
    pub mcc: f64,
    /// `(0.5·max(0, MCC) + 0.5·accuracy)³`.
    pub reward: f64,
}

/// One set as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetReport {
    /// The set's name.
    pub name: String,
    /// Whether its images are validator challenges (the decision's sets).
    pub validator_style: bool,
    /// Images scored.
    pub images: usize,
    /// The candidate's scores.
    pub candidate: Scores,
    /// Production's scores.
    pub production: Scores,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Every set, named.
    pub sets: Vec<SetReport>,
    /// The sets the decision pools (the validator-style ones, else all).
    pub decided_on: Vec<String>,
    /// Reward difference on the pooled decision sets, candidate − production, in points.
    pub reward_difference_points: f64,
    /// 95 % paired-bootstrap interval of that difference, in points.
    pub interval_points: (f64, f64),
    /// Accuracy difference on the same sets, in points, for reference.
    pub accuracy_difference_points: f64,
    /// Its 95 % paired-bootstrap interval, in points.
    pub accuracy_interval_points: (f64, f64),
    /// Production's age in days, when known (unknown counts as new).
    pub production_age_days: Option<f64>,
    /// Improvement asked of a candidate against a new production, in points.
    pub base_points: f64,
    /// Improvement required at production's age, in points.
    pub required_points: f64,
    /// Whether the candidate should replace production.
    pub pass: bool,
    /// Why, in words.
    pub reason: String,
}

/// How the gate decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateSettings {
    /// Improvement asked against a new production model, in reward points.
    pub base_points: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            base_points: 1.0,
            resamples: 2000,
            seed: 0,
        }
    }
}

/// The improvement required of a candidate when production is `age_days` old (unknown:
/// new), in points.
pub fn required_points(base_points: f64, age_days: Option<f64>) -> f64 {
    let age = age_days.unwrap_or(0.0).clamp(0.0, DECAY_DAYS);
    base_points * (1.0 - age / DECAY_DAYS)
}

/// The age in days at `now` (Unix seconds) of the model in `dir`, from the
/// `submission_time` of its `model_card.json`; `None` without a card or a time.
pub fn age_days_of(dir: &Path, now: u64) -> Option<f64> {
    let card = sv_records::card::CardStamp::read(&dir.join("model_card.json"))?;
    let submitted = card.submission_time?;
    Some(now.saturating_sub(submitted) as f64 / 86_400.0)
}

/// Scores of `pairs` restricted to `index` (all of them when `None`).
fn scores(pairs: &[(f64, bool)], index: Option<&[usize]>) -> Scores {
    let confusion = match index {
        Some(idx) => {
            let mut c = Confusion::default();
            idx.iter().for_each(|&i| c.add(pairs[i]));
            c
        }
        None => Confusion::of(pairs),
    };
    let (accuracy, mcc) = (confusion.accuracy(), confusion.mcc());
    Scores {
        accuracy,
        mcc,
        reward: subnet_reward(mcc, accuracy),
    }
}

/// Decide between candidate and production on `sets` (see the module).
pub fn reward_gate(
    sets: &[ScoredSet],
    production_age_days: Option<f64>,
    settings: &GateSettings,
) -> Result<GateReport> {
    for s in sets {
        if s.candidate.len() != s.production.len() {
            return Err(TrainError::Unpaired(format!(
                "set {}: {} answers from the candidate, {} from production",
                s.name,
                s.candidate.len(),
                s.production.len()
            )));
        }
    }
    let decided: Vec<&ScoredSet> = if sets.iter().any(|s| s.validator_style) {
        sets.iter().filter(|s| s.validator_style).collect()
    } else {
        sets.iter().collect()
    };
    let cand: Vec<(f64, bool)> = decided.iter().flat_map(|s| s.candidate.clone()).collect();
    let prod: Vec<(f64, bool)> = decided.iter().flat_map(|s| s.production.clone()).collect();
    if cand.is_empty() {
        return Err(TrainError::Empty("no images to decide on".into()));
    }
    let diff =
        |idx: Option<&[usize]>| 100.0 * (scores(&cand, idx).reward - scores(&prod, idx).reward);
    let observed = diff(None);
    let n = cand.len();
    let mut rng = sv_data::rng::SplitMix64::new(settings.seed);
    let mut idx = vec![0usize; n];
    let mut stats: Vec<f64> = (0..settings.resamples.max(1))
        .map(|_| {
            for slot in idx.iter_mut() {
                *slot = (rng.next_u64() % n as u64) as usize;
            }
            diff(Some(&idx))
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let (lo, hi) = (
        crate::metrics::nearest_rank(&stats, 0.025),
        crate::metrics::nearest_rank(&stats, 0.975),
    );
    let right = |pairs: &[(f64, bool)]| -> Vec<bool> {
        pairs.iter().map(|(p, y)| (*p > 0.5) == *y).collect()
    };
    let (acc_diff, acc_lo, acc_hi) = crate::evaluate::paired_bootstrap(
        &right(&cand),
        &right(&prod),
        settings.resamples,
        settings.seed,
    );
    let base = settings.base_points;
    let required = required_points(base, production_age_days);
    let floor = required - base;
    let pass = observed >= required && lo > floor;
    let age = production_age_days.map_or("of unknown age (counted as new)".to_string(), |a| {
        format!("{a:.0} days old")
    });
    let reason = if pass {
        format!(
            "candidate's reward is {observed:+.2} points (95 % interval [{lo:+.2}, {hi:+.2}]); \
             production is {age}, which asks for {required:+.2} with the interval above {floor:+.2}: deploy the candidate"
        )
    } else if observed < required {
        format!(
            "candidate's reward is {observed:+.2} points, below the {required:+.2} asked while production is {age}: keep production"
        )
    } else {
        format!(
            "candidate's reward is {observed:+.2} points but its 95 % interval [{lo:+.2}, {hi:+.2}] reaches {floor:+.2} or below \
             (production is {age}): not clear enough, keep production"
        )
    };
    Ok(GateReport {
        sets: sets
            .iter()
            .map(|s| SetReport {
                name: s.name.clone(),
                validator_style: s.validator_style,
                images: s.candidate.len(),
                candidate: scores(&s.candidate, None),
                production: scores(&s.production, None),
            })
            .collect(),
        decided_on: decided.iter().map(|s| s.name.clone()).collect(),
        reward_difference_points: observed,
        interval_points: (lo, hi),
        accuracy_difference_points: 100.0 * acc_diff,
        accuracy_interval_points: (100.0 * acc_lo, 100.0 * acc_hi),
        production_age_days,
        base_points: base,
        required_points: required,
        pass,
        reason,
    })
}

/// `samples` made into validator challenges (the default validator settings: a level
/// drawn per image from `seed` and its id, 224² JPEG at quality 75), written into `dir`;
/// images that cannot be read are left out.
pub fn validator_challenges(samples: &[Sample], seed: u64, dir: &Path) -> Result<Vec<Sample>> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let settings = ValidatorSettings::default();
    let mut out = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let Ok(bytes) = s.location.read() else {
            continue;
        };
        let mut rng = AugRng::for_sample(seed, &s.id, 0);
        let Ok((level, jpeg)) = settings.challenge(&bytes, &mut rng) else {
            continue;
        };
        let path = dir.join(format!("{i}.jpg"));
        std::fs::write(&path, &jpeg).map_err(|e| TrainError::io(&path, e))?;
        let mut c = s.clone();
        c.location = Location::File { path };
        c.metadata.insert("validator_level".into(), level.into());
        out.push(c);
    }
    Ok(out)
}

/// Both models' answers on each named set of samples, as they are (`NAME`) and as
/// validator challenges drawn with `seed` (`NAME/validator`); each model prepares its
/// input its own way. The challenges are written into a temporary folder
/// that is removed afterwards.
pub fn score_sets<C: Logits, P: Logits>(
    candidate: (&C, ScoredInput),
    production: (&P, ScoredInput),
    sets: &[(String, Vec<Sample>)],
    seed: u64,
    device: &Device,
) -> Result<Vec<ScoredSet>> {
    let scratch = std::env::temp_dir().join(format!(
        "sv-gate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = (|| {
        let mut out = Vec::new();
        for (k, (name, samples)) in sets.iter().enumerate() {
            let challenges = validator_challenges(samples, seed, &scratch.join(k.to_string()))?;
            for (label, images, validator_style) in [
                (name.clone(), samples, false),
                (format!("{name}/validator"), &challenges, true),
            ] {
                let c = predict(candidate.0, images, candidate.1.clone(), 32, device)?;
                let p = predict(production.0, images, production.1.clone(), 32, device)?;
                out.push(ScoredSet {
                    name: label,
                    validator_style,
                    candidate: c,
                    production: p,
                });
            }
        }
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` answers, half of them roadwork, wrong on every `wrong_every`-th image
    /// (shifted by `offset`), right on the rest.
    fn answers(n: usize, wrong_every: usize, offset: usize) -> Vec<(f64, bool)> {
        (0..n)
            .map(|i| {
                let y = i % 2 == 0;
                let wrong = wrong_every > 0 && (i + offset).is_multiple_of(wrong_every);
                let p = if y != wrong { 0.8 } else { 0.2 };
                (p, y)
            })
            .collect()
    }

    fn set(name: &str, validator: bool, c: Vec<(f64, bool)>, p: Vec<(f64, bool)>) -> ScoredSet {
        ScoredSet {
            name: name.into(),
            validator_style: validator,
            candidate: c,
            production: p,
        }
    }

    #[test]
    fn the_validator_robust_candidate_wins_though_it_is_worse_on_clean_images() {
        // Clean: candidate wrong on 1 in 8, production on 1 in 9 (production better).
        // Validator-style: candidate wrong on 1 in 6, production on 1 in 4. This is the
        // shape of a candidate trained with the validator augmentation.
        let sets = vec![
            set("real", false, answers(720, 8, 1), answers(720, 9, 2)),
            set(
                "real/validator",
                true,
                answers(720, 6, 3),
                answers(720, 4, 0),
            ),
        ];
        let report = reward_gate(&sets, Some(0.0), &GateSettings::default()).unwrap();
        assert!(report.sets[0].candidate.accuracy < report.sets[0].production.accuracy);
        assert!(report.pass, "{}", report.reason);
        assert_eq!(report.decided_on, vec!["real/validator".to_string()]);
        // Named sets in JSON.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["sets"][1]["name"], "real/validator");
        assert_eq!(json["sets"][1]["validator_style"], true);
    }

    #[test]
    fn an_equal_candidate_waits_for_production_to_age() {
        let same = answers(800, 5, 0);
        let sets = vec![set("v", true, same.clone(), same)];
        let young = reward_gate(&sets, Some(10.0), &GateSettings::default()).unwrap();
        assert!(!young.pass, "{}", young.reason);
        let old = reward_gate(&sets, Some(95.0), &GateSettings::default()).unwrap();
        assert_eq!(old.required_points, 0.0);
        assert!(old.pass, "{}", old.reason);
        assert!((required_points(1.0, Some(45.0)) - 0.5).abs() < 1e-12);
        assert_eq!(required_points(1.0, None), 1.0);
    }

    #[test]
    fn a_worse_candidate_never_passes_and_a_clear_one_always_does() {
        let good = answers(600, 20, 0);
        let bad = answers(600, 4, 1);
        for age in [None, Some(30.0), Some(200.0)] {
            let worse = vec![set("v", true, bad.clone(), good.clone())];
            assert!(
                !reward_gate(&worse, age, &GateSettings::default())
                    .unwrap()
                    .pass
            );
            let better = vec![set("v", true, good.clone(), bad.clone())];
            assert!(
                reward_gate(&better, age, &GateSettings::default())
                    .unwrap()
                    .pass
            );
        }
    }

    #[test]
    fn rewards_follow_the_subnet_formula() {
        // 3 right of 4, MCC of (tp 1, tn 2, fp 1, fn 0).
        let pairs = [(0.9, true), (0.1, false), (0.2, false), (0.7, false)];
        let s = scores(&pairs, None);
        let mcc = (1.0 * 2.0 - 1.0 * 0.0) / ((2.0f64) * 1.0 * 3.0 * 2.0).sqrt();
        assert!((s.mcc - mcc).abs() < 1e-12);
        assert!((s.reward - (0.5 * mcc + 0.5 * 0.75).powi(3)).abs() < 1e-12);
        let r = crate::metrics::Report::of(&pairs);
        assert!((s.reward - r.subnet_reward).abs() < 1e-12, "same as Report");
    }
}
