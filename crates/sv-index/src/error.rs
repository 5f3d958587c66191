//! Errors of the index crate.

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Vectors of the wrong length, ids that do not match the vectors, a duplicate id.
    #[error("{0}")]
    Invalid(String),
    /// An index file could not be read or written (names the file).
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// An index file is not one this crate wrote, or is damaged (names the file).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl IndexError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub(crate) fn corrupt(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}
