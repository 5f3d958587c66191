//! Image augmentation for streetvision-rs.
//!
//! - [`resample`]: PIL-exact antialiased resizing (bilinear, bicubic).
pub mod resample;
