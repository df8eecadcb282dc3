"""Local engine: vectorised shapely 2 kernels, run in chunks over worker processes.

Conventions shared by every engine:

- Geometry is cut in the input CRS, where the data's edges are straight and where neighbours
  share their vertices (cutting in another plane turns shared borders into crumbs of m²).
- Every area is measured in one Lambert azimuthal equal-area plane per job
  (:func:`yizhangtu.geo.area.equal_area_crs_for`, centred on the units): the planar area of the
  projected polygon, i.e. :func:`yizhangtu.geo.area.ellipsoidal_area`. One plane for the whole
  job means chunks, processes and engines all measure alike.

Tabulation kernel, per chunk of layer features:

1. QC: missing, empty, non-polygonal or invalid features are reported, never repaired.
2. Candidate pairs from an STRtree over the units (bounding boxes only).
3. Fast path: ``contains_properly`` against the prepared unit that holds the feature's first
   vertex (``contains_xy``); a feature wholly inside a unit contributes its own area and no
   intersection is computed. Its other candidate pairs are dropped (units do not overlap
   there).
4. The remaining pairs are filtered with prepared ``intersects`` and ``touches`` (a feature
   that only shares a border with a unit gives it nothing).
5. The rest are intersected in vectorised shapely calls, each piece measured on its own; for
   units of more than :data:`CLIP_MIN_VERTICES` vertices, the unit is first clipped to a box
   around the feature (the box's own vertices fall outside the feature, so the piece is the
   same), since an intersection costs time in proportion to the vertices of both polygons.

The pieces are the same as ``geopandas.overlay`` cuts and the PostGIS engine cuts, and each is
measured directly, never as "whole minus the other pieces" and never through tiles: a piece's
area is that of its projected vertices, and an edge straight in the input CRS is slightly bent
in the equal-area plane (~1e-7 per metre for lon/lat, ~1e-9 for Gauss-Krüger), so the same
ground cut into other pieces measures differently by ~curvature x edge³/12 (hundreds of m² on
a unit with 3 km edges). For the same reason the pieces of a unit can add up to its area only
within the "edge bulge" of its edges (:func:`edge_bulge`), which reconciliation allows for.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from yizhangtu.accounting._checks import POLYGONAL_TYPE_IDS, geometry_problems

__all__ = [
    "CLIP_MIN_VERTICES",
    "OverlayJob",
    "Projector",
    "TabulateJob",
    "Zones",
    "build_zones",
    "chunk_ranges",
    "clip_to_boxes",
    "default_workers",
    "edge_bulge",
    "overlay_chunk",
    "polygonal_parts",
    "proj_string",
    "run_chunks",
    "tabulate_chunk",
]

#: Units with more vertices than this are clipped to a box around each feature before the
#: intersection (engineering knob: speed only, the pieces are the same).
CLIP_MIN_VERTICES = 1000


# --------------------------------------------------------------------------------------------
# projection


@lru_cache(maxsize=16)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def proj_string(crs: CRS) -> str:
    """PROJ string of a plain projected CRS (provenance; PostGIS ``proj4text``)."""
    import warnings

    with warnings.catch_warnings():  # "lose projection information": not for a plain LAEA
        warnings.simplefilter("ignore", UserWarning)
        return crs.to_proj4().replace(" +type=crs", "")


@dataclass(frozen=True)
class Projector:
    """Picklable projection from the input CRS to the job's equal-area plane."""

    src: str
    dst: str

    @classmethod
    def between(cls, src: CRS, dst: CRS) -> Projector:
        """Build from two CRS objects."""
        return cls(src.to_wkt(), dst.to_wkt())

    def __call__(self, geoms: np.ndarray) -> np.ndarray:
        """Project an array of geometries to the plane."""
        if len(geoms) == 0:
            return np.asarray(geoms, dtype=object)
        tr = _transformer(self.src, self.dst)

        def _fwd(xy: np.ndarray) -> np.ndarray:
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return np.asarray(shapely.transform(geoms, _fwd), dtype=object)

    def area(
        self, geoms: np.ndarray, coords: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Ellipsoidal area (m²): planar area in the job's equal-area plane.

        Polygons without holes (nearly all parcels) are measured from their projected
        coordinates directly (shoelace about the first vertex), without building projected
        geometries; the rest through :meth:`__call__` and ``shapely.area``. Both agree to 1e-15.
        ``coords`` may pass ``shapely.get_coordinates(geoms, return_index=True)`` already made.
        """
        geoms = np.asarray(geoms, dtype=object)
        out = np.zeros(len(geoms))
        if len(geoms) == 0:
            return out
        simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
        xy, owner = (
            coords if coords is not None else shapely.get_coordinates(geoms, return_index=True)
        )
        keep = simple[owner]
        xy, owner = xy[keep], owner[keep]
        if len(xy):
            tr = _transformer(self.src, self.dst)
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            counts = np.diff(np.r_[first, len(owner)])
            dx = x - np.repeat(x[first], counts)
            dy = y - np.repeat(y[first], counts)
            cross = dx[:-1] * dy[1:] - dx[1:] * dy[:-1]
            cross[owner[1:] != owner[:-1]] = 0.0
            out += np.abs(np.bincount(owner[:-1], weights=cross, minlength=len(geoms))) / 2
        rest = np.flatnonzero(~simple)
        if len(rest):
            out[rest] = shapely.area(self(geoms[rest]))
        return out


# --------------------------------------------------------------------------------------------
# geometry helpers


def polygonal_parts(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal part of each geometry (an empty polygon where there is none)."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    odd = np.flatnonzero(
        ~np.isin(shapely.get_type_id(geoms), POLYGONAL_TYPE_IDS) & ~shapely.is_missing(geoms)
    )
    if not len(odd):
        return out
    parts, owner = shapely.get_parts(geoms[odd], return_index=True)
    while True:  # flatten nested collections
        multi = np.isin(shapely.get_type_id(parts), (4, 5, 6, 7))
        if not multi.any():
            break
        sub, where = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], sub])
        owner = np.concatenate([owner[~multi], owner[multi][where]])
    poly = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    result = np.full(len(odd), shapely.Polygon(), dtype=object)
    if poly.any():
        has, compact = np.unique(owner[poly], return_inverse=True)
        result[has] = np.asarray(shapely.multipolygons(parts[poly], indices=compact), dtype=object)
        single = np.bincount(owner[poly], minlength=len(odd)) == 1
        result[single] = shapely.get_geometry(result[single], 0)
    out[odd] = result
    return out


def _flat_parts(g: Any) -> list[Any]:
    """Return the simple parts of a geometry, collections flattened."""
    out: list[Any] = []
    for p in shapely.get_parts(g):
        if shapely.get_type_id(p) in (4, 5, 6, 7):
            out.extend(_flat_parts(p))
        else:
            out.append(p)
    return out


def _safe(
    op: Callable[..., np.ndarray], a: np.ndarray, b: np.ndarray, stats: Counter
) -> np.ndarray:
    """Vectorised overlay op; a pair that GEOS cannot node is redone with snap-rounding.

    The grid is 1e-11 of the coordinates' magnitude (~1e-5 m in lon/lat or GK): far below any
    survey's precision; each such pair is counted in ``stats['snapped']``.
    """
    try:
        return np.asarray(op(a, b), dtype=object)
    except shapely.errors.GEOSException:
        out = np.empty(len(a), dtype=object)
        for i in range(len(a)):
            try:
                out[i] = op(a[i], b[i])
            except shapely.errors.GEOSException:
                scale = float(np.abs(shapely.bounds(np.array([a[i], b[i]]))).max())
                out[i] = op(a[i], b[i], grid_size=1e-11 * max(scale, 1.0))
                stats["snapped"] += 1
        return out


# --------------------------------------------------------------------------------------------
# zones: the units of one job, measured, intersected and indexed


@dataclass
class Zones:
    """The units of one tabulation (input CRS), with overlaps, areas and indexes.

    Attributes
    ----------
    geoms : numpy.ndarray
        Unit geometries (one per unit row).
    area : numpy.ndarray
        Their ellipsoidal areas (m²).
    bulge : numpy.ndarray
        Their edge bulge (m²), see :func:`edge_bulge`.
    nverts : numpy.ndarray
        Their vertex counts.
    overlaps : numpy.ndarray
        Polygons where two units overlap (pairwise), with ``overlap_pairs`` naming the rows and
        ``overlap_area`` their areas (m²).
    """

    geoms: np.ndarray
    area: np.ndarray
    bulge: np.ndarray
    nverts: np.ndarray
    overlaps: np.ndarray
    overlap_pairs: np.ndarray
    overlap_area: np.ndarray
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def _tree(self, name: str, geoms: np.ndarray) -> shapely.STRtree:
        tree = self._cache.get(name)
        if tree is None:
            shapely.prepare(geoms)
            tree = shapely.STRtree(geoms)
            self._cache[name] = tree
        return tree

    @property
    def unit_tree(self) -> shapely.STRtree:
        """STRtree over the units (units prepared)."""
        return self._tree("units", self.geoms)

    @property
    def overlap_tree(self) -> shapely.STRtree:
        """STRtree over the unit overlaps."""
        return self._tree("overlaps", self.overlaps)

    def ready(self) -> Zones:
        """Build the indexes now (before forking workers, so that they share them)."""
        _ = self.unit_tree
        if len(self.overlaps):
            _ = self.overlap_tree
        return self


def edge_bulge(geoms: np.ndarray, project: Projector) -> np.ndarray:
    """Sum over each polygon's edges of the area between the edge and its equal-area chord (m²).

    An edge straight in the input CRS is an arc in the equal-area plane; the measured area uses
    the chord between its projected ends. This is how far a polygon's measured area can move
    when its edges gain vertices (as they do when features are cut along them): the margin
    within which a unit's pieces reconcile with its area. Parabolic estimate from the midpoint:
    ``2/3 · |chord × (midpoint − chord middle)|``.
    """
    out = np.zeros(len(geoms))
    if len(geoms) == 0:
        return out
    rings, owner = shapely.get_rings(shapely.get_parts(geoms), return_index=True)
    _, part_owner = shapely.get_parts(geoms, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    a, b = xy[:-1][same], xy[1:][same]
    tr = _transformer(project.src, project.dst)
    pts = np.vstack([a, b, (a + b) / 2])
    x, y = tr.transform(pts[:, 0], pts[:, 1])
    n = len(a)
    pa = np.column_stack([x[:n], y[:n]])
    pb = np.column_stack([x[n : 2 * n], y[n : 2 * n]])
    pm = np.column_stack([x[2 * n :], y[2 * n :]])
    d = pb - pa
    off = pm - (pa + pb) / 2
    bulge = 2.0 / 3.0 * np.abs(d[:, 0] * off[:, 1] - d[:, 1] * off[:, 0])
    per_ring = np.bincount(ring[1:][same], weights=bulge, minlength=len(rings))
    return np.bincount(part_owner[owner], weights=per_ring, minlength=len(geoms))


def build_zones(units: np.ndarray, project: Projector) -> Zones:
    """Index, intersect and measure the units of one job (input CRS)."""
    geoms = np.asarray(units, dtype=object)
    shapely.prepare(geoms)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    # interiors meet: a real overlap, not a shared border (prepared RelateNG, no overlay)
    meet = shapely.relate_pattern(geoms[a], geoms[b], "T********") if len(a) else np.zeros(0, bool)
    a, b = a[meet], b[meet]
    inter = polygonal_parts(shapely.intersection(geoms[a], geoms[b]))
    area = project.area(inter)
    pos = area > 0
    return Zones(
        geoms=geoms,
        area=project.area(geoms),
        bulge=edge_bulge(geoms, project),
        nverts=np.asarray(shapely.get_num_coordinates(geoms), dtype=np.int64),
        overlaps=np.asarray(inter, dtype=object)[pos],
        overlap_pairs=np.column_stack([a[pos], b[pos]]).astype(np.int64),
        overlap_area=area[pos],
    )


# --------------------------------------------------------------------------------------------
# tabulation kernel


@dataclass(frozen=True)
class TabulateJob:
    """Everything a tabulation chunk needs besides its features."""

    zones: Zones
    project: Projector
    n_classes: int


@dataclass
class TabulateChunk:
    """Partial sums of one chunk."""

    acc: np.ndarray  # (n_units * n_classes,) area per unit row and class code
    overlap_layer: np.ndarray  # (n_overlaps,) layer area inside each unit overlap
    layer_area: float
    stats: Counter
    invalid: list[tuple[int, str]]  # (position in the chunk, reason)

    def merge(self, other: TabulateChunk, offset: int = 0) -> TabulateChunk:
        """Add ``other`` to this result (``offset`` shifts the other's invalid positions)."""
        self.acc += other.acc
        self.overlap_layer += other.overlap_layer
        self.layer_area += other.layer_area
        self.stats.update(other.stats)
        self.invalid.extend((p + offset, r) for p, r in other.invalid)
        return self


def empty_tabulate_chunk(job: TabulateJob) -> TabulateChunk:
    """Return a zero result to merge chunks into."""
    return TabulateChunk(
        acc=np.zeros(len(job.zones.geoms) * job.n_classes),
        overlap_layer=np.zeros(len(job.zones.overlaps)),
        layer_area=0.0,
        stats=Counter(),
        invalid=[],
    )


def tabulate_chunk(geoms: np.ndarray, codes: np.ndarray, job: TabulateJob) -> TabulateChunk:
    """Area of each (unit, class) in one chunk of layer features.

    Parameters
    ----------
    geoms : numpy.ndarray
        Layer geometries in the input CRS.
    codes : numpy.ndarray
        Class code of each feature (``0 .. job.n_classes - 1``).
    job : TabulateJob
        Zones, projection and class count.
    """
    geoms = np.asarray(geoms, dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    out = empty_tabulate_chunk(job)
    n = len(geoms)
    out.stats["features"] += n
    if n == 0:
        return out
    bad, reasons = geometry_problems(geoms)
    if len(bad):
        out.invalid = list(zip(bad.tolist(), reasons, strict=True))
        return out
    zones = job.zones
    ncls = job.n_classes
    project = job.project
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    area = project.area(geoms, coords=(xy, owner))
    out.layer_area = float(area.sum())

    def add(unit: np.ndarray, feat: np.ndarray, values: np.ndarray) -> None:
        if len(unit):
            out.acc += np.bincount(
                unit * ncls + codes[feat], weights=values, minlength=out.acc.size
            )

    # 2. candidate pairs (bounding boxes)
    pi, zi = zones.unit_tree.query(geoms)
    out.stats["candidate_pairs"] += len(pi)
    # unit overlaps: the layer area counted twice there; features near them keep all pairs
    near = np.zeros(n, dtype=bool)
    if len(zones.overlaps):
        opi, ozi = zones.overlap_tree.query(geoms, predicate="intersects")
        near[opi] = True
        if len(opi):
            inside_o = shapely.contains_properly(zones.overlaps[ozi], geoms[opi])
            oa = np.where(inside_o, area[opi], 0.0)
            rest = ~inside_o
            cut = _safe(
                shapely.intersection, geoms[opi[rest]], zones.overlaps[ozi[rest]], out.stats
            )
            oa[rest] = project.area(cut)
            out.overlap_layer += np.bincount(ozi, weights=oa, minlength=len(zones.overlaps))
    # 3. fast path: wholly inside a unit, no intersection. Only a unit holding the feature's
    #    first vertex can (prepared point-in-polygon, far cheaper than the polygon test)
    first = xy[np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])]
    maybe = np.flatnonzero(shapely.contains_xy(zones.geoms[zi], first[pi, 0], first[pi, 1]))
    inside = np.zeros(len(pi), dtype=bool)
    inside[maybe] = shapely.contains_properly(zones.geoms[zi[maybe]], geoms[pi[maybe]])
    add(zi[inside], pi[inside], area[pi[inside]])
    out.stats["fast_path"] += int(inside.sum())
    done = np.zeros(n, dtype=bool)
    done[pi[inside]] = True
    done &= ~near
    keep = ~inside & ~done[pi]
    pi, zi = pi[keep], zi[keep]
    # 4. pairs whose interiors meet (a feature that only touches a unit gives it nothing)
    hit = shapely.intersects(zones.geoms[zi], geoms[pi])
    pi, zi = pi[hit], zi[hit]
    touch = shapely.touches(zones.geoms[zi], geoms[pi])
    out.stats["touching_pairs"] += int(touch.sum())
    pi, zi = pi[~touch], zi[~touch]
    out.stats["crossing_pairs"] += len(pi)
    # 5. intersections, each piece measured on its own
    piece = _pair_areas(geoms, pi, zi, zones, project, out.stats)
    add(zi, pi, piece)
    return out


def _pair_areas(
    geoms: np.ndarray,
    pi: np.ndarray,
    zi: np.ndarray,
    zones: Zones,
    project: Projector,
    stats: Counter,
) -> np.ndarray:
    """Area (m²) of ``geoms[pi] ∩ unit[zi]`` for each pair."""
    if not len(pi):
        return np.zeros(0)
    units = _cutters(zones.geoms[zi], zones.nverts[zi], geoms[pi], stats)
    inter = _safe(shapely.intersection, geoms[pi], units, stats)
    stats["intersections"] += len(pi)
    return project.area(inter)


def _cutters(
    others: np.ndarray, nverts: np.ndarray, feats: np.ndarray, stats: Counter
) -> np.ndarray:
    """``others``, with the complex ones clipped to a box around their feature."""
    big = np.flatnonzero(nverts > CLIP_MIN_VERTICES)
    if not len(big):
        return others
    others = others.copy()
    others[big] = clip_to_boxes(others[big], feats[big])
    stats["clipped"] += len(big)
    return others


def clip_to_boxes(polys: np.ndarray, around: np.ndarray) -> np.ndarray:
    """Clip each polygon to a box 1% larger than the bounding box of its feature in ``around``.

    The box's own vertices lie outside the feature, so ``feature ∩ clipped`` is
    ``feature ∩ polygon`` and ``feature - clipped`` is ``feature - polygon`` (to rounding), at
    a fraction of the cost for complex polygons. A clip that is not valid keeps the whole
    polygon.
    """
    b = shapely.bounds(around)
    pad = 0.01 * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) + 1e-9 * np.abs(b).max(axis=1)
    out = np.empty(len(polys), dtype=object)
    for i, (g, x0, y0, x1, y1, m) in enumerate(
        zip(polys, b[:, 0], b[:, 1], b[:, 2], b[:, 3], pad, strict=True)
    ):
        out[i] = shapely.clip_by_rect(g, x0 - m, y0 - m, x1 + m, y1 + m)
    bad = ~shapely.is_valid(out)
    out[bad] = polys[bad]
    return out


