//! Near duplicates: the groups an index finds at a similarity threshold, one sample kept
//! per group by a stated rule, and the check that no group spans train and test.

use serde::Serialize;
use sv_data::{Label, Sample, Split};
use sv_index::{EmbeddingIndex, near_duplicate_groups};

use crate::error::CurateError;

/// Which sample of a near-duplicate group is kept: labelled before unlabelled, then the
/// source earlier in `source_order` (unlisted sources after), then the smallest id.
pub fn keeper(group: &[&Sample], source_order: &[String]) -> usize {
    let rank = |s: &Sample| {
        (
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
        });
    }
    let kept = samples
        .into_iter()
        .zip(drop)
        .filter_map(|(s, d)| (!d).then_some(s))
        .collect();
    (kept, resolved)
}

/// Refuse `groups` (found at `min_similarity`) that hold both a train and a test
/// sample; the error lists each such group's train and test ids.
pub fn leak_check(
    samples: &[Sample],
    index: &dyn EmbeddingIndex,
    groups: &[Vec<usize>],
    min_similarity: f32,
) -> Result<(), CurateError> {
    let split: std::collections::HashMap<&str, Option<Split>> =
        samples.iter().map(|s| (s.id.as_str(), s.split)).collect();
    let mut leaks = vec![];
    for g in groups {
        let ids: Vec<&str> = g.iter().map(|&p| index.id(p)).collect();
        let of = |want: Split| -> Vec<&str> {
            ids.iter()
                .copied()
                .filter(|id| split.get(id).copied().flatten() == Some(want))
                .collect()
        };
        let (train, test) = (of(Split::Train), of(Split::Test));
        if !train.is_empty() && !test.is_empty() {
            leaks.push(format!("train {train:?} ~ test {test:?}"));
        }
    }
    if leaks.is_empty() {
        Ok(())
    } else {
        Err(CurateError::Leak(format!(
            "{} near-duplicate group(s) span train and test (similarity ≥ {min_similarity}): {}",
            leaks.len(),
            leaks.join("; ")
        )))
    }
}
