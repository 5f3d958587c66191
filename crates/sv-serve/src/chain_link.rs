//! Chain mode: at start, check that the subnet exists and the hotkey is registered, and
//! read the metagraph; after the axon listens, announce it with `serve_axon`; then
//! refresh the metagraph periodically. Nothing here stops the miner once it serves:
//! - when the chain stops answering, the miner keeps serving on the last metagraph,
//!   reconnects with backoff, and says so in its metrics;
//! - a failed `serve_axon` (the chain's serving rate limit, a dropped connection) is
//!   retried with backoff while the miner serves;
//! - each refresh checks that the hotkey still holds a uid: a deregistration is logged
//!   loudly and shown as `sv_miner_registered 0`, and once the hotkey is registered
//!   again the axon is announced again;
//! - each refresh compares the chain's `Axons` entry for the hotkey with the endpoint
//!   announced, and announces again when they differ (an IP change, the hotkey served
//!   from elsewhere).

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
    hotkey: String,
    registered: bool,
    announce: Option<Box<Announce>>,
}

/// The axon to keep announced, and whether the chain holds it.
struct Announce {
    hotkey: Hotkey,
    endpoint: AxonEndpoint,
    done: bool,
    next_try: Instant,
    backoff: Backoff,
}

impl Announce {
    /// Announce again, now, with a fresh backoff.
    fn again(&mut self) {
        self.done = false;
        self.next_try = Instant::now();
        self.backoff.reset();
    }
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
        if !client.subnet_exists(netuid)? {
            return Err(ServeError::Config(format!(
                "subnet {netuid} does not exist at {endpoint}"
            )));
        }
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
            hotkey: hotkey.to_string(),
            registered: true,
            announce: None,
        };
        link.metrics.chain_registered(true);
        link.metrics.chain_uid(Some(uid));
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

    /// Announce `ip:port` for `hotkey` (skipped when the chain holds it already), and
    /// keep it announced: a failure is logged and retried with backoff by
    /// [`run`](Self::run) while the miner serves.
    pub fn serve_axon(&mut self, hotkey: &Hotkey, ip: IpAddr, port: u16) {
        let endpoint = AxonEndpoint {
            ip,
            port,
            version: dendrite::SDK_VERSION as u32,
            protocol: 4,
        };
        self.metrics.axon_endpoint(endpoint.to_string());
        self.announce = Some(Box::new(Announce {
            hotkey: hotkey.clone(),
            endpoint,
            done: false,
            next_try: Instant::now(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
        }));
        self.announce_now();
    }

    /// Try the pending announcement once, if its time has come.
    fn announce_now(&mut self) {
        let (Some(a), Some(client)) = (self.announce.as_mut(), self.client.as_ref()) else {
            return;
        };
        if a.done || !self.registered || Instant::now() < a.next_try {
            return;
        }
        match client.serve_axon(&a.hotkey, self.netuid, &a.endpoint) {
            Ok(Served::Unchanged) => {
                eprintln!(
                    "sv-miner: the chain already serves axon {} for this hotkey",
                    a.endpoint
                );
                a.done = true;
            }
            Ok(Served::Submitted { block }) => {
                eprintln!(
                    "sv-miner: axon {} served on chain (block {block})",
                    a.endpoint
                );
                a.done = true;
            }
            Err(e) => {
                let wait = a.backoff.next_delay();
                a.next_try = Instant::now() + wait;
                eprintln!(
                    "sv-miner: serve_axon for {} failed, serving anyway; next try in {:.0} s: {e}",
                    a.endpoint,
                    wait.as_secs_f64()
                );
            }
        }
        if a.done {
            a.backoff.reset();
        }
        self.metrics.axon_served(a.done);
    }

    /// Whether the hotkey still holds a uid; a change either way is logged, and a
    /// registration after a deregistration asks for the axon to be announced again.
    fn check_registration(&mut self) -> Result<(), ServeError> {
        let client = self.client.as_ref().expect("connected");
        let uid = client.uid_of(self.netuid, &self.hotkey)?;
        match (self.registered, uid) {
            (true, None) => eprintln!(
                "sv-miner: WARNING: hotkey {} is no longer registered on subnet {} (deregistered): \
                 validators stop sending challenges; still serving; register again with \
                 `sv-miner register` and the axon is announced again",
                self.hotkey, self.netuid
            ),
            (false, Some(uid)) => {
                eprintln!(
                    "sv-miner: hotkey {} is registered again, as uid {uid} on subnet {}; announcing the axon",
                    self.hotkey, self.netuid
                );
                if let Some(a) = self.announce.as_mut() {
                    a.again();
                }
            }
            _ => {}
        }
        self.registered = uid.is_some();
        self.metrics.chain_registered(self.registered);
        self.metrics.chain_uid(uid);
        // The chain's entry for this hotkey should be ours; another (an IP change, the
        // hotkey served from elsewhere, an entry cleared) is announced over.
        if self.registered
            && let Some(a) = self.announce.as_mut()
            && a.done
        {
            let held = client.axon_of(self.netuid, &self.hotkey)?;
            let ours = held
                .as_ref()
                .is_some_and(|h| h.ip == a.endpoint.ip && h.port == a.endpoint.port);
            if !ours {
                eprintln!(
                    "sv-miner: the chain holds axon {} for this hotkey, not {}; announcing it again",
                    held.map_or("none".to_string(), |h| h.to_string()),
                    a.endpoint
                );
                a.again();
                self.metrics.axon_served(false);
            }
        }
        if !self.registered
            && let Some(a) = self.announce.as_mut()
        {
            a.done = false;
            self.metrics.axon_served(false);
        }
        Ok(())
    }

    /// Refresh the metagraph every `every` until `stop`; on failure keep the last one,
    /// drop the connection and reconnect with backoff.
    pub fn run(mut self, stop: &AtomicBool, every: Duration) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut next = Instant::now() + every;
        while !stop.load(Ordering::SeqCst) {
            self.announce_now();
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
            match self.refresh().and_then(|_| self.check_registration()) {
                Ok(()) => {
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
