//! Export a trained classifier for the subnet: the transformers repository that
//! [`sv_models::export`] writes (`model.safetensors`, `config.json`,
//! `preprocessor_config.json`, `ensemble.json`) and the subnet's `model_card.json`,
//! checked before anything is written.

use std::path::Path;

use sv_models::{Device, Family, Network};

use crate::checkpoint::atomic_write;
use crate::error::Result;
use crate::finetune::{RunDir, load_trained};

pub use sv_records::card::ModelCard;

/// Write `model` (a classifier of any family) in the transformers layout into `dir`,
/// with `card` when given (validated first; nothing is written when it or the head is not
/// exportable). `image_size` is the side the model was trained at.
pub fn export_hf<F: Family>(
    model: &F,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    model.export_hf(image_size, name(card), dir)?;
    write_card(card, dir)
}

/// [`export_hf`] for a [`Network`].
pub fn export_network(
    model: &Network,
    image_size: u32,
    card: Option<&ModelCard>,
    dir: &Path,
) -> Result<()> {
    card.map(ModelCard::validate).transpose()?;
    model.export_hf(image_size, name(card), dir)?;
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
/// size, with `card` (its `architecture` set to the model's transformers class). A
/// probe's run directory exports its backbone with the probe's head and the backbone's
/// own preprocessing.
pub fn export_run(run: &RunDir, mut card: ModelCard, dir: &Path) -> Result<()> {
    // On the CPU in every build: `Device::default()` is the GPU where one is compiled in.
    let cpu = Device::flex();
    if crate::probe::is_probe_run(&run.root) {
        // A probe: its backbone with the folded head, prepared as its features were.
        let (model, pre) = crate::probe::load_network(&run.root, &cpu)?;
        card.architecture = Some(model.architecture().hf_class().into());
        export_network(&model, pre.crop.0, Some(&card), dir)?;
        let text = serde_json::to_string_pretty(&pre.to_hf_json()).expect("json") + "\n";
        return atomic_write(&dir.join("preprocessor_config.json"), text.as_bytes());
    }
    let config = run.read_config()?;
    let model = load_trained(run, &config, &cpu)?;
    card.architecture = Some(model.architecture().hf_class().into());
    export_network(&model, config.image_size, Some(&card), dir)
}
