//! `from_pretrained`: load models straight from a Hugging Face Hub repository, using the
//! same cache as Python's `huggingface_hub`.

use std::path::PathBuf;

use burn::tensor::Device;
use sv_hub::HubClient;

use crate::classify::{Network, NetworkOptions};
use crate::convnext::{ConvNextLoadOptions, ConvNextV2, ConvNextV2Classifier};
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

fn convnext_options_for(files: &PretrainedFiles) -> ConvNextLoadOptions {
    ConvNextLoadOptions {
        config_json: Some(files.config.clone()),
        ..ConvNextLoadOptions::default()
    }
}

/// Fetch a repository and load its weights with `load`, returning the model and the
/// repository's preprocessing.
fn load_pretrained<M>(
    client: &HubClient,
    repo: &str,
    revision: Option<&str>,
    load: impl FnOnce(&PretrainedFiles) -> Result<M>,
) -> Result<(M, Preprocessor)> {
    let files = fetch_pretrained(client, repo, revision)?;
    let model = load(&files)?;
    Ok((model, preprocessor_for(&files)?))
}

/// `from_pretrained` for a model type: fetch the repository, load the weights with
/// `$load`, and return the model with the repository's preprocessing.
macro_rules! from_pretrained {
    ($ty:ty, $options:ident, $doc:literal) => {
        impl $ty {
            #[doc = $doc]
            pub fn from_pretrained(
                client: &HubClient,
                repo: &str,
                revision: Option<&str>,
                device: &Device,
            ) -> Result<(Self, Preprocessor)> {
                load_pretrained(client, repo, revision, |f| {
                    <$ty>::load(&f.weights, &$options(f), device)
                })
            }
        }
    };
}

from_pretrained!(
    Dinov2,
    options_for,
    "Load a backbone such as `facebook/dinov2-with-registers-small` from the Hub."
);
from_pretrained!(
    Dinov2Classifier,
    options_for,
    "Load a `Dinov2WithRegistersForImageClassification` repository from the Hub."
);
from_pretrained!(
    ConvNextV2,
    convnext_options_for,
    "Load a backbone such as `facebook/convnextv2-tiny-22k-224` from the Hub."
);
from_pretrained!(
    ConvNextV2Classifier,
    convnext_options_for,
    "Load a `ConvNextV2ForImageClassification` repository from the Hub."
);

impl crate::classify::RoadworkClassifier {
    /// Load a roadwork classifier repository from the Hub (weights, config, preprocessor),
    /// of either architecture (from `model_type` in its `config.json`).
    pub fn from_pretrained(
        client: &HubClient,
        repo: &str,
        revision: Option<&str>,
        positive_index: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        let files = fetch_pretrained(client, repo, revision)?;
        let opts = NetworkOptions {
            config_json: Some(files.config.clone()),
            ..NetworkOptions::default()
        };
        let model = Network::load(&files.weights, &opts, &device)?;
        Self::with_labels(
            model,
            Some(&files.config),
            preprocessor_for(&files)?,
            positive_index,
            device,
        )
    }
}

pub use crate::source::parse_hub_id;

/// The local weights file of a model named by a path or a Hub id (`ORG/NAME[@REV]`): a
/// Hub model is downloaded (weights, `config.json`, `preprocessor_config.json`) into the
/// Hugging Face cache shared with Python, so its config sits beside the weights.
pub fn resolve_checkpoint(text: &str) -> Result<PathBuf> {
    match parse_hub_id(text) {
        Some((repo, revision)) => {
            let fetched = HubClient::from_env()
                .map_err(ModelError::from)
                .and_then(|client| fetch_pretrained(&client, &repo, revision.as_deref()));
            fetched.map(|f| f.weights).map_err(|e| {
                ModelError::Config(format!(
                    "{text}: not a local file, so read as the Hugging Face model {repo}{}: {e}",
                    revision.map(|r| format!(" at {r}")).unwrap_or_default()
                ))
            })
        }
        None => Ok(PathBuf::from(text)),
    }
}
