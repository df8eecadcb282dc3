"""Read vector and tabular sources into GeoDataFrames, with a report of every decision taken.

Three entry points share one pipeline:

* :func:`inspect_source` resolves the source, decides the encoding and the CRS and scans the
  geometries (types, bounds, Z/M, unreadable features) in bounded memory, without keeping
  attributes;
* :func:`read_source` reads everything at once;
* :func:`iter_source` runs the same checks as ``inspect_source`` first, then streams chunks
  through GDAL's Arrow interface (pandas chunks for CSV), so memory is bounded by the chunk size.
  Chunks carry the same columns, dtypes and CRS; their index continues from chunk to chunk
  (row position in the source) so ``pd.concat`` of all chunks equals ``read_source``.

Decisions (documented here because the store and the QC module rely on them):

* **Z/M** are dropped with a warning (plan layers are 2D; areas are planar or ellipsoidal on
  the 2D footprint). The report's ``geometry_types`` are the 2D types.
* **Mixed geometry types** are read as they are and listed in ``geometry_types``; the QC
  module flags them.
* **Invalid geometries** (self-intersections, degenerate rings) are read as they are for QC.
  Unclosed rings are closed (with a warning naming the features). A geometry GEOS cannot
  build, or that GDAL dropped while parsing (GeoJSON), raises ``GeometryError``
  (``geometry_unreadable``) naming the features.
* **Null geometries** are kept (QC ``empty_geometry``).
* **Strings**: integer columns become pandas nullable integers (``Int64`` …) and booleans
  ``boolean``, so every chunk has the same dtypes whether or not it holds nulls. CSV columns
  are all text (codes such as ``0101`` keep their leading zeros).
* **Tables** (CSV, XLSX, ODS, layers without geometry): geometry from a WKT column (consumed)
  or x/y columns (kept as attributes); see :mod:`yizhangtu.io.tabular`.
* **GCJ-02/BD-09**: ``from_gcj02``/``from_bd09`` convert lon/lat data to WGS84 after reading.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import pyogrio.errors as pe
import pyogrio.raw as praw
import shapely
from pyproj import CRS

from yizhangtu.errors import (
    CRSError,
    EncodingError,
    FileFormatError,
    GeometryError,
    InputError,
    YizhangtuError,
)
from yizhangtu.geo import offsets
from yizhangtu.geo.crs import (
    CRSResolution,
    crs_code,
    format_bounds,
    infer_crs,
    parse_crs,
    plausible_envelope,
    resolve_crs,
)
from yizhangtu.io.encoding import (
    EncodingChoice,
    choose_dbf_encoding,
    choose_text_encoding,
    codec_label,
)
from yizhangtu.io.source import (
    Source,
    _sublayer_required,
    check_shapefile,
    opener,
    resolve_source,
)
from yizhangtu.io.tabular import TabularSpec, build_geometry, detect_columns

__all__ = ["CRSLike", "ReadReport", "inspect_source", "iter_source", "read_source"]

#: A CRS as users give it: ``"EPSG:4527"``, ``4527``, WKT/PROJ text or a :class:`pyproj.CRS`.
CRSLike = str | int | CRS | None

_GEOM_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
_SPREADSHEET_DRIVERS = {"XLSX", "ODS"}
_TEXT_GEO_EXTENSIONS = (".geojson", ".json")
#: Largest GeoJSON parsed again with ``json`` to tell GDAL-dropped geometries from nulls.
_GEOJSON_RECHECK_BYTES = 256 * 1024 * 1024
#: Per-feature bounds kept in full for the "typical feature" (then one in ``_SAMPLE_STRIDE``).
_SAMPLE_FULL = 10_000
_SAMPLE_STRIDE = 50


@dataclass(frozen=True)
class ReadReport:
    """What was read and every decision taken while reading.

    Attributes
    ----------
    file : str
        The path as given.
    sublayer : str or None
        The layer (or container member) read.
    sublayers : tuple of str
        All layers (or data files of a zip/directory) the source offers.
    driver : str
        GDAL driver (``ESRI Shapefile``, ``GPKG``, ``GeoJSON``, ``OpenFileGDB``, ``KML``,
        ``XLSX``) or ``CSV``.
    encoding : str or None
        Encoding of the attribute text (``UTF-8``, ``GB18030``, ``GBK`` …).
    encoding_source : str
        ``cpg``, ``dbf_ldid``, ``utf-8``, ``gb18030-fallback``, ``override`` or ``n/a`` (the
        format fixes the encoding: GeoPackage, FileGDB, XLSX, KML).
    crs : str
        ``EPSG:xxxx`` (or WKT) of the returned coordinates.
    crs_source : str
        ``declared``, ``inferred`` or ``override``.
    feature_count : int
        Number of features (rows), null geometries included.
    geometry_types : tuple of str
        Distinct 2D geometry types present, sorted.
    source_hash : str
        SHA-256 of the source bytes (shapefile: all sidecars in sorted name order; zip: the
        zip bytes; directory datasets such as FileGDB: all files in sorted path order).
    warnings : tuple of str
        Chinese notes for the user.
    """

    file: str
    sublayer: str | None
    sublayers: tuple[str, ...]
    driver: str
    encoding: str | None
    encoding_source: str
    crs: str
    crs_source: str
    feature_count: int
    geometry_types: tuple[str, ...]
    source_hash: str
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists)."""
        out = asdict(self)
        for key in ("sublayers", "geometry_types", "warnings"):
            out[key] = list(out[key])
        return out


# --------------------------------------------------------------------------- errors


