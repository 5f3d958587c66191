//! Chain mode: at start, check that the hotkey is registered and read the metagraph;
//! after the axon listens, announce it with `serve_axon`; then refresh the metagraph
//! periodically. When the chain stops answering, the miner keeps serving on the last
//! metagraph, reconnects with backoff, and says so in its metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sv_axon::metagraph::Metagraph;
use sv_axon::{Hotkey, dendrite};
use sv_chain::{AxonEndpoint, Backoff, BlockingSubtensor, Served};

use crate::error::ServeError;
use crate::metrics::Metrics;

/// A miner's connection to the chain.
pub struct ChainLink {
    endpoint: String,
    netuid: u16,
    client: Option<BlockingSubtensor>,
    metagraph: Arc<Metagraph>,
    metrics: Arc<Metrics>,
}

impl ChainLink {
    /// Connect, check that `hotkey` holds a uid on `netuid`, and fill `metagraph`.
    pub fn open(
        endpoint: &str,
        netuid: u16,
        hotkey: &str,
        metagraph: Arc<Metagraph>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServeError> {
        let client = BlockingSubtensor::connect(endpoint)?;
        let Some(uid) = client.uid_of(netuid, hotkey)? else {
            return Err(ServeError::Config(format!(
                "hotkey {hotkey} is not registered on subnet {netuid} at {endpoint}; register it \
                 first with `sv-miner register`"
            )));
        };
        let mut link = Self {
            endpoint: endpoint.to_string(),
            netuid,
            client: Some(client),
            metagraph,
            metrics,
        };
        let (block, n) = link.refresh()?;
        eprintln!(
            "sv-miner: hotkey {hotkey} is uid {uid} on subnet {netuid}; metagraph of {n} neurons at block {block} from {endpoint}"
        );
        Ok(link)
    }

    fn refresh(&mut self) -> Result<(u64, usize), ServeError> {
        let client = self.client.as_ref().expect("connected");
        let mg = client.metagraph(self.netuid)?;
        self.metagraph.replace(mg.to_axon_neurons());
        self.metrics.chain_refreshed(mg.block, mg.neurons.len());
        Ok((mg.block, mg.neurons.len()))
    }

    /// Announce `ip:port` for `hotkey` (skipped when the chain holds it already).
    pub fn serve_axon(&self, hotkey: &Hotkey, ip: IpAddr, port: u16) -> Result<(), ServeError> {
        let endpoint = AxonEndpoint {
            ip,
            port,
            version: dendrite::SDK_VERSION as u32,
            protocol: 4,
        };
        let client = self.client.as_ref().expect("connected");
        match client.serve_axon(hotkey, self.netuid, &endpoint)? {
            Served::Unchanged => {
                eprintln!("sv-miner: the chain already serves axon {endpoint} for this hotkey")
            }
            Served::Submitted { block } => {
                eprintln!("sv-miner: axon {endpoint} served on chain (block {block})")
            }
        }
        Ok(())
    }

    /// Refresh the metagraph every `every` until `stop`; on failure keep the last one,
    /// drop the connection and reconnect with backoff.
    pub fn run(mut self, stop: &AtomicBool, every: Duration) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut next = Instant::now() + every;
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() < next {
                std::thread::sleep(
                    Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())),
                );
                continue;
            }
            if self.client.is_none() {
                match BlockingSubtensor::connect(&self.endpoint) {
                    Ok(c) => {
                        eprintln!("sv-miner: chain {} reconnected", self.endpoint);
                        self.client = Some(c);
                    }
                    Err(e) => {
                        self.metrics.chain_failed();
                        let wait = backoff.next_delay();
                        eprintln!(
                            "sv-miner: chain still unreachable, serving on the last metagraph; next try in {:.0} s: {e}",
                            wait.as_secs_f64()
                        );
                        next = Instant::now() + wait;
                        continue;
                    }
                }
            }
            match self.refresh() {
                Ok(_) => {
                    backoff.reset();
                    next = Instant::now() + every;
                }
                Err(e) => {
                    self.metrics.chain_failed();
                    self.client = None;
                    let wait = backoff.next_delay();
                    eprintln!(
                        "sv-miner: metagraph refresh failed, serving on the last metagraph; reconnecting in {:.0} s: {e}",
                        wait.as_secs_f64()
                    );
                    next = Instant::now() + wait;
                }
            }
        }
    }
}
