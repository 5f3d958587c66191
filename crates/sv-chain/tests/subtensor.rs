//! The subtensor client against real Bittensor metadata (mainnet spec 219 and testnet
//! spec 224 from `@bitgo/sdk-coin-tao`), served by a loopback JSON-RPC node whose storage,
//! call data and events the Python substrate stack encoded
//! (`tools/gen_chain_fixtures.py`). What the client submits is decoded by that Python
//! stack again, and its signature is checked over the signed payload rebuilt here.

use serde_json::Value;
use sv_axon::Hotkey;
use sv_chain::{AxonEndpoint, ChainError, Served, Subtensor};
use sv_tests::chain_node::{ChainFixture, ChainNode, hex0x, python_decode, read_compact};
use sv_tests::fixture;

fn miner_hotkey() -> Hotkey {
    Hotkey::from_key_file(&fixture("axon/wallets/fixture/hotkeys/seeded")).unwrap()
}

fn coldkey() -> Hotkey {
    // The wallet fixture's coldkey is the `phrase` key (same mnemonic).
    Hotkey::from_key_file(&fixture("axon/wallets/fixture/hotkeys/phrase")).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Split a signed v4 extrinsic: (signer, signature, extra bytes, call bytes), where the
/// extra bytes (era, nonce, tip, metadata-hash mode) are found by decoding their SCALE
/// layout as the metadata's extension list gives it.
fn split_signed(ext: &[u8]) -> ([u8; 32], [u8; 64], Vec<u8>, Vec<u8>) {
    let (len, n) = read_compact(ext).unwrap();
    let body = &ext[n..];
    assert_eq!(body.len() as u64, len, "length prefix");
    assert_eq!(body[0], 0x84, "signed, version 4");
    assert_eq!(body[1], 0x00, "MultiAddress::Id");
    let signer: [u8; 32] = body[2..34].try_into().unwrap();
    assert_eq!(body[34], 0x01, "MultiSignature::Sr25519");
    let signature: [u8; 64] = body[35..99].try_into().unwrap();
    let rest = &body[99..];
    let mut i = if rest[0] == 0 { 1 } else { 2 }; // era: immortal or mortal
    i += read_compact(&rest[i..]).unwrap().1; // nonce
    i += read_compact(&rest[i..]).unwrap().1; // tip
    i += 1; // CheckMetadataHash mode
    (signer, signature, rest[..i].to_vec(), rest[i..].to_vec())
}

/// Check the sr25519 signature over call ++ extra ++ additional, where additional is
/// spec version, transaction version, genesis hash, the era's checkpoint hash (genesis
/// when immortal, else a block the node served) and no metadata hash.
fn assert_signature(f: &ChainFixture, node: &ChainNode, ext: &[u8], signer: &Hotkey) {
    let (who, signature, extra, call) = split_signed(ext);
    assert_eq!(who, signer.public());
    let genesis = sv_tests::chain_node::unhex(f.json["genesis_hash"].as_str().unwrap());
    let (head, _) = node.head();
    let checkpoints: Vec<Vec<u8>> = if extra[0] == 0 {
        vec![genesis.clone()]
    } else {
        (0..=head)
            .rev()
            .take(40)
            .filter_map(|n| node.block_hash(n))
            .map(|h| h.to_vec())
            .collect()
    };
    let public = schnorrkel::PublicKey::from_bytes(&who).unwrap();
    let sig = schnorrkel::Signature::from_bytes(&signature).unwrap();
    let verified = checkpoints.iter().any(|checkpoint| {
        let mut payload = call.clone();
        payload.extend_from_slice(&extra);
        payload.extend((f.json["spec_version"].as_u64().unwrap() as u32).to_le_bytes());
        payload.extend((f.json["tx_version"].as_u64().unwrap() as u32).to_le_bytes());
        payload.extend_from_slice(&genesis);
        payload.extend_from_slice(checkpoint);
        payload.push(0); // CheckMetadataHash: None
        let message = if payload.len() > 256 {
            blake2b_256(&payload).to_vec()
        } else {
            payload
        };
        public.verify_simple(b"substrate", &message, &sig).is_ok()
    });
    assert!(
        verified,
        "signature does not verify over the rebuilt payload"
    );
}

fn blake2b_256(data: &[u8]) -> [u8; 32] {
    use blake2::Digest;
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::new();
    h.update(data);
    h.finalize().into()
}

fn reads_the_metagraph(network: &str) {
    let f = ChainFixture::load(network);
    let node = ChainNode::start(f.clone());
    let rt = runtime();
    let chain = rt.block_on(Subtensor::connect(&node.url())).unwrap();
    assert_eq!(
        rt.block_on(chain.current_block()).unwrap(),
        f.json["block"]["number"].as_u64().unwrap()
    );
    assert_eq!(
        rt.block_on(chain.spec_version()).unwrap() as u64,
        f.json["spec_version"].as_u64().unwrap()
    );
    let netuid = f.json["netuid"].as_u64().unwrap() as u16;
    let mg = rt.block_on(chain.metagraph(netuid)).unwrap();
    let expected = f.json["metagraph"].as_array().unwrap();
    assert_eq!(mg.neurons.len(), expected.len());
    for (got, want) in mg.neurons.iter().zip(expected) {
        assert_eq!(got.uid as u64, want["uid"].as_u64().unwrap());
        assert_eq!(got.hotkey, want["hotkey"].as_str().unwrap());
        assert_eq!(got.coldkey, want["coldkey"].as_str().unwrap());
        assert_eq!(
            got.validator_permit,
            want["validator_permit"].as_bool().unwrap()
        );
        assert_eq!(got.active, want["active"].as_bool().unwrap());
        assert_eq!(got.last_update, want["last_update"].as_u64().unwrap());
        assert_eq!(
            got.stake_rao,
            want["stake_rao"].as_u64().unwrap(),
            "uid {}",
            got.uid
        );
        match (&got.axon, &want["axon"]) {
            (None, Value::Null) => {}
            (Some(a), w) => {
                assert_eq!(a.ip.to_string(), w["ip"].as_str().unwrap());
                assert_eq!(a.port as u64, w["port"].as_u64().unwrap());
                assert_eq!(a.ip_type() as u64, w["ip_type"].as_u64().unwrap());
                assert_eq!(a.version as u64, w["version"].as_u64().unwrap());
                assert_eq!(a.protocol as u64, w["protocol"].as_u64().unwrap());
            }
            (got, want) => panic!("axon {got:?} but expected {want}"),
        }
    }
    // The blacklist view: stake in TAO.
    let view = mg.to_axon_neurons();
    assert!((view[0].stake - 52_000.0).abs() < 1e-9);
    assert!(view[0].validator_permit && !view[3].validator_permit);

    let miner = miner_hotkey();
    assert_eq!(
        rt.block_on(chain.uid_of(netuid, &miner.ss58)).unwrap(),
        Some(3)
    );
    let unregistered = f.json["unregistered_hotkey"].as_str().unwrap();
    assert_eq!(
        rt.block_on(chain.uid_of(netuid, unregistered)).unwrap(),
        None
    );
    // Another subnet's uids are keyed apart.
    assert_eq!(
        rt.block_on(chain.uid_of(netuid + 1, &miner.ss58)).unwrap(),
        None
    );
    assert_eq!(
        rt.block_on(chain.burn(netuid)).unwrap(),
        f.json["burn_rao"].as_u64().unwrap()
    );
    assert_eq!(
        rt.block_on(chain.free_balance(f.json["coldkey"].as_str().unwrap()))
            .unwrap(),
        f.json["coldkey_free_rao"].as_u64().unwrap() as u128
    );
    assert!(node.submitted().is_empty());
}

#[test]
fn reads_the_metagraph_on_mainnet_metadata() {
    reads_the_metagraph("mainnet");
}

#[test]
fn reads_the_metagraph_on_testnet_metadata_with_alpha_stake() {
    reads_the_metagraph("testnet");
}

fn serves_and_registers(network: &str) {
    let f = ChainFixture::load(network);
    let node = ChainNode::start(f.clone());
    let rt = runtime();
    let chain = rt.block_on(Subtensor::connect(&node.url())).unwrap();
    let netuid = f.json["netuid"].as_u64().unwrap() as u16;
    let miner = miner_hotkey();

    // The endpoint the chain already holds: nothing is sent.
    let current = rt
        .block_on(chain.axon_of(netuid, &miner.ss58))
        .unwrap()
        .expect("the fixture's miner has an axon");
    assert_eq!(
        rt.block_on(chain.serve_axon(&miner, netuid, &current))
            .unwrap(),
        Served::Unchanged
    );
    assert!(node.submitted().is_empty());

    // A new endpoint: one hotkey-signed serve_axon, equal to the Python encoding.
    let args = &f.json["calls"]["serve_axon"]["args"];
    let endpoint = AxonEndpoint::from_chain(
        args["ip"].as_u64().unwrap() as u128,
        args["ip_type"].as_u64().unwrap() as u8,
        args["port"].as_u64().unwrap() as u16,
        args["version"].as_u64().unwrap() as u32,
        args["protocol"].as_u64().unwrap() as u8,
    )
    .unwrap();
    let served = rt
        .block_on(chain.serve_axon(&miner, netuid, &endpoint))
        .unwrap();
    assert!(matches!(served, Served::Submitted { .. }), "{served:?}");
    let sent = node.submitted();
    assert_eq!(sent.len(), 1);
    let decoded = python_decode(network, &sent[0]);
    assert_eq!(decoded["call_module"], "SubtensorModule");
    assert_eq!(decoded["call_function"], "serve_axon");
    assert_eq!(decoded["address"], miner.ss58.as_str());
    assert_eq!(decoded["call_hex"], f.json["calls"]["serve_axon"]["hex"]);
    let (_, _, _, call) = split_signed(&sent[0]);
    assert_eq!(
        hex0x(&call),
        f.json["calls"]["serve_axon"]["hex"].as_str().unwrap()
    );
    assert_signature(&f, &node, &sent[0], &miner);

    // burned_register, coldkey-signed, for another hotkey.
    let cold = coldkey();
    let hotkey = f.json["calls"]["burned_register"]["args"]["hotkey"]
        .as_str()
        .unwrap();
    let registered = rt
        .block_on(chain.burned_register(&cold, netuid, hotkey))
        .unwrap();
    assert_eq!(
        registered.uid,
        Some(5),
        "the node gives the new hotkey uid 5"
    );
    let sent = node.submitted();
    assert_eq!(sent.len(), 2);
    let decoded = python_decode(network, &sent[1]);
    assert_eq!(decoded["call_function"], "burned_register");
    assert_eq!(
        decoded["call_hex"],
        f.json["calls"]["burned_register"]["hex"]
    );
    assert_signature(&f, &node, &sent[1], &cold);
    let (_, _, extra, _) = split_signed(&sent[1]);
    assert_eq!(decoded["nonce"], 0, "{decoded}");
    assert!(!extra.is_empty());

    // A dispatch error is an error that names the call and the chain's reason.
    node.fail_next();
    let e = rt
        .block_on(chain.burned_register(&cold, netuid, hotkey))
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ChainError::Dispatch { .. }), "{text}");
    assert!(text.contains("burned_register"), "{text}");
    assert!(
        text.contains(f.json["events"]["failed_error"].as_str().unwrap()),
        "{text}"
    );
    // The nonce moved on after the first registration.
    let decoded = python_decode(network, &node.submitted()[2]);
    assert_eq!(decoded["nonce"], 1, "{decoded}");
}

