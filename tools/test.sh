#!/usr/bin/env bash
# The whole test suite: a small venv with the Python reference clients the tests talk
# to (tools/requirements-test.txt: huggingface_hub and the Bittensor SDK), then
# `cargo test` over the workspace.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/tools/.venv-test"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements"
wanted="$(cat "$root/tools/requirements-test.txt" "$root/tools/requirements-axon.txt")"
if [ "$wanted" != "$(cat "$stamp" 2>/dev/null)" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tools/requirements-test.txt"
  printf '%s' "$wanted" > "$stamp"
fi
export SV_TEST_PYTHON="$venv/bin/python"
cd "$root"
exec cargo test --workspace --locked "$@"
