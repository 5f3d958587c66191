//! ConvNeXt-V2 as a registered [`Family`]: detection, loading,
//! parameter groups and export.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::{ConvNextLoadOptions, ConvNextV2, ConvNextV2Classifier};
use crate::classify::{NetworkOptions, has_key};
use crate::error::Result;
use crate::family::{BackboneModel, Family, Logits, ParamGroup, ParamGroups};
use crate::weights::WeightMap;

/// The parameter groups of a ConvNeXt-V2 backbone with `depths` blocks per stage, by
/// paths inside the backbone: the stem 0, each block its own layer in order (a stage's
/// downsampling with its first block), the final norm last; weight decay on matrices.
pub fn param_groups(depths: Vec<usize>) -> ParamGroups {
    let last = depths.iter().sum::<usize>() + 1;
    ParamGroups::new(last, move |path, rank| {
        let layer = if path.starts_with("stem") {
            0
        } else if let Some(rest) = path.strip_prefix("stages.") {
            let mut parts = rest.split('.');
            let stage: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let before: usize = depths.iter().take(stage).sum();
            match (
                parts.next(),
                parts.next().and_then(|b| b.parse::<usize>().ok()),
            ) {
                (Some("blocks"), Some(j)) => before + j + 1,
                _ => before + 1,
            }
        } else {
            last
        };
        ParamGroup {
            layer,
            decay: rank > 1,
        }
    })
}

impl BackboneModel for ConvNextV2 {
    fn pooled(&self, pixels: Tensor<4>) -> Tensor<2> {
        crate::precision::f32(self.forward(pixels).pooled)
    }
    fn set_drop_path(&mut self, rate: f64) {
        ConvNextV2::set_drop_path(self, rate)
    }
    fn param_groups(&self) -> ParamGroups {
        param_groups(self.config.depths.clone())
    }
}

impl Family for ConvNextV2Classifier {
    type Backbone = ConvNextV2;
    const NAME: &'static str = "convnextv2";
    const ALIASES: &'static [&'static str] = &["convnext"];
    const MODEL_TYPES: &'static [&'static str] = &["convnextv2"];
    const HF_CLASS: &'static str = "ConvNextV2ForImageClassification";
    const ENSEMBLE_WEIGHT: f64 = 0.4;

    fn has_keys(map: &WeightMap) -> bool {
        has_key(map, "embeddings.patch_embeddings.weight") || has_key(map, "stem.0.weight")
    }
    fn from_weights(map: WeightMap, opts: &NetworkOptions, device: &Device) -> Result<Self> {
        let opts = ConvNextLoadOptions {
            config_json: opts.config_json.clone(),
            ..ConvNextLoadOptions::default()
        };
        ConvNextV2Classifier::from_weights(map, &opts, device)
    }
    fn load_backbone(path: &Path, device: &Device) -> Result<ConvNextV2> {
        ConvNextV2::load(path, &ConvNextLoadOptions::default(), device)
    }
    fn with_new_head(backbone: ConvNextV2, num_labels: usize) -> Self {
        ConvNextV2Classifier::with_new_head(backbone, num_labels)
    }
    fn backbone(&self) -> &ConvNextV2 {
        &self.backbone
    }
    fn backbone_mut(&mut self) -> &mut ConvNextV2 {
        &mut self.backbone
    }
    fn into_backbone(self) -> ConvNextV2 {
        self.backbone
    }
    fn features_logits(&self, pixels: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.features_and_logits(pixels)
    }
    fn num_labels(&self) -> usize {
        ConvNextV2Classifier::num_labels(self)
    }
    fn reverse_labels(&mut self) {
        self.head = crate::layers::reversed_outputs(self.head.clone());
    }
    fn head_mut(&mut self) -> &mut burn::nn::Linear {
        &mut self.head
    }
    fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()> {
        super::export::export_hf(self, image_size, name, dir)
    }
}

impl Logits for ConvNextV2Classifier {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}
