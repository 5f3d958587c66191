#!/usr/bin/env python3
"""The reference miner for benches/run_load.sh: the Bittensor SDK's own axon (bittensor
9.12.2, FastAPI + uvicorn, signature and nonce checks) with a transformers model answering
the subnet's ImageSynapse one request at a time, as the subnet's base miner does: decode
the base64 image with PIL, the model's HF image processor, forward, softmax.

    python benches/torch_axon_miner.py --port 8092 --model DIR [--model DIR2 --weights 0.6,0.4]

Needs bittensor (tools/requirements-axon.txt) and torch + transformers; `--torch-site`
adds a site-packages with the latter after the venv's own. Prints "ready <hotkey>" when
it serves. Torch uses the CPU's cores (2 threads on the bench machine).
"""

import argparse
import base64
import io
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--torch-site", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.torch_site:
        sys.path.append(args.torch_site)
    import bittensor
    import pydantic
    import torch
    from bittensor.utils import networking
    from bittensor_wallet import Keypair
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    networking.get_external_ip = lambda: "127.0.0.1"
    torch.set_num_threads(args.threads)

    class ImageSynapse(bittensor.Synapse):
        testnet_label: int = -1
        image: str = pydantic.Field(title="Image", description="base64", default="", frozen=False)
        prediction: float = pydantic.Field(title="Prediction", description="p", default=-1.0,
                                           frozen=False)

    members = []
    for d in args.model:
        model = AutoModelForImageClassification.from_pretrained(d).eval()
        processor = AutoImageProcessor.from_pretrained(d)
        members.append((model, processor))
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(members)

    def predict(img):
        total = 0.0
        with torch.inference_mode():
            for (model, processor), w in zip(members, weights):
                pixels = processor(images=img, return_tensors="pt")["pixel_values"]
                p = torch.softmax(model(pixel_values=pixels).logits, -1)[0, 1].item()
                total += w * p
        return total / sum(weights)

    async def forward(synapse: ImageSynapse) -> ImageSynapse:
        img = Image.open(io.BytesIO(base64.b64decode(synapse.image))).convert("RGB")
        synapse.prediction = predict(img)
        return synapse

    miner = Keypair.create_from_seed("0x" + "22" * 32)
    wallet = bittensor.Wallet(name="bench", path=tempfile.mkdtemp(prefix="sv-bench-"))
    wallet.set_hotkey(miner, encrypt=False, overwrite=True)
    wallet.set_coldkeypub(miner, overwrite=True)
    axon = bittensor.Axon(wallet=wallet, port=args.port, ip="127.0.0.1",
                          external_ip="127.0.0.1")
    axon.attach(forward_fn=forward)
    axon.start()
    print("ready", miner.ss58_address, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
