"""Parser of 界址点坐标 TXT files (the "[属性描述] / [地块坐标]" exchange format).

The format, as written by land-survey (勘测定界) software and accepted by most provincial
approval systems::

    [属性描述]
    格式版本号=1.0
    坐标系=2000国家大地坐标系
    几度分带=3
    投影类型=高斯克吕格
    计量单位=米
    带号=39
    精度=0.001
    转换参数=,,,,,,
    [地块坐标]
    5,0.6523,K01,某项目用地,面,J50G001001,工业用地,0601,@
    J1,1,4399567.123,39500123.456
    J2,1,4399600.000,39500200.000
    ...
    J1,1,4399567.123,39500123.456

A parcel header ends with ``@``: point count, area (公顷 in most producers), parcel number, name,
shape kind, sheet number, use, land-use code (optional fields vary). Each point row is
``point number, ring number, X, Y`` where, in Chinese surveying convention, **X is the northing**
and **Y the easting** (often with the zone number prefixed, e.g. 39 500 123.456). A ring is
closed by repeating its first point. Ring 1 is the outer boundary; a ring inside another is a
hole, a ring outside every other starts a new part.

Refused, with a Chinese message naming the parcel and line: an unclosed ring, a point number used
twice (other than the closing point), a ring of fewer than three points, a point count that does
not match the rows, coordinates whose X and Y look swapped, a datum other than CGCS2000 without
transformation parameters, and coordinates that fit no Gauss–Krüger zone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from yizhangtu.errors import CRSError, FileFormatError, GeometryError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.geo.crs import GKZone, crs_code, gk_epsg, gk_zone_from_easting, parse_crs

__all__ = [
    "JzdFile",
    "JzdParcel",
    "JzdPoint",
    "JzdRing",
    "XYOrder",
    "declared_area_notes",
    "jzd_to_frame",
    "looks_like_jzd",
    "parse_jzd",
]

XYOrder = Literal["ne", "en"]

#: Plausible Gauss–Krüger northing in China (metres) and easting offsets (see geo.crs).
_NORTHING = (300_000.0, 6_100_000.0)
_EAST_NOPREFIX = (100_000.0, 900_000.0)

_SECTION = re.compile(r"^\s*\[(.+?)\]\s*$")
_CGCS2000_NAMES = ("2000", "CGCS")
_DATUMS: dict[str, tuple[str, str]] = {
    # name fragment -> (ellipsoid for PROJ, Chinese label)
    "80": ("IAU76", "西安80坐标系"),
    "西安": ("IAU76", "西安80坐标系"),
    "XIAN": ("IAU76", "西安80坐标系"),
    "54": ("krass", "北京54坐标系"),
    "北京": ("krass", "北京54坐标系"),
    "BEIJING": ("krass", "北京54坐标系"),
}


@dataclass(frozen=True)
class JzdPoint:
    """One boundary point: number, ring, northing (X), easting (Y), source line."""

    name: str
    ring: int
    north: float
    east: float
    line: int


@dataclass(frozen=True)
class JzdRing:
    """A closed ring: its points without the repeated closing point."""

    number: int
    points: tuple[JzdPoint, ...]

    def coords(self) -> np.ndarray:
        """(easting, northing) array, closed."""
        xy = np.array([(p.east, p.north) for p in self.points], dtype=float)
        return np.vstack([xy, xy[:1]])


@dataclass(frozen=True)
class JzdParcel:
    """One parcel (地块) of the file."""

    index: int
    parcel_id: str
    name: str
    declared_points: int | None
    declared_area: float | None
    shape_kind: str
    sheet: str
    use: str
    land_code: str
    rings: tuple[JzdRing, ...]
    line: int
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class JzdFile:
    """A parsed 界址点 file.

    Attributes
    ----------
    attributes : mapping
        The ``[属性描述]`` key/values.
    parcels : tuple of JzdParcel
    crs : pyproj.CRS
        CRS of the coordinates (easting, northing).
    crs_source : str
        ``override``, ``declared`` (from 坐标系/带号) or ``inferred`` (from the easting prefix).
    notes : tuple of str
        Chinese notes (CRS decisions, declared-area checks).
    """

    attributes: Mapping[str, str]
    parcels: tuple[JzdParcel, ...]
    crs: CRS
    crs_source: str
    notes: tuple[str, ...] = field(default=())

    @property
    def crs_code(self) -> str:
        """``EPSG:xxxx`` or WKT."""
        return crs_code(self.crs)


def looks_like_jzd(text: str) -> bool:
    """Tell whether ``text`` has a ``[地块坐标]`` section (or a header ending with ``@``)."""
    return "[地块坐标]" in text or bool(re.search(r",\s*@\s*$", text, flags=re.MULTILINE))


def _fmt_err(
    msg: str,
    *,
    key: str,
    file: str | None,
    line: int | None = None,
    parcel: str | None = None,
    hint: str | None = None,
    data: dict[str, Any] | None = None,
) -> FileFormatError:
    where = []
    if parcel:
        where.append(f"地块 {parcel}")
    if line:
        where.append(f"第 {line} 行")
    prefix = ("; ".join(where) + ": ") if where else ""
    return FileFormatError(prefix + msg, key=key, file=file, feature=parcel, hint=hint, data=data)


def _num(text: str) -> float | None:
    t = text.strip()
    if not t:
        return None
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _is_point_row(fields: list[str]) -> bool:
    if len(fields) < 4 or fields[-1].strip() == "@":
        return False
    ring = fields[1].strip()
    return (
        bool(re.fullmatch(r"\d+", ring))
        and _num(fields[2]) is not None
        and _num(fields[3]) is not None
    )


def _split(line: str) -> list[str]:
    return [f.strip() for f in line.replace("，", ",").split(",")]


def _parse_sections(text: str, file: str | None) -> tuple[dict[str, str], list[tuple[int, str]]]:
    attrs: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    section = None
    saw_coords = False
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip()
            saw_coords = saw_coords or section == "地块坐标"
            continue
        if section == "属性描述":
            if "=" in line:
                k, v = line.split("=", 1)
                attrs[k.strip()] = v.strip()
            continue
        if section in (None, "地块坐标"):
            body.append((n, line))
    if not saw_coords and not any(_split(t)[-1] == "@" for _, t in body):
        raise FileFormatError(
            "不是界址点坐标文件: 没有 [地块坐标] 段, 也没有以 @ 结尾的地块行",
            key="jzd_no_coordinates",
            file=file,
            hint="界址点文件应包含 [属性描述] 和 [地块坐标] 两段; 其他格式请使用 shp/gpkg/geojson",
        )
    return attrs, body


def _header(fields: list[str], line: int, index: int) -> dict[str, Any]:
    vals = [f for f in fields]
    if vals and vals[-1] == "@":
        vals = vals[:-1]
    vals += [""] * max(0, 8 - len(vals))
    count = _num(vals[0])
    return {
        "declared_points": int(count) if count is not None and float(count).is_integer() else None,
        "declared_area": _num(vals[1]),
        "parcel_id": vals[2] or f"地块{index}",
        "name": vals[3],
        "shape_kind": vals[4],
        "sheet": vals[5],
        "use": vals[6],
        "land_code": vals[7],
        "extra": tuple(vals[8:]),
        "line": line,
    }


def _close_rings(points: list[JzdPoint], parcel: str, file: str | None) -> list[JzdRing]:
    """Split a parcel's point rows into closed rings; refuse unclosed rings and reused numbers."""
    rings: list[JzdRing] = []
    current: list[JzdPoint] = []
    seen: dict[str, JzdPoint] = {}
    for p in points:
        if current and p.ring != current[0].ring:
            first, last = current[0], current[-1]
            raise _fmt_err(
                f"第 {first.ring} 圈未闭合: 首点 {first.name} (第 {first.line} 行) "
                f"与末点 {last.name} (第 {last.line} 行) 不同, 之后开始第 {p.ring} 圈",
                key="jzd_ring_unclosed",
                file=file,
                line=last.line,
                parcel=parcel,
                hint="每一圈最后须重复该圈第一个点 (点号与坐标均相同) 以闭合",
            )
        same_xy = (
            bool(current)
            and abs(p.north - current[0].north) <= 1e-6
            and abs(p.east - current[0].east) <= 1e-6
        )
        if current and (p.name == current[0].name or same_xy):
            first = current[0]
            if abs(p.north - first.north) > 1e-6 or abs(p.east - first.east) > 1e-6:
                raise _fmt_err(
                    f"点号 {p.name} 重复: "
                    f"与第 {first.line} 行的首点同号但坐标不同 "
                    f"(X {first.north:.3f}/{p.north:.3f}, Y {first.east:.3f}/{p.east:.3f})",
                    key="jzd_duplicate_point",
                    file=file,
                    line=p.line,
                    parcel=parcel,
                    hint="闭合点须与首点坐标完全相同; 不同的点须使用不同点号",
                )
            if len(current) < 3:
                raise _fmt_err(
                    f"第 {p.ring} 圈只有 {len(current)} 个不同的点, 不能构成面",
                    key="jzd_ring_too_short",
                    file=file,
                    line=p.line,
                    parcel=parcel,
                )
            rings.append(JzdRing(number=p.ring, points=tuple(current)))
            current = []
            continue
        prev = seen.get(p.name)
        if prev is not None and (
            prev.ring == p.ring
            or abs(prev.north - p.north) > 1e-6
            or abs(prev.east - p.east) > 1e-6
        ):
            raise _fmt_err(
                f"点号 {p.name} 重复出现 (第 {prev.line} 行与第 {p.line} 行)",
                key="jzd_duplicate_point",
                file=file,
                line=p.line,
                parcel=parcel,
                hint="同一地块内每个界址点的点号须唯一, 只有闭合点可以重复首点",
            )
        seen[p.name] = p
        current.append(p)
    if current:
        first, last = current[0], current[-1]
        raise _fmt_err(
            f"第 {first.ring} 圈未闭合: 首点 {first.name} (第 {first.line} 行) "
            f"与末点 {last.name} (第 {last.line} 行) 不同",
            key="jzd_ring_unclosed",
            file=file,
            line=last.line,
            parcel=parcel,
            hint="每一圈最后须重复该圈第一个点 (点号与坐标均相同) 以闭合",
        )
    return rings