#[test]
fn serves_the_axon_and_registers_on_mainnet_metadata() {
    serves_and_registers("mainnet");
}

#[test]
fn serves_the_axon_and_registers_on_testnet_metadata() {
    serves_and_registers("testnet");
}

#[test]
fn a_refused_endpoint_costs_nothing() {
    let f = ChainFixture::load("mainnet");
    let node = ChainNode::start(f.clone());
    let rt = runtime();
    let chain = rt.block_on(Subtensor::connect(&node.url())).unwrap();
    let e = AxonEndpoint {
        ip: "127.0.0.1".parse().unwrap(),
        port: 8091,
        version: 1,
        protocol: 4,
    };
    let err = rt
        .block_on(chain.serve_axon(&miner_hotkey(), 72, &e))
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(node.submitted().is_empty());
    let bad = rt.block_on(chain.uid_of(72, "not-an-address")).unwrap_err();
    assert!(bad.to_string().contains("not-an-address"), "{bad}");
}

#[test]
fn an_unreachable_node_is_a_connect_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let err = runtime().block_on(Subtensor::connect(&url)).unwrap_err();
    assert!(matches!(err, ChainError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

/// Against a real node (a chopsticks fork or the test network), when one is reachable:
/// `SV_CHAIN_TEST_ENDPOINT=ws://127.0.0.1:8000 cargo test -p sv-chain --test subtensor
/// -- --ignored` (see docs/chain-testing.md). Reads only; nothing is signed.
#[test]
#[ignore = "needs a subtensor node: set SV_CHAIN_TEST_ENDPOINT"]
fn reads_a_live_node() {
    let endpoint = std::env::var("SV_CHAIN_TEST_ENDPOINT").expect("SV_CHAIN_TEST_ENDPOINT");
    let netuid: u16 = std::env::var("SV_CHAIN_TEST_NETUID")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(72);
    let rt = runtime();
    let chain = rt.block_on(Subtensor::connect(&endpoint)).unwrap();
    let block = rt.block_on(chain.current_block()).unwrap();
    let spec = rt.block_on(chain.spec_version()).unwrap();
    let mg = rt.block_on(chain.metagraph(netuid)).unwrap();
    let burn = rt.block_on(chain.burn(netuid)).unwrap();
    println!(
        "{endpoint}: spec {spec}, block {block}, subnet {netuid}: {} neurons, {} with a \
         validator permit, {} axons served, burn {}",
        mg.neurons.len(),
        mg.neurons.iter().filter(|n| n.validator_permit).count(),
        mg.neurons.iter().filter(|n| n.axon.is_some()).count(),
        sv_chain::format_tao(burn as u128)
    );
    assert!(!mg.neurons.is_empty());
    for n in &mg.neurons {
        assert_eq!(
            rt.block_on(chain.uid_of(netuid, &n.hotkey)).unwrap(),
            Some(n.uid)
        );
    }
}
