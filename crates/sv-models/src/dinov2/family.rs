//! DINOv2 with registers as a registered [`Family`]: detection,
//! loading, parameter groups and export.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::{Dinov2, Dinov2Classifier, HeadInput, LoadOptions};
use crate::classify::{NetworkOptions, has_key};
use crate::error::Result;
use crate::family::{BackboneModel, Family, Logits, ParamGroup, ParamGroups};
use crate::weights::WeightMap;

/// The parameter groups of a DINOv2 backbone with `depth` blocks, by paths inside the
/// backbone: the patch embedding, tokens and position embeddings 0, block `i` → `i + 1`,
/// the final norm `depth + 1`; no weight decay on vectors, tokens and position
/// embeddings.
pub fn param_groups(depth: usize) -> ParamGroups {
    const EMBEDDINGS: [&str; 6] = [
        "patch_weight",
        "patch_bias",
        "cls_token",
        "register_tokens",
        "pos_embed",
        "mask_token",
    ];
    const TOKENS: [&str; 4] = ["cls_token", "register_tokens", "pos_embed", "mask_token"];
    ParamGroups::new(depth + 1, move |path, rank| {
        let layer = if EMBEDDINGS.iter().any(|e| path.starts_with(e)) {
            0
        } else if let Some(rest) = path.strip_prefix("blocks.") {
            rest.split('.')
                .next()
                .and_then(|i| i.parse::<usize>().ok())
                .map_or(depth + 1, |i| i + 1)
        } else {
            depth + 1
        };
        ParamGroup {
            layer,
            decay: rank > 1 && !TOKENS.iter().any(|t| path.starts_with(t)),
        }
    })
}

impl BackboneModel for Dinov2 {
    fn pooled(&self, pixels: Tensor<4>) -> Tensor<2> {
        crate::precision::f32(self.forward(pixels).pooled)
    }
    fn set_drop_path(&mut self, rate: f64) {
        Dinov2::set_drop_path(self, rate)
    }
    fn param_groups(&self) -> ParamGroups {
        param_groups(self.config.num_layers)
    }
}

impl Family for Dinov2Classifier {
    type Backbone = Dinov2;
    const NAME: &'static str = "dinov2";
    const ALIASES: &'static [&'static str] = &["dinov2withregisters"];
    const MODEL_TYPES: &'static [&'static str] = &["dinov2_with_registers", "dinov2"];
    const HF_CLASS: &'static str = "Dinov2WithRegistersForImageClassification";
    const ENSEMBLE_WEIGHT: f64 = 0.6;

    fn has_keys(map: &WeightMap) -> bool {
        ["cls_token", "reg_token", "register_tokens"]
            .iter()
            .any(|k| has_key(map, k))
    }
    fn from_weights(map: WeightMap, opts: &NetworkOptions, device: &Device) -> Result<Self> {
        let opts = LoadOptions {
            config_json: opts.config_json.clone(),
            num_heads: opts.num_heads,
            ..LoadOptions::default()
        };
        Dinov2Classifier::from_weights(map, &opts, device)
    }
    fn load_backbone(path: &Path, device: &Device) -> Result<Dinov2> {
        Dinov2::load(path, &LoadOptions::default(), device)
    }
    fn with_new_head(backbone: Dinov2, num_labels: usize) -> Self {
        Dinov2Classifier::with_new_head(backbone, num_labels)
    }
    fn backbone(&self) -> &Dinov2 {
        &self.backbone
    }
    fn backbone_mut(&mut self) -> &mut Dinov2 {
        &mut self.backbone
    }
    fn into_backbone(self) -> Dinov2 {
        self.backbone
    }
    fn features_logits(&self, pixels: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.features_and_logits(&self.backbone.forward(pixels))
    }
    fn num_labels(&self) -> usize {
        Dinov2Classifier::num_labels(self)
    }
    fn reverse_labels(&mut self) {
        self.head = crate::layers::reversed_outputs(self.head.clone());
    }
    fn head_mut(&mut self) -> &mut burn::nn::Linear {
        &mut self.head
    }
    fn head_on_pooled(&self) -> bool {
        self.head_input == HeadInput::ClsAndMeanPatch
    }
    fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()> {
        super::export::export_hf(self, image_size, name, dir)
    }
}

impl Logits for Dinov2Classifier {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}
