//! Mixing sources by target ratio, with an explicit policy for a source that has too few
//! samples. Which samples of a source are taken is decided by a hash of (seed, id), so a
//! mix is reproducible and mostly stable as sources grow.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::rng::unit_hash;
use crate::sample::{Sample, Source, Split};

/// One source's share of the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixTarget {
    /// The source.
    pub source: Source,
    /// Its share (shares are normalised to sum to 1).
    pub ratio: f64,
}

/// The seed plan's mix: NATIX 40 %, synthetic 30 %, hard cases 20 %, hard negatives 10 %.
pub fn seed_plan() -> Vec<MixTarget> {
    [
        (Source::Natix, 0.4),
        (Source::Synthetic, 0.3),
        (Source::HardCase, 0.2),
        (Source::HardNegative, 0.1),
    ]
    .into_iter()
    .map(|(source, ratio)| MixTarget { source, ratio })
    .collect()
}

/// A mix plan from text: `name=share,name=share,…` (shares are normalised later).
pub fn parse_ratios(text: &str) -> std::result::Result<Vec<MixTarget>, crate::DataError> {
    text.split(',')
        .map(|part| {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| crate::DataError::Invalid(format!("{part:?} is not name=share")))?;
            let ratio: f64 = share
                .trim()
                .parse()
                .map_err(|_| crate::DataError::Invalid(format!("{share:?} is not a number")))?;
            Ok(MixTarget {
                source: Source::from_name(name.trim()),
                ratio,
            })
        })
        .collect()
}

/// What to do when a source has fewer samples than its share asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortPolicy {
    /// Make the whole mix smaller so that every share holds exactly.
    Shrink,
    /// Take all of the short source and give its deficit to the others, in proportion to
    /// their shares (the total holds, the ratios bend).
    Redistribute,
    /// Repeat the short source's samples (the total and the ratios hold).
    Oversample,
}

impl std::str::FromStr for ShortPolicy {
    type Err = crate::DataError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "shrink" => Ok(Self::Shrink),
            "redistribute" => Ok(Self::Redistribute),
            "oversample" => Ok(Self::Oversample),
            other => Err(crate::DataError::Invalid(format!(
                "{other:?}: give shrink, redistribute or oversample"
            ))),
        }
    }
}

/// How one source fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixRow {
    /// Requested share (normalised).
    pub ratio: f64,
    /// Samples the source had.
    pub available: usize,
    /// Samples in the mix (counting repeats).
    pub taken: usize,
    /// Of which repeats.
    pub repeated: usize,
}

/// The outcome of a mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixReport {
    /// Per source, by name.
    pub sources: BTreeMap<String, MixRow>,
    /// Samples of sources that have no share.
    pub dropped_other_sources: usize,
    /// Input copies of an id already given (one sample per id is mixed; see
    /// [`unique_by_id`]).
    pub duplicate_ids: usize,
    /// The policy used.
    pub policy: ShortPolicy,
    /// Why the mix does not have the requested ratios or size, one line per short
    /// source (empty when it does).
    pub shortfalls: Vec<String>,
}

/// One sample per id, in the order ids first appear: a later copy (say a mined hard
/// case of a pool image) replaces an earlier one, but keeps the most protected split of
/// all copies (test, then validation, then train), so merging manifests never moves a
/// held-out image into training. Also gives how many copies were merged away.
pub fn unique_by_id(samples: Vec<Sample>) -> (Vec<Sample>, usize) {
    fn protection(split: Option<Split>) -> u8 {
        match split {
            Some(Split::Test) => 0,
            Some(Split::Val) => 1,
            Some(Split::Train) => 2,
            None => 3,
        }
    }
    let mut at: std::collections::HashMap<String, usize> = Default::default();
    let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
    let mut merged = 0;
    for s in samples {
        match at.get(&s.id) {
            Some(&i) => {
                merged += 1;
                let split = if protection(out[i].split) < protection(s.split) {
                    out[i].split
                } else {
                    s.split
                };
                out[i] = Sample { split, ..s };
            }
            None => {
                at.insert(s.id.clone(), out.len());
                out.push(s);
            }
        }
    }
    (out, merged)
}

