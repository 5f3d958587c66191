#!/usr/bin/env python3
"""Output statistics of the subnet validators' challenge augmentation, per level, for
tests/augment_validator.rs to compare sv-augment's `validator` preset against.

The subnet's code is not part of this repository. Point the script at its
`natix/utils/image_transforms.py` (natixnetwork/streetvision-subnet):

    git -C streetvision-subnet show HEAD:natix/utils/image_transforms.py > /tmp/image_transforms.py
    tools/.venv/bin/python tools/validator_stats.py /tmp/image_transforms.py

It runs each level's transforms as the validator does (`apply_augmentation_by_level`
with the level fixed), then `prepare_image_synapse`'s `ToPILImage` and PIL JPEG save
(quality 75), on the fixture photos, and writes
tests/fixtures/data/augment/validator_stats.json: per level and statistic, the mean over
draws and its standard error.
"""

import importlib.util
import io
import json
import random
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ["chelsea.png", "rocket.jpg", "camera_grey.png"]
DRAWS = 400


def load_transforms(path: str):
    # The module imports TARGET_IMAGE_SIZE from the validator's config; give it just that.
    for name in ("natix", "natix.validator"):
        sys.modules.setdefault(name, types.ModuleType(name))
    config = types.ModuleType("natix.validator.config")
    config.TARGET_IMAGE_SIZE = (224, 224)
    sys.modules["natix.validator.config"] = config
    spec = importlib.util.spec_from_file_location("image_transforms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stats(img: Image.Image) -> dict:
    """The statistics both sides compute (tests/augment_validator.rs has the same)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    gradient = (np.abs(np.diff(y, axis=1)).mean() + np.abs(np.diff(y, axis=0)).mean()) / 2
    return {
        "luma_mean": y.mean(),
        "luma_std": y.std(),
        "chroma": (np.abs(cb) + np.abs(cr)).mean(),
        "black_fraction": (a.max(axis=-1) <= 16).mean(),
        "gradient": gradient,
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    t = load_transforms(sys.argv[1])
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    pictures = [Image.open(ROOT / "tests" / "fixtures" / "images" / n) for n in IMAGES]
    makers = [t.get_base_transforms, t.get_random_augmentations,
              t.get_random_augmentations_medium, t.get_random_augmentations_hard]
    out = {"images": IMAGES, "draws": DRAWS, "levels": []}
    for level, make in enumerate(makers):
        rows = []
        for d in range(DRAWS):
            tensor = make((224, 224))(pictures[d % len(pictures)])
            pil = transforms.ToPILImage()(tensor)
            buf = io.BytesIO()
            pil.save(buf, format="JPEG")
            sent = Image.open(io.BytesIO(buf.getvalue()))
            assert sent.size == (224, 224)
            rows.append(stats(sent))
        summary = {}
        for key in rows[0]:
            v = np.array([r[key] for r in rows])
            summary[key] = {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(len(v)))}
        out["levels"].append(summary)
        print(level, {k: round(s["mean"], 3) for k, s in summary.items()})
    path = ROOT / "tests" / "fixtures" / "data" / "augment" / "validator_stats.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
