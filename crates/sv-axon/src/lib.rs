//! The Bittensor axon protocol as SDK 9.x speaks it (what this subnet's validators use):
//! SS58 addresses, the signed message, sr25519 verification, the body hash and nonce
//! rules ([`verify`]), synapses ([`synapse`]) and the request pipeline with its status
//! codes and response headers ([`gate`]), served over HTTP by [`server`]. Started: the
//! metagraph-backed caller view and the dendrite client are not built yet (issue 6).

pub mod error;
pub mod gate;
pub mod server;
pub mod ss58;
pub mod synapse;
pub mod verify;

pub use error::AxonError;
