#!/usr/bin/env bash
# The whole suite (tools/test.sh) several times in a row while busy loops keep the CPUs
# occupied: the check that no test depends on timing. Usage:
#   bash tools/test-under-load.sh [PASSES=3] [HOGS=number of CPUs]
# Each pass's output goes to target-under-load/pass-N.log; the script stops at the
# first failing pass.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
passes="${1:-3}"
hogs="${2:-$(nproc)}"
logs="$root/target-under-load"
mkdir -p "$logs"
pids=()
for _ in $(seq "$hogs"); do
  (while :; do :; done) &
  pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
echo "$hogs busy loops running beside the suite"
for pass in $(seq "$passes"); do
  start=$(date +%s)
  if bash "$root/tools/test.sh" > "$logs/pass-$pass.log" 2>&1; then
    summary=$(grep -c '^test result: ok' "$logs/pass-$pass.log" || true)
    echo "pass $pass: ok in $(( $(date +%s) - start )) s ($summary test binaries)"
  else
    echo "pass $pass: FAILED after $(( $(date +%s) - start )) s; see $logs/pass-$pass.log"
    exit 1
  fi
done
