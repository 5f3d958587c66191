//! The chain side of a miner.
//!
//! - [`wallet`]: btcli-compatible wallets — hotkeys, `$NACL`-encrypted coldkeys with the
//!   password from the environment or a terminal prompt, new hotkey files.
//! - [`subtensor`]: a subtensor client over subxt that reads the runtime's metadata from
//!   the node — metagraph, registration check, current block, burn, balance,
//!   `burned_register` and `serve_axon` — with [`blocking`] for threaded callers and
//!   [`backoff`] for reconnects.
//!
//! Retrying a chain call: delays double up to a cap, with ±20 % jitter.
//!
//! ```
//! use std::time::Duration;
//!
//! let mut backoff = sv_chain::Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
//! let first = backoff.next_delay();
//! assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
//! let _ = backoff.next_delay();
//! assert!(backoff.next_delay() <= Duration::from_millis(4800));
//! ```

#![warn(missing_docs)]

pub mod axon_info;
pub mod backoff;
pub mod blocking;
pub mod error;
pub mod signer;
pub mod subtensor;
pub mod wallet;

pub use axon_info::AxonEndpoint;
pub use backoff::Backoff;
pub use blocking::BlockingSubtensor;
pub use error::ChainError;
pub use subtensor::{Metagraph, NeuronInfo, RAO_PER_TAO, Registered, Served, Subtensor};
pub use wallet::{Password, Wallet};

/// Format rao as TAO with nine decimals (`τ1.234567890`).
pub fn format_tao(rao: u128) -> String {
    format!(
        "τ{}.{:09}",
        rao / RAO_PER_TAO as u128,
        rao % RAO_PER_TAO as u128
    )
}

/// The endpoints of the network names the Bittensor SDK knows
/// (`bittensor.core.settings.NETWORK_MAP`): `finney`, `test`, `archive`, `local`,
/// `subvortex`, `latent-lite`.
pub const NETWORKS: [(&str, &str); 6] = [
    ("finney", "wss://entrypoint-finney.opentensor.ai:443"),
    ("test", "wss://test.finney.opentensor.ai:443"),
    ("archive", "wss://archive.chain.opentensor.ai:443"),
    ("local", "ws://127.0.0.1:9944"),
    ("subvortex", "ws://subvortex.info:9944"),
    ("latent-lite", "wss://lite.sub.latent.to:443"),
];

/// The endpoint of `network` as `SUBTENSOR_NETWORK` holds it: a name of [`NETWORKS`],
/// or a `ws://`/`wss://` URL itself; `None` for anything else.
pub fn network_endpoint(network: &str) -> Option<String> {
    let n = network.trim();
    if n.starts_with("ws://") || n.starts_with("wss://") {
        return Some(n.to_string());
    }
    NETWORKS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, url)| url.to_string())
}
