"""Conformance services: control lines, plan conflicts, red-line checks and plan transmission.

Thin adapters between the store and the pure core in :mod:`yizhangtu.conformance`: they read
layers (current snapshots), read red-line files (界址点 TXT, polygon files, zipped shapefiles),
call the core, record provenance for every result and write GeoPackage outputs.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from yizhangtu.conformance import (
    CompatibilityMatrix,
    ConflictResult,
    Elasticity,
    LineLayer,
    LineOverlapResult,
    PlanLayer,
    RedlineCheck,
    Tolerances,
    TransmissionResult,
    ZoneShareResult,
    check_redline,
    check_transmission,
    find_conflicts,
    jzd_to_frame,
    line_overlaps,
    line_types,
    load_hierarchy,
    load_matrix,
    parse_jzd,
    select_zone,
    summarise_by_unit,
    zone_shares,
)
from yizhangtu.conformance.jzd import XYOrder, declared_area_notes
from yizhangtu.errors import EncodingError, GeometryError, InputError, NotFoundError
from yizhangtu.geo.crs import crs_code
from yizhangtu.policy import PolicyPack, load_pack
from yizhangtu.provenance import InputRef
from yizhangtu.services.provenance import record_result, snapshot_ref
from yizhangtu.store import SnapshotInfo, Store

__all__ = [
    "AREA_UNITS",
    "DEFAULT_PACKS",
    "ConflictsOutcome",
    "LinesOutcome",
    "RedlineInput",
    "RedlineOutcome",
    "TransmissionOutcome",
    "check_redline_file",
    "check_redline_scoped",
    "conflicts_layers",
    "conflicts_report",
    "conflicts_report_job",
    "conformance_packs",
    "discover_lines",
    "lines_layers",
    "lines_report",
    "lines_report_job",
    "load_packs",
    "named_matrix",
    "named_packs",
    "read_redline_file",
    "redline_layers",
    "transmission_check",
    "transmission_report",
    "write_gpkg",
    "write_redline_report",
]

#: Packs used when the caller names none.
DEFAULT_PACKS = ("conformance-national", "conformance-beijing")
DEFAULT_ZONES_LAYER = "bj_zones"
DEFAULT_ZONE_FIELD = "zone"
DEFAULT_REGISTERED_LAYER = "redlines"


def load_packs(names: Sequence[str] | None = None) -> list[PolicyPack]:
    """Load packs by id or path (default :data:`DEFAULT_PACKS`)."""
    return [load_pack(n) for n in (names or DEFAULT_PACKS)]


def _read(store: Store, layer: str) -> tuple[gpd.GeoDataFrame, SnapshotInfo]:
    snap = store.resolve_snapshot(layer)
    return store.read_layer(layer, snapshot=snap.id), snap


def write_gpkg(path: str | Path, layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame]) -> Path:
    """Write result layers (and tables) to one GeoPackage, replacing the file.

    Empty layers are skipped; the file is written beside the target and renamed when complete.
    """
    import pyogrio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".partial.gpkg")
    tmp.unlink(missing_ok=True)
    written = 0
    try:
        for name, df in layers.items():
            if df is None or len(df) == 0:
                continue
            if isinstance(df, gpd.GeoDataFrame):
                pyogrio.write_dataframe(df, tmp, layer=name, driver="GPKG")
            else:
                pyogrio.write_dataframe(pd.DataFrame(df), tmp, layer=name, driver="GPKG")
            written += 1
        if written == 0:
            raise InputError(
                "没有可写出的结果 (所有结果图层均为空)", key="nothing_to_write", file=str(out)
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------- layers
def discover_lines(
    store: Store,
    explicit: Mapping[str, str] | None = None,
    *,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
) -> dict[str, str]:
    """Map line types to layer names.

    ``explicit`` entries when given (any layer kind), else the catalogue's conventional names
    found in the store among layers of kind ``control_line``.
    """
    infos = {li.name: li for li in store.layers()}
    names = set(infos)
    types = line_types()
    if explicit:
        for t, layer in explicit.items():
            if t not in types:
                from yizhangtu.conformance import line_type

                line_type(t)
            if layer not in names:
                raise NotFoundError(
                    f"工作空间中没有图层 {layer}",
                    key="layer_not_found",
                    hint="现有图层: " + ", ".join(sorted(names)),
                )
        return dict(explicit)
    out: dict[str, str] = {}
    zl = zones_layer or DEFAULT_ZONES_LAYER
    for t, lt in types.items():
        layer = zl if lt.zone_value is not None else lt.layer
        # found by name, the layer must also be declared a control line (kind control_line)
        if layer in names and infos[layer].kind == "control_line":
            out[t] = layer
    return out


def _line_frames(
    store: Store, mapping: Mapping[str, str], zone_field: str, inputs: dict[str, InputRef]
) -> dict[str, gpd.GeoDataFrame]:
    types = line_types()
    cache: dict[str, gpd.GeoDataFrame] = {}
    out: dict[str, gpd.GeoDataFrame] = {}
    for t, layer in mapping.items():
        if layer not in cache:
            gdf, snap = _read(store, layer)
            cache[layer] = gdf
            inputs[layer] = snapshot_ref(snap)
        out[t] = select_zone(cache[layer], types[t], zone_field).reset_index(drop=True)
    return out


@dataclass(frozen=True)
class LinesOutcome:
    """Result of :func:`lines_report`."""

    overlaps: LineOverlapResult
    zones: ZoneShareResult | None
    layers: Mapping[str, str]
    provenance_id: str
    tolerances: Tolerances

    def to_dict(self, unit: str = "ha") -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "layers": dict(self.layers),
            "line_areas": {
                k: v / {"m2": 1, "ha": 1e4, "km2": 1e6, "mu": 1e4 / 15}[unit]
                for k, v in self.overlaps.line_areas_m2.items()
            },
            "overlaps": self.overlaps.summary(unit),
            "ok": self.overlaps.ok,
            "findings": [f.to_dict() for f in self.overlaps.findings],
            "zones": self.zones.to_dict("km2" if unit in ("km2", "ha") else unit)
            if self.zones is not None
            else None,
            "tolerances": self.tolerances.to_dict(),
            "provenance_id": self.provenance_id,
            "area_unit": unit,
        }


def lines_report(
    store: Store,
    *,
    lines: Mapping[str, str] | None = None,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
    units_layer: str | None = None,
    unit_field: str = "code",
    unit_name_field: str | None = "name",
    scope: str = "合计",
    packs: Sequence[PolicyPack] | None = None,
    at: date | None = None,
    actor: str = "unknown",
    workers: int | None = 1,
) -> LinesOutcome:
    """Overlaps among the national control lines and zone shares by jurisdiction.

    Parameters
    ----------
    lines : mapping, optional
        Line type → layer; default the catalogue's conventional names found in the store.
    zones_layer, zone_field : str
        The 两线三区 zones layer (default ``bj_zones``) and its zone field.
    units_layer : str, optional
        Jurisdictions for zone shares (e.g. ``fangshan_streets``); no shares without it.
    """
    packs = list(packs or load_packs())
    at = at or date.today()
    tol = Tolerances.from_packs(packs)
    mapping = discover_lines(store, lines, zones_layer=zones_layer, zone_field=zone_field)
    inputs: dict[str, InputRef] = {}
    frames = _line_frames(
        store, {t: la for t, la in mapping.items() if line_types()[t].national}, zone_field, inputs
    )
    if len(frames) < 2:
        raise NotFoundError(
            "工作空间中的三条控制线图层不足两种, 无法检查相互重叠",
            key="control_lines_missing",
            hint=(
                "导入 eco_redline (生态保护红线)、basic_farmland (永久基本农田)、"
                "urban_boundary (城镇开发边界), 类型 control_line; 或用 --line 类型=图层 指定"
            ),
            data={"found": dict(mapping)},
        )
    overlaps = line_overlaps(frames, tol=tol, packs=packs, at=at, workers=workers)
    zones = None
    zl = zones_layer or DEFAULT_ZONES_LAYER
    if units_layer is not None:
        zgdf, zsnap = _read(store, zl)
        units, usnap = _read(store, units_layer)
        inputs[zl] = snapshot_ref(zsnap)
        inputs[units_layer] = snapshot_ref(usnap)
        zones = zone_shares(
            zgdf,
            units,
            zone_field=zone_field,
            unit_field=unit_field,
            unit_name_field=unit_name_field,
            packs=packs,
            at=at,
            scope=scope,
            workers=workers,
        )
    out_pre = LinesOutcome(
        overlaps=overlaps, zones=zones, layers=mapping, provenance_id="", tolerances=tol
    )
    rec = record_result(
        store,
        "conformance.lines",
        inputs=list(inputs.values()),
        params={
            "layers": dict(mapping),
            "zones_layer": zl if units_layer else None,
            "units_layer": units_layer,
            "zone_field": zone_field,
            "at": at.isoformat(),
            "packs": [p.ref() for p in packs],
        },
        policy=packs[0].ref(),
        result=out_pre.to_dict("m2"),
        actor=actor,
    )
    return LinesOutcome(
        overlaps=overlaps, zones=zones, layers=mapping, provenance_id=rec.id, tolerances=tol
    )


# ---------------------------------------------------------------------------- conflicts
@dataclass(frozen=True)
class ConflictsOutcome:
    """Result of :func:`conflicts_report`."""

    result: ConflictResult
    by_unit: pd.DataFrame | None
    left_layer: str
    right_layer: str
    provenance_id: str

    def to_dict(self, unit: str = "ha") -> dict[str, Any]:
        """JSON-ready dict."""
        from yizhangtu.geo.area import convert_area

        d = self.result.summary(unit)
        d["left_layer"] = self.left_layer
        d["right_layer"] = self.right_layer
        if self.by_unit is not None:
            d["by_unit"] = [
                {
                    "unit": r["unit"],
                    "unit_name": r["unit_name"],
                    "type": r["conflict_type"],
                    "label": r["conflict_label"],
                    "area": float(convert_area(float(r["area_m2"]), unit)),
                    "share": float(r["share"]),
                }
                for r in self.by_unit.to_dict("records")
            ]
        d["provenance_id"] = self.provenance_id
        return d


def conflicts_report(
    store: Store,
    left_layer: str,
    right_layer: str,
    *,
    matrix: str | CompatibilityMatrix,
    left_field: str | None = None,
    right_field: str | None = None,
    units_layer: str | None = None,
    unit_field: str = "code",
    unit_name_field: str | None = "name",
    packs: Sequence[PolicyPack] | None = None,
    actor: str = "unknown",
    workers: int | None = 1,
) -> ConflictsOutcome:
    """Conflict patches between two layers of the store under a compatibility matrix.

    The class fields default to the matrix sides' ``field``, then to the layers' ``code_field``.
    """
    packs = list(packs or load_packs())
    tol = Tolerances.from_packs(packs)
    m = matrix if isinstance(matrix, CompatibilityMatrix) else load_matrix(matrix)
    left, lsnap = _read(store, left_layer)
    right, rsnap = _read(store, right_layer)
    lf = left_field or (
        m.left.field if m.left.field in left.columns else store.layer(left_layer).code_field
    )
    rf = right_field or (
        m.right.field if m.right.field in right.columns else store.layer(right_layer).code_field
    )
    res = find_conflicts(left, right, m, tol=tol, left_field=lf, right_field=rf, workers=workers)
    inputs = [snapshot_ref(lsnap), snapshot_ref(rsnap)]
    by_unit = None
    if units_layer is not None:
        units, usnap = _read(store, units_layer)
        inputs.append(snapshot_ref(usnap))
        by_unit = summarise_by_unit(
            res,
            units,
            unit_field=unit_field,
            unit_name_field=unit_name_field,
            min_area_m2=tol.sliver_area_m2,
            workers=workers,
        )
    pre = ConflictsOutcome(
        result=res,
        by_unit=by_unit,
        left_layer=left_layer,
        right_layer=right_layer,
        provenance_id="",
    )
    rec = record_result(
        store,
        "conformance.conflicts",
        inputs=inputs,
        params={
            "matrix": m.ref(),
            "left_field": lf,
            "right_field": rf,
            "units_layer": units_layer,
            "packs": [p.ref() for p in packs],
            "tolerances": tol.to_dict(),
        },
        policy=packs[0].ref(),
        result=pre.to_dict("m2"),
        actor=actor,
    )
    return ConflictsOutcome(
        result=res,
        by_unit=by_unit,
        left_layer=left_layer,
        right_layer=right_layer,
        provenance_id=rec.id,
    )


# ---------------------------------------------------------------------------- red line
@dataclass(frozen=True)
class RedlineInput:
    """A red line read from a file, in the storage CRS."""

    gdf: gpd.GeoDataFrame
    file: str
    format: str
    source_crs: str
    source_hash: str
    id_field: str | None
    name_field: str | None
    notes: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


def _decode(data: bytes, file: str, encoding: str | None) -> str:
    if encoding:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise EncodingError(
                f"无法按 {encoding} 解码界址点文件: {exc}", key="jzd_encoding", file=file
            ) from None
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise EncodingError(
        "界址点文件既不是 UTF-8 也不是 GBK/GB18030 编码",
        key="jzd_encoding",
        file=file,
        hint="用 --encoding 指定编码",
    )


def read_redline_file(
    path: str | Path,
    *,
    target_crs: str = "EPSG:4490",
    crs: str | None = None,
    xy_order: XYOrder = "ne",
    encoding: str | None = None,
    id_field: str | None = None,
    name_field: str | None = None,
) -> RedlineInput:
    """Read a red line: 界址点 TXT (``.txt``/``.jzd``) or a polygon file.

    Polygon files are anything ``read_source`` reads (shp, zipped shp, gpkg, geojson …).

    The red line is reprojected to ``target_crs`` with a note; a CRS that cannot be determined is
    refused (CRSError from the reader).
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"找不到红线文件 {p}", key="file_not_found", file=str(p))
    data = p.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    notes: list[str] = []
    target = CRS.from_user_input(target_crs)
    text = _decode(data, p.name, encoding) if p.suffix.lower() in (".txt", ".jzd") else None
    if text is not None:
        jzd = parse_jzd(text, file=p.name, crs=crs, xy_order=xy_order)
        gdf = jzd_to_frame(jzd, file=p.name)
        notes.extend(jzd.notes)
        notes.extend(declared_area_notes(gdf))
        fmt, src_crs, attrs = "jzd", jzd.crs_code, dict(jzd.attributes)
        id_field, name_field = id_field or "parcel_id", name_field or "name"
    else:
        from yizhangtu.io import read_source

        gdf, report = read_source(p, crs=crs, encoding=encoding)
        notes.extend(report.warnings)
        fmt, src_crs, attrs = str(report.driver or p.suffix.lstrip(".")), str(report.crs), {}
        bad = [
            str(i)
            for i, t in zip(gdf.index, gdf.geometry.geom_type, strict=True)
            if t not in ("Polygon", "MultiPolygon")
        ]
        if bad:
            raise GeometryError(
                f"红线须为面要素, 第 {', '.join(bad[:10])} 个要素不是面",
                key="redline_not_polygon",
                file=p.name,
                feature=bad[0],
                hint="红线文件只应包含地块面",
            )
        if id_field is None:
            id_field = next(
                (
                    c
                    for c in ("parcel_id", "地块编号", "DKBH", "dkbh", "BSM", "id", "code")
                    if c in gdf.columns
                ),
                None,
            )
        if name_field is None:
            name_field = next(
                (
                    c
                    for c in ("name", "地块名称", "DKMC", "dkmc", "XMMC", "项目名称")
                    if c in gdf.columns
                ),
                None,
            )
    if len(gdf) == 0:
        raise InputError("红线文件中没有地块", key="redline_empty", file=p.name)
    src = CRS.from_user_input(gdf.crs)
    if not src.equals(target):
        notes.append(
            f"红线坐标系 {crs_code(src) if src.to_epsg() else src.name} "
            f"已转换为存储坐标系 {crs_code(target)}"
        )
        gdf = gdf.to_crs(target)
    return RedlineInput(
        gdf=gdf,
        file=p.name,
        format=fmt,
        source_crs=src_crs if src.to_epsg() else src.name,
        source_hash=digest,
        id_field=id_field,
        name_field=name_field,
        notes=tuple(notes),
        attributes=attrs,
    )


