#!/usr/bin/env bash
# JPEG decoding to RGB, one thread: sv-image (libjpeg-turbo with PIL's settings) and the
# `image` crate against PIL's Image.open(...).convert("RGB") on the same files, in the
# same run. Needs the reference venv tools/.venv (bash tools/gen_fixtures.sh makes it).
# Usage: benches/run_decode.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The everyday profile (optimised, see Cargo.toml): the decoding is libjpeg-turbo's C.
cargo build -q -p sv-benches --bin decode_bench --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/decode_bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
py="$root/tools/.venv/bin/python"
"$py" - "$root" "$work" <<'PY'
import sys
from PIL import Image
root, work = sys.argv[1], sys.argv[2]
src = Image.open(f"{root}/tests/fixtures/images/chelsea.png").convert("RGB")
src.crop((60, 0, 360, 300)).resize((224, 224), Image.BICUBIC).save(f"{work}/challenge.jpg", quality=75)
src.resize((2016, 1344), Image.BICUBIC).save(f"{work}/photo.jpg", quality=90)
src.resize((2016, 1344), Image.BICUBIC).save(f"{work}/photo_prog.jpg", quality=90, progressive=True)
PY
echo "| file | PIL ms | sv-image ms | PIL / sv-image | image crate ms |"
echo "|---|---|---|---|---|"
for f in challenge:2000 photo:40 photo_prog:20; do
  name="${f%%:*}"; n="${f##*:}"
  ours="$("$bin" "$work/$name.jpg" "$n")"
  pil="$("$py" - "$work/$name.jpg" "$n" <<'PY'
import io, sys, time
from PIL import Image
data = open(sys.argv[1], "rb").read()
n = int(sys.argv[2])
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(n):
        Image.open(io.BytesIO(data)).convert("RGB")
    best = min(best, (time.perf_counter() - t) * 1e3 / n)
print(best)
PY
)"
  "$py" -c "
import json, sys
o = json.loads(sys.argv[1]); p = float(sys.argv[2])
print(f\"| $name.jpg | {p:.3f} | {o['sv_image_ms']:.3f} | {p / o['sv_image_ms']:.2f} | {o['image_crate_ms']:.3f} |\")
" "$ours" "$pil"
done
