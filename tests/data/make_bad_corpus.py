# ruff: noqa: E501  (long bilingual case descriptions)
"""Regenerate the bad-input corpus in tests/data/bad/ (deterministic).

Every case is built from the real Chaoyang street boundaries (43 街道/乡,
thebamboogrove/bj-subdistricts, MIT, WGS84; copied to bad/_source/). Attributes that do not
come from that file (land-use codes DLBM/DLMC, duplicated ids, sliver parcels, shifted or
scaled coordinates) are synthetic and labelled ``synthetic: true`` in MANIFEST.yaml.

Usage::

    .venv/bin/python tests/data/make_bad_corpus.py [OUT_DIR]

OUT_DIR defaults to tests/data/bad. The output is byte-for-byte reproducible with the
locked versions (fixed DBF/zip/xlsx/GeoPackage timestamps); ``tests/test_io.py`` checks that.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import yaml

from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.geo.offsets import wgs84_to_bd09, wgs84_to_gcj02

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "bad"
SOURCE_NAME = "beijing_chaoyang_subdistricts_wgs84.geojson"
SHARED_SOURCE = Path("/work/shared/data/boundaries") / SOURCE_NAME
FIXED_DATE = (2024, 1, 1, 0, 0, 0)
GK_PREFIX = 4527  # CGCS2000 3-degree GK zone 39 (CM 117°E), zone number in the easting
GK_NO_PREFIX = 4548  # the same zone without the prefix

# Synthetic land-use codes (GB/T 21010-2017 三调 codes and names); only the codes are real
# classification values, their assignment to the street polygons is invented.
SYNTHETIC_CODES = [
    ("0101", "水田"),
    ("0201", "果园"),
    ("0301", "乔木林地"),
    ("0701", "城镇住宅用地"),
    ("1001", "铁路用地"),
    ("0702", "农村宅基地"),
]


# --------------------------------------------------------------------------- helpers


def load_streets(out: Path) -> gpd.GeoDataFrame:
    src = out / "_source" / SOURCE_NAME
    if not src.exists():
        if not SHARED_SOURCE.exists():
            raise SystemExit(f"missing source {src} (copy it from {SHARED_SOURCE})")
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_SOURCE, src)
    return gpd.read_file(src)


def _round(obj: Any, nd: int) -> Any:
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, (list, tuple)):
        return [_round(v, nd) for v in obj]
    return obj


def geom_json(g: Any, nd: int = 7) -> Any:
    if g is None:
        return None
    m = shapely.geometry.mapping(g)
    return {"type": m["type"], "coordinates": _round(m["coordinates"], nd)}


def feature(props: dict[str, Any], geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def write_geojson(
    path: Path, features: list[dict[str, Any]], *, encoding: str = "utf-8", name: str | None = None
) -> None:
    fc: dict[str, Any] = {"type": "FeatureCollection"}
    if name:
        fc["name"] = name
    fc["features"] = features
    text = json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def props_of(row: pd.Series) -> dict[str, Any]:
    return {"code": row["code"], "name": row["name"], "district_name": row["district_name"]}


def street_features(g: gpd.GeoDataFrame, nd: int = 7) -> list[dict[str, Any]]:
    return [feature(props_of(r), geom_json(r.geometry, nd)) for _, r in g.iterrows()]


def dltb(g: gpd.GeoDataFrame, *, codes: list[tuple[str, str]] | None = None) -> gpd.GeoDataFrame:
    """A 三调-like DLTB layer from street polygons (DLBM/DLMC synthetic, ZLDWMC real)."""
    codes = codes or [SYNTHETIC_CODES[i % len(SYNTHETIC_CODES)] for i in range(len(g))]
    out = gpd.GeoDataFrame(
        {
            "BSM": np.arange(1, len(g) + 1, dtype=np.int64),
            "TBBH": [f"{i + 1:04d}" for i in range(len(g))],
            "DLBM": [c for c, _ in codes],
            "DLMC": [n for _, n in codes],
            "ZLDWDM": g["code"].to_numpy(),
            "ZLDWMC": g["name"].to_numpy(),
            "TBMJ": np.round(ellipsoidal_area(g.geometry), 2),
        },
        geometry=g.geometry.to_numpy(),
        crs=g.crs,
    )
    return out


def _patch_dbf(dbf: Path, *, ldid: int | None = None) -> None:
    data = bytearray(dbf.read_bytes())
    data[1:4] = bytes([FIXED_DATE[0] - 1900, FIXED_DATE[1], FIXED_DATE[2]])
    if ldid is not None:
        data[29] = ldid
    dbf.write_bytes(bytes(data))


def write_shapefile(
    path: Path,
    gdf: gpd.GeoDataFrame,
    *,
    epsg: int | None = GK_PREFIX,
    encoding: str = "GBK",
    cpg: bool = True,
    prj: bool = True,
    ldid: int | None = None,
    geometry_type: str | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gdf if epsg is None or gdf.crs is None else gdf.to_crs(epsg)
    pyogrio.write_dataframe(data, path, encoding=encoding, geometry_type=geometry_type)
    stem = path.with_suffix("")
    _patch_dbf(stem.with_suffix(".dbf"), ldid=ldid)
    cpg_path = stem.with_suffix(".cpg")
    if cpg:
        cpg_path.write_text(encoding, encoding="ascii")
    elif cpg_path.exists():
        cpg_path.unlink()
    if not prj:
        stem.with_suffix(".prj").unlink(missing_ok=True)


def shapefile_parts(path: Path) -> dict[str, bytes]:
    stem = path.with_suffix("")
    return {
        p.name: p.read_bytes()
        for p in sorted(path.parent.iterdir())
        if p.is_file() and p.name.startswith(stem.name + ".")
    }


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    """Zip with fixed timestamps (UTF-8 names flagged by zipfile when non-ASCII)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def write_zip_gbk_names(path: Path, members: dict[str, bytes]) -> None:
    """Stored zip whose member names are GBK bytes without the UTF-8 flag (as Windows writes)."""
    out = io.BytesIO()
    central = []
    dos_time = 0
    dos_date = ((FIXED_DATE[0] - 1980) << 9) | (FIXED_DATE[1] << 5) | FIXED_DATE[2]
    for name, data in members.items():
        raw = name.encode("gbk")
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = out.tell()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                0,
                dos_time,
                dos_date,
                crc,
                len(data),
                len(data),
                len(raw),
                0,
            )
        )
        out.write(raw)
        out.write(data)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                0,
                dos_time,
                dos_date,
                crc,
                len(data),
                len(data),
                len(raw),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
            + raw
        )
    cd_start = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_start
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), cd_size, cd_start, 0)
    )
    path.write_bytes(out.getvalue())


