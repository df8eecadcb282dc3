#!/usr/bin/env bash
# Set up everything: system packages, uv, the Python environment (from uv.lock), the web bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet
# The web bundle is committed prebuilt; rebuild it from web/ when Node.js 20+ and npm are here.
if [ -f web/package.json ] && command -v npm >/dev/null 2>&1 && node -e 'process.exit(parseInt(process.versions.node, 10) >= 20 ? 0 : 1)'; then
  bash scripts/build-web.sh || echo "前端重新构建失败: 使用仓库中已构建的前端包" >&2
else
  echo "npm 不可用: 使用仓库中已构建的前端包 src/yizhangtu/web/static" >&2
fi
