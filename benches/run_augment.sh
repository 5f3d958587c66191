#!/usr/bin/env bash
# Augmentation throughput: sv-augment's `heavy` preset against albumentations doing the
# same pipeline on the same images, both on 2 threads/processes, best of `rounds` passes,
# repeated `repeats` times interleaved. Needs the reference venv (albumentations 2.0.8).
# Usage: benches/run_augment.sh [images] [width] [height] [repeats]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/tools/.venv/bin/python"
count="${1:-96}"
width="${2:-1280}"
height="${3:-720}"
repeats="${4:-3}"
dir="${BENCH_IMAGES:-$root/target/augment_bench_images}"
# The test photos, scaled to the camera size and flipped/cropped into distinct frames.
"$py" - "$root" "$dir" "$count" "$width" "$height" <<'PY'
import sys
from pathlib import Path
from PIL import Image, ImageOps
root, out, count, w, h = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])
out.mkdir(parents=True, exist_ok=True)
for old in out.glob("*.png"):
    old.unlink()
photos = [Image.open(root / "tests/fixtures/images" / n).convert("RGB")
          for n in ("chelsea.png", "rocket.jpg", "camera_grey.png")]
for i in range(count):
    img = photos[i % 3].resize((w + 8 * (i % 7), h + 6 * (i % 5)), Image.BICUBIC)
    img = img.crop((4 * (i % 3), 3 * (i % 4), 4 * (i % 3) + w, 3 * (i % 4) + h))
    if i % 2:
        img = ImageOps.mirror(img)
    img.save(out / f"{i:04d}.png")
PY
cargo build --release -q -p sv-benches --bin augment_bench --manifest-path "$root/Cargo.toml"
bench="${CARGO_TARGET_DIR:-$root/target}/release/augment_bench"
for _ in $(seq "$repeats"); do
  "$bench" --images "$dir" --pipeline heavy --threads 2
  "$py" "$root/benches/albumentations_augment.py" --images "$dir" --workers 2
done