/// Mix `samples` by `targets`. `total` is the mix size (default: as large as the policy
/// allows without repeating; for `Oversample`, what makes the largest source fit whole).
pub fn mix(
    samples: Vec<Sample>,
    targets: &[MixTarget],
    total: Option<usize>,
    policy: ShortPolicy,
    seed: u64,
) -> Result<(Vec<Sample>, MixReport)> {
    let sum: f64 = targets.iter().map(|t| t.ratio).sum();
    if targets.is_empty() || targets.iter().any(|t| t.ratio.is_nan() || t.ratio < 0.0) || sum <= 0.0
    {
        return Err(DataError::Invalid(
            "mix ratios must be ≥ 0 with a positive sum".into(),
        ));
    }
    let ratios: Vec<f64> = targets.iter().map(|t| t.ratio / sum).collect();
    let (samples, duplicate_ids) = unique_by_id(samples);
    let mut pools: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    let mut dropped = 0;
    for s in samples {
        match targets.iter().position(|t| t.source == s.source) {
            Some(i) => pools[i].push(s),
            None => dropped += 1,
        }
    }
    for pool in &mut pools {
        pool.sort_by(|a, b| {
            let (ka, kb) = (unit_hash(seed, "mix", &a.id), unit_hash(seed, "mix", &b.id));
            ka.total_cmp(&kb).then_with(|| a.id.cmp(&b.id))
        });
    }
    let avail: Vec<usize> = pools.iter().map(Vec::len).collect();
    let counts = match policy {
        ShortPolicy::Shrink => {
            let fit = ratios
                .iter()
                .zip(&avail)
                .filter(|(r, _)| **r > 0.0)
                .map(|(r, a)| (*a as f64 / r + 1e-9).floor() as usize)
                .min()
                .unwrap_or(0);
            let t = total.map_or(fit, |t| t.min(fit));
            apportion(&ratios, t)
                .into_iter()
                .zip(&avail)
                .map(|(c, a)| c.min(*a))
                .collect()
        }
        ShortPolicy::Redistribute => {
            let t = total.unwrap_or(avail.iter().sum()).min(avail.iter().sum());
            redistribute(&ratios, &avail, t)
        }
        ShortPolicy::Oversample => {
            let t = total.unwrap_or_else(|| {
                ratios
                    .iter()
                    .zip(&avail)
                    .filter(|(r, _)| **r > 0.0)
                    .map(|(r, a)| (*a as f64 / r - 1e-9).ceil() as usize)
                    .max()
                    .unwrap_or(0)
            });
            let c = apportion(&ratios, t);
            if let Some(i) = (0..c.len()).find(|&i| c[i] > 0 && avail[i] == 0) {
                return Err(DataError::Invalid(format!(
                    "source `{}` has a share but no samples to repeat",
                    targets[i].source
                )));
            }
            c
        }
    };
    let mut out = Vec::with_capacity(counts.iter().sum());
    let mut report = BTreeMap::new();
    for (i, pool) in pools.iter().enumerate() {
        let n = counts[i];
        out.extend((0..n).map(|k| pool[k % pool.len().max(1)].clone()));
        report.insert(
            targets[i].source.name().to_string(),
            MixRow {
                ratio: ratios[i],
                available: pool.len(),
                taken: n,
                repeated: n.saturating_sub(pool.len()),
            },
        );
    }
    let asked = total.unwrap_or(out.len());
    let shortfalls = shortfalls(targets, &ratios, &avail, &counts, asked, policy);
    Ok((
        out,
        MixReport {
            sources: report,
            dropped_other_sources: dropped,
            duplicate_ids,
            policy,
            shortfalls,
        },
    ))
}

/// A line per source that had fewer samples than its share of `asked` needs, saying
/// what the policy did about it.
fn shortfalls(
    targets: &[MixTarget],
    ratios: &[f64],
    avail: &[usize],
    counts: &[usize],
    asked: usize,
    policy: ShortPolicy,
) -> Vec<String> {
    let total: usize = counts.iter().sum();
    let want = apportion(ratios, asked);
    (0..targets.len())
        .filter(|&i| avail[i] < want[i])
        .map(|i| {
            let name = targets[i].source.name();
            let head = format!(
                "{name}: asked {:.1} % ({} of {asked}), has {}",
                ratios[i] * 100.0,
                want[i],
                avail[i]
            );
            match policy {
                ShortPolicy::Shrink => {
                    format!("{head}; the mix shrank to {total} so that every ratio holds")
                }
                ShortPolicy::Redistribute => format!(
                    "{head}; all {} taken ({:.1} % of the mix), the other {} went to the \
                     other sources (use --policy shrink to keep the ratios)",
                    counts[i],
                    100.0 * counts[i] as f64 / total.max(1) as f64,
                    want[i] - counts[i].min(want[i])
                ),
                ShortPolicy::Oversample => {
                    format!("{head}; its samples are repeated to fill {}", counts[i])
                }
            }
        })
        .collect()
}

