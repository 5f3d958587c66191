#!/usr/bin/env bash
# The GPU code paths on a machine without a GPU: the wgpu backend over Mesa's lavapipe,
# a Vulkan driver that runs on the CPU. Slow (minutes per fine-tune step of a small
# model), but it runs the same kernels a GPU would.
#
#   tools/gpu-offline.sh [--no-build]     (--no-build: take train_bench as last built)
#
# 1. A Debian 13 root with lavapipe, made once with debootstrap into
#    $SV_LAVAPIPE_ROOT (default <target dir>/lavapipe-root, about 500 MB; needs root
#    and the debootstrap package). Debian 12's lavapipe (Mesa 22.3) crashes compiling
#    cubecl's kernels, and bookworm-backports' Mesa 25.0, built on LLVM 15, spends tens
#    of minutes in LLVM on one step; Debian 13's Mesa 25.0 on LLVM 19 runs them, but
#    needs glibc 2.38, so it runs in its own root.
# 2. Builds, with the `wgpu` feature (WGSL shaders; the `vulkan` feature's SPIR-V
#    crashes lavapipe in its shared-sum reduction kernel): the GPU test of the backend
#    extensions and whole networks (crates/sv-models/tests/gpu_ops.rs) and train_bench.
#    A cold build of the two takes about 40 minutes on 2 cores.
# 3. Runs in that root: the test, on `SV_TEST_GPU_DEVICE=wgpu`, then one DINOv2-S and
#    one ConvNeXt-V2-T fine-tune step (batch 2, 56 px) through train_bench.
#
# Not part of CI (the build alone would double it); run it after changing GPU code.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
sysroot="${SV_LAVAPIPE_ROOT:-$target/lavapipe-root}"
build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu-offline: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "gpu-offline: needs root (debootstrap and chroot)" >&2
  exit 2
fi

if [ ! -e "$sysroot/usr/share/vulkan/icd.d/lvp_icd.json" ]; then
  command -v debootstrap >/dev/null \
    || { echo "gpu-offline: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
  echo "making a Debian 13 root with lavapipe in $sysroot (once)" >&2
  rm -rf "$sysroot"
  debootstrap --variant=minbase --include=mesa-vulkan-drivers,libvulkan1 trixie "$sysroot" \
    http://deb.debian.org/debian >/dev/null
fi

cd "$root"
features=(--features sv-models/train,sv-models/wgpu)
if [ "$build" = 1 ]; then
  echo "building the GPU test and train_bench with wgpu" >&2
  cargo build -q -p sv-benches --features sv-benches/wgpu --bin train_bench
fi
# The test binary's path, from cargo's own report (built here unless --no-build found
# it built already).
test_bin="$(cargo test -q -p sv-models "${features[@]}" --test gpu_ops --no-run \
  --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gpu_ops" and m.get("executable"):
        print(m["executable"])')"
[ -x "$test_bin" ] || { echo "gpu-offline: the GPU test did not build" >&2; exit 1; }

# The binaries and the fixtures the test reads, at the same paths inside the root.
# (The test finds them from its crate's directory, which must exist there too.)
mkdir -p "$sysroot/sv" "$sysroot$root/tests/fixtures" "$sysroot$root/crates/sv-models"
cp "$test_bin" "$sysroot/sv/gpu_ops"
cp "$target/debug/train_bench" "$sysroot/sv/train_bench"
for f in dinov2/hf_mlp.safetensors dinov2/hf_mlp.config.json convnext/hf_cls.safetensors \
  convnext/hf_cls.config.json; do
  mkdir -p "$sysroot$root/tests/fixtures/$(dirname "$f")"
  cp "$root/tests/fixtures/$f" "$sysroot$root/tests/fixtures/$f"
done

in_root() {
  chroot "$sysroot" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp XDG_RUNTIME_DIR=/tmp \
    SV_GPU_CACHE=/sv/gpu-cache SV_TEST_GPU_DEVICE=wgpu "$@"
}
status=0
echo "== the GPU test on lavapipe" >&2
in_root /sv/gpu_ops --test-threads 1 --nocapture || status=1
for model in small convnextv2-tiny; do
  echo "== a $model fine-tune step on lavapipe" >&2
  in_root /sv/train_bench --model "$model" --device wgpu --batch 2 --size 56 --iters 1 --warmup 0 \
    || status=1
done
exit "$status"
