//! Roadwork classification of image files: decode, preprocess, forward, softmax, timed,
//! with either architecture behind one [`Network`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};

use crate::backbone::Backbone;
use crate::convnext::{ConvNextLoadOptions, ConvNextV2Classifier};
use crate::dinov2::{Dinov2Classifier, LoadOptions};
use crate::error::{ModelError, Result};
use crate::preprocess::{DEFAULT_MAX_PIXELS, Preprocessor, open_image};
use crate::weights::WeightMap;

/// The architectures a classifier can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// DINOv2 with registers.
    Dinov2,
    /// ConvNeXt-V2.
    ConvNextV2,
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Architecture::Dinov2 => "dinov2",
            Architecture::ConvNextV2 => "convnextv2",
        })
    }
}

impl std::str::FromStr for Architecture {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "dinov2" | "dinov2withregisters" => Ok(Architecture::Dinov2),
            "convnextv2" | "convnext" => Ok(Architecture::ConvNextV2),
            _ => Err(ModelError::Config(format!(
                "unknown architecture `{s}` (expected dinov2 or convnextv2)"
            ))),
        }
    }
}

impl Architecture {
    /// The architecture an HF `config.json` names in `model_type`, if it is one of ours.
    pub fn from_hf_config(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        match v.get("model_type")?.as_str()? {
            "dinov2_with_registers" | "dinov2" => Some(Architecture::Dinov2),
            "convnextv2" => Some(Architecture::ConvNextV2),
            _ => None,
        }
    }

    /// The architecture whose characteristic keys a checkpoint holds (any wrapper prefix).
    pub fn from_keys(map: &WeightMap) -> Option<Self> {
        let has = |suffix: &str| {
            map.tensors
                .keys()
                .any(|k| k == suffix || k.ends_with(&format!(".{suffix}")))
        };
        if has("cls_token") || has("reg_token") || has("register_tokens") {
            Some(Architecture::Dinov2)
        } else if has("embeddings.patch_embeddings.weight") || has("stem.0.weight") {
            Some(Architecture::ConvNextV2)
        } else {
            None
        }
    }
}

/// How to load a classifier checkpoint of either architecture.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// The architecture; detected from `config.json`'s `model_type` or the keys when unset.
    pub architecture: Option<Architecture>,
    /// An HF `config.json` to read (default: the one beside the checkpoint, if any).
    pub config_json: Option<PathBuf>,
    /// DINOv2 attention heads, for checkpoints without a config whose width is not a
    /// multiple of 64.
    pub num_heads: Option<usize>,
}

/// A classification network of either architecture.
// Held once per loaded model (the tensors live on the heap): the variants' inline sizes
// do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Network {
    /// DINOv2 with registers and a linear head on concat(CLS, mean patch).
    Dinov2(Dinov2Classifier),
    /// ConvNeXt-V2 and a linear head on the normed pooled feature.
    ConvNextV2(ConvNextV2Classifier),
}

impl Network {
    /// Load a classifier checkpoint (with its head), detecting the architecture.
    pub fn load(checkpoint: &Path, opts: &NetworkOptions, device: &Device) -> Result<Self> {
        let map = WeightMap::from_file(checkpoint)?;
        let config = opts
            .config_json
            .clone()
            .or_else(|| crate::find_sidecar(checkpoint, "config.json"));
        let arch = opts
            .architecture
            .or(crate::backbone::from_config(config.as_deref())?)
            .or_else(|| Architecture::from_keys(&map))
            .ok_or_else(|| ModelError::UnknownLayout {
                path: checkpoint.to_path_buf(),
                sample: map.sample_keys(6),
            })?;
        Ok(match arch {
            Architecture::Dinov2 => {
                let o = LoadOptions {
                    config_json: config,
                    num_heads: opts.num_heads,
                    ..LoadOptions::default()
                };
                Network::Dinov2(Dinov2Classifier::from_weights(map, &o, device)?)
            }
            Architecture::ConvNextV2 => {
                let o = ConvNextLoadOptions {
                    config_json: config,
                    ..ConvNextLoadOptions::default()
                };
                Network::ConvNextV2(ConvNextV2Classifier::from_weights(map, &o, device)?)
            }
        })
    }

