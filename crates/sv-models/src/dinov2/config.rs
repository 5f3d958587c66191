//! DINOv2-with-registers configurations: the four released sizes and custom ones.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Shape of a DINOv2-with-registers backbone (and its optional classification head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dinov2Config {
    /// Token width D.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Attention heads per block (D must divide evenly).
    pub num_heads: usize,
    /// MLP hidden width as a multiple of D (4 for S/B/L and g before the SwiGLU rounding).
    pub mlp_ratio: f64,
    /// SwiGLU MLP (giant) instead of fc1 → exact GELU → fc2.
    pub swiglu: bool,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Image side the position embeddings were trained at (518 for the released models).
    pub image_size: usize,
    /// Register tokens after CLS.
    pub num_register_tokens: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Bias on the query/key/value projections.
    pub qkv_bias: bool,
    /// Stochastic depth rate of the last block (linearly increasing from 0); training only.
    pub drop_path_rate: f64,
    /// Input channels.
    pub num_channels: usize,
}

impl Dinov2Config {
    fn released(hidden_size: usize, num_layers: usize, num_heads: usize, swiglu: bool) -> Self {
        Self {
            hidden_size,
            num_layers,
            num_heads,
            mlp_ratio: 4.0,
            swiglu,
            patch_size: 14,
            image_size: 518,
            num_register_tokens: 4,
            layer_norm_eps: 1e-6,
            qkv_bias: true,
            drop_path_rate: 0.0,
            num_channels: 3,
        }
    }

    /// `facebook/dinov2-with-registers-small` (ViT-S/14, 22 M parameters).
    pub fn small() -> Self {
        Self::released(384, 12, 6, false)
    }
    /// `facebook/dinov2-with-registers-base` (ViT-B/14, 87 M).
    pub fn base() -> Self {
        Self::released(768, 12, 12, false)
    }
    /// `facebook/dinov2-with-registers-large` (ViT-L/14, 304 M).
    pub fn large() -> Self {
        Self::released(1024, 24, 16, false)
    }
    /// `facebook/dinov2-with-registers-giant` (ViT-g/14 with SwiGLU, 1.1 B).
    pub fn giant() -> Self {
        Self::released(1536, 40, 24, true)
    }

    /// A released size by name: `small`/`s`, `base`/`b`, `large`/`l`, `giant`/`g`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "small" | "s" | "vits14" => Some(Self::small()),
            "base" | "b" | "vitb14" => Some(Self::base()),
            "large" | "l" | "vitl14" => Some(Self::large()),
            "giant" | "g" | "vitg14" => Some(Self::giant()),
            _ => None,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Hidden width of the MLP: `D·ratio`, and for SwiGLU the reference's rounding
    /// `(⌊2/3·h⌋ + 7) / 8 · 8` (4096 for giant).
    pub fn mlp_hidden(&self) -> usize {
        let h = (self.hidden_size as f64 * self.mlp_ratio) as usize;
        if self.swiglu {
            (h * 2 / 3).div_ceil(8) * 8
        } else {
            h
        }
    }

    /// Side of the position-embedding grid of the checkpoint (37 for 518 px).
    pub fn pos_grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Number of backbone parameters (what `sum(p.numel())` gives for the reference).
    pub fn num_backbone_params(&self) -> usize {
        let d = self.hidden_size;
        let h = self.mlp_hidden();
        let p = self.patch_size;
        let n = self.pos_grid() * self.pos_grid();
        let embed = d // cls
            + d // mask token
            + self.num_register_tokens * d
            + (n + 1) * d
            + self.num_channels * p * p * d
            + d;
        let qkv = 3 * d * d + if self.qkv_bias { 3 * d } else { 0 };
        let mlp = if self.swiglu {
            d * 2 * h + 2 * h + h * d + d
        } else {
            d * h + h + h * d + d
        };
        let block = 2 * 2 * d + qkv + d * d + d + 2 * d + mlp;
        embed + self.num_layers * block + 2 * d
    }

    /// Check internal consistency.
    pub fn validate(&self) -> Result<()> {
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(ModelError::Config(format!(
                "hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            )));
        }
        if self.patch_size == 0 || self.image_size < self.patch_size {
            return Err(ModelError::Config(format!(
                "image_size {} must be at least patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(ModelError::Config(format!(
                "drop_path_rate {} must be in [0, 1)",
                self.drop_path_rate
            )));
        }
        Ok(())
    }

    /// Read an HF transformers `config.json` of `model_type` `dinov2_with_registers`.
    pub fn from_hf_json(text: &str) -> Result<(Self, Option<usize>)> {
        let v: HfConfig = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        if let Some(t) = &v.model_type
            && t != "dinov2_with_registers"
        {
            return Err(ModelError::Config(format!(
                "config.json has model_type `{t}`, expected `dinov2_with_registers`"
            )));
        }
        if let Some(act) = &v.hidden_act
            && act != "gelu"
            && !v.use_swiglu_ffn
        {
            return Err(ModelError::Config(format!(
                "config.json hidden_act `{act}` is not supported (only exact `gelu`)"
            )));
        }
        let cfg = Self {
            hidden_size: v.hidden_size,
            num_layers: v.num_hidden_layers,
            num_heads: v.num_attention_heads,
            mlp_ratio: v.mlp_ratio,
            swiglu: v.use_swiglu_ffn,
            patch_size: v.patch_size,
            image_size: v.image_size,
            num_register_tokens: v.num_register_tokens,
            layer_norm_eps: v.layer_norm_eps,
            qkv_bias: v.qkv_bias,
            drop_path_rate: v.drop_path_rate,
            num_channels: v.num_channels,
        };
        cfg.validate()?;
        let labels = v.id2label.map(|m| m.len());
        Ok((cfg, labels))
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "four")]
    mlp_ratio: f64,
    #[serde(default)]
    use_swiglu_ffn: bool,
    #[serde(default = "fourteen")]
    patch_size: usize,
    #[serde(default = "five18")]
    image_size: usize,
    #[serde(default = "four_usize")]
    num_register_tokens: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default = "yes")]
    qkv_bias: bool,
    #[serde(default)]
    drop_path_rate: f64,
    #[serde(default = "three")]
    num_channels: usize,
    hidden_act: Option<String>,
    id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn four() -> f64 {
    4.0
}
fn four_usize() -> usize {
    4
}
fn fourteen() -> usize {
    14
}
fn five18() -> usize {
    518
}
fn eps() -> f64 {
    1e-6
}
fn yes() -> bool {
    true
}
fn three() -> usize {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giant_swiglu_hidden_is_4096() {
        assert_eq!(Dinov2Config::giant().mlp_hidden(), 4096);
        assert_eq!(Dinov2Config::small().mlp_hidden(), 1536);
    }

    #[test]
    fn rejects_indivisible_heads() {
        let mut c = Dinov2Config::small();
        c.num_heads = 5;
        assert!(c.validate().is_err());
    }
}
