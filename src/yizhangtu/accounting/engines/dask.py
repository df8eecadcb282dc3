"""Dask engine: the local kernels over dask-geopandas partitions.

The layer is partitioned once in Hilbert order (spatially coherent partitions) unless it
already is a dask-geopandas frame (e.g. read from partitioned GeoParquet). The units are
small: they travel once, as one key of the graph. Each partition runs the same kernel as the
local engine, so results agree to floating-point noise.

Scheduler: ``threads`` (default; shapely releases the GIL in its vectorised calls),
``processes``, ``sync``, or the address of a distributed scheduler (``tcp://host:8786``).
GEOS prepared geometries are not thread-safe, so every thread works on its own copy of the
units (a few milliseconds).

Pin fact: dask-geopandas 0.5.0 with pandas 3 keeps ``spatial_partitions`` in ``_meta.attrs``
and then fails to compare frames; :func:`fix_meta_attrs` removes it.
"""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.accounting._checks import MAX_LISTED, _plain, classify_layer
from yizhangtu.accounting.engines.local import (
    OverlayChunk,
    OverlayJob,
    Projector,
    TabulateChunk,
    TabulateJob,
    Zones,
    default_workers,
    empty_tabulate_chunk,
    overlay_chunk,
    tabulate_chunk,
)
from yizhangtu.errors import InputError, ValidationError

__all__ = [
    "compute",
    "fix_meta_attrs",
    "hilbert_partitions",
    "is_dask_frame",
    "overlay_dask",
    "tabulate_dask",
]

_CODE = "__yz_code"
_POS = "__yz_pos"
_local = threading.local()


def is_dask_frame(obj: Any) -> bool:
    """Whether ``obj`` is a dask (geo)dataframe, without importing dask."""
    return hasattr(obj, "npartitions") and hasattr(obj, "to_delayed")


def fix_meta_attrs(ddf: Any) -> Any:
    """Drop ``spatial_partitions`` from ``_meta.attrs`` (dask-geopandas 0.5.0 + pandas 3)."""
    meta = getattr(ddf, "_meta", None)
    if meta is not None:
        meta.attrs.pop("spatial_partitions", None)
    return ddf


def hilbert_partitions(frame: gpd.GeoDataFrame, npartitions: int) -> Any:
    """Partition ``frame`` once, in Hilbert order of its features' bounding-box centres."""
    import dask_geopandas

    order = np.argsort(frame.geometry.hilbert_distance(level=16).to_numpy(), kind="stable")
    ddf = dask_geopandas.from_geopandas(frame.iloc[order], npartitions=npartitions, sort=False)
    return fix_meta_attrs(ddf)


def compute(tasks: Sequence[Any], scheduler: str | None, workers: int | None) -> list[Any]:
    """Compute delayed tasks on the chosen scheduler."""
    import dask

    scheduler = scheduler or "threads"
    if "://" in scheduler or (":" in scheduler and scheduler.rsplit(":", 1)[-1].isdigit()):
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:
            return list(dask.compute(*tasks, scheduler=client))
    if scheduler not in {"threads", "processes", "sync", "synchronous", "single-threaded"}:
        raise InputError(
            f"未知的 dask 调度器: {scheduler}",
            key="unknown_scheduler",
            hint="可选: threads, processes, sync, 或分布式调度器地址 tcp://host:8786",
        )
    kwargs: dict[str, Any] = {}
    if scheduler in {"threads", "processes"}:
        kwargs["num_workers"] = default_workers(workers)
    return list(dask.compute(*tasks, scheduler=scheduler, **kwargs))


def _thread_copy(obj: Any) -> Any:
    """Return this thread's own copy of ``obj`` (GEOS prepared geometry is not thread-safe)."""
    cache = getattr(_local, "copies", None)
    if cache is None:
        cache = _local.copies = {}
    key = id(obj)
    hit = cache.get(key)
    if hit is None or hit[0] is not obj:
        if len(cache) >= 4:  # copies of earlier jobs: let them go
            cache.clear()
        hit = (obj, pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)))
        cache[key] = hit
    return hit[1]