@dataclass(frozen=True)
class RedlineOutcome:
    """Result of :func:`check_redline_file`."""

    check: RedlineCheck
    input: RedlineInput
    lines: Mapping[str, str]
    plans: tuple[str, ...]
    registered_layer: str | None
    provenance_id: str
    packs: tuple[Mapping[str, str], ...]
    synthetic_inputs: tuple[str, ...] = ()
    frames: Mapping[str, gpd.GeoDataFrame] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self, unit: str = "m2") -> dict[str, Any]:
        """JSON-ready dict."""
        d = self.check.to_dict(unit)
        d["file"] = self.input.file
        d["format"] = self.input.format
        d["source_crs"] = self.input.source_crs
        d["source_hash"] = self.input.source_hash
        d["notes"] = list(self.input.notes)
        d["layers"] = {
            "lines": dict(self.lines),
            "plans": list(self.plans),
            "registered": self.registered_layer,
        }
        d["packs"] = [dict(p) for p in self.packs]
        d["synthetic_inputs"] = list(self.synthetic_inputs)
        d["provenance_id"] = self.provenance_id
        return d


def _plan_layers(store: Store, names: Sequence[str] | None) -> list[tuple[str, str | None]]:
    """List (layer, class field) pairs of the plan layers to check.

    ``names`` entries are ``layer`` or ``layer:field``; default: every plan layer with a code field.
    """
    if names:
        out = []
        for n in names:
            layer, _, fld = n.partition(":")
            info = store.layer(layer)
            out.append((layer, fld or info.code_field))
        return out
    return [
        (li.name, li.code_field)
        for li in store.layers()
        if li.kind == "plan" and li.code_field and li.current_snapshot is not None
    ]


