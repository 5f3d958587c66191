//! Near duplicates: the groups an index finds at a similarity threshold, one sample kept
//! per group by a stated rule, and groups that span train and a held-out split (a leak)
//! resolved by keeping the held-out copy, or refused.

use serde::Serialize;
use sv_data::{Label, Sample, Split};
use sv_index::{EmbeddingIndex, near_duplicate_groups};

use crate::error::CurateError;

/// A source preference as written on the command line or in a config,
/// `natix,miner_log,…`, for [`keeper`] and [`dedup`].
pub fn parse_source_order(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_string()).collect()
}

/// Which sample of a near-duplicate group is kept: one in the test split, else in the
/// validation split (so a group that spans train and a held-out split keeps the
/// held-out copy and drops the train copies); then labelled before unlabelled, then the
/// source earlier in `source_order` (unlisted sources after), then the smallest id.
pub fn keeper(group: &[&Sample], source_order: &[String]) -> usize {
    let held_out = |s: &Sample| match s.split {
        Some(Split::Test) => 0,
        Some(Split::Val) => 1,
        _ => 2,
    };
    let rank = |s: &Sample| {
        (
            held_out(s),
            s.label == Label::Unknown,
            source_order
                .iter()
                .position(|n| n == s.source.name())
                .unwrap_or(usize::MAX),
            s.id.clone(),
        )
    };
    (0..group.len())
        .min_by_key(|&i| rank(group[i]))
        .expect("a group has members")
}

/// One near-duplicate group as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The kept sample's id.
    pub kept: String,
    /// The dropped samples' ids.
    pub dropped: Vec<String>,
    /// The group spanned train and a held-out split: the kept copy is held out and
    /// the train copies were dropped.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leak: bool,
}

/// What to do with a near-duplicate group that spans train and a held-out split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLeak {
    /// Keep the held-out copy and drop the train copies (the default).
    DropTrain,
    /// Refuse the whole deduplication.
    Fail,
}

impl std::str::FromStr for OnLeak {
    type Err = CurateError;
    fn from_str(s: &str) -> Result<Self, CurateError> {
        match s {
            "drop-train" => Ok(OnLeak::DropTrain),
            "fail" => Ok(OnLeak::Fail),
            other => Err(CurateError::Input(format!(
                "{other:?}: give drop-train or fail"
            ))),
        }
    }
}

/// The near-duplicate groups of `index` at `min_similarity` (positions in the index).
pub fn groups(
    index: &dyn EmbeddingIndex,
    min_similarity: f32,
) -> Result<Vec<Vec<usize>>, CurateError> {
    Ok(near_duplicate_groups(index, min_similarity)?)
}

/// Resolve `groups` (from [`groups`]) over `samples`: one kept per group by [`keeper`];
/// returns the samples kept (in input order) and the groups as ids. Samples missing
/// from the index are kept.
pub fn dedup(
    samples: Vec<Sample>,
    index: &dyn EmbeddingIndex,
    groups: &[Vec<usize>],
    source_order: &[String],
) -> (Vec<Sample>, Vec<Group>) {
    let by_id: std::collections::HashMap<&str, usize> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut drop = vec![false; samples.len()];
    let mut resolved = vec![];
    for g in groups {
        let members: Vec<usize> = g
            .iter()
            .filter_map(|&pos| by_id.get(index.id(pos)).copied())
            .collect();
        if members.len() < 2 {
            continue;
        }
        let refs: Vec<&Sample> = members.iter().map(|&i| &samples[i]).collect();
        let k = keeper(&refs, source_order);
        let leak = spans_train_and_held_out(&refs);
        let mut dropped = vec![];
        for (j, &i) in members.iter().enumerate() {
            if j != k {
                drop[i] = true;
                dropped.push(samples[i].id.clone());
            }
        }
        resolved.push(Group {
            kept: samples[members[k]].id.clone(),
            dropped,
            leak,
        });
    }
    let kept = samples
        .into_iter()
        .zip(drop)
        .filter_map(|(s, d)| (!d).then_some(s))
        .collect();
    (kept, resolved)
}

/// Whether `group` holds a train sample and a validation or test one.
fn spans_train_and_held_out(group: &[&Sample]) -> bool {
    let has = |want: &[Split]| {
        group
            .iter()
            .any(|s| s.split.is_some_and(|sp| want.contains(&sp)))
    };
    has(&[Split::Train]) && has(&[Split::Val, Split::Test])
}

/// The groups (from [`groups`]) that hold a train sample and a validation or test one,
/// as ids: the input of a refusal under [`OnLeak::Fail`].
pub fn leaks(
    samples: &[Sample],
    index: &dyn EmbeddingIndex,
    groups: &[Vec<usize>],
) -> Vec<Vec<String>> {
    let by_id: std::collections::HashMap<&str, &Sample> =
        samples.iter().map(|s| (s.id.as_str(), s)).collect();
    groups
        .iter()
        .filter_map(|g| {
            let members: Vec<&Sample> = g
                .iter()
                .filter_map(|&p| by_id.get(index.id(p)).copied())
                .collect();
            spans_train_and_held_out(&members)
                .then(|| members.iter().map(|s| s.id.clone()).collect())
        })
        .collect()
}
