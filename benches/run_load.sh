#!/usr/bin/env bash
# Load on a miner over loopback (benches/load_bench.rs): signed ImageSynapse requests at
# fixed rates from 48 dendrites, against `sv-miner serve` and against the reference miner
# (the Bittensor SDK's axon with the same weights in transformers, one request at a time
# as the subnet's base miner; benches/torch_axon_miner.py), for DINOv2-S/14 and the
# DINOv2-S + ConvNeXt-V2-tiny ensemble (random weights, 224 px), one after the other on
# the same machine. Needs tools/.venv-test (bash tools/test.sh makes it) and the reference
# venv tools/.venv (torch, transformers; bash tools/gen_fixtures.sh makes it).
# Usage: benches/run_load.sh [seconds per rate]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-15}"
cargo build --release -q -p sv-benches -p sv-miner --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/load_bench" prepare "$work" >/dev/null
out="${BENCH_OUT:-$root/target/load_bench.jsonl}"
: > "$out"
torch_site="$(ls -d "$root"/tools/.venv/lib/python3*/site-packages)"
declare -A rates=([vit-s]="2,4,6,8,10,12,14,16" [ensemble]="1,2,3,4,5,6,7,8")
for model in vit-s ensemble; do
  # Ours.
  cat > "$work/miner.toml" <<TOML
host = "127.0.0.1"
axon_port = 8191
metrics_port = 9191
model = "$work/$model"
allowlist = "$work/validators.txt"
wallet_path = "$root/tests/fixtures/axon/wallets"
wallet_name = "fixture"
wallet_hotkey = "phrase"
log_dir = "$work/log"
TOML
  "$bin/sv-miner" serve --config "$work/miner.toml" 2> "$work/miner.err" &
  pid=$!
  until grep -q "sv-miner: serving" "$work/miner.err"; do sleep 0.2; done
  hotkey="$(sed -n 's/.* as \([^ ]*\) on .*/\1/p' "$work/miner.err")"
  "$bin/load_bench" drive --port 8191 --miner-hotkey "$hotkey" --image "$work/challenge.jpg" \
    --rates "${rates[$model]}" --seconds "$seconds" --label "sv-miner/$model" | tee -a "$out"
  kill -TERM $pid; wait $pid || true
  # The reference.
  if [ "$model" = ensemble ]; then
    models=(--model "$work/vit-s" --model "$work/convnext-t" --weights 0.6,0.4)
  else
    models=(--model "$work/vit-s")
  fi
  "$root/tools/.venv-test/bin/python" "$root/benches/torch_axon_miner.py" --port 8192 \
    "${models[@]}" --torch-site "$torch_site" > "$work/ref.out" 2> "$work/ref.err" &
  pid=$!
  until grep -q "^ready" "$work/ref.out"; do sleep 0.5; done
  hotkey="$(awk '/^ready/ {print $2}' "$work/ref.out")"
  "$bin/load_bench" drive --port 8192 --miner-hotkey "$hotkey" --image "$work/challenge.jpg" \
    --rates "${rates[$model]}" --seconds "$seconds" --label "torch-axon/$model" | tee -a "$out"
  kill -TERM $pid; wait $pid 2>/dev/null || true
done
"$root/tools/.venv-test/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| miner | rate/s | answered/s | failed | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
ms = lambda v: "-" if v is None else f"{v:.0f}"  # no answer at that rate
for r in rows:
    print(f"| {r['miner']} | {r['rate']:g} | {r['throughput']:.1f} | {r['failed']} | "
          f"{ms(r['p50_ms'])} | {ms(r['p99_ms'])} |")
PY