def check_redline_file(
    store: Store,
    path: str | Path,
    *,
    lines: Mapping[str, str] | None = None,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
    plans: Sequence[str] | None = None,
    registered_layer: str | None = None,
    registered_id_field: str | None = None,
    crs: str | None = None,
    xy_order: XYOrder = "ne",
    encoding: str | None = None,
    id_field: str | None = None,
    packs: Sequence[PolicyPack] | None = None,
    at: date | None = None,
    target_crs: str = "EPSG:4490",
    actor: str = "unknown",
    workers: int | None = 1,
) -> RedlineOutcome:
    """Read a red-line file and check it against the control lines, zones and plans of the store.

    ``registered_layer`` defaults to ``redlines`` when the store has it; its id field defaults to
    the layer's ``id_field``.
    """
    packs = list(packs or load_packs())
    at = at or date.today()
    tol = Tolerances.from_packs(packs)
    ri = read_redline_file(
        path,
        target_crs=target_crs,
        crs=crs,
        xy_order=xy_order,
        encoding=encoding,
        id_field=id_field,
    )
    inputs: dict[str, InputRef] = {}
    mapping = discover_lines(store, lines, zones_layer=zones_layer, zone_field=zone_field)
    frames = _line_frames(store, mapping, zone_field, inputs)
    synthetic = [
        li.name for li in store.layers() if li.synthetic and (li.name in set(mapping.values()))
    ]
    types = line_types()
    line_layers = [
        LineLayer(type_id=t, gdf=g, title=types[t].title, layer=mapping[t])
        for t, g in frames.items()
    ]
    plan_layers: list[PlanLayer] = []
    for layer, fld in _plan_layers(store, plans):
        gdf, snap = _read(store, layer)
        info = store.layer(layer)
        inputs[layer] = snapshot_ref(snap)
        if info.synthetic:
            synthetic.append(layer)
        if not fld:
            raise InputError(
                f"规划图层 {layer} 没有登记地类字段",
                key="plan_field_missing",
                hint=f"用 --plan {layer}:字段名 指定",
            )
        plan_layers.append(
            PlanLayer(
                name=layer,
                title=info.title or layer,
                gdf=gdf,
                class_field=fld,
                code_system=info.code_system,
            )
        )
    names = {li.name: li for li in store.layers()}
    reg_layer = registered_layer or (
        DEFAULT_REGISTERED_LAYER if DEFAULT_REGISTERED_LAYER in names else None
    )
    if not mapping and not plan_layers and reg_layer is None:
        raise NotFoundError(
            "工作空间中没有可供审查的管控线、规划或登记红线图层, 审查没有依据",
            key="nothing_to_check",
            hint="导入 eco_redline、basic_farmland、urban_boundary 等管控线 (类型 control_line) "
            "或带地类字段的规划图层 (类型 plan); 或用 --line、--plan、--registered 指定",
        )
    registered = None
    reg_field = registered_id_field
    if reg_layer is not None:
        registered, rsnap = _read(store, reg_layer)
        inputs[reg_layer] = snapshot_ref(rsnap)
        reg_field = (
            reg_field
            or names[reg_layer].id_field
            or ("parcel_id" if "parcel_id" in registered.columns else None)
        )
        if names[reg_layer].synthetic:
            synthetic.append(reg_layer)
    check = check_redline(
        ri.gdf,
        lines=line_layers,
        plans=plan_layers,
        registered=registered,
        registered_id_field=reg_field,
        id_field=ri.id_field,
        name_field=ri.name_field,
        packs=packs,
        tol=tol,
        at=at,
        workers=workers,
    )
    file_ref = InputRef(
        kind="file",
        name=ri.file,
        content_hash=ri.source_hash,
        source_file=ri.file,
        source_hash=ri.source_hash,
    )
    pre = RedlineOutcome(
        check=check,
        input=ri,
        lines=mapping,
        plans=tuple(p.name for p in plan_layers),
        registered_layer=reg_layer,
        provenance_id="",
        packs=tuple(p.ref() for p in packs),
        synthetic_inputs=tuple(dict.fromkeys(synthetic)),
    )
    rec = record_result(
        store,
        "conformance.redline_check",
        inputs=[file_ref, *inputs.values()],
        params={
            "lines": dict(mapping),
            "plans": list(pre.plans),
            "registered": reg_layer,
            "crs": crs,
            "xy_order": xy_order,
            "at": at.isoformat(),
            "packs": [p.ref() for p in packs],
        },
        policy=packs[0].ref(),
        result=pre.to_dict("m2"),
        actor=actor,
    )
    return RedlineOutcome(
        check=check,
        input=ri,
        lines=mapping,
        plans=pre.plans,
        registered_layer=reg_layer,
        provenance_id=rec.id,
        packs=pre.packs,
        synthetic_inputs=pre.synthetic_inputs,
        frames=frames,
    )


