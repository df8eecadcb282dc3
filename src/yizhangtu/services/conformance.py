"""Conformance services: control lines, plan conflicts, red-line checks and plan transmission.

Thin adapters between the store and the pure core in :mod:`yizhangtu.conformance`: they read
layers (current snapshots), read red-line files (界址点 TXT, polygon files, zipped shapefiles),
call the core, record provenance for every result and write GeoPackage outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
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
    "DEFAULT_PACKS",
    "ConflictsOutcome",
    "LinesOutcome",
    "RedlineInput",
    "RedlineOutcome",
    "TransmissionOutcome",
    "check_redline_file",
    "conflicts_report",
    "discover_lines",
    "lines_report",
    "load_packs",
    "read_redline_file",
    "transmission_report",
    "write_gpkg",
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
