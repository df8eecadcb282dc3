"""Geometry repair (几何修复) with a finding for every change."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.qc._geom import (
    family_of,
    fmt_area,
    fmt_xy,
    layer_family,
    make_valid,
    parse_reason,
    polygonal,
    reason_zh,
)
from yizhangtu.qc.checks import FeatureRefs
from yizhangtu.qc.report import Finding

__all__ = ["repair"]


def repair(
    gdf: gpd.GeoDataFrame, *, id_field: str | None = None
) -> tuple[gpd.GeoDataFrame, tuple[Finding, ...]]:
    """Make invalid geometries valid and report each change.

    Uses ``shapely.make_valid`` (method 'structure' where GEOS supports it). In a polygon
    layer only the polygonal parts of the result are kept (collapsed lines and points are
    dropped), and a one-part result of a Polygon stays a Polygon. Valid, empty and missing
    geometries are left as they are.

    Parameters
    ----------
    gdf : GeoDataFrame
    id_field : str, optional
        Field naming features in the findings (else the row index label).

    Returns
    -------
    (GeoDataFrame, tuple of Finding)
        A repaired copy, and one ``repair`` warning per changed feature giving the GEOS
        reason, geometry type and ellipsoidal area before and after (areas only when the
        layer has a CRS). A result that collapsed to empty is an error.
    """
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    live = ~shapely.is_missing(geoms)
    live[live] = ~shapely.is_empty(geoms[live])
    valid = np.ones(len(geoms), dtype=bool)
    valid[live] = shapely.is_valid(geoms[live])
    rows = np.flatnonzero(~valid)
    out = gdf.copy()
    if len(rows) == 0:
        return out, ()

    before = geoms[rows]
    reasons = shapely.is_valid_reason(before)
    fixed = make_valid(before)
    family = family_of(geoms)
    if layer_family(family, live) == "polygon":
        poly_rows = family[rows] == "polygon"
        kept = polygonal(fixed[poly_rows])
        single = np.array([g is not None and len(g.geoms) == 1 for g in kept], dtype=bool)
        was_single = shapely.get_type_id(before[poly_rows]) == 3
        kept[single & was_single] = shapely.get_geometry(kept[single & was_single], 0)
        kept[np.array([g is None for g in kept], dtype=bool)] = shapely.Polygon()
        fixed[poly_rows] = kept

    polygon_row = np.isin(family[rows], ("polygon", "collection"))
    if gdf.crs is not None:
        area_before = ellipsoidal_area(gpd.GeoSeries(before, crs=gdf.crs))
        area_after = ellipsoidal_area(gpd.GeoSeries(fixed, crs=gdf.crs))
    else:
        area_before = area_after = np.full(len(rows), np.nan)
    # Areas mean something only for polygons.
    area_before[~polygon_row] = np.nan
    area_after[~polygon_row] = np.nan
    geographic = bool(gdf.crs is not None and gdf.crs.is_geographic)

    refs = FeatureRefs(gdf, id_field)
    findings = []
    for k, i in enumerate(rows):
        text, x, y = parse_reason(reasons[k])
        t0, t1 = before[k].geom_type, fixed[k].geom_type
        collapsed = bool(shapely.is_empty(fixed[k]))
        a0, a1 = float(area_before[k]), float(area_after[k])
        areas = f"; 面积 {fmt_area(a0)} → {fmt_area(a1)} ㎡" if np.isfinite(a0) else ""
        tail = "; 修复后几何为空 (退化), 请核查" if collapsed else ""
        findings.append(
            Finding(
                "repair",
                "error" if collapsed else "warning",
                f"要素 {refs.text(int(i))} 已修复无效几何: "
                f"{reason_zh(text)} {fmt_xy(x, y, geographic)}"
                f"; 类型 {t0} → {t1}{areas}{tail}",
                feature=refs.key(int(i)),
                reason=reasons[k],
                x=x,
                y=y,
                area_m2=a1 if np.isfinite(a1) else None,
                geometry=fixed[k],
                detail={
                    "type_before": t0,
                    "type_after": t1,
                    "area_before_m2": a0 if np.isfinite(a0) else None,
                    "area_after_m2": a1 if np.isfinite(a1) else None,
                },
            )
        )
    new = geoms.copy()
    new[rows] = fixed
    out[out.geometry.name] = gpd.GeoSeries(new, index=gdf.index, crs=gdf.crs)
    return out, tuple(findings)