def _is_pyogrio_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        pe.DataSourceError
        | pe.DataLayerError
        | pe.FieldError
        | pe.FeatureError
        | pe.GeometryError
        | pe.CRSError
        | pe.TransactionError
        | pa.ArrowException,
    )


def _wrap_gdal(exc: BaseException, src: Source | None, file: str) -> YizhangtuError:
    msg = str(exc)
    data = {"gdal_message": msg[:500]}
    if isinstance(exc, UnicodeDecodeError) or "Wrapping" in msg or "codec can't decode" in msg:
        return EncodingError(
            "属性文本无法按当前编码解码",
            key="encoding_undecodable",
            file=file,
            hint="请用 --encoding 指定文件编码（如 GBK、GB18030、UTF-8）",
            data=data,
        )
    if "SHAPE_RESTORE_SHX" in msg:
        return FileFormatError(
            "缺少 .shx 索引文件，无法读取 Shapefile",
            key="missing_shx",
            file=file,
            hint="请把与 .shp 同名的 .shx 文件一起提供",
            data=data,
        )
    if (
        "not recognized as being in a supported file format" in msg
        or "not recognized as a supported" in msg
    ):
        known = src is not None and src.ext in (
            ".shp", ".gpkg", ".geojson", ".json", ".kml", ".kmz", ".gml", ".xlsx", ".ods",
            ".fgb", ".gdb", ".tab", ".mif", ".sqlite", ".dbf",
        )  # fmt: skip
        if known:
            return FileFormatError(
                f"文件已损坏，或内容与扩展名（{src.ext if src else ''}）不符，无法读取",
                key="file_corrupt",
                file=file,
                hint="请在源软件中重新导出该文件",
                data=data,
            )
        return FileFormatError(
            "不是可识别的空间数据格式",
            key="unsupported_format",
            file=file,
            hint=(
                "支持 Shapefile（可为 zip）、GeoPackage、GeoJSON、KML、FileGDB、"
                "CSV/XLSX（含坐标列或 WKT 列）"
            ),
            data=data,
        )
    return FileFormatError(
        "文件已损坏或格式不正确，无法读取",
        key="file_corrupt",
        file=file,
        hint="请在源软件（如 QGIS/ArcGIS）中检查并重新导出该文件",
        data=data,
    )


@contextlib.contextmanager
def _gdal_errors(src: Source | None, file: str) -> Iterator[None]:
    """Turn pyogrio/GDAL/Arrow exceptions into :class:`FileFormatError`/:class:`EncodingError`."""
    try:
        yield
    except YizhangtuError:
        raise
    except UnicodeDecodeError as exc:
        raise _wrap_gdal(exc, src, file) from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise _wrap_gdal(exc, src, file) from None
    except Exception as exc:
        if _is_pyogrio_error(exc):
            raise _wrap_gdal(exc, src, file) from None
        raise


_IGNORED_GDAL = (
    "More than one layer found",
    "Non closed ring",
    "NULL geometry",
    "Invalid coord",
    "Measured (M) geometry types are not supported",
)


