#!/usr/bin/env bash
# System packages the `faiss` feature builds with (faiss is compiled from source by the
# faiss-sys crate): cmake, a C++ compiler and OpenBLAS. Debian/Ubuntu; run as root or
# with sudo available. Then: cargo build --release -p sv-curator --features faiss
set -euo pipefail
pkgs=(cmake g++ libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "already installed: ${pkgs[*]}"
  exit 0
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
