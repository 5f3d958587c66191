//! Image augmentation for streetvision-rs: seeded, composable transforms on RGB image
//! buffers. A sample's randomness comes only from (seed, sample id, epoch).
//!
//! - [`resample`]: PIL-exact antialiased resizing (bilinear, bicubic).
//! - [`ops`]: the transforms and the [`Step`] enum a pipeline is made of.
//! - [`pipeline`]: [`Pipeline`]s loaded from TOML.
//! - [`rng`]: the per-sample random source.
//!
//! Built so far: resize, centre crop, random resized crop, horizontal flip,
//! brightness/contrast, Gaussian noise, Gaussian blur, JPEG re-compression, one-of. Not
//! yet built: hue/saturation, motion blur, rain, fog, the `heavy` and `validator` presets.

pub mod ops;
pub mod pipeline;
pub mod resample;
pub mod rng;

pub use ops::Step;
pub use pipeline::{AugmentError, Pipeline};
pub use resample::Filter;
pub use rng::AugRng;
