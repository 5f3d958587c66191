//! Roadwork classification of image files: decode, preprocess, forward, softmax, timed,
//! with any registered family behind one [`Network`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};

use crate::error::{ModelError, Result};
pub use crate::family::{Architecture, Network};
use crate::preprocess::{DEFAULT_MAX_PIXELS, Preprocessor, open_image};
use crate::weights::WeightMap;

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Architecture {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        let key = s.to_ascii_lowercase().replace(['-', '_'], "");
        Architecture::ALL
            .iter()
            .copied()
            .find(|a| a.name() == key || a.aliases().contains(&key.as_str()))
            .ok_or_else(|| {
                let names: Vec<&str> = Architecture::ALL.iter().map(|a| a.name()).collect();
                ModelError::Config(format!(
                    "unknown architecture `{s}` (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

impl serde::Serialize for Architecture {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Architecture {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Architecture {
    /// The architecture an HF `config.json` names in `model_type`, if it is one of ours.
    pub fn from_hf_config(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let model_type = v.get("model_type")?.as_str()?;
        Architecture::ALL
            .iter()
            .copied()
            .find(|a| a.model_types().contains(&model_type))
    }

    /// The architecture whose characteristic keys a checkpoint holds (any wrapper prefix).
    pub fn from_keys(map: &WeightMap) -> Option<Self> {
        Architecture::ALL.iter().copied().find(|a| a.has_keys(map))
    }
}

/// Whether `map` holds a key equal to `suffix` or ending in `.suffix`.
pub(crate) fn has_key(map: &WeightMap, suffix: &str) -> bool {
    map.tensors
        .keys()
        .any(|k| k == suffix || k.ends_with(&format!(".{suffix}")))
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
        let opts = NetworkOptions {
            architecture: Some(arch),
            config_json: config,
            num_heads: opts.num_heads,
        };
        arch.classifier_from_weights(map, &opts, device)
    }

    /// Logits `[B, num_labels]` for images `[B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.as_dyn().logits(pixels)
    }

    /// Number of labels of the head.
    pub fn num_labels(&self) -> usize {
        self.as_dyn().num_labels()
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
        let mut network = self;
        network.as_dyn_mut().reverse_labels();
        Ok(network)
    }

    /// Replace the head's parameters: `weight` row-major `[in, labels]` and `bias`
    /// `[labels]`, of the head's own shape.
    pub fn set_head(&mut self, weight: Vec<f32>, bias: Vec<f32>) -> Result<()> {
        use burn::module::Param;
        use burn::tensor::TensorData;
        let head = self.as_dyn_mut().head_mut();
        let [inputs, labels] = head.weight.dims();
        if weight.len() != inputs * labels || bias.len() != labels {
            return Err(ModelError::Config(format!(
                "a head of {inputs} inputs and {labels} labels cannot take {} weights and {} biases",
                weight.len(),
                bias.len()
            )));
        }
        let device = head.weight.val().device();
        *head = burn::nn::Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [inputs, labels]),
                &device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(bias, [labels]),
                &device,
            ))),
        };
        Ok(())
    }

    /// Whether the head reads the pooled feature the transformers layout exports (a timm
    /// head on the CLS token or the averaged patches does not).
    pub fn head_on_pooled(&self) -> bool {
        self.as_dyn().head_on_pooled()
    }

    /// Set the backbone's stochastic depth rate: the last block's, rising linearly from 0.
    pub fn set_drop_path(&mut self, rate: f64) {
        self.as_dyn_mut().set_drop_path(rate)
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

    /// This classifier computing in `precision` (its answers still f32).
    pub fn in_precision(mut self, precision: crate::Precision) -> Self {
        self.model = self.model.in_precision(precision);
        self
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