def normalise_zip(path: Path) -> None:
    """Rewrite a zip-based file (xlsx) with fixed member timestamps and document dates."""
    with zipfile.ZipFile(path) as zf:
        items = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    stamp = "{:04d}-{:02d}-{:02d}T00:00:00Z".format(*FIXED_DATE[:3]).encode()
    fixed = [
        (
            name,
            re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp, data)
            if name == "docProps/core.xml"
            else data,
        )
        for name, data in items
    ]
    write_zip(path, dict(fixed))


def write_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, df in sheets.items():
        ws = wb.create_sheet(name)
        ws.append(list(df.columns))
        for row in df.itertuples(index=False):
            ws.append([None if (isinstance(v, float) and np.isnan(v)) else v for v in row])
    fixed = pd.Timestamp(*FIXED_DATE[:3]).to_pydatetime()
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "yizhangtu make_bad_corpus.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    normalise_zip(path)


def write_polygon_m_shapefile(path: Path, gdf: gpd.GeoDataFrame) -> None:
    """Shapefile of type PolygonM (25), written by hand (GDAL/pyogrio cannot write M)."""
    write_shapefile(path, gdf, epsg=GK_PREFIX, encoding="UTF-8")
    geoms = shapely.orient_polygons(gdf.to_crs(GK_PREFIX).geometry.to_numpy(), exterior_cw=True)
    records = []
    for g in geoms:
        rings = [r for p in getattr(g, "geoms", [g]) for r in (p.exterior, *p.interiors)]
        pts = [np.asarray(r.coords) for r in rings]
        xy = np.concatenate(pts)
        m = np.arange(len(xy), dtype=float)  # synthetic measure: vertex number
        parts = np.cumsum([0] + [len(p) for p in pts[:-1]])
        body = struct.pack("<i4dii", 25, *shapely.bounds(g), len(pts), len(xy))
        body += struct.pack(f"<{len(parts)}i", *parts)
        body += xy.astype("<f8").tobytes()
        body += struct.pack("<2d", m.min(), m.max()) + m.astype("<f8").tobytes()
        records.append(body)
    bbox = shapely.total_bounds(geoms)
    shp = io.BytesIO()
    shx = io.BytesIO()
    offset = 50  # words
    content = b""
    index = b""
    for i, body in enumerate(records):
        content += struct.pack(">ii", i + 1, len(body) // 2) + body
        index += struct.pack(">ii", offset, len(body) // 2)
        offset += 4 + len(body) // 2
    for fh, payload in ((shp, content), (shx, index)):
        length = (100 + len(payload)) // 2
        fh.write(struct.pack(">i5ii", 9994, 0, 0, 0, 0, 0, length))
        fh.write(struct.pack("<ii4d4d", 1000, 25, *bbox, 0.0, 0.0, 0.0, float(len(records) * 100)))
        fh.write(payload)
    path.write_bytes(shp.getvalue())
    path.with_suffix(".shx").write_bytes(shx.getvalue())


def bowtie(poly: shapely.Polygon) -> shapely.Polygon:
    """Swap two vertices of the exterior ring: a self-intersecting (figure-eight) ring."""
    coords = np.asarray(poly.exterior.coords)[:-1].copy()
    n = len(coords)
    i, j = 1, n // 2
    coords[[i, j]] = coords[[j, i]]
    return shapely.Polygon(np.vstack([coords, coords[:1]]))


# --------------------------------------------------------------------------- cases


def build(out: Path) -> list[dict[str, Any]]:
    streets = load_streets(out)
    g = streets
    gk = streets.to_crs(GK_PREFIX)
    cases: list[dict[str, Any]] = []

    def case(**kw: Any) -> None:
        kw.setdefault("synthetic", False)
        cases.append(kw)

    six = g.iloc[:6]

    # ---------------------------------------------------------------- read: must raise
    p = out / "truncated_shp" / "dltb.shp"
    write_shapefile(p, dltb(six))
    data = p.read_bytes()
    shx = p.with_suffix(".shx").read_bytes()
    off4 = struct.unpack(">i", shx[100 + 3 * 8 : 104 + 3 * 8])[0] * 2  # start of the 4th record
    p.write_bytes(data[: off4 + 40])
    case(
        id="truncated_shapefile",
        file="truncated_shp/dltb.shp",
        description_zh=".shp 在第 4 个要素中间被截断（.shx/.dbf 完整）；GDAL 会静默返回空几何",
        description_en=".shp cut inside the 4th record (.shx/.dbf intact); GDAL would silently return empty geometries",
        stage="read",
        error="FileFormatError",
        key="file_truncated",
        feature=3,
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic; geometry real (projected to EPSG:4527)",
    )

    p = out / "missing_shx" / "dltb.shp"
    write_shapefile(p, dltb(six))
    p.with_suffix(".shx").unlink()
    case(
        id="missing_shx",
        file="missing_shx/dltb.shp",
        description_zh="Shapefile 缺少 .shx 索引文件",
        description_en="shapefile without its .shx index",
        stage="read",
        error="FileFormatError",
        key="missing_shx",
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    p = out / "missing_dbf" / "dltb.shp"
    write_shapefile(p, dltb(six))
    p.with_suffix(".dbf").unlink()
    p.with_suffix(".cpg").unlink()
    case(
        id="missing_dbf",
        file="missing_dbf/dltb.shp",
        description_zh="Shapefile 缺少 .dbf 属性表",
        description_en="shapefile without its .dbf attribute table",
        stage="read",
        error="FileFormatError",
        key="missing_dbf",
    )

    p = out / "dbf_count_mismatch" / "dltb.shp"
    write_shapefile(p, dltb(six))
    other = out / "_tmp" / "dltb.shp"
    write_shapefile(other, dltb(g.iloc[:4]))
    shutil.copyfile(other.with_suffix(".dbf"), p.with_suffix(".dbf"))
    case(
        id="dbf_record_count_mismatch",
        file="dbf_count_mismatch/dltb.shp",
        description_zh=".shp/.shx 有 6 个要素，.dbf 只有 4 条记录（来自不同版本的数据）",
        description_en=".shp/.shx hold 6 features, the .dbf only 4 records (parts from different exports)",
        stage="read",
        error="FileFormatError",
        key="file_corrupt",
        feature=4,
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    p = out / "empty_0byte.geojson"
    p.write_bytes(b"")
    case(
        id="empty_file",
        file="empty_0byte.geojson",
        description_zh="0 字节的空文件",
        description_en="empty file (0 bytes)",
        stage="read",
        error="FileFormatError",
        key="file_empty",
    )

    write_geojson(out / "zero_features.geojson", [], name="zero_features")
    case(
        id="zero_features",
        file="zero_features.geojson",
        description_zh="格式正确但没有任何要素的 GeoJSON",
        description_en="valid GeoJSON FeatureCollection with zero features",
        stage="read",
        error="FileFormatError",
        key="no_features",
    )

    write_geojson(out / "non_utf8_gbk.geojson", street_features(g.iloc[:3]), encoding="gbk")
    case(
        id="non_utf8_geojson",
        file="non_utf8_gbk.geojson",
        description_zh="GBK 编码的 GeoJSON（GeoJSON 必须为 UTF-8）；用 encoding='GB18030' 可读",
        description_en="GBK-encoded GeoJSON (GeoJSON must be UTF-8); readable with encoding='GB18030'",
        stage="read",
        error="EncodingError",
        key="geojson_not_utf8",
        feature=0,
        field="name",
    )
    case(
        id="non_utf8_geojson_with_encoding",
        file="non_utf8_gbk.geojson",
        options={"encoding": "GB18030"},
        description_zh="同上，指定 GB18030 后正常读取",
        description_en="same file read with encoding='GB18030'",
        stage="ok",
        expect={
            "encoding": "GB18030",
            "encoding_source": "override",
            "feature_count": 3,
            "names": list(g["name"].iloc[:3]),
        },
    )

    swapped = [
        feature(props_of(r), geom_json(shapely.transform(r.geometry, lambda c: c[:, ::-1].copy())))
        for _, r in g.iloc[:4].iterrows()
    ]
    write_geojson(out / "lonlat_swapped.geojson", swapped)
    case(
        id="lonlat_swapped",
        file="lonlat_swapped.geojson",
        description_zh="经纬度顺序颠倒（按 纬度, 经度 写入）",
        description_en="coordinates written as (lat, lon)",
        stage="read",
        error="CRSError",
        key="lonlat_swapped",
        synthetic=True,
        synthetic_note="real geometry with axes exchanged",
    )

    p = out / "gk_no_prefix_no_prj" / "dltb.shp"
    write_shapefile(p, dltb(six), epsg=GK_NO_PREFIX, prj=False)
    case(
        id="gk_without_prefix_no_prj",
        file="gk_no_prefix_no_prj/dltb.shp",
        description_zh="CGCS2000 3度带无带号坐标（EPSG:4548）且无 .prj：带号无法由坐标判断",
        description_en="CGCS2000 3-degree GK without zone prefix (EPSG:4548) and no .prj: zone undeterminable",
        stage="read",
        error="CRSError",
        key="crs_ambiguous",
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )
    case(
        id="gk_without_prefix_no_prj_with_crs",
        file="gk_no_prefix_no_prj/dltb.shp",
        options={"crs": "EPSG:4548"},
        description_zh="同上，用 crs='EPSG:4548' 指定后正常读取",
        description_en="same file read with crs='EPSG:4548'",
        stage="ok",
        expect={
            "crs": "EPSG:4548",
            "crs_source": "override",
            "encoding": "GBK",
            "encoding_source": "cpg",
        },
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    feats = street_features(g.iloc[:5])
    feats[2]["geometry"] = geom_json(
        shapely.affinity.scale(g.geometry.iloc[2], 1e6, 1e6, origin=(0, 0)), 1
    )
    write_geojson(out / "huge_coordinates.geojson", feats)
    case(
        id="huge_coordinates",
        file="huge_coordinates.geojson",
        description_zh="第 3 个要素的坐标被放大 10^6 倍（单位错误），超出任何坐标系的合理范围",
        description_en="the 3rd feature's coordinates scaled by 1e6 (unit error): out of any plausible range",
        stage="read",
        error="CRSError",
        key="coordinates_out_of_range",
        feature=2,
        synthetic=True,
        synthetic_note="one geometry scaled",
    )

    gk_feats = [feature(props_of(r), geom_json(r.geometry, 3)) for _, r in gk.iloc[:4].iterrows()]
    write_geojson(out / "gk_coordinates_in_geojson.geojson", gk_feats)
    case(
        id="crs_mismatch",
        file="gk_coordinates_in_geojson.geojson",
        description_zh="GeoJSON（默认 WGS84）中写入了高斯投影坐标（EPSG:4527，数值数百万）",
        description_en="GeoJSON (WGS84 by definition) holding GK coordinates (EPSG:4527, values in millions)",
        stage="read",
        error="CRSError",
        key="crs_mismatch",
    )
    case(
        id="crs_mismatch_with_crs",
        file="gk_coordinates_in_geojson.geojson",
        options={"crs": "EPSG:4527"},
        description_zh="同上，用 crs='EPSG:4527' 覆盖后正常读取",
        description_en="same file read with crs='EPSG:4527'",
        stage="ok",
        expect={"crs": "EPSG:4527", "crs_source": "override"},
    )

    p = out / "xy_swapped_gk" / "dltb.shp"
    sw = dltb(six).to_crs(GK_PREFIX)
    sw["geometry"] = shapely.transform(sw.geometry.to_numpy(), lambda c: c[:, ::-1].copy())
    write_shapefile(p, sw, epsg=None)
    case(
        id="xy_swapped_gk",
        file="xy_swapped_gk/dltb.shp",
        description_zh=".prj 为 EPSG:4527，但坐标按测量习惯写成（北, 东）",
        description_en=".prj says EPSG:4527 but coordinates are stored (northing, easting)",
        stage="read",
        error="CRSError",
        key="xy_swapped",
        synthetic=True,
        synthetic_note="real geometry with axes exchanged; DLBM/DLMC synthetic",
    )

    members: dict[str, bytes] = {}
    for name, rows in (("dltb_2023", g.iloc[:3]), ("dltb_2024", g.iloc[3:6])):
        tmp = out / "_tmp" / f"{name}.shp"
        write_shapefile(tmp, dltb(rows))
        members.update(shapefile_parts(tmp))
    write_zip(out / "two_shapefiles.zip", dict(sorted(members.items())))
    case(
        id="zip_two_shapefiles",
        file="two_shapefiles.zip",
        description_zh="一个 zip 中有两个 Shapefile，未指定图层",
        description_en="zip holding two shapefiles, no sublayer given",
        stage="read",
        error="InputError",
        key="sublayer_required",
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )
    case(
        id="zip_two_shapefiles_with_sublayer",
        file="two_shapefiles.zip",
        options={"sublayer": "dltb_2024"},
        description_zh="同上，指定 sublayer='dltb_2024'",
        description_en="same zip with sublayer='dltb_2024'",
        stage="ok",
        expect={"feature_count": 3, "sublayer": "dltb_2024.shp", "encoding_source": "cpg"},
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    good = (out / "two_shapefiles.zip").read_bytes()
    (out / "corrupt.zip").write_bytes(good[: len(good) // 2])
    case(
        id="zip_corrupt",
        file="corrupt.zip",
        description_zh="下载中断的 zip（只有前一半字节，缺少中央目录）",
        description_en="zip cut in half (no central directory)",
        stage="read",
        error="FileFormatError",
        key="file_corrupt",
    )

    table = pd.DataFrame(
        {
            "名称": g["name"].iloc[:6],
            "地类编码": [c for c, _ in SYNTHETIC_CODES],
            "面积": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    (out / "no_coordinates.csv").write_bytes(table.to_csv(index=False).encode("utf-8"))
    case(
        id="csv_without_coordinates",
        file="no_coordinates.csv",
        description_zh="CSV 表没有坐标列或 WKT 列",
        description_en="CSV without coordinate or WKT columns",
        stage="read",
        error="FileFormatError",
        key="no_geometry_columns",
        synthetic=True,
        synthetic_note="codes and areas synthetic",
    )

    (out / "not_geodata.txt").write_bytes(
        "朝阳区城市更新专项工作会议纪要\n一、会议听取了各街道减量任务进展情况。\n二、下一步工作安排。\n".encode()
    )
    case(
        id="txt_not_geodata",
        file="not_geodata.txt",
        description_zh="不是空间数据的 .txt 文本（会议纪要）",
        description_en="a .txt that is not geodata (meeting minutes)",
        stage="read",
        error="FileFormatError",
        key="unsupported_format",
        synthetic=True,
        synthetic_note="invented text",
    )

    wkt_rows = pd.DataFrame(
        {
            "名称": g["name"].iloc[:3],
            "wkt": [
                g.geometry.iloc[0].wkt,
                "POLYGON ((116.45 39.91, 116.46 39.91, 116.46",
                g.geometry.iloc[2].wkt,
            ],
        }
    )
    (out / "bad_wkt.csv").write_bytes(wkt_rows.to_csv(index=False).encode("utf-8"))
    case(
        id="csv_bad_wkt",
        file="bad_wkt.csv",
        description_zh="CSV 的 WKT 列第 2 条记录不完整",
        description_en="CSV whose 2nd WKT value is truncated",
        stage="read",
        error="GeometryError",
        key="bad_wkt",
        feature=1,
        field="wkt",
        synthetic=True,
        synthetic_note="one WKT truncated",
    )

    pts = pd.DataFrame(
        {
            "名称": g["name"].iloc[:5].to_numpy(),
            "经度": [f"{v:.6f}" for v in g["label_lon"].iloc[:5]],
            "纬度": [round(float(v), 6) for v in g["label_lat"].iloc[:5]],
        }
    )
    pts.loc[2, "经度"] = "116.4x"
    write_xlsx(out / "xlsx_bad_coordinate.xlsx", {"点位": pts})
    case(
        id="xlsx_bad_coordinate",
        file="xlsx_bad_coordinate.xlsx",
        description_zh="XLSX 经纬度表，第 3 行经度不是数字",
        description_en="XLSX lon/lat table whose 3rd longitude is not a number",
        stage="read",
        error="GeometryError",
        key="bad_coordinate",
        feature=2,
        field="经度",
        synthetic=True,
        synthetic_note="one value corrupted",
    )

    p = out / "undecodable_dbf" / "dltb.shp"
    d = dltb(six)
    d.loc[3, "ZLDWMC"] = "XXXX"
    write_shapefile(p, d, cpg=False)
    dbf = bytearray(p.with_suffix(".dbf").read_bytes())
    pos = dbf.index(b"XXXX")
    dbf[pos : pos + 4] = b"\xff\xfe\x80\xff"  # invalid in UTF-8 and in GB18030
    p.with_suffix(".dbf").write_bytes(bytes(dbf))
    case(
        id="dbf_undecodable_text",
        file="undecodable_dbf/dltb.shp",
        description_zh=".dbf 第 4 条记录的 ZLDWMC 含既非 UTF-8 也非 GB18030 的字节，且无 .cpg",
        description_en="no .cpg; the 4th record's ZLDWMC holds bytes valid in neither UTF-8 nor GB18030",
        stage="read",
        error="EncodingError",
        key="encoding_undecodable",
        feature=3,
        field="ZLDWMC",
        synthetic=True,
        synthetic_note="bytes injected; DLBM/DLMC synthetic",
    )

    feats = street_features(g.iloc[:4])
    feats[1]["geometry"] = {
        "type": "Polygon",
        "coordinates": [
            [["116.44", "39.92"], [116.45, 39.92], [116.45, 39.93], ["116.44", "39.92"]]
        ],
    }
    write_geojson(out / "unreadable_geometry.geojson", feats)
    case(
        id="geometry_unreadable",
        file="unreadable_geometry.geojson",
        description_zh="第 2 个要素的坐标是字符串，GDAL 无法解析（会静默变为空几何）",
        description_en="the 2nd feature's coordinates are strings; GDAL cannot parse them (silently null)",
        stage="read",
        error="GeometryError",
        key="geometry_unreadable",
        feature=1,
        synthetic=True,
        synthetic_note="one geometry replaced",
    )

    # multi-layer GeoPackage
    with pyogrio_date():
        gpkg = out / "multi_layer.gpkg"
        gpkg.unlink(missing_ok=True)
        pyogrio.write_dataframe(dltb(g.iloc[:3]), gpkg, layer="dltb")
        lines = gpd.GeoDataFrame(
            {"kind": ["urban_boundary"]},
            geometry=[g.geometry.iloc[:3].union_all().boundary],
            crs=g.crs,
        )
        pyogrio.write_dataframe(lines, gpkg, layer="control_lines", append=False)
    case(
        id="gpkg_two_layers",
        file="multi_layer.gpkg",
        description_zh="含两个图层（dltb、control_lines）的 GeoPackage，未指定图层",
        description_en="GeoPackage with two layers (dltb, control_lines), no sublayer given",
        stage="read",
        error="InputError",
        key="sublayer_required",
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic; control line = boundary of 3 streets",
    )
    case(
        id="gpkg_two_layers_with_sublayer",
        file="multi_layer.gpkg",
        options={"sublayer": "control_lines"},
        description_zh="同上，指定 sublayer='control_lines'",
        description_en="same GeoPackage with sublayer='control_lines'",
        stage="ok",
        expect={
            "feature_count": 1,
            "geometry_types": [lines.geometry.iloc[0].geom_type],
            "encoding_source": "n/a",
        },
        synthetic=True,
        synthetic_note="control line = boundary of 3 streets",
    )
    (out / "corrupt.gpkg").write_bytes(gpkg.read_bytes()[:4096])
    case(
        id="gpkg_truncated",
        file="corrupt.gpkg",
        description_zh="被截断的 GeoPackage（只剩前 4 KiB）",
        description_en="GeoPackage truncated to its first 4 KiB",
        stage="read",
        error="FileFormatError",
        key="file_corrupt",
    )

    (out / "binary_as.geojson").write_bytes(bytes(range(256)) * 4)
    case(
        id="binary_named_geojson",
        file="binary_as.geojson",
        description_zh="扩展名为 .geojson 的二进制内容",
        description_en="binary content with a .geojson extension",
        stage="read",
        error="FileFormatError",
        key="file_corrupt",
    )

    # ---------------------------------------------------------------- qc: reads, QC flags
    feats = street_features(g.iloc[:4])
    for i in (0, 2):
        feats[i]["geometry"] = geom_json(bowtie(g.geometry.iloc[i].geoms[0]))
    write_geojson(out / "self_intersecting.geojson", feats)
    case(
        id="self_intersecting_polygons",
        file="self_intersecting.geojson",
        description_zh="第 1、3 个面的外环两个顶点对调，自相交（8 字形）",
        description_en="features 1 and 3: two exterior vertices swapped, self-intersecting ring",
        stage="qc",
        key="invalid_geometry",
        features=[0, 2],
        synthetic=True,
        synthetic_note="vertices swapped",
    )

    feats = street_features(g.iloc[:4])
    a, b = np.asarray(g.geometry.iloc[1].geoms[0].exterior.coords)[:2].round(7).tolist()
    feats[1]["geometry"] = {"type": "Polygon", "coordinates": [[a, b, a]]}
    ring = np.asarray(g.geometry.iloc[3].geoms[0].exterior.coords).round(7)
    line = [ring[0].tolist(), ring[5].tolist(), ring[0].tolist(), ring[0].tolist()]
    feats[3]["geometry"] = {"type": "Polygon", "coordinates": [ring.tolist(), line]}
    write_geojson(out / "degenerate_rings.geojson", feats)
    case(
        id="degenerate_rings",
        file="degenerate_rings.geojson",
        description_zh="退化环：第 2 个面的外环只有 3 个坐标（A,B,A），第 4 个面有面积为 0 的内环",
        description_en="degenerate rings: feature 2's exterior is (A,B,A); feature 4 has a zero-area hole",
        stage="qc",
        key="invalid_geometry",
        features=[1, 3],
        synthetic=True,
        synthetic_note="rings replaced",
    )

    feats = street_features(g.iloc[:2])
    feats.append(
        feature(
            props_of(g.iloc[2]),
            geom_json(shapely.Point(g["label_lon"].iloc[2], g["label_lat"].iloc[2])),
        )
    )
    feats.append(feature(props_of(g.iloc[3]), geom_json(g.geometry.iloc[3].boundary)))
    write_geojson(out / "mixed_geometry.geojson", feats)
    case(
        id="mixed_geometry_types",
        file="mixed_geometry.geojson",
        description_zh="一个文件混有面、点、线",
        description_en="polygons, a point and a line in one file",
        stage="qc",
        key="mixed_geometry",
        features=[2, 3],
        synthetic=True,
        synthetic_note="point = label point, line = boundary",
    )

    feats = street_features(g.iloc[:5])
    feats[3]["properties"]["code"] = feats[1]["properties"]["code"]
    write_geojson(out / "duplicate_ids.geojson", feats)
    case(
        id="duplicate_ids",
        file="duplicate_ids.geojson",
        description_zh="第 2、4 个要素的 code 重复",
        description_en="features 2 and 4 share the same code",
        stage="qc",
        key="duplicate_id",
        field="code",
        features=[1, 3],
        synthetic=True,
        synthetic_note="one code duplicated",
    )

    p = out / "unknown_codes_dltb" / "dltb.shp"
    codes = list(SYNTHETIC_CODES)
    codes[2] = ("9999", "未知地类")
    codes[4] = ("01A1", "水田")
    write_shapefile(p, dltb(six, codes=codes))
    case(
        id="unknown_land_use_codes",
        file="unknown_codes_dltb/dltb.shp",
        description_zh="DLBM 含不在 GB/T 21010 中的编码 9999、01A1",
        description_en="DLBM holds codes not in GB/T 21010: 9999, 01A1",
        stage="qc",
        key="unknown_code",
        field="DLBM",
        features=[2, 4],
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    p = out / "missing_field_dltb" / "dltb.shp"
    write_shapefile(p, dltb(six).drop(columns=["DLBM"]))
    case(
        id="missing_required_field",
        file="missing_field_dltb/dltb.shp",
        description_zh="地类图斑缺少必填字段 DLBM（地类编码）",
        description_en="land survey parcels without the required DLBM field",
        stage="qc",
        key="missing_field",
        field="DLBM",
        synthetic=True,
        synthetic_note="DLMC synthetic",
    )

    def gk_to_feats(rows: gpd.GeoDataFrame) -> list[dict[str, Any]]:
        back = rows.to_crs(4326)
        return [feature(props_of(r), geom_json(r.geometry)) for _, r in back.iterrows()]

    grown = gk.iloc[:3].copy()
    grown.loc[grown.index[1], "geometry"] = grown.geometry.iloc[1].buffer(80)
    write_geojson(out / "overlap.geojson", gk_to_feats(grown))
    case(
        id="overlapping_polygons",
        file="overlap.geojson",
        description_zh="第 2 个面外扩 80 米，与相邻两个面重叠",
        description_en="feature 2 buffered by 80 m, overlapping its two neighbours",
        stage="qc",
        key="overlap",
        features=[0, 1, 2],
        synthetic=True,
        synthetic_note="one geometry buffered",
    )

    shrunk = gk.iloc[:3].copy()
    shrunk.loc[shrunk.index[1], "geometry"] = shrunk.geometry.iloc[1].buffer(-60)
    write_geojson(out / "gap.geojson", gk_to_feats(shrunk))
    case(
        id="gap_between_polygons",
        file="gap.geojson",
        description_zh="第 2 个面内缩 60 米，与相邻面之间出现缝隙",
        description_en="feature 2 shrunk by 60 m, leaving gaps to its neighbours",
        stage="qc",
        key="gap",
        features=[1],
        synthetic=True,
        synthetic_note="one geometry shrunk",
    )

    base = gk.iloc[:3].copy()
    shared = shapely.intersection(base.geometry.iloc[0].boundary, base.geometry.iloc[1].boundary)
    p0 = shapely.get_coordinates(shared)[0]
    sliver = shapely.Polygon([p0, p0 + np.array([5.0, 0.0]), p0 + np.array([0.0, 0.1])])  # 0.25 m²
    sliver_rows = gpd.GeoDataFrame(
        {"code": ["sliver-1"], "name": ["碎片"], "district_name": ["朝阳区"]},
        geometry=[sliver],
        crs=GK_PREFIX,
    )
    both = pd.concat(
        [base[["code", "name", "district_name", "geometry"]], sliver_rows], ignore_index=True
    )
    write_geojson(out / "sliver.geojson", gk_to_feats(gpd.GeoDataFrame(both, crs=GK_PREFIX)))
    case(
        id="sliver_polygon",
        file="sliver.geojson",
        description_zh="在两街道公共边上多出一个约 0.25 平方米的细碎多边形",
        description_en="an extra ~0.25 m² sliver on the shared boundary of two streets",
        stage="qc",
        key="sliver",
        features=[3],
        synthetic=True,
        synthetic_note="sliver polygon invented",
    )

    write_geojson(out / "multipart.geojson", street_features(g.iloc[[10, 11, 18, 32]]))
    case(
        id="multipart_polygons",
        file="multipart.geojson",
        description_zh="多部件面：酒仙桥街道、垡头街道（3 部分）、常营乡（2 部分）",
        description_en="multipart polygons: 酒仙桥 and 垡头 (3 parts), 常营 (2 parts)",
        stage="qc",
        key="multipart",
        features=[0, 2, 3],
    )

    feats = street_features(g.iloc[:4])
    feats[1]["geometry"] = None
    feats[3]["geometry"] = {"type": "Polygon", "coordinates": []}
    write_geojson(out / "empty_geometry.geojson", feats)
    case(
        id="empty_geometries",
        file="empty_geometry.geojson",
        description_zh="第 2 个要素几何为 null，第 4 个为空面",
        description_en="feature 2 has a null geometry, feature 4 an empty polygon",
        stage="qc",
        key="empty_geometry",
        features=[1, 3],
        synthetic=True,
        synthetic_note="geometries removed",
    )

    # ---------------------------------------------------------------- ok: reads, with notes
    names6 = list(g["name"].iloc[:6])
    p = out / "gbk_no_cpg_ldid" / "dltb.shp"
    write_shapefile(p, dltb(six), cpg=False, ldid=0x4D)
    case(
        id="gbk_dbf_no_cpg_ldid",
        file="gbk_no_cpg_ldid/dltb.shp",
        description_zh="GBK 编码 .dbf，无 .cpg，DBF 语言驱动标记 0x4D（代码页 936）",
        description_en="GBK .dbf, no .cpg, DBF language driver byte 0x4D (code page 936)",
        stage="ok",
        expect={
            "encoding": "GBK",
            "encoding_source": "dbf_ldid",
            "crs": "EPSG:4527",
            "field": "ZLDWMC",
            "names": names6,
        },
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic; ZLDWMC real",
    )

    p = out / "gbk_no_cpg" / "dltb.shp"
    write_shapefile(p, dltb(six), cpg=False)
    case(
        id="gbk_dbf_no_cpg",
        file="gbk_no_cpg/dltb.shp",
        description_zh="GBK 编码 .dbf，无 .cpg，语言驱动标记为 0（未声明）：按 GB18030 回退解码",
        description_en="GBK .dbf, no .cpg, LDID 0 (unset): GB18030 fallback",
        stage="ok",
        expect={
            "encoding": "GB18030",
            "encoding_source": "gb18030-fallback",
            "field": "ZLDWMC",
            "names": names6,
            "warning_contains": "GB18030",
        },
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic; ZLDWMC real",
    )

    p = out / "gk_prefix_no_prj" / "dltb.shp"
    write_shapefile(p, dltb(six), prj=False)
    case(
        id="gk_with_prefix_no_prj",
        file="gk_prefix_no_prj/dltb.shp",
        description_zh="CGCS2000 3度带带号坐标（39 带），无 .prj：由坐标范围推断为 EPSG:4527",
        description_en="CGCS2000 3-degree GK with zone prefix (zone 39), no .prj: inferred EPSG:4527",
        stage="ok",
        expect={"crs": "EPSG:4527", "crs_source": "inferred", "warning_contains": "EPSG:4527"},
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    shifted = [
        feature(props_of(r), geom_json(wgs84_to_gcj02(r.geometry)))
        for _, r in g.iloc[:8].iterrows()
    ]
    write_geojson(out / "gcj02_shifted.geojson", shifted)
    case(
        id="gcj02_shifted",
        file="gcj02_shifted.geojson",
        description_zh="8 个街道按 GCJ-02（高德）加偏；对照真实边界应检测为 gcj02，用 from_gcj02 纠正",
        description_en="8 streets shifted to GCJ-02 (Amap); detect_offset against the real boundaries gives gcj02",
        stage="ok",
        expect={"offset": "gcj02", "crs": "EPSG:4326"},
        synthetic=True,
        synthetic_note="real geometry shifted with the public GCJ-02 formula",
    )

    shifted = [
        feature(props_of(r), geom_json(wgs84_to_bd09(r.geometry)))
        for _, r in g.iloc[20:26].iterrows()
    ]
    write_geojson(out / "bd09_shifted.geojson", shifted)
    case(
        id="bd09_shifted",
        file="bd09_shifted.geojson",
        description_zh="6 个乡按 BD-09（百度）加偏；应检测为 bd09，用 from_bd09 纠正",
        description_en="6 townships shifted to BD-09 (Baidu); detect_offset gives bd09",
        stage="ok",
        expect={"offset": "bd09"},
        synthetic=True,
        synthetic_note="real geometry shifted with the public BD-09 formula",
    )

    feats = [
        feature(props_of(r), geom_json(shapely.force_3d(r.geometry, 45.0)))
        for _, r in g.iloc[:3].iterrows()
    ]
    write_geojson(out / "z_coordinates.geojson", feats)
    case(
        id="z_coordinates",
        file="z_coordinates.geojson",
        description_zh="三维面（Z=45 米），读取时去除 Z 并提示",
        description_en="3D polygons (Z = 45 m); Z dropped with a warning",
        stage="ok",
        expect={"warning_contains": "Z 坐标", "geometry_types": ["MultiPolygon"]},
        synthetic=True,
        synthetic_note="constant Z added",
    )

    p = out / "m_values" / "dltb.shp"
    write_polygon_m_shapefile(p, dltb(g.iloc[:3]))
    case(
        id="m_values",
        file="m_values/dltb.shp",
        description_zh="PolygonM Shapefile（带测量值 M），读取时去除 M 并提示",
        description_en="PolygonM shapefile (measures); M dropped with a warning",
        stage="ok",
        expect={"warning_contains": "M 值", "crs": "EPSG:4527"},
        synthetic=True,
        synthetic_note="M = vertex number; DLBM/DLMC synthetic",
    )

    pts_gk = gk.geometry.iloc[:6].representative_point()
    survey = pd.DataFrame(
        {
            "点号": [f"J{i + 1}" for i in range(6)],
            "X坐标": np.round(pts_gk.y.to_numpy(), 3),  # surveyors' X = northing
            "Y坐标": np.round(pts_gk.x.to_numpy(), 3),  # surveyors' Y = easting with zone prefix
            "地类编码": [c for c, _ in SYNTHETIC_CODES],
            "坐落": list(g["name"].iloc[:6]),
        }
    )
    write_xlsx(out / "xlsx_survey_xy.xlsx", {"界址点": survey})
    case(
        id="xlsx_survey_xy",
        file="xlsx_survey_xy.xlsx",
        description_zh="XLSX 坐标表：X坐标为北坐标、Y坐标为带号东坐标（测量习惯），自动交换并推断 EPSG:4527",
        description_en="XLSX points in survey convention (X = northing, Y = prefixed easting): swapped, EPSG:4527 inferred",
        stage="ok",
        expect={
            "crs": "EPSG:4527",
            "crs_source": "inferred",
            "warning_contains": "交换",
            "geometry_types": ["Point"],
        },
        synthetic=True,
        synthetic_note="points = representative points of real streets; codes synthetic",
    )

    lonlat = pd.DataFrame(
        {
            "名称": g["name"].iloc[:6].to_numpy(),
            "经度": g["label_lon"].iloc[:6].round(6).to_numpy(),
            "纬度": g["label_lat"].iloc[:6].round(6).to_numpy(),
            "地类编码": [c for c, _ in SYNTHETIC_CODES],
        }
    )
    (out / "gbk_lonlat.csv").write_bytes(lonlat.to_csv(index=False).encode("gbk"))
    case(
        id="csv_gbk_lonlat",
        file="gbk_lonlat.csv",
        description_zh="Excel 另存的 GBK 编码 CSV，含 经度/纬度 列",
        description_en="GBK CSV (as Excel saves it) with 经度/纬度 columns",
        stage="ok",
        expect={
            "encoding": "GB18030",
            "encoding_source": "gb18030-fallback",
            "crs": "EPSG:4490",
            "crs_source": "inferred",
            "field": "名称",
            "names": names6,
            "codes": [c for c, _ in SYNTHETIC_CODES],
        },
        synthetic=True,
        synthetic_note="codes synthetic; points = label points of real streets",
    )

    tmp = out / "_tmp" / "dltb_gbk.shp"
    write_shapefile(tmp, dltb(six), cpg=False, ldid=0x4D)
    parts = {
        name.replace("dltb_gbk", "地类图斑"): data for name, data in shapefile_parts(tmp).items()
    }
    write_zip_gbk_names(out / "zip_gbk_names.zip", dict(sorted(parts.items())))
    case(
        id="zip_single_shapefile_gbk_names",
        file="zip_gbk_names.zip",
        description_zh="Windows 压缩的 zip：成员名 地类图斑.* 为 GBK 编码（无 UTF-8 标记），属性 GBK",
        description_en="zip made on Chinese Windows: member names 地类图斑.* in GBK (no UTF-8 flag), GBK attributes",
        stage="ok",
        expect={
            "sublayers": ["地类图斑.shp"],
            "encoding_source": "dbf_ldid",
            "field": "ZLDWMC",
            "names": names6,
        },
        synthetic=True,
        synthetic_note="DLBM/DLMC synthetic",
    )

    shutil.rmtree(out / "_tmp", ignore_errors=True)
    return cases


class pyogrio_date:
    """Fix GeoPackage timestamps (GDAL's OGR_CURRENT_DATE) for reproducible bytes."""

    def __enter__(self) -> None:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2024-01-01T00:00:00.000Z"})

    def __exit__(self, *exc: object) -> None:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})


HEADER = """\
# Bad-input corpus for yizhangtu.io (generated by tests/data/make_bad_corpus.py; do not edit).
#
# stage:
#   read - inspect_source/read_source/iter_source must raise a YizhangtuError subclass `error`
#          with `key`; the error names the file, and `feature` (0-based row) / `field` when given.
#   qc   - reads without error; the QC check `key` (invalid_geometry, empty_geometry,
#          duplicate_id, multipart, overlap, gap, sliver, unknown_code, missing_field,
#          mixed_geometry) must flag it; `features` lists the rows it should flag.
#   ok   - reads without error; `expect` lists report fields (and `names`: values of `field`,
#          `warning_contains`, `offset` = detect_offset against the source) to check.
# options: keyword arguments for the read functions (encoding, crs, sublayer ...).
# synthetic: true when attributes or geometry were altered or invented (see synthetic_note).
"""


def main(out: Path = DEFAULT_OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name == "_source":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    cases = build(out)
    manifest = {
        "source": {
            "file": f"_source/{SOURCE_NAME}",
            "origin": "GitHub thebamboogrove/bj-subdistricts @ 7d329de4 (MIT), Chaoyang subset "
            "(district_code 110105) of /work/shared/data/boundaries",
            "crs": "EPSG:4326",
            "features": 43,
            "note": "internal testing only; boundaries digitised from Tianditu, not an authoritative map",
        },
        "generator": "tests/data/make_bad_corpus.py",
        "cases": cases,
    }
    text = yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False, width=200)
    (out / "MANIFEST.yaml").write_text(HEADER + text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
