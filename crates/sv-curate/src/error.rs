//! Errors of the curation crate.

/// Why a curation step failed.
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// A file could not be read or written, or is malformed (names the file and line).
    #[error("{0}")]
    Input(String),
    /// A data-layer error (manifests, readers).
    #[error(transparent)]
    Data(#[from] sv_data::DataError),
    /// A prediction log that cannot be read.
    #[error(transparent)]
    Records(#[from] sv_records::RecordsError),
    /// An index error.
    #[error(transparent)]
    Index(#[from] sv_index::IndexError),
    /// Near duplicates span the train and test splits.
    #[error("{0}")]
    Leak(String),
}
