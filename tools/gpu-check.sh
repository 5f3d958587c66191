#!/usr/bin/env bash
# The GPU check, in two halves so the GPU machine needs no Rust toolchain and no network.
#
#   tools/gpu-check.sh pack [DIR]      on the CPU host: release binaries (sv-miner,
#                                      train_bench, model_bench) built with the GPU
#                                      feature ($SV_GPU_FEATURE, default vulkan),
#                                      stripped and xz-compressed, and Debian's Vulkan
#                                      loader packages, into DIR (default
#                                      target/gpu-check in the repository, which the
#                                      GPU machine gets as a carried path).
#   tools/gpu-check.sh run [DIR]       on the GPU machine, from the repository root:
#                                      unpack, set up the Vulkan loader, run the checks
#                                      (each under a time limit, the whole under 8
#                                      minutes) and print a Markdown table.
#   tools/gpu-check.sh run --dry-run   the same steps on the CPU with tiny shapes, GPU
#                                      steps skipped: checks the script itself.
#
# The checks: CPU/GPU parity of classify on the fixture checkpoint; fine-tune steps of
# DINOv2-S/14 and ConvNeXt-V2-T at batch 64 (images/s, GPU utilisation from
# nvidia-smi); the first step's time on a cold and then a warm kernel cache
# (SV_GPU_CACHE); DINOv2-S batch-1 latency; the same work in the machine's PyTorch
# (CUDA, f32 and bf16 autocast; SV_PYTHON names its python, default python3) in the
# same run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-}"
shift || true

pack() {
  local dir="${1:-$root/target/gpu-check}"
  local feature="${SV_GPU_FEATURE-vulkan}"
  local target="${CARGO_TARGET_DIR:-$root/target}"
  local features=()
  [ -n "$feature" ] && features=(--features "sv-miner/$feature,sv-benches/$feature")
  echo "building release binaries ${feature:+with $feature}" >&2
  cargo build --release -q --manifest-path "$root/Cargo.toml" -p sv-miner -p sv-benches \
    --bin sv-miner --bin train_bench --bin model_bench "${features[@]}"
  rm -rf "$dir" && mkdir -p "$dir/deb"
  for b in sv-miner train_bench model_bench; do
    strip -o "$dir/$b" "$target/release/$b"
    xz -6 -T0 -f "$dir/$b"
  done
  if [ -n "$feature" ] && [ "$feature" != cuda ]; then
    # The Vulkan loader and GL vendor-neutral dispatch a bare NVIDIA machine lacks.
    (cd "$dir/deb" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 \
      libglx0 libgles2 >/dev/null)
  fi
  echo "$feature" > "$dir/feature"
  du -sh "$dir" >&2
  echo "$dir"
}

