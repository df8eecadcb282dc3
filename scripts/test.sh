#!/usr/bin/env bash
# Run every test: a private PostGIS cluster on 127.0.0.1, the browser suite on Debian's
# chromium, all mandatory (a skipped mandatory suite fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
export YIZHANGTU_PG_PORT="${YIZHANGTU_PG_PORT:-54329}"
export YIZHANGTU_PG_DIR="${YIZHANGTU_PG_DIR:-/tmp/yizhangtu-pg-test-$YIZHANGTU_PG_PORT}"
DSN="$(bash scripts/pg-cluster.sh start)"
trap 'bash scripts/pg-cluster.sh stop' EXIT
export YIZHANGTU_TEST_PG_DSN="$DSN"
export YIZHANGTU_REQUIRE_SUITES="${YIZHANGTU_REQUIRE_SUITES:-postgis,browser}"
export MPLBACKEND=Agg
uv run --frozen python -m pytest -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
