#!/usr/bin/env bash
# Set up everything: system packages, uv, the Python environment (from uv.lock), the web bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet
if [ -f web/package.json ] && [ -x scripts/build-web.sh ]; then
  bash scripts/build-web.sh
fi
