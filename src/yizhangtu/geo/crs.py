"""Coordinate reference systems: naming, Gauss–Krüger zones and inference from coordinate ranges.

Chinese data usually comes in one of a few coordinate systems (GLOSSARY "Coordinates"):

* lon/lat on CGCS2000 (EPSG:4490) or WGS84 (EPSG:4326): the two differ by well under a metre;
* CGCS2000 3-degree Gauss–Krüger (高斯-克吕格 3度带), zones 25–45 (central meridians 75°E–135°E):
  EPSG:4513–4533 with the zone number prefixed to the easting (带号 + 500 km false easting,
  e.g. 39 500 000), EPSG:4534–4554 without it;
* CGCS2000 6-degree Gauss–Krüger, zones 13–23: EPSG:4491–4501 with prefix, 4502–4512 without;
* Web Mercator (EPSG:3857) from web maps.

When a file declares no CRS, :func:`infer_crs` lists the systems whose plausible coordinate
range (inside China) contains the data. Beijing 1954 and Xi'an 1980 Gauss–Krüger grids use the
same zone numbering and differ from CGCS2000 by tens of metres to about a hundred metres, so
they cannot be told apart from coordinates: an inferred Gauss–Krüger CRS is always CGCS2000
and the reader says so.

:func:`resolve_crs` takes the declared CRS, an optional user override and the coordinate ranges,
and returns the CRS to use or raises :class:`~yizhangtu.errors.CRSError` with key
``crs_ambiguous``, ``lonlat_swapped``, ``xy_swapped``, ``coordinates_out_of_range``,
``crs_mismatch`` or ``crs_missing``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from pyproj.exceptions import ProjError

from yizhangtu.errors import CRSError

__all__ = [
    "CHINA_LAT",
    "CHINA_LON",
    "CRSCandidate",
    "CRSResolution",
    "CandidateKind",
    "GKZone",
    "crs_code",
    "crs_fits_bounds",
    "format_bounds",
    "gk_epsg",
    "gk_zone_for_lon",
    "gk_zone_from_easting",
    "infer_crs",
    "looks_lonlat_swapped",
    "parse_crs",
    "plausible_envelope",
    "resolve_crs",
]

Bounds = tuple[float, float, float, float]
CandidateKind = Literal["geographic", "gk3_prefix", "gk6_prefix", "gk3", "gk6", "web_mercator"]

#: Longitude / latitude envelope of China including the South China Sea islands (degrees).
CHINA_LON: tuple[float, float] = (73.0, 136.0)
CHINA_LAT: tuple[float, float] = (3.0, 54.0)
#: Slack around the envelope and around a zone's area of use when testing inferred candidates.
_MARGIN_DEG = 1.0
#: Slack around a declared projected CRS's area of use (data often spill over a zone border).
_DECLARED_MARGIN_DEG = 3.0
#: Gauss–Krüger northing for latitudes 3°–54°N, with slack (metres).
_GK_NORTHING = (300_000.0, 6_100_000.0)
#: Easting minus the zone prefix: 500 km false easting ± half a zone at low latitude, with slack.
_GK3_OFFSET = (150_000.0, 850_000.0)
_GK6_OFFSET = (100_000.0, 900_000.0)
#: Zones of the CGCS2000 Gauss–Krüger families whose central meridians lie in China.
_GK3_ZONES = (25, 45)
_GK6_ZONES = (13, 23)
#: No plausible coordinate in any supported CRS is larger than this (metres or degrees).
_MAX_ABS = 1.0e8

_EPSG_LONLAT = 4490
_EPSG_WEB_MERCATOR = 3857
_LONLAT = CRS.from_epsg(4326)


@functools.lru_cache(maxsize=256)
def _epsg_crs(code: int) -> CRS:
    return CRS.from_epsg(code)


@functools.lru_cache(maxsize=256)
def _transformer(src: CRS, dst: CRS) -> Transformer:
    # CRS objects are hashable (by their definition); building a Transformer costs ~0.1 s.
    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass(frozen=True)
class GKZone:
    """A CGCS2000 Gauss–Krüger zone.

    Attributes
    ----------
    zone : int
        Zone number (3-degree: 25–45; 6-degree: 13–23).
    width : int
        Zone width in degrees, 3 or 6.
    """

    zone: int
    width: int

    @property
    def central_meridian(self) -> float:
        """Central meridian in degrees east."""
        return float(self.zone * 3) if self.width == 3 else float(self.zone * 6 - 3)

    def epsg(self, with_prefix: bool) -> int:
        """EPSG code of the zone, with or without the zone number in the easting."""
        return gk_epsg(self.zone, self.width, with_prefix=with_prefix)


@dataclass(frozen=True)
class CRSCandidate:
    """One coordinate system that fits a set of coordinates.

    Attributes
    ----------
    epsg : int
        EPSG code.
    kind : str
        ``geographic``, ``gk3_prefix``, ``gk6_prefix``, ``gk3``, ``gk6`` or ``web_mercator``.
    zone : int or None
        Gauss–Krüger zone number when known.
    label_zh : str
        Chinese description, e.g. ``CGCS2000 3度带 39带（中央经线 117°E，带号）``.
    """

    epsg: int
    kind: CandidateKind
    zone: int | None
    label_zh: str

    @property
    def code(self) -> str:
        """``EPSG:xxxx``."""
        return f"EPSG:{self.epsg}"

    @property
    def crs(self) -> CRS:
        """The :class:`pyproj.CRS`."""
        return _epsg_crs(self.epsg)


@dataclass(frozen=True)
class CRSResolution:
    """The CRS a reader settles on.

    Attributes
    ----------
    crs : pyproj.CRS
        The coordinate system of the coordinates as read.
    code : str
        ``EPSG:xxxx`` or WKT (see :func:`crs_code`).
    source : str
        ``declared``, ``inferred`` or ``override``.
    warnings : tuple of str
        Chinese notes to show the user.
    candidates : tuple of CRSCandidate
        What inference found (empty when not inferred).
    """

    crs: CRS
    code: str
    source: Literal["declared", "inferred", "override"]
    warnings: tuple[str, ...] = ()
    candidates: tuple[CRSCandidate, ...] = field(default=())


# --------------------------------------------------------------------------- naming


def parse_crs(value: object) -> CRS:
    """Parse a user CRS (``EPSG:4527``, ``4527``, WKT, PROJ string or :class:`pyproj.CRS`).

    Raises
    ------
    CRSError
        key ``crs_invalid`` when the value is not a coordinate system.
    """
    if isinstance(value, CRS):
        return value
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except (ProjCRSError, ValueError, TypeError) as exc:
        raise CRSError(
            f"无法识别的坐标系: {value}",
            key="crs_invalid",
            hint="请使用 EPSG 代码，例如 --crs EPSG:4490（CGCS2000 经纬度）或 --crs EPSG:4527",
            data={"value": str(value), "detail": str(exc)},
        ) from None


def crs_code(crs: CRS | str | None) -> str:
    """``EPSG:xxxx`` for a CRS with an EPSG equivalent, else its WKT (empty string for None).

    OGC:CRS84 (lon/lat WGS84, the GeoJSON default) is reported as ``EPSG:4326``: the axis order
    differs only on paper, every reader here uses lon/lat order.
    """
    if crs is None:
        return ""
    crs = crs if isinstance(crs, CRS) else parse_crs(crs)
    auth = crs.to_authority()
    if auth is not None:
        name, code = auth
        if name == "EPSG":
            return f"EPSG:{code}"
        if name == "OGC" and code.upper() == "CRS84":
            return "EPSG:4326"
    epsg = crs.to_epsg()
    if epsg is not None:
        return f"EPSG:{epsg}"
    return crs.to_wkt()


def format_bounds(bounds: Sequence[float]) -> str:
    """Chinese one-line description of a bounding box."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    return f"X {minx:.6g}～{maxx:.6g}，Y {miny:.6g}～{maxy:.6g}"


