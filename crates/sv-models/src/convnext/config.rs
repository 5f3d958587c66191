//! ConvNeXt-V2 configurations: the released sizes and custom ones.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Shape of a ConvNeXt-V2 backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvNextV2Config {
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Channels per stage.
    pub dims: Vec<usize>,
    /// Side of the patchify stem (4).
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Epsilon of the LayerNorm on the pooled feature (HF: `layer_norm_eps`, 1e-12 by
    /// default; timm: 1e-6). Every other LayerNorm uses 1e-6, as both references do.
    pub head_norm_eps: f64,
    /// Stochastic depth rate of the last block (linearly increasing from 0 over all
    /// blocks); training only.
    pub drop_path_rate: f64,
    /// Image side the model was trained at (informational; any size divisible by 32 works).
    pub image_size: usize,
}

/// Epsilon of every LayerNorm inside the network.
pub const NORM_EPS: f64 = 1e-6;
/// Epsilon added to the GRN's channel mean.
pub const GRN_EPS: f32 = 1e-6;
/// Side of the depthwise convolution.
pub const DW_KERNEL: usize = 7;

impl ConvNextV2Config {
    fn released(depths: [usize; 4], dims: [usize; 4]) -> Self {
        Self {
            depths: depths.to_vec(),
            dims: dims.to_vec(),
            patch_size: 4,
            num_channels: 3,
            head_norm_eps: 1e-12,
            drop_path_rate: 0.0,
            image_size: 224,
        }
    }

    /// atto (3.7 M parameters).
    pub fn atto() -> Self {
        Self::released([2, 2, 6, 2], [40, 80, 160, 320])
    }
    /// femto (5.2 M).
    pub fn femto() -> Self {
        Self::released([2, 2, 6, 2], [48, 96, 192, 384])
    }
    /// pico (9.1 M).
    pub fn pico() -> Self {
        Self::released([2, 2, 6, 2], [64, 128, 256, 512])
    }
    /// nano (15.6 M).
    pub fn nano() -> Self {
        Self::released([2, 2, 8, 2], [80, 160, 320, 640])
    }
    /// tiny (28.6 M).
    pub fn tiny() -> Self {
        Self::released([3, 3, 9, 3], [96, 192, 384, 768])
    }
    /// small (timm only, 50.3 M).
    pub fn small() -> Self {
        Self::released([3, 3, 27, 3], [96, 192, 384, 768])
    }
    /// base (88.7 M).
    pub fn base() -> Self {
        Self::released([3, 3, 27, 3], [128, 256, 512, 1024])
    }
    /// large (197.9 M).
    pub fn large() -> Self {
        Self::released([3, 3, 27, 3], [192, 384, 768, 1536])
    }
    /// huge (660.3 M).
    pub fn huge() -> Self {
        Self::released([3, 3, 27, 3], [352, 704, 1408, 2816])
    }

