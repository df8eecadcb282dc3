"""Vectorised geometry helpers for the QC checks (shapely 2)."""

from __future__ import annotations

import re

import numpy as np
import shapely
from shapely.errors import GEOSException, UnsupportedGEOSVersionError

__all__ = [
    "FAMILY_TITLES",
    "family_of",
    "fmt_area",
    "fmt_xy",
    "layer_family",
    "make_valid",
    "parse_reason",
    "polygonal",
    "reason_zh",
    "representative_xy",
]

FAMILY_TITLES = {"polygon": "面", "line": "线", "point": "点", "collection": "几何集合"}

_REASONS_ZH = {
    "Self-intersection": "自相交",
    "Ring Self-intersection": "环自相交",
    "Hole lies outside shell": "内环位于外环之外",
    "Nested holes": "内环嵌套",
    "Interior is disconnected": "内部不连通",
    "Nested shells": "外环嵌套",
    "Duplicate Rings": "环重复",
    "Too few points in geometry component": "组成部分的点数过少",
    "Invalid Coordinate": "坐标无效",
    "Ring is not closed": "环未闭合",
    "Repeated Point": "重复点",
}
_REASON_RE = re.compile(r"^(?P<text>[^\[]*)\[(?P<x>\S+) (?P<y>\S+)(?: \S+)?\]\s*$")


def family_of(geoms: np.ndarray) -> np.ndarray:
    """Family ('polygon', 'line', 'point', 'collection', '' for missing) of each geometry."""
    ids = shapely.get_type_id(geoms)  # -1 for a missing geometry
    lookup = np.array(
        ["point", "line", "line", "polygon", "point", "line", "polygon", "collection", ""]
    )
    return lookup[np.where(ids < 0, 8, ids)]


def layer_family(family: np.ndarray, live: np.ndarray) -> str | None:
    """Return the most common family among ``live`` features, collections aside.

    Ties go to polygon, then line, then point; ``None`` when nothing qualifies.
    """
    kinds, counts = np.unique(
        family[live & (family != "collection") & (family != "")], return_counts=True
    )
    if not len(kinds):
        return None
    pref = {"polygon": 0, "line": 1, "point": 2}
    best = sorted(zip(kinds, counts, strict=True), key=lambda kc: (-kc[1], pref[str(kc[0])]))
    return str(best[0][0])


def polygonal(geoms: np.ndarray) -> np.ndarray:
    """Return the polygonal part of each geometry as a MultiPolygon (``None`` if none).

    Polygons and MultiPolygons come back as MultiPolygons; GeometryCollections (e.g. from
    ``make_valid``) keep only their polygons.
    """
    n = len(geoms)
    out = np.full(n, None, dtype=object)
    if n == 0:
        return out
    parts, idx = shapely.get_parts(geoms, return_index=True)
    # A collection may hold MultiPolygons: split once more.
    parts, sub = shapely.get_parts(parts, return_index=True)
    idx = idx[sub]
    keep = shapely.get_type_id(parts) == 3
    keep &= ~shapely.is_empty(parts)
    if keep.any():
        shapely.multipolygons(parts[keep], indices=idx[keep], out=out)
    return out


def parse_reason(reason: str | None) -> tuple[str, float | None, float | None]:
    """Split a GEOS validity reason into (text, x, y)."""
    if not reason:
        return "", None, None
    m = _REASON_RE.match(reason)
    if not m:
        return reason.strip(), None, None
    try:
        return m["text"].strip(), float(m["x"]), float(m["y"])
    except ValueError:
        return m["text"].strip(), None, None


def reason_zh(text: str) -> str:
    """Chinese for a GEOS validity reason (the reason itself when unknown)."""
    return _REASONS_ZH.get(text, text)


def _fmt_num(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def fmt_xy(x: float | None, y: float | None, geographic: bool) -> str:
    """Format a location: 6 decimals for lon/lat (≈0.1 m), 2 for metres."""
    if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
        return ""
    d = 6 if geographic else 2
    return f"({_fmt_num(x, d)}, {_fmt_num(y, d)})"


def fmt_area(a: float | None) -> str:
    """Format an area in m² for a message."""
    if a is None or not np.isfinite(a):
        return "?"
    if a == 0 or abs(a) >= 100:
        return f"{a:,.2f}"
    return f"{a:.4g}"


def representative_xy(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return a point on each geometry (NaN for missing or empty ones)."""
    x = np.full(len(geoms), np.nan)
    y = np.full(len(geoms), np.nan)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms) if len(geoms) else np.zeros(0, bool)
    if not ok.any():
        return x, y
    sel = geoms[ok]
    try:
        pts = shapely.point_on_surface(sel)
    except GEOSException:  # invalid input can defeat point_on_surface
        pts = np.array([_safe_point(g) for g in sel], dtype=object)
    x[ok] = shapely.get_x(pts)
    y[ok] = shapely.get_y(pts)
    return x, y


def _safe_point(g: shapely.Geometry) -> shapely.Geometry:
    try:
        return shapely.point_on_surface(g)
    except GEOSException:
        return shapely.centroid(g)


def make_valid(geoms: np.ndarray) -> np.ndarray:
    """``shapely.make_valid`` with the 'structure' method (GEOS 3.10+), dropping collapsed parts.

    Falls back to the default 'linework' method where 'structure' is not available.
    """
    try:
        return shapely.make_valid(geoms, method="structure", keep_collapsed=False)
    except (TypeError, ValueError, UnsupportedGEOSVersionError):
        return shapely.make_valid(geoms)
