//! Vision models for the StreetVision subnet, in burn.
//!
//! - [`dinov2`]: DINOv2 with registers (small / base / large / giant), loading HF
//!   transformers, timm and original Meta checkpoints, numerically equal to the
//!   reference implementations.
//! - [`convnext`]: ConvNeXt-V2 (atto … huge), loading HF transformers and timm
//!   checkpoints, numerically equal to the references.
//! - [`preprocess`]: the HF `BitImageProcessor` pipeline (PIL bicubic resize, centre
//!   crop, ImageNet normalisation).
//! - [`weights`]: safetensors and PyTorch checkpoint reading with strict key accounting.
//!
//! The CPU backend is burn's Flex; build with the `cuda` feature for GPU hosts.
//!
//! Loading a classifier checkpoint (its `config.json` and `preprocessor_config.json`
//! beside it) and classifying an image file:
//!
//! ```
//! use sv_models::{Device, NetworkOptions, RoadworkClassifier};
//!
//! let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
//! let classifier = RoadworkClassifier::load(
//!     &fixtures.join("convnext/hf_cls.safetensors"),
//!     &NetworkOptions::default(),
//!     None,
//!     Device::default(),
//! )
//! .unwrap();
//! let answers = classifier
//!     .classify_files(&[fixtures.join("images/chelsea.png")])
//!     .unwrap();
//! assert!((0.0..=1.0).contains(&answers[0].roadwork));
//! ```

#![warn(missing_docs)]

pub mod backbone;
pub mod classify;
pub mod convnext;
pub mod device;
pub mod dinov2;
pub mod ensemble;
pub mod error;
pub mod exact_gelu;
pub mod export;
#[cfg(feature = "train")]
mod extension_autodiff;
pub mod family;
/// Fused CPU kernels for inference; public only for `benches/op_bench.rs`.
#[doc(hidden)]
pub mod fast_ops;
mod flex_ops;
pub mod fused_linear;
#[cfg(feature = "hub")]
pub mod hub;
pub mod labels;
pub mod layer_norm;
pub mod layers;
pub mod precision;
pub mod preprocess;
pub mod qkv_attention;
pub mod resample;
pub mod source;
#[cfg(test)]
mod test_support;
pub mod weights;

pub use backbone::Backbone;
pub use burn::tensor::{Device, Tensor};
pub use classify::{Architecture, Network, NetworkOptions, Prediction, RoadworkClassifier};
pub use convnext::{ConvNextLoadOptions, ConvNextV2, ConvNextV2Classifier, ConvNextV2Config};
pub use device::device_by_name;
pub use dinov2::{Dinov2, Dinov2Classifier, Dinov2Config, Dinov2Output, Layout, LoadOptions};
pub use ensemble::{Ensemble, EnsembleSpec};
pub use error::{ModelError, Result};
pub use family::{BackboneModel, Family, FamilyFn, Logits, ParamGroup, ParamGroups};
pub use precision::{PRECISION_NAMES, Precision, in_precision};
pub use preprocess::Preprocessor;
pub use source::{LocalModel, Model, ModelSource};

/// Softmax over the last axis of a `[batch, labels]` logits tensor, as plain rows.
pub fn softmax_rows(logits: Tensor<2>) -> Vec<Vec<f32>> {
    let [batch, labels] = logits.shape().dims();
    let data = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    (0..batch)
        .map(|b| {
            let row = &data[b * labels..(b + 1) * labels];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            exps.into_iter().map(|e| e / sum).collect()
        })
        .collect()
}

/// The text of a small file (a JSON config), with the path in the error.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The HF `config.json` a load should read: the one given, else (for an HF-layout
/// checkpoint) the one beside the checkpoint, if any.
pub(crate) fn config_json_for(
    given: Option<&std::path::Path>,
    checkpoint: &std::path::Path,
    hf_layout: bool,
) -> Option<std::path::PathBuf> {
    given.map(std::path::Path::to_path_buf).or_else(|| {
        hf_layout
            .then(|| find_sidecar(checkpoint, "config.json"))
            .flatten()
    })
}

/// A file beside `checkpoint` named `<stem>.<name>` or `<name>` (e.g. `model.config.json`
/// or `config.json` next to `model.safetensors`), the first that exists.
pub fn find_sidecar(checkpoint: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let stem = checkpoint.file_stem()?.to_string_lossy().to_string();
    let dir = checkpoint.parent()?;
    [dir.join(format!("{stem}.{name}")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Write `bytes` to `path` atomically ([`sv_fs::atomic_write`]): a crash leaves the old
/// file or the new one, never a torn one.
pub(crate) fn atomic_write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    sv_fs::atomic_write(path, bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
