"""How far PyTorch's own autocast moves the model zoo's answers: for every
transformers-layout model of tests/fixtures/zoo/, the roadwork probability under
torch.autocast (bfloat16 and float16, CPU) against the f32 answer, on every zoo image.
The largest drift per dtype is what tests/zoo_parity.rs's stated half-precision drift
is set against.

Run with the reference venv: tools/.venv/bin/python tools/zoo_half_drift.py
"""

import json
import os

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

ZOO = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "zoo")


def main():
    meta = json.load(open(os.path.join(ZOO, "expected.json")))
    worst = {}
    for m in meta["models"]:
        if m["layout"] != "hf":
            continue
        folder = os.path.join(ZOO, m["path"].split("/")[0])
        model = AutoModelForImageClassification.from_pretrained(folder).eval()
        processor = AutoImageProcessor.from_pretrained(folder)
        for name in meta["images"]:
            image = Image.open(os.path.join(ZOO, "images", name)).convert("RGB")
            pixels = processor(image, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                full = model(pixels).logits.softmax(-1)[0, m["roadwork"]].item()
                for label, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
                    with torch.autocast("cpu", dtype=dtype):
                        logits = model(pixels).logits
                    half = logits.float().softmax(-1)[0, m["roadwork"]].item()
                    key = (label, m["name"])
                    worst[key] = max(worst.get(key, 0.0), abs(half - full))
    for label in ("bf16", "f16"):
        rows = sorted(((v, k[1]) for k, v in worst.items() if k[0] == label), reverse=True)
        print(f"{label}: largest |Δp| {rows[0][0]:.2e} ({rows[0][1]}); next {rows[1][0]:.2e} ({rows[1][1]})")


if __name__ == "__main__":
    main()
