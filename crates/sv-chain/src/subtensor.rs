//! A subtensor client over subxt. Metadata is read from the node it connects to (the
//! chain upgrades often), and the miner's reads and calls are typed wrappers over
//! subxt's dynamic API: the metagraph of a subnet, the registration check, the current
//! block, the burn, a balance, `burned_register` (coldkey-signed) and `serve_axon`
//! (hotkey-signed; skipped when the chain already holds the same endpoint).

use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use scale_decode::DecodeAsType;
use subxt::dynamic;
use subxt::utils::AccountId32;
use subxt::{OnlineClient, OnlineClientAtBlock, PolkadotConfig};
use sv_axon::Hotkey;

use crate::axon_info::AxonEndpoint;
use crate::error::ChainError;
use crate::signer::KeySigner;

/// The pallet that holds subnets, neurons and axons.
pub const PALLET: &str = "SubtensorModule";
/// Rao per TAO.
pub const RAO_PER_TAO: u64 = 1_000_000_000;
/// Requests in flight at once while reading a metagraph.
const CONCURRENT_READS: usize = 32;
/// How long connecting (handshake, genesis, metadata) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type At = OnlineClientAtBlock<PolkadotConfig>;

/// One neuron of a subnet as the chain stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronInfo {
    /// Its uid on the subnet.
    pub uid: u16,
    /// Hotkey (SS58).
    pub hotkey: String,
    /// The hotkey's owning coldkey (SS58).
    pub coldkey: String,
    /// The served axon, if any.
    pub axon: Option<AxonEndpoint>,
    /// Holds a validator permit.
    pub validator_permit: bool,
    /// Marked active.
    pub active: bool,
    /// Block of its last weight update.
    pub last_update: u64,
    /// Stake on this hotkey, in rao (alpha on a dynamic-TAO runtime).
    pub stake_rao: u64,
}

impl NeuronInfo {
    /// Stake in TAO (or alpha) units.
    pub fn stake(&self) -> f64 {
        self.stake_rao as f64 / RAO_PER_TAO as f64
    }
}

/// A subnet's neurons read at one block.
#[derive(Debug, Clone, PartialEq)]
pub struct Metagraph {
    /// The subnet.
    pub netuid: u16,
    /// The block it was read at.
    pub block: u64,
    /// Neurons by uid.
    pub neurons: Vec<NeuronInfo>,
}

impl Metagraph {
    /// The view sv-axon's blacklist and priority need.
    pub fn to_axon_neurons(&self) -> Vec<sv_axon::Neuron> {
        self.neurons
            .iter()
            .map(|n| sv_axon::Neuron {
                uid: n.uid,
                hotkey: n.hotkey.clone(),
                validator_permit: n.validator_permit,
                stake: n.stake(),
            })
            .collect()
    }
}

/// What `serve_axon` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The chain already held this endpoint; nothing was sent.
    Unchanged,
    /// The call was included and finalized in this block.
    Submitted {
        /// Block hash (`0x` hex).
        block: String,
    },
}

/// What `burned_register` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Block hash the call was finalized in (`0x` hex).
    pub block: String,
    /// The uid the hotkey holds after the call, if the chain reports one.
    pub uid: Option<u16>,
}

#[derive(Debug, DecodeAsType)]
struct ChainAxon {
    version: u32,
    ip: u128,
    port: u16,
    ip_type: u8,
    protocol: u8,
}

#[derive(Debug, DecodeAsType)]
struct AccountInfo {
    data: AccountData,
}

#[derive(Debug, DecodeAsType)]
struct AccountData {
    free: u128,
}

/// A connection to a subtensor node.
#[derive(Clone)]
pub struct Subtensor {
    client: OnlineClient<PolkadotConfig>,
    endpoint: String,
}

impl std::fmt::Debug for Subtensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subtensor({})", self.endpoint)
    }
}

impl Subtensor {
    /// Connect to `endpoint` (`ws://` or `wss://`) and read its genesis hash; metadata
    /// is read from the node at each block the client works at.
    pub async fn connect(endpoint: &str) -> Result<Self, ChainError> {
        let connecting = OnlineClient::<PolkadotConfig>::from_insecure_url(endpoint);
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| ChainError::Connect {
                endpoint: endpoint.to_string(),
                reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
            })?
            .map_err(|e| ChainError::Connect {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        let this = Self {
            client,
            endpoint: endpoint.to_string(),
        };
        // Reading metadata now makes a node that is not subtensor fail at connect.
        let at = this.at().await?;
        this.require(&at, PALLET, "Axons")?;
        Ok(this)
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn at(&self) -> Result<At, ChainError> {
        self.client
            .at_current_block()
            .await
            .map_err(|e| self.rpc("read the current block", e))
    }

    fn rpc(&self, what: &str, e: impl std::fmt::Display) -> ChainError {
        ChainError::Rpc(format!("{}: could not {what}: {e}", self.endpoint))
    }

    fn require(&self, at: &At, pallet: &str, entry: &str) -> Result<(), ChainError> {
        let found = at
            .metadata_ref()
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(entry))
            .is_some();
        if found {
            Ok(())
        } else {
            Err(ChainError::Metadata(format!(
                "{}: the runtime (spec {}) has no storage {pallet}.{entry}",
                self.endpoint,
                at.spec_version()
            )))
        }
    }

    fn has_entry(at: &At, pallet: &str, entry: &str) -> bool {
        at.metadata_ref()
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(entry))
            .is_some()
    }

