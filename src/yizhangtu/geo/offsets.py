"""GCJ-02 and BD-09: the offset coordinates of Chinese consumer web maps, and how to detect them.

GCJ-02 (国测局坐标, "Mars coordinates") is WGS84 lon/lat passed through a published obfuscation
formula; Amap (高德), Tencent and Google China use it. BD-09 (百度坐标) is a further offset of
GCJ-02 used by Baidu. In Beijing the GCJ-02 offset is about +0.006° lon / +0.0013° lat
(≈ 500 m); BD-09 adds about +0.0065° / +0.006° more.

* Forward formulas are the public ones (Krasovsky ellipsoid constants ``a = 6378245``,
  ``ee = 0.00669342162296594323``; BD-09 with ``x_pi = π·3000/180``).
* Inverses are iterative (fixed-point on the forward formula) until the residual is below
  1e-10°, far below the 1e-7° (~1 cm) requirement.
* The offsets apply only inside China, tested per vertex against the customary rectangle
  lon 73.66–135.05°E, lat 3.86–53.55°N (as in the widely used public implementations and in
  the conversion of /work/shared/data); outside it both are the identity. The rectangle also
  holds parts of neighbouring countries (Seoul, Hanoi, Bangkok): do not convert data there.

All functions are vectorised with :func:`shapely.transform` and numpy and accept a
GeoSeries (returned with the same index and CRS), an array of geometries or one geometry.
Z values are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

from yizhangtu.errors import CRSError

__all__ = [
    "OffsetFinding",
    "OffsetKind",
    "bd09_to_gcj02",
    "bd09_to_gcj02_xy",
    "bd09_to_wgs84",
    "detect_offset",
    "gcj02_to_bd09",
    "gcj02_to_bd09_xy",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_xy",
    "in_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
    "wgs84_to_gcj02_xy",
]

OffsetKind = Literal["none", "gcj02", "bd09"]
G = TypeVar("G")

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_CHINA = (73.66, 3.86, 135.05, 53.55)
_TOL = 1e-10
_MAX_ITER = 50


def in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Boolean mask of coordinates inside the envelope where GCJ-02/BD-09 apply."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon > _CHINA[0]) & (lon < _CHINA[2]) & (lat > _CHINA[1]) & (lat < _CHINA[3])


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    dlat += (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    dlon += (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 → GCJ-02 for coordinate arrays (identity outside China)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    mask = in_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if mask.any():
        dlon, dlat = _delta(lon[mask], lat[mask])
        out_lon[mask] = lon[mask] + dlon
        out_lat[mask] = lat[mask] + dlat
    return out_lon, out_lat


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lon: np.ndarray,
    lat: np.ndarray,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(p) = target by fixed-point iteration (the Jacobian is close to identity)."""
    plon, plat = (lon.copy(), lat.copy()) if start is None else (start[0].copy(), start[1].copy())
    for _ in range(_MAX_ITER):
        flon, flat = forward(plon, plat)
        rlon, rlat = flon - lon, flat - lat
        plon -= rlon
        plat -= rlat
        if rlon.size == 0 or max(np.max(np.abs(rlon)), np.max(np.abs(rlat))) < _TOL:
            break
    return plon, plat


