//! Errors of the training crate.

use std::path::{Path, PathBuf};

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A checkpoint is unreadable or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A training configuration is invalid.
    #[error("config {source_name}: {reason}")]
    Config {
        /// The file (or `<flags>`).
        source_name: String,
        /// What was wrong, naming the key.
        reason: String,
    },
    /// Data could not be read.
    #[error(transparent)]
    Data(#[from] sv_data::DataError),
    /// An augmentation pipeline could not be loaded.
    #[error(transparent)]
    Augment(#[from] sv_augment::AugmentError),
    /// A model could not be built or loaded.
    #[error(transparent)]
    Model(#[from] sv_models::ModelError),
    /// The contrastive term could not be computed.
    #[error("hard negatives: {0}")]
    Contrastive(#[from] sv_contrastive::ContrastiveError),
    /// A shared record (the model card) is invalid.
    #[error(transparent)]
    Records(#[from] sv_records::RecordsError),
    /// An embedding index could not be built or saved.
    #[error("index: {0}")]
    Index(#[from] sv_index::IndexError),
    /// Two models could not be compared on the same images.
    #[error("{0}")]
    Unpaired(String),
    /// Nothing to train or evaluate on.
    #[error("{0}")]
    Empty(String),
    /// A stop was requested ([`crate::stop`]); the run's checkpoint holds every finished
    /// step, and resuming continues from it.
    #[error(
        "stopped at step {step} (epoch {epoch}, batch {batch}); checkpoint {checkpoint} written"
    )]
    Stopped {
        /// Steps done.
        step: u64,
        /// The epoch it was in.
        epoch: u64,
        /// Batches of that epoch done.
        batch: u64,
        /// The checkpoint written.
        checkpoint: PathBuf,
    },
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
