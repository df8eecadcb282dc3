"""Control lines (三条控制线, 两线三区): catalogue, mutual overlaps, zone shares.

* :func:`line_types` — the catalogue of line and zone types (``data/line_types.yaml``).
* :func:`line_overlaps` — patches where control lines that must exclude one another overlap
  (生态保护红线, 永久基本农田, 城镇开发边界 by default; the list is pack data), with areas;
  slivers below the pack's tolerance are counted apart.
* :func:`zone_shares` — each zone's share of each jurisdiction (e.g. Beijing's 生态控制区),
  checked against the pack's targets.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.accounting import overlay, tabulate
from yizhangtu.conformance._common import explode_patches, read_data_yaml, require_crs
from yizhangtu.conformance.rules import PairOverlap, ZoneShareSubject, evaluate
from yizhangtu.conformance.tolerance import Tolerances, split_slivers
from yizhangtu.errors import CRSError, InputError, NotFoundError
from yizhangtu.geo.area import convert_area
from yizhangtu.policy import PolicyPack
from yizhangtu.policy.rules import Finding

__all__ = [
    "LineOverlapResult",
    "LineType",
    "ZoneShareResult",
    "line_overlaps",
    "line_type",
    "line_types",
    "select_zone",
    "zone_shares",
]


@dataclass(frozen=True)
class LineType:
    """One control line or zone type of the catalogue."""

    id: str
    title: str
    layer: str
    national: bool
    zone_value: str | None = None
    jurisdiction: str | None = None
    group: str | None = None
    basis: str = ""


def line_types() -> dict[str, LineType]:
    """Return the catalogue, by id, in file order."""
    doc = read_data_yaml("line_types.yaml")
    return {
        k: LineType(
            id=k,
            title=v["title"],
            layer=v["layer"],
            national=bool(v.get("national", False)),
            zone_value=v.get("zone_value"),
            jurisdiction=v.get("jurisdiction"),
            group=v.get("group"),
            basis=v.get("basis", ""),
        )
        for k, v in doc["types"].items()
    }


def line_type(type_id: str) -> LineType:
    """One catalogue entry; NotFoundError for an unknown id."""
    types = line_types()
    if type_id not in types:
        raise NotFoundError(
            f"未知的管控线类型: {type_id}",
            key="line_type_unknown",
            hint="可选: " + "、".join(f"{k}({v.title})" for k, v in types.items()),
        )
    return types[type_id]


def select_zone(zones: gpd.GeoDataFrame, lt: LineType, zone_field: str) -> gpd.GeoDataFrame:
    """Features of a zones layer that make up zone type ``lt`` (all features if it is a line)."""
    if lt.zone_value is None:
        return zones
    if zone_field not in zones.columns:
        raise InputError(
            f"分区图层缺少分区字段 {zone_field}",
            key="zone_field_missing",
            field=zone_field,
            hint="用 --zone-field 指定存放 集中建设区/限制建设区/生态控制区 的字段",
        )
    return zones[zones[zone_field].astype(str) == lt.zone_value]


def _same_crs(frames: Mapping[str, gpd.GeoDataFrame]) -> Any:
    crs = None
    for name, g in frames.items():
        c = require_crs(g, f"图层 {name} ")
        if crs is None:
            crs = c
        elif not c.equals(crs):
            raise CRSError(
                f"图层坐标系不一致: {name} 为 {c.to_string()}, 其他为 {crs.to_string()}",
                key="crs_mixed",
                hint="先把图层导入同一工作空间 (统一为存储坐标系)",
            )
    return crs


@dataclass(frozen=True)
class LineOverlapResult:
    """Overlaps between control lines.

    Attributes
    ----------
    patches : GeoDataFrame
        ``line_a``, ``line_b``, ``title_a``, ``title_b``, ``a_*``/``b_*`` attributes of the two
        features, ``area_m2`` (ellipsoidal), ``width_m``, geometry. Slivers excluded.
    slivers : GeoDataFrame
        The same columns for the slivers.
    pairs : list of PairOverlap
        One entry per pair examined.
    findings : list of Finding
        Verdicts of ``conformance.line_mutual_overlap``.
    line_areas_m2 : mapping
        Total area of each line layer.
    """

    patches: gpd.GeoDataFrame
    slivers: gpd.GeoDataFrame
    pairs: list[PairOverlap]
    findings: list[Finding]
    line_areas_m2: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No error finding."""
        return not any(f.severity == "error" for f in self.findings)

    def summary(self, unit: str = "m2") -> list[dict[str, Any]]:
        """JSON-ready rows per pair, areas in ``unit``."""
        return [
            {
                "line_a": p.line_a,
                "line_b": p.line_b,
                "title_a": p.title_a,
                "title_b": p.title_b,
                "overlap_area": float(convert_area(p.overlap_m2, unit)),
                "patch_count": p.patch_count,
                "sliver_area": float(convert_area(p.sliver_m2, unit)),
                "sliver_count": p.sliver_count,
                "area_unit": unit,
            }
            for p in self.pairs
        ]


