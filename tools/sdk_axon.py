#!/usr/bin/env python3
"""The Bittensor SDK's own axon (bittensor==9.12.2) serving the subnet's ImageSynapse with a
fixed answer, for testing our dendrite against the real verifier:

    python tools/sdk_axon.py --port 8093 [--answer 0.37]

The axon's hotkey comes from the seed 0x22…; it prints "ready <hotkey>" once it serves and
runs until killed. Its default verification applies (signature, nonce); no blacklist.
Offline: the SDK's external-IP lookup is replaced by loopback. Also a module: the subnet's
synapse classes (natix/protocol.py, field for field) and `serve_forever`, used by
tools/axon_interop.py and benches/torch_axon_miner.py.
"""

import argparse
import tempfile
import time

import bittensor
import pydantic
from bittensor.utils import networking
from bittensor_wallet import Keypair

networking.get_external_ip = lambda: "127.0.0.1"


class ImageSynapse(bittensor.Synapse):
    """The subnet's synapse: a base64 image in, P(roadwork) out."""

    testnet_label: int = -1
    image: str = pydantic.Field(title="Image", description="A base64 encoded image", default="",
                                frozen=False)
    prediction: float = pydantic.Field(title="Prediction", description="Probability",
                                       default=-1.0, frozen=False)

    def deserialize(self) -> float:
        return self.prediction


class ExtendedImageSynapse(ImageSynapse):
    """The synapse validators sent until December 2025."""

    model_url: str = ""
    explanation: str = pydantic.Field(title="Explanation", description="Visual indicators",
                                      default="", frozen=False)


def serve_forever(forward, port: int) -> None:
    """Serve `forward` on an SDK axon at 127.0.0.1:`port` with the 0x22… hotkey."""
    key = Keypair.create_from_seed("0x" + "22" * 32)
    wallet = bittensor.Wallet(name="axon", path=tempfile.mkdtemp(prefix="sv-sdk-axon-"))
    wallet.set_hotkey(key, encrypt=False, overwrite=True)
    wallet.set_coldkeypub(key, overwrite=True)
    axon = bittensor.Axon(wallet=wallet, port=port, ip="127.0.0.1", external_ip="127.0.0.1")
    axon.attach(forward_fn=forward)
    axon.start()
    print("ready", key.ss58_address, flush=True)
    while True:
        time.sleep(3600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--answer", type=float, default=0.37)
    args = ap.parse_args()

    async def forward(synapse: ImageSynapse) -> ImageSynapse:
        synapse.prediction = args.answer if synapse.image else -1.0
        return synapse

    serve_forever(forward, args.port)


if __name__ == "__main__":
    main()