def _parse_body(
    body: list[tuple[int, str]], file: str | None
) -> list[tuple[dict[str, Any], list[JzdPoint]]]:
    parcels: list[tuple[dict[str, Any], list[JzdPoint]]] = []
    for n, line in body:
        fields = _split(line)
        if fields and fields[-1] == "@":
            parcels.append((_header(fields, n, len(parcels) + 1), []))
            continue
        if _is_point_row(fields):
            if not parcels:
                raise _fmt_err(
                    "坐标行之前没有地块行 (以 @ 结尾)",
                    key="jzd_no_header",
                    file=file,
                    line=n,
                    hint="每个地块的坐标前须有一行“点数,面积,地块编号,地块名称,...,@”",
                )
            north, east = float(fields[2]), float(fields[3])
            parcels[-1][1].append(
                JzdPoint(name=fields[0], ring=int(fields[1]), north=north, east=east, line=n)
            )
            continue
        raise _fmt_err(
            f"无法识别的行: {line[:60]}",
            key="jzd_bad_line",
            file=file,
            line=n,
            hint="坐标行格式为 点号,圈号,X(北坐标),Y(东坐标); 地块行以 @ 结尾",
        )
    if not parcels:
        raise FileFormatError("界址点文件中没有地块", key="jzd_empty", file=file)
    for head, pts in parcels:
        if not pts:
            raise _fmt_err(
                "地块没有坐标行",
                key="jzd_empty_parcel",
                file=file,
                line=head["line"],
                parcel=head["parcel_id"],
            )
    return parcels


