//! The axon's request pipeline, independent of the HTTP server: route → size → parse →
//! blacklist → verify (signature, body hash, nonce) → handler, answering with the SDK's
//! status codes, the synapse echoed back and the `bt_header_axon_*` response headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::dendrite::SDK_VERSION;
use crate::keys::Hotkey;
use crate::synapse::{Synapse, TerminalInfo, python_float};
use crate::verify::{NonceTracker, body_hash, signing_message, verify_signature};

/// What the chain (or an offline allowlist) says about a caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Access {
    /// Registered; `permit` when it holds a validator permit; `stake` orders requests.
    Registered {
        /// Holds a validator permit.
        permit: bool,
        /// Stake, for priority.
        stake: f64,
    },
    /// Not registered on the subnet.
    Unknown,
}

/// Who may call: the metagraph view a chain client refreshes, or a fixed allowlist.
pub trait Callers: Send + Sync {
    /// The access of `hotkey`.
    fn access(&self, hotkey: &str) -> Access;

    /// Why an unknown hotkey is refused, in the words of this source of callers.
    fn unknown(&self, hotkey: &str) -> String {
        format!("hotkey {hotkey} is not registered")
    }
}

/// A fixed allowlist of validator hotkeys with their stakes (offline mode).
#[derive(Debug, Clone, Default)]
pub struct Allowlist(pub HashMap<String, f64>);

impl Callers for Allowlist {
    fn unknown(&self, hotkey: &str) -> String {
        format!("hotkey {hotkey} is not in the miner's allowlist")
    }

    fn access(&self, hotkey: &str) -> Access {
        match self.0.get(hotkey) {
            Some(&stake) => Access::Registered {
                permit: true,
                stake,
            },
            None => Access::Unknown,
        }
    }
}

/// An admitted caller, handed to the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Its SS58 hotkey.
    pub hotkey: String,
    /// Its stake: requests are served in stake order when they queue.
    pub stake: f64,
    /// The caller's timeout in seconds: the `timeout` header (else 12) clamped to
    /// [`TIMEOUT_RANGE_S`](crate::verify::TIMEOUT_RANGE_S).
    pub timeout: f64,
    /// When the request arrived: its deadline counts from here, queueing included.
    pub received: std::time::Instant,
}

/// An answer to send: HTTP status, headers and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status (the SDK's codes: 200, 400, 401, 403, 404, 500).
    pub status: u16,
    /// Response headers.
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    pub body: Vec<u8>,
    /// The caller's stake when it got past the blacklist (for priority).
    pub stake: Option<f64>,
}

/// Called once per request with the status sent, the caller when it was admitted, and
/// the time taken (for metrics).
pub type Observer = Box<dyn Fn(u16, Option<&Caller>, std::time::Duration) + Send + Sync>;

/// The verifying pipeline of one axon.
pub struct Gate {
    /// This axon's hotkey (SS58): the third field of every signed message.
    pub axon_hotkey: String,
    /// Routes served.
    pub routes: Vec<String>,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// Refuse callers without a validator permit.
    pub require_permit: bool,
    callers: Box<dyn Callers>,
    nonces: Mutex<NonceTracker>,
    signer: Option<Hotkey>,
    uuid: String,
    observer: Option<Observer>,
}

struct Refusal(u16, String);

impl Gate {
    /// A gate for `axon_hotkey` serving `routes`, taking callers from `callers`.
    pub fn new(axon_hotkey: &str, routes: &[&str], callers: Box<dyn Callers>) -> Self {
        Self {
            axon_hotkey: axon_hotkey.to_string(),
            routes: routes.iter().map(|r| r.to_string()).collect(),
            max_body: 4 << 20,
            require_permit: true,
            callers,
            nonces: Mutex::new(NonceTracker::new(4096)),
            signer: None,
            uuid: uuid::Uuid::new_v4().to_string(),
            observer: None,
        }
    }

