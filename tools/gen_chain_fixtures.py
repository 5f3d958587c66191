#!/usr/bin/env python3
"""Chain fixtures for sv-chain's subtensor client, encoded by the Python substrate stack
the Bittensor SDK uses (scalecodec 1.2.12 + async-substrate-interface, pinned in
tools/requirements-axon.txt) against real Bittensor runtime metadata.

The metadata comes from the npm package `@bitgo/sdk-coin-tao` (MIT), which ships the
mainnet (spec 219) and testnet (spec 224) metadata with their genesis hashes:

    tools/.venv-test/bin/python tools/gen_chain_fixtures.py generate

runs `npm pack @bitgo/sdk-coin-tao@1.16.4` in a temporary folder and writes, for each
network, tests/fixtures/chain/<net>.scale (the metadata as `state_getMetadata` returns it)
and tests/fixtures/chain/<net>.json: the runtime version, a small subnet's storage as
key → value hex (what a node's `state_getStorage` answers), the metagraph that storage
means, the call data of `serve_axon` and `burned_register`, and `System.Events` values
for a successful and a failed transaction.

    tools/.venv-test/bin/python tools/gen_chain_fixtures.py decode <net> <extrinsic hex>

decodes a signed extrinsic with the same metadata and prints it as JSON (used by the
tests on what our client submits).
"""

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from async_substrate_interface.utils.storage import StorageKey
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from scalecodec.utils.ss58 import ss58_decode
from bittensor_wallet import Keypair

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "chain"
PACKAGE = "@bitgo/sdk-coin-tao@1.16.4"
NETUID = 72
RAO = 10**9

WALLETS = json.loads((ROOT / "tests/fixtures/axon/wallets/expected.json").read_text())
MINER = WALLETS["seeded"]["ss58"]  # our miner's hotkey (hotkeys/seeded)
COLDKEY = WALLETS["coldkey"]["ss58"]  # the wallet's coldkey (also hotkeys/phrase)
# Other neurons: keys from fixed seeds (a byte repeated 32 times; 0x11 is the miner), so that tests can sign
# as them; coldkeys are well-known dev accounts (Dave, Eve).
SEEDS = {"validator_a": 0xA1, "validator_b": 0xA2, "miner_b": 0xA3, "no_permit": 0xA4}
KEYS = {name: Keypair.create_from_seed("0x" + f"{b:02x}" * 32).ss58_address for name, b in SEEDS.items()}
ALICE = KEYS["validator_a"]
BOB = KEYS["validator_b"]
CHARLIE = KEYS["miner_b"]
EVE = KEYS["no_permit"]
DAVE = "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy"
EVE_COLD = "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw"
NEW_HOTKEY = WALLETS["phrase"]["ss58"]  # unregistered; burned_register registers it as uid 5

# uid, hotkey, coldkey, validator permit, active, last update, stake (rao), axon or None
NEURONS = [
    (0, ALICE, DAVE, True, True, 4_898_300, 52_000 * RAO, ("10.0.0.1", 8091, 4)),
    (1, BOB, DAVE, True, True, 4_898_250, 1_200 * RAO + 500_000_000, ("198.51.100.7", 443, 4)),
    (2, CHARLIE, EVE_COLD, False, False, 4_890_000, 200_000_000, ("2001:db8::1", 8091, 6)),
    (3, MINER, COLDKEY, False, True, 4_898_000, 3 * RAO, ("127.0.0.2", 8091, 4)),
    (4, EVE, EVE_COLD, False, True, 4_897_000, 10 * RAO, None),
]
AXON_VERSION = 9012002
AXON_BLOCK = 4_800_000
BURN = 1_234_567_890
COLDKEY_FREE = 5 * RAO + 1


def runtime(meta_hex):
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    metadata = rc.create_scale_object("MetadataVersioned", data=ScaleBytes(meta_hex))
    metadata.decode()
    rc.add_portable_registry(metadata)
    rc.ss58_format = 42
    return rc, metadata


def ip_int(text):
    import ipaddress

    return int(ipaddress.ip_address(text))


def storage_item(rc, metadata, pallet, name, params, value):
    key = StorageKey.create_from_storage_function(pallet, name, params, rc, metadata)
    obj = rc.create_scale_object(key.value_scale_type, metadata=metadata)
    return key.to_hex(), obj.encode(value).to_hex()


def call_hex(rc, metadata, module, function, args):
    call = rc.create_scale_object("Call", metadata=metadata)
    return call.encode({"call_module": module, "call_function": function, "call_args": args}).to_hex()


def events_hex(rc, metadata, records):
    key = StorageKey.create_from_storage_function("System", "Events", [], rc, metadata)
    obj = rc.create_scale_object(key.value_scale_type, metadata=metadata)
    return key.to_hex(), obj.encode(records).to_hex()


