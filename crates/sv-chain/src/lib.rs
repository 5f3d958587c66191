//! The chain side of a miner. Today: btcli-compatible wallets ([`wallet`]) — hotkeys,
//! `$NACL`-encrypted coldkeys with the password from the environment or a terminal
//! prompt, new hotkey files. The subtensor client (metagraph, `burned_register`,
//! `serve_axon`) is not built yet.

pub mod error;
pub mod wallet;

pub use error::ChainError;
pub use wallet::{Password, Wallet};
