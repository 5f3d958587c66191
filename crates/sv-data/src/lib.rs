//! Training data for streetvision-rs.
//!
//! - [`Sample`]: an image's content id, where its bytes are, label, source, split and
//!   metadata; [`manifest`]: JSON Lines manifests, streamed and written atomically.
//! - [`decode`]: defensive decoding (format from content, pixel limit, truncation,
//!   EXIF orientation) with skips counted by reason instead of failing a run.
//! - [`natix`]: the subnet's parquet shards (HF `Image` struct column, label, scene
//!   description, metadata).
//! - [`folder`]: the `roadwork/` + `no_roadwork/` (or `1/` + `0/`) image-folder reader.
//! - [`mix`](mod@mix) sources by ratio, [`split`] deterministically by id, draw class-balanced
//!   batches with [`sampler`], count with [`stats`].
//! - [`synthetic`]: procedurally rendered street scenes (roadwork, plain, hard
//!   negatives), the `synthetic` source.
//! - [`loader`]: burn `Dataset` and `Batcher` that decode and transform in parallel, with
//!   bounded prefetch.
//!
//! Parsing a mix plan and split fractions as `sv-curator mix` takes them:
//!
//! ```
//! let plan = sv_data::parse_ratios("natix=0.7,synthetic=0.3").unwrap();
//! assert_eq!(plan[0].source, sv_data::Source::Natix);
//! let splits: sv_data::SplitFractions = "0.8,0.1,0.1".parse().unwrap();
//! assert_eq!(splits.val, 0.1);
//! ```

#![warn(missing_docs)]

pub mod decode;
pub mod error;
pub mod folder;
pub mod loader;
pub mod manifest;
pub mod mix;
pub mod natix;
pub mod rng;
pub mod sample;
pub mod sampler;
pub mod split;
pub mod stats;
pub mod synthetic;

pub use decode::{DEFAULT_MAX_PIXELS, Skip, SkipReason, SkipReport, decode_image};
pub use error::{DataError, Result};
pub use folder::{FolderOptions, read_folder};
pub use loader::{ImageBatch, ImageBatcher, SampleDataset, Transform, epoch_batches, prefetch};
pub use manifest::{
    ManifestReader, ManifestWriter, read_labelled_split, read_manifest, write_manifest,
};
pub use mix::{MixReport, MixTarget, ShortPolicy, mix, parse_ratios, seed_plan, unique_by_id};
pub use natix::{NatixOptions, parquet_image_bytes, read_natix};
pub use sample::{Label, Location, Sample, Source, Split, content_id};
pub use sampler::BalancedSampler;
pub use split::{SplitFractions, assign_splits, split_of};
pub use stats::Stats;