    /// Logits `[B, num_labels]` for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Dinov2(m) => m.forward(pixels),
            Network::ConvNextV2(m) => m.forward(pixels),
        }
    }

    /// Number of labels of the head.
    pub fn num_labels(&self) -> usize {
        match self {
            Network::Dinov2(m) => m.num_labels(),
            Network::ConvNextV2(m) => m.num_labels(),
        }
    }

    /// The network with a two-label head ordered as this project's trainers expect
    /// (label 1 is roadwork), given the index of the roadwork label (see
    /// [`crate::labels`]); heads of other widths are an error.
    pub fn with_roadwork_as_label_one(self, roadwork: usize) -> Result<Self> {
        let labels = self.num_labels();
        if labels != 2 || roadwork > 1 {
            return Err(ModelError::Config(format!(
                "a roadwork classifier needs a two-label head; this one has {labels} labels \
                 (roadwork at {roadwork})"
            )));
        }
        if roadwork == 1 {
            return Ok(self);
        }
        Ok(match self {
            Network::Dinov2(mut m) => {
                m.head = crate::layers::reversed_outputs(m.head);
                Network::Dinov2(m)
            }
            Network::ConvNextV2(mut m) => {
                m.head = crate::layers::reversed_outputs(m.head);
                Network::ConvNextV2(m)
            }
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        match self {
            Network::Dinov2(_) => Architecture::Dinov2,
            Network::ConvNextV2(_) => Architecture::ConvNextV2,
        }
    }

    /// The backbone, its head dropped.
    pub fn into_backbone(self) -> Backbone {
        match self {
            Network::Dinov2(m) => Backbone::Dinov2(m.backbone),
            Network::ConvNextV2(m) => Backbone::ConvNextV2(m.backbone),
        }
    }

    /// Set the backbone's stochastic depth rate: the last block's, rising linearly from 0.
    pub fn set_drop_path(&mut self, rate: f64) {
        match self {
            Network::Dinov2(m) => m.backbone.set_drop_path(rate),
            Network::ConvNextV2(m) => m.backbone.set_drop_path(rate),
        }
    }
}

/// A classifier with its preprocessing and the index of the roadwork label.
#[derive(Debug)]
pub struct RoadworkClassifier {
    /// The network.
    pub model: Network,
    /// Its preprocessing.
    pub preprocessor: Preprocessor,
    /// Which logit is "roadwork".
    pub positive_index: usize,
    /// Where it runs.
    pub device: Device,
}

/// The answer for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image.
    pub path: PathBuf,
    /// Probability of roadwork, in [0, 1].
    pub roadwork: f32,
    /// Milliseconds spent decoding and preprocessing.
    pub preprocess_ms: f64,
    /// Milliseconds spent in the network (whole batch, shared by its images).
    pub forward_ms: f64,
}

impl RoadworkClassifier {
    /// Load from a local checkpoint; `config.json` / `preprocessor_config.json` beside it
    /// (or `<stem>.config.json` / `<stem>.preprocessor_config.json`) are used when present.
    pub fn load(
        checkpoint: &Path,
        opts: &NetworkOptions,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let model = Network::load(checkpoint, opts, &device)?;
        let config = opts
            .config_json
            .clone()
            .or_else(|| crate::find_sidecar(checkpoint, "config.json"));
        let preprocessor = Preprocessor::beside(checkpoint)?;
        Self::with_labels(
            model,
            config.as_deref(),
            preprocessor,
            positive_index,
            device,
        )
    }

    /// Assemble a classifier, taking the roadwork index from `positive_index`, else from
    /// the `id2label` of `config` (an HF `config.json`) by [`crate::labels`]' rule.
    pub(crate) fn with_labels(
        model: Network,
        config: Option<&Path>,
        preprocessor: Preprocessor,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let labels = model.num_labels();
        let positive_index = match (positive_index, config) {
            (Some(i), _) => i,
            (None, Some(path)) => {
                crate::labels::roadwork_index_from_config(&crate::read_text(path)?, labels, path)?
            }
            (None, None) => {
                crate::labels::roadwork_index(None, labels, Path::new("<no config.json>"))?
            }
        };
        if positive_index >= labels {
            return Err(ModelError::Config(format!(
                "roadwork label index {positive_index} is out of range for {labels} labels"
            )));
        }
        Ok(Self {
            model,
            preprocessor,
            positive_index,
            device,
        })
    }

    /// Roadwork probabilities of a preprocessed batch `[B, 3, H, W]`.
    pub fn roadwork_probabilities(&self, pixels: Tensor<4>) -> Vec<f32> {
        crate::softmax_rows(self.model.forward(pixels))
            .into_iter()
            .map(|p| p[self.positive_index])
            .collect()
    }

    /// Classify image files as one batch. Any unreadable image fails the call, naming it.
    pub fn classify_files(&self, paths: &[PathBuf]) -> Result<Vec<Prediction>> {
        let t0 = Instant::now();
        let images = open_images(paths)?;
        let batch = self.preprocessor.batch(&images, &self.device);
        let preprocess_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let probs = self.roadwork_probabilities(batch);
        let forward_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(predictions(paths, probs, preprocess_ms, forward_ms))
    }
}

/// Decode image files (any failure names its file).
pub(crate) fn open_images(paths: &[PathBuf]) -> Result<Vec<image::DynamicImage>> {
    paths
        .iter()
        .map(|p| open_image(p, DEFAULT_MAX_PIXELS))
        .collect()
}

/// One prediction per file, the batch timings shared.
pub(crate) fn predictions(
    paths: &[PathBuf],
    probs: Vec<f32>,
    preprocess_ms: f64,
    forward_ms: f64,
) -> Vec<Prediction> {
    paths
        .iter()
        .zip(probs)
        .map(|(path, roadwork)| Prediction {
            path: path.clone(),
            roadwork,
            preprocess_ms,
            forward_ms,
        })
        .collect()
}
