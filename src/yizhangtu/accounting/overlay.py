"""General overlay of two polygon layers (叠加分析): intersection, difference, union, identity.

Pieces carry the attributes of both sides (columns present in both get suffixes ``_1`` and
``_2``, as in :func:`geopandas.overlay`) and an ``area_m2`` column: the ellipsoidal area,
measured in one equal-area plane for the whole job (see :mod:`yizhangtu.accounting.tabulate`).
Geometry is cut in the input CRS, as geopandas does; a feature taken whole keeps its input
geometry exactly.

Engine: an STRtree over the broadcast side gives candidate pairs; prepared ``intersects`` keeps
the real ones; a feature wholly inside the other (``contains_properly``) is taken whole, with
no intersection computed; only the pairs whose boundaries cross are cut, in vectorised
shapely calls, chunk by chunk over worker processes (or dask partitions).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.accounting._checks import (
    _plain,
    check_crs,
    check_not_empty,
    geometry_problems,
    raise_geometry_problems,
)
from yizhangtu.accounting.engines.local import (
    OverlayChunk,
    OverlayJob,
    Projector,
    chunk_ranges,
    default_workers,
    overlay_chunk,
    run_chunks,
)
from yizhangtu.errors import InputError
from yizhangtu.geo.area import equal_area_crs_for

__all__ = ["HOWS", "overlay"]

#: Supported overlay operations.
HOWS = ("intersection", "difference", "union", "identity", "symmetric_difference")


def overlay(
    left: gpd.GeoDataFrame,
    right: gpd.GeoDataFrame,
    how: str = "intersection",
    *,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    keep_geom_type: bool = True,
    chunk_size: int = 50_000,
) -> gpd.GeoDataFrame:
    """Overlay two polygon layers; every piece gets an ellipsoidal ``area_m2``.

    Parameters
    ----------
    left, right : GeoDataFrame
        Valid polygon layers in the same CRS.
    how : {'intersection', 'difference', 'union', 'identity', 'symmetric_difference'}
        As in :func:`geopandas.overlay`.
    engine : {'local', 'dask'}
        Worker processes on this machine, or dask partitions (``scheduler`` as in
        :func:`yizhangtu.accounting.tabulate`).
    workers : int, optional
        Worker processes; default all CPUs.
    keep_geom_type : bool
        Keep only polygonal pieces (drop the lines and points where features only touch).
    chunk_size : int
        Features per chunk at most.

    Returns
    -------
    GeoDataFrame
        Intersection pieces ordered by (left, right) row, then pieces of left only, then
        pieces of right only; left columns, right columns (not for ``difference``),
        ``area_m2``, geometry. ``attrs['stats']`` counts the work (fast path, intersections).

    Raises
    ------
    InputError, CRSError, GeometryError
        Empty layer, missing or mixed CRS, invalid or non-polygonal features (listed).
    """
    if how not in HOWS:
        raise InputError(
            f"未知的叠加方式: {how}", key="unknown_overlay", hint="可选: " + ", ".join(HOWS)
        )
    if engine not in ("local", "dask"):
        raise InputError(
            f"未知的叠加引擎: {engine}", key="unknown_engine", hint="可选: local, dask"
        )
    check_not_empty(left, "left")
    check_not_empty(right, "right")
    crs = check_crs(("left", left), ("right", right))
    lgeoms = np.asarray(left.geometry.values, dtype=object)
    rgeoms = np.asarray(right.geometry.values, dtype=object)
    bad, reasons = geometry_problems(rgeoms)
    raise_geometry_problems(
        [("right", _plain(right.index[p]), r) for p, r in zip(bad, reasons, strict=True)]
    )
    extent = gpd.GeoSeries(
        [shapely.box(*left.total_bounds), shapely.box(*right.total_bounds)], crs=crs
    )
    project = Projector.between(crs, equal_area_crs_for(extent))
    want_inter = how in ("intersection", "identity", "union")
    want_ldiff = how in ("difference", "identity", "union", "symmetric_difference")
    want_rdiff = how in ("union", "symmetric_difference")

    def run(geoms: np.ndarray, other: np.ndarray, inter: bool, diff: bool) -> list[OverlayChunk]:
        job = OverlayJob(
            other=other,
            other_area=project.area(other),
            project=project,
            keep_geom_type=keep_geom_type,
        )
        if engine == "dask":
            from yizhangtu.accounting.engines.dask import overlay_dask

            return overlay_dask(
                geoms,
                crs,
                job,
                intersection=inter,
                difference=diff,
                workers=workers,
                scheduler=scheduler,
                chunk_size=chunk_size,
            )
        nworkers = default_workers(workers)
        ranges = chunk_ranges(len(geoms), chunk_size, nworkers)
        return run_chunks(_overlay_task, (geoms, job.ready(), (inter, diff)), ranges, nworkers)

    lchunks = run(lgeoms, rgeoms, want_inter, want_ldiff)
    problems = [("left", _plain(left.index[p]), r) for c in lchunks for p, r in c.invalid]
    raise_geometry_problems(problems)
    rchunks = run(rgeoms, lgeoms, False, True) if want_rdiff else []
    out = _assemble(left, right, lchunks, rchunks, crs, left_only=how == "difference")
    stats: Counter = Counter()
    for c in (*lchunks, *rchunks):
        stats.update(c.stats)
    out.attrs["stats"] = dict(stats)
    return out


def _overlay_task(
    payload: tuple[np.ndarray, OverlayJob, tuple[bool, bool]], start: int, stop: int
) -> OverlayChunk:
    geoms, job, (inter, diff) = payload
    chunk = overlay_chunk(geoms[start:stop], job, intersection=inter, difference=diff)
    return chunk.shifted(start)


def _cat(chunks: list[OverlayChunk], names: tuple[str, ...]) -> list[np.ndarray]:
    out = []
    for name in names:
        parts = [getattr(c, name) for c in chunks]
        out.append(np.concatenate(parts) if parts else np.empty(0))
    return out


def _assemble(
    left: gpd.GeoDataFrame,
    right: gpd.GeoDataFrame,
    lchunks: list[OverlayChunk],
    rchunks: list[OverlayChunk],
    crs: Any,
    *,
    left_only: bool,
) -> gpd.GeoDataFrame:
    lattrs = pd.DataFrame(left.drop(columns=left.geometry.name)).reset_index(drop=True)
    rattrs = pd.DataFrame(right.drop(columns=right.geometry.name)).reset_index(drop=True)
    common = set() if left_only else set(lattrs.columns) & set(rattrs.columns)
    lattrs = lattrs.rename(columns={c: f"{c}_1" for c in common | {"area_m2"}})
    rattrs = rattrs.rename(columns={c: f"{c}_2" for c in common | {"area_m2"}})

    isf, iot, igeom, iarea = _cat(
        lchunks, ("inter_self", "inter_other", "inter_geom", "inter_area")
    )
    dsf, dgeom, darea = _cat(lchunks, ("diff_self", "diff_geom", "diff_area"))
    rsf, rgeom, rarea = _cat(rchunks, ("diff_self", "diff_geom", "diff_area"))
    isf, iot, dsf, rsf = (np.asarray(x, dtype=np.int64) for x in (isf, iot, dsf, rsf))
    o1 = np.lexsort((iot, isf))
    o2 = np.argsort(dsf, kind="stable")
    o3 = np.argsort(rsf, kind="stable")
    lpos = np.concatenate([isf[o1], dsf[o2], np.full(len(rsf), -1)])
    rpos = np.concatenate([iot[o1], np.full(len(dsf), -1), rsf[o3]])
    geom = np.concatenate([np.asarray(igeom, dtype=object)[o1], np.asarray(dgeom, dtype=object)[o2],
                           np.asarray(rgeom, dtype=object)[o3]])  # fmt: skip
    area = np.concatenate([np.asarray(iarea, float)[o1], np.asarray(darea, float)[o2],
                           np.asarray(rarea, float)[o3]])  # fmt: skip
    lpart = lattrs.reindex(pd.Index(lpos)).reset_index(drop=True)
    rpart = rattrs.reindex(pd.Index(rpos)).reset_index(drop=True)
    out = lpart if left_only else pd.concat([lpart, rpart], axis=1)
    out["area_m2"] = area
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geom, crs=crs).values, crs=crs)
