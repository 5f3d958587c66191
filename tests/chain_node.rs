//! A loopback subtensor node for tests: a WebSocket JSON-RPC server answering the
//! legacy substrate RPC methods a client uses, over real Bittensor metadata and storage
//! that the Python substrate stack encoded (`tools/gen_chain_fixtures.py`,
//! `tests/fixtures/chain/<net>.{scale,json}`).
//!
//! It keeps the storage map fixed, records every submitted extrinsic, and answers
//! `author_submitAndWatchExtrinsic` by sealing a new finalized block that holds the
//! extrinsic, with `System.Events` set to the fixture's success (or, on request, failure)
//! events. [`ChainNode::stop`] drops every connection and stops listening;
//! [`ChainNode::restart`] listens again on the same port with the same state.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The fixture of one network: metadata bytes and the generator's JSON.
#[derive(Debug, Clone)]
pub struct ChainFixture {
    /// `mainnet` or `testnet`.
    pub network: String,
    /// `RuntimeMetadataPrefixed` bytes.
    pub metadata: Vec<u8>,
    /// The generator's JSON (storage, expected metagraph, call data, events).
    pub json: Value,
}

impl ChainFixture {
    /// The storage prefix of `SubtensorModule.Uids` (the pallet's and the entry's
    /// twox128), taken from the fixture's `burned_register` effects, which the Python
    /// stack encoded: the entry whose value is a uid (two bytes).
    pub fn uids_prefix(&self) -> Vec<u8> {
        let effects = self.json["effects"]["burned_register"]
            .as_object()
            .expect("burned_register effects");
        let key = effects
            .iter()
            .find(|(_, v)| v.as_str().is_some_and(|v| v.len() == 2 + 4))
            .map(|(k, _)| unhex(k))
            .expect("a Uids entry");
        key[..32].to_vec()
    }

    /// Load `tests/fixtures/chain/<network>.{scale,json}`.
    pub fn load(network: &str) -> Self {
        let metadata = std::fs::read(crate::fixture(&format!("chain/{network}.scale")))
            .expect("chain metadata fixture");
        let json: Value = serde_json::from_slice(
            &std::fs::read(crate::fixture(&format!("chain/{network}.json")))
                .expect("chain JSON fixture"),
        )
        .expect("chain JSON fixture parses");
        Self {
            network: network.to_string(),
            metadata,
            json,
        }
    }

    fn hex_field(&self, path: &[&str]) -> Vec<u8> {
        let mut v = &self.json;
        for p in path {
            v = &v[*p];
        }
        unhex(
            v.as_str()
                .unwrap_or_else(|| panic!("fixture field {path:?}")),
        )
    }
}

/// One block of the fake chain.
#[derive(Debug, Clone)]
struct Block {
    number: u64,
    hash: [u8; 32],
    parent: [u8; 32],
    body: Vec<Vec<u8>>,
    events: Option<Vec<u8>>,
}

#[derive(Debug)]
struct State {
    fixture: ChainFixture,
    storage: HashMap<Vec<u8>, Vec<u8>>,
    blocks: Vec<Block>,
    submitted: Vec<Vec<u8>>,
    fail_next: bool,
    methods: Vec<String>,
    nonces: HashMap<[u8; 32], u32>,
}

impl State {
    fn head(&self) -> &Block {
        self.blocks.last().expect("at least one block")
    }

    fn block(&self, hash: Option<&str>) -> Option<&Block> {
        match hash {
            None => Some(self.head()),
            Some(h) => {
                let h = unhex(h);
                self.blocks.iter().find(|b| b.hash[..] == h[..])
            }
        }
    }
}