    /// Report every request's outcome to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sign answers with this axon's hotkey (`bt_header_axon_signature` over
    /// `"{axon_nonce}.{dendrite_hotkey}.{axon_hotkey}.{axon_uuid}"`, as the SDK's axon
    /// does); the gate's hotkey becomes the key's address.
    pub fn with_signer(mut self, hotkey: Hotkey) -> Self {
        self.axon_hotkey = hotkey.ss58.clone();
        self.signer = Some(hotkey);
        self
    }

    /// Run a request for `route` (its headers, lower-case names, and body) received at
    /// `now_ns`; `handler` fills in the answer of an accepted synapse or refuses it with
    /// a status and message.
    pub fn process(
        &self,
        route: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        now_ns: u64,
        handler: impl FnOnce(&mut Synapse, &Caller) -> Result<(), (u16, String)>,
    ) -> Reply {
        self.process_received(
            route,
            headers,
            body,
            now_ns,
            std::time::Instant::now(),
            handler,
        )
    }

    /// [`process`](Self::process) for a request that arrived at `received` (the caller's
    /// deadline counts from then).
    pub fn process_received(
        &self,
        route: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        now_ns: u64,
        received: std::time::Instant,
        handler: impl FnOnce(&mut Synapse, &Caller) -> Result<(), (u16, String)>,
    ) -> Reply {
        let started = std::time::Instant::now();
        let mut stake = None;
        let mut admitted = None;
        let result = self
            .admit(route, headers, body, now_ns, received, &mut stake)
            .and_then(|(mut synapse, caller)| {
                let r = handler(&mut synapse, &caller)
                    .map_err(|(code, msg)| Refusal(code, msg))
                    .map(|()| synapse);
                admitted = Some(caller);
                r
            });
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(observe) = &self.observer {
            let status = match &result {
                Ok(_) => 200,
                Err(Refusal(code, _)) => *code,
            };
            observe(status, admitted.as_ref(), started.elapsed());
        }
        match result {
            Ok(mut synapse) => {
                let axon = synapse.axon.get_or_insert_with(TerminalInfo::default);
                axon.status_code = Some(200);
                axon.status_message = Some("Success".into());
                axon.process_time = Some(elapsed);
                axon.version = Some(SDK_VERSION);
                axon.uuid = Some(self.uuid.clone());
                let axon_nonce = now_ns.max(1);
                axon.nonce = Some(axon_nonce);
                if let Some(key) = &self.signer {
                    let dendrite_hotkey = synapse
                        .dendrite
                        .as_ref()
                        .and_then(|d| d.hotkey.clone())
                        .unwrap_or_default();
                    let message = format!(
                        "{axon_nonce}.{dendrite_hotkey}.{}.{}",
                        self.axon_hotkey, self.uuid
                    );
                    axon.signature = Some(key.sign(message.as_bytes()));
                }
                self.reply(200, synapse, stake)
            }
            Err(Refusal(code, message)) => {
                let dendrite = TerminalInfo::from_headers(headers, "dendrite");
                let synapse = Synapse {
                    name: Some(route.to_string()),
                    timeout: headers
                        .get("timeout")
                        .and_then(|t| crate::verify::parse_timeout(t)),
                    total_size: None,
                    header_size: None,
                    dendrite: Some(dendrite),
                    axon: Some(TerminalInfo {
                        status_code: Some(i64::from(code)),
                        status_message: Some(message.clone()),
                        process_time: Some(elapsed),
                        hotkey: Some(self.axon_hotkey.clone()),
                        ..TerminalInfo::default()
                    }),
                    computed_body_hash: None,
                    fields: Default::default(),
                };
                let mut r = self.reply(code, synapse, stake);
                r.body =
                    serde_json::to_vec(&serde_json::json!({ "message": message })).expect("json");
                r
            }
        }
    }