def event(index, module, name, attributes):
    return {
        "phase": {"ApplyExtrinsic": index},
        "event": {module: {name: attributes}},
        "topics": [],
    }


def dispatch_info():
    return {"weight": {"ref_time": 1_000_000, "proof_size": 0}, "class": "Normal", "pays_fee": "Yes"}


def module_error(metadata, pallet_name, error_name):
    for pallet in metadata.pallets:
        if pallet.name == pallet_name:
            for i, err in enumerate(pallet.errors):
                if err.name == error_name:
                    return pallet.value["index"], i
    raise SystemExit(f"{pallet_name}.{error_name} not in metadata")


def build(net, material):
    meta_hex = material["metadata"]
    rc, metadata = runtime(meta_hex)
    names = {s.name for p in metadata.pallets if p.name == "SubtensorModule" for s in p.storage}
    storage = {}

    def put(pallet, name, params, value):
        k, v = storage_item(rc, metadata, pallet, name, params, value)
        storage[k] = v

    put("SubtensorModule", "SubnetworkN", [NETUID], len(NEURONS))
    put("SubtensorModule", "Burn", [NETUID], BURN)
    put("SubtensorModule", "ValidatorPermit", [NETUID], [n[3] for n in NEURONS])
    put("SubtensorModule", "Active", [NETUID], [n[4] for n in NEURONS])
    put("SubtensorModule", "LastUpdate", [NETUID], [n[5] for n in NEURONS])
    # A second subnet, so that a client reading netuid 72 must key by netuid.
    put("SubtensorModule", "SubnetworkN", [NETUID + 1], 1)
    put("SubtensorModule", "Keys", [NETUID + 1, 0], ALICE)
    put("SubtensorModule", "Uids", [NETUID + 1, ALICE], 0)
    stake_entry = "TotalHotkeyAlpha" if "TotalHotkeyAlpha" in names else "TotalHotkeyStake"
    for uid, hotkey, coldkey, _, _, _, stake, axon in NEURONS:
        put("SubtensorModule", "Keys", [NETUID, uid], hotkey)
        put("SubtensorModule", "Uids", [NETUID, hotkey], uid)
        put("SubtensorModule", "Owner", [hotkey], coldkey)
        if stake_entry == "TotalHotkeyAlpha":
            put("SubtensorModule", stake_entry, [hotkey, NETUID], stake)
        else:
            put("SubtensorModule", stake_entry, [hotkey], stake)
        if axon:
            ip, port, ip_type = axon
            put(
                "SubtensorModule",
                "Axons",
                [NETUID, hotkey],
                {
                    "block": AXON_BLOCK,
                    "version": AXON_VERSION,
                    "ip": ip_int(ip),
                    "port": port,
                    "ip_type": ip_type,
                    "protocol": 4,
                    "placeholder1": 0,
                    "placeholder2": 0,
                },
            )
    put(
        "System",
        "Account",
        [COLDKEY],
        {
            "nonce": 7,
            "consumers": 0,
            "providers": 1,
            "sufficients": 0,
            "data": {"free": COLDKEY_FREE, "reserved": 0, "frozen": 0, "flags": 0},
        },
    )

    serve = {
        "netuid": NETUID,
        "version": AXON_VERSION,
        "ip": ip_int("203.0.113.9"),
        "port": 8091,
        "ip_type": 4,
        "protocol": 4,
        "placeholder1": 0,
        "placeholder2": 0,
    }
    calls = {
        "serve_axon": {
            "args": serve,
            "hex": call_hex(rc, metadata, "SubtensorModule", "serve_axon", serve),
        },
        "burned_register": {
            "args": {"netuid": NETUID, "hotkey": NEW_HOTKEY},
            "hex": call_hex(
                rc, metadata, "SubtensorModule", "burned_register",
                {"netuid": NETUID, "hotkey": "0x" + ss58_decode(NEW_HOTKEY)},
            ),
        },
    }
    # What a successful burned_register changes: the new hotkey's uid.
    effects = {"burned_register": dict([
        storage_item(rc, metadata, "SubtensorModule", "Uids", [NETUID, NEW_HOTKEY], len(NEURONS)),
        storage_item(rc, metadata, "SubtensorModule", "Keys", [NETUID, len(NEURONS)], NEW_HOTKEY),
    ])}
    fee = {"who": "0x" + ss58_decode(COLDKEY), "actual_fee": 125_000, "tip": 0}
    has_fee_event = any(
        e.name == "TransactionFeePaid"
        for p in metadata.pallets if p.name == "TransactionPayment"
        for e in (p.events or [])
    )
    success = [event(1, "System", "ExtrinsicSuccess", {"dispatch_info": dispatch_info()})]
    if has_fee_event:
        success.insert(0, event(1, "TransactionPayment", "TransactionFeePaid", fee))
    pallet_index, error_index = module_error(metadata, "SubtensorModule", "HotKeyAlreadyRegisteredInSubNet")
    failed = [
        event(
            1,
            "System",
            "ExtrinsicFailed",
            {
                "dispatch_error": {"Module": {"index": pallet_index, "error": f"0x{error_index:02x}000000"}},
                "dispatch_info": dispatch_info(),
            },
        )
    ]
    events_key, success_hex = events_hex(rc, metadata, success)
    _, failed_hex = events_hex(rc, metadata, failed)
    timestamp = rc.create_scale_object("Extrinsic", metadata=metadata).encode(
        {"call_module": "Timestamp", "call_function": "set", "call_args": {"now": 1_732_000_000_000}}
    ).to_hex()

    neurons = []
    for uid, hotkey, coldkey, permit, active, last, stake, axon in NEURONS:
        neurons.append(
            {
                "uid": uid,
                "hotkey": hotkey,
                "coldkey": coldkey,
                "validator_permit": permit,
                "active": active,
                "last_update": last,
                "stake_rao": stake,
                "axon": None if axon is None else {"ip": axon[0], "port": axon[1], "ip_type": axon[2],
                                                    "version": AXON_VERSION, "protocol": 4, "block": AXON_BLOCK},
            }
        )
    extensions = [s["identifier"] for s in metadata.value[1]["V14"]["extrinsic"]["signed_extensions"]]
    return {
        "package": PACKAGE,
        "network": net,
        "spec_name": material["specName"],
        "spec_version": int(material["specVersion"]),
        "tx_version": int(material["txVersion"]),
        "genesis_hash": material["genesisHash"],
        "block": {"number": int(material["at"]["height"]), "hash": material["at"]["hash"]},
        "signed_extensions": extensions,
        "netuid": NETUID,
        "stake_entry": stake_entry,
        "storage": storage,
        "metagraph": neurons,
        "burn_rao": BURN,
        "coldkey": COLDKEY,
        "coldkey_free_rao": COLDKEY_FREE,
        "unregistered_hotkey": NEW_HOTKEY,
        "seeds": {KEYS[name]: f"{b:02x}" * 32 for name, b in SEEDS.items()},
        "calls": calls,
        "effects": effects,
        "events_key": events_key,
        "events": {"success": success_hex, "failed": failed_hex,
                   "failed_error": "HotKeyAlreadyRegisteredInSubNet"},
        "timestamp_extrinsic": timestamp,
    }, bytes.fromhex(meta_hex[2:])