def _prefixed(gdf: gpd.GeoDataFrame, prefix: str) -> gpd.GeoDataFrame:
    keep = [c for c in gdf.columns if c != gdf.geometry.name]
    out = gdf[keep].rename(columns={c: f"{prefix}{c}" for c in keep})
    return gpd.GeoDataFrame(out, geometry=gdf.geometry.values, crs=gdf.crs)


def pair_patches(
    a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, *, workers: int | None = 1
) -> gpd.GeoDataFrame:
    """Intersect two polygon layers into patches (one row per polygon), ``a_``/``b_`` columns."""
    if len(a) == 0 or len(b) == 0:
        cols = {f"a_{c}": pd.Series(dtype=object) for c in a.columns if c != a.geometry.name}
        cols |= {f"b_{c}": pd.Series(dtype=object) for c in b.columns if c != b.geometry.name}
        return gpd.GeoDataFrame(
            cols | {"area_m2": pd.Series(dtype=float)},
            geometry=gpd.GeoSeries([], crs=a.crs or b.crs),
        )
    pieces = overlay(_prefixed(a, "a_"), _prefixed(b, "b_"), how="intersection", workers=workers)
    return explode_patches(pieces)


def line_overlaps(
    lines: Mapping[str, gpd.GeoDataFrame],
    *,
    tol: Tolerances,
    packs: Sequence[PolicyPack],
    at: date,
    pairs: Sequence[tuple[str, str]] | None = None,
    workers: int | None = 1,
) -> LineOverlapResult:
    """Find where control lines overlap one another.

    Parameters
    ----------
    lines : mapping
        Line type id (see :func:`line_types`) → polygon layer, all in one CRS.
    tol : Tolerances
        Sliver thresholds.
    packs : sequence of PolicyPack
        Packs whose ``conformance.line_mutual_overlap`` rule judges each pair.
    at : date
        Evaluation date.
    pairs : sequence of (type, type), optional
        Pairs to examine; default every pair of the given lines.

    Returns
    -------
    LineOverlapResult
    """
    types = line_types()
    for k in lines:
        if k not in types:
            line_type(k)  # raises with the list
    if lines:
        _same_crs(lines)
    todo = list(pairs) if pairs is not None else list(itertools.combinations(list(lines), 2))
    kept_all: list[gpd.GeoDataFrame] = []
    slivers_all: list[gpd.GeoDataFrame] = []
    out_pairs: list[PairOverlap] = []
    findings: list[Finding] = []
    for la, lb in todo:
        if la not in lines or lb not in lines:
            missing = la if la not in lines else lb
            raise InputError(
                f"没有管控线图层: {missing} ({types[missing].title if missing in types else ''})",
                key="line_layer_missing",
                field=missing,
            )
        patches = pair_patches(lines[la], lines[lb], workers=workers)
        kept, slivers = split_slivers(patches, tol)
        for frame in (kept, slivers):
            frame.insert(0, "title_b", types[lb].title)
            frame.insert(0, "title_a", types[la].title)
            frame.insert(0, "line_b", lb)
            frame.insert(0, "line_a", la)
        kept_all.append(kept)
        slivers_all.append(slivers)
        po = PairOverlap(
            line_a=la,
            line_b=lb,
            title_a=types[la].title,
            title_b=types[lb].title,
            overlap_m2=float(kept["area_m2"].sum()),
            patch_count=len(kept),
            sliver_m2=float(slivers["area_m2"].sum()),
            sliver_count=len(slivers),
        )
        out_pairs.append(po)
        findings.extend(evaluate(packs, "line_pair", po, at, subject_id=f"{la}×{lb}"))
    crs = next(iter(lines.values())).crs if lines else None
    return LineOverlapResult(
        patches=_concat(kept_all, crs),
        slivers=_concat(slivers_all, crs),
        pairs=out_pairs,
        findings=findings,
        line_areas_m2={k: float(_area(g)) for k, g in lines.items()},
    )


def _area(g: gpd.GeoDataFrame) -> float:
    from yizhangtu.geo.area import ellipsoidal_area

    return float(ellipsoidal_area(g.geometry).sum()) if len(g) else 0.0


def _concat(frames: list[gpd.GeoDataFrame], crs: Any) -> gpd.GeoDataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return gpd.GeoDataFrame(
            {
                "line_a": pd.Series(dtype=object),
                "line_b": pd.Series(dtype=object),
                "title_a": pd.Series(dtype=object),
                "title_b": pd.Series(dtype=object),
                "area_m2": pd.Series(dtype=float),
                "width_m": pd.Series(dtype=float),
            },
            geometry=gpd.GeoSeries([], crs=crs),
        )
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=out.geometry.name, crs=crs)


def _plain(v: Any) -> Any:
    """JSON-ready scalar: numpy scalars unwrapped, NaN as None."""
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and v != v else v


