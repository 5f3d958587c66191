//! Errors of the chain crate.

/// Why a wallet could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A key file is missing, unreadable or malformed (names the file).
    #[error("{0}")]
    Key(String),
    /// The password does not decrypt the coldkey (names the file).
    #[error("wrong password for {0}")]
    WrongPassword(String),
    /// No password was given and none can be asked for.
    #[error("{0}")]
    NoPassword(String),
    /// A format this crate does not read (names the file and the format).
    #[error("{0}")]
    Unsupported(String),
    /// Writing a key file failed or would overwrite one.
    #[error("{0}")]
    Write(String),
}

impl From<sv_axon::AxonError> for ChainError {
    fn from(e: sv_axon::AxonError) -> Self {
        Self::Key(e.to_string())
    }
}
