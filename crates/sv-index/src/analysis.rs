//! What curation asks of an index: near-duplicate groups, uniqueness, and neighbours
//! that disagree with a sample's label.

use crate::{EmbeddingIndex, IndexError, Neighbor};

/// Groups of samples linked by similarity ≥ `min_similarity` (connected components of
/// the similarity graph), each sorted by position; only groups of two or more, ordered
/// by their first position.
pub fn near_duplicate_groups(
    index: &dyn EmbeddingIndex,
    min_similarity: f32,
) -> Result<Vec<Vec<usize>>, IndexError> {
    let n = index.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, hits) in index.range_all(min_similarity)?.iter().enumerate() {
        for h in hits {
            let (a, b) = (root(&mut parent, i), root(&mut parent, h.pos));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    Ok(groups.into_values().filter(|g| g.len() > 1).collect())
}

/// FiftyOne's uniqueness: for each sample, the cosine distances to its 3 nearest other
/// samples weighted 0.6 / 0.3 / 0.1, divided by the largest such value over the set (so
/// the most unique sample scores 1). Sets of 3 or fewer samples score 1 throughout.
pub fn uniqueness(index: &dyn EmbeddingIndex) -> Result<Vec<f32>, IndexError> {
    const WEIGHTS: [f64; 3] = [0.6, 0.3, 0.1];
    let n = index.len();
    if n <= WEIGHTS.len() {
        return Ok(vec![1.0; n]);
    }
    let raw: Vec<f64> = index
        .knn_all(WEIGHTS.len())?
        .iter()
        .map(|hits| {
            hits.iter()
                .zip(WEIGHTS)
                .map(|(h, w)| w * (1.0 - h.score as f64).max(0.0))
                .sum()
        })
        .collect();
    let max = raw.iter().copied().fold(0.0, f64::max);
    Ok(raw
        .iter()
        .map(|r| if max > 0.0 { (r / max) as f32 } else { 1.0 })
        .collect())
}

/// A sample whose neighbours mostly carry another label.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    /// Its position.
    pub pos: usize,
    /// Its label.
    pub label: u8,
    /// Share of its `k` nearest neighbours with a different label.
    pub disagreeing: f32,
    /// The neighbours looked at.
    pub neighbors: Vec<Neighbor>,
}

/// Samples (with a known label) whose `k` nearest labelled neighbours disagree with them
/// in a share ≥ `min_share`, most disagreeing first. `labels[pos]` is `None` when
/// unknown; unlabelled neighbours are skipped.
pub fn label_disagreement(
    index: &dyn EmbeddingIndex,
    labels: &[Option<u8>],
    k: usize,
    min_share: f32,
) -> Result<Vec<Disagreement>, IndexError> {
    let labelled = labels.iter().filter(|l| l.is_some()).count();
    let wide = index.knn_all((k * 4).min(index.len().saturating_sub(1)).max(k))?;
    let mut out: Vec<Disagreement> = wide
        .into_iter()
        .enumerate()
        .filter_map(|(pos, hits)| {
            let label = labels.get(pos).copied().flatten()?;
            let neighbors: Vec<Neighbor> = hits
                .into_iter()
                .filter(|h| labels.get(h.pos).copied().flatten().is_some())
                .take(k)
                .collect();
            if neighbors.is_empty() || labelled < 2 {
                return None;
            }
            let other = neighbors
                .iter()
                .filter(|h| labels[h.pos] != Some(label))
                .count();
            let disagreeing = other as f32 / neighbors.len() as f32;
            (disagreeing >= min_share).then_some(Disagreement {
                pos,
                label,
                disagreeing,
                neighbors,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.disagreeing
            .partial_cmp(&a.disagreeing)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.pos.cmp(&b.pos))
    });
    Ok(out)
}
