//! The Bittensor axon protocol as SDK 9.x speaks it (what this subnet's validators use):
//! SS58 addresses, the signed message, sr25519 verification, the body hash and nonce
//! rules ([`verify`]), synapses ([`synapse`]) and the request pipeline with its status
//! codes and response headers ([`gate`]), served over HTTP by [`server`]; who may call
//! ([`metagraph`]: a refreshed metagraph view or an offline allowlist); hotkeys read from
//! btcli key files ([`keys`]) and a [`dendrite`] that signs and sends synapses as the
//! SDK does. Nothing here knows what a synapse's fields mean beyond [`synapse`]'s
//! helpers for this subnet's image routes.
//!
//! Signing and verifying a request as the Bittensor SDK does:
//!
//! ```
//! use sv_axon::Hotkey;
//! use sv_axon::verify::{body_hash, signing_message, verify_signature};
//!
//! let validator = Hotkey::from_seed(&[0x11; 32]);
//! let miner = Hotkey::from_seed(&[0x22; 32]);
//! let hash = body_hash(&[]);
//! let message = signing_message(7, &validator.ss58, &miner.ss58, "uuid-1", &hash);
//! let signature = validator.sign(message.as_bytes());
//! assert!(verify_signature(&validator.ss58, &message, &signature).is_ok());
//! assert!(verify_signature(&miner.ss58, &message, &signature).is_err());
//! ```

#![warn(missing_docs)]

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
