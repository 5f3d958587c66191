//! A backbone of any registered family, loaded from any checkpoint with or without a
//! head, and the architecture detection every loader uses.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::classify::{Network, NetworkOptions};
use crate::error::{ModelError, Result};
pub use crate::family::{Architecture, Backbone};
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

impl Backbone {
    /// The backbone of the checkpoint at `path`, with or without a head, detecting the
    /// architecture ([`Architecture::detect`]).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let arch = Architecture::detect(path)?;
        let opts = NetworkOptions {
            architecture: Some(arch),
            ..NetworkOptions::default()
        };
        match Network::load(path, &opts, device) {
            Ok(network) => Ok(network.into_backbone()),
            Err(_) => Self::load_headless(path, arch, device),
        }
    }

    /// The backbone of a checkpoint of architecture `arch` that holds no head.
    pub fn load_headless(path: &Path, arch: Architecture, device: &Device) -> Result<Self> {
        arch.backbone_from_file(path, device)
    }

    /// [`Backbone::load`], with the preprocessing beside the checkpoint
    /// ([`Preprocessor::beside`]).
    pub fn load_with_preprocessor(path: &Path, device: &Device) -> Result<(Self, Preprocessor)> {
        Ok((Self::load(path, device)?, Preprocessor::beside(path)?))
    }

    /// Pooled features `[B, D]` of preprocessed pixels `[B, 3, H, W]`.
    pub fn features(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.as_dyn().pooled(pixels)
    }

    /// Set the stochastic depth rate: the last block's, rising linearly from 0.
    pub fn set_drop_path(&mut self, rate: f64) {
        self.as_dyn_mut().set_drop_path(rate)
    }
}
