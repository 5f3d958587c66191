#!/usr/bin/env bash
# Create the pinned reference venv (torch, transformers, timm from PyPI) and
# regenerate tests/fixtures/. Not part of CI: the fixtures are committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r "$here/requirements-reference.txt"
# Real photos come from scikit-image's data folder (public-domain images), read from its wheel.
cache="$here/.cache"
mkdir -p "$cache"
if ! ls "$cache"/scikit_image-0.26.0-*.whl >/dev/null 2>&1; then
  "$venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$cache" scikit-image==0.26.0
fi
export SKIMAGE_WHEEL="$(ls "$cache"/scikit_image-0.26.0-*.whl | head -1)"
exec "$venv/bin/python" "$here/gen_fixtures.py" "$@"