# --------------------------------------------------------------------------- GK zones


def gk_epsg(zone: int, width: int = 3, *, with_prefix: bool = True) -> int:
    """EPSG code of a CGCS2000 Gauss–Krüger zone.

    Parameters
    ----------
    zone : int
        Zone number: 25–45 for 3-degree zones, 13–23 for 6-degree zones.
    width : int
        3 or 6.
    with_prefix : bool
        True for the grids whose easting carries the zone number (e.g. 39 500 000).

    Examples
    --------
    >>> gk_epsg(39), gk_epsg(39, with_prefix=False), gk_epsg(20, 6)
    (4527, 4548, 4498)
    """
    lo, hi = _GK3_ZONES if width == 3 else _GK6_ZONES
    if width not in (3, 6) or not lo <= zone <= hi:
        raise CRSError(
            f"没有 CGCS2000 {width}度带 {zone} 带的 EPSG 代码",
            key="gk_zone_invalid",
            hint=f"{width}度带带号应在 {lo}–{hi} 之间",
        )
    if width == 3:
        return (4513 if with_prefix else 4534) + zone - lo
    return (4491 if with_prefix else 4502) + zone - lo


def gk_zone_for_lon(lon: float, width: int = 3) -> int:
    """Zone number of the Gauss–Krüger zone containing a longitude (3° zones centred on 3n°)."""
    if width == 3:
        return math.floor(lon / 3.0 + 0.5)
    return math.floor(lon / 6.0) + 1