/// Integer counts proportional to `ratios` summing to `total` (largest remainders).
fn apportion(ratios: &[f64], total: usize) -> Vec<usize> {
    let exact: Vec<f64> = ratios.iter().map(|r| r * total as f64).collect();
    // A hair of slack so that 0.3 · 250 counts as 75, not 74.999….
    let mut counts: Vec<usize> = exact.iter().map(|e| (e + 1e-9).floor() as usize).collect();
    let mut order: Vec<usize> = (0..ratios.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let short = total.saturating_sub(counts.iter().sum());
    for &i in order.iter().take(short) {
        counts[i] += 1;
    }
    counts
}

/// Counts summing to `total` (≤ Σ avail) that follow `ratios` where the sources allow,
/// moving each short source's deficit to the others in proportion to their ratios.
fn redistribute(ratios: &[f64], avail: &[usize], total: usize) -> Vec<usize> {
    let mut fixed: Vec<Option<usize>> = vec![None; ratios.len()];
    loop {
        let left = total - fixed.iter().flatten().sum::<usize>();
        let free: Vec<usize> = (0..ratios.len()).filter(|&i| fixed[i].is_none()).collect();
        let share: f64 = free.iter().map(|&i| ratios[i]).sum();
        let free_ratios: Vec<f64> = free
            .iter()
            .map(|&i| {
                if share > 0.0 {
                    ratios[i] / share
                } else {
                    1.0 / free.len() as f64
                }
            })
            .collect();
        let want = apportion(&free_ratios, left);
        let over: Vec<usize> = free
            .iter()
            .zip(&want)
            .filter(|(i, w)| **w > avail[**i])
            .map(|(i, _)| *i)
            .collect();
        if over.is_empty() {
            for (i, w) in free.iter().zip(want) {
                fixed[*i] = Some(w);
            }
            return fixed.into_iter().map(|c| c.unwrap_or(0)).collect();
        }
        for i in over {
            fixed[i] = Some(avail[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_policies_and_splits_parse_from_text() {
        let t = parse_ratios("natix=0.7, synthetic = 0.3").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].source.clone(), t[0].ratio), (Source::Natix, 0.7));
        assert_eq!((t[1].source.clone(), t[1].ratio), (Source::Synthetic, 0.3));
        for bad in ["natix", "natix=a", "natix=0.5,", ""] {
            assert!(parse_ratios(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "oversample".parse::<ShortPolicy>().unwrap(),
            ShortPolicy::Oversample
        );
        let err = "grow".parse::<ShortPolicy>().unwrap_err().to_string();
        assert!(err.contains("shrink, redistribute or oversample"), "{err}");
        let f: crate::SplitFractions = "0.7, 0.2,0.1".parse().unwrap();
        assert_eq!((f.train, f.val, f.test), (0.7, 0.2, 0.1));
        for bad in ["0.8,0.2", "a,b,c", "0.7,0.2,0.1,0"] {
            assert!(bad.parse::<crate::SplitFractions>().is_err(), "{bad}");
        }
    }
    use crate::sample::Label;
    use crate::split::tests::samples;

    fn pool() -> Vec<Sample> {
        let mut all = samples(400, Label::Roadwork, Source::Natix);
        all.extend(samples(300, Label::NoRoadwork, Source::Synthetic));
        all.extend(samples(50, Label::Roadwork, Source::HardCase)); // short: wants 20 %
        all.extend(samples(100, Label::NoRoadwork, Source::HardNegative));
        all.extend(samples(7, Label::Roadwork, Source::Named("other".into())));
        all
    }

    fn taken(r: &MixReport) -> Vec<usize> {
        ["natix", "synthetic", "hard_case", "hard_negative"]
            .iter()
            .map(|n| r.sources[*n].taken)
            .collect()
    }

    #[test]
    fn shrink_keeps_every_ratio() {
        let (mix, r) = mix(pool(), &seed_plan(), None, ShortPolicy::Shrink, 1).unwrap();
        // hard_case's 50 samples are 20 % of 250.
        assert_eq!(taken(&r), vec![100, 75, 50, 25]);
        assert_eq!(mix.len(), 250);
        assert_eq!(r.dropped_other_sources, 7);
        assert!(r.shortfalls.is_empty(), "{:?}", r.shortfalls);
    }

    #[test]
    fn redistribute_keeps_the_total() {
        let (mix, r) = mix(
            pool(),
            &seed_plan(),
            Some(500),
            ShortPolicy::Redistribute,
            1,
        )
        .unwrap();
        assert_eq!(mix.len(), 500);
        let t = taken(&r);
        assert_eq!(t[2], 50, "the short source gives everything");
        // Its deficit of 50 goes 4:3:1 to the others: 200+25, 150+19, 50+6 (largest remainders).
        assert_eq!(t.iter().sum::<usize>(), 500);
        assert!(t[0] > 200 && t[1] > 150 && t[3] > 50, "{t:?}");
        // The report says why the ratios bent: hard_case asked 100 of 500, had 50.
        assert_eq!(r.shortfalls.len(), 1, "{:?}", r.shortfalls);
        let line = &r.shortfalls[0];
        assert!(
            line.starts_with("hard_case: asked 20.0 % (100 of 500), has 50")
                && line.contains("all 50 taken (10.0 % of the mix)")
                && line.contains("the other 50 went to the other sources"),
            "{line}"
        );
    }

    #[test]
    fn oversample_repeats_the_short_source() {
        let (mix, r) = mix(pool(), &seed_plan(), Some(500), ShortPolicy::Oversample, 1).unwrap();
        assert_eq!(taken(&r), vec![200, 150, 100, 50]);
        assert_eq!(r.sources["hard_case"].repeated, 50);
        assert_eq!(mix.len(), 500);
    }

    #[test]
    fn same_seed_same_mix_other_seed_other_choice() {
        let ids = |seed| {
            let (m, _) = mix(pool(), &seed_plan(), Some(100), ShortPolicy::Shrink, seed).unwrap();
            m.into_iter().map(|s| s.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(3), ids(3));
        assert_ne!(ids(3), ids(4));
    }
}
