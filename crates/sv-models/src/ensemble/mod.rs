//! Ensembles of roadwork classifiers: the weighted average of the members' roadwork
//! probabilities, each optionally temperature-scaled (`σ(logit(p)/T)`), with weights and
//! temperatures that can be fitted on validation predictions and are saved in the
//! ensemble's JSON file together with the members' checkpoints.

mod fit;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

pub use fit::{Fit, FitOptions, fit, log_loss, temper};

use crate::classify::{
    Architecture, NetworkOptions, Prediction, RoadworkClassifier, open_images, predictions,
};
use crate::error::{ModelError, Result};
use crate::preprocess::Preprocessor;

/// Default weight of a member by architecture ([`Architecture::ensemble_weight`]:
/// DINOv2 0.6, ConvNeXt-V2 0.4).
pub fn default_weight(arch: Architecture) -> f64 {
    arch.ensemble_weight()
}

/// One member as stored in the ensemble file. Paths are relative to the file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// A name for reports.
    pub name: String,
    /// Checkpoint file (with its classification head).
    pub checkpoint: PathBuf,
    /// Architecture (default: detected from the config or the keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// HF `config.json` (default: the one beside the checkpoint, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// HF `preprocessor_config.json` (default: the one beside the checkpoint, else the
    /// 256 → 224 ImageNet pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessor: Option<PathBuf>,
    /// Index of the roadwork logit (default: from `id2label`, else 1 of 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roadwork_index: Option<usize>,
    /// Weight in the average (default: by architecture, see [`default_weight`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Temperature of the member's roadwork logit (default 1: unchanged).
    #[serde(default = "one")]
    pub temperature: f64,
}

fn one() -> f64 {
    1.0
}

/// How the stored weights and temperatures were fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitRecord {
    /// Validation samples used.
    pub samples: usize,
    /// Mean log-loss before fitting.
    pub initial_log_loss: f64,
    /// Mean log-loss after fitting.
    pub log_loss: f64,
    /// Whether weights were fitted.
    pub weights: bool,
    /// Whether temperatures were fitted.
    pub temperatures: bool,
}

/// The ensemble file (`ensemble.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// The members.
    pub members: Vec<MemberSpec>,
    /// The last fit, if the weights or temperatures were fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitRecord>,
}

impl EnsembleSpec {
    /// Read an ensemble file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::read_text(path)?;
        let spec: Self = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config(format!("{}: {e}", path.display())))?;
        spec.validate(&format!("{}: ", path.display()))?;
        Ok(spec)
    }

    /// Write the ensemble file atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate("")?;
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| ModelError::Config(format!("ensemble: {e}")))?;
        text.push('\n');
        crate::atomic_write(path, text.as_bytes())
    }

    /// Refuse an ensemble without members, or with a negative weight or a
    /// non-positive temperature; the message starts with `at`.
    fn validate(&self, at: &str) -> Result<()> {
        let bad = |reason: String| Err(ModelError::Config(format!("{at}{reason}")));
        if self.members.is_empty() {
            return bad("an ensemble needs at least one member".into());
        }
        for m in &self.members {
            if let Some(w) = m.weight
                && !(w.is_finite() && w >= 0.0)
            {
                return bad(format!("member `{}`: weight {w} is not ≥ 0", m.name));
            }
            if !(m.temperature.is_finite() && m.temperature > 0.0) {
                return bad(format!(
                    "member `{}`: temperature {} is not > 0",
                    m.name, m.temperature
                ));
            }
        }
        Ok(())
    }
}

/// A loaded member.
#[derive(Debug)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// The classifier with its preprocessing.
    pub classifier: RoadworkClassifier,
    /// Weight in the average (the average divides by the sum of weights).
    pub weight: f64,
    /// Temperature of its roadwork logit.
    pub temperature: f64,
}

/// A loaded ensemble.
#[derive(Debug)]
pub struct Ensemble {
    /// The members, in file order.
    pub members: Vec<Member>,
    spec: EnsembleSpec,
}

/// Per-image result of an ensemble.
#[derive(Debug, Clone)]
pub struct EnsemblePrediction {
    /// The combined prediction.
    pub prediction: Prediction,
    /// Each member's temperature-scaled roadwork probability, in member order.
    pub members: Vec<f32>,
}

