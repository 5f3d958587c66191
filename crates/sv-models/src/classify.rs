//! Roadwork classification of image files: decode, preprocess, forward, softmax, timed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;

use crate::dinov2::{Dinov2Classifier, LoadOptions};
use crate::error::{ModelError, Result};
use crate::preprocess::{DEFAULT_MAX_PIXELS, Preprocessor, open_image};

/// A classifier with its preprocessing and the index of the roadwork label.
#[derive(Debug)]
pub struct RoadworkClassifier {
    /// The network.
    pub model: Dinov2Classifier,
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

/// Index of the roadwork label in an HF `config.json`'s `id2label`: the label whose name
/// contains "roadwork" (any case); otherwise label 1 of a two-label head.
pub fn positive_index_from_config(text: &str, num_labels: usize) -> Result<usize> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
    if let Some(map) = v.get("id2label").and_then(|m| m.as_object()) {
        for (id, label) in map {
            let is_roadwork = label
                .as_str()
                .is_some_and(|l| l.to_ascii_lowercase().contains("roadwork"));
            if is_roadwork {
                return id.parse().map_err(|_| {
                    ModelError::Config(format!("config.json: id2label key `{id}` is not a number"))
                });
            }
        }
    }
    default_positive(num_labels)
}

fn default_positive(num_labels: usize) -> Result<usize> {
    if num_labels == 2 {
        Ok(1)
    } else {
        Err(ModelError::Config(format!(
            "the head has {num_labels} labels and none is named roadwork; pass the index"
        )))
    }
}

impl RoadworkClassifier {
    /// Load from a local checkpoint; `config.json` / `preprocessor_config.json` beside it
    /// (or `<stem>.config.json` / `<stem>.preprocessor_config.json`) are used when present.
    pub fn load(
        checkpoint: &Path,
        opts: &LoadOptions,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let model = Dinov2Classifier::load(checkpoint, opts, &device)?;
        let config = opts
            .config_json
            .clone()
            .or_else(|| crate::find_sidecar(checkpoint, "config.json"));
        let preprocessor = match crate::find_sidecar(checkpoint, "preprocessor_config.json") {
            Some(path) => Preprocessor::from_hf_json(&crate::read_text(&path)?)?,
            None => Preprocessor::default(),
        };
        Self::with_labels(
            model,
            config.as_deref(),
            preprocessor,
            positive_index,
            device,
        )
    }

    /// Assemble a classifier, taking the roadwork index from `positive_index`, else from
    /// the `id2label` of `config` (an HF `config.json`), else label 1 of a two-label head.
    pub(crate) fn with_labels(
        model: Dinov2Classifier,
        config: Option<&Path>,
        preprocessor: Preprocessor,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let labels = model.num_labels();
        let positive_index = match (positive_index, config) {
            (Some(i), _) => i,
            (None, Some(path)) => positive_index_from_config(&crate::read_text(path)?, labels)?,
            (None, None) => default_positive(labels)?,
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

    /// Classify image files as one batch. Any unreadable image fails the call, naming it.
    pub fn classify_files(&self, paths: &[PathBuf]) -> Result<Vec<Prediction>> {
        let t0 = Instant::now();
        let images = paths
            .iter()
            .map(|p| open_image(p, DEFAULT_MAX_PIXELS))
            .collect::<Result<Vec<_>>>()?;
        let batch = self.preprocessor.batch(&images, &self.device);
        let preprocess_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let probs = crate::softmax_rows(self.model.forward(batch));
        let forward_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(paths
            .iter()
            .zip(probs)
            .map(|(path, p)| Prediction {
                path: path.clone(),
                roadwork: p[self.positive_index],
                preprocess_ms,
                forward_ms,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roadwork_label_found_by_name() {
        let cfg = r#"{"id2label": {"0": "Roadwork", "1": "None"}}"#;
        assert_eq!(positive_index_from_config(cfg, 2).unwrap(), 0);
    }

    #[test]
    fn two_labels_without_names_default_to_one() {
        assert_eq!(positive_index_from_config("{}", 2).unwrap(), 1);
        assert!(positive_index_from_config("{}", 3).is_err());
    }
}
