"""Import throughput and peak memory on both backends, against ogr2ogr as the named baseline.

Usage: python benchmarks/import.py [--n 100000 1000000] [--backends gpkg postgis]

Data: the seeded synthetic survey generator (SYNTHETIC parcels inside Beijing's real streets),
written once as a GeoPackage source file under benchmarks/out/. Each run imports it as a
``survey`` layer (QC with tiling checks, hashing, reprojection, audit) in a fresh workspace, in
a child process whose peak RSS is read from wait4(). The baseline is a plain GDAL copy of the
same file (ogr2ogr), which does none of that work.
PostGIS: YIZHANGTU_BENCH_PG_DSN, or a private cluster started with scripts/pg-cluster.sh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def source_file(n: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    p = OUT / f"survey_{n}.gpkg"
    if p.exists():
        return p
    import geopandas as gpd
    import pyogrio

    from yizhangtu.demo.synthetic import default_shared_dir, generate_benchmark

    units = gpd.read_file(
        default_shared_dir() / "data" / "boundaries" / "beijing_subdistricts_wgs84.geojson"
    )
    t = time.perf_counter()
    survey, _ = generate_benchmark(n, seed=1, units=units)
    print(f"  generated {len(survey):,} synthetic parcels in {time.perf_counter() - t:.1f}s")
    pyogrio.write_dataframe(survey, p, layer="survey")
    return p


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process.

    RSS is sampled with psutil after exec: wait4's ru_maxrss would include the pages the
    child shared with this (possibly large) process at fork time.
    """
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return dt, peak / 2**20


def pg_dsn() -> str:
    dsn = os.environ.get("YIZHANGTU_BENCH_PG_DSN")
    if dsn:
        return dsn
    return subprocess.check_output(
        ["bash", str(ROOT / "scripts" / "pg-cluster.sh"), "start"], text=True
    ).strip()


def fresh_pg_db(dsn: str) -> str:
    import psycopg

    base = dsn.rsplit("/", 1)[0]
    name = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base + "/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def drop_pg_db(uri: str) -> None:
    import psycopg

    base, name = uri.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--backends", nargs="+", default=["gpkg", "postgis"])
    args = ap.parse_args()
    yz = [sys.executable, "-m", "yizhangtu.cli.main"]
    rows = []
    for n in args.n:
        src = source_file(n)
        import pyogrio

        count = pyogrio.read_info(src, layer="survey")["features"]
        for backend in args.backends:
            work = OUT / "work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            if backend == "gpkg":
                ws = str(work / "ws.gpkg")
                base_cmd = ["ogr2ogr", "-f", "GPKG", str(work / "baseline.gpkg"), str(src)]
            else:
                dsn = pg_dsn()
                ws = fresh_pg_db(dsn)
                base_cmd = [
                    "ogr2ogr",
                    "-f",
                    "PostgreSQL",
                    "PG:" + ws.replace("postgresql://", "postgresql://"),
                    str(src),
                    "-nln",
                    "baseline",
                    "-lco",
                    "SPATIAL_INDEX=GIST",
                ]
            env = os.environ | {"YIZHANGTU_WORKSPACE": ws}
            cmd = [
                *yz,
                "import",
                str(src),
                "--layer",
                "survey",
                "--kind",
                "survey",
                "--snapshot",
                "2020",
                "--code-field",
                "DLBM",
                "--code-system",
                "sandiao",
                "--id-field",
                "BSM",
                "--no-offset-check",
                "--allow-qc-errors",
                "--json",
            ]
            t_ours, rss_ours = timed(cmd, env)
            if shutil.which("ogr2ogr"):
                t_base, rss_base = timed(base_cmd)
            else:
                t_base, rss_base = float("nan"), float("nan")
            if backend == "postgis":
                drop_pg_db(ws)
            rows.append((n, backend, count, t_ours, rss_ours, t_base, rss_base))
            print(
                f"n={count:>9,} {backend:8s} ours {t_ours:7.1f}s {count / t_ours:9,.0f} features/s "
                f"peak RSS {rss_ours:7.0f} MB | "
                f"ogr2ogr {t_base:6.1f}s {count / t_base:9,.0f} f/s RSS {rss_base:5.0f} MB | "
                f"ours/ogr2ogr time {t_ours / t_base:5.2f}"
            )
    print("\nsummary (ours includes QC, content hashing, reprojection, catalogue + audit):")
    for _n, backend, count, t, rss, tb, _ in rows:
        print(
            f"  {backend:8s} {count:>9,}: {count / t:9,.0f} features/s, peak RSS {rss:,.0f} MB, "
            f"ratio to ogr2ogr {t / tb:.2f}"
        )


if __name__ == "__main__":
    main()
