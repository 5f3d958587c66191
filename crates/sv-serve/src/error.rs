//! Errors of the serving crate.

/// Why the miner could not start, load a model or run a challenge.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid (names the file or field).
    #[error("config: {0}")]
    Config(String),
    /// A model could not be loaded.
    #[error("model {what}: {source}")]
    Model {
        /// What was being loaded.
        what: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A model source that cannot be used (a path or id that names nothing).
    #[error(transparent)]
    Source(#[from] sv_models::ModelError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
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
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