# ---------------------------------------------------------------------------- transmission
@dataclass(frozen=True)
class TransmissionOutcome:
    """Result of :func:`transmission_report`."""

    result: TransmissionResult
    provenance_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return self.result.to_dict() | {"provenance_id": self.provenance_id}


def transmission_report(
    hierarchy: str,
    *,
    elasticity_pack: str | None = None,
    packs: Sequence[PolicyPack] | None = None,
    at: date | None = None,
    store: Store | None = None,
    actor: str = "unknown",
) -> TransmissionOutcome:
    """Check a plan hierarchy (shipped id or YAML path) within the elasticity of its pack.

    The elasticity pack is ``elasticity_pack``, else the hierarchy's ``elasticity_pack``. When a
    store is given, the result's provenance is recorded there.
    """
    h = load_hierarchy(hierarchy)
    name = elasticity_pack or h.elasticity_pack
    if not name:
        raise InputError(
            "未指定弹性所在的政策包",
            key="elasticity_pack_missing",
            hint="用 --elasticity-pack 指定, 如 dongguan-2023 (10%, 004 (四))",
        )
    epack = load_pack(name)
    packs = list(packs or load_packs(["conformance-national"]))
    res = check_transmission(
        h, elasticity=Elasticity.from_pack(epack), packs=packs, at=at or date.today()
    )
    rid = None
    if store is not None:
        rec = record_result(
            store,
            "conformance.transmission",
            inputs=[InputRef(kind="file", name=h.source, content_hash=h.hash)],
            params={
                "hierarchy": h.id,
                "elasticity_pack": epack.ref(),
                "packs": [p.ref() for p in packs],
            },
            policy=epack.ref(),
            result=res.to_dict(),
            actor=actor,
        )
        rid = rec.id
    return TransmissionOutcome(result=res, provenance_id=rid)


