"""Layer services: import with QC, check, export, diff, info."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from yizhangtu.errors import InputError, QCError
from yizhangtu.geo.area import convert_area, ellipsoidal_area
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, Store
from yizhangtu.store.base import normalise_obs_date

__all__ = [
    "ImportOptions",
    "ImportResult",
    "check_file",
    "diff_layer",
    "export_layer",
    "import_file",
    "layer_summary",
    "normalise_obs_date",
]

# QC of cross-feature checks (overlaps, gaps, duplicated ids) runs on the whole layer in
# memory up to this many features; larger files stream and are checked chunk by chunk.
_FULL_QC_LIMIT = 300_000


@dataclass(frozen=True)
class ImportOptions:
    """How to read and check a file."""

    sublayer: str | None = None
    encoding: str | None = None
    crs: str | None = None
    x_field: str | None = None
    y_field: str | None = None
    wkt_field: str | None = None
    from_gcj02: bool = False
    from_bd09: bool = False
    offset_check: bool = True
    repair: bool = False
    allow_qc_errors: bool = False
    code_field: str | None = None
    code_system: str | None = None
    id_field: str | None = None
    required_fields: tuple[str, ...] = ()
    field_mapping: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    layer: str
    snapshot: Any
    read_report: Any
    qc_report: Any
    repairs: tuple[Any, ...]
    warnings: tuple[str, ...]
    offset: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "layer": self.layer,
            "snapshot": self.snapshot.to_dict(),
            "read": self.read_report.to_dict() if self.read_report is not None else None,
            "qc": self.qc_report.to_dict() if self.qc_report is not None else None,
            "repairs": [r.to_dict() for r in self.repairs],
            "warnings": list(self.warnings),
        }


def _qc_options(kind: str, opts: ImportOptions, settings: Settings, valid_codes: frozenset[str] | None) -> Any:
    from yizhangtu.qc import QCOptions

    return QCOptions(
        id_field=opts.id_field,
        tiling=kind == "survey",
        expect_single=kind in ("survey", "plot"),
        expected_geometry="polygon" if kind in ("survey", "plan", "control_line", "boundary", "plot") else None,
        code_field=opts.code_field,
        valid_codes=valid_codes,
        required_fields=tuple(opts.required_fields) + ((opts.code_field,) if opts.code_field else ()),
        sliver_area_m2=settings.sliver_area_m2,
    )


def _valid_codes(code_system: str | None) -> frozenset[str] | None:
    if not code_system:
        return None
    from yizhangtu.codes import load_table

    return load_table(code_system).valid_codes()


def _reference_boundary(store: Store) -> gpd.GeoDataFrame | None:
    for info in store.layers():
        if info.kind == "boundary" and info.current_snapshot is not None:
            return store.read_layer(info.name)
    return None


def _prepare(chunk: gpd.GeoDataFrame, target: CRS, mapping: dict[str, str]) -> gpd.GeoDataFrame:
    if mapping:
        chunk = chunk.rename(columns=mapping)
    if chunk.geometry.name != "geometry":
        chunk = chunk.rename_geometry("geometry")
    for reserved in ("fid", "OGC_FID", "geom"):
        if reserved in chunk.columns and reserved != chunk.geometry.name:
            chunk = chunk.rename(columns={reserved: f"src_{reserved.lower()}"})
    for c in chunk.columns:
        if c != "geometry" and pd.api.types.is_datetime64_any_dtype(chunk[c].dtype):
            chunk[c] = chunk[c].astype(str).where(chunk[c].notna(), None)
    if chunk.crs is not None and not CRS.from_user_input(chunk.crs).equals(target):
        src = CRS.from_user_input(chunk.crs)
        if src.is_geographic and target.is_geographic and src.ellipsoid and target.ellipsoid and abs(src.ellipsoid.semi_major_metre - target.ellipsoid.semi_major_metre) < 1e-6:
            # WGS84 ↔ CGCS2000 is a null transform in PROJ (sub-metre): relabel, don't resample
            chunk = chunk.set_crs(target, allow_override=True)
        else:
            chunk = chunk.to_crs(target)
    return chunk


def check_file(path: str | Path, *, kind: str = "other", options: ImportOptions | None = None, settings: Settings) -> tuple[Any, Any]:
    """QC a file without importing it; returns (read report, QC report)."""
    from yizhangtu.io import read_source
    from yizhangtu.qc import run_qc

    opts = options or ImportOptions()
    gdf, report = read_source(
        path, sublayer=opts.sublayer, encoding=opts.encoding, crs=opts.crs, x_field=opts.x_field,
        y_field=opts.y_field, wkt_field=opts.wkt_field, from_gcj02=opts.from_gcj02, from_bd09=opts.from_bd09,
    )
    if opts.field_mapping:
        gdf = gdf.rename(columns=opts.field_mapping)
    qc = run_qc(gdf, _qc_options(kind, opts, settings, _valid_codes(opts.code_system)), file=str(path))
    return report, qc


def import_file(
    store: Store,
    path: str | Path,
    spec: LayerSpec,
    *,
    label: str,
    options: ImportOptions | None = None,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
    qc_output: str | Path | None = None,
) -> ImportResult:
    """Read, check, normalise and store one file as a new snapshot of ``spec.name``.

    The snapshot becomes current only if everything succeeds; on any error the workspace is
    left as it was. QC errors refuse the import unless ``allow_qc_errors`` (recorded in the
    snapshot notes) or ``repair`` fixes them.
    """
    from yizhangtu.io import inspect_source, iter_source, read_source
    from yizhangtu.qc import repair, run_qc

    opts = options or ImportOptions()
    path = Path(path)
    read_kw: dict[str, Any] = dict(
        sublayer=opts.sublayer, encoding=opts.encoding, crs=opts.crs, x_field=opts.x_field,
        y_field=opts.y_field, wkt_field=opts.wkt_field,
    )
    report = inspect_source(path, **read_kw)
    warnings: list[str] = list(report.warnings)
    target = CRS.from_user_input(settings.storage_crs)
    valid_codes = _valid_codes(opts.code_system)
    qc_opts = _qc_options(spec.kind, opts, settings, valid_codes)
    offset = None

    if opts.offset_check and not (opts.from_gcj02 or opts.from_bd09) and spec.kind != "boundary":
        ref = _reference_boundary(store)
        if ref is not None:
            from yizhangtu.geo.offsets import detect_offset

            sample, _ = read_source(path, **read_kw) if report.feature_count <= 20_000 else (None, None)
            if sample is not None and len(sample):
                offset = detect_offset(sample.to_crs(4326), ref.to_crs(4326))
                if offset.kind != "none":
                    flag = "--from-gcj02" if offset.kind == "gcj02" else "--from-bd09"
                    raise InputError(
                        f"疑似{ 'GCJ-02 (火星坐标)' if offset.kind == 'gcj02' else 'BD-09 (百度坐标)'}偏移: {offset.message_zh}",
                        key=f"{offset.kind}_suspected",
                        file=str(path),
                        hint=f"确认后加 {flag} 转换为 CGCS2000; 若确属原始坐标, 加 --no-offset-check",
                        data={"overlap_raw": offset.overlap_raw, "overlap_if_gcj02": offset.overlap_if_gcj02, "overlap_if_bd09": offset.overlap_if_bd09},
                    )

    repairs: list[Any] = []
    qc_reports: list[Any] = []
    whole = report.feature_count <= _FULL_QC_LIMIT

    def _check(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        nonlocal repairs
        if opts.repair:
            gdf, changes = repair(gdf, id_field=opts.id_field)
            repairs.extend(changes)
        qc = run_qc(gdf, qc_opts, file=str(path))
        qc_reports.append(qc)
        if not qc.ok and not opts.allow_qc_errors:
            if qc_output is not None:
                _write_qc_layer(qc, gdf.crs, qc_output)
            raise QCError(
                f"质检未通过: {len(qc.errors)} 个错误 ({_counts_text(qc)}), 未导入任何要素",
                key="qc_failed",
                file=str(path),
                hint="查看质检报告; 几何问题可加 --repair 修复, 确需带错导入可加 --allow-qc-errors",
                data={"report": qc.to_dict()},
            )
        return gdf

    def chunks() -> Iterator[gpd.GeoDataFrame]:
        if whole:
            gdf, _ = read_source(path, **read_kw, from_gcj02=opts.from_gcj02, from_bd09=opts.from_bd09)
            if opts.field_mapping:
                gdf = gdf.rename(columns=opts.field_mapping)
            gdf = _check(gdf)
            yield _prepare(gdf, target, {})
            return
        _, it = iter_source(path, chunk_size=settings.import_chunk_size, **read_kw, from_gcj02=opts.from_gcj02, from_bd09=opts.from_bd09)
        for chunk in it:
            if opts.field_mapping:
                chunk = chunk.rename(columns=opts.field_mapping)
            yield _prepare(_check(chunk), target, {})

    total = report.feature_count
    notes = {
        "encoding": report.encoding,
        "encoding_source": report.encoding_source,
        "crs_source": report.crs_source,
        "driver": report.driver,
        "sublayer": report.sublayer,
        "qc_scope": "whole layer" if whole else f"per chunk of {settings.import_chunk_size} (cross-chunk overlaps not checked)",
        "from_gcj02": opts.from_gcj02,
        "from_bd09": opts.from_bd09,
    }
    from yizhangtu.store._frames import declared_geometry_type

    snap = store.write_snapshot(
        spec,
        chunks(),
        label=label,
        obs_date=normalise_obs_date(label),
        source_file=path.name,
        source_hash=report.source_hash,
        source_crs=report.crs,
        notes=notes | {"qc_errors": sum(len(q.errors) for q in qc_reports)},
        actor=settings.actor,
        geometry_type=declared_geometry_type(set(report.geometry_types)),
        progress=(lambda n: progress(n, total)) if progress else None,
    )
    qc_all = qc_reports[0] if len(qc_reports) == 1 else _merge_qc(qc_reports, str(path))
    if qc_output is not None and qc_all is not None:
        _write_qc_layer(qc_all, target, qc_output)
    return ImportResult(layer=spec.name, snapshot=snap, read_report=report, qc_report=qc_all, repairs=tuple(repairs), warnings=tuple(warnings), offset=offset)


def _counts_text(qc: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in qc.counts.items() if v)


def _merge_qc(reports: list[Any], file: str) -> Any:
    if not reports:
        return None
    from yizhangtu.qc import QCReport

    return QCReport.merge(reports, file=file)


def _write_qc_layer(qc: Any, crs: Any, out: str | Path) -> None:
    import pyogrio

    gdf = qc.to_geodataframe(crs)
    if len(gdf):
        pyogrio.write_dataframe(gdf, out, layer="qc_findings", driver="GPKG")


def layer_summary(store: Store) -> dict[str, Any]:
    """The ``layers --json`` object: each layer with name, kind, CRS, feature count and snapshots."""
    out = []
    for info in store.layers():
        snaps = store.snapshots(info.name)
        cur = next((s for s in snaps if s.id == info.current_snapshot), None)
        out.append(
            {
                "name": info.name,
                "kind": info.kind,
                "title": info.title,
                "crs": info.crs,
                "feature_count": cur.feature_count if cur else 0,
                "geometry_type": info.geometry_type,
                "code_system": info.code_system,
                "code_field": info.code_field,
                "id_field": info.id_field,
                "jurisdiction_field": info.jurisdiction_field,
                "synthetic": info.synthetic,
                "published": info.published,
                "current_snapshot": cur.label if cur else None,
                "snapshots": [
                    {"id": s.id, "label": s.label, "obs_date": s.obs_date, "feature_count": s.feature_count, "content_hash": s.content_hash, "created_at": s.created_at}
                    for s in snaps
                ],
            }
        )
    return {"workspace": store.uri, "backend": store.backend, "layers": out}


def export_layer(store: Store, layer: str, out: str | Path, *, fmt: str, as_of: str | None = None, snapshot: str | None = None) -> dict[str, Any]:
    """Write one snapshot to a file. Shapefiles are written in GBK with a ``.cpg``."""
    import pyogrio

    gdf = store.read_layer(layer, snapshot=snapshot, as_of=as_of)
    out = Path(out)
    fmt = fmt.lower()
    extra: dict[str, Any] = {}
    if fmt == "gpkg":
        pyogrio.write_dataframe(gdf, out, layer=layer, driver="GPKG")
    elif fmt == "geojson":
        pyogrio.write_dataframe(gdf.to_crs(4326) if gdf.crs and not gdf.crs.equals(CRS.from_epsg(4326)) else gdf, out, driver="GeoJSON", layer_options={"RFC7946": "YES"})
    elif fmt == "shp":
        gdf, renamed = _shapefile_field_names(gdf)
        pyogrio.write_dataframe(gdf, out, driver="ESRI Shapefile", encoding="GBK")
        out.with_suffix(".cpg").write_text("GBK", encoding="ascii")
        extra["renamed_fields"] = renamed
    elif fmt == "parquet":
        gdf.to_parquet(out)
    elif fmt == "csv":
        df = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]))
        df["wkt"] = gdf.geometry.to_wkt()
        df.to_csv(out, index=False, encoding="utf-8-sig")
    else:
        raise InputError(f"不支持的导出格式: {fmt}", key="bad_format", hint="可选: gpkg, geojson, shp, parquet, csv")
    return {"layer": layer, "snapshot": gdf.attrs.get("snapshot_id"), "features": len(gdf), "path": str(out), "format": fmt, **extra}


def _shapefile_field_names(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """Shorten field names to the DBF limit of 10 bytes (GBK), uniquely; return the renames."""
    renamed: dict[str, str] = {}
    used: set[str] = set()
    for c in gdf.columns:
        if c == gdf.geometry.name:
            continue
        name = c
        while len(name.encode("gbk", errors="replace")) > 10:
            name = name[:-1]
        base, i = name, 1
        while name.upper() in used:
            suffix = f"_{i}"
            name = base
            while len((name + suffix).encode("gbk", errors="replace")) > 10:
                name = name[:-1]
            name += suffix
            i += 1
        used.add(name.upper())
        if name != c:
            renamed[c] = name
    return (gdf.rename(columns=renamed) if renamed else gdf), renamed


def diff_layer(store: Store, layer: str, from_ref: str, to_ref: str, *, unit: str = "m2") -> tuple[dict[str, Any], gpd.GeoDataFrame]:
    """Diff two snapshots of a layer; returns (summary, changed features)."""
    from yizhangtu.diff import diff_frames

    info = store.layer(layer)
    a = store.resolve_snapshot(layer, from_ref)
    b = store.resolve_snapshot(layer, to_ref)
    old = store.read_layer(layer, snapshot=a.id)
    new = store.read_layer(layer, snapshot=b.id)
    id_field = info.id_field or next((c for c in ("BSM", "bsm", "id", "code") if c in old.columns and c in new.columns), None)
    res = diff_frames(old, new, id_field=id_field)
    summary = res.summary(unit) | {"layer": layer, "from": {"id": a.id, "label": a.label, "content_hash": a.content_hash}, "to": {"id": b.id, "label": b.label, "content_hash": b.content_hash}}
    summary["total_area_from"] = float(convert_area(ellipsoidal_area(old.geometry).sum(), unit))
    summary["total_area_to"] = float(convert_area(ellipsoidal_area(new.geometry).sum(), unit))
    return summary, res.features
