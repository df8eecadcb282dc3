"""Geometry kernel of the reduction ledger: one equal-area plane per job.

Every figure of one ledger job (unit stocks, removed and added areas, plot measures) is cut and
measured in the same Lambert azimuthal equal-area plane
(:func:`yizhangtu.geo.area.equal_area_crs_for` of the whole job's extent). Planar areas there
are the ellipsoidal areas of
:func:`yizhangtu.geo.area.ellipsoidal_area`; measuring everything in one plane is what makes
net = removed − added reconcile to float rounding. (:func:`yizhangtu.accounting.overlay` picks a
plane per call, so figures from separate calls would differ by ~1e-9 relative.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.geo.area import equal_area_crs_for, to_geographic

__all__ = [
    "Pieces",
    "Plane",
    "difference_each",
    "drop_slivers",
    "fsum_by",
    "intersect",
    "polygonal",
    "wkb_keys",
]

_POLY_TYPES = (3, 6)  # Polygon, MultiPolygon
_COLLECTION = 7
#: A cut that keeps all but this share of a geometry's area keeps the geometry whole, and a
#: difference smaller than this share of it is empty. Vertices inserted on a straight edge in
#: another CRS (a survey cut in Gauss–Krüger, a parcel clipped in lon/lat) lie a few µm off the
#: chord in the equal-area plane; without this, such T-junctions leave slivers of ~1e-8 of the
#: area at every shared edge.
REL_EPS = 1e-6
#: Polygon parts narrower than this on average (2·area/perimeter, m) are slivers.
SLIVER_WIDTH_M = 1e-3


@dataclass(frozen=True)
class Plane:
    """The equal-area plane of one job."""

    crs: CRS

    @classmethod
    def for_frames(cls, *frames: gpd.GeoDataFrame | gpd.GeoSeries | None) -> Plane:
        """Plane centred on the combined lon/lat extent of the non-empty frames."""
        boxes = []
        for f in frames:
            if f is None or len(f) == 0:
                continue
            geo = to_geographic(f.geometry if isinstance(f, gpd.GeoDataFrame) else f)
            b = geo.total_bounds
            if np.all(np.isfinite(b)):
                boxes.append(shapely.box(*b))
        return cls(equal_area_crs_for(gpd.GeoSeries(boxes, crs=4490)))

    def project(self, frame: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
        """Geometries of ``frame`` in the plane, as an object array."""
        geoms = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
        if len(geoms) == 0:
            return np.empty(0, dtype=object)
        return np.asarray(to_geographic(geoms).to_crs(self.crs).values, dtype=object)

    @property
    def proj(self) -> str:
        """PROJ string (provenance)."""
        return str(self.crs.srs)


def polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal part of each geometry; None where there is none."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.empty(len(geoms), dtype=object)
    if len(geoms) == 0:
        return out
    types = shapely.get_type_id(geoms)
    ok = np.isin(types, _POLY_TYPES)
    out[ok] = geoms[ok]
    for i in np.flatnonzero(types == _COLLECTION):
        parts = [
            p
            for p in shapely.get_parts(geoms[i])
            if shapely.get_type_id(p) in _POLY_TYPES and not p.is_empty
        ]
        out[i] = shapely.union_all(parts) if parts else None
    return out


@dataclass(frozen=True)
class Pieces:
    """Polygonal intersections of two geometry arrays: rows ``ia`` of a, ``ib`` of b."""

    ia: np.ndarray
    ib: np.ndarray
    geoms: np.ndarray
    area: np.ndarray

    @classmethod
    def empty(cls) -> Pieces:
        """No pieces."""
        z = np.empty(0, dtype=np.int64)
        return cls(z, z.copy(), np.empty(0, dtype=object), np.empty(0, dtype=float))


def intersect(a: np.ndarray, b: np.ndarray) -> Pieces:
    """All polygonal pieces ``a[i] ∩ b[j]`` with positive area (plane coordinates).

    A geometry wholly inside the other is taken as it is (no cut), so unchanged parcels keep
    their exact area.
    """
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    if len(a) == 0 or len(b) == 0:
        return Pieces.empty()
    tree = shapely.STRtree(b)
    ia, ib = tree.query(a, predicate="intersects")
    if len(ia) == 0:
        return Pieces.empty()
    ga, gb = a[ia], b[ib]
    shapely.prepare(gb)
    inside = shapely.contains_properly(gb, ga)
    shapely.prepare(ga)
    cover = shapely.contains_properly(ga, gb) & ~inside
    same = shapely.equals_exact(ga, gb, tolerance=0.0) & ~inside & ~cover
    out = np.empty(len(ia), dtype=object)
    out[inside | same] = ga[inside | same]
    out[cover] = gb[cover]
    rest = ~(inside | cover | same)
    if rest.any():
        cut = polygonal(shapely.intersection(ga[rest], gb[rest]))
        a_cut = np.nan_to_num(np.asarray(shapely.area(cut), dtype=float))
        whole_a = a_cut >= (1 - REL_EPS) * shapely.area(ga[rest])
        whole_b = ~whole_a & (a_cut >= (1 - REL_EPS) * shapely.area(gb[rest]))
        cut[whole_a] = ga[rest][whole_a]
        cut[whole_b] = gb[rest][whole_b]
        out[rest] = cut
    area = np.nan_to_num(np.asarray(shapely.area(out), dtype=float))
    keep = area > 0
    return Pieces(ia[keep].astype(np.int64), ib[keep].astype(np.int64), out[keep], area[keep])


def difference_each(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[i] − ⋃ b`` for each i (polygonal; None when nothing is left)."""
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    out = a.copy()
    if len(a) == 0 or len(b) == 0:
        return out
    tree = shapely.STRtree(b)
    ia, ib = tree.query(a, predicate="intersects")
    if len(ia) == 0:
        return out
    order = np.argsort(ia, kind="stable")
    ia, ib = ia[order], ib[order]
    starts = np.flatnonzero(np.r_[True, ia[1:] != ia[:-1]])
    stops = np.r_[starts[1:], len(ia)]
    for s, e in zip(starts, stops, strict=True):
        i = int(ia[s])
        others = b[ib[s:e]]
        cut = others[0] if e - s == 1 else shapely.union_all(others)
        left = polygonal(np.array([shapely.difference(a[i], cut)], dtype=object))[0]
        if left is not None and shapely.area(left) <= REL_EPS * shapely.area(a[i]):
            left = None
        out[i] = None if left is None else drop_slivers(left)
    keep = np.array(
        [g is not None and not g.is_empty and shapely.area(g) > 0 for g in out], dtype=bool
    )
    out[~keep] = None
    return out


def drop_slivers(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Remove polygon parts narrower than :data:`SLIVER_WIDTH_M` on average."""
    parts = shapely.get_parts(geom)
    width = 2 * shapely.area(parts) / np.maximum(shapely.length(parts), 1e-300)
    kept = parts[width >= SLIVER_WIDTH_M]
    if len(kept) == len(parts):
        return geom
    if len(kept) == 0:
        return None
    return kept[0] if len(kept) == 1 else shapely.MultiPolygon(list(kept))


def fsum_by(keys: Sequence[object] | np.ndarray, values: np.ndarray) -> dict[object, float]:
    """Exactly rounded sum of ``values`` per key (:func:`math.fsum`)."""
    groups: dict[object, list[float]] = {}
    for k, v in zip(keys, values, strict=True):
        groups.setdefault(k, []).append(float(v))
    return {k: math.fsum(v) for k, v in groups.items()}


def wkb_keys(frame: gpd.GeoDataFrame) -> pd.Series:
    """Hex WKB of each geometry (to find parcels unchanged between two surveys)."""
    return pd.Series(
        shapely.to_wkb(np.asarray(frame.geometry.values, dtype=object), hex=True), index=frame.index
    )