    /// A released size by name (`atto` … `huge`, with or without a `convnextv2_` prefix).
    pub fn by_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let size = lower
            .trim_start_matches("convnextv2_")
            .trim_start_matches("convnextv2-");
        Some(match size {
            "atto" => Self::atto(),
            "femto" => Self::femto(),
            "pico" => Self::pico(),
            "nano" => Self::nano(),
            "tiny" => Self::tiny(),
            "small" => Self::small(),
            "base" => Self::base(),
            "large" => Self::large(),
            "huge" => Self::huge(),
            _ => return None,
        })
    }

    /// Total number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.depths.iter().sum()
    }

    /// Channels of the final feature map (the head's input).
    pub fn num_features(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }

    /// Stochastic depth rate of every block, stage by stage (`linspace(0, rate, blocks)`).
    pub fn drop_path_rates(&self) -> Vec<Vec<f64>> {
        let n = self.num_blocks();
        let mut k = 0;
        self.depths
            .iter()
            .map(|&d| {
                (0..d)
                    .map(|_| {
                        let r = if n > 1 {
                            self.drop_path_rate * k as f64 / (n - 1) as f64
                        } else {
                            0.0
                        };
                        k += 1;
                        r
                    })
                    .collect()
            })
            .collect()
    }

    /// Parameters of the backbone (without a classification head), from the shapes.
    pub fn num_backbone_params(&self) -> usize {
        let (p, c) = (self.patch_size, self.num_channels);
        let d0 = self.dims.first().copied().unwrap_or(0);
        let mut n = d0 * c * p * p + d0 + 2 * d0;
        let mut prev = d0;
        for (i, (&depth, &d)) in self.depths.iter().zip(&self.dims).enumerate() {
            if i > 0 {
                n += 2 * prev + d * prev * 4 + d;
            }
            // dwconv, norm, fc1, grn, fc2.
            let block = d * DW_KERNEL * DW_KERNEL
                + d
                + 2 * d
                + (d * 4 * d + 4 * d)
                + 8 * d
                + (4 * d * d + d);
            n += depth * block;
            prev = d;
        }
        n + 2 * prev // pooled-feature norm
    }

    /// Check that the configuration is usable.
    pub fn validate(&self) -> Result<()> {
        if self.depths.is_empty() || self.depths.len() != self.dims.len() {
            return Err(ModelError::Config(format!(
                "ConvNeXt-V2 needs as many depths as dims (got {:?} and {:?})",
                self.depths, self.dims
            )));
        }
        if self.dims.contains(&0) || self.patch_size == 0 || self.num_channels == 0 {
            return Err(ModelError::Config(
                "ConvNeXt-V2 dims, patch size and channels must be positive".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(ModelError::Config(format!(
                "drop_path_rate {} is outside [0, 1)",
                self.drop_path_rate
            )));
        }
        Ok(())
    }

    /// Read an HF `ConvNextV2Config` `config.json`. Returns the config and the number of
    /// labels of its classification head, if it names any.
    pub fn from_hf_json(text: &str) -> Result<(Self, Option<usize>)> {
        #[derive(Deserialize)]
        struct Hf {
            model_type: Option<String>,
            depths: Option<Vec<usize>>,
            hidden_sizes: Option<Vec<usize>>,
            #[serde(default = "four")]
            patch_size: usize,
            #[serde(default = "three")]
            num_channels: usize,
            #[serde(default = "hf_eps")]
            layer_norm_eps: f64,
            #[serde(default)]
            drop_path_rate: f64,
            #[serde(default = "two24")]
            image_size: usize,
            #[serde(default)]
            hidden_act: Option<String>,
            id2label: Option<serde_json::Map<String, serde_json::Value>>,
            num_labels: Option<usize>,
        }
        let hf: Hf = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        if let Some(t) = &hf.model_type
            && t != "convnextv2"
        {
            return Err(ModelError::Config(format!(
                "config.json: model_type `{t}` is not convnextv2"
            )));
        }
        if let Some(act) = &hf.hidden_act
            && act != "gelu"
        {
            return Err(ModelError::Config(format!(
                "config.json: hidden_act `{act}` is not supported (only exact gelu)"
            )));
        }
        let tiny = Self::tiny();
        let cfg = Self {
            depths: hf.depths.unwrap_or(tiny.depths),
            dims: hf.hidden_sizes.unwrap_or(tiny.dims),
            patch_size: hf.patch_size,
            num_channels: hf.num_channels,
            head_norm_eps: hf.layer_norm_eps,
            drop_path_rate: hf.drop_path_rate,
            image_size: hf.image_size,
        };
        cfg.validate()?;
        let labels = hf.id2label.map(|m| m.len()).or(hf.num_labels);
        Ok((cfg, labels))
    }
}

fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn two24() -> usize {
    224
}
fn hf_eps() -> f64 {
    1e-12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_path_rates_rise_linearly_over_all_blocks() {
        let mut cfg = ConvNextV2Config::atto();
        cfg.drop_path_rate = 0.11;
        let rates: Vec<f64> = cfg.drop_path_rates().concat();
        assert_eq!(rates.len(), 12);
        assert_eq!(rates[0], 0.0);
        assert!((rates[11] - 0.11).abs() < 1e-12);
        assert!((rates[1] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn hf_json_reads_sizes_and_rejects_other_models() {
        let (cfg, labels) = ConvNextV2Config::from_hf_json(
            r#"{"model_type":"convnextv2","depths":[2,2,6,2],"hidden_sizes":[40,80,160,320],
                "id2label":{"0":"a","1":"b"}}"#,
        )
        .unwrap();
        assert_eq!(cfg, ConvNextV2Config::atto());
        assert_eq!(labels, Some(2));
        assert!(ConvNextV2Config::from_hf_json(r#"{"model_type":"dinov2"}"#).is_err());
    }
}