/// A running loopback node.
pub struct ChainNode {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

static SUBSCRIPTIONS: AtomicU64 = AtomicU64::new(1);

impl ChainNode {
    /// Serve `fixture` on a free loopback port.
    pub fn start(fixture: ChainFixture) -> Self {
        let storage = fixture.json["storage"]
            .as_object()
            .expect("storage map")
            .iter()
            .map(|(k, v)| (unhex(k), unhex(v.as_str().unwrap())))
            .collect();
        let number = fixture.json["block"]["number"].as_u64().unwrap();
        let hash: [u8; 32] = fixture.hex_field(&["block", "hash"]).try_into().unwrap();
        let genesis: [u8; 32] = fixture.hex_field(&["genesis_hash"]).try_into().unwrap();
        let genesis_block = Block {
            number: 0,
            hash: genesis,
            parent: [0; 32],
            body: vec![],
            events: None,
        };
        let head = Block {
            number,
            hash,
            parent: [7; 32],
            body: vec![fixture.hex_field(&["timestamp_extrinsic"])],
            events: None,
        };
        let state = State {
            fixture,
            storage,
            blocks: vec![genesis_block, head],
            submitted: vec![],
            fail_next: false,
            methods: vec![],
            nonces: HashMap::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        Self::serve(listener, Arc::new(Mutex::new(state)))
    }

    fn serve(listener: TcpListener, state: Arc<Mutex<State>>) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stop, accept) = Self::listen(listener, state.clone());
        Self {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    fn listen(
        listener: TcpListener,
        state: Arc<Mutex<State>>,
    ) -> (Arc<AtomicBool>, JoinHandle<()>) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut connections = vec![];
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = state.clone();
                            let stop = stop.clone();
                            connections
                                .push(std::thread::spawn(move || connection(stream, state, stop)));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => break,
                    }
                }
                drop(listener);
                for c in connections {
                    let _ = c.join();
                }
            })
        };
        (stop, accept)
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Stop listening and close every connection.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }

    /// Listen again on the same port, with the same chain state.
    pub fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let (stop, accept) = Self::listen(listener, self.state.clone());
        self.stop = stop;
        self.accept = Some(accept);
    }

    /// Every extrinsic submitted so far.
    pub fn submitted(&self) -> Vec<Vec<u8>> {
        self.state.lock().unwrap().submitted.clone()
    }

    /// Remove every storage entry whose key starts with `prefix` and ends with `suffix`
    /// (a deregistration, say); returns them, for [`insert_storage`](Self::insert_storage).
    pub fn remove_storage(&self, prefix: &[u8], suffix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut s = self.state.lock().unwrap();
        let keys: Vec<Vec<u8>> = s
            .storage
            .keys()
            .filter(|k| k.starts_with(prefix) && k.ends_with(suffix))
            .cloned()
            .collect();
        keys.into_iter()
            .map(|k| {
                let v = s.storage.remove(&k).unwrap();
                (k, v)
            })
            .collect()
    }

    /// Put storage entries (back).
    pub fn insert_storage(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) {
        self.state.lock().unwrap().storage.extend(entries);
    }

    /// Make the next submitted extrinsic fail with the fixture's dispatch error.
    pub fn fail_next(&self) {
        self.state.lock().unwrap().fail_next = true;
    }

    /// The RPC methods called so far, in order.
    pub fn methods(&self) -> Vec<String> {
        self.state.lock().unwrap().methods.clone()
    }

    /// The current head: (number, hash).
    pub fn head(&self) -> (u64, [u8; 32]) {
        let s = self.state.lock().unwrap();
        (s.head().number, s.head().hash)
    }

    /// The hash of block `number`, if the node has it.
    pub fn block_hash(&self, number: u64) -> Option<[u8; 32]> {
        let s = self.state.lock().unwrap();
        s.blocks.iter().find(|b| b.number == number).map(|b| b.hash)
    }
}

impl Drop for ChainNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn connection(stream: TcpStream, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    stream.set_nonblocking(false).unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return;
        }
        let msg = match ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => return,
            _ => continue,
        };
        let request: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let requests = match request {
            Value::Array(items) => items,
            one => vec![one],
        };
        for req in requests {
            for reply in handle(&req, &state) {
                if send(&mut ws, reply).is_err() {
                    return;
                }
            }
        }
    }
}

fn send(ws: &mut WebSocket<TcpStream>, v: Value) -> tungstenite::Result<()> {
    ws.send(Message::text(v.to_string()))
}

