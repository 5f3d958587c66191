//! [`Subtensor`] for callers without an async runtime (the miner's threads, the
//! binaries): each call runs on a small runtime this wrapper owns.

use sv_axon::Hotkey;

use crate::axon_info::AxonEndpoint;
use crate::error::ChainError;
use crate::subtensor::{Metagraph, Registered, Served, Subtensor};

/// A blocking subtensor client.
#[derive(Debug)]
pub struct BlockingSubtensor {
    runtime: tokio::runtime::Runtime,
    inner: Subtensor,
}

impl BlockingSubtensor {
    /// Connect to `endpoint` (see [`Subtensor::connect`]).
    pub fn connect(endpoint: &str) -> Result<Self, ChainError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sv-chain")
            .enable_all()
            .build()
            .map_err(|e| ChainError::Connect {
                endpoint: endpoint.to_string(),
                reason: format!("cannot start the async runtime: {e}"),
            })?;
        let inner = runtime.block_on(Subtensor::connect(endpoint))?;
        Ok(Self { runtime, inner })
    }

    /// The async client.
    pub fn client(&self) -> &Subtensor {
        &self.inner
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// See [`Subtensor::current_block`].
    pub fn current_block(&self) -> Result<u64, ChainError> {
        self.runtime.block_on(self.inner.current_block())
    }

    /// See [`Subtensor::uid_of`].
    pub fn uid_of(&self, netuid: u16, hotkey: &str) -> Result<Option<u16>, ChainError> {
        self.runtime.block_on(self.inner.uid_of(netuid, hotkey))
    }

    /// See [`Subtensor::axon_of`].
    pub fn axon_of(&self, netuid: u16, hotkey: &str) -> Result<Option<AxonEndpoint>, ChainError> {
        self.runtime.block_on(self.inner.axon_of(netuid, hotkey))
    }

    /// See [`Subtensor::subnet_exists`].
    pub fn subnet_exists(&self, netuid: u16) -> Result<bool, ChainError> {
        self.runtime.block_on(self.inner.subnet_exists(netuid))
    }

    /// See [`Subtensor::burn`].
    pub fn burn(&self, netuid: u16) -> Result<u64, ChainError> {
        self.runtime.block_on(self.inner.burn(netuid))
    }

    /// See [`Subtensor::free_balance`].
    pub fn free_balance(&self, account: &str) -> Result<u128, ChainError> {
        self.runtime.block_on(self.inner.free_balance(account))
    }

    /// See [`Subtensor::metagraph`].
    pub fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        self.runtime.block_on(self.inner.metagraph(netuid))
    }

    /// See [`Subtensor::burned_register`].
    pub fn burned_register(
        &self,
        coldkey: &Hotkey,
        netuid: u16,
        hotkey: &str,
    ) -> Result<Registered, ChainError> {
        self.runtime
            .block_on(self.inner.burned_register(coldkey, netuid, hotkey))
    }

    /// See [`Subtensor::serve_axon`].
    pub fn serve_axon(
        &self,
        hotkey: &Hotkey,
        netuid: u16,
        endpoint: &AxonEndpoint,
    ) -> Result<Served, ChainError> {
        self.runtime
            .block_on(self.inner.serve_axon(hotkey, netuid, endpoint))
    }
}