# ---------------------------------------------------------------------------- web adapters
# Helpers for the REST API (yizhangtu.web.routers.conformance): named policy material only (no
# file paths from a request), the layers each computation reads (checked whole-layer-visible to
# the user before and again inside the job), background jobs writing GeoPackage reports, the
# red-line one-pager as a report, and plan transmission over an inline hierarchy.

#: Area units accepted by the adapters.
AREA_UNITS = ("m2", "ha", "km2", "mu")
#: Progress callback of a job: ``progress(fraction, message)``.
ProgressFn = Callable[[float, str], None]
_ELASTICITY_PARAM = "transmission_elasticity"


@functools.lru_cache(maxsize=1)
def _shipped_packs() -> tuple[tuple[PolicyPack, tuple[str, ...]], ...]:
    """Shipped packs usable here with their roles, loaded once (packaged files do not change)."""
    from yizhangtu.policy import list_packs

    out = []
    for s in list_packs():
        pack = load_pack(s.id)
        roles = (("rules",) if pack.module == "conformance" else ()) + (
            ("elasticity",) if _ELASTICITY_PARAM in pack.parameters else ()
        )
        if roles:
            out.append((pack, roles))
    return tuple(out)


def conformance_packs() -> list[dict[str, Any]]:
    """Shipped packs usable here: ``conformance`` packs and packs giving a transmission elasticity.

    Each entry is the pack summary plus ``roles`` (``rules``: verdicts and tolerances,
    ``elasticity``: may be named as ``elasticity_pack``) and its parameters.
    """
    out = []
    for pack, roles in _shipped_packs():
        d = pack.summary() | {"roles": list(roles), "default": pack.id in DEFAULT_PACKS}
        d.pop("path", None)
        d["parameters"] = [p.to_dict() for p in pack.parameters.values()]
        out.append(d)
    return out


def _named_pack(name: str, role: str) -> PolicyPack:
    """Load a shipped pack by id if it has ``role``; InputError otherwise (never a path)."""
    allowed = {pack.id: pack for pack, roles in _shipped_packs() if role in roles}
    if name not in allowed:
        raise InputError(
            f"政策包 {name} 不可用于{'合规审查' if role == 'rules' else '传导弹性'}",
            key="policy_not_allowed",
            field="packs" if role == "rules" else "elasticity_pack",
            hint="可选: " + ", ".join(sorted(allowed)),
        )
    return allowed[name]


def named_packs(
    names: Sequence[str] | None, default: Sequence[str] = DEFAULT_PACKS
) -> list[PolicyPack]:
    """Conformance packs by id (default :data:`DEFAULT_PACKS`); ids only, never paths."""
    return [_named_pack(n, "rules") for n in (names or default)]


def named_matrix(name: str) -> CompatibilityMatrix:
    """Load a shipped compatibility matrix by id (never a path)."""
    from yizhangtu.conformance import list_matrices

    ids = [m["id"] for m in list_matrices()]
    if name not in ids:
        raise NotFoundError(
            f"没有名为 {name} 的冲突矩阵",
            key="matrix_not_found",
            field="matrix",
            hint="可选: " + ", ".join(ids),
        )
    return load_matrix(name)


