//! The model a miner serves: a single classifier or an ensemble, loaded from an export
//! directory (what `sv-trainer export` writes), a checkpoint file, an ensemble file or a
//! Hugging Face repository, with a version string and an age.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sv_models::{Device, RoadworkClassifier};
use sv_records::card::CardStamp;

use crate::error::ServeError;

pub use sv_models::source::{LocalModel, Model, ModelSource};

/// A loaded model with what the miner reports about it.
#[derive(Debug)]
pub struct LoadedModel {
    /// The networks.
    pub predictor: Model,
    /// Version: the model card's `version` (if any) and a short hash of the weights.
    pub version: String,
    /// Unix seconds the model was made: the card's `submission_time`, else the weights'
    /// modification time.
    pub created_unix: Option<u64>,
    /// Where it came from.
    pub source: ModelSource,
}

impl LoadedModel {
    /// Load `source` on `device`.
    pub fn load(source: &ModelSource, device: &Device) -> Result<Self, ServeError> {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| ServeError::Model {
            what: source.to_string(),
            source: e,
        };
        match source {
            ModelSource::Local(path) => {
                let LocalModel {
                    model: predictor,
                    files: weights,
                    dir: card_dir,
                } = LocalModel::load(path, device).map_err(|e| fail(e.into()))?;
                let card = card_dir.and_then(|d| CardStamp::read(&d.join("model_card.json")));
                let hash = hash_files(&weights).map_err(|e| fail(e.into()))?;
                let created = card
                    .as_ref()
                    .and_then(|c| c.submission_time)
                    .or_else(|| mtime(weights.last()?));
                Ok(Self {
                    predictor,
                    version: version_string(card.as_ref(), &hash),
                    created_unix: created,
                    source: source.clone(),
                })
            }
            ModelSource::Hub { repo, revision } => {
                let client = sv_hub::HubClient::from_env().map_err(|e| fail(e.into()))?;
                let classifier = RoadworkClassifier::from_pretrained(
                    &client,
                    repo,
                    revision.as_deref(),
                    None,
                    device.clone(),
                )
                .map_err(|e| fail(e.into()))?;
                let card_path = client
                    .optional_model_file(repo, revision.as_deref(), "model_card.json")
                    .ok()
                    .flatten();
                let card = card_path.as_deref().and_then(CardStamp::read);
                let weights = client
                    .model_file(repo, revision.as_deref(), "model.safetensors")
                    .map(|p| vec![p])
                    .unwrap_or_default();
                let hash = hash_files(&weights).unwrap_or_else(|_| "unhashed".into());
                Ok(Self {
                    predictor: Model::Single(Box::new(classifier)),
                    version: version_string(card.as_ref(), &hash),
                    created_unix: card.as_ref().and_then(|c| c.submission_time),
                    source: source.clone(),
                })
            }
        }
    }

    /// The model computing in `precision` (answers still f32).
    pub fn in_precision(self, precision: sv_models::Precision) -> Self {
        Self {
            predictor: self.predictor.in_precision(precision),
            ..self
        }
    }

    /// Age in days at `now` (None when the creation time is unknown).
    pub fn age_days(&self, now: SystemTime) -> Option<f64> {
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
        Some((now - self.created_unix? as f64).max(0.0) / 86_400.0)
    }
}

fn version_string(card: Option<&CardStamp>, hash: &str) -> String {
    match card.and_then(|c| c.version.clone()) {
        Some(v) => format!("{v}+{hash}"),
        None => hash.to_string(),
    }
}

fn mtime(path: &Path) -> Option<u64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// The first 12 hex digits of the SHA-256 over the files' contents, in order.
fn hash_files(files: &[PathBuf]) -> Result<String, ServeError> {
    let mut h = Sha256::new();
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| ServeError::io(f, e))?;
        std::io::copy(&mut file, &mut h).map_err(|e| ServeError::io(f, e))?;
    }
    Ok(crate::payload::hex(&h.finalize())[..12].to_string())
}