def gk_zone_from_easting(easting: float) -> GKZone | None:
    """Zone encoded in a prefixed Gauss–Krüger easting, or None.

    The easting of a prefixed grid is ``zone × 1 000 000 + 500 000 + offset``; 3-degree zones in
    China are 25–45 and 6-degree zones 13–23, so the prefix tells the family too.

    Examples
    --------
    >>> gk_zone_from_easting(39_456_000.0)
    GKZone(zone=39, width=3)
    >>> gk_zone_from_easting(456_000.0) is None
    True
    """
    if not math.isfinite(easting) or easting <= 0:
        return None
    zone = int(easting // 1_000_000)
    offset = easting - zone * 1_000_000
    if _GK3_ZONES[0] <= zone <= _GK3_ZONES[1] and _GK3_OFFSET[0] <= offset <= _GK3_OFFSET[1]:
        return GKZone(zone, 3)
    if _GK6_ZONES[0] <= zone <= _GK6_ZONES[1] and _GK6_OFFSET[0] <= offset <= _GK6_OFFSET[1]:
        return GKZone(zone, 6)
    return None


# --------------------------------------------------------------------------- fitting


def _finite(bounds: Sequence[float]) -> bool:
    return len(bounds) == 4 and all(math.isfinite(float(v)) for v in bounds)


def _within(v: Sequence[float], lo: float, hi: float) -> bool:
    return all(lo <= float(x) <= hi for x in v)


def _in_china_lonlat(bounds: Sequence[float], margin: float = _MARGIN_DEG) -> bool:
    minx, miny, maxx, maxy = bounds
    return _within((minx, maxx), CHINA_LON[0] - margin, CHINA_LON[1] + margin) and _within(
        (miny, maxy), CHINA_LAT[0] - margin, CHINA_LAT[1] + margin
    )


def looks_lonlat_swapped(bounds: Sequence[float]) -> bool:
    """Tell whether X looks like a latitude and Y like a longitude in China."""
    if not _finite(bounds):
        return False
    minx, miny, maxx, maxy = bounds
    return not _in_china_lonlat(bounds) and _in_china_lonlat((miny, minx, maxy, maxx))


def _to_lonlat(crs: CRS, bounds: Sequence[float]) -> Bounds | None:
    try:
        tr = _transformer(crs, _LONLAT)
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        out = tr.transform_bounds(minx, miny, maxx, maxy, densify_pts=5)
    except (ProjError, ValueError, OverflowError):
        return None
    if not _finite(out):
        return None
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))