    async fn fetch<K, V>(
        &self,
        at: &At,
        pallet: &str,
        entry: &str,
        keys: K,
    ) -> Result<Option<V>, ChainError>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues
            + subxt::ext::frame_decode::storage::IntoDecodableValues,
        V: DecodeAsType,
    {
        let address = dynamic::storage::<K, V>(pallet, entry);
        let value = at
            .storage()
            .try_fetch(address, keys)
            .await
            .map_err(|e| self.rpc(&format!("read {pallet}.{entry}"), e))?;
        match value {
            None => Ok(None),
            Some(v) => v
                .decode()
                .map(Some)
                .map_err(|e| ChainError::Decode(format!("{pallet}.{entry}: {e}"))),
        }
    }

    /// The current finalized block number.
    pub async fn current_block(&self) -> Result<u64, ChainError> {
        Ok(self.at().await?.block_number())
    }

    /// The runtime's spec version at the current block.
    pub async fn spec_version(&self) -> Result<u32, ChainError> {
        Ok(self.at().await?.spec_version())
    }

    /// The uid `hotkey` holds on `netuid`, or `None` when it is not registered there.
    pub async fn uid_of(&self, netuid: u16, hotkey: &str) -> Result<Option<u16>, ChainError> {
        let at = self.at().await?;
        self.fetch::<_, u16>(&at, PALLET, "Uids", (netuid, account(hotkey)?))
            .await
    }

    /// The axon `hotkey` serves on `netuid`, if any.
    pub async fn axon_of(
        &self,
        netuid: u16,
        hotkey: &str,
    ) -> Result<Option<AxonEndpoint>, ChainError> {
        let at = self.at().await?;
        self.axon_at(&at, netuid, account(hotkey)?).await
    }

    async fn axon_at(
        &self,
        at: &At,
        netuid: u16,
        hotkey: AccountId32,
    ) -> Result<Option<AxonEndpoint>, ChainError> {
        let Some(a) = self
            .fetch::<_, ChainAxon>(at, PALLET, "Axons", (netuid, hotkey))
            .await?
        else {
            return Ok(None);
        };
        if a.ip == 0 && a.port == 0 {
            return Ok(None);
        }
        AxonEndpoint::from_chain(a.ip, a.ip_type, a.port, a.version, a.protocol).map(Some)
    }

    /// Whether subnet `netuid` exists: `SubnetworkN` counts its neurons, and a subnet
    /// has at least its owner's from creation on. `Burn` cannot tell (a storage
    /// default answers for any netuid), so callers check this before signing.
    pub async fn subnet_exists(&self, netuid: u16) -> Result<bool, ChainError> {
        let at = self.at().await?;
        self.require(&at, PALLET, "SubnetworkN")?;
        let n = self
            .fetch::<_, u16>(&at, PALLET, "SubnetworkN", (netuid,))
            .await?
            .unwrap_or(0);
        Ok(n > 0)
    }

    /// The current burn (registration cost) on `netuid`, in rao.
    pub async fn burn(&self, netuid: u16) -> Result<u64, ChainError> {
        let at = self.at().await?;
        self.fetch::<_, u64>(&at, PALLET, "Burn", (netuid,))
            .await?
            .ok_or_else(|| {
                ChainError::Invalid(format!("subnet {netuid} has no burn: does it exist?"))
            })
    }

    /// The free balance of `account` (SS58), in rao.
    pub async fn free_balance(&self, account_ss58: &str) -> Result<u128, ChainError> {
        let at = self.at().await?;
        Ok(self
            .fetch::<_, AccountInfo>(&at, "System", "Account", (account(account_ss58)?,))
            .await?
            .map(|a| a.data.free)
            .unwrap_or(0))
    }

