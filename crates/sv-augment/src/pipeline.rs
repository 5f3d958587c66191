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
//!
//! [normalise]
//! mean = [0.485, 0.456, 0.406]
//! std = [0.229, 0.224, 0.225]
//! ```
//!
//! Two presets come built in ([`Pipeline::preset`]): `heavy`, the seed plan's training
//! pipeline, and `validator`, what the subnet's validators send.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::normalise::Normalise;
use crate::ops::Step;
use crate::rng::AugRng;

/// The built-in pipelines, by name, as TOML.
pub const PRESETS: [(&str, &str); 2] = [
    ("heavy", include_str!("../presets/heavy.toml")),
    ("validator", include_str!("../presets/validator.toml")),
];

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
    /// A pipeline file could not be read.
    #[error("pipeline {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Neither a preset name nor an existing file.
    #[error("no pipeline preset or file {0:?} (presets: heavy, validator)")]
    Unknown(String),
}

/// Steps applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The steps.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
    /// The final normalisation (ImageNet's unless given).
    #[serde(default)]
    pub normalise: Normalise,
}

impl Pipeline {
    /// Parse a pipeline; `source_name` appears in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, AugmentError> {
        toml::from_str(text).map_err(|e| AugmentError::Pipeline {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })
    }

    /// A built-in pipeline by name (`heavy`, `validator`).
    pub fn preset(name: &str) -> Option<Self> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name)?;
        Some(Self::from_toml(text, name).expect("built-in presets parse"))
    }

    /// A preset name, or else a TOML file.
    pub fn load(spec: &str) -> Result<Self, AugmentError> {
        if let Some(p) = Self::preset(spec) {
            return Ok(p);
        }
        let path = std::path::Path::new(spec);
        if !path.exists() {
            return Err(AugmentError::Unknown(spec.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| AugmentError::Read {
            path: spec.to_string(),
            source,
        })?;
        Self::from_toml(&text, spec)
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

    /// Apply every step, then normalise to `[3, H, W]` values.
    pub fn apply_normalised(&self, img: RgbImage, rng: &mut AugRng) -> (Vec<f32>, (u32, u32)) {
        let out = self.apply(img, rng);
        (self.normalise.chw(&out), out.dimensions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_run() {
        let img = RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 90]));
        for (name, _) in PRESETS {
            let p = Pipeline::preset(name).unwrap();
            for seed in 0..20 {
                let (values, dims) = p.apply_normalised(img.clone(), &mut AugRng::from_seed(seed));
                assert_eq!(dims, (224, 224), "{name}");
                assert_eq!(values.len(), 3 * 224 * 224);
            }
        }
        assert!(matches!(
            Pipeline::load("nope"),
            Err(AugmentError::Unknown(_))
        ));
    }
}
