#!/usr/bin/env bash
# The main job: build the demo workspace from real data (+ labelled synthetic layers), its
# reports, then serve the web app on 127.0.0.1 and print its URL.
set -euo pipefail
cd "$(dirname "$0")/.."
WS="${1:-demo/yizhangtu-demo.gpkg}"
OUT="$(dirname "$WS")"
export YIZHANGTU_SHARED_DIR="${YIZHANGTU_SHARED_DIR:-$(cd .. && pwd)/shared}"
uv run --frozen yizhangtu demo "$OUT" --into "$WS"
uv run --frozen yizhangtu --workspace "$WS" layers
if uv run --frozen yizhangtu serve --help >/dev/null 2>&1; then
  exec uv run --frozen yizhangtu --workspace "$WS" serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
fi
