//! A dendrite (client) that prepares, signs and sends synapses as the SDK's `Dendrite`
//! does: the same headers, the same signed message, the synapse as the JSON body.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::keys::Hotkey;
use crate::synapse::{Synapse, TerminalInfo, python_float};
use crate::verify::{body_hash, signing_message};

/// The SDK version a dendrite reports (`version_as_int` of bittensor 9.12.2).
pub const SDK_VERSION: u64 = 9_012_002;

/// The axon to call: its address and hotkey.
#[derive(Debug, Clone)]
pub struct Target {
    /// IP address or host name.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// The axon's SS58 hotkey (signed into every request).
    pub hotkey: String,
}

/// A request ready to send: route, headers and JSON body.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `POST /{route}`.
    pub route: String,
    /// Headers, as the SDK's `Synapse.to_headers` writes them.
    pub headers: BTreeMap<String, String>,
    /// The synapse as JSON.
    pub body: Vec<u8>,
    /// The synapse sent.
    pub synapse: Synapse,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (0 when no response arrived: connection refused, timed out).
    pub status: u16,
    /// The axon's terminal info from the `bt_header_axon_*` headers.
    pub axon: TerminalInfo,
    /// The answered synapse (status 200 only).
    pub synapse: Option<Synapse>,
    /// The error message of a refusal or transport failure.
    pub message: Option<String>,
    /// Round-trip time.
    pub latency: Duration,
}

impl Answer {
    /// The `prediction` field of an answered synapse.
    pub fn prediction(&self) -> Option<f64> {
        self.synapse.as_ref()?.fields.get("prediction")?.as_f64()
    }
}

/// A signing client.
pub struct Dendrite {
    hotkey: Hotkey,
    /// This dendrite's instance id (`bt_header_dendrite_uuid`).
    pub uuid: String,
    /// The IP reported in `bt_header_dendrite_ip`.
    pub external_ip: String,
    agent: ureq::Agent,
}

impl Dendrite {
    /// A dendrite signing with `hotkey`.
    pub fn new(hotkey: Hotkey) -> Self {
        Self {
            hotkey,
            uuid: uuid::Uuid::new_v4().to_string(),
            external_ip: "127.0.0.1".into(),
            agent: ureq::AgentBuilder::new().build(),
        }
    }

    /// The signing hotkey's SS58 address.
    pub fn hotkey(&self) -> &str {
        &self.hotkey.ss58
    }

    /// Prepare synapse `route` with `fields` for `target`, signed with nonce `nonce`
    /// (nanoseconds since the epoch) and the caller's `timeout` in seconds.
    pub fn prepare(
        &self,
        route: &str,
        fields: Map<String, Value>,
        target: &Target,
        timeout: f64,
        nonce: u64,
    ) -> Prepared {
        let hash = body_hash(&[]);
        let message = signing_message(nonce, &self.hotkey.ss58, &target.hotkey, &self.uuid, &hash);
        let dendrite = TerminalInfo {
            ip: Some(self.external_ip.clone()),
            version: Some(SDK_VERSION),
            nonce: Some(nonce),
            uuid: Some(self.uuid.clone()),
            hotkey: Some(self.hotkey.ss58.clone()),
            signature: Some(self.hotkey.sign(message.as_bytes())),
            ..TerminalInfo::default()
        };
        let axon = TerminalInfo {
            ip: Some(target.ip.clone()),
            port: Some(target.port),
            hotkey: Some(target.hotkey.clone()),
            ..TerminalInfo::default()
        };
        let mut synapse = Synapse {
            name: Some(route.to_string()),
            timeout: Some(timeout),
            total_size: Some(0),
            header_size: Some(0),
            dendrite: Some(dendrite),
            axon: Some(axon),
            computed_body_hash: Some(String::new()),
            fields,
        };
        // The SDK counts sizes with Python's sys.getsizeof; these are the byte counts.
        let body_len = serde_json::to_vec(&synapse).expect("json").len() as u64;
        synapse.total_size = Some(body_len);
        let mut headers = BTreeMap::new();
        headers.insert("name".into(), route.to_string());
        headers.insert("timeout".into(), python_float(timeout));
        synapse
            .axon
            .as_ref()
            .expect("set")
            .to_headers("axon", &mut headers);
        synapse
            .dendrite
            .as_ref()
            .expect("set")
            .to_headers("dendrite", &mut headers);
        let header_len: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        headers.insert("header_size".into(), header_len.to_string());
        headers.insert("total_size".into(), body_len.to_string());
        headers.insert("computed_body_hash".into(), hash);
        let body = serde_json::to_vec(&synapse).expect("json");
        Prepared {
            route: route.to_string(),
            headers,
            body,
            synapse,
        }
    }

