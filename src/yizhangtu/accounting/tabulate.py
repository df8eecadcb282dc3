"""Overlay tabulation (叠加统计): the area of each class inside each unit.

Areas are ellipsoidal (CGCS2000/GRS80): geometry is cut in the input CRS (where neighbours
share their vertices), and every feature and piece is measured in one Lambert azimuthal
equal-area plane per job, centred on the units (:func:`yizhangtu.geo.area.equal_area_crs_for`):
the same definition as :func:`yizhangtu.geo.area.ellipsoidal_area`, one plane for every chunk,
process and engine.

Totals reconcile: for each unit, ``unit_areas - unit_totals = residual_m2`` (the part of the
unit that the layer does not cover; negative when the layer overlaps itself there), to within
the unit's ``edge_bulge_m2`` (see :class:`AreaTable`). The layer
area outside every unit is ``uncovered_m2``; unit self-overlap is ``double_counted_m2`` and the
layer area counted twice because of it is in ``overlaps``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.accounting._checks import (
    _plain,
    check_crs,
    check_not_empty,
    classify_layer,
    geometry_problems,
    raise_geometry_problems,
    require_field,
)
from yizhangtu.accounting.engines.local import (
    Projector,
    TabulateChunk,
    TabulateJob,
    Zones,
    build_zones,
    chunk_ranges,
    default_workers,
    empty_tabulate_chunk,
    proj_string,
    run_chunks,
    tabulate_chunk,
)
from yizhangtu.errors import InputError, ValidationError
from yizhangtu.geo.area import convert_area, equal_area_crs_for

__all__ = ["ENGINES", "AreaTable", "tabulate"]

#: Engines that :func:`tabulate` runs in-process; PostGIS push-down is :func:`postgis_tabulate`.
ENGINES = ("local", "dask")

#: Extent (degrees) beyond which one equal-area plane still preserves area but straight edges
#: drift from the ellipsoid's; the job warns.
_WIDE_EXTENT_DEG = 20.0


@dataclass(frozen=True)
class AreaTable:
    """Result of a tabulation. Every ``*_m2`` field and ``rows.area_m2`` is in m².

    Attributes
    ----------
    rows : pandas.DataFrame
        ``unit``, ``class``, ``area_m2`` (ellipsoidal), ``area`` (in ``area_unit``).
    unit_areas : pandas.Series
        Ellipsoidal area of each unit (m²), indexed by unit.
    unit_totals : pandas.Series
        Sum of the pieces in each unit (m²).
    residual_m2 : pandas.Series
        ``unit_areas - unit_totals``: the part of each unit the layer does not cover, to within
        ``edge_bulge_m2``.
    uncovered_m2 : float
        Layer area outside every unit.
    double_counted_m2 : float
        Area where units overlap each other (pairwise sum).
    warnings : tuple of str
        Findings for the user, in Chinese.
    engine : str
        ``local``, ``dask`` or ``postgis``.
    area_unit : str
        Unit of ``rows.area`` and of :meth:`to_records` (``m2``, ``ha``, ``km2``, ``mu``).
    layer_area_m2 : float
        Total area of the layer.
    overlaps : pandas.DataFrame
        ``unit_a``, ``unit_b``, ``area_m2`` (their overlap), ``layer_area_m2`` (layer area in it,
        counted in both units).
    stats : Mapping
        Work counters: features, candidate pairs, fast-path pairs, intersections, ...
    equal_area_crs : str
        PROJ string of the equal-area plane the job measured in (provenance).
    edge_bulge_m2 : pandas.Series
        Per unit, the area between its edges (straight in the data's CRS) and their chords in
        the equal-area plane. Each area is measured along the chords between its vertices, so
        when pieces put new vertices on a unit's edge, the pieces' sum can differ from the
        unit's area by up to this much without any gap or overlap: a few m² for parcel-sized
        edges, hundreds of m² for a unit with km-long edges in lon/lat. Residuals within it
        are not reported as gaps.
    """

    rows: pd.DataFrame
    unit_areas: pd.Series
    unit_totals: pd.Series
    residual_m2: pd.Series
    uncovered_m2: float
    double_counted_m2: float
    warnings: tuple[str, ...]
    engine: str
    area_unit: str = "m2"
    layer_area_m2: float = 0.0
    overlaps: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["unit_a", "unit_b", "area_m2", "layer_area_m2"]
        )
    )
    stats: Mapping[str, int] = field(default_factory=dict)
    equal_area_crs: str = ""
    edge_bulge_m2: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    def in_unit(self, unit_name: str) -> AreaTable:
        """Return the same table shown in ``unit_name`` (``km2``, ``ha``, ``mu`` or ``m2``).

        ``rows.area`` and :meth:`to_records` / :meth:`summary` switch unit; the ``*_m2`` fields
        stay in m².
        """
        convert_area(0.0, unit_name)  # raises InputError on an unknown unit
        rows = self.rows.copy()
        rows["area"] = convert_area(rows["area_m2"].to_numpy(dtype=float), unit_name)
        return dataclasses.replace(self, rows=rows, area_unit=unit_name)

    def to_records(self, unit: str | None = None) -> list[dict[str, Any]]:
        """JSON-ready rows ``{"unit", "class", "area", "area_unit"}``."""
        unit = unit or self.area_unit
        values = np.asarray(convert_area(self.rows["area_m2"].to_numpy(dtype=float), unit))
        return [
            {"unit": _plain(u), "class": _plain(c), "area": float(v), "area_unit": unit}
            for u, c, v in zip(self.rows["unit"], self.rows["class"], values, strict=True)
        ]

    def summary(self, unit: str | None = None) -> dict[str, Any]:
        """Totals and per-unit reconciliation, JSON-ready, in ``unit``."""
        unit = unit or self.area_unit

        def conv(v: float) -> float:
            return float(convert_area(float(v), unit))

        return {
            "area_unit": unit,
            "layer_area": conv(self.layer_area_m2),
            "tabulated_area": conv(float(self.rows["area_m2"].sum())),
            "uncovered_area": conv(self.uncovered_m2),
            "double_counted_area": conv(self.double_counted_m2),
            "units": [
                {
                    "unit": _plain(name),
                    "unit_area": conv(self.unit_areas[name]),
                    "pieces_total": conv(self.unit_totals[name]),
                    "residual": conv(self.residual_m2[name]),
                    "edge_bulge": conv(self.edge_bulge_m2.get(name, 0.0)),
                }
                for name in self.unit_areas.index
            ],
            "warnings": list(self.warnings),
            "engine": self.engine,
        }


def tabulate(
    layer: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    class_field: str,
    unit_field: str,
    classify: Callable[[pd.DataFrame], pd.Series] | None = None,
    valid_classes: Collection[Any] | None = None,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int = 50_000,
    tolerance_m2: float = 1.0,
) -> AreaTable:
    """Tabulate the ellipsoidal area of each class inside each unit.

    Parameters
    ----------
    layer : GeoDataFrame or dask_geopandas.GeoDataFrame
        Polygons with a class (e.g. the land survey). A dask frame is accepted with
        ``engine='dask'`` (e.g. read from partitioned GeoParquet).
    units : GeoDataFrame
        Statistical units (e.g. townships), same CRS as ``layer``.
    class_field : str
        Field holding the raw class code.
    unit_field : str
        Field naming each unit (rows with the same name are summed together).
    classify : callable, optional
        Maps the layer's rows to class labels (NA = unknown code); default: ``class_field``.
    valid_classes : collection, optional
        Allowed labels; anything else raises :class:`ValidationError`.
    engine : {'local', 'dask'}
        ``local``: chunks over worker processes; ``dask``: dask-geopandas partitions.
    workers : int, optional
        Worker processes (local) or partitions per worker (dask); default: all CPUs.
    scheduler : str, optional
        Dask scheduler: ``threads`` (default), ``processes``, ``sync`` or a distributed
        scheduler address (``tcp://host:8786``).
    chunk_size : int
        Features per chunk or partition at most.
    tolerance_m2 : float
        Uncovered and overlap areas at or below this are not warned about, nor residuals
        within this plus the unit's ``edge_bulge_m2``.

    Returns
    -------
    AreaTable

    Raises
    ------
    InputError
        ``empty_layer`` for an empty layer or units layer; unknown engine.
    CRSError
        Missing or mixed CRS.
    ValidationError
        Missing fields, units without a name, class codes outside the table.
    GeometryError
        Invalid, empty or non-polygonal features (listed; nothing is repaired).
    """
    if engine not in ENGINES:
        raise InputError(
            f"未知的统计引擎: {engine}",
            key="unknown_engine",
            hint="可选: local, dask; PostGIS 下推请用 postgis_tabulate",
        )
    from yizhangtu.accounting.engines.dask import is_dask_frame

    lazy = is_dask_frame(layer)
    if lazy and engine != "dask":
        raise InputError("dask 数据框只能用 engine='dask' 统计", key="engine_mismatch")
    units = prepare_units(units, unit_field)
    if not lazy:
        check_not_empty(layer, "layer")
    crs = check_crs(("layer", layer), ("units", units))
    coded = None
    if not lazy:  # cheap checks first: class codes before any geometry work
        coded = classify_layer(
            layer, class_field=class_field, classify=classify, valid_classes=valid_classes
        )
    names = units[unit_field].to_numpy(dtype=object)
    job_crs = equal_area_crs_for(units.geometry)
    project = Projector.between(crs, job_crs)
    zones = build_zones(np.asarray(units.geometry.values, dtype=object), project).ready()
    warnings: list[str] = []
    span = np.ptp(np.asarray(units.to_crs(4490).total_bounds).reshape(2, 2), axis=0).max()
    if span > _WIDE_EXTENT_DEG:
        warnings.append(
            f"统计单元范围跨度约 {span:.0f} 度, 单一等积投影下长边的面积误差会增大, 建议分区统计"
        )

    if engine == "local":
        assert coded is not None
        codes, classes = coded
        job = TabulateJob(zones=zones, project=project, n_classes=len(classes))
        nworkers = default_workers(workers)
        ranges = chunk_ranges(len(layer), chunk_size, nworkers)
        geoms = np.asarray(layer.geometry.values, dtype=object)
        total = empty_tabulate_chunk(job)
        for start, chunk in run_chunks(_tabulate_task, (geoms, codes, job), ranges, nworkers):
            total.merge(chunk, offset=start)
        index = layer.index
    else:
        from yizhangtu.accounting.engines.dask import tabulate_dask

        total, classes, index = tabulate_dask(
            layer,
            coded=coded,
            zones=zones,
            project=project,
            class_field=class_field,
            classify=classify,
            valid_classes=valid_classes,
            workers=workers,
            scheduler=scheduler,
            chunk_size=chunk_size,
        )
    if total.invalid:
        raise_geometry_problems(
            [("layer", _plain(index[p]) if index is not None else p, r) for p, r in total.invalid]
        )
    return assemble_table(
        chunk=total,
        classes=classes,
        unit_names=names,
        zones=zones,
        engine=engine,
        equal_area_crs=proj_string(job_crs),
        tolerance_m2=tolerance_m2,
        warnings=warnings,
    )


def _tabulate_task(
    payload: tuple[np.ndarray, np.ndarray, TabulateJob], start: int, stop: int
) -> tuple[int, TabulateChunk]:
    geoms, codes, job = payload
    return start, tabulate_chunk(geoms[start:stop], codes[start:stop], job)


def prepare_units(units: Any, unit_field: str) -> gpd.GeoDataFrame:
    """Check the units layer: not empty, named, valid polygons (QC, no repair)."""
    if hasattr(units, "compute") and not isinstance(units, gpd.GeoDataFrame):
        units = units.compute()
    check_not_empty(units, "units")
    require_field(units, unit_field, "units")
    unnamed = units[unit_field].isna().to_numpy()
    if unnamed.any():
        raise ValidationError(
            f"{int(unnamed.sum())} 个统计单元没有名称",
            key="unit_unnamed",
            field=unit_field,
            feature=_plain(units.index[np.flatnonzero(unnamed)[0]]),
        )
    bad, reasons = geometry_problems(np.asarray(units.geometry.values, dtype=object))
    raise_geometry_problems(
        [("units", _plain(units.index[p]), r) for p, r in zip(bad, reasons, strict=True)]
    )
    return units


def assemble_table(
    *,
    chunk: TabulateChunk,
    classes: np.ndarray,
    unit_names: np.ndarray,
    zones: Zones,
    engine: str,
    equal_area_crs: str,
    tolerance_m2: float,
    warnings: list[str],
) -> AreaTable:
    """Turn merged chunk sums into an :class:`AreaTable` (shared by the in-process engines)."""
    ncls = len(classes)
    acc = chunk.acc.reshape(len(unit_names), ncls) if ncls else np.zeros((len(unit_names), 0))
    ui, ci = np.nonzero(acc > 0)
    rows = pd.DataFrame(
        {
            "unit": pd.Series(unit_names[ui], dtype=object),
            "class": pd.Series(classes[ci], dtype=object),
            "area_m2": acc[ui, ci],
        }
    )
    unit_areas = pd.Series(zones.area, index=pd.Index(unit_names, dtype=object))
    unit_bulge = pd.Series(zones.bulge, index=pd.Index(unit_names, dtype=object))
    pairs = zones.overlap_pairs
    overlaps = pd.DataFrame(
        {
            "unit_a": pd.Series(unit_names[pairs[:, 0]], dtype=object),
            "unit_b": pd.Series(unit_names[pairs[:, 1]], dtype=object),
            "area_m2": zones.overlap_area,
            "layer_area_m2": chunk.overlap_layer,
        }
    )
    return finish_table(
        rows=rows,
        unit_areas=unit_areas,
        unit_bulge=unit_bulge,
        layer_area_m2=chunk.layer_area,
        overlaps=overlaps,
        engine=engine,
        stats=dict(chunk.stats),
        equal_area_crs=equal_area_crs,
        tolerance_m2=tolerance_m2,
        warnings=warnings,
    )


def finish_table(
    *,
    rows: pd.DataFrame,
    unit_areas: pd.Series,
    unit_bulge: pd.Series,
    layer_area_m2: float,
    overlaps: pd.DataFrame,
    engine: str,
    stats: Mapping[str, int],
    equal_area_crs: str,
    tolerance_m2: float,
    warnings: list[str],
) -> AreaTable:
    """Group, reconcile and warn (shared by every engine, PostGIS included)."""
    if stats.get("features", 1) == 0:
        raise InputError("图层为空, 没有任何要素", key="empty_layer", data={"layer": "layer"})
    rows = rows.groupby(["unit", "class"], sort=True)["area_m2"].sum().reset_index()
    rows = rows[rows["area_m2"] > 0].reset_index(drop=True)
    rows["area"] = rows["area_m2"]
    unit_areas = unit_areas.groupby(level=0, sort=True).sum().rename("area_m2")
    unit_areas.index.name = "unit"
    bulge = unit_bulge.groupby(level=0, sort=True).sum().rename("area_m2")
    bulge.index.name = "unit"
    unit_totals = (
        rows.groupby("unit")["area_m2"].sum().reindex(unit_areas.index, fill_value=0.0)
    ).rename("area_m2")
    residual = (unit_areas - unit_totals).rename("area_m2")
    overlaps = _normalise_pairs(overlaps)
    double_counted = float(overlaps["area_m2"].sum()) if len(overlaps) else 0.0
    twice = float(overlaps["layer_area_m2"].sum()) if len(overlaps) else 0.0
    uncovered = layer_area_m2 - float(rows["area_m2"].sum()) + twice
    if -tolerance_m2 <= uncovered < 0:
        uncovered = 0.0  # floating-point noise of the subtraction
    warnings = list(warnings)
    if double_counted > tolerance_m2:
        warnings.append(
            f"统计单元之间有 {len(overlaps)} 处重叠, 重叠面积合计 {double_counted:.2f} 平方米;"
            f" 其中图层面积 {twice:.2f} 平方米被重复计入两个单元"
        )
    if uncovered > tolerance_m2:
        share = uncovered / layer_area_m2 if layer_area_m2 else 0.0
        warnings.append(
            f"图层有 {uncovered:.2f} 平方米 ({share:.4%}) 位于所有统计单元之外, 未计入任何单元"
        )
    elif uncovered < -tolerance_m2:
        warnings.append(
            f"图层覆盖面积的核算差为 {uncovered:.2f} 平方米 (为负), 统计单元可能存在三重及以上重叠"
        )
    margin = bulge.reindex(residual.index, fill_value=0.0) + tolerance_m2
    gaps = residual[residual > margin]
    if len(gaps):
        listed = ", ".join(str(u) for u in gaps.sort_values(ascending=False).index[:5])
        warnings.append(
            f"{len(gaps)} 个统计单元未被图层完全覆盖, 未覆盖面积合计 {float(gaps.sum()):.2f}"
            f" 平方米 (如 {listed})"
        )
    excess = residual[residual < -margin]
    if len(excess):
        listed = ", ".join(str(u) for u in excess.sort_values().index[:5])
        warnings.append(
            f"{len(excess)} 个统计单元内图斑面积合计超出单元面积 {float(-excess.sum()):.2f}"
            f" 平方米, 图层可能自身重叠 (如 {listed})"
        )
    return AreaTable(
        rows=rows,
        unit_areas=unit_areas,
        unit_totals=unit_totals,
        residual_m2=residual,
        uncovered_m2=float(uncovered),
        double_counted_m2=double_counted,
        warnings=tuple(warnings),
        engine=engine,
        layer_area_m2=float(layer_area_m2),
        overlaps=overlaps.reset_index(drop=True),
        stats={k: int(v) for k, v in stats.items()},
        equal_area_crs=equal_area_crs,
        edge_bulge_m2=bulge,
    )


def _normalise_pairs(overlaps: pd.DataFrame) -> pd.DataFrame:
    """Name each overlapping pair in a stable order so engines report identical tables."""
    if not len(overlaps):
        return overlaps.reset_index(drop=True)
    a = overlaps["unit_a"].map(str)
    b = overlaps["unit_b"].map(str)
    swap = (a > b).to_numpy()
    out = overlaps.copy()
    out.loc[swap, ["unit_a", "unit_b"]] = overlaps.loc[swap, ["unit_b", "unit_a"]].to_numpy()
    key = out["unit_a"].map(str) + "\x00" + out["unit_b"].map(str)
    return out.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