@dataclass(frozen=True)
class ZoneShareResult:
    """Zone shares by jurisdiction.

    Attributes
    ----------
    rows : DataFrame
        ``unit``, ``unit_name``, ``zone``, ``area_m2``, ``unit_area_m2``, ``share``.
    totals : DataFrame
        ``zone``, ``area_m2``, ``share`` of the whole (sum of units).
    coverage : DataFrame
        ``unit``, ``unit_name``, ``unit_area_m2``, ``zoned_m2``, ``unzoned_m2``: zones should
        cover each jurisdiction once (全域空间管制).
    findings : list of Finding
        ``conformance.zone_share_target`` verdicts (whole area, and each unit).
    """

    rows: pd.DataFrame
    totals: pd.DataFrame
    coverage: pd.DataFrame
    findings: list[Finding]
    scope: str

    def to_dict(self, unit: str = "km2") -> dict[str, Any]:
        """JSON-ready dict, areas in ``unit``."""

        def conv(df: pd.DataFrame) -> list[dict[str, Any]]:
            d = df.copy()
            for c in [c for c in d.columns if c.endswith("_m2")]:
                d[c[:-3]] = convert_area(d[c].to_numpy(dtype=float), unit)
                d = d.drop(columns=c)
            return [{str(k): _plain(v) for k, v in r.items()} for r in d.to_dict("records")]

        return {
            "scope": self.scope,
            "area_unit": unit,
            "rows": conv(self.rows),
            "totals": conv(self.totals),
            "coverage": conv(self.coverage),
            "findings": [f.to_dict() for f in self.findings],
        }


def zone_shares(
    zones: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    zone_field: str,
    unit_field: str,
    unit_name_field: str | None = None,
    packs: Sequence[PolicyPack] = (),
    at: date,
    scope: str = "合计",
    workers: int | None = 1,
) -> ZoneShareResult:
    """Area and share of each zone in each unit (jurisdiction), checked against pack targets.

    Parameters
    ----------
    zones : GeoDataFrame
        Zones layer (e.g. 两线三区) with the zone name in ``zone_field``.
    units : GeoDataFrame
        Jurisdictions (districts, townships) named by ``unit_field``.
    packs : sequence of PolicyPack
        Packs with ``conformance.zone_share_target`` (e.g. conformance-beijing).
    scope : str
        Name of the whole area (e.g. 房山区) for the total row and the findings.
    """
    if zone_field not in zones.columns:
        raise InputError(
            f"分区图层缺少字段 {zone_field}",
            key="zone_field_missing",
            field=zone_field,
            hint="用 --zone-field 指定分区字段",
        )
    table = tabulate(zones, units, class_field=zone_field, unit_field=unit_field, workers=workers)
    names = dict(
        zip(
            units[unit_field],
            units[unit_name_field]
            if unit_name_field and unit_name_field in units.columns
            else units[unit_field],
            strict=False,
        )
    )
    rows = table.rows[["unit", "class", "area_m2"]].rename(columns={"class": "zone"}).copy()
    rows["unit_area_m2"] = rows["unit"].map(table.unit_areas).astype(float)
    rows["share"] = rows["area_m2"] / rows["unit_area_m2"]
    rows.insert(1, "unit_name", rows["unit"].map(names))
    total_area = float(table.unit_areas.sum())
    totals = rows.groupby("zone", as_index=False).agg(area_m2=("area_m2", "sum"))
    totals["share"] = totals["area_m2"] / total_area if total_area > 0 else np.nan
    coverage = pd.DataFrame(
        {
            "unit": table.unit_areas.index,
            "unit_name": [names.get(u, u) for u in table.unit_areas.index],
            "unit_area_m2": table.unit_areas.to_numpy(dtype=float),
            "zoned_m2": table.unit_totals.reindex(table.unit_areas.index)
            .fillna(0)
            .to_numpy(dtype=float),
        }
    )
    coverage["unzoned_m2"] = coverage["unit_area_m2"] - coverage["zoned_m2"]
    findings: list[Finding] = []
    subj = ZoneShareSubject(
        scope=scope,
        zone_areas_m2=dict(zip(totals["zone"], totals["area_m2"], strict=True)),
        total_m2=total_area,
    )
    findings.extend(evaluate(packs, "zone_share", subj, at, subject_id=scope))
    for u, g in rows.groupby("unit", sort=False):
        s = ZoneShareSubject(
            scope=str(names.get(u, u)),
            zone_areas_m2=dict(zip(g["zone"], g["area_m2"], strict=True)),
            total_m2=float(table.unit_areas[u]),
        )
        findings.extend(evaluate(packs, "zone_share", s, at, subject_id=str(u)))
    return ZoneShareResult(
        rows=rows.reset_index(drop=True),
        totals=totals,
        coverage=coverage,
        findings=findings,
        scope=scope,
    )