def read_material(js_text):
    def field(name):
        return re.search(name + r": '([^']*)'", js_text).group(1)

    return {
        "metadata": field("metadata"),
        "genesisHash": field("genesisHash"),
        "specName": field("specName"),
        "specVersion": field("specVersion"),
        "txVersion": field("txVersion"),
        "at": {"hash": field("hash"), "height": field("height")},
    }


def generate():
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            for net in ("mainnet", "testnet"):
                js = tar.extractfile(f"package/dist/src/resources/{net}.js").read().decode()
                fixture, meta = build(net, read_material(js))
                (OUT / f"{net}.scale").write_bytes(meta)
                (OUT / f"{net}.json").write_text(json.dumps(fixture, indent=1) + "\n")
                print(f"{net}: spec {fixture['spec_version']}, {len(meta)} bytes of metadata, "
                      f"{len(fixture['storage'])} storage entries")


def decode(net, extrinsic_hex):
    meta = (OUT / f"{net}.scale").read_bytes()
    rc, metadata = runtime("0x" + meta.hex())
    ext = rc.create_scale_object("Extrinsic", data=ScaleBytes(extrinsic_hex), metadata=metadata)
    ext.decode()
    value = ext.value
    call = rc.create_scale_object("Call", metadata=metadata)
    call_hex_value = call.encode(
        {"call_module": value["call"]["call_module"], "call_function": value["call"]["call_function"],
         "call_args": {a["name"]: a["value"] for a in value["call"]["call_args"]}}
    ).to_hex()
    print(json.dumps({
        "address": value.get("address"),
        "signature": value.get("signature"),
        "era": value.get("era"),
        "nonce": value.get("nonce"),
        "tip": value.get("tip"),
        "mode": value.get("mode"),
        "call_module": value["call"]["call_module"],
        "call_function": value["call"]["call_function"],
        "call_args": {a["name"]: a["value"] for a in value["call"]["call_args"]},
        "call_hex": call_hex_value,
    }, default=str))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "generate":
        generate()
    elif len(sys.argv) == 4 and sys.argv[1] == "decode":
        decode(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