# --------------------------------------------------------------------------------------------
# overlay kernel


@dataclass
class OverlayJob:
    """The side of an overlay that is broadcast to every chunk (indexed and measured once)."""

    other: np.ndarray  # geometries of the broadcast side, input CRS
    other_area: np.ndarray  # their ellipsoidal areas (m²)
    project: Projector
    keep_geom_type: bool
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    @property
    def nverts(self) -> np.ndarray:
        """Vertex counts of the broadcast side."""
        n = self._cache.get("nverts")
        if n is None:
            n = self._cache["nverts"] = shapely.get_num_coordinates(self.other)
        return n

    @property
    def tree(self) -> shapely.STRtree:
        """STRtree over the broadcast side (prepared)."""
        tree = self._cache.get("tree")
        if tree is None:
            shapely.prepare(self.other)
            tree = self._cache["tree"] = shapely.STRtree(self.other)
        return tree

    def ready(self) -> OverlayJob:
        """Build the index now."""
        _ = self.tree, self.nverts
        return self


@dataclass
class OverlayChunk:
    """Pieces of one chunk: ``(chunk position, other position, geometry, area_m2)`` arrays."""

    inter_self: np.ndarray
    inter_other: np.ndarray
    inter_geom: np.ndarray
    inter_area: np.ndarray
    diff_self: np.ndarray
    diff_geom: np.ndarray
    diff_area: np.ndarray
    stats: Counter
    invalid: list[tuple[int, str]]

    def shifted(self, offset: int) -> OverlayChunk:
        """Positions shifted by ``offset`` (chunk → layer positions)."""
        self.inter_self = self.inter_self + offset
        self.diff_self = self.diff_self + offset
        self.invalid = [(p + offset, r) for p, r in self.invalid]
        return self