    /// Prepare with the current time as the nonce, send, and read the answer
    /// (never an `Err`: transport failures come back as status 0 with a message).
    pub fn call(
        &self,
        route: &str,
        fields: Map<String, Value>,
        target: &Target,
        timeout: f64,
    ) -> Answer {
        let nonce = now_ns();
        let prepared = self.prepare(route, fields, target, timeout, nonce);
        self.send(&prepared, target, timeout)
    }

    /// Send a prepared request to `target` and read the answer.
    pub fn send(&self, prepared: &Prepared, target: &Target, timeout: f64) -> Answer {
        let url = format!("http://{}:{}/{}", target.ip, target.port, prepared.route);
        let started = Instant::now();
        let mut request = self
            .agent
            .post(&url)
            .timeout(Duration::from_secs_f64(timeout.max(0.001)))
            .set("content-type", "application/json");
        for (k, v) in &prepared.headers {
            request = request.set(k, v);
        }
        let response = match request.send_bytes(&prepared.body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Answer {
                    status: 0,
                    axon: TerminalInfo::default(),
                    synapse: None,
                    message: Some(e.to_string()),
                    latency: started.elapsed(),
                };
            }
        };
        let status = response.status();
        let headers: HashMap<String, String> = response
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                let v = response.header(&n)?.to_string();
                Some((n.to_ascii_lowercase(), v))
            })
            .collect();
        let axon = TerminalInfo::from_headers(&headers, "axon");
        let mut body = Vec::new();
        let read = std::io::Read::read_to_end(
            &mut std::io::Read::take(response.into_reader(), 64 << 20),
            &mut body,
        );
        let latency = started.elapsed();
        if let Err(e) = read {
            return Answer {
                status,
                axon,
                synapse: None,
                message: Some(format!("reading the answer: {e}")),
                latency,
            };
        }
        if status == 200 {
            match serde_json::from_slice::<Synapse>(&body) {
                Ok(s) => Answer {
                    status,
                    // As the SDK's dendrite: the answered synapse's axon info, with every
                    // field the headers carry taking precedence.
                    axon: merge(s.axon.clone().unwrap_or_default(), axon),
                    synapse: Some(s),
                    message: None,
                    latency,
                },
                Err(e) => Answer {
                    status,
                    axon,
                    synapse: None,
                    message: Some(format!("answer is not a synapse: {e}")),
                    latency,
                },
            }
        } else {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                .or_else(|| axon.status_message.clone());
            Answer {
                status,
                axon,
                synapse: None,
                message,
                latency,
            }
        }
    }
}

/// `base` with every field that `over` has set replaced by it.
fn merge(base: TerminalInfo, over: TerminalInfo) -> TerminalInfo {
    TerminalInfo {
        status_code: over.status_code.or(base.status_code),
        status_message: over.status_message.or(base.status_message),
        process_time: over.process_time.or(base.process_time),
        ip: over.ip.or(base.ip),
        port: over.port.or(base.port),
        version: over.version.or(base.version),
        nonce: over.nonce.or(base.nonce),
        uuid: over.uuid.or(base.uuid),
        hotkey: over.hotkey.or(base.hotkey),
        signature: over.signature.or(base.signature),
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