def _plausible_east(e: np.ndarray) -> tuple[bool, GKZone | None]:
    zones = {gk_zone_from_easting(float(v)) for v in e}
    if None not in zones and len(zones) == 1:
        return True, next(iter(zones))
    ok = bool(np.all((e >= _EAST_NOPREFIX[0]) & (e <= _EAST_NOPREFIX[1])))
    return ok, None


def _plausible_north(n: np.ndarray) -> bool:
    return bool(np.all((n >= _NORTHING[0]) & (n <= _NORTHING[1])))


def _check_order(north: np.ndarray, east: np.ndarray, file: str | None) -> GKZone | None:
    e_ok, zone = _plausible_east(east)
    n_ok = _plausible_north(north)
    if e_ok and n_ok:
        return zone
    se_ok, _ = _plausible_east(north)
    sn_ok = _plausible_north(east)
    rng = f"X {north.min():.3f}～{north.max():.3f}, Y {east.min():.3f}～{east.max():.3f}"
    if se_ok and sn_ok:
        raise CRSError(
            f"界址点坐标的 X/Y 可能颠倒 ({rng}): 本格式中 X 为北坐标(纵坐标), Y 为东坐标(横坐标, "
            "常带带号), 文件中的 X 像东坐标、Y 像北坐标",
            key="jzd_xy_swapped",
            file=file,
            hint="请交换 X、Y 两列后重新导出; 确认文件确实是“东坐标在前”时, 可加 --xy-order en",
            data={
                "x_range": [float(north.min()), float(north.max())],
                "y_range": [float(east.min()), float(east.max())],
            },
        )
    raise CRSError(
        f"界址点坐标不像中国境内的高斯-克吕格投影坐标 ({rng})",
        key="coordinates_out_of_range",
        file=file,
        hint="检查坐标单位是否为米、是否混入了经纬度或错误的行; 经纬度坐标请使用其他格式",
    )


