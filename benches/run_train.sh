#!/usr/bin/env bash
# Fine-tune step throughput on the CPU: DINOv2-S/14 and ConvNeXt-V2-tiny at 224 px,
# batch 8 and 32, burn (Flex) and PyTorch in the same run, interleaved per
# configuration, each in a fresh process. Needs the reference venv (bash
# tools/gen_fixtures.sh creates it).
# Usage: benches/run_train.sh [iters] [rounds] [batches] [models...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/tools/.venv/bin/python"
iters="${1:-3}"
rounds="${2:-1}"
batches="${3:-8 32}"
shift 3 2>/dev/null || shift $#
models="${*:-small convnextv2-tiny}"
cargo build --release -q -p sv-benches --bin train_bench --manifest-path "$root/Cargo.toml"
bench="${CARGO_TARGET_DIR:-$root/target}/release/train_bench"
out="${BENCH_OUT:-${CARGO_TARGET_DIR:-$root/target}/train_bench.jsonl}"
: > "$out"
for round in $(seq "$rounds"); do
  for model in $models; do
    for batch in $batches; do
      "$bench" --model "$model" --batch "$batch" --iters "$iters" | tee -a "$out"
      (cd "$root/benches" && "$py" torch_train.py --model "$model" --batch "$batch" --iters "$iters") | tee -a "$out"
    done
  done
done
"$py" - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
best = collections.defaultdict(dict)
for r in rows:
    key = (r["model"], r["batch"])
    kind = "burn" if r["impl"] == "burn-flex" else "torch"
    prev = best[key].get(kind)
    if prev is None or r["images_per_s"] > prev["images_per_s"]:
        best[key][kind] = r
print("| model | batch | burn img/s | PyTorch img/s | burn / PyTorch | burn peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
NAMES = {"small": "DINOv2-S/14", "base": "DINOv2-B/14", "convnextv2-tiny": "ConvNeXt-V2-T"}
for (model, batch), v in sorted(best.items()):
    b, t = v["burn"], v["torch"]
    print(f"| {NAMES.get(model, model)} | {batch} | {b['images_per_s']:.2f} | {t['images_per_s']:.2f} | "
          f"{b['images_per_s'] / t['images_per_s']:.2f}× | {b['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} |")
PY
