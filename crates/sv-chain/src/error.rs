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
    /// The node could not be reached or did not complete the handshake.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A request to the node failed (names the endpoint and what was asked).
    #[error("{0}")]
    Rpc(String),
    /// The runtime's metadata lacks something the client needs (names it).
    #[error("{0}")]
    Metadata(String),
    /// A value read from the chain did not decode as expected (names the entry).
    #[error("cannot decode {0}")]
    Decode(String),
    /// An argument the chain would refuse (an address, an endpoint, a subnet).
    #[error("{0}")]
    Invalid(String),
    /// The chain included the call but it failed (names the call and the chain's error).
    #[error("{call} failed on chain: {reason}")]
    Dispatch {
        /// The call.
        call: String,
        /// The dispatch error as the chain reports it.
        reason: String,
    },
}

impl From<sv_axon::AxonError> for ChainError {
    fn from(e: sv_axon::AxonError) -> Self {
        Self::Key(e.to_string())
    }
}