def _transform_params(text: str) -> list[float] | None:
    vals = [v.strip() for v in (text or "").replace("，", ",").split(",")]
    nums = [_num(v) for v in vals if v]
    if len(nums) < 3 or any(v is None for v in nums):
        return None
    return [float(v) for v in nums if v is not None]


def _resolve(
    attrs: Mapping[str, str], zone: GKZone | None, east: np.ndarray, override: Any, file: str | None
) -> tuple[CRS, str, list[str]]:
    notes: list[str] = []
    if override not in (None, ""):
        crs = parse_crs(override)
        notes.append(f"坐标系按指定使用 {crs_code(crs)}")
        return crs, "override", notes
    datum = (attrs.get("坐标系") or attrs.get("坐标系统") or "").strip()
    width_text = (attrs.get("几度分带") or attrs.get("分带") or "").strip()
    width = int(_num(width_text) or 0) or (zone.width if zone else 3)
    zone_text = (attrs.get("带号") or "").strip()
    zone_num = _num(zone_text)
    declared_zone = int(zone_num) if zone_num is not None else None
    unit = (attrs.get("计量单位") or "米").strip()
    if unit not in ("米", "m", "M", "metre", "meter"):
        raise CRSError(
            f"界址点坐标的计量单位为 {unit}, 只支持米",
            key="jzd_unit",
            file=file,
            hint="请以米为单位导出坐标",
        )
    if zone is not None and declared_zone is not None and declared_zone != zone.zone:
        raise CRSError(
            f"文件声明带号为 {declared_zone}, 但 Y 坐标的带号前缀为 {zone.zone}",
            key="jzd_zone_mismatch",
            file=file,
            hint="核对 [属性描述] 中的带号与坐标; 可用 --crs 明确指定坐标系",
        )
    zone_no = zone.zone if zone is not None else declared_zone
    if zone is not None:
        width = zone.width
    if zone_no is None:
        raise CRSError(
            "界址点坐标没有带号前缀, 文件也未声明带号, 无法确定投影带",
            key="crs_ambiguous",
            file=file,
            hint=(
                "在 [属性描述] 中填写 带号=, "
                "或用 --crs 指定 (如 EPSG:4548 表示 CGCS2000 3度带 39带 无带号)"
            ),
        )
    prefix = zone is not None
    upper = datum.upper()
    if not datum or any(k in upper for k in _CGCS2000_NAMES):
        epsg = gk_epsg(zone_no, width, with_prefix=prefix)
        src = "declared" if datum else "inferred"
        notes.append(
            f"坐标系{'按声明' if datum else '未声明, 按 CGCS2000 推断'}为 EPSG:{epsg} "
            f"(CGCS2000 {width}度带 {zone_no}带{'含带号' if prefix else ''})"
        )
        if not datum:
            notes.append(
                "如坐标实为西安80或北京54坐标系, 请在文件中声明并给出转换参数, 或用 --crs 指定"
            )
        return CRS.from_epsg(epsg), src, notes
    for frag, (ellps, label) in _DATUMS.items():
        if frag in upper:
            params = _transform_params(attrs.get("转换参数", ""))
            if params is None:
                raise CRSError(
                    f"文件坐标系为{label}, 但没有转换参数, "
                    "无法准确转换到 CGCS2000 (两者相差可达数十米至百余米)",
                    key="jzd_datum_without_parameters",
                    file=file,
                    hint=(
                        "请提供 CGCS2000 坐标的界址点文件, "
                        "或在 [属性描述] 的 转换参数= 中填写七参数 (dx,dy,dz,rx,ry,rz,尺度ppm)"
                    ),
                    data={"datum": datum},
                )
            cm = zone_no * 3 if width == 3 else zone_no * 6 - 3
            x0 = (zone_no * 1_000_000 if prefix else 0) + 500_000
            towgs = ",".join(f"{v:g}" for v in (params + [0.0] * 7)[:7])
            crs = CRS.from_proj4(
                f"+proj=tmerc +lat_0=0 +lon_0={cm} +k=1 +x_0={x0} +y_0=0 +ellps={ellps} "
                f"+towgs84={towgs} +units=m +no_defs"
            )
            notes.append(
                f"坐标系为{label} {width}度带 {zone_no}带, 按文件转换参数 ({towgs}) 转换到 CGCS2000"
            )
            return crs, "declared", notes
    raise CRSError(
        f"无法识别界址点文件声明的坐标系: {datum}",
        key="jzd_crs_unknown",
        file=file,
        hint=(
            "支持 2000国家大地坐标系 (CGCS2000) 及带转换参数的西安80/北京54; "
            "地方独立坐标系请先转换, 或用 --crs 指定"
        ),
        data={"datum": datum},
    )


