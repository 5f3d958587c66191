//! Image augmentation for streetvision-rs: seeded, composable transforms on RGB image
//! buffers. A sample's randomness comes only from (seed, sample id, epoch).
//!
//! - [`resample`]: PIL-exact antialiased resizing (bilinear, bicubic), and PyTorch's on
//!   floats.
//! - [`ops`]: geometric and photometric transforms and the [`Step`] enum a pipeline is
//!   made of.
//! - [`color`]: hue/saturation/value in OpenCV's 8-bit HSV.
//! - [`blur`]: motion, Gaussian and box blurs as OpenCV computes them.
//! - [`weather`]: rain and fog.
//! - [`validator`]: what the subnet's validators do to a challenge.
//! - [`normalise`]: the final `[3, H, W]` normalisation.
//! - [`pipeline`]: [`Pipeline`]s loaded from TOML, and the `heavy` and `validator`
//!   presets.
//! - [`rng`]: the per-sample random source.
//!
//! Running a preset pipeline on an image, the same for the same (seed, id, epoch):
//!
//! ```
//! use sv_augment::Pipeline;
//!
//! let pipeline = Pipeline::preset("heavy").unwrap();
//! let img = image::RgbImage::from_pixel(64, 48, image::Rgb([120, 90, 60]));
//! let a = pipeline.apply_for(img.clone(), 7, "sample-1", 0);
//! let b = pipeline.apply_for(img, 7, "sample-1", 0);
//! assert_eq!(a, b);
//! ```

#![warn(missing_docs)]

pub mod blur;
pub mod color;
pub mod normalise;
pub mod ops;
pub mod pipeline;
pub mod rng;
pub mod validator;
pub mod weather;

/// PIL-exact resizing, from [`sv_image::resample`] (where the models use it too).
pub use sv_image::resample;

pub use normalise::Normalise;
pub use ops::Step;
pub use pipeline::{AugmentError, PRESETS, Pipeline};
pub use resample::Filter;
pub use rng::AugRng;
pub use validator::ValidatorSettings;
