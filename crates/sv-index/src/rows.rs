//! The rows every backend keeps: sample ids in position order, the id → position map and
//! the L2-normalised vectors, row-major. Batches are checked whole before anything is
//! added.

use std::collections::{HashMap, HashSet};

use crate::error::IndexError;

/// Ids and normalised vectors by position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    dim: usize,
    ids: Vec<String>,
    positions: HashMap<String, usize>,
    data: Vec<f32>,
}

impl Rows {
    /// No rows of `dim` values.
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Rows read back from a file (already normalised; ids already checked unique).
    pub(crate) fn from_parts(dim: usize, ids: Vec<String>, data: Vec<f32>) -> Self {
        let positions = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        Self {
            dim,
            ids,
            positions,
            data,
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn id(&self, pos: usize) -> &str {
        &self.ids[pos]
    }

    pub(crate) fn ids(&self) -> &[String] {
        &self.ids
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    /// All vectors, row-major.
    pub(crate) fn data(&self) -> &[f32] {
        &self.data
    }

    pub(crate) fn vector(&self, pos: usize) -> Option<&[f32]> {
        (pos < self.ids.len()).then(|| &self.data[pos * self.dim..(pos + 1) * self.dim])
    }

    /// Check a batch to add: `vectors` holds `ids.len()` finite rows, and no id is
    /// stored already or repeated. Returns the rows L2-normalised; nothing is stored.
    pub(crate) fn checked(&self, ids: &[String], vectors: &[f32]) -> Result<Vec<f32>, IndexError> {
        let dim = self.dim;
        if dim == 0 || vectors.len() != ids.len() * dim {
            return Err(IndexError::Invalid(format!(
                "{} ids need {} values of dimension {dim}, got {}",
                ids.len(),
                ids.len() * dim,
                vectors.len()
            )));
        }
        let mut seen = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if self.positions.contains_key(id) || !seen.insert(id) {
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

    /// Append a batch [`checked`](Self::checked) returned.
    pub(crate) fn push(&mut self, ids: &[String], normalised: &[f32]) {
        self.data.extend_from_slice(normalised);
        for id in ids {
            self.positions.insert(id.clone(), self.ids.len());
            self.ids.push(id.clone());
        }
    }
}

/// The [`EmbeddingIndex`](crate::EmbeddingIndex) methods that read the rows (`dim`,
/// `len`, `id`, `position`, `vector_of`), for an index with a `rows: Rows` field.
macro_rules! row_accessors {
    () => {
        fn dim(&self) -> usize {
            self.rows.dim()
        }

        fn len(&self) -> usize {
            self.rows.len()
        }

        fn id(&self, pos: usize) -> &str {
            self.rows.id(pos)
        }

        fn position(&self, id: &str) -> Option<usize> {
            self.rows.position(id)
        }

        fn vector_of(&self, pos: usize) -> Option<&[f32]> {
            self.rows.vector(pos)
        }
    };
}
pub(crate) use row_accessors;

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
    v.chunks_mut(dim).for_each(crate::exact::normalise);
    v
}
