"""Vector tile benchmark: tiles/s and p95 at z12–z16 over HTTP, beside the bare SQL time.

A synthetic survey (合成数据, ``yizhangtu.demo.synthetic.generate_benchmark``) of N parcels
over Beijing's 343 streets/townships is imported into a GeoPackage and/or a PostGIS
workspace; ``yizhangtu serve`` runs in a separate process; a bounded asyncio client
(count- and time-bounded, fixed concurrency, loopback) requests tiles picked at parcel
locations, first cold (every tile rendered once) then warm (served from the tile cache).

"Bare SQL" is the database work for the same tiles, run sequentially on one connection:
PostGIS: the same ``ST_AsMVT`` statement the server runs; GeoPackage: the R-tree candidate
query with its rows fetched (the server then decodes, clips, simplifies and encodes them in
Python).

    uv run python benchmarks/tiles.py --parcels 100000 --backend both \\
        --dsn postgresql://postgres@127.0.0.1:54329/yizhangtu_test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def survey(n: int, cache: Path, seed: int = 1):  # type: ignore[no-untyped-def]
    """The synthetic survey of about ``n`` parcels (cached as GeoParquet)."""
    import geopandas as gpd

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"survey_{n}_{seed}.parquet"
    if path.exists():
        return gpd.read_parquet(path)
    from yizhangtu.demo.synthetic import generate_benchmark

    t = time.perf_counter()
    gdf, _ = generate_benchmark(n, seed=seed)
    print(f"  generated {len(gdf)} parcels in {time.perf_counter() - t:.1f} s", flush=True)
    gdf.to_parquet(path)
    return gdf


def load_workspace(uri: str, gdf, chunk: int = 100_000) -> float:  # type: ignore[no-untyped-def]
    """Import the survey as the published layer ``survey``; returns seconds."""
    from yizhangtu.store import LayerSpec, open_store

    spec = LayerSpec(
        name="survey",
        kind="survey",
        title="北京三调图斑 (合成数据, 基准测试)",
        code_field="DLBM",
        jurisdiction_field="ZLDWDM",
        synthetic=True,
        published=True,
    )
    t = time.perf_counter()
    with open_store(uri, create=True) as st:
        st.write_snapshot(
            spec,
            (gdf.iloc[i : i + chunk] for i in range(0, len(gdf), chunk)),
            label="2020",
            actor="benchmark",
        )
    return time.perf_counter() - t


def pick_tiles(
    gdf, zooms: list[int], per_zoom: int, seed: int = 7
) -> dict[int, list[tuple[int, int, int]]]:  # type: ignore[no-untyped-def]
    """Distinct tiles at parcel locations (where the data is), per zoom."""
    rng = np.random.default_rng(seed)
    pts = gdf.geometry.representative_point()
    idx = rng.permutation(len(gdf))
    out: dict[int, list[tuple[int, int, int]]] = {}
    for z in zooms:
        seen: dict[tuple[int, int, int], None] = {}
        for i in idx:
            p = pts.iloc[int(i)]
            seen.setdefault(_tile_of(p.x, p.y, z), None)
            if len(seen) >= per_zoom:
                break
        out[z] = list(seen)
    return out


class Server:
    """``yizhangtu serve`` in a subprocess on a free port."""

    def __init__(self, uri: str, threads: int) -> None:
        from yizhangtu.web.testing import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {
            "YIZHANGTU_SECRET_KEY": uuid.uuid4().hex,
            "YIZHANGTU_STORE_THREADS": str(threads),
            "YIZHANGTU_TILE_CACHE_BYTES": str(512 * 1024 * 1024),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yizhangtu.cli.main",
                "-w",
                uri,
                "serve",
                "--port",
                str(self.port),
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    self.proc.stderr.read().decode() if self.proc.stderr else "server exited"
                )
            try:
                if httpx.get(self.url + "/api/public/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def bare_sql(uri: str, tiles: list[tuple[int, int, int]]) -> list[float]:
    """Milliseconds of the database work per tile, sequentially on one connection."""
    from yizhangtu.services.tiles import _storage_bbox, simplify_tolerance, tile_bounds
    from yizhangtu.store import open_store

    out = []
    with open_store(uri, create=False) as st:
        snap = st.resolve_snapshot("survey")
        st.render_mvt(
            "survey",
            snapshot=snap.id,
            tile=tiles[0],
            bbox=_storage_bbox(tile_bounds(*tiles[0]), snap.crs),
        )  # warm PROJ
        for z, x, y in tiles:
            b = tile_bounds(z, x, y)
            pad = (b[2] - b[0]) * 64 / 4096
            bbox = _storage_bbox((b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad), snap.crs)
            t = time.perf_counter()
            if st.backend == "postgis":
                st.render_mvt(
                    "survey",
                    snapshot=snap.id,
                    tile=(z, x, y),
                    bbox=bbox,
                    tolerance=simplify_tolerance(z),
                )
            else:
                schema, gcol, rtree = st._snapshot_layout(snap)  # type: ignore[attr-defined]
                cols = ", ".join(['"fid"', *(f'"{n}"' for n, _ in schema), f'"{gcol}"'])
                st.conn.execute(  # type: ignore[attr-defined]
                    f'SELECT {cols} FROM "{snap.table_name}" '
                    f'WHERE "fid" IN (SELECT id FROM "{rtree}" '
                    "WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?) ORDER BY fid",
                    (bbox[2], bbox[0], bbox[3], bbox[1]),
                ).fetchall()
            out.append((time.perf_counter() - t) * 1000)
    return out


def run(
    uri: str,
    backend: str,
    tiles: dict[int, list[tuple[int, int, int]]],
    *,
    concurrency: int,
    max_seconds: float,
    threads: int,
) -> list[dict]:
    """Benchmark one workspace; returns one row per zoom."""
    from yizhangtu.web.testing import run_load

    rows = []
    with Server(uri, threads) as srv:
        for z, ts in tiles.items():
            paths = [f"/tiles/survey/{tz}/{tx}/{ty}.mvt" for tz, tx, ty in ts]
            cold = run_load(
                srv.url, paths, total=len(paths), concurrency=concurrency, max_seconds=max_seconds
            )
            warm = run_load(
                srv.url, paths, total=len(paths), concurrency=concurrency, max_seconds=max_seconds
            )
            sql = bare_sql(uri, ts[: min(len(ts), 200)])
            row = {
                "backend": backend,
                "zoom": z,
                "tiles": cold.requests,
                "errors": cold.errors + warm.errors,
                "tiles_per_s": round(cold.throughput, 1),
                "p50_ms": round(cold.percentile(50), 1),
                "p95_ms": round(cold.percentile(95), 1),
                "kb_per_tile": round(cold.bytes / max(cold.requests, 1) / 1024, 1),
                "cached_tiles_per_s": round(warm.throughput, 1),
                "cached_p95_ms": round(warm.percentile(95), 1),
                "sql_mean_ms": round(float(np.mean(sql)), 2),
                "sql_p95_ms": round(float(np.percentile(sql, 95)), 2),
                "sql_tiles_per_s_1conn": round(1000 / float(np.mean(sql)), 1),
            }
            rows.append(row)
            print("  " + json.dumps(row, ensure_ascii=False), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--backend", choices=["gpkg", "postgis", "both"], default="gpkg")
    ap.add_argument(
        "--dsn",
        default=os.environ.get("YIZHANGTU_TEST_PG_DSN"),
        help="PostgreSQL server DSN (a database is created and dropped)",
    )
    ap.add_argument("--zooms", default="12,13,14,15,16")
    ap.add_argument("--tiles", type=int, default=300, help="distinct tiles per zoom (count bound)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time bound per zoom and pass")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=4, help="server store threads")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "yizhangtu-bench")
    ap.add_argument("--out", type=Path, help="write the rows as JSON")
    a = ap.parse_args(argv)
    zooms = [int(z) for z in a.zooms.split(",")]
    print(f"survey of {a.parcels} parcels (合成数据)", flush=True)
    gdf = survey(a.parcels, a.cache)
    tiles = pick_tiles(gdf, zooms, a.tiles)
    rows: list[dict] = []
    from yizhangtu.web.testing import temp_workspace

    backends = ["gpkg", "postgis"] if a.backend == "both" else [a.backend]
    for backend in backends:
        if backend == "postgis" and not a.dsn:
            print("skip postgis: no --dsn", flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp, temp_workspace(backend, tmp, a.dsn) as uri:
            secs = load_workspace(uri, gdf)
            print(f"{backend}: imported {len(gdf)} parcels in {secs:.1f} s", flush=True)
            rows += run(
                uri,
                backend,
                tiles,
                concurrency=a.concurrency,
                max_seconds=a.seconds,
                threads=a.threads,
            )
    cols = (
        "backend",
        "zoom",
        "tiles",
        "tiles_per_s",
        "p50_ms",
        "p95_ms",
        "kb_per_tile",
        "cached_tiles_per_s",
        "cached_p95_ms",
        "sql_mean_ms",
        "sql_p95_ms",
    )
    heads = (
        "backend",
        "z",
        "tiles",
        "tiles/s",
        "p50 ms",
        "p95 ms",
        "KB/tile",
        "cached tiles/s",
        "cached p95 ms",
        "bare SQL mean ms",
        "bare SQL p95 ms",
    )
    print("\n| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if a.out:
        a.out.write_text(
            json.dumps(
                {"parcels": len(gdf), "concurrency": a.concurrency, "rows": rows},
                ensure_ascii=False,
                indent=2,
            )
        )
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
