#!/usr/bin/env python3
"""Calls a running `sv-miner serve` through the real Bittensor SDK (PyPI bittensor==9.12.2,
tools/requirements-axon.txt) as a validator does, and reports what the SDK saw.

    python tools/axon_interop.py --port 8091 --miner-hotkey <SS58> --image chelsea.png \
        [--wallets DIR]

Keys (all from fixed seeds): 0x11… is the permitted validator, 0x44… is unknown to the
miner, 0x55… is registered without a validator permit. The synapses are defined as the
subnet defines them (natix/protocol.py). Cases: a good ImageSynapse and
ExtendedImageSynapse; a forged signature; a replayed nonce; a stale and a future first
nonce; an unknown hotkey; a hotkey without permit; an oversized body. Prints one JSON
object: {case: {"status": <SDK status code>, "message": ..., "prediction": ...}}.
Offline: the SDK's external-IP lookup is replaced by loopback.
"""

import argparse
import asyncio
import base64
import json
import tempfile
import time

import bittensor
from bittensor_wallet import Keypair

# The subnet's synapse classes; importing it also replaces the external-IP lookup.
from sdk_axon import ExtendedImageSynapse, ImageSynapse


def wallet_for(seed_byte: str, root: str) -> bittensor.Wallet:
    pair = Keypair.create_from_seed("0x" + seed_byte * 32)
    wallet = bittensor.Wallet(name=f"k{seed_byte}", path=root)
    wallet.set_hotkey(pair, encrypt=False, overwrite=True)
    wallet.set_coldkeypub(pair, overwrite=True)
    return wallet


def resign(dendrite, synapse, nonce):
    """Put `nonce` in the prepared request and sign it properly with the dendrite's key."""
    synapse.dendrite.nonce = nonce
    message = (f"{nonce}.{synapse.dendrite.hotkey}.{synapse.axon.hotkey}."
               f"{synapse.dendrite.uuid}.{synapse.body_hash}")
    synapse.dendrite.signature = f"0x{dendrite.keypair.sign(message).hex()}"


class Tampering(bittensor.Dendrite):
    """A dendrite that changes the prepared request before sending it."""

    def __init__(self, wallet, tamper):
        super().__init__(wallet=wallet)
        self.tamper = tamper

    def preprocess_synapse_for_request(self, target_axon_info, synapse, timeout=12.0):
        synapse = super().preprocess_synapse_for_request(target_axon_info, synapse, timeout)
        self.tamper(self, synapse)
        return synapse


async def call(dendrite, axon, synapse):
    answer = await dendrite.call(axon, synapse, timeout=9.0, deserialize=False)
    await dendrite.aclose_session()
    return {
        "status": answer.dendrite.status_code,
        "axon_status": answer.axon.status_code,
        "message": answer.dendrite.status_message,
        "prediction": answer.prediction,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--miner-hotkey", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--wallets", default=None)
    args = ap.parse_args()
    root = args.wallets or tempfile.mkdtemp(prefix="sv-interop-")
    validator, unknown, no_permit = (wallet_for(b, root) for b in ("11", "44", "55"))
    axon = bittensor.AxonInfo(version=0, ip=args.host, port=args.port, ip_type=4,
                              hotkey=args.miner_hotkey, coldkey=args.miner_hotkey)
    image = base64.b64encode(open(args.image, "rb").read()).decode()
    results = {}

    results["image_synapse"] = await call(bittensor.Dendrite(wallet=validator), axon,
                                          ImageSynapse(image=image))
    results["extended_image_synapse"] = await call(bittensor.Dendrite(wallet=validator), axon,
                                                   ExtendedImageSynapse(image=image))

    other = Keypair.create_from_seed("0x" + "66" * 32)

    def forge(d, s):
        message = (f"{s.dendrite.nonce}.{s.dendrite.hotkey}.{s.axon.hotkey}."
                   f"{s.dendrite.uuid}.{s.body_hash}")
        s.dendrite.signature = f"0x{other.sign(message).hex()}"

    results["forged_signature"] = await call(Tampering(validator, forge), axon,
                                             ImageSynapse(image=image))

    first = {}

    def replay(d, s):
        if not first:
            first.update(nonce=s.dendrite.nonce, signature=s.dendrite.signature)
        else:
            s.dendrite.nonce = first["nonce"]
            s.dendrite.signature = first["signature"]

    replayer = Tampering(validator, replay)
    results["replay_first"] = await call(replayer, axon, ImageSynapse(image=image))
    results["replayed_nonce"] = await call(replayer, axon, ImageSynapse(image=image))

    results["stale_nonce"] = await call(
        Tampering(validator, lambda d, s: resign(d, s, time.time_ns() - 120 * 10**9)), axon,
        ImageSynapse(image=image))
    results["future_nonce"] = await call(
        Tampering(validator, lambda d, s: resign(d, s, time.time_ns() + 60 * 10**9)), axon,
        ImageSynapse(image=image))
    results["unknown_hotkey"] = await call(bittensor.Dendrite(wallet=unknown), axon,
                                           ImageSynapse(image=image))
    results["no_validator_permit"] = await call(bittensor.Dendrite(wallet=no_permit), axon,
                                                ImageSynapse(image=image))
    results["oversized_body"] = await call(bittensor.Dendrite(wallet=validator), axon,
                                           ImageSynapse(image="A" * (6 << 20)))
    results["keys"] = {"validator": validator.hotkey.ss58_address,
                       "unknown": unknown.hotkey.ss58_address,
                       "no_permit": no_permit.hotkey.ss58_address}
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
