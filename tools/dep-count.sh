#!/usr/bin/env bash
# What a project depending on one of our library crates compiles: a throwaway package
# with a path dependency on each crate named (default: all of crates/), its resolved tree
# (normal and build edges, default features, this workspace's Cargo.lock), counted as
# unique crates less the throwaway one, and which of them are training-only or data-only
# crates that an inference crate must not carry.
#   bash tools/dep-count.sh [crate ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  for d in "$root"/crates/*/; do crates+=("$(basename "$d")"); done
fi
printf '%-16s %6s  %s\n' crate crates "training/data-only crates in the tree"
for c in "${crates[@]}"; do
  p="$scratch/$c"
  mkdir -p "$p/src"
  echo 'fn main() {}' > "$p/src/main.rs"
  printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = { path = "%s/crates/%s" }\n[workspace]\n' \
    "$c" "$root" "$c" > "$p/Cargo.toml"
  cp "$root/Cargo.lock" "$p/"
  tree="$(cd "$p" && cargo tree -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | grep -v '^probe v')"
  heavy="$(grep -oE '^(burn-autodiff|burn-dataset|parquet|arrow[a-z-]*|plotters[a-z-]*) ' <<<"$tree" | tr -d ' ' | sort -u | paste -sd, - || true)"
  printf '%-16s %6s  %s\n' "$c" "$(wc -l <<<"$tree")" "${heavy:--}"
done
