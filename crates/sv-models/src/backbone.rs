//! A backbone of either architecture, loaded from any checkpoint with or without a head,
//! and the architecture detection every loader uses.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::classify::{Architecture, Network};
use crate::convnext::{ConvNextLoadOptions, ConvNextV2, ConvNextV2Classifier};
use crate::dinov2::{Dinov2, Dinov2Classifier, LoadOptions};
use crate::error::{ModelError, Result};
use crate::preprocess::Preprocessor;
use crate::weights::WeightMap;

impl Architecture {
    /// The architecture of the checkpoint at `path`: from `config.json` beside it (its
    /// `model_type`), else from the checkpoint's keys.
    pub fn detect(path: &Path) -> Result<Self> {
        let beside = crate::find_sidecar(path, "config.json");
        if let Some(arch) = from_config(beside.as_deref())? {
            return Ok(arch);
        }
        let map = WeightMap::from_file(path)?;
        Self::from_keys(&map).ok_or_else(|| ModelError::UnknownLayout {
            path: path.to_path_buf(),
            sample: map.sample_keys(6),
        })
    }
}

/// The architecture an HF `config.json` at `config` names, if any and if one of ours.
pub(crate) fn from_config(config: Option<&Path>) -> Result<Option<Architecture>> {
    match config {
        Some(path) => Ok(Architecture::from_hf_config(&crate::read_text(path)?)),
        None => Ok(None),
    }
}

/// A backbone without a head, of either architecture.
// Held once per loaded model (the tensors live on the heap): the variants' inline sizes
// do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Backbone {
    /// DINOv2 with registers; its pooled feature is concat(CLS, mean patch).
    Dinov2(Dinov2),
    /// ConvNeXt-V2; its pooled feature is the normed global average.
    ConvNextV2(ConvNextV2),
}

impl Backbone {
    /// The backbone of the checkpoint at `path`, with or without a head, detecting the
    /// architecture ([`Architecture::detect`]).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let arch = Architecture::detect(path)?;
        let with_head = match arch {
            Architecture::ConvNextV2 => {
                ConvNextV2Classifier::load(path, &ConvNextLoadOptions::default(), device)
                    .map(|c| Backbone::ConvNextV2(c.backbone))
            }
            Architecture::Dinov2 => Dinov2Classifier::load(path, &LoadOptions::default(), device)
                .map(|c| Backbone::Dinov2(c.backbone)),
        };
        match with_head {
            Ok(backbone) => Ok(backbone),
            Err(_) => Self::load_headless(path, arch, device),
        }
    }

    /// The backbone of a checkpoint of architecture `arch` that holds no head.
    pub fn load_headless(path: &Path, arch: Architecture, device: &Device) -> Result<Self> {
        Ok(match arch {
            Architecture::ConvNextV2 => Backbone::ConvNextV2(ConvNextV2::load(
                path,
                &ConvNextLoadOptions::default(),
                device,
            )?),
            Architecture::Dinov2 => {
                Backbone::Dinov2(Dinov2::load(path, &LoadOptions::default(), device)?)
            }
        })
    }

    /// [`Backbone::load`], with the preprocessing beside the checkpoint
    /// ([`Preprocessor::beside`]).
    pub fn load_with_preprocessor(path: &Path, device: &Device) -> Result<(Self, Preprocessor)> {
        Ok((Self::load(path, device)?, Preprocessor::beside(path)?))
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        match self {
            Backbone::Dinov2(_) => Architecture::Dinov2,
            Backbone::ConvNextV2(_) => Architecture::ConvNextV2,
        }
    }

    /// Pooled features `[B, D]` of preprocessed pixels `[B, 3, H, W]`.
    pub fn features(&self, pixels: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Dinov2(m) => m.forward(pixels).pooled,
            Backbone::ConvNextV2(m) => m.forward(pixels).pooled,
        }
    }

    /// A classifier on this backbone with a new head of `num_labels` (zero weights).
    pub fn with_new_head(self, num_labels: usize) -> Network {
        match self {
            Backbone::Dinov2(m) => Network::Dinov2(Dinov2Classifier::with_new_head(m, num_labels)),
            Backbone::ConvNextV2(m) => {
                Network::ConvNextV2(ConvNextV2Classifier::with_new_head(m, num_labels))
            }
        }
    }

    /// Set the stochastic depth rate: the last block's, rising linearly from 0.
    pub fn set_drop_path(&mut self, rate: f64) {
        match self {
            Backbone::Dinov2(m) => m.set_drop_path(rate),
            Backbone::ConvNextV2(m) => m.set_drop_path(rate),
        }
    }
}