def _area_unit(unit: str) -> str:
    if unit not in AREA_UNITS:
        raise InputError(
            f"未知的面积单位: {unit}",
            key="unknown_area_unit",
            field="area_unit",
            hint="可选: " + ", ".join(AREA_UNITS),
        )
    return unit


def _require_field(store: Store, layer: str, name: str | None, what: str, param: str) -> None:
    cols = {c for c, _ in store.feature_schema(layer)}
    if not name or name not in cols:
        raise InputError(
            f"图层 {layer} 没有{what}字段 {name or '(未指定)'}",
            key="field_missing",
            field=param,
            hint="现有字段: " + ", ".join(sorted(cols)[:40]),
        )


def lines_layers(
    store: Store,
    *,
    lines: Mapping[str, str] | None = None,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
    units_layer: str | None = None,
    unit_field: str = "code",
) -> list[str]:
    """Layers :func:`lines_report` would read with these arguments, after checking its fields.

    Raises the same NotFoundError as :func:`lines_report` when fewer than two national
    control lines are found, so a request is refused before any job starts.
    """
    mapping = discover_lines(store, lines, zones_layer=zones_layer, zone_field=zone_field)
    types = line_types()
    national = {t: la for t, la in mapping.items() if types[t].national}
    if len(national) < 2:
        raise NotFoundError(
            "工作空间中的三条控制线图层不足两种, 无法检查相互重叠",
            key="control_lines_missing",
            field="lines",
            hint="导入 eco_redline、basic_farmland、urban_boundary (类型 control_line), "
            "或在 lines 中指定 类型→图层",
            data={"found": dict(mapping)},
        )
    out = list(dict.fromkeys(national.values()))
    if units_layer is not None:
        zl = zones_layer or DEFAULT_ZONES_LAYER
        store.resolve_snapshot(zl)
        store.resolve_snapshot(units_layer)
        _require_field(store, zl, zone_field, "分区", "zone_field")
        _require_field(store, units_layer, unit_field, "单元编号", "unit_field")
        out += [zl, units_layer]
    return list(dict.fromkeys(out))


def conflicts_layers(
    store: Store,
    left_layer: str,
    right_layer: str,
    *,
    matrix: str | CompatibilityMatrix,
    left_field: str | None = None,
    right_field: str | None = None,
    units_layer: str | None = None,
    unit_field: str = "code",
) -> list[str]:
    """Layers :func:`conflicts_report` would read, after checking the class and unit fields."""
    m = matrix if isinstance(matrix, CompatibilityMatrix) else named_matrix(matrix)
    for layer, given, side, param in (
        (left_layer, left_field, m.left, "left_field"),
        (right_layer, right_field, m.right, "right_field"),
    ):
        store.resolve_snapshot(layer)
        cols = {c for c, _ in store.feature_schema(layer)}
        fld = given or (side.field if side.field in cols else store.layer(layer).code_field)
        _require_field(store, layer, fld, f"分类 ({side.name}) ", param)
    out = [left_layer, right_layer]
    if units_layer is not None:
        store.resolve_snapshot(units_layer)
        _require_field(store, units_layer, unit_field, "单元编号", "unit_field")
        out.append(units_layer)
    return list(dict.fromkeys(out))


def redline_layers(
    store: Store,
    *,
    lines: Mapping[str, str] | None = None,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
    plans: Sequence[str] | None = None,
    registered_layer: str | None = None,
) -> list[str]:
    """Layers :func:`check_redline_file` would read, after checking zone and plan fields.

    Refuses (``nothing_to_check``) when there is nothing to check the red line against.
    """
    mapping = discover_lines(store, lines, zones_layer=zones_layer, zone_field=zone_field)
    types = line_types()
    for t, layer in mapping.items():
        if types[t].zone_value is not None:
            _require_field(store, layer, zone_field, "分区", "zone_field")
    out = list(mapping.values())
    for layer, fld in _plan_layers(store, plans):
        store.resolve_snapshot(layer)
        _require_field(store, layer, fld, "地类", "plans")
        out.append(layer)
    names = {li.name for li in store.layers()}
    reg = registered_layer or (
        DEFAULT_REGISTERED_LAYER if DEFAULT_REGISTERED_LAYER in names else None
    )
    if reg is not None:
        store.resolve_snapshot(reg)
        out.append(reg)
    if not out:
        raise NotFoundError(
            "工作空间中没有可供审查的管控线、规划或登记红线图层, 审查没有依据",
            key="nothing_to_check",
            hint="导入 eco_redline、basic_farmland、urban_boundary 等管控线 (类型 control_line) "
            "或带地类字段的规划图层 (类型 plan); 或指定 lines、plans、registered_layer",
        )
    return list(dict.fromkeys(out))


def _report_file(reports_dir: Path, kind: str, ext: str) -> Path:
    from datetime import UTC, datetime
    from uuid import uuid4

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    reports_dir.mkdir(parents=True, exist_ok=True)
    return reports_dir / f"{kind}_{stamp}_{uuid4().hex[:6]}{ext}"


