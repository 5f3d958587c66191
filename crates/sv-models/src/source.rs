//! Where a model comes from and what it is: a [`ModelSource`] (a local path or a Hugging
//! Face repository id), and a [`Model`] (one classifier or an ensemble) loaded from a
//! local export directory, ensemble file or checkpoint ([`LocalModel`]). The one place
//! that turns a path or an id into a model; the miner, evaluation and training start
//! here.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::classify::{NetworkOptions, RoadworkClassifier};
use crate::ensemble::Ensemble;
use crate::error::{ModelError, Result};
use burn::tensor::Device;

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
    /// A path that exists is local; otherwise `owner/name[@revision]`
    /// ([`parse_hub_id`]) is a Hub repository.
    pub fn parse(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.exists() {
            return Ok(Self::Local(path.to_path_buf()));
        }
        match parse_hub_id(spec) {
            Some((repo, revision)) => Ok(Self::Hub { repo, revision }),
            None => Err(ModelError::Config(format!(
                "model {spec:?} is neither an existing path nor a Hugging Face repository id (owner/name)"
            ))),
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

/// A Hugging Face model id `ORG/NAME` with an optional `@REVISION`, parsed from text that
/// names a model; `None` when the text is not one (or a local file or folder of that
/// name exists, which then wins).
pub fn parse_hub_id(text: &str) -> Option<(String, Option<String>)> {
    if std::path::Path::new(text).exists() {
        return None;
    }
    let text = text.strip_prefix("hf://").unwrap_or(text);
    let (repo, revision) = match text.split_once('@') {
        Some((r, rev)) if !rev.is_empty() && !rev.contains(char::is_whitespace) => {
            (r, Some(rev.to_string()))
        }
        Some(_) => return None,
        None => (text, None),
    };
    let (org, name) = repo.split_once('/')?;
    let file_like = [".safetensors", ".bin", ".pth", ".pt", ".json", ".ckpt"]
        .iter()
        .any(|ext| name.to_ascii_lowercase().ends_with(ext));
    if file_like {
        return None;
    }
    let part = |s: &str| {
        !s.is_empty()
            && s.len() <= 96
            && !s.starts_with(['.', '-'])
            && !s.contains("..")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (part(org) && part(name)).then(|| (repo.to_string(), revision))
}

/// A classifier or an ensemble: what a miner serves and an evaluation scores.
#[derive(Debug)]
pub enum Model {
    /// One classifier.
    Single(Box<RoadworkClassifier>),
    /// A weighted ensemble.
    Ensemble(Box<Ensemble>),
}

impl Model {
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

    /// The model computing in `precision` (answers still f32).
    pub fn in_precision(self, precision: crate::Precision) -> Self {
        match self {
            Self::Single(c) => Self::Single(Box::new(c.in_precision(precision))),
            Self::Ensemble(e) => Self::Ensemble(Box::new(e.in_precision(precision))),
        }
    }
}

/// A model loaded from a local path, with the files it was read from.
#[derive(Debug)]
pub struct LocalModel {
    /// The classifier or ensemble.
    pub model: Model,
    /// The files read, in order (an ensemble file first, then its members' weights).
    pub files: Vec<PathBuf>,
    /// The directory holding the model (an export's, or the file's folder).
    pub dir: Option<PathBuf>,
}

impl LocalModel {
    /// Load a local model: an export directory (its `ensemble.json` if present, else
    /// `model.safetensors`), an ensemble file (`.json`) or a checkpoint file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let fail = |reason: &str| ModelError::Config(format!("{}: {reason}", path.display()));
        if !path.exists() {
            return Err(fail("no such file or directory"));
        }
        let (file, dir) = if path.is_dir() {
            let ensemble = path.join("ensemble.json");
            let weights = path.join("model.safetensors");
            if ensemble.exists() {
                (ensemble, Some(path.to_path_buf()))
            } else if weights.exists() {
                (weights, Some(path.to_path_buf()))
            } else {
                return Err(fail(
                    "the directory has neither ensemble.json nor model.safetensors",
                ));
            }
        } else {
            (path.to_path_buf(), path.parent().map(Path::to_path_buf))
        };
        if file.extension().is_some_and(|e| e == "json") {
            let ensemble = Ensemble::load(&file, device)?;
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
            Ok(Self {
                model: Model::Ensemble(Box::new(ensemble)),
                files: weights,
                dir,
            })
        } else {
            let classifier =
                RoadworkClassifier::load(&file, &NetworkOptions::default(), None, device.clone())?;
            Ok(Self {
                model: Model::Single(Box::new(classifier)),
                files: vec![file],
                dir,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert_eq!(
            parse_hub_id("facebook/convnextv2-atto-1k-224"),
            Some(("facebook/convnextv2-atto-1k-224".into(), None))
        );
        assert_eq!(
            parse_hub_id("facebook/dinov2-with-registers-small@a1b2c3"),
            Some((
                "facebook/dinov2-with-registers-small".into(),
                Some("a1b2c3".into())
            ))
        );
        assert_eq!(
            parse_hub_id("org/name@refs/pr/1"),
            Some(("org/name".into(), Some("refs/pr/1".into())))
        );
        for not_an_id in [
            "model.safetensors",
            "runs/model.safetensors",
            "ckpt/weights.pth",
            "runs/v1/model.safetensors",
            "../x",
            "./a",
            "/abs/path",
            "a/b/c",
            "convnextv2-atto",
            "org/name@",
            "",
        ] {
            assert_eq!(parse_hub_id(not_an_id), None, "{not_an_id}");
        }
    }
}
