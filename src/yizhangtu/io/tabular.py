"""Geometry from table columns: WKT, or x/y coordinate pairs (CSV, XLSX, attribute tables).

Column names are matched after Unicode NFKC normalisation (full-width letters become ASCII),
case folding and removal of spaces, underscores and hyphens. Recognised names:

* WKT: ``wkt``, ``geometry``, ``geom``, ``the_geom``, ``wkt_geom``, ``shape``, ``几何``, ``图形``;
  EWKT (``SRID=4490;POLYGON(...)``) is accepted and its SRID declares the CRS;
* x/y pairs: ``x``/``y``, ``lon``/``lat``, ``lng``/``lat``, ``long``/``lat``,
  ``longitude``/``latitude``, ``经度``/``纬度``, ``X坐标``/``Y坐标``, ``横坐标``/``纵坐标``,
  ``东坐标``/``北坐标``, ``point_x``/``point_y``, ``xcoord``/``ycoord``.

Coordinates may be numbers or text: ``116.4``, full-width digits, ``39,500,000.12``, or
degrees-minutes-seconds such as ``116°23′45.6″E`` / ``39度54分27秒``.

Surveyors' X is the northing and Y the easting (测量坐标系). When the columns are named
``X``/``Y`` or ``X坐标``/``Y坐标`` and only the swapped reading is a plausible Gauss–Krüger
coordinate, the reader swaps them and says so (``TabularSpec.survey_names``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import shapely

from yizhangtu.errors import FileFormatError, GeometryError, InputError

__all__ = [
    "WKT_NAMES",
    "XY_PAIRS",
    "TabularSpec",
    "build_geometry",
    "detect_columns",
    "parse_coordinates",
]

WKT_NAMES: tuple[str, ...] = (
    "wkt",
    "geometry",
    "geom",
    "the_geom",
    "wkt_geom",
    "shape",
    "几何",
    "图形",
)
XY_PAIRS: tuple[tuple[str, str], ...] = (
    ("x", "y"),
    ("lon", "lat"),
    ("lng", "lat"),
    ("long", "lat"),
    ("longitude", "latitude"),
    ("经度", "纬度"),
    ("x坐标", "y坐标"),
    ("横坐标", "纵坐标"),
    ("东坐标", "北坐标"),
    ("point_x", "point_y"),
    ("xcoord", "ycoord"),
)
_LONLAT_PAIRS = {
    ("lon", "lat"),
    ("lng", "lat"),
    ("long", "lat"),
    ("longitude", "latitude"),
    ("经度", "纬度"),
}
_SURVEY_PAIRS = {("x", "y"), ("x坐标", "y坐标")}


def _norm(name: object) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().casefold()
    return re.sub(r"[\s_\-]+", "", text)


@dataclass(frozen=True)
class TabularSpec:
    """Which columns hold the geometry of a table.

    Attributes
    ----------
    mode : str
        ``xy`` or ``wkt``.
    x, y : str or None
        Column names of the coordinates (``xy`` mode).
    wkt : str or None
        Column name of the WKT text (``wkt`` mode); it is consumed, not kept as an attribute.
    explicit : bool
        True when the user named the columns.
    lonlat_names : bool
        The columns are named as longitude/latitude.
    survey_names : bool
        The columns are named X/Y (may follow the surveyors' convention X = northing).
    """

    mode: Literal["xy", "wkt"]
    x: str | None = None
    y: str | None = None
    wkt: str | None = None
    explicit: bool = False
    lonlat_names: bool = False
    survey_names: bool = False

    @property
    def columns(self) -> list[str]:
        """Columns needed to build the geometry."""
        return [self.wkt] if self.mode == "wkt" else [self.x, self.y]  # type: ignore[list-item]

    def swapped(self) -> TabularSpec:
        """Return the same spec with x and y exchanged."""
        return TabularSpec(
            self.mode, self.y, self.x, self.wkt, self.explicit, self.lonlat_names, self.survey_names
        )


def _find(columns: Sequence[str], wanted: str, file: str | None) -> str:
    if wanted in columns:
        return wanted
    by_norm = {_norm(c): c for c in columns}
    if _norm(wanted) in by_norm:
        return by_norm[_norm(wanted)]
    raise InputError(
        f"表中没有名为“{wanted}”的列",
        key="field_not_found",
        file=file,
        field=wanted,
        hint="现有列：" + "、".join(str(c) for c in columns[:30]),
    )


def detect_columns(
    columns: Sequence[str],
    *,
    x_field: str | None = None,
    y_field: str | None = None,
    wkt_field: str | None = None,
    file: str | None = None,
) -> TabularSpec:
    """Find the geometry columns of a table.

    Raises
    ------
    InputError
        ``field_not_found``, ``xy_field_incomplete`` or ``coordinate_columns_ambiguous``.
    FileFormatError
        ``no_geometry_columns`` when nothing is recognised.
    """
    columns = [str(c) for c in columns]
    if wkt_field:
        return TabularSpec("wkt", wkt=_find(columns, wkt_field, file), explicit=True)
    if x_field or y_field:
        if not (x_field and y_field):
            raise InputError(
                "--x-field 与 --y-field 需同时指定",
                key="xy_field_incomplete",
                file=file,
                field=x_field or y_field,
                hint="例如 --x-field 经度 --y-field 纬度",
            )
        return TabularSpec(
            "xy", _find(columns, x_field, file), _find(columns, y_field, file), explicit=True
        )
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    wkts = [by_norm[_norm(n)] for n in WKT_NAMES if _norm(n) in by_norm]
    pairs = [
        (by_norm[_norm(a)], by_norm[_norm(b)], (a, b))
        for a, b in XY_PAIRS
        if _norm(a) in by_norm and _norm(b) in by_norm
    ]
    if len(wkts) > 1:
        raise InputError(
            "表中有多个可能的几何列：" + "、".join(wkts),
            key="coordinate_columns_ambiguous",
            file=file,
            hint=f"请用 --wkt-field 指定，例如 --wkt-field {wkts[0]}",
        )
    if wkts:
        return TabularSpec("wkt", wkt=wkts[0])
    if len(pairs) > 1:
        raise InputError(
            "表中有多组可能的坐标列：" + "；".join(f"{x}/{y}" for x, y, _ in pairs),
            key="coordinate_columns_ambiguous",
            file=file,
            hint=(
                "请用 --x-field/--y-field 指定，"
                f"例如 --x-field {pairs[0][0]} --y-field {pairs[0][1]}"
            ),
        )
    if pairs:
        x, y, names = pairs[0]
        return TabularSpec(
            "xy", x, y, lonlat_names=names in _LONLAT_PAIRS, survey_names=names in _SURVEY_PAIRS
        )
    raise FileFormatError(
        "表中没有可识别的坐标列或 WKT 几何列",
        key="no_geometry_columns",
        file=file,
        hint=(
            "坐标列可命名为 经度/纬度、X坐标/Y坐标、lon/lat、x/y，或 WKT 列命名为 wkt/geometry；"
            "也可用 --x-field/--y-field 或 --wkt-field 指定。现有列：" + "、".join(columns[:20])
        ),
        data={"columns": columns[:100]},
    )


_DMS = re.compile(
    r"^\s*([+-]?\d+(?:\.\d+)?)\s*[°度:]\s*"
    r"(?:(\d+(?:\.\d+)?)\s*['′’分:]?\s*)?"
    r"(?:(\d+(?:\.\d+)?)\s*(?:''|′′|[\"″”秒])?\s*)?"
    r"([NSEWnsew东西南北])?\s*$"
)
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def _parse_one(text: str) -> float:
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        return np.nan
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    try:
        return float(s)
    except ValueError:
        pass
    m = _DMS.match(s)
    if m is None:
        raise ValueError(text)
    deg = float(m.group(1))
    value = abs(deg) + float(m.group(2) or 0) / 60.0 + float(m.group(3) or 0) / 3600.0
    negative = deg < 0 or (m.group(4) or "").upper() in ("S", "W", "南", "西")
    return -value if negative else value


def parse_coordinates(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a coordinate column to float.

    Returns
    -------
    (values, bad) : numpy arrays
        Floats (NaN where empty or unparseable) and a mask of non-empty unparseable cells.
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return pd.to_numeric(values, errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        ), np.zeros(len(values), dtype=bool)
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    raw = values.to_numpy(dtype=object)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    for i, v in enumerate(raw):
        if not np.isnan(numeric[i]):
            out[i] = numeric[i]
            continue
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            continue
        try:
            out[i] = _parse_one(str(v))
        except ValueError:
            bad[i] = True
    return out, bad


def _strip_srid(texts: np.ndarray) -> tuple[np.ndarray, set[int]]:
    srids: set[int] = set()
    out = texts.copy()
    for i, t in enumerate(texts):
        if isinstance(t, str) and t[:5].upper() == "SRID=":
            head, _, rest = t.partition(";")
            try:
                srids.add(int(head[5:]))
            except ValueError:
                pass
            out[i] = rest
    return out, srids


def build_geometry(
    df: pd.DataFrame, spec: TabularSpec, *, offset: int = 0, file: str | None = None
) -> tuple[np.ndarray, set[int]]:
    """Build geometries for the rows of ``df``.

    Parameters
    ----------
    df : DataFrame
        Rows of the table (index ignored; ``offset`` is the position of the first row).
    spec : TabularSpec
        Geometry columns.
    offset : int
        Row number of ``df``'s first row in the whole table (for error messages).
    file : str, optional
        File name for error messages.

    Returns
    -------
    (geometries, srids)
        Geometry array (None where the cells are empty) and the SRIDs found in EWKT.

    Raises
    ------
    GeometryError
        ``bad_coordinate`` (unparseable number, or only one of x/y filled) or ``bad_wkt``.
    """
    if spec.mode == "wkt":
        col = df[spec.wkt]
        texts = col.to_numpy(dtype=object)
        empty = pd.isna(col).to_numpy() | np.array(
            [isinstance(t, str) and not t.strip() for t in texts], dtype=bool
        )
        texts[empty] = None
        texts, srids = _strip_srid(texts)
        geoms = shapely.from_wkt(texts, on_invalid="ignore")
        bad = np.flatnonzero(shapely.is_missing(geoms) & ~empty)
        if len(bad):
            i = int(bad[0])
            raise GeometryError(
                f"第 {offset + i + 1} 条记录的 WKT 无法解析：“{str(texts[i])[:60]}”",
                key="bad_wkt",
                file=file,
                feature=offset + i,
                field=spec.wkt,
                hint="请检查该记录的 WKT 文本（如 POLYGON ((x y, ...)) 是否完整、闭合）",
                data={"rows": [offset + int(j) for j in bad[:20]]},
            )
        return geoms, srids
    x, xbad = parse_coordinates(df[spec.x])
    y, ybad = parse_coordinates(df[spec.y])
    for arr_bad, name in ((xbad, spec.x), (ybad, spec.y)):
        if arr_bad.any():
            i = int(np.flatnonzero(arr_bad)[0])
            raise GeometryError(
                f"第 {offset + i + 1} 条记录的坐标“{df[name].iloc[i]}”不是数字",
                key="bad_coordinate",
                file=file,
                feature=offset + i,
                field=name,
                hint="坐标应为数字（如 116.3975 或 39500123.45），或度分秒（如 116°23′51″）",
                data={"rows": [offset + int(j) for j in np.flatnonzero(arr_bad)[:20]]},
            )
    half = np.isnan(x) ^ np.isnan(y)
    if half.any():
        i = int(np.flatnonzero(half)[0])
        missing = spec.x if np.isnan(x[i]) else spec.y
        raise GeometryError(
            f"第 {offset + i + 1} 条记录只有一个坐标（缺少 {missing}）",
            key="bad_coordinate",
            file=file,
            feature=offset + i,
            field=missing,
            hint="请补齐坐标，或删除该记录",
        )
    geoms = np.asarray(shapely.points(x, y), dtype=object)
    geoms[np.isnan(x)] = None
    return geoms, set()