def _publish_report(
    tmp: Path,
    final: Path,
    *,
    kind: str,
    title: str,
    scope: Any,
    synthetic: bool,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the sidecar, then move the finished file into view; returns its download entry."""
    from yizhangtu.services.jobs import write_report_meta

    write_report_meta(
        final, kind=kind, title=title, scope=scope, synthetic=synthetic, extra=dict(extra)
    )
    tmp.replace(final)
    return {
        "report": final.name,
        "url": f"/api/reports/{final.name}",
        "bytes": final.stat().st_size,
    }


def _synthetic(store: Store, layers: Sequence[str]) -> bool:
    return any(store.layer(n).synthetic for n in layers)


def lines_report_job(
    uri: str, scope: Any, reports_dir: Path, params: Mapping[str, Any]
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job running :func:`lines_report` into a GeoPackage report.

    ``params``: ``lines``, ``zones_layer``, ``zone_field``, ``units_layer``, ``unit_field``,
    ``unit_name_field``, ``scope_name``, ``packs`` (ids), ``at`` (ISO day), ``area_unit``.
    Every layer read must be whole-layer-visible to ``scope`` (checked again in the job).
    """
    from yizhangtu.services.features import json_ready
    from yizhangtu.services.jobs import check_whole_layers, open_worker_store

    unit = _area_unit(str(params.get("area_unit") or "ha"))
    packs = named_packs(params.get("packs"))
    at = date.fromisoformat(params["at"]) if params.get("at") else date.today()
    sel: dict[str, Any] = {
        "lines": params.get("lines") or None,
        "zones_layer": params.get("zones_layer"),
        "zone_field": params.get("zone_field") or DEFAULT_ZONE_FIELD,
        "units_layer": params.get("units_layer"),
        "unit_field": params.get("unit_field") or "code",
    }

    def run(progress: ProgressFn) -> dict[str, Any]:
        store = open_worker_store(uri)
        try:
            progress(0.05, "检查图层与权限")
            layers = lines_layers(store, **sel)
            check_whole_layers(store, scope, *layers)
            progress(0.15, "叠加三条控制线")
            res = lines_report(
                store,
                **sel,
                unit_name_field=params.get("unit_name_field", "name"),
                scope=params.get("scope_name") or "合计",
                packs=packs,
                at=at,
                actor=str(scope.username),
            )
            synthetic = _synthetic(store, layers)
        finally:
            store.close()
        progress(0.8, "写入 GeoPackage")
        out: dict[str, Any] = {
            "line_overlap_pairs": pd.DataFrame(res.overlaps.summary("m2")),
            "line_overlaps": res.overlaps.patches,
            "line_overlap_slivers": res.overlaps.slivers,
        }
        if res.zones is not None:
            out["zone_shares"] = res.zones.rows
            out["zone_totals"] = res.zones.totals
        final = _report_file(reports_dir, "conformance_lines", ".gpkg")
        tmp = final.with_name("." + final.name)
        try:
            write_gpkg(tmp, out)
            title = "三条控制线重叠检查" + (" (合成数据)" if synthetic else "")
            entry = _publish_report(
                tmp,
                final,
                kind="conformance_lines",
                title=title,
                scope=scope,
                synthetic=synthetic,
                extra={"provenance_id": res.provenance_id, "layers": layers},
            )
        finally:
            tmp.unlink(missing_ok=True)
        return entry | {"synthetic": synthetic, "result": json_ready(res.to_dict(unit))}

    return run


def conflicts_report_job(
    uri: str, scope: Any, reports_dir: Path, params: Mapping[str, Any]
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job running :func:`conflicts_report` into a GeoPackage report.

    ``params``: ``left_layer``, ``right_layer``, ``matrix`` (shipped id), ``left_field``,
    ``right_field``, ``units_layer``, ``unit_field``, ``unit_name_field``, ``packs``,
    ``area_unit``. Every layer read must be whole-layer-visible to ``scope``.
    """
    from yizhangtu.services.features import json_ready
    from yizhangtu.services.jobs import check_whole_layers, open_worker_store

    unit = _area_unit(str(params.get("area_unit") or "ha"))
    packs = named_packs(params.get("packs"))
    matrix = named_matrix(str(params["matrix"]))
    left, right = str(params["left_layer"]), str(params["right_layer"])
    sel: dict[str, Any] = {
        "matrix": matrix,
        "left_field": params.get("left_field"),
        "right_field": params.get("right_field"),
        "units_layer": params.get("units_layer"),
        "unit_field": params.get("unit_field") or "code",
    }

    def run(progress: ProgressFn) -> dict[str, Any]:
        store = open_worker_store(uri)
        try:
            progress(0.05, "检查图层与权限")
            layers = conflicts_layers(store, left, right, **sel)
            check_whole_layers(store, scope, *layers)
            progress(0.15, "按冲突矩阵叠加")
            res = conflicts_report(
                store,
                left,
                right,
                **sel,
                unit_name_field=params.get("unit_name_field", "name"),
                packs=packs,
                actor=str(scope.username),
            )
            synthetic = _synthetic(store, layers)
        finally:
            store.close()
        progress(0.8, "写入 GeoPackage")
        out: dict[str, Any] = {
            "conflicts_by_type": res.result.by_type,
            "conflicts": res.result.patches,
            "conflict_slivers": res.result.slivers,
        }
        if res.by_unit is not None:
            out["conflicts_by_unit"] = res.by_unit
        final = _report_file(reports_dir, f"conformance_conflicts_{left}_{right}", ".gpkg")
        tmp = final.with_name("." + final.name)
        try:
            write_gpkg(tmp, out)
            title = f"规划冲突 {left} × {right} ({matrix.title})" + (
                " (合成数据)" if synthetic else ""
            )
            entry = _publish_report(
                tmp,
                final,
                kind="conformance_conflicts",
                title=title,
                scope=scope,
                synthetic=synthetic,
                extra={"provenance_id": res.provenance_id, "layers": layers},
            )
        finally:
            tmp.unlink(missing_ok=True)
        return entry | {"synthetic": synthetic, "result": json_ready(res.to_dict(unit))}

    return run


def check_redline_scoped(
    store: Store,
    scope: Any,
    path: str | Path,
    *,
    lines: Mapping[str, str] | None = None,
    zones_layer: str | None = None,
    zone_field: str = DEFAULT_ZONE_FIELD,
    plans: Sequence[str] | None = None,
    registered_layer: str | None = None,
    registered_id_field: str | None = None,
    packs: Sequence[str] | None = None,
    **kw: Any,
) -> RedlineOutcome:
    """:func:`check_redline_file` for a user: every layer it reads must be whole-layer-visible.

    ``packs`` are shipped conformance pack ids; ``kw`` go to :func:`check_redline_file`
    (``crs``, ``xy_order``, ``encoding``, ``id_field``, ``at``, ``target_crs``).
    """
    from yizhangtu.services.jobs import check_whole_layers

    layers = redline_layers(
        store,
        lines=lines,
        zones_layer=zones_layer,
        zone_field=zone_field,
        plans=plans,
        registered_layer=registered_layer,
    )
    check_whole_layers(store, scope, *layers)
    rule_packs = named_packs(packs)
    import pyproj.exceptions

    try:
        return check_redline_file(
            store,
            path,
            lines=lines,
            zones_layer=zones_layer,
            zone_field=zone_field,
            plans=plans,
            registered_layer=registered_layer,
            registered_id_field=registered_id_field,
            packs=rule_packs,
            actor=str(scope.username),
            **kw,
        )
    except pyproj.exceptions.CRSError:
        # coordinates that make no sense in the declared or given CRS (e.g. 界址点 in metres
        # read as degrees) fail when areas are computed
        from yizhangtu.errors import CRSError

        raise CRSError(
            "红线坐标与坐标系"
            + (f" {kw['crs']} " if kw.get("crs") else "")
            + "不符 (坐标超出该坐标系的有效范围), 无法换算面积",
            key="redline_crs_mismatch",
            file=Path(path).name,
            field="crs",
            hint="界址点坐标为投影坐标 (米); 核对坐标系与带号 (如 EPSG:4527 为带号 39 的 3 度带)",
        ) from None


def write_redline_report(
    outcome: RedlineOutcome, reports_dir: Path, scope: Any, fmt: str, *, unit: str = "m2"
) -> dict[str, Any]:
    """Write the red-line one-pager (``html`` or ``pdf``) as a report of ``scope``."""
    from yizhangtu.reports.redline import render_redline

    if fmt not in ("html", "pdf"):
        raise InputError(
            f"不支持的报告格式: {fmt}", key="report_format", field="report", hint="可选 html 或 pdf"
        )
    final = _report_file(reports_dir, "conformance_redline", "." + fmt)
    tmp = final.with_name("." + final.name + ".tmp")
    synthetic = bool(outcome.synthetic_inputs)
    try:
        render_redline(outcome, tmp, format=fmt, unit=_area_unit(unit))  # type: ignore[arg-type]
        title = f"红线合规性审查 {outcome.input.file}: {outcome.check.verdict}" + (
            " (合成数据)" if synthetic else ""
        )
        return _publish_report(
            tmp,
            final,
            kind="conformance_redline",
            title=title,
            scope=scope,
            synthetic=synthetic,
            extra={"provenance_id": outcome.provenance_id, "verdict": outcome.check.verdict},
        )
    finally:
        tmp.unlink(missing_ok=True)


def transmission_check(
    hierarchy: str | Mapping[str, Any],
    *,
    elasticity_pack: str | None = None,
    packs: Sequence[str] | None = None,
    at: date | None = None,
    store: Store | None = None,
    actor: str = "unknown",
) -> TransmissionOutcome:
    """:func:`transmission_report` over a shipped hierarchy id or an inline hierarchy mapping.

    Packs are named by id only (the elasticity pack must define ``transmission_elasticity``).
    An inline hierarchy is validated by :func:`yizhangtu.conformance.hierarchy_from_mapping`;
    its provenance input is its content hash, and its content is kept in the record's params.
    """
    from yizhangtu.conformance import hierarchy_from_mapping, list_hierarchies

    rule_packs = named_packs(packs, default=("conformance-national",))
    if isinstance(hierarchy, str):
        if hierarchy not in list_hierarchies():
            raise NotFoundError(
                f"没有名为 {hierarchy} 的规划层级",
                key="hierarchy_not_found",
                field="hierarchy",
                hint="内置: " + ", ".join(list_hierarchies()),
            )
        h = load_hierarchy(hierarchy)
    else:
        h = hierarchy_from_mapping(dict(hierarchy), source="request")
    name = elasticity_pack or h.elasticity_pack
    if not name:
        raise InputError(
            "未指定弹性所在的政策包",
            key="elasticity_pack_missing",
            field="elasticity_pack",
            hint="指定 elasticity_pack, 如 dongguan-2023 (10%, 004 (四))",
        )
    epack = _named_pack(name, "elasticity")
    res = check_transmission(
        h, elasticity=Elasticity.from_pack(epack), packs=rule_packs, at=at or date.today()
    )
    rid = None
    if store is not None:
        inline = not isinstance(hierarchy, str)
        rec = record_result(
            store,
            "conformance.transmission",
            inputs=[
                InputRef(
                    kind="file",
                    name=h.source if not inline else f"request:{h.id}",
                    content_hash=h.hash,
                )
            ],
            params={
                "hierarchy": h.id,
                "inline": inline,
                "content": dict(h.content) if inline else None,
                "elasticity_pack": epack.ref(),
                "packs": [p.ref() for p in rule_packs],
                "at": (at or date.today()).isoformat(),
            },
            policy=epack.ref(),
            result=res.to_dict(),
            actor=actor,
        )
        rid = rec.id
    return TransmissionOutcome(result=res, provenance_id=rid)