def gcj02_to_wgs84_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → WGS84 for coordinate arrays (iterative inverse; identity outside China)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    mask = in_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if mask.any():

        def fwd(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            dx, dy = _delta(x, y)
            return x + dx, y + dy

        out_lon[mask], out_lat[mask] = _invert(fwd, lon[mask], lat[mask])
    return out_lon, out_lat


def _gcj_to_bd_raw(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → BD-09 for coordinate arrays (identity outside China)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    mask = in_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if mask.any():
        out_lon[mask], out_lat[mask] = _gcj_to_bd_raw(lon[mask], lat[mask])
    return out_lon, out_lat


def bd09_to_gcj02_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → GCJ-02 for coordinate arrays (closed-form start, refined iteratively)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    mask = in_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if mask.any():
        bx, by = lon[mask], lat[mask]
        x, y = bx - 0.0065, by - 0.006
        z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
        theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
        start = (z * np.cos(theta), z * np.sin(theta))
        out_lon[mask], out_lat[mask] = _invert(_gcj_to_bd_raw, bx, by, start)
    return out_lon, out_lat


def _apply(geoms: G, fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> G:
    def tr(coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=float, copy=True)
        out[:, 0], out[:, 1] = fn(coords[:, 0], coords[:, 1])
        return out

    if isinstance(geoms, gpd.GeoSeries):
        crs = geoms.crs
        if crs is not None and not CRS.from_user_input(crs).is_geographic:
            raise CRSError(
                f"GCJ-02/BD-09 转换需要经纬度坐标，当前坐标系为 {crs}",
                key="offset_needs_lonlat",
                hint="先转换到经纬度（EPSG:4326/4490）再做偏移纠正",
            )
        values = shapely.transform(np.asarray(geoms.values, dtype=object), tr, include_z=None)
        return gpd.GeoSeries(values, index=geoms.index, crs=crs, name=geoms.name)
    if isinstance(geoms, shapely.Geometry):
        return shapely.transform(geoms, tr, include_z=None)
    return shapely.transform(np.asarray(geoms, dtype=object), tr, include_z=None)


def wgs84_to_gcj02(geoms: G) -> G:
    """WGS84 → GCJ-02 on a GeoSeries, geometry array or geometry (lon/lat degrees)."""
    return _apply(geoms, wgs84_to_gcj02_xy)


def gcj02_to_wgs84(geoms: G) -> G:
    """GCJ-02 → WGS84 (iterative inverse, residual < 1e-10°)."""
    return _apply(geoms, gcj02_to_wgs84_xy)


def gcj02_to_bd09(geoms: G) -> G:
    """GCJ-02 → BD-09."""
    return _apply(geoms, gcj02_to_bd09_xy)


def bd09_to_gcj02(geoms: G) -> G:
    """BD-09 → GCJ-02 (iterative inverse)."""
    return _apply(geoms, bd09_to_gcj02_xy)


def _bd09_to_wgs84_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gcj02_to_wgs84_xy(*bd09_to_gcj02_xy(lon, lat))


def _wgs84_to_bd09_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gcj02_to_bd09_xy(*wgs84_to_gcj02_xy(lon, lat))


def bd09_to_wgs84(geoms: G) -> G:
    """BD-09 → WGS84 (via GCJ-02)."""
    return _apply(geoms, _bd09_to_wgs84_xy)


def wgs84_to_bd09(geoms: G) -> G:
    """WGS84 → BD-09 (via GCJ-02)."""
    return _apply(geoms, _wgs84_to_bd09_xy)


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class OffsetFinding:
    """Whether a layer looks GCJ-02 or BD-09 shifted against a reference boundary layer.

    Attributes
    ----------
    kind : str
        ``none``, ``gcj02`` or ``bd09``.
    overlap_raw : float
        IoU of the data's union with the reference union within the data's extent,
        taking the coordinates as WGS84.
    overlap_if_gcj02 : float
        The same after reading the data as GCJ-02 and converting to WGS84.
    overlap_if_bd09 : float
        The same after reading the data as BD-09 and converting to WGS84.
    message_zh : str
        What to tell the user, with the import option to use.
    """

    kind: OffsetKind
    overlap_raw: float
    overlap_if_gcj02: float
    overlap_if_bd09: float
    message_zh: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "overlap_raw": self.overlap_raw,
            "overlap_if_gcj02": self.overlap_if_gcj02,
            "overlap_if_bd09": self.overlap_if_bd09,
            "message_zh": self.message_zh,
        }


def _lonlat_polygons(gdf: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> np.ndarray:
    geoms = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    if geoms.crs is None:
        raise CRSError(
            f"{what}没有坐标系，无法判断偏移",
            key="crs_missing",
            hint="导入时用 --crs 指定坐标系",
        )
    if not CRS.from_user_input(geoms.crs).is_geographic:
        geoms = geoms.to_crs(4326)
    arr = np.asarray(geoms.values, dtype=object)
    arr = arr[~shapely.is_missing(arr)]
    arr = arr[~shapely.is_empty(arr)]
    kinds = shapely.get_type_id(arr)
    arr = arr[np.isin(kinds, (3, 6))]  # Polygon, MultiPolygon
    if len(arr) == 0:
        return arr
    return shapely.make_valid(arr)


def detect_offset(
    gdf: gpd.GeoDataFrame | gpd.GeoSeries,
    reference: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    min_gain: float = 0.02,
    min_overlap: float = 0.5,
    min_match: float = 0.5,
    max_features: int = 5000,
) -> OffsetFinding:
    """Compare a polygon layer with a trusted reference boundary layer to detect GCJ-02/BD-09.

    The data are read three ways (as WGS84, as GCJ-02, as BD-09, each converted to WGS84);
    the reading whose union best overlaps the reference union within the data's extent wins.
    The reference "within the data's extent" is, for each reading, the union of the reference
    features that the reading covers for at least ``min_match`` of their area, so the test
    works on a few townships against a whole district layer. It needs data that outline
    reference units (boundaries, zones); small plots inside a unit give ``none`` with a
    message saying so.

    Parameters
    ----------
    gdf : GeoDataFrame or GeoSeries
        The layer being imported (polygons, lon/lat or any CRS).
    reference : GeoDataFrame or GeoSeries
        A reference layer known to be WGS84/CGCS2000 (e.g. township boundaries).
    min_gain : float
        IoU improvement over the raw reading needed to report an offset (heuristic).
    min_overlap : float
        Below this best IoU nothing can be said (the data do not outline reference units).
    min_match : float
        A reference feature takes part when a reading covers this share of its area.
    max_features : int
        Use at most this many data features (evenly spaced) to bound the cost.

    Returns
    -------
    OffsetFinding
    """
    data = _lonlat_polygons(gdf, "数据")
    ref = _lonlat_polygons(reference, "参考图层")
    if len(data) == 0 or len(ref) == 0:
        return OffsetFinding(
            "none", 0.0, 0.0, 0.0, "数据或参考图层没有面要素，无法判断是否存在 GCJ-02/BD-09 偏移"
        )
    if len(data) > max_features:
        data = data[np.linspace(0, len(data) - 1, max_features).astype(int)]
    # Everything is measured in an equal-area projection centred on the data (IoU is a ratio
    # of areas; never of square degrees).
    b = shapely.bounds(data)
    cx = float((b[:, 0].min() + b[:, 2].max()) / 2)
    cy = float((b[:, 1].min() + b[:, 3].max()) / 2)
    laea = CRS.from_proj4(f"+proj=laea +lat_0={cy:.6f} +lon_0={cx:.6f} +ellps=GRS80 +units=m")
    tr = Transformer.from_crs(4326, laea, always_xy=True)

    def proj(g: np.ndarray) -> np.ndarray:
        return shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    readings = {
        "raw": shapely.union_all(proj(data)),
        "gcj02": shapely.union_all(shapely.make_valid(proj(gcj02_to_wgs84(data)))),
        "bd09": shapely.union_all(shapely.make_valid(proj(bd09_to_wgs84(data)))),
    }
    # The reference "within the data's extent": for each reading, the reference features that
    # the reading covers for at least ``min_match`` of their area. Clipping the reference to a
    # bounding box instead would add neighbouring units that no reading covers and hide the
    # shift whenever the data are a subset of the reference units.
    rb = np.array([shapely.bounds(g) for g in readings.values()])
    box = shapely.box(rb[:, 0].min(), rb[:, 1].min(), rb[:, 2].max(), rb[:, 3].max())
    ref_p = proj(ref)
    ref_p = ref_p[shapely.intersects(ref_p, box)]
    ref_area = shapely.area(ref_p)
    iou: dict[str, float] = {}
    for name, geom in readings.items():
        shapely.prepare(geom)
        covered = shapely.area(shapely.intersection(ref_p, geom))
        matched = ref_p[(ref_area > 0) & (covered >= min_match * ref_area)]
        if len(matched) == 0:
            iou[name] = 0.0
            continue
        ref_union = shapely.union_all(matched)
        inter = float(shapely.area(shapely.intersection(geom, ref_union)))
        union = float(shapely.area(geom)) + float(shapely.area(ref_union)) - inter
        iou[name] = round(inter / union, 4) if union > 0 else 0.0

    best = max(("gcj02", "bd09"), key=lambda k: iou[k])
    raw, top = iou["raw"], iou[best]
    if max(raw, top) < min_overlap:
        kind: OffsetKind = "none"
        msg = (
            f"数据与参考边界的重叠度过低（IoU 最高 {max(raw, top):.2f}），"
            "无法判断是否存在 GCJ-02/BD-09 偏移（数据需与参考图层的单元边界对应）"
        )
    elif top > raw + min_gain:
        kind = best  # type: ignore[assignment]
        name = "GCJ-02（高德、腾讯等网络地图）" if best == "gcj02" else "BD-09（百度地图）"
        option = "--from-gcj02" if best == "gcj02" else "--from-bd09"
        msg = (
            f"数据与参考边界的重叠度（IoU）为 {raw:.2f}，按 {name}坐标纠正后为 {top:.2f}："
            f"数据很可能是 {name}坐标，请用 {option} 重新导入"
        )
    else:
        kind = "none"
        msg = (
            f"数据与参考边界吻合（IoU {raw:.2f}；按 GCJ-02 纠正后 {iou['gcj02']:.2f}，"
            f"按 BD-09 纠正后 {iou['bd09']:.2f}），未发现 GCJ-02/BD-09 偏移"
        )
    return OffsetFinding(kind, iou["raw"], iou["gcj02"], iou["bd09"], msg)
