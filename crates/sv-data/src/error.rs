//! Errors of the data crate.

use std::path::PathBuf;

/// Everything that can stop a data operation (bad individual images do not: they are
/// skipped and counted, see [`crate::SkipReason`]).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A manifest line is not a valid sample.
    #[error("{path}:{line}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// An argument or configuration value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}