fn ok(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn err(id: &Value, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": message}})
}

fn header_json(b: &Block) -> Value {
    json!({
        "parentHash": hex0x(&b.parent),
        "number": format!("0x{:x}", b.number),
        "stateRoot": hex0x(&[1; 32]),
        "extrinsicsRoot": hex0x(&[2; 32]),
        "digest": {"logs": []},
    })
}

const METHODS: &[&str] = &[
    "rpc_methods",
    "chain_getBlockHash",
    "chain_getHeader",
    "chain_getBlock",
    "chain_getFinalizedHead",
    "state_call",
    "state_getStorage",
    "state_getRuntimeVersion",
    "state_getMetadata",
    "system_accountNextIndex",
    "author_submitAndWatchExtrinsic",
    "author_unwatchExtrinsic",
];

fn handle(req: &Value, state: &Arc<Mutex<State>>) -> Vec<Value> {
    let id = &req["id"];
    let method = req["method"].as_str().unwrap_or("");
    let params = req["params"].as_array().cloned().unwrap_or_default();
    let p = |i: usize| params.get(i).and_then(|v| v.as_str()).map(str::to_string);
    let mut s = state.lock().unwrap();
    s.methods.push(method.to_string());
    match method {
        "rpc_methods" => vec![ok(id, json!({"methods": METHODS}))],
        "chain_getBlockHash" => {
            let number = match params.first() {
                None | Some(Value::Null) => s.head().number,
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(parse_number))
                    .unwrap_or(u64::MAX),
            };
            let hash = s.blocks.iter().find(|b| b.number == number);
            vec![ok(
                id,
                hash.map(|b| json!(hex0x(&b.hash))).unwrap_or(Value::Null),
            )]
        }
        "chain_getFinalizedHead" => vec![ok(id, json!(hex0x(&s.head().hash)))],
        "chain_getHeader" => {
            let b = s.block(p(0).as_deref());
            vec![ok(id, b.map(header_json).unwrap_or(Value::Null))]
        }
        "chain_getBlock" => {
            let b = s.block(p(0).as_deref());
            vec![ok(
                id,
                b.map(|b| {
                    json!({"block": {
                        "header": header_json(b),
                        "extrinsics": b.body.iter().map(|e| hex0x(e)).collect::<Vec<_>>(),
                    }, "justifications": null})
                })
                .unwrap_or(Value::Null),
            )]
        }
        "state_getRuntimeVersion" => {
            let f = &s.fixture.json;
            vec![ok(
                id,
                json!({
                    "specName": f["spec_name"], "implName": f["spec_name"],
                    "authoringVersion": 1, "specVersion": f["spec_version"],
                    "implVersion": 1, "apis": [], "transactionVersion": f["tx_version"],
                    "stateVersion": 1,
                }),
            )]
        }
        "state_getMetadata" => vec![ok(id, json!(hex0x(&s.fixture.metadata)))],
        "state_call" => {
            let name = p(0).unwrap_or_default();
            let data = unhex(&p(1).unwrap_or_else(|| "0x".into()));
            match name.as_str() {
                "Core_version" => vec![ok(id, json!(hex0x(&runtime_version(&s.fixture))))],
                "Metadata_metadata" => {
                    let mut out = compact(s.fixture.metadata.len() as u64);
                    out.extend_from_slice(&s.fixture.metadata);
                    vec![ok(id, json!(hex0x(&out)))]
                }
                "AccountNonceApi_account_nonce" => {
                    let who: [u8; 32] = data
                        .get(..32)
                        .and_then(|d| d.try_into().ok())
                        .unwrap_or([0; 32]);
                    let n = s.nonces.get(&who).copied().unwrap_or(0);
                    vec![ok(id, json!(hex0x(&n.to_le_bytes())))]
                }
                other => vec![err(id, &format!("runtime api {other} is not served here"))],
            }
        }
        "state_getStorage" => {
            let key = unhex(&p(0).unwrap_or_default());
            let events_key = s.fixture.hex_field(&["events_key"]);
            let value = if key == events_key {
                s.block(p(1).as_deref()).and_then(|b| b.events.clone())
            } else {
                s.storage.get(&key).cloned()
            };
            vec![ok(
                id,
                value.map(|v| json!(hex0x(&v))).unwrap_or(Value::Null),
            )]
        }
        "system_accountNextIndex" => vec![ok(id, json!(0))],
        "author_unwatchExtrinsic" => vec![ok(id, json!(true))],
        "author_submitAndWatchExtrinsic" => {
            let ext = unhex(&p(0).unwrap_or_default());
            let sub = format!("sub{}", SUBSCRIPTIONS.fetch_add(1, Ordering::SeqCst));
            let events = if std::mem::take(&mut s.fail_next) {
                s.fixture.hex_field(&["events", "failed"])
            } else {
                apply_effects(&mut s, &ext);
                s.fixture.hex_field(&["events", "success"])
            };
            if let Some(signer) = signer_of(&ext) {
                *s.nonces.entry(signer).or_default() += 1;
            }
            s.submitted.push(ext.clone());
            let parent = s.head().clone();
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(parent.number + 1).to_le_bytes());
            hash[8..16].copy_from_slice(&SUBSCRIPTIONS.load(Ordering::SeqCst).to_le_bytes());
            hash[31] = 0xbb;
            let timestamp = s.fixture.hex_field(&["timestamp_extrinsic"]);
            s.blocks.push(Block {
                number: parent.number + 1,
                hash,
                parent: parent.hash,
                body: vec![timestamp, ext],
                events: Some(events),
            });
            let note = |result: Value| {
                json!({"jsonrpc": "2.0", "method": "author_extrinsicUpdate",
                       "params": {"subscription": sub, "result": result}})
            };
            vec![
                ok(id, json!(sub)),
                note(json!("ready")),
                note(json!({"inBlock": hex0x(&hash)})),
                note(json!({"finalized": hex0x(&hash)})),
            ]
        }
        other => vec![err(id, &format!("method {other} not found"))],
    }
}

