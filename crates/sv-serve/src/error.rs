//! Errors of the serving crate.

/// Why the miner could not start, load a model or run a challenge.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid (names the file or field).
    #[error("config: {0}")]
    Config(String),
    /// A model could not be loaded.
    #[error("model {source_desc}: {message}")]
    Model {
        /// What was being loaded.
        source_desc: String,
        /// Why it failed.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The axon layer refused something (keys, allowlist, listening).
    #[error(transparent)]
    Axon(#[from] sv_axon::AxonError),
    /// A part the miner cannot serve without has stopped (the inference worker).
    #[error("stopped: {0}")]
    Stopped(String),
    /// The chain could not be reached or refused (registration, serve_axon, metagraph).
    #[error("chain: {0}")]
    Chain(#[from] sv_chain::ChainError),
}

impl ServeError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