def overlay_chunk(
    geoms: np.ndarray, job: OverlayJob, *, intersection: bool, difference: bool
) -> OverlayChunk:
    """Intersection pieces and/or difference pieces of a chunk against the broadcast side."""
    geoms = np.asarray(geoms, dtype=object)
    stats: Counter = Counter()
    n = len(geoms)
    stats["features"] += n
    ei, eg, ef = np.empty(0, dtype=np.int64), np.empty(0, dtype=object), np.empty(0)
    bad, reasons = geometry_problems(geoms) if n else (ei, [])
    if len(bad) or n == 0:
        invalid = list(zip(bad.tolist(), reasons, strict=True))
        return OverlayChunk(ei, ei, eg, ef, ei, eg, ef, stats, invalid)
    project = job.project
    own_area = project.area(geoms)
    other = job.other
    si, oi = job.tree.query(geoms)
    stats["candidate_pairs"] += len(si)
    hit = shapely.intersects(other[oi], geoms[si])
    si, oi = si[hit], oi[hit]
    within = shapely.contains_properly(other[oi], geoms[si])
    stats["fast_path"] += int(within.sum())

    def cut_pieces(pieces: np.ndarray) -> np.ndarray:
        return polygonal_parts(pieces) if job.keep_geom_type else pieces

    inter = (ei, ei, eg, ef)
    if intersection and len(si):
        covers = np.zeros(len(si), dtype=bool)
        rest = np.flatnonzero(~within)
        if len(rest):
            covers[rest] = shapely.contains_properly(geoms[si[rest]], other[oi[rest]])
        stats["fast_path_other"] += int(covers.sum())
        g = np.empty(len(si), dtype=object)
        a = np.zeros(len(si))
        g[within], a[within] = geoms[si[within]], own_area[si[within]]
        g[covers], a[covers] = other[oi[covers]], job.other_area[oi[covers]]
        cut = np.flatnonzero(~within & ~covers)
        if len(cut):
            cutters = _cutters(other[oi[cut]], job.nverts[oi[cut]], geoms[si[cut]], stats)
            pieces = cut_pieces(_safe(shapely.intersection, geoms[si[cut]], cutters, stats))
            stats["intersections"] += len(cut)
            g[cut], a[cut] = pieces, project.area(pieces)
        ok = ~shapely.is_empty(g)
        inter = (si[ok], oi[ok], g[ok], a[ok])

    diff = (ei, eg, ef)
    if difference:
        gone = np.zeros(n, dtype=bool)
        gone[si[within]] = True
        cut = ~gone[si]
        csi, coi = si[cut], oi[cut]
        order = np.argsort(csi, kind="stable")
        csi, coi = csi[order], coi[order]
        current = geoms.copy()
        # the k-th feature cutting each surviving feature is applied in round k (vectorised)
        rank = np.arange(len(csi)) - np.searchsorted(csi, csi, side="left")
        for k in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = rank == k
            f = csi[sel]
            cutters = _cutters(other[coi[sel]], job.nverts[coi[sel]], geoms[f], stats)
            current[f] = _safe(shapely.difference, current[f], cutters, stats)
            stats["differences"] += int(sel.sum())
        touched = np.unique(csi)
        area = own_area.copy()
        if len(touched):
            current[touched] = cut_pieces(current[touched])
            area[touched] = project.area(current[touched])
        stats["fast_path_untouched"] += int(n - len(touched) - gone.sum())
        keep = ~gone & ~shapely.is_empty(current)
        diff = (np.flatnonzero(keep), current[keep], area[keep])
    return OverlayChunk(*inter, *diff, stats=stats, invalid=[])


