//! The Bittensor axon protocol as SDK 9.x speaks it (what this subnet's validators use):
//! SS58 addresses, the signed message, sr25519 verification, the body hash and nonce
//! rules ([`verify`]), synapses ([`synapse`]) and the request pipeline with its status
//! codes and response headers ([`gate`]), served over HTTP by [`server`]; who may call
//! ([`metagraph`]: a refreshed metagraph view or an offline allowlist); hotkeys read from
//! btcli key files ([`keys`]) and a [`dendrite`] that signs and sends synapses as the
//! SDK does. Nothing here knows what a synapse's fields mean beyond [`synapse`]'s
//! helpers for this subnet's image routes.

pub mod dendrite;
pub mod error;
pub mod gate;
pub mod http;
pub mod keys;
pub mod metagraph;
pub mod server;
pub mod ss58;
pub mod synapse;
pub mod verify;

pub use dendrite::{Answer, Dendrite, Target};
pub use error::AxonError;
pub use gate::{Access, Allowlist, Caller, Callers, Gate, Reply};
pub use keys::Hotkey;
pub use metagraph::{Metagraph, Neuron};
