//! The slice of an all-vs-all kNN that the index benches time at sizes where the whole
//! takes hours: the first rows as queries, each without itself.

use sv_index::{EmbeddingIndex, Neighbor};

/// The `k` nearest other rows of each of `queries` (the index's first rows, row-major).
pub fn knn_excluding_self(
    index: &dyn EmbeddingIndex,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<Neighbor>> {
    index
        .search(queries, k + 1)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(q, mut h)| {
            h.retain(|nb| nb.pos != q);
            h.truncate(k);
            h
        })
        .collect()
}
