"""Coordinate tolerance (容差处理, 004 (十一)): match red lines, drop slivers.

A red line redrawn after a coordinate transformation differs from its registered version by a
small offset. It is the same red line when either

* the Hausdorff distance between the two boundaries is within ``hausdorff_m``; or
* the difference is a consistent shift: translating one by the difference of the centroids
  leaves a Hausdorff residual within ``shift_residual_m`` and the shift itself is within
  ``shift_m`` (a systematic offset such as a datum or parameter change).

Overlay results are cleaned of slivers: patches whose area is below ``sliver_area_m2`` or whose
mean width (``2 × area / perimeter``) is below ``sliver_width_m`` come from boundaries that do
not quite coincide. They are dropped from conflicts and counted separately.

All tolerances come from a policy pack (:meth:`Tolerances.from_packs`); distances are measured in
the CGCS2000 Gauss–Krüger zone of the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.conformance._common import metric_crs_for, pack_param, patch_width_m
from yizhangtu.errors import GeometryError
from yizhangtu.geo.area import ellipsoidal_area, to_geographic
from yizhangtu.policy import PolicyPack

__all__ = [
    "MatchMeasure",
    "Tolerances",
    "boundary_hausdorff",
    "match_outcome",
    "measure_match",
    "split_slivers",
]


@dataclass(frozen=True)
class Tolerances:
    """Tolerances of 004 (十一), read from a pack.

    Attributes
    ----------
    hausdorff_m : float
        Largest Hausdorff distance at which two red lines are the same.
    shift_m : float
        Largest consistent shift tolerated as a transformation offset.
    shift_residual_m : float
        Largest Hausdorff residual after removing the shift.
    sliver_area_m2, sliver_width_m : float
        Patches below either are slivers.
    citations : mapping
        Parameter name → ``{pack, clause, local_choice}``.
    """

    hausdorff_m: float
    shift_m: float
    shift_residual_m: float
    sliver_area_m2: float
    sliver_width_m: float
    citations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_packs(cls, packs: Sequence[PolicyPack] | PolicyPack) -> Tolerances:
        """Read the five tolerance parameters from the first pack that has each."""
        packs = [packs] if isinstance(packs, PolicyPack) else list(packs)
        vals: dict[str, float] = {}
        cites: dict[str, Mapping[str, Any]] = {}
        for attr, name, unit in (
            ("hausdorff_m", "redline_hausdorff_tolerance_m", "m"),
            ("shift_m", "redline_shift_tolerance_m", "m"),
            ("shift_residual_m", "redline_shift_residual_m", "m"),
            ("sliver_area_m2", "sliver_area_m2", "m2"),
            ("sliver_width_m", "sliver_width_m", "m"),
        ):
            v, cite = pack_param(packs, name, unit)
            vals[attr] = float(v)
            cites[name] = cite
        return cls(**vals, citations=cites)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with citations."""
        return {
            "hausdorff_m": self.hausdorff_m,
            "shift_m": self.shift_m,
            "shift_residual_m": self.shift_residual_m,
            "sliver_area_m2": self.sliver_area_m2,
            "sliver_width_m": self.sliver_width_m,
            "citations": {k: dict(v) for k, v in self.citations.items()},
        }


def _boundary(g: Any) -> Any:
    return shapely.boundary(g) if shapely.get_type_id(g) in (3, 6) else g


def boundary_hausdorff(a: Any, b: Any, *, step_m: float = 0.05) -> float:
    """Hausdorff distance between the boundaries of two planar geometries (metres).

    Each boundary is densified to ``step_m`` (at most 20 000 vertices) and every vertex is
    measured against the other boundary as a line, so the result is exact to ``step_m / 2``.
    """
    la, lb = _boundary(a), _boundary(b)
    out = 0.0
    for src, dst in ((la, lb), (lb, la)):
        length = shapely.length(src)
        step = max(step_m, float(length) / 20_000.0) if length > 0 else step_m
        pts = shapely.get_coordinates(shapely.segmentize(src, step))
        if len(pts) == 0:
            continue
        d = shapely.distance(shapely.points(pts), dst)
        out = max(out, float(np.max(d)))
    return out


