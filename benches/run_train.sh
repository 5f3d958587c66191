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
"$py" "$root/benches/compare_table.py" "$out"
