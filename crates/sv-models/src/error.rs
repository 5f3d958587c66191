//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading weights, building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A weight file could not be read from disk.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A weight file is not a valid safetensors or PyTorch checkpoint.
    #[error("{path} is not a valid {format} checkpoint: {reason}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// The format it was read as.
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A tensor holds an element type we cannot turn into f32.
    #[error("{path}: tensor `{key}` has unsupported dtype {dtype}")]
    DType {
        /// The file at fault.
        path: PathBuf,
        /// The tensor's name.
        key: String,
        /// The dtype it has.
        dtype: String,
    },
    /// The checkpoint's keys match none of the known layouts.
    #[error("{path}: cannot tell the checkpoint layout from its keys (first keys: {sample})")]
    UnknownLayout {
        /// The file at fault.
        path: PathBuf,
        /// A few of its keys.
        sample: String,
    },
    /// A load left keys missing, unused, or of the wrong shape.
    #[error("{path}: checkpoint does not match the model ({layout} layout):{details}")]
    KeyMismatch {
        /// The file at fault.
        path: PathBuf,
        /// The detected layout.
        layout: String,
        /// One line per problem: missing keys, unused keys, shape mismatches.
        details: String,
    },
    /// A configuration value is invalid or inconsistent with the weights.
    #[error("invalid model config: {0}")]
    Config(String),
    /// An image could not be decoded or is unusable.
    #[error("image {path}: {reason}")]
    Image {
        /// The image at fault.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Downloading from the Hugging Face Hub failed.
    #[cfg(feature = "hub")]
    #[error(transparent)]
    Hub(#[from] sv_hub::HubError),
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