/// Decode `ext` with the Python substrate stack and `network`'s metadata
/// (`tools/gen_chain_fixtures.py decode`): address, call, era, nonce, tip and the call
/// re-encoded from its decoded arguments.
pub fn python_decode(network: &str, ext: &[u8]) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tools/gen_chain_fixtures.py");
    let out = std::process::Command::new(crate::test_python())
        .arg(script)
        .args(["decode", network, &hex0x(ext)])
        .output()
        .expect("run the Python decoder");
    assert!(
        out.status.success(),
        "Python could not decode the extrinsic: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decoder JSON")
}

/// A successful `serve_axon` stores its endpoint as the chain does:
/// `SubtensorModule.Axons(netuid, signer)` = `AxonInfo { block, version, ip, port,
/// ip_type, protocol, placeholder1, placeholder2 }`. The call is the extrinsic's last 30
/// bytes (pallet and call index as in the fixture's Python-encoded `serve_axon`); the
/// entry's key prefix is that of the fixture's `Axons` entries (82-byte keys holding
/// 34-byte values), and the signer's `Blake2_128Concat` part comes from its `Uids` key.
fn apply_serve_axon(s: &mut State, ext: &[u8]) {
    let reference = unhex(
        s.fixture.json["calls"]["serve_axon"]["hex"]
            .as_str()
            .unwrap_or("0x"),
    );
    let (Some(index), Some(call), Some(signer)) = (
        reference.get(..2),
        ext.get(ext.len().saturating_sub(30)..),
        signer_of(ext),
    ) else {
        return;
    };
    if ext.len() < 30 || &call[..2] != index {
        return;
    }
    let axons_prefix = s
        .storage
        .iter()
        .find(|(k, v)| k.len() == 82 && v.len() == 34)
        .map(|(k, _)| k[..32].to_vec());
    let uids = s.fixture.uids_prefix();
    let hashed = s
        .storage
        .keys()
        .find(|k| k.starts_with(&uids) && k.ends_with(&signer) && k.len() == 82)
        .map(|k| k[32..82].to_vec());
    let (Some(prefix), Some(hashed)) = (axons_prefix, hashed) else {
        return;
    };
    // netuid u16, version u32, ip u128, port u16, ip_type u8, protocol u8, p1 u8, p2 u8.
    let netuid = &call[2..4];
    if hashed[..2] != *netuid {
        return;
    }
    let mut value = (s.head().number + 1).to_le_bytes().to_vec();
    value.extend_from_slice(&call[4..8]);
    value.extend_from_slice(&call[8..24]);
    value.extend_from_slice(&call[24..26]);
    value.extend_from_slice(&call[26..30]);
    let mut key = prefix;
    key.extend_from_slice(&hashed);
    s.storage.insert(key, value);
}

