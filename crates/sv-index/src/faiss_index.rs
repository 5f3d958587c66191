//! The faiss backend (feature `faiss`; faiss is built from source with cmake and
//! OpenBLAS): exact inner product (`Flat`), IVF-Flat and HNSW over L2-normalised
//! vectors, for sets too large for [`crate::ExactIndex`]'s all-vs-all products.

use std::collections::HashMap;
use std::sync::Mutex;

use faiss::index::IndexImpl;
use faiss::index::autotune::ParameterSpace;
use faiss::{Index, MetricType, index_factory};

use crate::error::IndexError;
use crate::{EmbeddingIndex, Neighbor};

/// The faiss index structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaissKind {
    /// Exact inner product.
    Flat,
    /// Inverted lists over `nlist` k-means cells, `nprobe` of them searched; trained on
    /// the first vectors added (at least `nlist` of them).
    IvfFlat {
        /// Cells.
        nlist: usize,
        /// Cells searched per query.
        nprobe: usize,
    },
    /// A hierarchical navigable small-world graph of `m` links per node, searched with
    /// a candidate list of `ef_search`.
    Hnsw {
        /// Links per node.
        m: usize,
        /// Search breadth.
        ef_search: usize,
    },
}

impl FaissKind {
    fn factory(&self) -> String {
        match self {
            FaissKind::Flat => "Flat".into(),
            FaissKind::IvfFlat { nlist, .. } => format!("IVF{nlist},Flat"),
            FaissKind::Hnsw { m, .. } => format!("HNSW{m}"),
        }
    }
}

fn faiss_err(what: &str, e: faiss::error::Error) -> IndexError {
    IndexError::Invalid(format!("faiss {what}: {e}"))
}

/// An embedding index on faiss.
pub struct FaissIndex {
    kind: FaissKind,
    dim: usize,
    ids: Vec<String>,
    positions: HashMap<String, usize>,
    vectors: Vec<f32>,
    index: Mutex<IndexImpl>,
}

impl std::fmt::Debug for FaissIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FaissIndex({:?}, {} × {})",
            self.kind,
            self.ids.len(),
            self.dim
        )
    }
}

impl FaissIndex {
    /// An empty index of `kind` over `dim`-dimensional vectors.
    pub fn new(kind: FaissKind, dim: usize) -> Result<Self, IndexError> {
        let metric = MetricType::InnerProduct;
        let index = index_factory(dim as u32, kind.factory(), metric)
            .map_err(|e| faiss_err("index_factory", e))?;
        let space = ParameterSpace::new().map_err(|e| faiss_err("parameters", e))?;
        match kind {
            FaissKind::IvfFlat { nprobe, .. } => space
                .set_index_parameter(&index, "nprobe", nprobe as f64)
                .map_err(|e| faiss_err("nprobe", e))?,
            FaissKind::Hnsw { ef_search, .. } => space
                .set_index_parameter(&index, "efSearch", ef_search as f64)
                .map_err(|e| faiss_err("efSearch", e))?,
            FaissKind::Flat => {}
        }
        Ok(Self {
            kind,
            dim,
            ids: vec![],
            positions: HashMap::new(),
            vectors: vec![],
            index: Mutex::new(index),
        })
    }

    /// The kind.
    pub fn kind(&self) -> FaissKind {
        self.kind
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexImpl> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hits(&self, distances: &[f32], labels: &[faiss::Idx]) -> Vec<Neighbor> {
        let mut out: Vec<Neighbor> = labels
            .iter()
            .zip(distances)
            .filter_map(|(l, d)| {
                l.get().map(|pos| Neighbor {
                    pos: pos as usize,
                    score: *d,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pos.cmp(&b.pos)));
        out
    }

    fn knn(
        &self,
        queries: &[f32],
        k: usize,
        skip_self: bool,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let nq = queries.len() / self.dim.max(1);
        if k == 0 || self.ids.is_empty() {
            return Ok(vec![vec![]; nq]);
        }
        let ask = (k + usize::from(skip_self)).min(self.ids.len());
        let r = self
            .lock()
            .search(queries, ask)
            .map_err(|e| faiss_err("search", e))?;
        Ok((0..nq)
            .map(|q| {
                let span = q * ask..(q + 1) * ask;
                let mut h = self.hits(&r.distances[span.clone()], &r.labels[span]);
                if skip_self {
                    h.retain(|n| n.pos != q);
                }
                h.truncate(k);
                h
            })
            .collect())
    }

    fn range(
        &self,
        queries: &[f32],
        min_similarity: f32,
        skip_self: bool,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let nq = queries.len() / self.dim.max(1);
        if self.ids.is_empty() {
            return Ok(vec![vec![]; nq]);
        }
        // faiss keeps inner products strictly above the radius.
        let radius =
            f32::from_bits(min_similarity.to_bits().wrapping_sub(1).max(1)).min(min_similarity);
        let r = self
            .lock()
            .range_search(queries, radius)
            .map_err(|e| faiss_err("range_search", e))?;
        let lims = r.lims().to_vec();
        let (distances, labels) = r.distance_and_labels();
        Ok((0..nq)
            .map(|q| {
                let mut h = self.hits(
                    &distances[lims[q]..lims[q + 1]],
                    &labels[lims[q]..lims[q + 1]],
                );
                h.retain(|n| n.score >= min_similarity && !(skip_self && n.pos == q));
                h
            })
            .collect())
    }
}

impl EmbeddingIndex for FaissIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn id(&self, pos: usize) -> &str {
        &self.ids[pos]
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    fn vector_of(&self, pos: usize) -> Option<&[f32]> {
        (pos < self.ids.len()).then(|| &self.vectors[pos * self.dim..(pos + 1) * self.dim])
    }

    fn add(&mut self, ids: &[String], vectors: &[f32]) -> Result<(), IndexError> {
        let v = crate::checked_rows(self.dim, ids, vectors, &self.positions)?;
        {
            let mut index = self.lock();
            if !index.is_trained() {
                if let FaissKind::IvfFlat { nlist, .. } = self.kind
                    && ids.len() < nlist
                {
                    return Err(IndexError::Invalid(format!(
                        "IVF with {nlist} cells is trained on the first vectors added: add at least {nlist}, got {}",
                        ids.len()
                    )));
                }
                index.train(&v).map_err(|e| faiss_err("train", e))?;
            }
            index.add(&v).map_err(|e| faiss_err("add", e))?;
        }
        for id in ids {
            self.positions.insert(id.clone(), self.ids.len());
            self.ids.push(id.clone());
        }
        self.vectors.extend_from_slice(&v);
        Ok(())
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = crate::checked_queries(self.dim, queries)?;
        self.knn(&q, k, false)
    }

    fn range_search(
        &self,
        queries: &[f32],
        min_similarity: f32,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = crate::checked_queries(self.dim, queries)?;
        self.range(&q, min_similarity, false)
    }

    fn knn_all(&self, k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        self.knn(&self.vectors, k, true)
    }

    fn range_all(&self, min_similarity: f32) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        self.range(&self.vectors, min_similarity, true)
    }
}
