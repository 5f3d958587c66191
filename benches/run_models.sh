#!/usr/bin/env bash
# DINOv2-S/14, DINOv2-B/14, ConvNeXt-V2-tiny and their ensemble (DINOv2-S + ConvNeXt-V2-tiny)
# at 224 px, batch 1 and 8: burn (Flex) and PyTorch in the same run, interleaved per
# configuration, each in a fresh process. Needs the reference venv (bash
# tools/gen_fixtures.sh creates it). Usage: benches/run_models.sh [iters] [rounds] [models...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/tools/.venv/bin/python"
iters="${1:-10}"
rounds="${2:-2}"
shift 2 2>/dev/null || shift $#
models="${*:-small base convnextv2-tiny ensemble}"
# BENCH_ARGS=--no-default-features measures burn without the AVX-512 GEMM kernels.
cargo build --release -q -p sv-benches ${BENCH_ARGS:-} --manifest-path "$root/Cargo.toml"
bench="${CARGO_TARGET_DIR:-$root/target}/release/model_bench"
out="${BENCH_OUT:-$root/target/model_bench.jsonl}"
: > "$out"
for round in $(seq "$rounds"); do
  for model in $models; do
    for batch in 1 8; do
      "$bench" --model "$model" --batch "$batch" --iters "$iters" | tee -a "$out"
      "$py" "$root/benches/torch_models.py" --model "$model" --batch "$batch" --iters "$iters" | tee -a "$out"
    done
  done
done
"$py" "$root/benches/compare_table.py" "$out"