def parse_jzd(
    text: str, *, file: str | None = None, crs: Any = None, xy_order: XYOrder = "ne"
) -> JzdFile:
    """Parse a 界址点坐标 text.

    Parameters
    ----------
    text : str
        Decoded file content.
    file : str, optional
        File name for messages.
    crs : CRS-like, optional
        Override of the coordinate system (the file's 坐标系 and 带号 are then ignored).
    xy_order : {'ne', 'en'}
        ``ne`` (default, Chinese surveying convention): X is the northing, Y the easting.
        ``en``: the file lists the easting first.

    Returns
    -------
    JzdFile

    Raises
    ------
    FileFormatError
        Structure problems (``jzd_ring_unclosed``, ``jzd_duplicate_point``,
        ``jzd_point_count``, ``jzd_bad_line`` …), naming the parcel and line.
    CRSError
        ``jzd_xy_swapped``, ``jzd_datum_without_parameters``, ``jzd_zone_mismatch``,
        ``crs_ambiguous``, ``coordinates_out_of_range``.
    GeometryError
        A parcel whose rings do not form a valid polygon (``jzd_invalid_polygon``).
    """
    if xy_order not in ("ne", "en"):
        raise FileFormatError(
            f"未知的坐标顺序: {xy_order}", key="jzd_xy_order", hint="可选 ne (X北Y东, 默认) 或 en"
        )
    attrs, body = _parse_sections(text, file)
    raw = _parse_body(body, file)
    if xy_order == "en":
        raw = [
            (h, [JzdPoint(p.name, p.ring, p.east, p.north, p.line) for p in pts]) for h, pts in raw
        ]
    north = np.array([p.north for _, pts in raw for p in pts])
    east = np.array([p.east for _, pts in raw for p in pts])
    zone = (
        _check_order(north, east, file)
        if crs in (None, "")
        else gk_zone_from_easting(float(east[0]))
    )
    the_crs, source, notes = _resolve(attrs, zone, east, crs, file)
    parcels: list[JzdParcel] = []
    for i, (head, pts) in enumerate(raw, start=1):
        rings = _close_rings(pts, head["parcel_id"], file)
        declared = head["declared_points"]
        if declared is not None and declared not in (len(pts), len(pts) - len(rings)):
            raise _fmt_err(
                f"地块行声明 {declared} 个点, 实有 {len(pts)} 行坐标 ({len(rings)} 圈)",
                key="jzd_point_count",
                file=file,
                line=head["line"],
                parcel=head["parcel_id"],
                hint="文件可能被截断或混入了其他地块的坐标; 请核对点数后重新导出",
            )
        parcels.append(
            JzdParcel(
                index=i,
                parcel_id=head["parcel_id"],
                name=head["name"],
                declared_points=declared,
                declared_area=head["declared_area"],
                shape_kind=head["shape_kind"],
                sheet=head["sheet"],
                use=head["use"],
                land_code=head["land_code"],
                rings=tuple(rings),
                line=head["line"],
                extra=head["extra"],
            )
        )
    ids = [p.parcel_id for p in parcels]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        notes.append(f"地块编号重复: {', '.join(dup)} (按出现顺序区分)")
    return JzdFile(
        attributes=dict(attrs),
        parcels=tuple(parcels),
        crs=the_crs,
        crs_source=source,
        notes=tuple(notes),
    )


