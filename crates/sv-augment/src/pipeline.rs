//! Pipelines: a list of [`Step`]s applied in order, loaded from TOML.
//!
//! ```toml
//! [[step]]
//! op = "random_resized_crop"
//! size = 224
//! scale = [0.2, 1.0]
//!
//! [[step]]
//! op = "horizontal_flip"
//! p = 0.5
//! ```

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::ops::Step;
use crate::rng::AugRng;

/// Errors of the augmentation crate.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A pipeline file is not valid TOML or names an unknown step or field.
    #[error("pipeline {source_name}: {reason}")]
    Pipeline {
        /// The file (or `<string>`).
        source_name: String,
        /// What was wrong.
        reason: String,
    },
}

/// Steps applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The steps.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

impl Pipeline {
    /// Parse a pipeline; `source_name` appears in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, AugmentError> {
        toml::from_str(text).map_err(|e| AugmentError::Pipeline {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })
    }

    /// Apply every step with the sample's random source.
    pub fn apply(&self, img: RgbImage, rng: &mut AugRng) -> RgbImage {
        self.steps
            .iter()
            .fold(img, |img, step| step.apply(img, rng))
    }

    /// Apply with the random source of (`seed`, `sample_id`, `epoch`).
    pub fn apply_for(&self, img: RgbImage, seed: u64, sample_id: &str, epoch: u64) -> RgbImage {
        self.apply(img, &mut AugRng::for_sample(seed, sample_id, epoch))
    }
}
