//! Errors of the axon crate.

/// Why a request was refused or a value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AxonError {
    /// An SS58 address is malformed.
    #[error("address {0}")]
    Address(String),
    /// A signature is missing, malformed or does not verify.
    #[error("signature: {0}")]
    Signature(String),
    /// A nonce is stale, replayed or from the future.
    #[error("nonce: {0}")]
    Nonce(String),
    /// The body hash does not match the required fields.
    #[error("body hash: {0}")]
    BodyHash(String),
    /// A request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A key file cannot be read or does not hold a key.
    #[error("key: {0}")]
    Key(String),
    /// A configuration file (allowlist, metagraph snapshot) is invalid.
    #[error("{0}")]
    Config(String),
}