impl Ensemble {
    /// Load an ensemble file and every member's checkpoint.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let spec = EnsembleSpec::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_spec(spec, base, device)
    }

    /// Load the members of `spec`, resolving relative paths against `base`.
    pub fn from_spec(spec: EnsembleSpec, base: &Path, device: &Device) -> Result<Self> {
        spec.validate("")?;
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let members = spec
            .members
            .iter()
            .map(|m| {
                let checkpoint = resolve(&m.checkpoint);
                let opts = NetworkOptions {
                    architecture: m.architecture,
                    config_json: m.config.as_deref().map(resolve),
                    num_heads: None,
                };
                let mut classifier =
                    RoadworkClassifier::load(&checkpoint, &opts, m.roadwork_index, device.clone())?;
                if let Some(p) = &m.preprocessor {
                    classifier.preprocessor =
                        Preprocessor::from_hf_json(&crate::read_text(&resolve(p))?)?;
                }
                let weight = m
                    .weight
                    .unwrap_or_else(|| default_weight(classifier.model.architecture()));
                Ok(Member {
                    name: m.name.clone(),
                    classifier,
                    weight,
                    temperature: m.temperature,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if members.iter().map(|m| m.weight).sum::<f64>() <= 0.0 {
            return Err(ModelError::Config("the members' weights sum to 0".into()));
        }
        Ok(Self { members, spec })
    }

    /// Every member computing in `precision` (answers still f32).
    pub fn in_precision(mut self, precision: crate::Precision) -> Self {
        self.members = self
            .members
            .into_iter()
            .map(|m| Member {
                classifier: m.classifier.in_precision(precision),
                ..m
            })
            .collect();
        self
    }

    /// The ensemble file as it would be saved now (current weights and temperatures).
    pub fn spec(&self) -> EnsembleSpec {
        let mut spec = self.spec.clone();
        for (s, m) in spec.members.iter_mut().zip(&self.members) {
            s.weight = Some(m.weight);
            s.temperature = m.temperature;
        }
        spec
    }

    /// Save the ensemble file (atomically), with the current weights and temperatures.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.spec().save(path)
    }

    /// Members grouped by their resize step: each group's images are resized once
    /// (decoding is shared by all members), then cropped and normalised once per distinct
    /// processor within the group.
    pub fn preprocessing_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let key = m.classifier.preprocessor.resize_key();
            match groups
                .iter_mut()
                .find(|g| self.members[g[0]].classifier.preprocessor.resize_key() == key)
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

    /// Each member's temperature-scaled roadwork probability `[member][image]`.
    pub fn member_probabilities(&self, images: &[DynamicImage]) -> Vec<Vec<f32>> {
        self.raw_member_probabilities(images)
            .into_iter()
            .zip(&self.members)
            .map(|(probs, m)| {
                probs
                    .into_iter()
                    .map(|p| temper(p, m.temperature) as f32)
                    .collect()
            })
            .collect()
    }

    /// The weighted average of member probabilities `[member][image]` → `[image]`.
    pub fn combine(&self, member_probs: &[Vec<f32>]) -> Vec<f32> {
        let total: f64 = self.members.iter().map(|m| m.weight).sum();
        let n = member_probs.first().map_or(0, Vec::len);
        (0..n)
            .map(|s| {
                let sum: f64 = self
                    .members
                    .iter()
                    .zip(member_probs)
                    .map(|(m, p)| m.weight * f64::from(p[s]))
                    .sum();
                (sum / total) as f32
            })
            .collect()
    }

    /// Roadwork probabilities of decoded images.
    pub fn probabilities(&self, images: &[DynamicImage]) -> Vec<f32> {
        self.combine(&self.member_probabilities(images))
    }

    /// Classify image files as one batch. Any unreadable image fails the call, naming it.
    pub fn classify_files(&self, paths: &[PathBuf]) -> Result<Vec<EnsemblePrediction>> {
        let t0 = Instant::now();
        let images = open_images(paths)?;
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let members = self.member_probabilities(&images);
        let combined = self.combine(&members);
        // Preprocessing runs inside the member loop; report it with the forward time.
        let preds = predictions(paths, combined, decode_ms, t1.elapsed().as_secs_f64() * 1e3);
        Ok(preds
            .into_iter()
            .enumerate()
            .map(|(s, prediction)| EnsemblePrediction {
                prediction,
                members: members.iter().map(|p| p[s]).collect(),
            })
            .collect())
    }

    /// Fit weights and/or temperatures on the members' raw (untempered) roadwork
    /// probabilities `[member][sample]` and the labels, store them in the ensemble, and
    /// return the fit.
    pub fn fit(
        &mut self,
        raw_probs: &[Vec<f64>],
        labels: &[bool],
        opts: FitOptions,
    ) -> Result<Fit> {
        let weights: Vec<f64> = self.members.iter().map(|m| m.weight.max(1e-6)).collect();
        let temps: Vec<f64> = self.members.iter().map(|m| m.temperature).collect();
        let result = fit(raw_probs, labels, &weights, &temps, opts)?;
        for (m, (w, t)) in self
            .members
            .iter_mut()
            .zip(result.weights.iter().zip(&result.temperatures))
        {
            m.weight = *w;
            m.temperature = *t;
        }
        self.spec.fit = Some(FitRecord {
            samples: labels.len(),
            initial_log_loss: result.initial_log_loss,
            log_loss: result.log_loss,
            weights: opts.weights,
            temperatures: opts.temperatures,
        });
        Ok(result)
    }

    /// Each member's raw (untempered) roadwork probability `[member][image]`, the input
    /// of [`fit`](Self::fit).
    pub fn raw_member_probabilities(&self, images: &[DynamicImage]) -> Vec<Vec<f64>> {
        let mut out = vec![Vec::new(); self.members.len()];
        for group in self.preprocessing_groups() {
            let first = &self.members[group[0]].classifier.preprocessor;
            let resized: Vec<_> = images.iter().map(|img| first.resize(img)).collect();
            let mut batches: Vec<(&Preprocessor, burn::tensor::Tensor<4>)> = Vec::new();
            for &i in &group {
                let c = &self.members[i].classifier;
                let pixels = match batches.iter().find(|(p, _)| *p == &c.preprocessor) {
                    Some((_, t)) => t.clone(),
                    None => {
                        let t = c.preprocessor.batch_resized(&resized, &c.device);
                        batches.push((&c.preprocessor, t.clone()));
                        t
                    }
                };
                out[i] = c
                    .roadwork_probabilities(pixels)
                    .into_iter()
                    .map(f64::from)
                    .collect();
            }
        }
        out
    }
}
