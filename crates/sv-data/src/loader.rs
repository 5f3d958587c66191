//! Feeding samples to burn: a [`SampleDataset`] (burn `Dataset`), an [`ImageBatcher`]
//! (burn `Batcher`) that reads, decodes and transforms a batch's images in parallel and
//! normalises them into a tensor, and [`prefetch`], which runs a batch iterator on its own
//! thread at most `depth` batches ahead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};
use rayon::prelude::*;
use sv_augment::{AugRng, Normalise, Pipeline};

use crate::decode::decode_image;
use crate::rng::unit_hash;
use crate::sample::Sample;

/// Samples held in memory, as a burn dataset.
#[derive(Debug, Clone)]
pub struct SampleDataset {
    samples: Vec<Sample>,
}

impl SampleDataset {
    /// A dataset over `samples`.
    pub fn new(samples: Vec<Sample>) -> Self {
        Self { samples }
    }

    /// The samples.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

impl Dataset<Sample> for SampleDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        self.samples.get(index).cloned().ok_or_else(|| {
            DatasetError::new(crate::DataError::Invalid(format!(
                "sample index {index} is out of range ({} samples)",
                self.samples.len()
            )))
        })
    }

    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// An image transform: decoded image and a per-sample seed in, RGB image of the batch's
/// size out. The seed depends only on (loader seed, sample id, epoch).
pub type Transform = Arc<dyn Fn(DynamicImage, u64) -> RgbImage + Send + Sync>;

/// A batch of images and their targets.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Normalised pixels `[B, 3, H, W]`.
    pub pixels: Tensor<4>,
    /// 1.0 for roadwork, 0.0 for no roadwork (unknown labels count as 0) `[B]`.
    pub targets: Tensor<1>,
    /// The same targets on the host, so that a training step need not read them back
    /// from the device.
    pub labels: Vec<f32>,
    /// Ids of the samples in the batch, in order.
    pub ids: Vec<String>,
}

/// Reads, decodes, transforms and normalises a batch of samples, in parallel. A sample
/// that can no longer be read or decoded is left out of its batch and counted.
pub struct ImageBatcher {
    transform: Transform,
    normalise: Normalise,
    max_pixels: u64,
    seed: u64,
    epoch: AtomicU64,
    failed: AtomicUsize,
}

impl ImageBatcher {
    /// A batcher applying `transform`, then `normalise`.
    pub fn new(transform: Transform, normalise: Normalise, seed: u64) -> Self {
        Self {
            transform,
            normalise,
            max_pixels: crate::decode::DEFAULT_MAX_PIXELS,
            seed,
            epoch: AtomicU64::new(0),
            failed: AtomicUsize::new(0),
        }
    }

    /// A batcher applying an augmentation `pipeline` (its steps, then its normalisation),
    /// each sample with the random source of its per-sample seed.
    pub fn augmenting(pipeline: Arc<Pipeline>, seed: u64) -> Self {
        let normalise = pipeline.normalise;
        let transform: Transform =
            Arc::new(move |img, s| pipeline.apply(img.to_rgb8(), &mut AugRng::from_seed(s)));
        Self::new(transform, normalise, seed)
    }

    /// Set the epoch the next batches belong to (it enters every sample's seed).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Samples left out so far because they could not be read or decoded.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// The seed a sample's transform gets in `epoch`.
    pub fn sample_seed(&self, id: &str, epoch: u64) -> u64 {
        (unit_hash(self.seed, &format!("augment/{epoch}"), id) * (1u64 << 53) as f64) as u64
    }

    fn load(&self, sample: &Sample, epoch: u64) -> Option<RgbImage> {
        let bytes = sample.location.read().ok()?;
        let img = decode_image(&bytes, self.max_pixels).ok()?;
        Some((self.transform)(img, self.sample_seed(&sample.id, epoch)))
    }
}

impl Batcher<Sample, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> ImageBatch {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let images: Vec<Option<RgbImage>> = items.par_iter().map(|s| self.load(s, epoch)).collect();
        let (mut pixels, mut targets, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        let mut size = None;
        for (sample, image) in items.iter().zip(images) {
            let Some(img) = image else {
                self.failed.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            let dims = (img.height() as usize, img.width() as usize);
            if *size.get_or_insert(dims) != dims {
                // The transform must give one size per batch; a stray one is left out.
                self.failed.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            self.normalise.append_chw(&img, &mut pixels);
            targets.push(sample.label.target().unwrap_or(0.0));
            ids.push(sample.id.clone());
        }
        let (h, w) = size.unwrap_or((0, 0));
        let b = ids.len();
        ImageBatch {
            pixels: Tensor::from_data(TensorData::new(pixels, [b, 3, h, w]), device),
            targets: Tensor::from_data(TensorData::new(targets.clone(), [b]), device),
            labels: targets,
            ids,
        }
    }
}

/// Run `batches` on a background thread, at most `depth` items ahead of the consumer.
/// Dropping the returned iterator stops the producer at its next item.
pub fn prefetch<T: Send + 'static>(
    batches: impl Iterator<Item = T> + Send + 'static,
    depth: usize,
) -> impl Iterator<Item = T> {
    let (tx, rx) = sync_channel(depth.max(1) - 1);
    std::thread::spawn(move || {
        for b in batches {
            if tx.send(b).is_err() {
                break;
            }
        }
    });
    rx.into_iter()
}

/// The batches of one epoch: `order` (indices into `dataset`, e.g. from a
/// [`crate::BalancedSampler`]) cut into batches of `batch_size`, built by `batcher` on
/// `device`, prefetched `depth` batches ahead.
pub fn epoch_batches(
    dataset: Arc<SampleDataset>,
    batcher: Arc<ImageBatcher>,
    order: Vec<usize>,
    batch_size: usize,
    depth: usize,
    device: Device,
) -> impl Iterator<Item = ImageBatch> {
    let chunks: Vec<Vec<usize>> = order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let produce = chunks.into_iter().map(move |idx| {
        let items = idx.iter().filter_map(|&i| dataset.get(i).ok()).collect();
        batcher.batch(items, &device)
    });
    prefetch(produce, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_stays_within_depth() {
        let produced = Arc::new(AtomicUsize::new(0));
        let p = produced.clone();
        let source = (0..50).inspect(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        });
        let mut it = prefetch(source, 3);
        for expect in 0..10 {
            assert_eq!(it.next(), Some(expect));
            std::thread::sleep(std::time::Duration::from_millis(5));
            let ahead = produced.load(Ordering::SeqCst) - (expect + 1);
            // Up to `depth` finished items may wait, plus one being sent.
            assert!(ahead <= 3, "producer ran {ahead} items ahead");
        }
        assert_eq!(it.count(), 40);
    }
}
