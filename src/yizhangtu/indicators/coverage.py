"""Geometry helpers of indicator formulas: facility counts per unit and service coverage.

Coverage method (``coverage`` formulas)
---------------------------------------
1. Units and facilities are projected to one CGCS2000 3-degree Gauss–Krüger zone (EPSG
   4534–4554, chosen by the longitude of the units' centre). Gauss–Krüger is conformal with
   a scale factor within 2·10⁻⁴ of 1 across a zone, so a buffer of *r* metres there is a
   true straight-line (Euclidean) radius of *r* metres on the ground.
2. Every facility is buffered by *r* (a point becomes a disc, a polygon such as a park grows
   by *r*). The buffers of a layer are dissolved. With ``combine='all'`` (e.g. a complete
   15-minute life circle) the dissolved layers are intersected, with ``'any'`` united.
3. Each unit is intersected with the service area. The unit's coverage is the covered share
   of its area, computed on the same plane (a ratio, so the tiny GK scale error cancels).
4. Within a unit the population is assumed evenly spread, so the area share is also the
   population share. When a population-by-unit table is supplied, an aggregate over several
   units weights each unit's share by its population; otherwise by its area.

The straight-line radius ignores the street network, barriers and entrances: it is an upper
bound of walking-distance coverage and is labelled as such in reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.geo.area import gk_zone_epsg, to_geographic

__all__ = ["count_in_units", "covered_area", "gk_crs_for", "sum_in_units"]


def gk_crs_for(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> CRS:
    """CGCS2000 3-degree GK zone (no zone prefix) for the centre of ``gdf``."""
    geo = to_geographic(gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf)
    minx, _, maxx, _ = geo.total_bounds
    return CRS.from_epsg(int(gk_zone_epsg((minx + maxx) / 2.0)))


def _to(gdf: gpd.GeoDataFrame, crs: CRS) -> gpd.GeoDataFrame:
    return gdf.set_geometry(to_geographic(gdf.geometry)).to_crs(crs)


def _assign(units: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame) -> pd.DataFrame:
    crs = gk_crs_for(units)
    u = _to(units[["unit_id", units.geometry.name]], crs)
    f = _to(facilities, crs).reset_index(drop=True)
    f = f[~f.geometry.is_empty & f.geometry.notna()]
    pts = f.set_geometry(f.geometry.representative_point())
    joined = gpd.sjoin(pts, u, how="inner", predicate="intersects")
    # a point on a shared border belongs to one unit only
    return joined[~joined.index.duplicated(keep="first")]


def count_in_units(units: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame) -> pd.Series:
    """Count facilities (by representative point) in each unit; 0 where none."""
    joined = _assign(units, facilities)
    counts = joined.groupby("unit_id").size()
    return counts.reindex(units["unit_id"], fill_value=0).astype(float)


def sum_in_units(units: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, column: str) -> pd.Series:
    """Sum of a numeric facility attribute in each unit; 0 where none."""
    joined = _assign(units, facilities)
    vals = pd.to_numeric(joined[column], errors="coerce")
    sums = vals.groupby(joined["unit_id"]).sum(min_count=1)
    return sums.reindex(units["unit_id"]).fillna(0.0).astype(float)


def covered_area(
    units: gpd.GeoDataFrame,
    layers: Sequence[gpd.GeoDataFrame],
    radius_m: float,
    combine: str = "any",
) -> tuple[pd.Series, pd.Series]:
    """Covered and total planar (GK) area of each unit, in m².

    Parameters
    ----------
    units : GeoDataFrame
        Units with ``unit_id``.
    layers : sequence of GeoDataFrame
        Facility layers.
    radius_m : float
        Straight-line service radius.
    combine : {'any', 'all'}
        Union or intersection of the layers' service areas.

    Returns
    -------
    (covered, total) : tuple of Series indexed by unit_id
    """
    crs = gk_crs_for(units)
    u = _to(units[["unit_id", units.geometry.name]], crs)
    service = []
    for layer in layers:
        g = _to(layer, crs).geometry
        g = g[g.notna() & ~g.is_empty]
        if len(g) == 0:
            service.append(shapely.Polygon())
            continue
        service.append(
            shapely.union_all(shapely.buffer(np.asarray(g.values), radius_m, quad_segs=16))
        )
    if not service:
        area = shapely.Polygon()
    elif combine == "all":
        area = service[0]
        for s in service[1:]:
            area = shapely.intersection(area, s)
    else:
        area = shapely.union_all(service)
    geoms = np.asarray(u.geometry.values)
    total = shapely.area(geoms)
    covered = (
        shapely.area(shapely.intersection(geoms, area))
        if not area.is_empty
        else np.zeros(len(geoms))
    )
    idx = u["unit_id"].to_numpy()
    return pd.Series(covered, index=idx, dtype=float), pd.Series(total, index=idx, dtype=float)