class _GdalWarnings:
    """Collect GDAL warnings (pyogrio emits them as RuntimeWarning)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            text = str(w.message)
            if issubclass(w.category, RuntimeWarning | UserWarning) and text not in self.messages:
                self.messages.append(text)

    def notes(self) -> list[str]:
        return [
            f"GDAL 提示：{m[:200]}" for m in self.messages if not any(s in m for s in _IGNORED_GDAL)
        ][:5]


# --------------------------------------------------------------------------- plan


@dataclass
class _Plan:
    src: Source
    file: str
    layer: str | None
    sublayers: tuple[str, ...]
    driver: str
    enc: EncodingChoice
    read_path: str
    gdal_encoding: str | None = None
    open_options: dict[str, str] = field(default_factory=dict)
    tabular: TabularSpec | None = None
    declared_crs: CRS | None = None
    warnings: list[str] = field(default_factory=list)
    csv_sep: str = ","
    swap_xy: bool = False
    display_layer: str | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    gdal: _GdalWarnings = field(default_factory=_GdalWarnings)

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            self.tmpdir.cleanup()
            self.tmpdir = None

    @property
    def is_csv(self) -> bool:
        return self.src.kind == "csv"


def _sniff_separator(head: bytes) -> str:
    line = head.split(b"\n", 1)[0]
    counts = {sep: line.count(sep.encode()) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _csv_header(plan: _Plan) -> list[str]:
    with plan.src.open_data() as fh:
        df = pd.read_csv(fh, sep=plan.csv_sep, encoding=plan.enc.codec, nrows=0, dtype=str)
    return [str(c) for c in df.columns]


def _prepare_csv(
    plan: _Plan, x_field: str | None, y_field: str | None, wkt_field: str | None
) -> None:
    src = plan.src
    with src.open_data() as fh:
        head = fh.read(65536)
    is_txt = src.ext == ".txt"
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileFormatError(
            "不是文本表格文件，无法读取",
            key="unsupported_format" if is_txt else "file_corrupt",
            file=plan.file,
            hint="CSV/TXT 应为逗号、分号或制表符分隔的文本",
        )
    plan.csv_sep = "\t" if src.ext == ".tsv" else _sniff_separator(head)
    override = plan.enc.encoding if plan.enc.source == "override" else None
    plan.enc = choose_text_encoding(
        src.open_data,
        kind="csv",
        override=override,
        file=plan.file,
        separator=plan.csv_sep.encode(),
    )
    plan.warnings.extend(plan.enc.warnings)
    try:
        columns = _csv_header(plan)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FileFormatError(
            "表格无法解析（分隔符或引号不正确）",
            key="unsupported_format" if is_txt else "file_corrupt",
            file=plan.file,
            hint="请另存为标准 CSV（逗号分隔，UTF-8）",
            data={"detail": str(exc)[:300]},
        ) from None
    try:
        plan.tabular = detect_columns(
            columns, x_field=x_field, y_field=y_field, wkt_field=wkt_field, file=plan.file
        )
    except FileFormatError as exc:
        if is_txt and exc.key == "no_geometry_columns":
            raise FileFormatError(
                "不是可识别的空间数据：文本文件中没有坐标列或 WKT 列",
                key="unsupported_format",
                file=plan.file,
                hint="坐标表请存为 CSV/XLSX 并包含 经度/纬度、X坐标/Y坐标 或 WKT 列",
                data=exc.data,
            ) from None
        raise


def _transcode(plan: _Plan) -> None:
    """Write a UTF-8 copy of a text geodata file (GeoJSON read with a user encoding)."""
    assert plan.enc.codec is not None
    plan.tmpdir = tempfile.TemporaryDirectory(prefix="yizhangtu-")
    out = Path(plan.tmpdir.name) / f"{plan.src.label}{plan.src.ext}"
    decoder = codecs.getincrementaldecoder(plan.enc.codec)(errors="strict")
    with plan.src.open_data() as fh, out.open("w", encoding="utf-8") as dst:
        while block := fh.read(1 << 20):
            dst.write(decoder.decode(block))
        dst.write(decoder.decode(b"", final=True))
    plan.read_path = str(out)


def _prepare(
    path: str | Path,
    *,
    sublayer: str | None,
    encoding: str | None,
    crs: CRSLike,
    x_field: str | None,
    y_field: str | None,
    wkt_field: str | None,
) -> _Plan:
    file = str(path)
    src, rest = resolve_source(path, sublayer)
    over = (
        EncodingChoice(encoding, None, "override")
        if encoding
        else EncodingChoice(None, None, "n/a")
    )
    plan = _Plan(
        src=src,
        file=file,
        layer=None,
        sublayers=src.container_choices,
        driver="",
        enc=over,
        read_path=src.gdal_path,
    )
    if crs is not None:
        try:
            parse_crs(crs)  # fail early on a bad --crs
        except CRSError as exc:
            exc.detail = replace(exc.detail, file=file)
            raise
    try:
        if src.kind == "csv":
            plan.driver = "CSV"
            plan.layer = src.label
            plan.sublayers = src.container_choices or (src.label,)
            if rest:
                raise InputError(
                    f"CSV 文件只有一个图层，找不到“{rest}”",
                    key="sublayer_not_found",
                    file=file,
                    hint=f"可选图层：{src.label}",
                )
            _prepare_csv(plan, x_field, y_field, wkt_field)
            return plan
        if src.kind == "shapefile":
            check_shapefile(src)
            plan.enc = choose_dbf_encoding(
                opener(src, ".dbf"),
                cpg_text=src.read_sidecar_text(".cpg"),
                override=encoding,
                file=file,
            )
            plan.gdal_encoding = plan.enc.encoding
            plan.warnings.extend(plan.enc.warnings)
        elif src.ext == ".dbf":  # a bare attribute table: same encoding rules as a shapefile
            plan.enc = choose_dbf_encoding(
                src.open_data, cpg_text=src.read_sidecar_text(".cpg"), override=encoding, file=file
            )
            plan.gdal_encoding = plan.enc.encoding
            plan.warnings.extend(plan.enc.warnings)
        elif src.ext in _TEXT_GEO_EXTENSIONS:
            with src.open_data() as fh:
                head = fh.read(65536)
            if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise FileFormatError(
                    f"文件内容不是文本，与扩展名（{src.ext}）不符",
                    key="file_corrupt",
                    file=file,
                    hint="请确认文件未损坏，并在源软件中重新导出为 GeoJSON",
                )
            plan.enc = choose_text_encoding(
                src.open_data, kind="geojson", override=encoding, file=file
            )
            plan.warnings.extend(plan.enc.warnings)
            if plan.enc.codec not in ("utf-8", "utf-8-sig"):
                _transcode(plan)
                plan.warnings.append(f"已按 {plan.enc.encoding} 读取并转为 UTF-8")
        _prepare_gdal(plan, rest, x_field, y_field, wkt_field, encoding)
        return plan
    except BaseException:
        plan.cleanup()
        raise


def _prepare_gdal(
    plan: _Plan,
    sublayer: str | None,
    x_field: str | None,
    y_field: str | None,
    wkt_field: str | None,
    encoding: str | None,
) -> None:
    src, file = plan.src, plan.file
    with _gdal_errors(src, file), plan.gdal.capture():
        layers = pyogrio.list_layers(plan.read_path)
    names = [str(n) for n, _ in layers]
    spatial = [str(n) for n, g in layers if g is not None]
    if not names:
        raise FileFormatError(
            "文件中没有图层", key="no_features", file=file, hint="请检查导出的文件是否包含数据"
        )
    candidates = spatial or names
    if sublayer:
        hit = next((n for n in names if n == sublayer), None) or next(
            (n for n in names if n.lower() == sublayer.strip().lower()), None
        )
        if hit is None:
            raise InputError(
                f"找不到图层“{sublayer}”",
                key="sublayer_not_found",
                file=file,
                hint="可选图层：" + "、".join(candidates[:20]),
                data={"sublayers": candidates},
            )
        plan.layer = hit
    elif len(candidates) > 1:
        raise _sublayer_required(file, candidates)
    else:
        plan.layer = candidates[0]
    if len(candidates) > 1 or not plan.sublayers:
        plan.sublayers = tuple(candidates)
    elif len(plan.sublayers) > 1 and src.member_display:
        plan.display_layer = src.member_display  # report the container member the user chose
    # Spreadsheets: the first row is the header even when every cell is text.
    if src.ext in (".xlsx", ".ods", ".xls"):
        plan.open_options = {"HEADERS": "FORCE"}
    with _gdal_errors(src, file), plan.gdal.capture():
        info = pyogrio.read_info(
            plan.read_path, layer=plan.layer, encoding=plan.gdal_encoding, **plan.open_options
        )
    plan.driver = str(info["driver"])
    if info["crs"]:
        plan.declared_crs = parse_crs(info["crs"])
    if plan.gdal_encoding is None and src.ext not in _TEXT_GEO_EXTENSIONS:
        enc = info.get("encoding") or "UTF-8"
        plan.enc = EncodingChoice(codec_label(enc), None, "n/a")
        if encoding:
            plan.warnings.append(
                f"{plan.driver} 格式的文本编码由格式本身确定，已忽略指定的编码 {encoding}"
            )
    if info["geometry_type"] is None:
        plan.tabular = detect_columns(
            [str(f) for f in info["fields"]],
            x_field=x_field,
            y_field=y_field,
            wkt_field=wkt_field,
            file=file,
        )
    elif x_field or y_field or wkt_field:
        plan.warnings.append("该图层已有几何字段，已忽略 --x-field/--y-field/--wkt-field")


# --------------------------------------------------------------------------- raw batches


def _types_mapper(t: pa.DataType) -> Any:
    if pa.types.is_integer(t):
        return {
            pa.int8(): pd.Int8Dtype(),
            pa.int16(): pd.Int16Dtype(),
            pa.int32(): pd.Int32Dtype(),
            pa.int64(): pd.Int64Dtype(),
            pa.uint8(): pd.UInt8Dtype(),
            pa.uint16(): pd.UInt16Dtype(),
            pa.uint32(): pd.UInt32Dtype(),
            pa.uint64(): pd.UInt64Dtype(),
        }.get(t)
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def _wkb_numpy(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if isinstance(col.type, pa.ExtensionType):
        col = col.storage
    return col.to_numpy(zero_copy_only=False)


@dataclass
class _Raw:
    """One batch as read: attributes (without geometry) and WKB or built geometries."""

    offset: int
    attrs: pd.DataFrame
    wkb: np.ndarray | None = None
    geoms: np.ndarray | None = None
    srids: set[int] = field(default_factory=set)


def _arrow_kwargs(plan: _Plan) -> dict[str, Any]:
    return {"layer": plan.layer, "encoding": plan.gdal_encoding, **plan.open_options}


def _batch_to_raw(
    plan: _Plan, batch: pa.RecordBatch | pa.Table, geom_col: str | None, offset: int
) -> _Raw:
    wkb = None
    if geom_col is not None and geom_col in batch.schema.names:
        wkb = _wkb_numpy(batch.column(geom_col))
        batch = batch.drop_columns([geom_col])
    attrs = batch.to_pandas(types_mapper=_types_mapper)
    attrs.index = pd.RangeIndex(offset, offset + len(attrs))
    raw = _Raw(offset, attrs, wkb=wkb)
    if plan.tabular is not None:
        geoms, srids = build_geometry(attrs, plan.tabular, offset=offset, file=plan.file)
        raw.geoms, raw.srids = geoms, srids
        if plan.tabular.mode == "wkt":
            raw.attrs = attrs.drop(columns=[plan.tabular.wkt])
    return raw


def _csv_chunks(plan: _Plan, chunk_size: int | None, columns: list[str] | None) -> Iterator[_Raw]:
    assert plan.tabular is not None
    with plan.src.open_data() as fh:
        try:
            reader = pd.read_csv(
                fh,
                sep=plan.csv_sep,
                encoding=plan.enc.codec,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                usecols=columns,
                chunksize=chunk_size,
            )
            offset = 0
            frames: Iterable[pd.DataFrame] = (
                [reader] if isinstance(reader, pd.DataFrame) else reader
            )
            for df in frames:
                df.index = pd.RangeIndex(offset, offset + len(df))
                geoms, srids = build_geometry(df, plan.tabular, offset=offset, file=plan.file)
                attrs = df.drop(columns=[plan.tabular.wkt]) if plan.tabular.mode == "wkt" else df
                yield _Raw(offset, attrs, geoms=geoms, srids=srids)
                offset += len(df)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise FileFormatError(
                "CSV 表格解析失败（列数不一致或引号不匹配）",
                key="file_corrupt",
                file=plan.file,
                hint="请检查表格中是否有多余的分隔符或未闭合的引号，或另存为标准 CSV",
                data={"detail": str(exc)[:300]},
            ) from None


def _raw_batches(
    plan: _Plan, chunk_size: int | None, *, geometry_only: bool = False
) -> Iterator[_Raw]:
    """Stream the source in batches (one batch when ``chunk_size`` is None)."""
    if plan.is_csv:
        columns = plan.tabular.columns if (geometry_only and plan.tabular) else None
        yield from _csv_chunks(plan, chunk_size, columns)
        return
    kwargs = _arrow_kwargs(plan)
    if geometry_only:
        kwargs["columns"] = plan.tabular.columns if plan.tabular is not None else []
    if plan.tabular is not None:
        kwargs["read_geometry"] = False
    if chunk_size is None:
        with _gdal_errors(plan.src, plan.file), plan.gdal.capture():
            meta, table = praw.read_arrow(plan.read_path, **kwargs)
        geom_col = (meta.get("geometry_name") or "wkb_geometry") if plan.tabular is None else None
        yield _batch_to_raw(plan, table, geom_col, 0)
        return
    offset = 0
    with _gdal_errors(plan.src, plan.file), plan.gdal.capture():
        ctx = praw.open_arrow(plan.read_path, batch_size=chunk_size, use_pyarrow=True, **kwargs)
        meta, reader = ctx.__enter__()
    try:
        geom_col = (meta.get("geometry_name") or "wkb_geometry") if plan.tabular is None else None
        while True:
            with _gdal_errors(plan.src, plan.file), plan.gdal.capture():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
            if batch.num_rows == 0:
                continue
            raw = _batch_to_raw(plan, batch, geom_col, offset)
            offset += len(raw.attrs)
            yield raw
    finally:
        ctx.__exit__(None, None, None)


# --------------------------------------------------------------------------- geometry


@dataclass
class _Decoded:
    geoms: np.ndarray
    fixed: np.ndarray  # positions (within the batch) whose rings were closed
    unreadable: np.ndarray


def _decode(raw: _Raw) -> _Decoded:
    empty = np.zeros(0, dtype=np.int64)
    if raw.geoms is not None:
        return _Decoded(np.asarray(raw.geoms, dtype=object), empty, empty)
    if raw.wkb is None:
        return _Decoded(np.full(len(raw.attrs), None, dtype=object), empty, empty)
    wkb = raw.wkb
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    present = np.array([w is not None for w in wkb], dtype=bool)
    failed = np.flatnonzero(shapely.is_missing(geoms) & present)
    if len(failed) == 0:
        return _Decoded(geoms, empty, empty)
    fixed_geoms = shapely.from_wkb(wkb[failed], on_invalid="fix")
    ok = ~shapely.is_missing(fixed_geoms)
    geoms[failed[ok]] = fixed_geoms[ok]
    return _Decoded(geoms, failed[ok], failed[~ok])


class _Stats:
    """Geometry facts accumulated over batches (bounded memory)."""

    def __init__(self) -> None:
        self.count = 0
        self.types: Counter[str] = Counter()
        self.n_z = 0
        self.n_m = 0
        self.n_null = 0
        self.null_idx: list[int] = []  # geometry absent (None), not merely empty
        self.fixed_idx: list[int] = []
        self.unreadable_idx: list[int] = []
        self.nonfinite_idx: list[int] = []
        self.bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])
        self._samples: list[np.ndarray] = []
        self.srids: set[int] = set()

    def add(self, dec: _Decoded, offset: int, srids: set[int] | None = None) -> None:
        g = dec.geoms
        n = len(g)
        self.count += n
        self.srids |= srids or set()
        self.fixed_idx.extend((offset + dec.fixed[:50]).tolist())
        self.unreadable_idx.extend((offset + dec.unreadable[:50]).tolist())
        absent = shapely.is_missing(g)
        missing = absent | shapely.is_empty(g)
        self.n_null += int(missing.sum())
        if len(self.null_idx) < 100_000:
            self.null_idx.extend((offset + np.flatnonzero(absent)).tolist())
        live = g[~missing]
        if len(live) == 0:
            return
        ids = shapely.get_type_id(live)
        for t, c in zip(*np.unique(ids, return_counts=True), strict=True):
            self.types[_GEOM_NAMES[int(t)]] += int(c)
        self.n_z += int(shapely.has_z(live).sum())
        self.n_m += int(shapely.has_m(live).sum())
        b = shapely.bounds(live)
        finite = np.isfinite(b).all(axis=1)
        if not finite.all():
            pos = np.flatnonzero(~missing)[~finite]
            self.nonfinite_idx.extend((offset + pos[:20]).tolist())
        if finite.any():
            bf = b[finite]
            self.bounds = np.array(
                [
                    min(self.bounds[0], bf[:, 0].min()),
                    min(self.bounds[1], bf[:, 1].min()),
                    max(self.bounds[2], bf[:, 2].max()),
                    max(self.bounds[3], bf[:, 3].max()),
                ]
            )
            kept = sum(len(s) for s in self._samples)
            if kept < _SAMPLE_FULL:
                self._samples.append(bf[: _SAMPLE_FULL - kept])
                bf = bf[_SAMPLE_FULL - kept :]
            if len(bf):
                self._samples.append(bf[::_SAMPLE_STRIDE])

    @property
    def total_bounds(self) -> tuple[float, float, float, float] | None:
        if not np.isfinite(self.bounds).all():
            return None
        return tuple(float(v) for v in self.bounds)  # type: ignore[return-value]

    @property
    def typical_bounds(self) -> tuple[float, float, float, float] | None:
        if not self._samples:
            return None
        s = np.concatenate(self._samples)
        return tuple(float(v) for v in np.median(s, axis=0))  # type: ignore[return-value]

    @property
    def geometry_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.types))


def _scan(plan: _Plan, chunk_size: int) -> _Stats:
    stats = _Stats()
    for raw in _raw_batches(plan, chunk_size, geometry_only=True):
        stats.add(_decode(raw), raw.offset, raw.srids)
    return stats


def _feature_label(i: int) -> str:
    return f"第 {i + 1} 个要素（序号 {i}）"


def _check_geometry(plan: _Plan, stats: _Stats) -> None:
    """Raise for empty sources and unreadable geometries; note repaired rings."""
    if stats.count == 0:
        raise FileFormatError(
            "文件中没有要素（0 条记录）",
            key="no_features",
            file=plan.file,
            hint="请确认导出时选择了正确的图层且数据不为空",
        )
    if stats.n_null and plan.driver == "GeoJSON" and plan.tabular is None:
        lost = _geojson_dropped(plan, stats.null_idx)
        stats.unreadable_idx.extend(lost)
    if stats.unreadable_idx:
        idx = sorted(set(stats.unreadable_idx))
        raise GeometryError(
            f"{_feature_label(idx[0])}的几何无法解析"
            + (f"（共 {len(idx)} 个要素）" if len(idx) > 1 else ""),
            key="geometry_unreadable",
            file=plan.file,
            feature=idx[0],
            hint="请在源软件中检查这些要素的坐标（数量、数值格式、环是否完整）后重新导出",
            data={"features": idx[:50]},
        )
    if stats.fixed_idx:
        idx = sorted(set(stats.fixed_idx))
        plan.warnings.append(
            f"{len(idx)} 个要素的面环未闭合，已自动闭合（{'、'.join(str(i) for i in idx[:10])}）"
        )
    if stats.n_z or stats.n_m:
        parts = [p for p, n in (("Z 坐标", stats.n_z), ("M 值", stats.n_m)) if n]
        n = max(stats.n_z, stats.n_m)
        plan.warnings.append(f"已去除 {'和'.join(parts)}（{n} 个要素含三维/测量值），按二维读取")
    if stats.n_null:
        plan.warnings.append(f"{stats.n_null} 个要素没有几何（空几何）")


def _geojson_dropped(plan: _Plan, null_idx: list[int]) -> list[int]:
    """Features whose GeoJSON geometry is not null but came back null from GDAL."""
    size = plan.src.sidecar_size(plan.src.ext) if plan.src.member else plan.src.path.stat().st_size
    if size is None or size > _GEOJSON_RECHECK_BYTES:
        plan.warnings.append("文件过大，未核对空几何是否源于解析失败")
        return []
    try:
        if plan.read_path != plan.src.gdal_path:
            text = Path(plan.read_path).read_text(encoding="utf-8")
        else:
            with plan.src.open_data() as fh:
                text = fh.read().decode("utf-8-sig")
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return []
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(feats, list):
        return []
    out = []
    for i in null_idx:
        if (
            i < len(feats)
            and isinstance(feats[i], dict)
            and feats[i].get("geometry") not in (None, {})
        ):
            out.append(i)
    return out


# --------------------------------------------------------------------------- CRS


def _offenders_in(bounds: np.ndarray, envelope: tuple[float, float, float, float]) -> np.ndarray:
    finite = np.isfinite(bounds).all(axis=1)
    inside = (
        (bounds[:, 0] >= envelope[0])
        & (bounds[:, 1] >= envelope[1])
        & (bounds[:, 2] <= envelope[2])
        & (bounds[:, 3] <= envelope[3])
    )
    return np.flatnonzero(~(finite & inside))


def _envelope_for(
    plan: _Plan, stats: _Stats, override: CRSLike
) -> tuple[float, float, float, float] | None:
    given = parse_crs(override) if override is not None else plan.declared_crs
    if given is not None:
        if given.is_geographic:
            return (-180.0, -90.0, 180.0, 90.0)
        return plausible_envelope(given)
    typical = stats.typical_bounds
    cands = infer_crs(typical) if typical is not None else []
    if not cands:
        return None
    envs = np.array([plausible_envelope(c.crs, margin=1.5) for c in cands])
    return (envs[:, 0].min(), envs[:, 1].min(), envs[:, 2].max(), envs[:, 3].max())


def _locate_out_of_range(
    plan: _Plan,
    stats: _Stats,
    override: CRSLike,
    err: CRSError,
    geoms: np.ndarray | None,
    chunk_size: int,
) -> CRSError:
    env = _envelope_for(plan, stats, override)
    found: list[int] = list(stats.nonfinite_idx)
    if env is not None:
        if geoms is not None:
            b = shapely.bounds(geoms)
            live = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
            found.extend(int(i) for i in _offenders_in(b, env) if live[i])
        else:
            for raw in _raw_batches(plan, chunk_size, geometry_only=True):
                g = _decode(raw).geoms
                if plan.swap_xy:
                    g = _swap_xy(g)
                live = ~(shapely.is_missing(g) | shapely.is_empty(g))
                found.extend(
                    raw.offset + int(i) for i in _offenders_in(shapely.bounds(g), env) if live[i]
                )
                if len(found) >= 50:
                    break
    found = sorted(set(found))
    if not found:
        return err
    bounds = err.data.get("bounds")
    extent = f"（数据整体范围 {format_bounds(bounds)}）" if bounds else ""
    return CRSError(
        f"{_feature_label(found[0])}的坐标超出合理范围"
        + (f"（共 {len(found)} 个要素）" if len(found) > 1 else "")
        + extent,
        key=err.key,
        file=err.detail.file,
        feature=found[0],
        hint="请检查这些要素的坐标：单位是否错误（毫米/厘米）、是否缺少或多了带号、是否为误录入的坐标",
        data={**err.data, "features": found[:50]},
    )


def _swap_xy(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda c: c[:, ::-1].copy())


def _decide_crs(
    plan: _Plan, stats: _Stats, override: CRSLike, geoms: np.ndarray | None, chunk_size: int
) -> CRSResolution:
    declared = plan.declared_crs
    if stats.srids:
        if len(stats.srids) > 1:
            raise CRSError(
                "WKT 列中的 SRID 不一致：" + "、".join(str(s) for s in sorted(stats.srids)),
                key="crs_mixed",
                file=plan.file,
                field=plan.tabular.wkt if plan.tabular else None,
                hint="同一文件中的坐标应使用同一坐标系",
            )
        declared = parse_crs(f"EPSG:{next(iter(stats.srids))}")
    bounds, typical = stats.total_bounds, stats.typical_bounds
    if stats.nonfinite_idx and bounds is not None:
        bounds = (float("nan"), float("nan"), float("nan"), float("nan"))
    try:
        return resolve_crs(
            bounds, declared=declared, override=override, typical_bounds=typical, file=plan.file
        )
    except CRSError as err:
        spec = plan.tabular
        if (
            err.key == "xy_swapped"
            and spec is not None
            and spec.mode == "xy"
            and spec.survey_names
            and not spec.explicit
            and bounds is not None
        ):
            sb = (bounds[1], bounds[0], bounds[3], bounds[2])
            st = (typical[1], typical[0], typical[3], typical[2]) if typical else None
            note = f"按测量坐标习惯（{spec.x} 为北坐标、{spec.y} 为东坐标）交换了 X/Y"
            try:
                res = resolve_crs(
                    sb, declared=declared, override=override, typical_bounds=st, file=plan.file
                )
            except CRSError as again:
                again.message = f"{note}后：{again.message}"
                again.args = (again.message,)
                raise
            plan.swap_xy = True
            stats.bounds = np.array(sb)
            plan.warnings.append(f"{note}后读取")
            return res
        if err.key == "coordinates_out_of_range":
            raise _locate_out_of_range(plan, stats, override, err, geoms, chunk_size) from None
        raise


# --------------------------------------------------------------------------- finishing


@dataclass(frozen=True)
class _Finish:
    res: CRSResolution
    swap_xy: bool
    force_2d: bool
    offset_kind: str | None  # 'gcj02' | 'bd09'


def _finish_geoms(geoms: np.ndarray, fin: _Finish) -> np.ndarray:
    if fin.swap_xy:
        geoms = _swap_xy(geoms)
    if fin.force_2d:
        geoms = shapely.force_2d(geoms)
    if fin.offset_kind == "gcj02":
        geoms = offsets.gcj02_to_wgs84(geoms)
    elif fin.offset_kind == "bd09":
        geoms = offsets.bd09_to_wgs84(geoms)
    return geoms


def _frame(raw: _Raw, geoms: np.ndarray, fin: _Finish) -> gpd.GeoDataFrame:
    attrs = raw.attrs
    if "geometry" in attrs.columns:
        attrs = attrs.rename(columns={"geometry": "geometry_attr"})
    out = gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(geoms, index=attrs.index), crs=fin.res.crs)
    return out


def _make_finish(
    plan: _Plan, stats: _Stats, res: CRSResolution, from_gcj02: bool, from_bd09: bool
) -> tuple[_Finish, CRSResolution]:
    drop_zm = bool(stats.n_z or stats.n_m)
    if drop_zm and len(res.crs.axis_info) == 3:
        crs2d = res.crs.to_2d()
        epsg = crs2d.to_epsg()
        if epsg is None and res.crs.to_epsg() == 4979:
            epsg = 4326
        crs2d = CRS.from_epsg(epsg) if epsg is not None else crs2d
        res = replace(res, crs=crs2d, code=crs_code(crs2d))
    kind = "gcj02" if from_gcj02 else ("bd09" if from_bd09 else None)
    if kind is not None:
        if not res.crs.is_geographic:
            raise CRSError(
                f"GCJ-02/BD-09 纠正需要经纬度坐标，本文件坐标系为 {res.code}",
                key="offset_needs_lonlat",
                file=plan.file,
                hint="网络地图坐标都是经纬度；投影坐标数据不需要 --from-gcj02/--from-bd09",
            )
        plan.warnings.append(
            "已将坐标由 GCJ-02（高德/腾讯）纠正为 WGS84"
            if kind == "gcj02"
            else "已将坐标由 BD-09（百度）纠正为 WGS84"
        )
    return _Finish(res, plan.swap_xy, drop_zm, kind), res


def _report(plan: _Plan, stats: _Stats, res: CRSResolution) -> ReadReport:
    notes = list(dict.fromkeys([*plan.warnings, *res.warnings, *plan.gdal.notes()]))
    return ReadReport(
        file=plan.file,
        sublayer=plan.display_layer or plan.layer,
        sublayers=tuple(plan.sublayers),
        driver=plan.driver,
        encoding=plan.enc.encoding,
        encoding_source=plan.enc.source,
        crs=res.code,
        crs_source=res.source,
        feature_count=stats.count,
        geometry_types=stats.geometry_types,
        source_hash=plan.src.source_hash,
        warnings=tuple(notes),
    )


def _check_options(from_gcj02: bool, from_bd09: bool, chunk_size: int | None = None) -> None:
    if from_gcj02 and from_bd09:
        raise InputError(
            "--from-gcj02 与 --from-bd09 不能同时使用",
            key="offset_conflict",
            hint="高德/腾讯坐标用 --from-gcj02，百度坐标用 --from-bd09",
        )
    if chunk_size is not None and chunk_size < 1:
        raise InputError("chunk_size 必须为正整数", key="bad_chunk_size", hint="例如 50000")


# --------------------------------------------------------------------------- public API


def inspect_source(
    path: str | Path,
    *,
    sublayer: str | None = None,
    encoding: str | None = None,
    crs: CRSLike = None,
    x_field: str | None = None,
    y_field: str | None = None,
    wkt_field: str | None = None,
) -> ReadReport:
    """Check a source and describe it without loading its attributes.

    Parameters
    ----------
    path : str or Path
        Shapefile (``.shp`` or ``.zip``), GeoPackage, GeoJSON, KML, FileGDB (``.gdb``
        directory), CSV/TXT, XLSX/ODS, or any other GDAL vector source.
    sublayer : str, optional
        Layer of a multi-layer source, or data file of a zip/directory.
    encoding : str, optional
        Attribute encoding, overriding ``.cpg``/LDID/probing.
    crs : str or pyproj.CRS, optional
        CRS of the coordinates, overriding the declared one (no reprojection).
    x_field, y_field, wkt_field : str, optional
        Geometry columns of a table.

    Returns
    -------
    ReadReport

    Raises
    ------
    YizhangtuError
        ``InputError``, ``FileFormatError``, ``EncodingError``, ``CRSError`` or
        ``GeometryError`` naming file, feature and field where known.
    """
    plan = _prepare(
        path,
        sublayer=sublayer,
        encoding=encoding,
        crs=crs,
        x_field=x_field,
        y_field=y_field,
        wkt_field=wkt_field,
    )
    try:
        stats = _scan(plan, 50_000)
        _check_geometry(plan, stats)
        res = _decide_crs(plan, stats, crs, None, 50_000)
        _, res = _make_finish(plan, stats, res, False, False)
        return _report(plan, stats, res)
    finally:
        plan.cleanup()


def read_source(
    path: str | Path,
    *,
    sublayer: str | None = None,
    encoding: str | None = None,
    crs: CRSLike = None,
    x_field: str | None = None,
    y_field: str | None = None,
    wkt_field: str | None = None,
    from_gcj02: bool = False,
    from_bd09: bool = False,
) -> tuple[gpd.GeoDataFrame, ReadReport]:
    """Read a whole source into a GeoDataFrame.

    Parameters are those of :func:`inspect_source`, plus:

    from_gcj02 : bool
        The coordinates are GCJ-02 (Amap/Tencent): convert to WGS84.
    from_bd09 : bool
        The coordinates are BD-09 (Baidu): convert to WGS84.

    Returns
    -------
    (GeoDataFrame, ReadReport)
        Features in the source CRS (``report.crs``), index = row position, geometry column
        ``geometry`` (2D).
    """
    _check_options(from_gcj02, from_bd09)
    plan = _prepare(
        path,
        sublayer=sublayer,
        encoding=encoding,
        crs=crs,
        x_field=x_field,
        y_field=y_field,
        wkt_field=wkt_field,
    )
    try:
        raw = next(_raw_batches(plan, None), None)
        if raw is None:  # a CSV with a header and no rows
            raw = _Raw(0, pd.DataFrame(), geoms=np.zeros(0, dtype=object))
        dec = _decode(raw)
        stats = _Stats()
        stats.add(dec, 0, raw.srids)
        _check_geometry(plan, stats)
        res = _decide_crs(plan, stats, crs, dec.geoms, 50_000)
        fin, res = _make_finish(plan, stats, res, from_gcj02, from_bd09)
        gdf = _frame(raw, _finish_geoms(dec.geoms, fin), fin)
        return gdf, _report(plan, stats, res)
    finally:
        plan.cleanup()


def iter_source(
    path: str | Path,
    *,
    chunk_size: int = 50_000,
    sublayer: str | None = None,
    encoding: str | None = None,
    crs: CRSLike = None,
    x_field: str | None = None,
    y_field: str | None = None,
    wkt_field: str | None = None,
    from_gcj02: bool = False,
    from_bd09: bool = False,
) -> tuple[ReadReport, Iterator[gpd.GeoDataFrame]]:
    """Check a source, then stream it in chunks of at most ``chunk_size`` features.

    Every check of :func:`read_source` runs before the first chunk (a geometry-only pass), so
    an import fails before writing anything. The iterator keeps the file open until exhausted
    or closed; every chunk has the same columns, dtypes and CRS, and its index is the row
    position in the source.

    Returns
    -------
    (ReadReport, iterator of GeoDataFrame)
    """
    _check_options(from_gcj02, from_bd09, chunk_size)
    plan = _prepare(
        path,
        sublayer=sublayer,
        encoding=encoding,
        crs=crs,
        x_field=x_field,
        y_field=y_field,
        wkt_field=wkt_field,
    )
    try:
        stats = _scan(plan, chunk_size)
        _check_geometry(plan, stats)
        res = _decide_crs(plan, stats, crs, None, chunk_size)
        fin, res = _make_finish(plan, stats, res, from_gcj02, from_bd09)
        report = _report(plan, stats, res)
    except BaseException:
        plan.cleanup()
        raise

    def chunks() -> Iterator[gpd.GeoDataFrame]:
        try:
            for raw in _raw_batches(plan, chunk_size):
                dec = _decode(raw)
                if len(dec.unreadable):
                    i = raw.offset + int(dec.unreadable[0])
                    raise GeometryError(
                        f"{_feature_label(i)}的几何无法解析",
                        key="geometry_unreadable",
                        file=plan.file,
                        feature=i,
                        hint="请在源软件中检查该要素的坐标后重新导出",
                    )
                yield _frame(raw, _finish_geoms(dec.geoms, fin), fin)
        finally:
            plan.cleanup()

    return report, chunks()
