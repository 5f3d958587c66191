#!/usr/bin/env python3
"""Load an `sv-trainer export` directory with transformers (the way the subnet's base
miner does: AutoImageProcessor + AutoModelForImageClassification) and compare its
roadwork probabilities with `sv-miner classify --json` on the same images.

    tools/.venv/bin/python tools/check_export.py EXPORT_DIR IMAGE...

Exits non-zero when any probability differs by more than 1e-4.
"""

import json
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    export, images = Path(sys.argv[1]), sys.argv[2:]
    processor = AutoImageProcessor.from_pretrained(export)
    model = AutoModelForImageClassification.from_pretrained(export).eval()
    roadwork = model.config.label2id["Roadwork"]
    with torch.no_grad():
        pixels = processor(images=[Image.open(p).convert("RGB") for p in images],
                           return_tensors="pt")["pixel_values"]
        theirs = torch.softmax(model(pixel_values=pixels).logits, -1)[:, roadwork].tolist()
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "sv-miner", "--", "classify", "--json", "--checkpoint",
         str(export / "model.safetensors"), *images],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ours = [json.loads(line)["roadwork_probability"] for line in out.splitlines() if line.strip()]
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    for path, a, b in zip(images, ours, theirs):
        print(f"{path}: sv-miner {a:.6f}  transformers {b:.6f}")
    print(f"largest difference {worst:.2e} over {len(images)} images")
    return 0 if worst <= 1e-4 and len(ours) == len(theirs) else 1


if __name__ == "__main__":
    sys.exit(main())
