//! `from_pretrained`: load models straight from a Hugging Face Hub repository, using the
//! same cache as Python's `huggingface_hub`.

use std::path::PathBuf;

use burn::tensor::Device;
use sv_hub::HubClient;

use crate::dinov2::{Dinov2, Dinov2Classifier, LoadOptions};
use crate::error::{ModelError, Result};
use crate::preprocess::Preprocessor;

/// The files of a model repository after download.
#[derive(Debug, Clone)]
pub struct PretrainedFiles {
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors`, or `pytorch_model.bin` when the repository has no safetensors.
    pub weights: PathBuf,
    /// `preprocessor_config.json`, when the repository has one.
    pub preprocessor: Option<PathBuf>,
}

/// Download (or find in the cache) the files of an HF transformers model repository.
pub fn fetch_pretrained(
    client: &HubClient,
    repo: &str,
    revision: Option<&str>,
) -> Result<PretrainedFiles> {
    let config = client.model_file(repo, revision, "config.json")?;
    let weights = match client.optional_model_file(repo, revision, "model.safetensors")? {
        Some(path) => path,
        None => client
            .optional_model_file(repo, revision, "pytorch_model.bin")?
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "{repo}: neither model.safetensors nor pytorch_model.bin is available"
                ))
            })?,
    };
    let preprocessor = client.optional_model_file(repo, revision, "preprocessor_config.json")?;
    Ok(PretrainedFiles {
        config,
        weights,
        preprocessor,
    })
}

fn options_for(files: &PretrainedFiles) -> LoadOptions {
    LoadOptions {
        config_json: Some(files.config.clone()),
        ..LoadOptions::default()
    }
}

/// Preprocessing of a downloaded repository (the DINOv2 default when it has none).
pub fn preprocessor_for(files: &PretrainedFiles) -> Result<Preprocessor> {
    match &files.preprocessor {
        Some(path) => Preprocessor::from_hf_json(&crate::read_text(path)?),
        None => Ok(Preprocessor::default()),
    }
}

/// Fetch a repository and load its weights with `load`, returning the model and the
/// repository's preprocessing.
fn load_pretrained<M>(
    client: &HubClient,
    repo: &str,
    revision: Option<&str>,
    load: impl FnOnce(&std::path::Path, &LoadOptions) -> Result<M>,
) -> Result<(M, Preprocessor)> {
    let files = fetch_pretrained(client, repo, revision)?;
    let model = load(&files.weights, &options_for(&files))?;
    Ok((model, preprocessor_for(&files)?))
}

impl Dinov2 {
    /// Load a backbone such as `facebook/dinov2-with-registers-small` from the Hub.
    pub fn from_pretrained(
        client: &HubClient,
        repo: &str,
        revision: Option<&str>,
        device: &Device,
    ) -> Result<(Self, Preprocessor)> {
        load_pretrained(client, repo, revision, |w, o| Dinov2::load(w, o, device))
    }
}

impl Dinov2Classifier {
    /// Load a `Dinov2WithRegistersForImageClassification` repository from the Hub.
    pub fn from_pretrained(
        client: &HubClient,
        repo: &str,
        revision: Option<&str>,
        device: &Device,
    ) -> Result<(Self, Preprocessor)> {
        load_pretrained(client, repo, revision, |w, o| {
            Dinov2Classifier::load(w, o, device)
        })
    }
}

impl crate::classify::RoadworkClassifier {
    /// Load a roadwork classifier repository from the Hub (weights, config, preprocessor).
    pub fn from_pretrained(
        client: &HubClient,
        repo: &str,
        revision: Option<&str>,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let files = fetch_pretrained(client, repo, revision)?;
        let model = Dinov2Classifier::load(&files.weights, &options_for(&files), &device)?;
        Self::with_labels(
            model,
            Some(&files.config),
            preprocessor_for(&files)?,
            positive_index,
            device,
        )
    }
}