# Decompress the binaries with Python's lzma (xz may be missing on the GPU machine).
unpack() {
  local dir="$1" bin="$2"
  mkdir -p "$bin"
  for f in "$dir"/*.xz; do
    python3 - "$f" "$bin/$(basename "$f" .xz)" <<'PY'
import lzma, os, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
  done
}

# Make the packaged Vulkan loader and the driver's ICD visible.
vulkan_setup() {
  local dir="$1" work="$2"
  local debs=("$dir"/deb/*.deb)
  if [ -e "${debs[0]}" ]; then
    mkdir -p "$work/vk"
    for f in "${debs[@]}"; do dpkg -x "$f" "$work/vk"; done
    export LD_LIBRARY_PATH="$work/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if [ -z "${VK_DRIVER_FILES:-}" ]; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
      /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
      if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
    done
  fi
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none found}" >&2
}

# `gpu_util FILE CMD...`: run CMD while sampling GPU utilisation into FILE.
gpu_util() {
  local file="$1"; shift
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 250 > "$file" &
    local sampler=$!
    "$@" || true
    kill "$sampler" 2>/dev/null || true
  else
    : > "$file"
    "$@" || true
  fi
}

run() {
  local dry=0 dir=""
  for a in "$@"; do
    case "$a" in
      --dry-run) dry=1 ;;
      *) dir="$a" ;;
    esac
  done
  dir="${dir:-$root/target/gpu-check}"
  local started; started=$(date +%s)
  # Every step's time limit is cut to what is left of 7.5 minutes.
  local deadline=$(( started + 450 ))
  budget() {
    local rest=$(( deadline - $(date +%s) ))
    if (( rest < 5 )); then rest=5; fi
    if (( rest < $1 )); then echo "$rest"; else echo "$1"; fi
  }
  local work; work="$(mktemp -d)"
  local out="${OUT:-$work/out}"
  mkdir -p "$out"
  local bin="$work/bin"
  local feature; feature="$(cat "$dir/feature" 2>/dev/null || echo vulkan)"
  local device="${SV_GPU_DEVICE:-${feature:-vulkan}}"
  if [ -d "$dir" ] && ls "$dir"/*.xz >/dev/null 2>&1; then
    unpack "$dir" "$bin"
  else
    echo "no packed binaries in $dir (tools/gpu-check.sh pack)" >&2
    exit 2
  fi
  # Shapes: the real ones on a GPU, tiny ones for a dry run on the CPU.
  local batch=64 size=224 iters=5 lat_iters=50 limit=150 scenes=512
  if [ "$dry" = 1 ]; then
    device=cpu batch=2 size=64 iters=1 lat_iters=2 limit=120 scenes=8
    echo "dry run: device cpu, batch $batch, ${size} px; GPU steps skipped" >&2
  else
    vulkan_setup "$dir" "$work"
  fi
  export SV_GPU_CACHE="$work/gpu-cache"
  local rows="$out/rows.jsonl"
  : > "$rows"
  note() { printf '%s\n' "$1" >> "$out/notes.txt"; echo "$1" >&2; }

  # 1. Parity: classify on the fixture checkpoint, CPU against the device.
  local ckpt="$root/tests/fixtures/dinov2/hf_mlp.safetensors"
  local images=("$root"/tests/fixtures/images/*)
  timeout "$(budget 120)" "$bin/sv-miner" classify --model "$ckpt" --json "${images[@]}" > "$out/parity-cpu.jsonl"
  if timeout "$(budget 120)" "$bin/sv-miner" classify --model "$ckpt" --device "$device" --json "${images[@]}" \
      > "$out/parity-dev.jsonl" 2> "$out/parity-dev.err"; then
    python3 - "$out/parity-cpu.jsonl" "$out/parity-dev.jsonl" >> "$rows" <<'PY'
import json, sys
a = [json.loads(l)["roadwork_probability"] for l in open(sys.argv[1])]
b = [json.loads(l)["roadwork_probability"] for l in open(sys.argv[2])]
print(json.dumps({"check": "parity", "images": len(a), "max_abs_diff": max(abs(x - y) for x, y in zip(a, b))}))
PY
  else
    note "parity: the device failed: $(tail -1 "$out/parity-dev.err")"
  fi

  # 2. Fine-tune steps, twice on the same kernel cache (cold, then warm), with the GPU's
  #    utilisation sampled; their batches come from synthetic scenes through the
  #    training augmentation, prefetched on CPU threads, so a GPU that waits for data
  #    shows in the utilisation. Then ConvNeXt-V2-T.
  for pass in cold warm; do
    gpu_util "$out/util-small-$pass.txt" timeout "$(budget "$limit")" "$bin/train_bench" --model small \
      --device "$device" --batch "$batch" --size "$size" --iters "$iters" --data "$scenes" \
      > "$out/train-small-$pass.json" 2> "$out/train-small-$pass.err"
    [ -s "$out/train-small-$pass.json" ] \
      || note "DINOv2-S fine-tune ($pass cache): no result within the limit $(tail -1 "$out/train-small-$pass.err")"
    python3 - "$out/train-small-$pass.json" "$out/util-small-$pass.txt" "$pass" >> "$rows" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
u = [float(x) for x in open(sys.argv[2]).read().split() if x.strip().replace(".", "").isdigit()]
r.update(check="train", cache=sys.argv[3], gpu_util=(sum(u) / len(u) if u else None))
print(json.dumps(r))
PY
  done
  gpu_util "$out/util-convnext.txt" timeout "$(budget "$limit")" "$bin/train_bench" --model convnextv2-tiny \
    --device "$device" --batch "$batch" --size "$size" --iters "$iters" \
    > "$out/train-convnext.json" 2> "$out/train-convnext.err"
  [ -s "$out/train-convnext.json" ] \
    || note "ConvNeXt-V2-T fine-tune: no result within the limit $(tail -1 "$out/train-convnext.err")"
  python3 - "$out/train-convnext.json" "$out/util-convnext.txt" >> "$rows" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
u = [float(x) for x in open(sys.argv[2]).read().split() if x.strip().replace(".", "").isdigit()]
r.update(check="train", cache="cold", gpu_util=(sum(u) / len(u) if u else None))
print(json.dumps(r))
PY
  #    Then both in bf16 (the weights cast each step, as `finetune --precision bf16`);
  #    in f16 where the device refuses bf16 (WGSL has no bf16, and Vulkan devices often
  #    store it without arithmetic for it).
  for model in small convnextv2-tiny; do
    local half
    for half in bf16 f16; do
      gpu_util "$out/util-$model-$half.txt" timeout "$(budget 90)" "$bin/train_bench" --model "$model" \
        --device "$device" --batch "$batch" --size "$size" --iters "$iters" --precision "$half" \
        > "$out/train-$model-$half.json" 2> "$out/train-$model-$half.err"
      grep -q "cannot compute in bf16" "$out/train-$model-$half.err" || break
      note "$model: $(tail -1 "$out/train-$model-$half.err"); f16 instead"
    done
    [ -s "$out/train-$model-$half.json" ] \
      || note "$model $half fine-tune: no result within the limit $(tail -1 "$out/train-$model-$half.err")"
    python3 - "$out/train-$model-$half.json" "$out/util-$model-$half.txt" >> "$rows" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
u = [float(x) for x in open(sys.argv[2]).read().split() if x.strip().replace(".", "").isdigit()]
r.update(check="train", cache="cold", gpu_util=(sum(u) / len(u) if u else None))
print(json.dumps(r))
PY
  done

  # 3. Batch-1 latency.
  timeout "$(budget 120)" "$bin/model_bench" --model small --device "$device" --batch 1 --size "$size" \
    --iters "$lat_iters" > "$out/latency.json" 2> "$out/latency.err" \
    && python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["check"]="latency"; print(json.dumps(r))' \
      "$out/latency.json" >> "$rows" || note "latency: failed: $(tail -1 "$out/latency.err")"

  # 4. PyTorch on the same machine, the same shapes (CUDA when it has it).
  local torch_device=cuda
  [ "$dry" = 1 ] && torch_device=cpu
  local py="${SV_PYTHON:-python3}"
  # A relative path is taken from here, not from benches/ where the scripts run.
  if [[ "$py" == */* && "$py" != /* ]]; then py="$PWD/$py"; fi
  if "$py" -c 'import torch, transformers' 2>/dev/null; then
    for model in small convnextv2-tiny; do
      for dtype in f32 bf16; do
        [ "$dry" = 1 ] && [ "$dtype" = bf16 ] && continue
        (cd "$root/benches" && timeout "$(budget "$limit")" "$py" torch_train.py --model "$model" \
          --device "$torch_device" --dtype "$dtype" --batch "$batch" --size "$size" --iters "$iters") \
          2>> "$out/torch.err" | python3 -c 'import json,sys; [print(json.dumps(dict(json.loads(l), check="train"))) for l in sys.stdin]' >> "$rows" || true
      done
    done
    for dtype in f32 bf16; do
      [ "$dry" = 1 ] && [ "$dtype" = bf16 ] && continue
      (cd "$root/benches" && timeout "$(budget 120)" "$py" torch_models.py --model small --device "$torch_device" \
        --dtype "$dtype" --batch 1 --size "$size" --iters "$lat_iters") 2>> "$out/torch.err" \
        | python3 -c 'import json,sys; [print(json.dumps(dict(json.loads(l), check="latency"))) for l in sys.stdin]' >> "$rows" || true
    done
    grep -q '"pytorch' "$rows" || note "PyTorch: no rows: $(tail -1 "$out/torch.err" 2>/dev/null)"
  else
    note "PyTorch: $py has no torch and transformers (SV_PYTHON names another); its rows are missing"
  fi

  # 5. The table.
  python3 - "$rows" "$device" "$(( $(date +%s) - started ))" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
device, took = sys.argv[2], sys.argv[3]
names = {"small": "DINOv2-S/14", "convnextv2-tiny": "ConvNeXt-V2-T"}
print(f"| check | model | implementation | precision | batch | figure | first step s | GPU util % |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["check"] == "parity":
        print(f"| parity CPU vs {device} | DINOv2 fixture | sv-miner classify | f32 | {r['images']} images | max abs diff {r['max_abs_diff']:.2e} | | |")
        continue
    impl = r.get("impl", "?") + (f" ({r['cache']} cache)" if r.get("cache") and r["impl"].startswith("burn") else "")
    prec = r.get("dtype", "f32")
    first = f"{r['first_step_s']:.1f}" if r.get("first_step_s") is not None else ""
    util = f"{r['gpu_util']:.0f}" if r.get("gpu_util") is not None else ""
    if r["check"] == "train":
        fig = f"{r['images_per_s']:.1f} img/s"
    else:
        fig = f"{r['median_s'] * 1000:.1f} ms p50"
    what = "fine-tune step" if r["check"] == "train" else "inference"
    print(f"| {what} | {names.get(r['model'], r['model'])} | {impl} | {prec} | {r['batch']} | {fig} | {first} | {util} |")
print(f"\ntook {took} s")
PY
  [ -f "$out/notes.txt" ] && sed 's/^/- /' "$out/notes.txt"
  return 0
}

case "$mode" in
  pack) pack "$@" ;;
  run) run "$@" ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
