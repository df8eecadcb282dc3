#!/usr/bin/env bash
# Build the web UI (web/) into src/yizhangtu/web/static, which is committed so that the Python
# package serves the UI without Node. Deterministic: locked dependencies (npm ci), no hashes in
# file names, no source maps. Needs Node 20+ and npm 11 (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
echo "web bundle: $(du -sh ../src/yizhangtu/web/static | cut -f1) in src/yizhangtu/web/static"