def _fits_area_of_use(crs: CRS, lonlat: Bounds, margin: float) -> bool:
    aou = crs.area_of_use
    if aou is None:
        return True
    w, s, e, n = aou.bounds
    if e < w:  # area crossing the antimeridian: do not judge
        return True
    minx, miny, maxx, maxy = lonlat
    return minx >= w - margin and maxx <= e + margin and miny >= s - margin and maxy <= n + margin


def crs_fits_bounds(
    crs: CRS, bounds: Sequence[float], *, margin: float = _DECLARED_MARGIN_DEG
) -> bool:
    """Whether coordinates with these bounds are plausible in ``crs``.

    Geographic CRSs need |lon| ≤ 180 and |lat| ≤ 90. Projected CRSs need the bounds to map to
    finite lon/lat within the CRS's area of use (EPSG "area of use", ± ``margin`` degrees).
    """
    if not _finite(bounds) or max(abs(float(v)) for v in bounds) > _MAX_ABS:
        return False
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if crs.is_geographic:
        return -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0
    lonlat = _to_lonlat(crs, bounds)
    if lonlat is None:
        return False
    if not (-180.0 <= lonlat[0] <= lonlat[2] <= 180.0 and -90.0 <= lonlat[1] <= lonlat[3] <= 90.0):
        return False
    # Transverse Mercator maps far-away eastings back to finite lon/lat via the other side of
    # the globe; a round trip exposes that.
    try:
        back = _transformer(_LONLAT, crs).transform([lonlat[0], lonlat[2]], [lonlat[1], lonlat[3]])
    except (ProjError, ValueError, OverflowError):
        return False
    span = max(maxx - minx, maxy - miny, 1.0)
    xs, ys = np.asarray(back[0]), np.asarray(back[1])
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        return False
    if (
        xs.min() < minx - 10 * span - 1e5
        or xs.max() > maxx + 10 * span + 1e5
        or ys.min() < miny - 10 * span - 1e5
        or ys.max() > maxy + 10 * span + 1e5
    ):
        return False
    return _fits_area_of_use(crs, lonlat, margin)


# --------------------------------------------------------------------------- inference


def _gk_label(zone: GKZone, with_prefix: bool) -> str:
    return (
        f"CGCS2000 {zone.width}度带 {zone.zone} 带（中央经线 {zone.central_meridian:g}°E，"
        f"{'横坐标含带号' if with_prefix else '横坐标无带号'}）"
    )


#: Transverse Mercator on the CGCS2000 ellipsoid centred on 0°E, no false easting offset
#: beyond the usual 500 km: every Gauss–Krüger zone is this projection shifted by its central
#: meridian, so one transformer serves all zones when testing candidates.
_TM_REFERENCE = CRS.from_proj4(
    "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
)


def _gk_lonlat(cand: CRSCandidate, bounds: Sequence[float]) -> Bounds | None:
    assert cand.zone is not None
    width = 3 if cand.kind in ("gk3", "gk3_prefix") else 6
    cm = GKZone(cand.zone, width).central_meridian
    shift = cand.zone * 1_000_000 if cand.kind.endswith("_prefix") else 0
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    rel = _to_lonlat(_TM_REFERENCE, (minx - shift, miny, maxx - shift, maxy))
    if rel is None:
        return None
    return (rel[0] + cm, rel[1], rel[2] + cm, rel[3])


def _candidate_ok(cand: CRSCandidate, bounds: Sequence[float]) -> bool:
    if cand.kind in ("geographic", "web_mercator"):
        lonlat = _to_lonlat(cand.crs, bounds)
    else:
        lonlat = _gk_lonlat(cand, bounds)
    if lonlat is None or not _in_china_lonlat(lonlat):
        return False
    if cand.kind in ("geographic", "web_mercator"):
        return True
    return _fits_area_of_use(cand.crs, lonlat, 1.5)


