"""Write tests/fixtures/resample/expected.json: PIL's `Image.resize` (BILINEAR and BICUBIC)
on a few hundred seeded random (width, height, target) triples, extreme aspect ratios
included, upscaling and downscaling on each axis, recorded as the SHA-256 of the output's
RGB bytes (and a few samples, to show a mismatch's size).

The source image is a formula both sides compute (`pixel` below), so no image is stored.
Run with the reference venv: tools/.venv/bin/python tools/gen_resample_fixtures.py
"""

import hashlib
import json
import os
import random

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "resample", "expected.json")


def source(w, h):
    """v = (hash(x, y, c) & 63) + 96·x // w + 96·y // h: texture on a gradient."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64),
                          np.arange(3, dtype=np.int64), indexing="ij")
    hsh = ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) >> 7
    v = (hsh & 63) + (x * 96) // w + (y * 96) // h
    return Image.fromarray(v.astype(np.uint8))


def main():
    rng = random.Random(1616)
    cases = []
    # Shapes a preprocessor meets: tall and wide photos to a shortest edge, and squares.
    fixed = [(301, 777, 256, 660), (777, 301, 660, 256), (450, 1000, 256, 568),
             (1000, 450, 568, 256), (1, 16384, 256, 4194304 // 1024), (16384, 1, 16, 16),
             (3, 4001, 224, 224), (4001, 3, 224, 224), (224, 224, 224, 224),
             (1, 1, 224, 224), (2, 999, 7, 3), (640, 480, 341, 256)]
    for (w, h, ow, oh) in fixed:
        cases.append((w, h, ow, oh))
    while len(cases) < 320:
        kind = rng.random()
        if kind < 0.3:  # extreme aspect ratios
            long, short = rng.randint(200, 3000), rng.randint(1, 40)
            w, h = (short, long) if rng.random() < 0.5 else (long, short)
        else:
            w, h = rng.randint(1, 900), rng.randint(1, 900)
        if rng.random() < 0.5:  # a shortest-edge target, as the processors compute it
            s = rng.choice([224, 256, 288, 384])
            short, long = min(w, h), max(w, h)
            nl = int(s * long / short)
            if nl > 6000:
                continue
            ow, oh = (s, nl) if w <= h else (nl, s)
        else:
            ow, oh = rng.randint(1, 600), rng.randint(1, 600)
        cases.append((w, h, ow, oh))
    out = []
    for (w, h, ow, oh) in cases:
        src = source(w, h)
        for name, f in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
            r = np.asarray(src.resize((ow, oh), f))
            out.append({"in": [w, h], "out": [ow, oh], "filter": name,
                        "sha256": hashlib.sha256(r.tobytes()).hexdigest(),
                        "first": r.reshape(-1)[:6].tolist(), "sum": int(r.sum(dtype=np.int64))})
    with open(OUT, "w") as f:
        json.dump({"pillow": PIL.__version__, "cases": out}, f, indent=0)
    print(len(out), "cases")


if __name__ == "__main__":
    main()