def _polygon(parcel: JzdParcel, file: str | None) -> Any:
    rings = [shapely.Polygon(r.coords()) for r in parcel.rings]
    n = len(rings)
    depth = [
        sum(
            1
            for j in range(n)
            if j != i
            and rings[j].contains(rings[i].representative_point())
            and rings[j].area > rings[i].area
        )
        for i in range(n)
    ]
    shells: dict[int, list[Any]] = {i: [] for i in range(n) if depth[i] % 2 == 0}
    for i in range(n):
        if depth[i] % 2 == 1:
            owners = [
                j
                for j in shells
                if rings[j].contains(rings[i].representative_point()) and depth[j] == depth[i] - 1
            ]
            owner = min(owners, key=lambda j: rings[j].area)
            shells[owner].append(rings[i].exterior.coords)
    parts = [shapely.Polygon(rings[i].exterior.coords, holes) for i, holes in shells.items()]
    geom = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    if not shapely.is_valid(geom):
        reason = shapely.is_valid_reason(geom)
        raise GeometryError(
            f"地块 {parcel.parcel_id} 的界址点不能构成有效的面: {reason}",
            key="jzd_invalid_polygon",
            file=file,
            feature=parcel.parcel_id,
            hint="检查点序是否交叉、内外圈是否相交; 修正后重新导出",
            data={"reason": reason, "line": parcel.line},
        )
    return geom


def jzd_to_frame(jzd: JzdFile, *, file: str | None = None) -> gpd.GeoDataFrame:
    """One row per parcel, in the file's CRS, with planar and ellipsoidal areas.

    Columns: ``parcel_id``, ``name``, ``use``, ``land_code``, ``sheet``, ``declared_area``,
    ``point_count``, ``ring_count``, ``planar_area_m2`` (Gauss–Krüger plane of the file, the
    surveying figure), ``area_m2`` (ellipsoidal), ``geometry``.
    """
    geoms = [_polygon(p, file) for p in jzd.parcels]
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": [p.parcel_id for p in jzd.parcels],
            "name": [p.name for p in jzd.parcels],
            "use": [p.use for p in jzd.parcels],
            "land_code": [p.land_code for p in jzd.parcels],
            "sheet": [p.sheet for p in jzd.parcels],
            "declared_area": [p.declared_area for p in jzd.parcels],
            "point_count": [sum(len(r.points) for r in p.rings) for p in jzd.parcels],
            "ring_count": [len(p.rings) for p in jzd.parcels],
        },
        geometry=geoms,
        crs=jzd.crs,
    )
    gdf["planar_area_m2"] = shapely.area(np.asarray(gdf.geometry.values, dtype=object))
    gdf["area_m2"] = ellipsoidal_area(gdf.geometry)
    return gdf


def declared_area_notes(gdf: gpd.GeoDataFrame) -> list[str]:
    """Compare each parcel's declared area with its planar area (公顷, 平方米 or 亩)."""
    notes: list[str] = []
    for _, r in gdf.iterrows():
        d = r["declared_area"]
        if d is None or (isinstance(d, float) and math.isnan(d)) or d <= 0:
            continue
        planar = float(r["planar_area_m2"])
        for factor in (10_000.0, 1.0, 10_000.0 / 15.0):  # 公顷, 平方米, 亩
            if abs(d * factor - planar) <= max(0.005 * planar, 1.0):
                break
        else:
            notes.append(
                f"地块 {r['parcel_id']} 声明面积 {d:g} 与按坐标计算的平面面积 "
                f"{planar:,.1f}㎡ ({planar / 10_000:.4f} 公顷) 不符"
            )
    return notes