    /// Read the whole metagraph of `netuid` at the current block: uids, hotkeys,
    /// coldkeys, axons, validator permits, activity, last updates and stake.
    pub async fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        let at = self.at().await?;
        for entry in [
            "SubnetworkN",
            "Keys",
            "Owner",
            "ValidatorPermit",
            "Active",
            "LastUpdate",
        ] {
            self.require(&at, PALLET, entry)?;
        }
        let n = self
            .fetch::<_, u16>(&at, PALLET, "SubnetworkN", (netuid,))
            .await?
            .unwrap_or(0);
        let permits: Vec<bool> = self
            .fetch(&at, PALLET, "ValidatorPermit", (netuid,))
            .await?
            .unwrap_or_default();
        let active: Vec<bool> = self
            .fetch(&at, PALLET, "Active", (netuid,))
            .await?
            .unwrap_or_default();
        let last_update: Vec<u64> = self
            .fetch(&at, PALLET, "LastUpdate", (netuid,))
            .await?
            .unwrap_or_default();
        let alpha = Self::has_entry(&at, PALLET, "TotalHotkeyAlpha");
        if !alpha {
            self.require(&at, PALLET, "TotalHotkeyStake")?;
        }
        let at = &at;
        let (permits, active, last_update) = (&permits, &active, &last_update);
        let neurons: Vec<NeuronInfo> = stream::iter(0..n)
            .map(|uid| async move {
                let hotkey: AccountId32 = self
                    .fetch(at, PALLET, "Keys", (netuid, uid))
                    .await?
                    .ok_or_else(|| {
                        ChainError::Decode(format!("subnet {netuid} has no hotkey for uid {uid}"))
                    })?;
                let coldkey: AccountId32 = self
                    .fetch(at, PALLET, "Owner", (hotkey,))
                    .await?
                    .unwrap_or(AccountId32([0; 32]));
                let stake: u64 = if alpha {
                    self.fetch(at, PALLET, "TotalHotkeyAlpha", (hotkey, netuid))
                        .await?
                } else {
                    self.fetch(at, PALLET, "TotalHotkeyStake", (hotkey,))
                        .await?
                }
                .unwrap_or(0);
                let axon = self.axon_at(at, netuid, hotkey).await?;
                let i = uid as usize;
                Ok::<_, ChainError>(NeuronInfo {
                    uid,
                    hotkey: ss58(&hotkey),
                    coldkey: ss58(&coldkey),
                    axon,
                    validator_permit: permits.get(i).copied().unwrap_or(false),
                    active: active.get(i).copied().unwrap_or(false),
                    last_update: last_update.get(i).copied().unwrap_or(0),
                    stake_rao: stake,
                })
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        Ok(Metagraph {
            netuid,
            block: at.block_number(),
            neurons,
        })
    }

    /// Register `hotkey` on `netuid` by burning TAO from `coldkey`'s balance; waits for
    /// finalization. A dispatch error (already registered, too little balance) is an
    /// error naming the chain's reason.
    pub async fn burned_register(
        &self,
        coldkey: &Hotkey,
        netuid: u16,
        hotkey: &str,
    ) -> Result<Registered, ChainError> {
        let call = dynamic::tx(PALLET, "burned_register", (netuid, account(hotkey)?));
        let block = self.submit("burned_register", &call, coldkey).await?;
        let uid = self.uid_of(netuid, hotkey).await?;
        Ok(Registered { block, uid })
    }

    /// Announce `endpoint` for `hotkey` on `netuid`, unless the chain already holds the
    /// same ip, port, ip type, protocol and version. Waits for finalization.
    pub async fn serve_axon(
        &self,
        hotkey: &Hotkey,
        netuid: u16,
        endpoint: &AxonEndpoint,
    ) -> Result<Served, ChainError> {
        endpoint.check_servable()?;
        let current = self.axon_of(netuid, &hotkey.ss58).await?;
        if current.as_ref() == Some(endpoint) {
            return Ok(Served::Unchanged);
        }
        let call = serve_axon_call(netuid, endpoint);
        let block = self.submit("serve_axon", &call, hotkey).await?;
        Ok(Served::Submitted { block })
    }

    async fn submit<Call: subxt::tx::Payload>(
        &self,
        name: &str,
        call: &Call,
        key: &Hotkey,
    ) -> Result<String, ChainError> {
        let at = self.at().await?;
        let signer = KeySigner::new(key);
        let progress = at
            .transactions()
            .sign_and_submit_then_watch_default(call, &signer)
            .await
            .map_err(|e| self.rpc(&format!("submit {name}"), e))?;
        let in_block = progress
            .wait_for_finalized()
            .await
            .map_err(|e| self.rpc(&format!("follow {name} to finalization"), e))?;
        let block = format!("0x{}", hex::encode(in_block.block_hash().as_ref()));
        in_block
            .wait_for_success()
            .await
            .map_err(|e| ChainError::Dispatch {
                call: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(block)
    }
}

/// The `serve_axon` call for `endpoint` (placeholders 0), as submitted.
pub fn serve_axon_call(netuid: u16, endpoint: &AxonEndpoint) -> impl subxt::tx::Payload {
    dynamic::tx(
        PALLET,
        "serve_axon",
        (
            netuid,
            endpoint.version,
            endpoint.ip_u128(),
            endpoint.port,
            endpoint.ip_type(),
            endpoint.protocol,
            0u8,
            0u8,
        ),
    )
}

/// SS58 (any prefix) → account id.
pub fn account(ss58_address: &str) -> Result<AccountId32, ChainError> {
    let (key, _) = sv_axon::ss58::decode(ss58_address)
        .map_err(|e| ChainError::Invalid(format!("{ss58_address}: {e}")))?;
    Ok(AccountId32(key))
}

fn ss58(account: &AccountId32) -> String {
    sv_axon::ss58::encode(&account.0, 42)
}