def infer_crs(bounds: Sequence[float]) -> list[CRSCandidate]:
    """Coordinate systems in which ``bounds`` are plausible coordinates inside China.

    Parameters
    ----------
    bounds : (minx, miny, maxx, maxy)
        Coordinate ranges of the data.

    Returns
    -------
    list of CRSCandidate
        Empty when nothing fits (e.g. swapped lon/lat, huge values); one element when the CRS
        is determined; several when ambiguous (Gauss–Krüger without zone prefix: the zone
        cannot be known from the coordinates).
    """
    if not _finite(bounds) or max(abs(float(v)) for v in bounds) > _MAX_ABS:
        return []
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    out: list[CRSCandidate] = []
    if _in_china_lonlat(bounds):
        out.append(CRSCandidate(_EPSG_LONLAT, "geographic", None, "CGCS2000 经纬度（度）"))
        return out
    northing_ok = _within((miny, maxy), *_GK_NORTHING)
    if northing_ok:
        zmin, zmax = gk_zone_from_easting(minx), gk_zone_from_easting(maxx)
        if zmin is not None and zmin == zmax:
            kind: CandidateKind = "gk3_prefix" if zmin.width == 3 else "gk6_prefix"
            out.append(CRSCandidate(zmin.epsg(True), kind, zmin.zone, _gk_label(zmin, True)))
        if _within((minx, maxx), *_GK3_OFFSET):
            for z in range(_GK3_ZONES[0], _GK3_ZONES[1] + 1):
                zone = GKZone(z, 3)
                out.append(CRSCandidate(zone.epsg(False), "gk3", z, _gk_label(zone, False)))
        if _within((minx, maxx), *_GK6_OFFSET):
            for z in range(_GK6_ZONES[0], _GK6_ZONES[1] + 1):
                zone = GKZone(z, 6)
                out.append(CRSCandidate(zone.epsg(False), "gk6", z, _gk_label(zone, False)))
    # Web Mercator: x = R·lon, y = R·ln(tan(π/4 + lat/2)); China spans about x 8.1e6–15.2e6.
    if 7.5e6 <= minx and maxx <= 1.55e7 and 3.0e5 <= miny and maxy <= 7.3e6:
        out.append(CRSCandidate(_EPSG_WEB_MERCATOR, "web_mercator", None, "Web 墨卡托（米）"))
    return [c for c in out if _candidate_ok(c, bounds)]


def _describe_candidates(cands: Sequence[CRSCandidate], limit: int = 6) -> str:
    families: dict[str, list[CRSCandidate]] = {}
    for c in cands:
        families.setdefault(c.kind, []).append(c)
    parts = []
    for kind, items in families.items():
        if kind in ("gk3", "gk6") and len(items) > 2:
            width = 3 if kind == "gk3" else 6
            parts.append(
                f"EPSG:{items[0].epsg}–{items[-1].epsg}（CGCS2000 {width}度带无带号，"
                f"带号 {items[0].zone}–{items[-1].zone} 无法由坐标判断）"
            )
        else:
            parts.extend(f"{c.code}（{c.label_zh}）" for c in items[:limit])
    return "；".join(parts)


def _ambiguity_hint(cands: Sequence[CRSCandidate]) -> str:
    kinds = {c.kind for c in cands}
    if kinds <= {"gk3", "gk6"}:
        return (
            "请用 --crs 指定坐标系：3度带无带号为 EPSG:4534–4554（中央经线 75°E 起每 3° 一个，"
            "如 117°E 为 EPSG:4548），6度带无带号为 EPSG:4502–4512（如 117°E 为 EPSG:4509）"
        )
    return "请用 --crs 指定坐标系，可选：" + "、".join(c.code for c in cands[:8])


def _swap(bounds: Sequence[float]) -> Bounds:
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    return (miny, minx, maxy, maxx)