# --------------------------------------------------------------------------------------------
# chunked, multi-process runner

_PAYLOAD: Any = None


def default_workers(workers: int | None) -> int:
    """Worker processes to use: ``workers`` if positive, else the CPUs available to us."""
    if workers is not None and workers > 0:
        return int(workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def chunk_ranges(n: int, chunk_size: int, workers: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of at most ``chunk_size``, at least two per worker."""
    if n == 0:
        return []
    nchunks = -(-n // max(1, chunk_size))
    if workers > 1:
        nchunks = max(nchunks, min(2 * workers, -(-n // 1000)))
    edges = np.linspace(0, n, nchunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _call(task: tuple[Callable[[Any, int, int], Any], int, int]) -> Any:
    fn, start, stop = task
    return fn(_PAYLOAD, start, stop)


def run_chunks(
    fn: Callable[[Any, int, int], Any],
    payload: Any,
    ranges: Sequence[tuple[int, int]],
    workers: int,
) -> list[Any]:
    """Run ``fn(payload, start, stop)`` for every range, over ``workers`` processes.

    Workers are forked, so they share ``payload`` (the layer and the prepared, indexed units)
    without pickling it; only the chunk bounds go out and the small results come back. Where
    fork is unavailable the chunks run in this process.
    """
    global _PAYLOAD
    if workers <= 1 or len(ranges) <= 1 or "fork" not in mp.get_all_start_methods():
        return [fn(payload, a, b) for a, b in ranges]
    _PAYLOAD = payload
    try:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(ranges)), mp_context=ctx) as pool:
            return list(pool.map(_call, [(fn, a, b) for a, b in ranges]))
    finally:
        _PAYLOAD = None