    fn admit(
        &self,
        route: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        now_ns: u64,
        received: std::time::Instant,
        stake: &mut Option<f64>,
    ) -> Result<(Synapse, Caller), Refusal> {
        if !self.routes.iter().any(|r| r == route) {
            return Err(Refusal(404, format!("no synapse {route} here")));
        }
        if body.len() > self.max_body {
            return Err(Refusal(
                400,
                format!(
                    "body of {} bytes is over the {}-byte limit",
                    body.len(),
                    self.max_body
                ),
            ));
        }
        // serde_json refuses nesting deeper than 128 levels.
        let mut synapse: Synapse = serde_json::from_slice(body)
            .map_err(|e| Refusal(400, format!("body is not a synapse: {e}")))?;
        let dendrite = TerminalInfo::from_headers(headers, "dendrite");
        let hotkey = dendrite
            .hotkey
            .clone()
            .ok_or_else(|| Refusal(401, "no dendrite hotkey".into()))?;
        // Blacklist.
        match self.callers.access(&hotkey) {
            Access::Unknown => {
                return Err(Refusal(403, self.callers.unknown(&hotkey)));
            }
            Access::Registered { permit, .. } if self.require_permit && !permit => {
                return Err(Refusal(
                    403,
                    format!("hotkey {hotkey} has no validator permit"),
                ));
            }
            Access::Registered { stake: s, .. } => *stake = Some(s),
        }
        // Verify: signature over our own hotkey, body hash, nonce.
        let (Some(nonce), Some(uuid), Some(signature)) = (
            dendrite.nonce,
            dendrite.uuid.clone(),
            dendrite.signature.clone(),
        ) else {
            return Err(Refusal(401, "unsigned request".into()));
        };
        let claimed = headers
            .get("computed_body_hash")
            .cloned()
            .unwrap_or_default();
        let expected = body_hash(&[]);
        if claimed != expected {
            return Err(Refusal(
                400,
                "body hash does not match the required fields".into(),
            ));
        }
        let message = signing_message(nonce, &hotkey, &self.axon_hotkey, &uuid, &expected);
        verify_signature(&hotkey, &message, &signature).map_err(|e| Refusal(401, e.to_string()))?;
        let timeout = match headers.get("timeout") {
            None => None,
            Some(t) => Some(crate::verify::parse_timeout(t).ok_or_else(|| {
                Refusal(
                    400,
                    format!("timeout header `{t}` is not a number of seconds"),
                )
            })?),
        };
        let timeout = crate::verify::timeout_budget(timeout);
        self.nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(&format!("{hotkey}:{uuid}"), nonce, now_ns)
            .map_err(|e| Refusal(401, e.to_string()))?;
        synapse.dendrite = Some(dendrite);
        synapse.axon = Some(TerminalInfo {
            hotkey: Some(self.axon_hotkey.clone()),
            ..TerminalInfo::from_headers(headers, "axon")
        });
        synapse.computed_body_hash = Some(expected);
        let caller = Caller {
            hotkey,
            stake: stake.unwrap_or(0.0),
            timeout,
            received,
        };
        Ok((synapse, caller))
    }

    fn reply(&self, status: u16, synapse: Synapse, stake: Option<f64>) -> Reply {
        let mut headers = BTreeMap::new();
        if let Some(n) = &synapse.name {
            headers.insert("name".into(), n.clone());
        }
        if let Some(t) = synapse.timeout {
            headers.insert("timeout".into(), python_float(t));
        }
        if let Some(a) = &synapse.axon {
            a.to_headers("axon", &mut headers);
        }
        if let Some(d) = &synapse.dendrite {
            d.to_headers("dendrite", &mut headers);
        }
        if let Some(h) = &synapse.computed_body_hash {
            headers.insert("computed_body_hash".into(), h.clone());
        }
        Reply {
            status,
            headers,
            body: serde_json::to_vec(&synapse).expect("json"),
            stake,
        }
    }
}