def resolve_crs(
    bounds: Sequence[float] | None,
    *,
    declared: CRS | str | int | None = None,
    override: CRS | str | int | None = None,
    typical_bounds: Sequence[float] | None = None,
    file: str | None = None,
) -> CRSResolution:
    """Settle the CRS of a dataset from what it declares, a user override and its coordinates.

    Parameters
    ----------
    bounds : (minx, miny, maxx, maxy) or None
        Coordinate ranges of all features (None when no feature has a geometry).
    declared : CRS or str, optional
        CRS found in the file (``.prj``, GeoPackage metadata, GeoJSON default).
    override : CRS or str, optional
        CRS given by the user (``--crs``); it replaces ``declared`` (no reprojection) but must
        still fit the coordinates.
    typical_bounds : (minx, miny, maxx, maxy), optional
        Bounds of a typical feature (median of feature bounds). When the full range fits no
        CRS but the typical feature does, the problem is a few stray features and the error
        is ``coordinates_out_of_range`` rather than a CRS problem.
    file : str, optional
        File name for error messages.

    Returns
    -------
    CRSResolution

    Raises
    ------
    CRSError
        ``crs_missing``, ``crs_ambiguous``, ``lonlat_swapped``, ``xy_swapped``,
        ``coordinates_out_of_range`` or ``crs_mismatch``.
    """
    decl = None if declared in (None, "") else parse_crs(declared)
    over = None if override in (None, "") else parse_crs(override)
    given = over if over is not None else decl
    source: Literal["declared", "override"] = "override" if over is not None else "declared"
    notes: list[str] = []
    if over is not None and decl is not None and crs_code(decl) != crs_code(over):
        notes.append(
            f"文件声明的坐标系 {crs_code(decl)} 已按指定改为 {crs_code(over)}（未做坐标转换）"
        )

    if bounds is None:
        if given is None:
            raise CRSError(
                "文件没有坐标系，且没有可用于推断坐标系的几何",
                key="crs_missing",
                file=file,
                hint="请用 --crs 指定坐标系，例如 --crs EPSG:4490",
            )
        return CRSResolution(given, crs_code(given), source, tuple(notes))

    if not _finite(bounds) or max(abs(float(v)) for v in bounds) > _MAX_ABS:
        raise _out_of_range(bounds, file)

    if given is not None:
        if crs_fits_bounds(given, bounds):
            if given.is_geographic and not _in_china_lonlat(bounds):
                notes.append(f"坐标不在中国范围内（{format_bounds(bounds)}）")
            return CRSResolution(given, crs_code(given), source, tuple(notes))
        if typical_bounds is not None and crs_fits_bounds(given, typical_bounds):
            raise _out_of_range(bounds, file, crs=given)
        if given.is_geographic and looks_lonlat_swapped(bounds):
            raise _swapped(bounds, file, lonlat=True)
        if not given.is_geographic and crs_fits_bounds(given, _swap(bounds)):
            raise _swapped(bounds, file, lonlat=False, crs=given)
        cands = infer_crs(bounds)
        what = "指定的坐标系" if source == "override" else "文件声明的坐标系"
        hint = (
            f"坐标范围像是 {cands[0].code}（{cands[0].label_zh}），可用 --crs {cands[0].code} 覆盖"
            if len(cands) == 1
            else (
                "坐标范围可能属于：" + _describe_candidates(cands) + "；请用 --crs 指定正确的坐标系"
                if cands
                else "请检查坐标单位与坐标系，并用 --crs 指定正确的坐标系"
            )
        )
        raise CRSError(
            f"{what} {crs_code(given)}（{given.name}）与坐标范围不符：{format_bounds(bounds)}",
            key="crs_mismatch",
            file=file,
            hint=hint,
            data={
                "crs": crs_code(given),
                "bounds": [float(v) for v in bounds],
                "candidates": [c.code for c in cands],
            },
        )

    cands = infer_crs(bounds)
    if len(cands) == 1:
        c = cands[0]
        notes.append(f"坐标系由坐标范围推断为 {c.code}（{c.label_zh}）")
        if c.kind in ("gk3_prefix", "gk6_prefix"):
            notes.append("如数据实为北京54或西安80坐标系，请用 --crs 指定（坐标范围无法区分）")
        return CRSResolution(c.crs, c.code, "inferred", tuple(notes), tuple(cands))
    if len(cands) > 1:
        raise CRSError(
            f"文件没有坐标系，坐标范围（{format_bounds(bounds)}）符合多个坐标系：{_describe_candidates(cands)}",
            key="crs_ambiguous",
            file=file,
            hint=_ambiguity_hint(cands),
            data={"candidates": [c.code for c in cands], "bounds": [float(v) for v in bounds]},
        )
    if typical_bounds is not None and infer_crs(typical_bounds):
        raise _out_of_range(bounds, file)
    if looks_lonlat_swapped(bounds):
        raise _swapped(bounds, file, lonlat=True)
    swapped = infer_crs(_swap(bounds))
    if swapped and all(c.kind != "geographic" for c in swapped):
        raise _swapped(bounds, file, lonlat=False)
    raise _out_of_range(bounds, file)