/// Set the `Axons` entry of `account` on the fixture's subnet to `ip:port` (IPv4), as if
/// the hotkey had been served from elsewhere. Returns whether the account is registered
/// (has a `Uids` entry to take the key from).
pub fn set_axon(node: &ChainNode, account: &[u8; 32], ip: [u8; 4], port: u16) -> bool {
    let mut s = node.state.lock().unwrap();
    let uids = s.fixture.uids_prefix();
    let hashed = s
        .storage
        .keys()
        .find(|k| k.starts_with(&uids) && k.ends_with(account) && k.len() == 82)
        .map(|k| k[32..82].to_vec());
    let prefix = s
        .storage
        .iter()
        .find(|(k, v)| k.len() == 82 && v.len() == 34)
        .map(|(k, _)| k[..32].to_vec());
    let (Some(mut key), Some(hashed)) = (prefix, hashed) else {
        return false;
    };
    key.extend_from_slice(&hashed);
    let mut value = s.head().number.to_le_bytes().to_vec();
    value.extend_from_slice(&9_012_002u32.to_le_bytes());
    value.extend_from_slice(&u128::from(u32::from_be_bytes(ip)).to_le_bytes());
    value.extend_from_slice(&port.to_le_bytes());
    value.extend_from_slice(&[4, 4, 0, 0]);
    s.storage.insert(key, value);
    true
}

/// A successful call changes the storage as the fixture's `effects` say (a
/// `burned_register` gives the hotkey its uid), and a `serve_axon` stores its axon.
fn apply_effects(s: &mut State, ext: &[u8]) {
    apply_serve_axon(s, ext);
    let calls = s.fixture.json["calls"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, call) in calls {
        let data = unhex(call["hex"].as_str().unwrap_or("0x"));
        let found = !data.is_empty() && ext.windows(data.len()).any(|w| w == data.as_slice());
        if !found {
            continue;
        }
        if let Some(effects) = s.fixture.json["effects"][&name].as_object().cloned() {
            for (k, v) in effects {
                s.storage.insert(unhex(&k), unhex(v.as_str().unwrap()));
            }
        }
    }
}

/// The signer of a signed v4 extrinsic (`MultiAddress::Id`), if it is one.
pub fn signer_of(ext: &[u8]) -> Option<[u8; 32]> {
    let (_, n) = read_compact(ext)?;
    let body = &ext[n..];
    if body.first()? & 0x80 == 0 || *body.get(1)? != 0 {
        return None;
    }
    body.get(2..34)?.try_into().ok()
}

/// SCALE `RuntimeVersion` as `Core_version` returns it.
fn runtime_version(f: &ChainFixture) -> Vec<u8> {
    let mut out = vec![];
    let name = f.json["spec_name"].as_str().unwrap().as_bytes();
    for _ in 0..2 {
        out.extend(compact(name.len() as u64));
        out.extend_from_slice(name);
    }
    out.extend(1u32.to_le_bytes());
    out.extend((f.json["spec_version"].as_u64().unwrap() as u32).to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(compact(0));
    out.extend((f.json["tx_version"].as_u64().unwrap() as u32).to_le_bytes());
    out.push(1);
    out
}

/// SCALE compact encoding of `n`.
pub fn compact(n: u64) -> Vec<u8> {
    match n {
        0..=63 => vec![(n as u8) << 2],
        64..=16_383 => ((n as u16) << 2 | 1).to_le_bytes().to_vec(),
        16_384..=1_073_741_823 => ((n as u32) << 2 | 2).to_le_bytes().to_vec(),
        _ => {
            let bytes = n.to_le_bytes();
            let len = 8 - bytes.iter().rev().take_while(|b| **b == 0).count();
            let mut out = vec![((len as u8 - 4) << 2) | 3];
            out.extend_from_slice(&bytes[..len]);
            out
        }
    }
}

/// Decode a SCALE compact at the start of `data`: (value, bytes read).
pub fn read_compact(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    match first & 3 {
        0 => Some(((first >> 2) as u64, 1)),
        1 => Some((
            u16::from_le_bytes(data.get(..2)?.try_into().ok()?) as u64 >> 2,
            2,
        )),
        2 => Some((
            u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as u64 >> 2,
            4,
        )),
        _ => {
            let len = (first >> 2) as usize + 4;
            let mut bytes = [0u8; 8];
            bytes[..len].copy_from_slice(data.get(1..1 + len)?);
            Some((u64::from_le_bytes(bytes), 1 + len))
        }
    }
}

fn parse_number(t: &str) -> Option<u64> {
    match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// `0x` + lowercase hex.
pub fn hex0x(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// Bytes of a hex string, with or without `0x`.
pub fn unhex(h: &str) -> Vec<u8> {
    let h = h.strip_prefix("0x").unwrap_or(h);
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}
