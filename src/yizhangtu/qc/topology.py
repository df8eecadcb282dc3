"""Overlaps and gaps of a polygon layer (拓扑检查: 重叠, 缝隙).

The fast path uses the GEOS coverage validator (``shapely.coverage_invalid_edges``, GEOS
3.12+): in a clean tiling no polygon has an invalid edge, so only the polygons it flags are
intersected pairwise (STRtree), and the union for gaps is a ``coverage_union_all`` of the
clean part plus an ordinary union of the flagged rest. Without GEOS coverage support every
polygon is a candidate and the union is ``union_all``; results are the same, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.errors import GEOSException, UnsupportedGEOSVersionError

from yizhangtu.qc._geom import polygonal

__all__ = ["Overlaps", "coverage_flags", "find_gaps", "find_overlaps"]


def coverage_flags(polys: np.ndarray) -> np.ndarray:
    """Which polygons may overlap another or mismatch its neighbours' edges.

    Parameters
    ----------
    polys : numpy.ndarray of valid (Multi)Polygons, no missing ones

    Returns
    -------
    numpy.ndarray of bool
        True for polygons with an invalid coverage edge; all True when GEOS lacks the
        coverage validator.
    """
    if len(polys) == 0:
        return np.zeros(0, dtype=bool)
    try:
        edges = shapely.coverage_invalid_edges(polys)
    except (UnsupportedGEOSVersionError, AttributeError, GEOSException):
        return np.ones(len(polys), dtype=bool)
    return ~shapely.is_empty(edges)


@dataclass(frozen=True)
class Overlaps:
    """Overlapping pairs: positions ``i < j`` into the polygon array and their patches."""

    i: np.ndarray
    j: np.ndarray
    patches: np.ndarray


def find_overlaps(polys: np.ndarray, candidates: np.ndarray | None = None) -> Overlaps:
    """Pairs of polygons whose interiors intersect, with the intersection patch.

    Parameters
    ----------
    polys : numpy.ndarray
        Valid (Multi)Polygons, no missing ones.
    candidates : numpy.ndarray of bool, optional
        Polygons to query (see :func:`coverage_flags`); every overlapping pair has at least
        one flagged member. All polygons when ``None``.

    Returns
    -------
    Overlaps
        Pairs sorted by ``(i, j)``; patches are the polygonal part of the intersection, with
        positive area.
    """
    empty = Overlaps(
        np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=object)
    )
    if len(polys) < 2:
        return empty
    cand = np.arange(len(polys)) if candidates is None else np.flatnonzero(candidates)
    if len(cand) == 0:
        return empty
    tree = shapely.STRtree(polys)
    q_in, q_tree = tree.query(polys[cand], predicate="intersects")
    a = cand[q_in]
    b = q_tree
    keep = a != b
    lo = np.minimum(a[keep], b[keep])
    hi = np.maximum(a[keep], b[keep])
    if len(lo) == 0:
        return empty
    pairs = np.unique(np.column_stack([lo, hi]), axis=0)
    lo, hi = pairs[:, 0], pairs[:, 1]
    # Interiors meet in two dimensions: an overlap, not a shared edge or corner.
    inner = shapely.relate_pattern(polys[lo], polys[hi], "2********")
    lo, hi = lo[inner], hi[inner]
    if len(lo) == 0:
        return empty
    patches = polygonal(shapely.intersection(polys[lo], polys[hi]))
    has_area = np.array([p is not None for p in patches], dtype=bool)
    has_area[has_area] = shapely.area(patches[has_area]) > 0
    return Overlaps(lo[has_area], hi[has_area], patches[has_area])


def find_gaps(polys: np.ndarray, flagged: np.ndarray | None = None) -> np.ndarray:
    """Gap polygons: holes of the layer's union that no polygon covers.

    Parameters
    ----------
    polys : numpy.ndarray
        Valid (Multi)Polygons, no missing ones.
    flagged : numpy.ndarray of bool, optional
        Result of :func:`coverage_flags`. The unflagged polygons form a valid coverage and
        are merged with the fast coverage union; ``None`` unions everything the slow way.

    Returns
    -------
    numpy.ndarray of Polygon
        One polygon per gap; islands lying inside a gap are cut out of it.
    """
    if len(polys) == 0:
        return np.zeros(0, dtype=object)
    if flagged is None:
        union = shapely.union_all(polys)
    else:
        clean = shapely.coverage_union_all(polys[~flagged]) if (~flagged).any() else None
        rest = polys[flagged]
        if len(rest) == 0:
            union = clean
        else:
            union = shapely.union_all(
                np.concatenate([[clean], rest]) if clean is not None else rest
            )
    parts = shapely.get_parts(np.asarray([union], dtype=object))
    parts = parts[shapely.get_type_id(parts) == 3]
    if len(parts) == 0 or not (shapely.get_num_interior_rings(parts) > 0).any():
        return np.zeros(0, dtype=object)
    rings, owner = shapely.get_rings(parts, return_index=True)
    first = np.r_[True, owner[1:] != owner[:-1]]  # the exterior ring comes first per part
    gaps = shapely.polygons(rings[~first])
    # A hole may hold islands of the layer: cut them out of the gap.
    tree = shapely.STRtree(parts)
    g_idx, p_idx = tree.query(gaps, predicate="contains")
    if len(g_idx):
        # Cut each island's outline (its own holes are gaps of their own, reported apart).
        filled = shapely.polygons(shapely.get_exterior_ring(parts[p_idx]))
        for g in np.unique(g_idx):
            gaps[g] = shapely.difference(gaps[g], shapely.union_all(filled[g_idx == g]))
    return gaps
