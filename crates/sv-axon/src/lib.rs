//! The Bittensor axon protocol as SDK 9.x speaks it (what this subnet's validators use):
//! SS58 addresses, the signed message, sr25519 verification, the body hash and nonce
//! rules. Started: the HTTP server, synapse types, blacklist/priority and the dendrite
//! client are not built yet (issue 6).

pub mod error;
pub mod ss58;
pub mod verify;

pub use error::AxonError;
