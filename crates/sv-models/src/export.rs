//! Writing a classifier as a Hugging Face transformers repository that the subnet's base
//! miner and plain transformers load: `model.safetensors` with transformers' key names
//! and PyTorch's layouts, `config.json`, `preprocessor_config.json`, and our
//! `ensemble.json` with the model as its one member. Each architecture's key map lives
//! beside its loader (`convnext::export`, `dinov2::export`).

use std::path::Path;

use serde_json::json;

use crate::atomic_write;
use crate::classify::{Architecture, Network};
use crate::error::{ModelError, Result};
use crate::weights::{Values, serialize_f32};

impl Network {
    /// Write this classifier in the transformers layout into `dir` (see the module),
    /// named `name` in its `ensemble.json`; `image_size` is the side it was trained at.
    pub fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()> {
        self.as_dyn().export_hf(image_size, name, dir)
    }
}

/// A row-major `[rows, cols]` matrix transposed.
pub(crate) fn transpose((shape, v): &(Vec<usize>, Vec<f32>)) -> Vec<f32> {
    let (rows, cols) = (shape[0], shape[1]);
    let mut t = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// Write the weights (safetensors with `format: pt`), both configs and the ensemble file
/// naming the model `name`, each atomically.
pub(crate) fn write_repository(
    dir: &Path,
    tensors: &Values,
    config: &serde_json::Value,
    preprocessor: &serde_json::Value,
    name: &str,
) -> Result<()> {
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = serialize_f32(
        tensors
            .iter()
            .map(|(k, (shape, v))| (k.clone(), shape.as_slice(), v.as_slice())),
        meta,
    )
    .map_err(|e| ModelError::Config(format!("{}: {e}", dir.display())))?;
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    atomic_write(&dir.join("model.safetensors"), &st)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json") + "\n";
    atomic_write(&dir.join("config.json"), pretty(config).as_bytes())?;
    atomic_write(
        &dir.join("preprocessor_config.json"),
        pretty(preprocessor).as_bytes(),
    )?;
    // Our own ensemble file with this model as its one member (paths relative to the
    // repository), ready to merge with other members (`sv-miner classify --ensemble`).
    let architecture = config["model_type"]
        .as_str()
        .and_then(|t| {
            Architecture::ALL
                .iter()
                .find(|a| a.model_types().contains(&t))
        })
        .map(|a| a.name())
        .ok_or_else(|| {
            ModelError::Config(format!(
                "{}: config.json has no known model_type",
                dir.display()
            ))
        })?;
    let ensemble = json!({"members": [{
        "name": name,
        "checkpoint": "model.safetensors",
        "architecture": architecture,
        "config": "config.json",
        "preprocessor": "preprocessor_config.json",
    }]});
    atomic_write(&dir.join("ensemble.json"), pretty(&ensemble).as_bytes())
}