def _npartitions(n: int, chunk_size: int, workers: int) -> int:
    return max(1, -(-n // max(1, chunk_size)), min(2 * workers, -(-n // 1000)))


# --------------------------------------------------------------------------------------------
# tabulation


def _tab_partition_codes(part: gpd.GeoDataFrame, job: TabulateJob) -> tuple[Any, ...]:
    job = TabulateJob(zones=_thread_copy(job.zones), project=job.project, n_classes=job.n_classes)
    chunk = tabulate_chunk(
        np.asarray(part.geometry.values, dtype=object), part[_CODE].to_numpy(), job
    )
    positions = part[_POS].to_numpy()
    chunk.invalid = [(int(positions[p]), r) for p, r in chunk.invalid]
    return chunk, None, None


def _tab_partition_labels(
    part: gpd.GeoDataFrame,
    zones: Zones,
    project: Projector,
    class_field: str,
    classify: Callable[[pd.DataFrame], pd.Series] | None,
    valid_classes: Collection[Any] | None,
) -> tuple[Any, ...]:
    try:
        codes, classes = classify_layer(
            part, class_field=class_field, classify=classify, valid_classes=valid_classes
        )
    except ValidationError as exc:
        return None, None, Counter({c["code"]: c["count"] for c in exc.data["codes"]})
    job = TabulateJob(zones=_thread_copy(zones), project=project, n_classes=len(classes))
    chunk = tabulate_chunk(np.asarray(part.geometry.values, dtype=object), codes, job)
    chunk.invalid = [(_plain(part.index[p]), r) for p, r in chunk.invalid]
    return chunk, list(classes), None


def tabulate_dask(
    layer: Any,
    *,
    coded: tuple[np.ndarray, np.ndarray] | None,
    zones: Zones,
    project: Projector,
    class_field: str,
    classify: Callable[[pd.DataFrame], pd.Series] | None,
    valid_classes: Collection[Any] | None,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int,
) -> tuple[TabulateChunk, np.ndarray, pd.Index | None]:
    """Run the tabulation kernel over dask partitions; returns merged sums, classes, index.

    A GeoDataFrame comes classified (``coded``: codes and classes, checked before any work)
    and is partitioned in Hilbert order; a dask frame is classified partition by partition,
    and unknown codes from every partition are reported together.
    """
    import dask

    nworkers = default_workers(workers)
    zones_d = dask.delayed(zones, pure=True, traverse=False)
    if not is_dask_frame(layer):
        if coded is None:
            coded = classify_layer(
                layer, class_field=class_field, classify=classify, valid_classes=valid_classes
            )
        codes, classes = coded
        frame = gpd.GeoDataFrame(
            {_CODE: codes, _POS: np.arange(len(layer))},
            geometry=np.asarray(layer.geometry.values, dtype=object),
            crs=layer.crs,
        )
        ddf = hilbert_partitions(frame, _npartitions(len(frame), chunk_size, nworkers))
        job = dask.delayed(
            TabulateJob(zones=zones, project=project, n_classes=len(classes)),
            pure=True,
            traverse=False,
        )
        tasks = [dask.delayed(_tab_partition_codes)(p, job) for p in ddf.to_delayed()]
        results = compute(tasks, scheduler, workers)
        total = empty_tabulate_chunk(TabulateJob(zones, project, len(classes)))
        for chunk, _, _ in results:
            total.merge(chunk)
        return total, classes, layer.index

    ddf = fix_meta_attrs(layer)
    tasks = [
        dask.delayed(_tab_partition_labels)(
            p, zones_d, project, class_field, classify, valid_classes
        )
        for p in ddf.to_delayed()
    ]
    results = compute(tasks, scheduler, workers)
    unknown: Counter = Counter()
    for _, _, bad in results:
        if bad:
            unknown.update(bad)
    if unknown:
        items = unknown.most_common()
        listed = ", ".join(f"{k} ({v} 个)" for k, v in items[:MAX_LISTED])
        raise ValidationError(
            f"{sum(unknown.values())} 个图斑的地类代码不在分类表中: {listed}",
            key="unknown_class",
            field=class_field,
            hint="核对地类代码, 或在分类表中补充这些代码后重试",
            data={"codes": [{"code": k, "count": v} for k, v in items]},
        )
    labels = sorted({c for _, cls, _ in results for c in cls}, key=lambda v: (str(type(v)), v))
    classes = np.asarray(labels, dtype=object)
    where = {c: i for i, c in enumerate(labels)}
    nunits = len(zones.geoms)
    total = empty_tabulate_chunk(TabulateJob(zones, project, len(classes)))
    for chunk, cls, _ in results:
        local = chunk.acc.reshape(nunits, len(cls)) if cls else np.zeros((nunits, 0))
        remapped = np.zeros((nunits, len(classes)))
        for j, c in enumerate(cls):
            remapped[:, where[c]] = local[:, j]
        chunk.acc = remapped.ravel()
        total.merge(chunk)
    return total, classes, None


# --------------------------------------------------------------------------------------------
# overlay


def _overlay_partition(
    part: gpd.GeoDataFrame, job: OverlayJob, intersection: bool, difference: bool
) -> OverlayChunk:
    job = _thread_copy(job)
    chunk = overlay_chunk(
        np.asarray(part.geometry.values, dtype=object),
        job,
        intersection=intersection,
        difference=difference,
    )
    positions = part[_POS].to_numpy()
    chunk.inter_self = positions[chunk.inter_self]
    chunk.diff_self = positions[chunk.diff_self]
    chunk.invalid = [(int(positions[p]), r) for p, r in chunk.invalid]
    return chunk


def overlay_dask(
    geoms: np.ndarray,
    crs: Any,
    job: OverlayJob,
    *,
    intersection: bool,
    difference: bool,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int,
) -> list[OverlayChunk]:
    """Run the overlay kernel over Hilbert-ordered partitions of ``geoms``."""
    import dask

    nworkers = default_workers(workers)
    frame = gpd.GeoDataFrame({_POS: np.arange(len(geoms))}, geometry=geoms, crs=crs)
    ddf = hilbert_partitions(frame, _npartitions(len(frame), chunk_size, nworkers))
    job_d = dask.delayed(job, pure=True, traverse=False)
    tasks = [
        dask.delayed(_overlay_partition)(p, job_d, intersection, difference)
        for p in ddf.to_delayed()
    ]
    return compute(tasks, scheduler, workers)
