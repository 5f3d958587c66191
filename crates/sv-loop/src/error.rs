//! The loop's errors: each names the file or the step at fault.

use std::path::{Path, PathBuf};

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("config {file}: {reason}")]
    Config {
        /// The file (or section).
        file: PathBuf,
        /// What was wrong, naming the key.
        reason: String,
    },
    /// An input the configuration names is missing or unusable.
    #[error("{key} {path}: {reason}")]
    Input {
        /// The configuration key.
        key: &'static str,
        /// The path it names.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The journal or production record is unreadable.
    #[error("{path}: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A step failed; production is untouched.
    #[error("step {step}: {source}")]
    Step {
        /// The step's name.
        step: &'static str,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Pushing checkpoints to the Hub or restoring one from it failed.
    #[error("{what}: {source}")]
    Hub {
        /// What was being done: `checkpoint sync` or `restore from the Hub`.
        what: &'static str,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LoopError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, LoopError>;
