//! Embedding a manifest into a saved index with a checkpoint's backbone, through the
//! probe's feature cache: what `sv-curator embed` and the improvement loop's curation
//! step run.

use std::path::Path;

use burn::tensor::Device;
use sv_data::Sample;

use crate::error::Result;
use crate::probe::{FeatureCache, cache_key, features};

/// What [`embed_index`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// Vectors in the index.
    pub count: usize,
    /// Of those, computed now (the rest came from the cache).
    pub computed: usize,
    /// Images that could not be read or decoded, left out.
    pub missing: usize,
    /// Vector width.
    pub dim: usize,
}

/// Where and how [`embed_index`] embeds.
#[derive(Debug, Clone, Copy)]
pub struct EmbedJob<'a> {
    /// The checkpoint whose backbone embeds (its preprocessing beside it).
    pub checkpoint: &'a Path,
    /// The feature cache's folder.
    pub cache_dir: &'a Path,
    /// Index kind: `exact`, or a faiss kind.
    pub kind: &'a str,
    /// The index file, written atomically.
    pub out: &'a Path,
    /// Images per forward pass.
    pub batch_size: usize,
}

/// Embed `samples` as `job` says; `progress` gets (done, total) images.
pub fn embed_index(
    job: &EmbedJob,
    samples: &[Sample],
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embedded> {
    let (backbone, pre) = sv_models::Backbone::load_with_preprocessor(job.checkpoint, device)?;
    let key = cache_key(backbone.architecture(), job.checkpoint, &pre)?;
    let mut cache = FeatureCache::open(job.cache_dir, &key)?;
    let (_, computed) = features(
        &backbone,
        &pre,
        samples,
        &mut cache,
        device,
        job.batch_size,
        progress,
    )?;
    let (ids, values, missing) = cache.matrix(samples);
    let count = sv_index::store::build_and_save(job.kind, cache.dim, &ids, &values, job.out)?;
    Ok(Embedded {
        count,
        computed,
        missing,
        dim: cache.dim,
    })
}