@dataclass(frozen=True)
class MatchMeasure:
    """How a red line differs from its registered version (metres, m²; east/north shifts)."""

    hausdorff_m: float
    dx_m: float
    dy_m: float
    shift_m: float
    residual_m: float
    area_m2: float
    registered_area_m2: float

    @property
    def area_diff_m2(self) -> float:
        """New area minus registered area."""
        return self.area_m2 - self.registered_area_m2

    def to_dict(self) -> dict[str, float]:
        """JSON-ready dict."""
        return {
            "hausdorff_m": self.hausdorff_m,
            "dx_m": self.dx_m,
            "dy_m": self.dy_m,
            "shift_m": self.shift_m,
            "residual_m": self.residual_m,
            "area_m2": self.area_m2,
            "registered_area_m2": self.registered_area_m2,
            "area_diff_m2": self.area_diff_m2,
        }


def measure_match(new: gpd.GeoSeries, registered: gpd.GeoSeries) -> MatchMeasure:
    """Measure the difference between a red line and its registered version.

    Parameters
    ----------
    new, registered : GeoSeries
        One (multi)polygon each (several rows are unioned), any CRS with an ellipsoid.

    Returns
    -------
    MatchMeasure
        Hausdorff distance of the boundaries, the centroid shift (east, north) and the residual
        Hausdorff distance after removing that shift, in the Gauss–Krüger plane of the data.
    """
    if len(new) == 0 or len(registered) == 0:
        raise GeometryError("红线比对需要两侧都有图形", key="empty_geometry")
    both = pd.concat([to_geographic(new), to_geographic(registered)])
    plane = metric_crs_for(gpd.GeoSeries(both.values, crs=4490))
    a = shapely.union_all(np.asarray(to_geographic(new).to_crs(plane).values, dtype=object))
    b = shapely.union_all(np.asarray(to_geographic(registered).to_crs(plane).values, dtype=object))
    if shapely.is_empty(a) or shapely.is_empty(b):
        raise GeometryError("红线比对需要两侧都有图形", key="empty_geometry")
    h = boundary_hausdorff(a, b)
    ca, cb = shapely.centroid(a), shapely.centroid(b)
    dx, dy = float(ca.x - cb.x), float(ca.y - cb.y)
    back = shapely.transform(a, lambda xy: xy - np.array([dx, dy]))
    resid = boundary_hausdorff(back, b)
    return MatchMeasure(
        hausdorff_m=h,
        dx_m=dx,
        dy_m=dy,
        shift_m=float(np.hypot(dx, dy)),
        residual_m=resid,
        area_m2=float(ellipsoidal_area(new).sum()),
        registered_area_m2=float(ellipsoidal_area(registered).sum()),
    )


def match_outcome(m: MatchMeasure, tol: Tolerances) -> str:
    """``identical``, ``within_tolerance``, ``shifted`` (consistent offset) or ``changed``."""
    if m.hausdorff_m <= 1e-3:
        return "identical"
    if m.hausdorff_m <= tol.hausdorff_m:
        return "within_tolerance"
    if m.shift_m <= tol.shift_m and m.residual_m <= tol.shift_residual_m:
        return "shifted"
    return "changed"


def split_slivers(
    patches: gpd.GeoDataFrame, tol: Tolerances
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Split overlay patches into (kept, slivers) by the pack's sliver thresholds.

    ``patches`` must carry ``area_m2``; both outputs gain ``width_m`` (mean width).
    """
    if len(patches) == 0:
        out = patches.copy()
        out["width_m"] = pd.Series(dtype=float)
        return out, out.copy()
    area = patches["area_m2"].to_numpy(dtype=float)
    width = patch_width_m(patches.geometry, area)
    sliver = (area < tol.sliver_area_m2) | (width < tol.sliver_width_m)
    out = patches.copy()
    out["width_m"] = width
    return out[~sliver].reset_index(drop=True), out[sliver].reset_index(drop=True)
