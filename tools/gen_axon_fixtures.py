#!/usr/bin/env python3
"""Signed requests made by the real Bittensor SDK (PyPI bittensor==9.12.2), for sv-axon's
verification tests. Offline: the SDK's external-IP lookup is replaced by loopback.

    python3 -m venv /tmp/btvenv && /tmp/btvenv/bin/pip install -r tools/requirements-axon.txt
    /tmp/btvenv/bin/python tools/gen_axon_fixtures.py

Writes tests/fixtures/axon/requests.json: for a validator keypair from a fixed seed, the
subnet's ImageSynapse as the SDK's Dendrite prepares it for a miner's axon (headers,
JSON body, the signed message and signature), the same message signed in `<Bytes>` form,
and the keypairs' SS58 addresses and public keys.
"""

import json
from pathlib import Path

import bittensor
from bittensor.utils import networking
from bittensor_wallet import Keypair

networking.get_external_ip = lambda: "127.0.0.1"

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "axon"


class ImageSynapse(bittensor.Synapse):
    """The subnet's synapse (natix/protocol.py): the image, the miner's answer."""

    image: str = ""
    prediction: float = -1.0
    testnet_label: int = -1


PASSWORD = "correct horse battery"
MNEMONIC = ("legal winner thank year wave sausage worth useful legal winner thank yellow")


def write_wallets() -> None:
    """Hotkey files as the SDK writes them (tests/fixtures/axon/wallets): one from a seed,
    one from a mnemonic, with their SS58 addresses and a signature to check."""
    root = OUT / "wallets"
    expected = {}
    for hotkey, pair in [("seeded", Keypair.create_from_seed("0x" + "11" * 32)),
                         ("phrase", Keypair.create_from_mnemonic(MNEMONIC))]:
        wallet = bittensor.Wallet(name="fixture", hotkey=hotkey, path=str(root))
        wallet.set_hotkey(pair, encrypt=False, overwrite=True)
        expected[hotkey] = {"ss58": pair.ss58_address, "public": pair.public_key.hex()}
    # The coldkey: the phrase key, encrypted ($NACL) with a known password.
    cold = Keypair.create_from_mnemonic(MNEMONIC)
    wallet = bittensor.Wallet(name="fixture", path=str(root))
    wallet.coldkey_file.set_keypair(cold, encrypt=True, overwrite=True, password=PASSWORD)
    wallet.set_coldkeypub(cold, overwrite=True)
    expected["coldkey"] = {"ss58": cold.ss58_address, "password": PASSWORD}
    (root / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> None:
    validator = Keypair.create_from_seed("0x" + "11" * 32)
    miner = Keypair.create_from_seed("0x" + "22" * 32)
    wallet = bittensor.Wallet(name="fixture", path="/tmp/sv-axon-fixture-wallets")
    wallet.set_hotkey(validator, encrypt=False, overwrite=True)
    wallet.set_coldkeypub(validator, overwrite=True)
    write_wallets()
    dendrite = bittensor.Dendrite(wallet=wallet)
    axon = bittensor.AxonInfo(version=0, ip="127.0.0.2", port=8091, ip_type=4,
                              hotkey=miner.ss58_address, coldkey=miner.ss58_address)
    synapse = ImageSynapse(image="aGVsbG8=")
    prepared = dendrite.preprocess_synapse_for_request(axon, synapse, timeout=9.0)
    headers = prepared.to_headers()
    body = prepared.model_dump()
    message = (f"{prepared.dendrite.nonce}.{prepared.dendrite.hotkey}.{prepared.axon.hotkey}."
               f"{prepared.dendrite.uuid}.{prepared.body_hash}")
    assert validator.verify(message, bytes.fromhex(prepared.dendrite.signature[2:]))
    wrapped = "0x" + validator.sign(f"<Bytes>{message}</Bytes>".encode()).hex()
    out = {
        "validator": {"ss58": validator.ss58_address, "public": validator.public_key.hex()},
        "miner": {"ss58": miner.ss58_address, "public": miner.public_key.hex()},
        "headers": headers,
        "body": body,
        "body_hash": prepared.body_hash,
        "message": message,
        "signature": prepared.dendrite.signature,
        "signature_bytes_wrapped": wrapped,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "requests.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print("wrote", OUT / "requests.json")


if __name__ == "__main__":
    main()
