//! The faiss backend (feature `faiss`; faiss is built from source with cmake and
//! OpenBLAS): exact inner product (`Flat`), IVF-Flat and HNSW over L2-normalised
//! vectors, for sets too large for [`crate::ExactIndex`]'s all-vs-all products.

use std::path::Path;
use std::sync::Mutex;

use faiss::index::IndexImpl;
use faiss::index::autotune::ParameterSpace;
use faiss::{Index, MetricType, index_factory};

use crate::error::IndexError;
use crate::rows::{Rows, checked_queries};
use crate::store::Header;
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

    /// The kind's name and parameters in an index file's header.
    fn stored(&self) -> (&'static str, serde_json::Value) {
        match *self {
            FaissKind::Flat => ("faiss-flat", serde_json::Value::Null),
            FaissKind::IvfFlat { nlist, nprobe } => (
                "faiss-ivf-flat",
                serde_json::json!({ "nlist": nlist, "nprobe": nprobe }),
            ),
            FaissKind::Hnsw { m, ef_search } => (
                "faiss-hnsw",
                serde_json::json!({ "m": m, "ef_search": ef_search }),
            ),
        }
    }

    /// The kind an index file's header names.
    fn from_stored(kind: &str, params: &serde_json::Value) -> Option<Self> {
        let get = |k: &str| params.get(k)?.as_u64().map(|v| v as usize);
        match kind {
            "faiss-flat" => Some(FaissKind::Flat),
            "faiss-ivf-flat" => Some(FaissKind::IvfFlat {
                nlist: get("nlist")?,
                nprobe: get("nprobe")?,
            }),
            "faiss-hnsw" => Some(FaissKind::Hnsw {
                m: get("m")?,
                ef_search: get("ef_search")?,
            }),
            _ => None,
        }
    }
}

impl std::str::FromStr for FaissKind {
    type Err = IndexError;

    /// `flat`, `ivf:NLIST:NPROBE` or `hnsw:M:EF_SEARCH`.
    fn from_str(text: &str) -> Result<Self, IndexError> {
        let bad = || {
            IndexError::Invalid(format!(
                "faiss kind {text:?}: give flat, ivf:NLIST:NPROBE or hnsw:M:EF"
            ))
        };
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let numbers = parts
            .map(|p| p.parse::<usize>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        match (name, numbers.as_slice()) {
            ("flat", []) => Ok(FaissKind::Flat),
            ("ivf", [nlist, nprobe]) if *nlist > 0 && *nprobe > 0 => Ok(FaissKind::IvfFlat {
                nlist: *nlist,
                nprobe: *nprobe,
            }),
            ("hnsw", [m, ef_search]) if *m > 0 && *ef_search > 0 => Ok(FaissKind::Hnsw {
                m: *m,
                ef_search: *ef_search,
            }),
            _ => Err(bad()),
        }
    }
}

fn faiss_err(what: &str, e: faiss::error::Error) -> IndexError {
    IndexError::Invalid(format!("faiss {what}: {e}"))
}

/// An embedding index on faiss.
pub struct FaissIndex {
    kind: FaissKind,
    rows: Rows,
    index: Mutex<IndexImpl>,
}

impl std::fmt::Debug for FaissIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FaissIndex({:?}, {} × {})",
            self.kind,
            self.rows.len(),
            self.rows.dim()
        )
    }
}

impl FaissIndex {
    /// An empty index of `kind` over `dim`-dimensional vectors.
    pub fn new(kind: FaissKind, dim: usize) -> Result<Self, IndexError> {
        let metric = MetricType::InnerProduct;
        let index = index_factory(dim as u32, kind.factory(), metric)
            .map_err(|e| faiss_err("index_factory", e))?;
        Self::with_structure(kind, Rows::new(dim), index)
    }

    /// An index of `kind` over `rows` whose faiss structure is `index`; the search
    /// parameters are set from `kind`.
    fn with_structure(kind: FaissKind, rows: Rows, index: IndexImpl) -> Result<Self, IndexError> {
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
            rows,
            index: Mutex::new(index),
        })
    }

    /// Save to `path` atomically: the ids and vectors as the exact index stores them,
    /// then faiss's serialisation of the structure (trained cells, graph), so that
    /// loading does not train or build again.
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        let scratch = tempfile::NamedTempFile::new().map_err(|e| IndexError::io(path, e))?;
        let scratch_path = scratch.path().to_string_lossy().into_owned();
        faiss::write_index(&*self.lock(), &scratch_path)
            .map_err(|e| faiss_err("write_index", e))?;
        let structure = std::fs::read(scratch.path()).map_err(|e| IndexError::io(path, e))?;
        let (kind, params) = self.kind.stored();
        crate::store::write(path, kind, params, &self.rows, &structure)
    }

    /// Load a faiss index file [`save`](Self::save) wrote.
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        let (header, rows, extra) = crate::store::read(path)?;
        Self::from_stored(path, &header, rows, &extra)
    }

    /// The index a file's parts describe.
    pub(crate) fn from_stored(
        path: &Path,
        header: &Header,
        rows: Rows,
        structure: &[u8],
    ) -> Result<Self, IndexError> {
        let kind = FaissKind::from_stored(&header.kind, &header.params).ok_or_else(|| {
            IndexError::corrupt(
                path,
                format!(
                    "index kind {:?} with {} is not a faiss index this build reads",
                    header.kind, header.params
                ),
            )
        })?;
        let mut scratch = tempfile::NamedTempFile::new().map_err(|e| IndexError::io(path, e))?;
        std::io::Write::write_all(&mut scratch, structure).map_err(|e| IndexError::io(path, e))?;
        let index = faiss::read_index(scratch.path().to_string_lossy())
            .map_err(|e| IndexError::corrupt(path, format!("faiss structure: {e}")))?;
        if index.d() as usize != rows.dim() || index.ntotal() as usize != rows.len() {
            return Err(IndexError::corrupt(
                path,
                format!(
                    "the faiss structure holds {} × {}, the file's rows {} × {}",
                    index.ntotal(),
                    index.d(),
                    rows.len(),
                    rows.dim()
                ),
            ));
        }
        Self::with_structure(kind, rows, index)
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
        let nq = queries.len() / self.rows.dim().max(1);
        if k == 0 || self.rows.len() == 0 {
            return Ok(vec![vec![]; nq]);
        }
        let ask = (k + usize::from(skip_self)).min(self.rows.len());
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
        let nq = queries.len() / self.rows.dim().max(1);
        if self.rows.len() == 0 {
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
    crate::rows::row_accessors!();

    fn add(&mut self, ids: &[String], vectors: &[f32]) -> Result<(), IndexError> {
        let v = self.rows.checked(ids, vectors)?;
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
        self.rows.push(ids, &v);
        Ok(())
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = checked_queries(self.rows.dim(), queries)?;
        self.knn(&q, k, false)
    }

    fn range_search(
        &self,
        queries: &[f32],
        min_similarity: f32,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let q = checked_queries(self.rows.dim(), queries)?;
        self.range(&q, min_similarity, false)
    }

    fn knn_all(&self, k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        self.knn(self.rows.data(), k, true)
    }

    fn range_all(&self, min_similarity: f32) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        self.range(self.rows.data(), min_similarity, true)
    }
}
