//! Embedding indexes for curation: which images look alike.
//!
//! - [`EmbeddingIndex`]: add vectors under sample ids; kNN and range search by cosine
//!   similarity (inner product on L2-normalised vectors); all-vs-all forms.
//! - [`ExactIndex`]: the exact, pure-Rust backend (matrix products over blocks).
//! - [`analysis`]: near-duplicate groups at a similarity threshold, FiftyOne's
//!   uniqueness, and label disagreement among neighbours (possible label noise).
//! - [`store`]: an index saved to one file with its id mapping, written atomically.
//!
//! - `FaissIndex` (feature `faiss`): faiss Flat, IVF-Flat and HNSW for sets too large
//!   for exact all-vs-all search.

pub mod analysis;
pub mod error;
pub mod exact;
#[cfg(feature = "faiss")]
pub mod faiss_index;
pub mod store;

pub use analysis::{Disagreement, label_disagreement, near_duplicate_groups, uniqueness};
pub use error::IndexError;
pub use exact::ExactIndex;
#[cfg(feature = "faiss")]
pub use faiss_index::{FaissIndex, FaissKind};

/// Check a batch to add: `vectors` holds `ids.len()` finite rows of `dim`, and no id is
/// in `taken` or repeated. Returns the rows L2-normalised.
pub(crate) fn checked_rows(
    dim: usize,
    ids: &[String],
    vectors: &[f32],
    taken: &std::collections::HashMap<String, usize>,
) -> Result<Vec<f32>, IndexError> {
    if dim == 0 || vectors.len() != ids.len() * dim {
        return Err(IndexError::Invalid(format!(
            "{} ids need {} values of dimension {dim}, got {}",
            ids.len(),
            ids.len() * dim,
            vectors.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if taken.contains_key(id) || !seen.insert(id) {
            return Err(IndexError::Invalid(format!(
                "id {id:?} is already in the index"
            )));
        }
        if vectors[i * dim..(i + 1) * dim]
            .iter()
            .any(|x| !x.is_finite())
        {
            return Err(IndexError::Invalid(format!(
                "the vector of {id:?} is not finite"
            )));
        }
    }
    Ok(normalised_rows(dim, vectors))
}

/// Query rows checked for their length and L2-normalised.
pub(crate) fn checked_queries(dim: usize, queries: &[f32]) -> Result<Vec<f32>, IndexError> {
    if dim == 0 || !queries.len().is_multiple_of(dim) {
        return Err(IndexError::Invalid(format!(
            "{} query values are not a whole number of {dim}-dimensional vectors",
            queries.len()
        )));
    }
    Ok(normalised_rows(dim, queries))
}

fn normalised_rows(dim: usize, rows: &[f32]) -> Vec<f32> {
    let mut v = rows.to_vec();
    v.chunks_mut(dim).for_each(exact::normalise);
    v
}

/// A search hit: the stored vector's position and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Position in the index (see [`EmbeddingIndex::id`]).
    pub pos: usize,
    /// Cosine similarity in [-1, 1].
    pub score: f32,
}

/// An index of L2-normalised embeddings keyed by sample id. Results are ordered best
/// first (ties by position).
pub trait EmbeddingIndex {
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Vectors stored.
    fn len(&self) -> usize;
    /// No vectors stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The sample id at `pos`.
    fn id(&self, pos: usize) -> &str;
    /// The position of `id`.
    fn position(&self, id: &str) -> Option<usize>;
    /// The stored (normalised) vector at `pos`, when the index keeps vectors.
    fn vector_of(&self, pos: usize) -> Option<&[f32]>;
    /// Add `vectors` (row-major, `ids.len()` rows) under `ids`; they are normalised.
    /// Nothing is added when any id is taken or any vector is malformed.
    fn add(&mut self, ids: &[String], vectors: &[f32]) -> Result<(), IndexError>;
    /// The `k` most similar stored vectors of each query (row-major).
    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError>;
    /// The stored vectors with similarity ≥ `min_similarity` to each query.
    fn range_search(
        &self,
        queries: &[f32],
        min_similarity: f32,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError>;
    /// Each stored vector's `k` most similar other vectors.
    fn knn_all(&self, k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError>;
    /// Each stored vector's other vectors with similarity ≥ `min_similarity`.
    fn range_all(&self, min_similarity: f32) -> Result<Vec<Vec<Neighbor>>, IndexError>;
}
