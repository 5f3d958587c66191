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
//!
//! Building an exact index and asking for each vector's nearest neighbours:
//!
//! ```
//! use sv_index::{EmbeddingIndex, ExactIndex};
//!
//! let mut index = ExactIndex::new(2);
//! let ids = ["a".to_string(), "b".to_string(), "c".to_string()];
//! index.add(&ids, &[1.0, 0.0, 0.9, 0.1, 0.0, 1.0]).unwrap();
//! let hits = index.search(&[1.0, 0.05], 2).unwrap();
//! assert_eq!(index.id(hits[0][0].pos), "a");
//! assert_eq!(index.id(hits[0][1].pos), "b");
//! ```

#![warn(missing_docs)]

pub mod analysis;
pub mod error;
pub mod exact;
#[cfg(feature = "faiss")]
pub mod faiss_index;
mod rows;
pub mod store;

pub use analysis::{Disagreement, label_disagreement, near_duplicate_groups, uniqueness};
pub use error::IndexError;
pub use exact::ExactIndex;
#[cfg(feature = "faiss")]
pub use faiss_index::{FaissIndex, FaissKind};

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
