//! Export a trained classifier for the subnet: the transformers repository that
//! [`sv_models::export`] writes (`model.safetensors`, `config.json`,
//! `preprocessor_config.json`, `ensemble.json`) and the subnet's `model_card.json`,
//! checked before anything is written.

use std::path::Path;

use sv_models::{ConvNextV2Classifier, Device, Dinov2Classifier, Network};

use crate::checkpoint::atomic_write;
use crate::error::{Result, TrainError};
use crate::finetune::{FinetuneConfig, RunDir, load_trained};

/// The subnet's model card (`model_card.json` at the repository root).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    /// Unique model name.
    pub model_name: String,
    /// What the model is.
    pub description: String,
    /// Version string.
    pub version: String,
    /// The miner's hotkey, SS58.
    pub submitted_by: String,
    /// Unix seconds.
    pub submission_time: u64,
    /// Architecture name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl ModelCard {
    /// A card submitted now (the current Unix time), its architecture filled in at export.
    pub fn now(model_name: String, description: String, version: String, hotkey: String) -> Self {
        Self {
            model_name,
            description,
            version,
            submitted_by: hotkey,
            submission_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            architecture: None,
            notes: None,
        }
    }

    /// Check the fields the subnet's validators check: a name, and an SS58 hotkey
    /// (base58, 46–48 characters).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| TrainError::Config {
            source_name: "model card".into(),
            reason,
        };
        if self.model_name.trim().is_empty() {
            return Err(bad("model_name: must not be empty".into()));
        }
        const B58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let h = &self.submitted_by;
        if !(46..=48).contains(&h.len()) || !h.chars().all(|c| B58.contains(c)) {
            return Err(bad(format!("submitted_by: {h:?} is not an SS58 address")));
        }
        Ok(())
    }
}

/// Write `model` in the transformers layout into `dir`, with `card` when given
/// (validated first; nothing is written when it is invalid). `image_size` is the side the
/// model was trained at.
pub fn export_hf(
    model: &ConvNextV2Classifier,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    sv_models::convnext::export::export_hf(model, image_size, name(card), dir)?;
    write_card(card, dir)
}

/// Write a DINOv2-with-registers classifier in the transformers layout into `dir`, with
/// `card` when given (validated first; nothing is written when it or the head is not
/// exportable). `image_size` is the side the model was trained at.
pub fn export_hf_dinov2(
    model: &Dinov2Classifier,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    sv_models::dinov2::export::check_exportable(model, dir)?;
    sv_models::dinov2::export::export_hf(model, image_size, name(card), dir)?;
    write_card(card, dir)
}

/// The model's name in its `ensemble.json`: the card's, else `model`.
fn name(card: Option<&ModelCard>) -> &str {
    card.map_or("model", |c| c.model_name.as_str())
}

fn write_card(card: Option<&ModelCard>, dir: &Path) -> Result<()> {
    let Some(card) = card else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(card).expect("json") + "\n";
    atomic_write(&dir.join("model_card.json"), text.as_bytes())
}

/// Export the final model of the finished run in `run` into `dir`, at the run's image
/// size, with `card` (its `architecture` set to the model's transformers class).
pub fn export_run(run: &RunDir, mut card: ModelCard, dir: &Path) -> Result<()> {
    let path = run.config();
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::Config {
        source_name: run.root.display().to_string(),
        reason: format!("reading {} (is this a run directory?): {e}", path.display()),
    })?;
    let config = FinetuneConfig::from_toml(&text, &path.display().to_string())?;
    match load_trained(run, &config, &Device::default())? {
        Network::ConvNextV2(m) => {
            card.architecture = Some("ConvNextV2ForImageClassification".into());
            export_hf(&m, config.image_size, Some(&card), dir)
        }
        Network::Dinov2(m) => {
            card.architecture = Some("Dinov2WithRegistersForImageClassification".into());
            export_hf_dinov2(&m, config.image_size, Some(&card), dir)
        }
    }
}
