"""Overlay tabulation benchmark: our engine against its peers, side by side in one run.

Data (合成数据 / synthetic): ``yizhangtu.demo.synthetic.generate_benchmark(n, seed)`` fills
Beijing's 343 real street/township boundaries with about ``n`` synthetic 三调-like parcels
(EPSG:4490) that tile each unit. The question timed is the land-accounting one: the ellipsoidal
area of each land-use code (DLBM) inside each township.

Peers:

- ours: ``yizhangtu.accounting.tabulate`` (local engine, worker processes; optionally dask);
- geopandas: ``geopandas.overlay(how='intersection')`` + ellipsoidal area of the pieces +
  ``groupby`` (one process);
- PostGIS: ``ST_Intersection`` + ``ST_Area(geography)`` + ``GROUP BY`` with GiST indexes
  (the usual hand-written query), and our push-down ``postgis_tabulate``; connect with
  ``YIZHANGTU_BENCH_PG_DSN`` (loading is not timed);
- QGIS: ``qgis_process.bin run native:intersection`` when installed;
- work bound: the area of every parcel plus ``shapely.intersection`` of only the parcel-unit
  pairs whose boundaries cross (pairs found and geometry projected beforehand, untimed; one
  process): the cutting work any engine has to do.

Usage::

    .venv/bin/python benchmarks/overlay.py --n 100000 --n 1000000 [--skip-qgis] [--skip-postgis]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psutil
import shapely

from yizhangtu.accounting import postgis_tabulate, tabulate
from yizhangtu.accounting.engines.local import Projector
from yizhangtu.geo.area import ellipsoidal_area, equal_area_crs_for

CLASS, UNIT = "DLBM", "code"
TARGETS = {"geopandas": 0.33, "postgis": 1.0, "work bound": 1.5}
RSS_LIMIT_GB = 4.0


# --------------------------------------------------------------------------------------------
# measurement


class Peak:
    """Peak memory of this process and its children (sum of PSS, sampled)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            total += _pss(p)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def _pss(p: psutil.Process) -> int:
    """Proportional set size (shared pages split among sharers; cheap smaps_rollup read)."""
    try:
        with open(f"/proc/{p.pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, fn: Callable[[], Any], results: dict[str, dict[str, Any]]) -> Any:
    print(f"  running {label} ...", flush=True)
    c0, t0 = cpu_seconds(), time.perf_counter()
    with Peak() as peak:
        out = fn()
    wall = time.perf_counter() - t0
    results[label] = {"wall": wall, "cpu": cpu_seconds() - c0, "peak_gb": peak.peak / 2**30}
    print(f"    {wall:8.2f} s wall, peak {peak.peak / 2**30:.2f} GB", flush=True)
    return out


# --------------------------------------------------------------------------------------------
# data


def load_data(n: int, seed: int, cache: Path | None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    if cache is not None:
        sp, up = cache / f"survey_{n}_{seed}.parquet", cache / f"units_{n}_{seed}.parquet"
        if sp.is_file() and up.is_file():
            return gpd.read_parquet(sp), gpd.read_parquet(up)
    from yizhangtu.demo.synthetic import generate_benchmark

    t0 = time.perf_counter()
    survey, units = generate_benchmark(n, seed=seed)
    print(f"  generated {len(survey):,} synthetic parcels in {time.perf_counter() - t0:.0f} s")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        survey.to_parquet(sp)
        units.to_parquet(up)
    return survey, units


# --------------------------------------------------------------------------------------------
# peers


def run_geopandas(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> pd.Series:
    pieces = gpd.overlay(survey[[CLASS, "geometry"]], units[[UNIT, "geometry"]], how="intersection")
    pieces["area_m2"] = ellipsoidal_area(pieces.geometry)
    return pieces.groupby([UNIT, CLASS])["area_m2"].sum()


def work_bound(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> Callable[[], float]:
    """Prepare (untimed) and return the timed part of the work bound.

    Pairs are found and cut in the stored CRS, as every engine cuts; the parcels are projected
    to the equal-area plane beforehand, so the timed part is one ``area`` call over all of
    them plus the intersections of the crossing pairs.
    """
    project = Projector.between(survey.crs, equal_area_crs_for(units.geometry))
    geoms = np.asarray(survey.geometry.values, dtype=object)
    plane = project(geoms)
    ugeoms = np.asarray(units.geometry.values, dtype=object)
    shapely.prepare(ugeoms)
    ui, pi = shapely.STRtree(geoms).query(ugeoms, predicate="intersects")
    cross = shapely.overlaps(ugeoms[ui], geoms[pi])  # interiors meet, neither contains
    a, b = geoms[pi[cross]], ugeoms[ui[cross]]
    shapely.destroy_prepared(ugeoms)
    print(f"    work bound: {len(plane):,} areas + {int(cross.sum()):,} crossing intersections")

    def run() -> float:
        return float(shapely.area(plane).sum() + len(shapely.intersection(a, b)))

    return run


def load_postgis(conn: Any, survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> None:
    for name, frame, cols in (("bench_units", units, [UNIT]), ("bench_survey", survey, [CLASS])):
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        defs = ", ".join(f'"{c}" text' for c in cols)
        conn.execute(
            f"CREATE TABLE {name} (fid bigserial PRIMARY KEY, {defs}, "
            "geom geometry(Geometry, 4490))"
        )
        wkb = shapely.to_wkb(
            shapely.set_srid(np.asarray(frame.geometry.values), 4490), hex=True, include_srid=True
        )
        names = ", ".join(f'"{c}"' for c in cols)
        with conn.cursor().copy(f"COPY {name} ({names}, geom) FROM STDIN") as copy:
            for row in zip(*[frame[c].astype(str) for c in cols], wkb, strict=True):
                copy.write_row(row)
        conn.execute(f"CREATE INDEX ON {name} USING gist (geom)")
        conn.execute(f"VACUUM ANALYZE {name}")


NAIVE_SQL = """
SELECT u."code", l."DLBM", SUM(ST_Area(geography(ST_Intersection(l.geom, u.geom))))
FROM bench_survey AS l JOIN bench_units AS u ON ST_Intersects(l.geom, u.geom)
GROUP BY 1, 2
"""


def run_qgis(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame, tmp: Path) -> str | None:
    exe = shutil.which("qgis_process.bin") or (
        "/usr/bin/qgis_process.bin" if Path("/usr/bin/qgis_process.bin").exists() else None
    )
    if exe is None:
        return None
    a, b, out = tmp / "survey.gpkg", tmp / "units.gpkg", tmp / "qgis_out.gpkg"
    survey[[CLASS, "geometry"]].to_file(a)
    units[[UNIT, "geometry"]].to_file(b)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run(
        [exe, "run", "native:intersection", f"--INPUT={a}", f"--OVERLAY={b}", f"--OUTPUT={out}"],
        check=True,
        env=env,
        capture_output=True,
    )
    return str(out)


def max_rel_diff(ours: pd.Series, other: pd.Series) -> float:
    both = pd.concat([ours.rename("a"), other.rename("b")], axis=1).fillna(0.0)
    both = both[(both["a"] > 1.0) | (both["b"] > 1.0)]  # rows above 1 m² (crumbs aside)
    return float(((both["a"] - both["b"]).abs() / both[["a", "b"]].max(axis=1)).max())


# --------------------------------------------------------------------------------------------
# main


def bench(n: int, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== N = {n:,} (合成数据 synthetic parcels in real Beijing township boundaries)")
    survey, units = load_data(n, args.seed, args.cache)
    print(f"  {len(survey):,} parcels x {len(units)} units; load average {os.getloadavg()}")
    res: dict[str, dict[str, Any]] = {}
    checks: dict[str, float] = {}

    table = timed(
        "ours",
        lambda: tabulate(
            survey,
            units,
            class_field=CLASS,
            unit_field=UNIT,
            workers=args.workers,
            chunk_size=args.chunk_size,
        ),
        res,
    )
    ours = table.rows.set_index(["unit", "class"])["area_m2"]
    print(f"    stats {dict(table.stats)}")
    if args.dask:
        t2 = timed(
            "ours (dask threads)",
            lambda: tabulate(
                survey,
                units,
                class_field=CLASS,
                unit_field=UNIT,
                engine="dask",
                workers=args.workers,
            ),
            res,
        )
        checks["ours (dask threads)"] = max_rel_diff(
            ours, t2.rows.set_index(["unit", "class"])["area_m2"]
        )

    run = work_bound(survey, units)
    timed("work bound", run, res)

    if not args.skip_geopandas:
        gp = timed("geopandas", lambda: run_geopandas(survey, units), res)
        checks["geopandas"] = max_rel_diff(ours, gp)

    dsn = os.environ.get("YIZHANGTU_BENCH_PG_DSN")
    if args.skip_postgis:
        print("  postgis: skipped (--skip-postgis)")
    elif not dsn:
        print("  postgis: skipped (YIZHANGTU_BENCH_PG_DSN not set)")
    else:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            load_postgis(conn, survey, units)
            print(f"  loaded PostGIS in {time.perf_counter() - t0:.1f} s (not timed)")
            settings = conn.execute(
                "SELECT current_setting('max_parallel_workers_per_gather'), "
                "current_setting('work_mem'), postgis_lib_version()"
            ).fetchone()
            print(f"    parallel workers/gather, work_mem, PostGIS: {settings}")

            def naive() -> pd.Series:
                rows = conn.execute(NAIVE_SQL).fetchall()
                idx = pd.MultiIndex.from_tuples([(r[0], r[1]) for r in rows])
                return pd.Series([float(r[2]) for r in rows], index=idx)

            nv = timed("postgis", naive, res)
            checks["postgis"] = max_rel_diff(ours, nv)
            pd_table = timed(
                "postgis push-down (ours)",
                lambda: postgis_tabulate(
                    conn, "bench_survey", "bench_units", unit_field=UNIT, class_field=CLASS
                ),
                res,
            )
            checks["postgis push-down (ours)"] = max_rel_diff(
                ours, pd_table.rows.set_index(["unit", "class"])["area_m2"]
            )

    if args.skip_qgis:
        print("  qgis: skipped (--skip-qgis)")
    elif (
        shutil.which("qgis_process.bin") is None and not Path("/usr/bin/qgis_process.bin").exists()
    ):
        print("  qgis: skipped: not installed")
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            timed("qgis", lambda: run_qgis(survey, units, Path(tmp)), res)

    base = res["ours"]["wall"]
    print(f"\n  {'engine':28s} {'wall s':>9s} {'cpu s':>9s} {'peak GB':>8s} {'ours/it':>8s} "
          f"{'target':>7s} {'max rel diff':>13s}")  # fmt: skip
    for label, r in res.items():
        ratio = base / r["wall"]
        target = TARGETS.get(label)
        mark = "" if target is None else ("ok" if ratio <= target else "MISSED")
        diff = checks.get(label)
        print(
            f"  {label:28s} {r['wall']:9.2f} {r['cpu']:9.2f} {r['peak_gb']:8.2f} {ratio:8.3f} "
            f"{'' if target is None else f'<={target}':>7s} "
            f"{'' if diff is None else f'{diff:.1e}':>13s} {mark}"
        )
    peak = res["ours"]["peak_gb"]
    print(f"  peak memory of ours (PSS, all processes): {peak:.2f} GB "
          f"({'ok' if peak < RSS_LIMIT_GB else 'MISSED'} < {RSS_LIMIT_GB} GB)")  # fmt: skip
    print(f"  load average after: {os.getloadavg()}")
    return res


def main(argv: list[str] | None = None) -> int:
    warnings.simplefilter("ignore", UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="parcel count (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--cache", type=Path, default=None, help="cache generated data here")
    parser.add_argument("--dask", action="store_true", help="also time engine='dask'")
    parser.add_argument("--skip-geopandas", action="store_true")
    parser.add_argument("--skip-postgis", action="store_true")
    parser.add_argument("--skip-qgis", action="store_true")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile ours to this file")
    args = parser.parse_args(argv)
    print(f"cpus {os.cpu_count()}, python {sys.version.split()[0]}, shapely {shapely.__version__} "
          f"(GEOS {shapely.geos_version_string}), geopandas {gpd.__version__}")  # fmt: skip
    for n in args.n or [100_000]:
        if args.profile:
            import cProfile

            survey, units = load_data(n, args.seed, args.cache)
            cProfile.runctx(
                "tabulate(survey, units, class_field=CLASS, unit_field=UNIT)",
                globals(),
                {"survey": survey, "units": units},
                str(args.profile),
            )
            print(f"profile written to {args.profile}")
            continue
        bench(n, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
