#!/usr/bin/env bash
# Start or stop a private PostgreSQL + PostGIS cluster on 127.0.0.1 for tests and benchmarks.
#   scripts/pg-cluster.sh start   -> prints the DSN on stdout
#   scripts/pg-cluster.sh stop
# Port and directory: YIZHANGTU_PG_PORT (default 54329), YIZHANGTU_PG_DIR (default /tmp/yizhangtu-pg-$PORT).
set -euo pipefail
PORT="${YIZHANGTU_PG_PORT:-54329}"
DIR="${YIZHANGTU_PG_DIR:-/tmp/yizhangtu-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[ -x "$BIN/initdb" ] || { echo "PostgreSQL server binaries not found; run scripts/setup-system.sh" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
DSN="postgresql://postgres@127.0.0.1:$PORT/yizhangtu_test"
case "${1:-start}" in
  start)
    if as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
      echo "$DSN"; exit 0
    fi
    if [ ! -f "$DIR/PG_VERSION" ]; then
      rm -rf "$DIR"; mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
      as_pg "$BIN/initdb" -D "$DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR.initdb.log" 2>&1 \
        || { cat "$DIR.initdb.log" >&2; exit 1; }
    fi
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null
    psql "postgresql://postgres@127.0.0.1:$PORT/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname='yizhangtu_test'" | grep -q 1 \
      || psql "postgresql://postgres@127.0.0.1:$PORT/postgres" -qc "CREATE DATABASE yizhangtu_test" >/dev/null
    psql "$DSN" -qc "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
    echo "$DSN"
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
