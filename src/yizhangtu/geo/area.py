"""Feature areas on the CGCS2000 ellipsoid, and labelled Gauss–Krüger planar areas.

The reference figure is the ellipsoidal area (三调 图斑椭球面积). It is computed by projecting
to a Lambert azimuthal equal-area projection on the CGCS2000 ellipsoid, centred on the data:
an equal-area projection preserves ellipsoidal area, so the planar area of the projected
polygon equals the ellipsoidal area of the polygon up to the curvature of its edges between
vertices (below 1e-7 relative for parcel-sized edges). ``geodesic_area`` gives the
``pyproj.Geod`` figure that tests compare against.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from pyproj import CRS, Transformer

__all__ = [
    "AREA_UNITS",
    "AreaUnit",
    "convert_area",
    "ellipsoidal_area",
    "equal_area_crs_for",
    "geodesic_area",
    "gk_planar_area",
    "gk_zone_epsg",
    "to_geographic",
]

AreaUnit = Literal["m2", "ha", "km2", "mu"]

#: Square metres per unit. 1 亩 = 10000/15 m² by definition.
AREA_UNITS: dict[str, float] = {
    "m2": 1.0,
    "ha": 10_000.0,
    "km2": 1_000_000.0,
    "mu": 10_000.0 / 15.0,
}

_CGCS2000 = CRS.from_epsg(4490)


def convert_area(value_m2: float | np.ndarray, unit: str) -> float | np.ndarray:
    """Convert square metres to ``unit`` (m2, ha, km2 or mu)."""
    try:
        factor = AREA_UNITS[unit]
    except KeyError:
        from yizhangtu.errors import InputError

        raise InputError(
            f"未知的面积单位: {unit}",
            key="unknown_area_unit",
            hint="可选单位: " + ", ".join(AREA_UNITS),
        ) from None
    return value_m2 / factor


def to_geographic(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Return the geometries in CGCS2000 lon/lat (EPSG:4490)."""
    if geoms.crs is None:
        from yizhangtu.errors import CRSError

        raise CRSError(
            "几何没有坐标参考系, 无法计算面积", key="crs_missing", hint="导入时用 --crs 指定"
        )
    crs = CRS.from_user_input(geoms.crs)
    if (
        crs.is_geographic
        and crs.ellipsoid is not None
        and crs.ellipsoid.name
        in {
            "CGCS2000",
            "GRS 1980",
            "WGS 84",
        }
    ):
        # WGS84 and CGCS2000 differ by well under a metre; PROJ treats the pair as a null
        # transform, so reading lon/lat as CGCS2000 is exact for our purposes.
        return geoms.set_crs(_CGCS2000, allow_override=True)
    return geoms.to_crs(_CGCS2000)


def _laea_for(lon: float, lat: float) -> CRS:
    return CRS.from_proj4(
        f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +ellps=GRS80 +units=m +no_defs"
    )


def equal_area_crs_for(geoms: gpd.GeoSeries) -> CRS:
    """One Lambert azimuthal equal-area CRS (GRS80) centred on the extent of ``geoms``.

    Jobs that cut geometries (overlay, tabulation) project every input once to this plane and
    take planar areas there, so that every chunk, process and engine uses the same projection.
    The centre is the middle of the CGCS2000 lon/lat bounding box of ``geoms``. Planar areas in
    this CRS are the same ellipsoidal areas as :func:`ellipsoidal_area` gives (to ~1e-8).
    """
    geo = to_geographic(geoms)
    x0, y0, x1, y1 = (float(v) for v in geo.total_bounds)
    if not np.all(np.isfinite([x0, y0, x1, y1])):
        from yizhangtu.errors import GeometryError

        raise GeometryError("几何全部为空, 无法确定等积投影中心", key="empty_geometry")
    return _laea_for((x0 + x1) / 2, (y0 + y1) / 2)


