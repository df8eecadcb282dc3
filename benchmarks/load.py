"""Bounded loopback load test of the web API: throughput and latency percentiles.

Seeds a small workspace (real Chaoyang streets + synthetic survey, ``yizhangtu.web.testing``)
unless ``--workspace`` is given, starts ``yizhangtu serve`` in a separate process and sends a
fixed number of GET requests (count- and time-bounded) with fixed concurrency over a mix of
public, OGC API, tile and signed-in routes. Any non-2xx/304 answer counts as an error.

    uv run python benchmarks/load.py --requests 2000 --concurrency 8
    uv run python benchmarks/load.py --backend postgis --dsn postgresql://postgres@127.0.0.1:54329/yizhangtu_test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiles import Server  # the subprocess server of the tile benchmark

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [
    "/api/public/health",
    "/api/public/layers",
    "/ogc",
    "/ogc/collections",
    "/ogc/collections/streets/items?limit=10",
    "/ogc/collections/streets/items?limit=5&filter=code%20LIKE%20%27110105%25%27",
    "/ogc/collections/streets/items?bbox=116.43,39.90,116.46,39.92",
    "/tiles/streets/12/3372/1552.mvt",
    "/tiles/streets/13/6745/3104.mvt",
]
STAFF = [
    "/api/layers",
    "/api/records/tasks",
    "/ogc/collections/survey/items?limit=20",
    "/ogc/collections/survey/items?limit=20&filter=TBMJ%20%3E%2020000",
    "/tiles/survey/14/13492/6208.mvt",
]


def main(argv: list[str] | None = None) -> int:
    import httpx

    from yizhangtu.web.testing import PASSWORD, run_load, seed_workspace, temp_workspace

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workspace", help="an existing workspace (only public routes are loaded)")
    ap.add_argument("--backend", choices=["gpkg", "postgis"], default="gpkg")
    ap.add_argument("--dsn", default=os.environ.get("YIZHANGTU_TEST_PG_DSN"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=4, help="server store threads")
    a = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = temp_workspace(a.backend, tmp, a.dsn) if not a.workspace else None
        uri = a.workspace or ctx.__enter__()  # type: ignore[union-attr]
        try:
            if not a.workspace:
                seed_workspace(
                    uri, streets_path=ROOT / "tests" / "data" / "chaoyang_streets.geojson"
                )
            with Server(uri, a.threads) as srv:
                results["public"] = run_load(
                    srv.url,
                    PUBLIC,
                    total=a.requests,
                    concurrency=a.concurrency,
                    max_seconds=a.seconds,
                ).to_dict()
                if not a.workspace:
                    tok = httpx.post(
                        srv.url + "/api/auth/token",
                        json={"username": "district", "password": PASSWORD},
                    ).json()["access_token"]
                    results["signed_in"] = run_load(
                        srv.url,
                        PUBLIC + STAFF,
                        total=a.requests,
                        concurrency=a.concurrency,
                        max_seconds=a.seconds,
                        headers={"Authorization": f"Bearer {tok}"},
                    ).to_dict()
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
    for name, r in results.items():
        print(f"{name}: {json.dumps(r, ensure_ascii=False)}")
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
