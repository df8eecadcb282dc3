#!/usr/bin/env bash
# Install the Debian packages yizhangtu needs (as root; a no-op when they are present).
#   PostgreSQL + PostGIS (tests, multi-user workspaces), GDAL tools (ogrinfo/ogr2ogr checks),
#   CJK fonts (reports), poppler (PDF checks), Chromium (browser tests), Pango (WeasyPrint).
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
pg_major() { apt-cache show postgresql 2>/dev/null | sed -n 's/^Depends: .*postgresql-\([0-9][0-9]*\).*/\1/p' | head -n1; }
for p in postgresql gdal-bin fonts-noto-cjk poppler-utils chromium libpango-1.0-0 libpangoft2-1.0-0; do
  have "$p" || need+=("$p")
done
if ! ls /usr/lib/postgresql/*/lib/postgis-3.so >/dev/null 2>&1; then need+=("POSTGIS"); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "需要 root 安装系统包: ${need[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  ver="$(pg_major)"; ver="${ver:-15}"
  pkgs=()
  for p in "${need[@]}"; do
    if [ "$p" = POSTGIS ]; then pkgs+=("postgresql-$ver-postgis-3"); else pkgs+=("$p"); fi
  done
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # matplotlib caches the font list; refresh it so the CJK fonts are seen
  rm -rf "${HOME:-/root}/.cache/matplotlib"
fi