def ellipsoidal_area(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry on the CGCS2000 ellipsoid, in m².

    Parameters
    ----------
    geoms : GeoSeries
        Polygons in any CRS that has an ellipsoid.

    Returns
    -------
    numpy.ndarray
        Areas in m²; 0 for empty, point or line geometries.
    """
    if len(geoms) == 0:
        return np.zeros(0)
    geo = to_geographic(geoms)
    arr = np.asarray(geo.values, dtype=object)
    valid = ~shapely.is_empty(arr) & ~shapely.is_missing(arr)
    out = np.zeros(len(arr))
    if not valid.any():
        return out
    bounds = shapely.bounds(arr[valid])
    lon0 = float(np.nanmean((bounds[:, 0] + bounds[:, 2]) / 2))
    lat0 = float(np.nanmean((bounds[:, 1] + bounds[:, 3]) / 2))
    span = max(
        np.nanmax(bounds[:, 2]) - np.nanmin(bounds[:, 0]),
        np.nanmax(bounds[:, 3]) - np.nanmin(bounds[:, 1]),
    )
    if span > 20:
        # One centre for a continent-sized extent would still be equal-area, but the
        # straight-edge approximation degrades; centre each feature on itself instead.
        for i in np.flatnonzero(valid):
            c = shapely.centroid(arr[i])
            tr = Transformer.from_crs(_CGCS2000, _laea_for(c.x, c.y), always_xy=True)
            out[i] = shapely.area(
                shapely.transform(
                    arr[i], lambda xy, t=tr: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))
                )
            )
        return out
    tr = Transformer.from_crs(_CGCS2000, _laea_for(lon0, lat0), always_xy=True)

    def _fwd(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    projected = shapely.transform(arr[valid], _fwd)
    out[valid] = shapely.area(projected)
    return out


def geodesic_area(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry by ``pyproj.Geod`` on the CGCS2000 ellipsoid, in m² (slow, exact)."""
    geod = pyproj.Geod(ellps="GRS80")
    geo = to_geographic(geoms)
    return np.array(
        [
            abs(geod.geometry_area_perimeter(g)[0]) if g is not None and not g.is_empty else 0.0
            for g in geo.values
        ]
    )


def gk_zone_epsg(lon: float | np.ndarray, with_prefix: bool = False) -> np.ndarray:
    """EPSG code of the CGCS2000 3-degree Gauss–Krüger zone for each longitude.

    Zones 25–45 (central meridians 75°E–135°E) map to EPSG:4513–4533 with the zone number
    prefixed to the easting, and to EPSG:4534–4554 without it.
    """
    zone = np.rint(np.asarray(lon, dtype=float) / 3.0).astype(int)
    zone = np.clip(zone, 25, 45)
    base = 4513 if with_prefix else 4534
    return base + (zone - 25)


def gk_planar_area(geoms: gpd.GeoSeries) -> np.ndarray:
    """Planar area in each feature's own CGCS2000 3-degree Gauss–Krüger zone, in m².

    This is a projected (高斯平面) area, labelled as such wherever it is shown; the zone is
    chosen by the feature's centroid longitude, so features across a zone border each use
    their own zone.
    """
    geo = to_geographic(geoms)
    arr = np.asarray(geo.values, dtype=object)
    out = np.zeros(len(arr))
    ok = ~shapely.is_empty(arr) & ~shapely.is_missing(arr)
    if not ok.any():
        return out
    cx = shapely.get_x(shapely.centroid(arr[ok]))
    epsg = gk_zone_epsg(cx)
    idx = np.flatnonzero(ok)
    for code in np.unique(epsg):
        sel = idx[epsg == code]
        tr = Transformer.from_crs(_CGCS2000, CRS.from_epsg(int(code)), always_xy=True)

        def _fwd(xy: np.ndarray, t: Transformer = tr) -> np.ndarray:
            x, y = t.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        out[sel] = shapely.area(shapely.transform(arr[sel], _fwd))
    return out
