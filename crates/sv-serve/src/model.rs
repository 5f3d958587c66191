//! The model a miner serves: a single classifier or an ensemble, loaded from an export
//! directory (what `sv-trainer export` writes), a checkpoint file, an ensemble file or a
//! Hugging Face repository, with a version string and an age.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use image::DynamicImage;
use sha2::{Digest, Sha256};
use sv_models::{Device, Ensemble, NetworkOptions, RoadworkClassifier};

use crate::error::ServeError;

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A local path: an export directory (its `ensemble.json` if present, else
    /// `model.safetensors`), an ensemble file (`.json`) or a checkpoint file.
    Local(PathBuf),
    /// A Hugging Face repository id with an optional revision.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: Option<String>,
    },
}

impl ModelSource {
    /// A path that exists is local; otherwise `owner/name[@revision]` is a Hub repository.
    pub fn parse(spec: &str) -> Result<Self, ServeError> {
        let path = Path::new(spec);
        if path.exists() {
            return Ok(Self::Local(path.to_path_buf()));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, v)) => (r, Some(v.to_string())),
            None => (spec, None),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.')) {
            Ok(Self::Hub {
                repo: repo.to_string(),
                revision,
            })
        } else {
            Err(ServeError::Config(format!(
                "model {spec:?} is neither an existing path nor a Hugging Face repository id (owner/name)"
            )))
        }
    }

    /// The file whose change means a new model (for the watcher): the ensemble file or the
    /// weights of a local source.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        match self {
            Self::Local(p) if p.is_dir() => ["ensemble.json", "model.safetensors", "config.json"]
                .iter()
                .map(|f| p.join(f))
                .filter(|f| f.exists())
                .collect(),
            Self::Local(p) => vec![p.clone()],
            Self::Hub { .. } => Vec::new(),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::Hub { repo, revision } => match revision {
                Some(r) => write!(f, "hf:{repo}@{r}"),
                None => write!(f, "hf:{repo}"),
            },
        }
    }
}

/// The network(s) behind a loaded model.
#[derive(Debug)]
pub enum Predictor {
    /// One classifier.
    Single(Box<RoadworkClassifier>),
    /// A weighted ensemble.
    Ensemble(Box<Ensemble>),
}

impl Predictor {
    /// P(roadwork) of each image (as the network computes it; callers clamp).
    pub fn probabilities(&self, images: &[DynamicImage]) -> Vec<f32> {
        match self {
            Self::Single(c) => {
                let batch = c.preprocessor.batch(images, &c.device);
                c.roadwork_probabilities(batch)
            }
            Self::Ensemble(e) => e.probabilities(images),
        }
    }
}

/// A loaded model with what the miner reports about it.
#[derive(Debug)]
pub struct LoadedModel {
    /// The networks.
    pub predictor: Predictor,
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
        let fail = |m: String| ServeError::Model {
            source_desc: source.to_string(),
            message: m,
        };
        match source {
            ModelSource::Local(path) => {
                let (predictor, weights, card_dir) = load_local(path, device).map_err(fail)?;
                let card = card_dir.and_then(|d| read_card(&d.join("model_card.json")));
                let hash = hash_files(&weights).map_err(fail)?;
                let created = card
                    .as_ref()
                    .and_then(|c| c.get("submission_time")?.as_u64())
                    .or_else(|| mtime(weights.last()?));
                Ok(Self {
                    predictor,
                    version: version_string(card.as_ref(), &hash),
                    created_unix: created,
                    source: source.clone(),
                })
            }
            ModelSource::Hub { repo, revision } => {
                let client = sv_hub::HubClient::from_env().map_err(|e| fail(e.to_string()))?;
                let classifier = RoadworkClassifier::from_pretrained(
                    &client,
                    repo,
                    revision.as_deref(),
                    None,
                    device.clone(),
                )
                .map_err(|e| fail(e.to_string()))?;
                let card_path = client
                    .optional_model_file(repo, revision.as_deref(), "model_card.json")
                    .ok()
                    .flatten();
                let card = card_path.as_deref().and_then(read_card);
                let weights = client
                    .model_file(repo, revision.as_deref(), "model.safetensors")
                    .map(|p| vec![p])
                    .unwrap_or_default();
                let hash = hash_files(&weights).unwrap_or_else(|_| "unhashed".into());
                Ok(Self {
                    predictor: Predictor::Single(Box::new(classifier)),
                    version: version_string(card.as_ref(), &hash),
                    created_unix: card
                        .as_ref()
                        .and_then(|c| c.get("submission_time")?.as_u64()),
                    source: source.clone(),
                })
            }
        }
    }

    /// Age in days at `now` (None when the creation time is unknown).
    pub fn age_days(&self, now: SystemTime) -> Option<f64> {
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
        Some((now - self.created_unix? as f64).max(0.0) / 86_400.0)
    }
}

type Local = (Predictor, Vec<PathBuf>, Option<PathBuf>);

fn load_local(path: &Path, device: &Device) -> Result<Local, String> {
    if !path.exists() {
        return Err("no such file or directory".into());
    }
    let (file, dir) = if path.is_dir() {
        let ensemble = path.join("ensemble.json");
        let weights = path.join("model.safetensors");
        if ensemble.exists() {
            (ensemble, Some(path.to_path_buf()))
        } else if weights.exists() {
            (weights, Some(path.to_path_buf()))
        } else {
            return Err("the directory has neither ensemble.json nor model.safetensors".into());
        }
    } else {
        (path.to_path_buf(), path.parent().map(Path::to_path_buf))
    };
    if file.extension().is_some_and(|e| e == "json") {
        let ensemble = Ensemble::load(&file, device).map_err(|e| e.to_string())?;
        let base = file.parent().unwrap_or(Path::new("."));
        // The ensemble file first: new weights or temperatures are a new version.
        let weights = std::iter::once(file.clone())
            .chain(ensemble.spec().members.iter().map(|m| {
                if m.checkpoint.is_absolute() {
                    m.checkpoint.clone()
                } else {
                    base.join(&m.checkpoint)
                }
            }))
            .collect();
        Ok((Predictor::Ensemble(Box::new(ensemble)), weights, dir))
    } else {
        let classifier =
            RoadworkClassifier::load(&file, &NetworkOptions::default(), None, device.clone())
                .map_err(|e| e.to_string())?;
        Ok((Predictor::Single(Box::new(classifier)), vec![file], dir))
    }
}

fn read_card(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn version_string(card: Option<&serde_json::Value>, hash: &str) -> String {
    match card.and_then(|c| c.get("version")?.as_str().map(str::to_string)) {
        Some(v) => format!("{v}+{hash}"),
        None => hash.to_string(),
    }
}

fn mtime(path: &Path) -> Option<u64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// The first 12 hex digits of the SHA-256 over the files' contents, in order.
fn hash_files(files: &[PathBuf]) -> Result<String, String> {
    let mut h = Sha256::new();
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        std::io::copy(&mut file, &mut h).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(crate::payload::hex(&h.finalize())[..12].to_string())
}
