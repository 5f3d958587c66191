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
from pathlib import Path


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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import torch
    from PIL import Image
    from sdk_axon import ImageSynapse, serve_forever
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    torch.set_num_threads(args.threads)

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

    serve_forever(forward, args.port)


if __name__ == "__main__":
    main()