def _out_of_range(bounds: Sequence[float], file: str | None, crs: CRS | None = None) -> CRSError:
    where = f"在 {crs_code(crs)} 中" if crs is not None else "在任何支持的坐标系中"
    return CRSError(
        f"坐标超出合理范围（{format_bounds(bounds)}），{where}都不是中国境内的坐标",
        key="coordinates_out_of_range",
        file=file,
        hint="检查坐标单位（是否为毫米/厘米）、是否缺少或多了带号、是否混入了错误坐标的要素",
        data={"bounds": [float(v) for v in bounds]},
    )


def _swapped(
    bounds: Sequence[float], file: str | None, *, lonlat: bool, crs: CRS | None = None
) -> CRSError:
    if lonlat:
        return CRSError(
            f"经纬度顺序可能颠倒：X（{float(bounds[0]):.6g}～{float(bounds[2]):.6g}）像纬度，"
            f"Y（{float(bounds[1]):.6g}～{float(bounds[3]):.6g}）像经度",
            key="lonlat_swapped",
            file=file,
            hint=(
                "请按“经度, 纬度”顺序重新导出；"
                "表格数据可用 --x-field 指定经度列、--y-field 指定纬度列"
            ),
            data={"bounds": [float(v) for v in bounds]},
        )
    target = f"{crs_code(crs)} 的" if crs is not None else ""
    return CRSError(
        f"X/Y 可能颠倒：交换后才是合理的{target}高斯投影坐标（{format_bounds(bounds)}）",
        key="xy_swapped",
        file=file,
        hint=(
            "测量坐标中 X 为北坐标、Y 为东坐标；"
            "请交换坐标列（--x-field 东坐标列 --y-field 北坐标列）后重新导入"
        ),
        data={"bounds": [float(v) for v in bounds]},
    )


def plausible_envelope(
    crs: CRS, *, china: bool = True, margin: float = _DECLARED_MARGIN_DEG
) -> Bounds:
    """Native-coordinate box in which features of ``crs`` are plausible.

    Geographic CRSs: China's lon/lat envelope (``china=True``) or the whole globe. Projected
    CRSs: the EPSG area of use widened by ``margin`` degrees, in the CRS's own units.
    """
    if crs.is_geographic:
        if china:
            return (
                CHINA_LON[0] - _MARGIN_DEG,
                CHINA_LAT[0] - _MARGIN_DEG,
                CHINA_LON[1] + _MARGIN_DEG,
                CHINA_LAT[1] + _MARGIN_DEG,
            )
        return (-180.0, -90.0, 180.0, 90.0)
    aou = crs.area_of_use
    if aou is None:
        return (-_MAX_ABS, -_MAX_ABS, _MAX_ABS, _MAX_ABS)
    w, s, e, n = aou.bounds
    box = (
        max(w - margin, -180.0),
        max(s - margin, -90.0),
        min(e + margin, 180.0),
        min(n + margin, 90.0),
    )
    try:
        out = _transformer(_LONLAT, crs).transform_bounds(*box, densify_pts=21)
    except (ProjError, ValueError, OverflowError):
        return (-_MAX_ABS, -_MAX_ABS, _MAX_ABS, _MAX_ABS)
    if not _finite(out):
        return (-_MAX_ABS, -_MAX_ABS, _MAX_ABS, _MAX_ABS)
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))
