//! The exact index: every vector L2-normalised and kept in one row-major buffer; a query
//! block is scored against all rows with one matrix product and the best rows are kept.

use rayon::prelude::*;

use crate::error::IndexError;
use crate::rows::{Rows, checked_queries};
use crate::{EmbeddingIndex, Neighbor};

/// Queries scored per matrix product.
const QUERY_BLOCK: usize = 512;
/// Rows scored per matrix product.
const ROW_BLOCK: usize = 4096;

/// Exact inner product over L2-normalised vectors (cosine similarity).
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    rows: Rows,
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl ExactIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            rows: Rows::new(dim),
        }
    }

    /// An index over stored rows.
    pub(crate) fn from_rows(rows: Rows) -> Self {
        Self { rows }
    }

    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The stored (normalised) vectors, row-major.
    pub fn data(&self) -> &[f32] {
        self.rows.data()
    }

    /// The stored vector at `pos`.
    pub fn vector(&self, pos: usize) -> &[f32] {
        self.rows.vector(pos).expect("position in the index")
    }

    /// Score `queries` (normalised, row-major) against all rows and keep, per query, the
    /// rows `keep` accepts, best first, at most `limit` of them.
    fn scan(
        &self,
        queries: &[f32],
        limit: usize,
        keep: impl Fn(usize, usize, f32) -> bool + Sync,
    ) -> Vec<Vec<Neighbor>> {
        let d = self.rows.dim();
        let n = self.rows.len();
        let data = self.rows.data();
        let nq = queries.len() / d.max(1);
        if n == 0 || d == 0 {
            return vec![vec![]; nq];
        }
        queries
            .par_chunks(QUERY_BLOCK * d)
            .enumerate()
            .flat_map_iter(|(b, block)| {
                let m = block.len() / d;
                let mut best: Vec<Vec<Neighbor>> = vec![vec![]; m];
                let mut scores = vec![0f32; m * ROW_BLOCK];
                for start in (0..n).step_by(ROW_BLOCK) {
                    let rows = ROW_BLOCK.min(n - start);
                    let x = &data[start * d..(start + rows) * d];
                    // scores (m × rows) = block (m × d) · xᵀ (d × rows)
                    unsafe {
                        gemm::gemm(
                            m,
                            rows,
                            d,
                            scores.as_mut_ptr(),
                            1,
                            rows as isize,
                            false,
                            block.as_ptr(),
                            1,
                            d as isize,
                            x.as_ptr(),
                            d as isize,
                            1,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    for (qi, row_scores) in scores.chunks(rows).take(m).enumerate() {
                        let q = b * QUERY_BLOCK + qi;
                        let list = &mut best[qi];
                        for (j, &s) in row_scores.iter().enumerate() {
                            let pos = start + j;
                            if !keep(q, pos, s) {
                                continue;
                            }
                            if limit == usize::MAX {
                                // Unbounded (range search): sorted once at the end.
                                list.push(Neighbor { pos, score: s });
                                continue;
                            }
                            if list.len() == limit {
                                let worst = list.last().expect("limit > 0");
                                if (s, std::cmp::Reverse(pos))
                                    <= (worst.score, std::cmp::Reverse(worst.pos))
                                {
                                    continue;
                                }
                                list.pop();
                            }
                            let at = list.partition_point(|nb| {
                                (nb.score, std::cmp::Reverse(nb.pos)) >= (s, std::cmp::Reverse(pos))
                            });
                            list.insert(at, Neighbor { pos, score: s });
                        }
                    }
                }
                if limit == usize::MAX {
                    for list in &mut best {
                        list.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pos.cmp(&b.pos)));
                    }
                }
                best.into_iter()
            })
            .collect()
    }

    fn all_knn(&self, k: usize) -> Vec<Vec<Neighbor>> {
        if k == 0 {
            return vec![vec![]; self.len()];
        }
        self.scan(self.rows.data(), k, |q, pos, _| q != pos)
    }

    fn all_range(&self, min_similarity: f32) -> Vec<Vec<Neighbor>> {
        self.scan(self.rows.data(), usize::MAX, |q, pos, s| {
            q != pos && s >= min_similarity
        })
    }
}

impl EmbeddingIndex for ExactIndex {
    crate::rows::row_accessors!();

    fn add(&mut self, ids: &[String], vectors: &[f32]) -> Result<(), IndexError> {
        let rows = self.rows.checked(ids, vectors)?;
        self.rows.push(ids, &rows);
        Ok(())
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = checked_queries(self.rows.dim(), queries)?;
        if k == 0 {
            return Ok(vec![vec![]; q.len() / self.rows.dim()]);
        }
        Ok(self.scan(&q, k, |_, _, _| true))
    }

    fn range_search(
        &self,
        queries: &[f32],
        min_similarity: f32,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = checked_queries(self.rows.dim(), queries)?;
        Ok(self.scan(&q, usize::MAX, |_, _, s| s >= min_similarity))
    }

    fn knn_all(&self, k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        Ok(self.all_knn(k))
    }

    fn range_all(&self, min_similarity: f32) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        Ok(self.all_range(min_similarity))
    }
}
