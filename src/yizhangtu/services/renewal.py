"""Renewal library services (城市更新单元库): persistence, evaluation, workflow, files, report.

Storage
-------
- records ``renewal_units``: one per unit (flat record of :func:`unit_to_record`, geometry
  as WKT in the storage CRS, scenario text); jurisdiction = town code (镇街代码) from the
  boundary layer (``dongguan_towns``). The store's record version is the unit's
  optimistic-locking version.
- layer ``renewal_units`` (kind ``project``): unit polygons, a new snapshot after every
  change, so that the units open as an ordinary GIS layer.
- layer ``renewal_zones`` (kind ``plan``): 大圈 / 中圈 / 连片工改工片区.
- records ``renewal_towns``: town accounts (财政基准线, 挂账, 工改工任务).

Every transition is written with its audit record in one transaction; every evaluation
leaves a provenance record (records and snapshot hashes, policy pack refs).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
import yaml

from yizhangtu.errors import (
    ConflictError,
    FileFormatError,
    InputError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from yizhangtu.geo.area import convert_area
from yizhangtu.policy.loader import load_pack
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding, jsonable
from yizhangtu.provenance import InputRef, canonical_json, sha256_hex
from yizhangtu.renewal.model import (
    ACTIVE_STAGES,
    BookedTask,
    RenewalLibrary,
    RenewalUnit,
    Stage,
    TownAccount,
    TownYearTask,
    parse_enum,
    unit_from_record,
    unit_to_record,
)
from yizhangtu.renewal.views import LibraryReport, library_report, timeline, units_from_frame
from yizhangtu.renewal.workflow import advance, unit_status
from yizhangtu.services.provenance import record_result, snapshot_ref
from yizhangtu.store import LayerSpec, Record, SnapshotInfo, Store
from yizhangtu.store.base import SQLStore

__all__ = [
    "CREATE_FIELDS",
    "DEFAULT_TOWNS_LAYER",
    "PATCHABLE_FIELDS",
    "TOWNS_COLLECTION",
    "UNITS_COLLECTION",
    "UNITS_LAYER",
    "ZONES_LAYER",
    "AdvanceResult",
    "Evaluation",
    "ImportSummary",
    "LoadedLibrary",
    "NameMask",
    "StoredUnit",
    "TownIndex",
    "add_unit",
    "advance_unit",
    "deadlines",
    "evaluate",
    "export_units_xlsx",
    "get_unit",
    "import_units",
    "import_units_file",
    "list_units",
    "load_library",
    "load_town_accounts",
    "load_zones",
    "mask_person_name",
    "masked_evaluation",
    "masked_unit_ratios",
    "name_mask",
    "parse_set_options",
    "patch_unit",
    "preview_advance",
    "read_vector",
    "records_ref",
    "refresh_units_layer",
    "render_report_html",
    "report_job",
    "resolve_pack",
    "save_town_accounts",
    "save_zones",
    "show_unit",
    "town_codes_within",
    "town_index",
    "unit_from_fields",
    "unit_geometry",
    "update_unit",
    "write_report",
]

UNITS_COLLECTION = "renewal_units"
TOWNS_COLLECTION = "renewal_towns"
UNITS_LAYER = "renewal_units"
ZONES_LAYER = "renewal_zones"
DEFAULT_TOWNS_LAYER = "dongguan_towns"
DEFAULT_PACK = "dongguan-2023"
_STORAGE_CRS = "EPSG:4490"
_CODE_FIELDS = ("nbs_code", "code", "adcode", "town_code")


# =========================================================================== packs


def parse_set_options(items: Iterable[str] | None) -> dict[str, Any]:
    """Parse ``name=value`` pairs (values read as YAML: numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(
                f"参数设定格式应为 名称=值: {item}",
                key="bad_set_option",
                field="--set",
                hint="如 --set unit_area_max=200",
            )
        name, text = item.split("=", 1)
        try:
            out[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[name.strip()] = text
    return out


def resolve_pack(
    name_or_path: str | None = None,
    values: Mapping[str, Any] | None = None,
    default: str = DEFAULT_PACK,
) -> PolicyPack:
    """Load a pack by id or path and apply user-set values (``--set``)."""
    pack = load_pack(name_or_path or default)
    return pack.with_values(dict(values)) if values else pack


# =========================================================================== towns


@dataclass(frozen=True)
class TownIndex:
    """Town names and codes of the boundary layer (镇街 → 镇街代码)."""

    layer: str
    codes: Mapping[str, str]

    def code(self, town: str, feature: str | None = None) -> str:
        """Code of ``town``; ValidationError naming the known towns otherwise."""
        try:
            return self.codes[town]
        except KeyError:
            raise ValidationError(
                f"镇街 {town} 不在边界图层 {self.layer} 中",
                key="unknown_town",
                field="town",
                feature=feature,
                hint="可用镇街: " + "、".join(sorted(self.codes)[:40]),
            ) from None

    def codes_for(self, towns: Iterable[str] | None) -> list[str] | None:
        """Codes of the towns named (None passes through: no filter)."""
        if towns is None:
            return None
        return [self.codes.get(t, t) for t in towns]


def town_index(store: Store, layer: str = DEFAULT_TOWNS_LAYER) -> TownIndex:
    """Read town names and codes from the boundary layer."""
    try:
        info = store.layer(layer)
    except NotFoundError:
        raise NotFoundError(
            f"没有镇街边界图层 {layer}, 无法确定单元所属镇街代码",
            key="towns_layer_missing",
            field="layer",
            hint="先导入镇街边界, 如 yizhangtu import dongguan_towns_33_poi86_wgs84.geojson "
            f"--layer {layer} --kind boundary",
        ) from None
    frame = store.read_layer(info.name)
    code_field = next((c for c in _CODE_FIELDS if c in frame.columns), None)
    if "name" not in frame.columns or code_field is None:
        raise ValidationError(
            f"边界图层 {layer} 须有 name 和代码字段({'/'.join(_CODE_FIELDS)})",
            key="towns_layer_fields",
            field="name",
        )
    return TownIndex(
        layer, {str(n): str(c) for n, c in zip(frame["name"], frame[code_field], strict=True)}
    )


# =========================================================================== records


@dataclass(frozen=True)
class StoredUnit:
    """A unit as stored: the unit (version = record version), geometry and metadata."""

    unit: RenewalUnit
    geometry: Any
    crs: str | None
    jurisdiction: str | None
    scenario: str | None
    updated_by: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (record fields, geometry as WKT)."""
        rec = unit_to_record(self.unit)
        rec["holders"] = [h.__dict__ for h in self.unit.holders]
        rec["history"] = [
            {
                "from": e.from_stage.value,
                "to": e.to_stage.value,
                "at": e.at.isoformat(),
                "note": e.note,
            }
            for e in self.unit.history
        ]
        rec.update(
            jurisdiction=self.jurisdiction,
            scenario=self.scenario,
            geometry_wkt=self.geometry.wkt if self.geometry is not None else None,
            crs=self.crs,
            updated_by=self.updated_by,
            updated_at=self.updated_at,
        )
        return jsonable(rec)


def _unit_data(
    unit: RenewalUnit, geometry: Any, crs: str | None, scenario: str | None
) -> dict[str, Any]:
    rec = unit_to_record(unit)
    rec.pop("version", None)
    rec["geometry_wkt"] = (
        shapely.to_wkt(geometry, rounding_precision=-1) if geometry is not None else None
    )
    rec["crs"] = crs if geometry is not None else None
    rec["scenario"] = scenario
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


def _stored(rec: Record) -> StoredUnit:
    data = dict(rec.data)
    wkt = data.pop("geometry_wkt", None)
    crs = data.pop("crs", None)
    scenario = data.pop("scenario", None)
    data["version"] = rec.version
    return StoredUnit(
        unit=unit_from_record(data),
        geometry=shapely.from_wkt(wkt) if wkt else None,
        crs=crs,
        jurisdiction=rec.jurisdiction,
        scenario=scenario,
        updated_by=rec.updated_by,
        updated_at=rec.updated_at,
    )


def records_ref(name: str, records: Sequence[Record]) -> InputRef:
    """Input reference for a set of records: hash of (key, version, data) of each."""
    body = canonical_json(
        [[r.key, r.version, dict(r.data)] for r in sorted(records, key=lambda r: r.key)]
    )
    return InputRef(
        kind="records", name=name, content_hash=sha256_hex(body), label=f"{len(records)} 条"
    )


def _require_tx(store: Store) -> SQLStore:
    if not isinstance(store, SQLStore):
        raise StoreError("工作空间不支持事务", key="store_no_transaction")
    return store


def get_unit(store: Store, unit_id: str) -> StoredUnit:
    """One stored unit (NotFoundError if absent)."""
    try:
        return _stored(store.get_record(UNITS_COLLECTION, unit_id))
    except NotFoundError:
        raise NotFoundError(
            f"单元库中没有单元 {unit_id}",
            key="unit_not_found",
            feature=unit_id,
            hint="用 yizhangtu renewal show 或 check 查看已有单元",
        ) from None


def list_units(store: Store, *, jurisdictions: Sequence[str] | None = None) -> list[StoredUnit]:
    """All stored units, optionally only those of some town codes."""
    return [_stored(r) for r in store.list_records(UNITS_COLLECTION, jurisdictions=jurisdictions)]


def _to_storage(geometry: Any, crs: Any) -> tuple[Any, str | None]:
    if geometry is None:
        return None, None
    if crs is None:
        raise InputError("单元图形缺少坐标参考系", key="crs_missing", field="crs")
    g = gpd.GeoSeries([geometry], crs=crs).to_crs(_STORAGE_CRS).iloc[0]
    return g, _STORAGE_CRS


def _conflict(
    store: Store, unit_id: str, expected: int, mine: Mapping[str, Any] | None = None
) -> ConflictError:
    current = store.get_record(UNITS_COLLECTION, unit_id)
    later = [
        a.to_dict()
        for a in store.audit_log(target=f"{UNITS_COLLECTION}:{unit_id}")
        if int(a.details.get("version") or 0) > expected
    ]
    differs = (
        sorted(
            k for k, v in mine.items() if current.data.get(k) != v and k not in ("geometry_wkt",)
        )
        if mine is not None
        else []
    )
    stage = current.data.get("stage")
    return ConflictError(
        f"单元 {unit_id} 已被 {current.updated_by} 于 {current.updated_at} 修改"
        f"(当前版本 {current.version}, "
        f"阶段 {stage}), 你的修改基于版本 {expected}",
        key="version_conflict",
        feature=unit_id,
        field="version",
        hint="重新读取最新记录(yizhangtu renewal show), 合并后再提交",
        data={
            "unit_id": unit_id,
            "expected_version": expected,
            "current_version": current.version,
            "updated_by": current.updated_by,
            "updated_at": current.updated_at,
            "current": dict(current.data),
            "other_changes": later,
            "fields_differing": differs,
        },
    )


def add_unit(
    store: Store,
    unit: RenewalUnit,
    *,
    actor: str,
    geometry: Any = None,
    crs: Any = None,
    scenario: str | None = None,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
    refresh: bool = True,
) -> StoredUnit:
    """Create a unit (ConflictError ``record_exists`` if the id is taken)."""
    towns = town_index(store, towns_layer)
    code = towns.code(unit.town, unit.unit_id)
    g, gcrs = _to_storage(geometry, crs)
    rec = store.put_record(
        UNITS_COLLECTION,
        unit.unit_id,
        _unit_data(unit, g, gcrs, scenario),
        expected_version=None,
        actor=actor,
        jurisdiction=code,
        action="renewal.unit.create",
    )
    if refresh:
        refresh_units_layer(store, actor=actor)
    return _stored(rec)


def update_unit(
    store: Store,
    unit: RenewalUnit,
    *,
    expected_version: int,
    actor: str,
    geometry: Any = ...,
    crs: Any = None,
    scenario: Any = ...,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
    refresh: bool = True,
) -> StoredUnit:
    """Update a unit under optimistic locking (``...`` keeps the stored geometry/scenario).

    Raises
    ------
    ConflictError
        ``version_conflict`` (HTTP 409) with the other editor's record and audit entries.
    """
    current = get_unit(store, unit.unit_id)
    geom, gcrs = (current.geometry, current.crs) if geometry is ... else _to_storage(geometry, crs)
    scen = current.scenario if scenario is ... else scenario
    code = town_index(store, towns_layer).code(unit.town, unit.unit_id)
    data = _unit_data(unit, geom, gcrs, scen)
    if current.unit.version != expected_version:
        raise _conflict(store, unit.unit_id, expected_version, data)
    try:
        rec = store.put_record(
            UNITS_COLLECTION,
            unit.unit_id,
            data,
            expected_version=expected_version,
            actor=actor,
            jurisdiction=code,
            action="renewal.unit.update",
        )
    except ConflictError:
        raise _conflict(store, unit.unit_id, expected_version, data) from None
    if refresh:
        refresh_units_layer(store, actor=actor)
    return _stored(rec)


# =========================================================================== layers


def _frame_for_layer(stored: Sequence[StoredUnit]) -> gpd.GeoDataFrame | None:
    rows, geoms = [], []
    for s in stored:
        if s.geometry is None:
            continue
        rec = unit_to_record(s.unit)
        rec.update(holders=None, history=None, scenario=s.scenario, town_code=s.jurisdiction)
        rows.append(rec)
        geoms.append(gpd.GeoSeries([s.geometry], crs=s.crs).to_crs(_STORAGE_CRS).iloc[0])
    if not rows:
        return None
    df = pd.DataFrame.from_records(rows).drop(columns=["holders", "history"])
    return gpd.GeoDataFrame(df, geometry=geoms, crs=_STORAGE_CRS)


def _write_layer(
    store: Store, spec: LayerSpec, frame: gpd.GeoDataFrame, *, actor: str, notes: Mapping[str, Any]
) -> SnapshotInfo:
    today = dt.date.today().isoformat()
    try:
        n = len(store.snapshots(spec.name))
    except NotFoundError:
        n = 0
    for attempt in range(5):
        label = f"r{n + 1 + attempt}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
        try:
            return store.write_snapshot(
                spec,
                [frame],
                label=label,
                obs_date=today,
                actor=actor,
                notes=dict(notes),
                geometry_type="MultiPolygon",
            )
        except ConflictError as exc:
            if exc.key != "snapshot_exists":
                raise
    raise ConflictError(f"图层 {spec.name} 的快照标签冲突", key="snapshot_exists")


def refresh_units_layer(store: Store, *, actor: str) -> SnapshotInfo | None:
    """Write the unit polygons as a new snapshot of layer ``renewal_units`` (None if none)."""
    stored = list_units(store)
    frame = _frame_for_layer(stored)
    if frame is None:
        return None
    synthetic = bool(frame["synthetic"].fillna(False).astype(bool).any())
    spec = LayerSpec(
        name=UNITS_LAYER,
        kind="project",
        title="城市更新改造单元(小圈)" + ("(合成数据)" if synthetic else ""),
        description="由单元库记录生成, 每次变更刷新; 阶段、意愿等以单元库为准",
        id_field="unit_id",
        synthetic=synthetic,
        jurisdiction_field="town_code",
    )
    return _write_layer(
        store,
        spec,
        frame,
        actor=actor,
        notes={
            "source": f"records:{UNITS_COLLECTION}",
            "records": records_ref(
                UNITS_COLLECTION, store.list_records(UNITS_COLLECTION)
            ).content_hash,
        },
    )


def save_zones(
    store: Store, zones: gpd.GeoDataFrame, *, actor: str, synthetic: bool | None = None
) -> SnapshotInfo:
    """Store 大圈 / 中圈 / 连片工改工片区 as a new snapshot of layer ``renewal_zones``."""
    from yizhangtu.renewal.views import zones_from_frame

    zones_from_frame(zones)  # validate ids, tiers, dates
    if zones.crs is None:
        raise InputError("片区图层缺少坐标参考系", key="crs_missing", field="crs")
    frame = zones.to_crs(_STORAGE_CRS).copy()
    for c in frame.columns:
        if c != frame.geometry.name and frame[c].map(lambda v: isinstance(v, dt.date)).any():
            frame[c] = frame[c].map(lambda v: v.isoformat() if isinstance(v, dt.date) else None)
    syn = bool(
        synthetic
        if synthetic is not None
        else ("synthetic" in frame and frame["synthetic"].fillna(False).astype(bool).any())
    )
    spec = LayerSpec(
        name=ZONES_LAYER,
        kind="plan",
        title='"三旧"改造大圈、中圈与连片工改工片区' + ("(合成数据)" if syn else ""),
        id_field="zone_id",
        synthetic=syn,
    )
    return _write_layer(store, spec, frame, actor=actor, notes={"zones": len(frame)})


def load_zones(store: Store) -> gpd.GeoDataFrame | None:
    """Return the current zones layer, or None when there is none."""
    try:
        store.layer(ZONES_LAYER)
    except NotFoundError:
        return None
    return store.read_layer(ZONES_LAYER)


# =========================================================================== towns accounts


def _account_data(a: TownAccount) -> dict[str, Any]:
    return jsonable(
        {
            "town": a.town,
            "fiscal_baseline": a.fiscal_baseline,
            "linkage_alternative": a.linkage_alternative,
            "synthetic": a.synthetic,
            "booked": [b.__dict__ for b in a.booked],
            "tasks": [t.__dict__ for t in a.tasks],
        }
    )


def _account(data: Mapping[str, Any]) -> TownAccount:
    def d(v: Any) -> dt.date | None:
        return dt.date.fromisoformat(v) if v else None

    return TownAccount(
        town=data["town"],
        fiscal_baseline=data.get("fiscal_baseline"),
        linkage_alternative=data.get("linkage_alternative"),
        synthetic=bool(data.get("synthetic")),
        booked=tuple(
            BookedTask(
                b["unit_id"],
                dt.date.fromisoformat(b["booked_on"]),
                d(b.get("cleared_on")),
                b.get("owed_industrial_m2"),
            )
            for b in data.get("booked", [])
        ),
        tasks=tuple(
            TownYearTask(
                int(t["year"]),
                t["industrial_task_m2"],
                t["land_banking_task_m2"],
                t.get("land_banked_m2"),
            )
            for t in data.get("tasks", [])
        ),
    )


def save_town_accounts(
    store: Store,
    accounts: Iterable[TownAccount],
    *,
    actor: str,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
) -> int:
    """Create or replace town accounts (records ``renewal_towns``), in one transaction."""
    towns = town_index(store, towns_layer)
    n = 0
    with _require_tx(store).transaction():
        for a in accounts:
            code = towns.code(a.town, a.town)
            try:
                current = store.get_record(TOWNS_COLLECTION, a.town).version
            except NotFoundError:
                current = None
            store.put_record(
                TOWNS_COLLECTION,
                a.town,
                _account_data(a),
                expected_version=current,
                actor=actor,
                jurisdiction=code,
                action="renewal.town.put",
            )
            n += 1
    return n


def load_town_accounts(
    store: Store, *, jurisdictions: Sequence[str] | None = None
) -> tuple[TownAccount, ...]:
    """Return the stored town accounts."""
    return tuple(
        _account(r.data) for r in store.list_records(TOWNS_COLLECTION, jurisdictions=jurisdictions)
    )


# =========================================================================== import / export


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    snapshot: SnapshotInfo | None
    source: str | None = None
    synthetic: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "layer_snapshot": self.snapshot.to_dict() if self.snapshot else None,
            "source": self.source,
            "synthetic": self.synthetic,
        }


def import_units(
    store: Store,
    units: Iterable[RenewalUnit],
    *,
    actor: str,
    geometries: Mapping[str, Any] | None = None,
    crs: Any = None,
    scenarios: Mapping[str, str] | None = None,
    update: bool = False,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
    source: str | None = None,
) -> ImportSummary:
    """Write many units in one transaction (all or nothing), then refresh the layer.

    Existing ids are refused unless ``update`` (then each is updated at its current version,
    audited as ``renewal.unit.update``).
    """
    us = list(units)
    towns = town_index(store, towns_layer)
    geoms = geometries or {}
    problems = []
    codes: dict[str, str] = {}
    for u in us:
        try:
            codes[u.unit_id] = towns.code(u.town, u.unit_id)
        except ValidationError as exc:
            problems.append(exc.message)
    if problems:
        raise ValidationError(
            f"{len(problems)} 个单元的镇街无法识别: {problems[0]}",
            key="unknown_town",
            field="town",
            file=source,
            data={"problems": problems},
            hint="镇街名称须与边界图层一致",
        )
    existing = {r.key: r for r in store.list_records(UNITS_COLLECTION)}
    clash = sorted(u.unit_id for u in us if u.unit_id in existing)
    if clash and not update:
        raise ConflictError(
            f"单元库已有 {len(clash)} 个同编号单元: {'、'.join(clash[:10])}",
            key="record_exists",
            field="unit_id",
            file=source,
            hint="用 --update 覆盖已有单元(按当前版本写入并记审计)",
            data={"existing": clash},
        )
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    with _require_tx(store).transaction():
        for u in us:
            g, gcrs = _to_storage(geoms.get(u.unit_id), crs)
            old = existing.get(u.unit_id)
            if old is not None and g is None and old.data.get("geometry_wkt"):
                g, gcrs = shapely.from_wkt(old.data["geometry_wkt"]), old.data.get("crs")
            data = _unit_data(u, g, gcrs, (scenarios or {}).get(u.unit_id))
            if old is not None and canonical_json(dict(old.data)) == canonical_json(data):
                unchanged.append(u.unit_id)
                continue
            store.put_record(
                UNITS_COLLECTION,
                u.unit_id,
                data,
                expected_version=old.version if old is not None else None,
                actor=actor,
                jurisdiction=codes[u.unit_id],
                action="renewal.unit.update" if old is not None else "renewal.unit.create",
            )
            (updated if old is not None else created).append(u.unit_id)
    snap = refresh_units_layer(store, actor=actor) if created or updated else None
    return ImportSummary(
        tuple(created), tuple(updated), tuple(unchanged), snap, source, any(u.synthetic for u in us)
    )


def read_vector(path: str | Path) -> gpd.GeoDataFrame:
    """Read a vector file (any format the import pipeline reads); CRS required."""
    from yizhangtu.io import read_source

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"文件不存在: {p}", key="file_not_found", file=str(p))
    frame, _report = read_source(p)
    if frame.crs is None:
        raise InputError(f"文件 {p.name} 没有坐标参考系", key="crs_missing", file=str(p))
    return frame


def import_units_file(
    store: Store,
    path: str | Path,
    *,
    actor: str,
    geometry_path: str | Path | None = None,
    update: bool = False,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
) -> ImportSummary:
    """Import a unit list from Excel or a vector file.

    Excel: sheets 改造单元 and 权益人名册 (``geometry_path`` supplies polygons by ``unit_id``);
    vector files: flat records with their polygons.
    """
    from openpyxl import load_workbook

    from yizhangtu.renewal.excel import units_from_workbook

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"文件不存在: {p}", key="file_not_found", file=str(p))
    geometries: dict[str, Any] = {}
    crs: Any = None
    scenarios: dict[str, str] = {}
    try:
        if p.suffix.lower() in (".xlsx", ".xlsm"):
            try:
                wb = load_workbook(p, data_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise FileFormatError(
                    f"无法读取 Excel 文件: {exc}", key="xlsx_invalid", file=str(p)
                ) from None
            units = units_from_workbook(wb)
        else:
            frame = read_vector(p)
            units = list(units_from_frame(frame))
            crs = frame.crs
            geometries = dict(zip(frame["unit_id"].astype(str), frame.geometry.values, strict=True))
            if "scenario" in frame.columns:
                scenarios = {
                    str(k): v
                    for k, v in zip(frame["unit_id"], frame["scenario"], strict=True)
                    if isinstance(v, str)
                }
    except InputError as exc:
        exc.detail = type(exc.detail)(
            file=str(p), feature=exc.detail.feature, field=exc.detail.field
        )
        raise
    if geometry_path is not None:
        gp = Path(geometry_path)
        gframe = read_vector(gp)
        if "unit_id" not in gframe.columns:
            raise ValidationError(
                f"图形文件 {gp.name} 缺少 unit_id 字段",
                key="missing_field",
                file=str(gp),
                field="unit_id",
            )
        crs = gframe.crs
        geometries = dict(zip(gframe["unit_id"].astype(str), gframe.geometry.values, strict=True))
        unknown = sorted(set(geometries) - {u.unit_id for u in units})
        if unknown:
            raise ValidationError(
                f"图形文件中的单元不在清单中: {'、'.join(unknown[:10])}",
                key="unknown_unit",
                file=str(gp),
                field="unit_id",
            )
    return import_units(
        store,
        units,
        actor=actor,
        geometries=geometries,
        crs=crs,
        scenarios=scenarios,
        update=update,
        towns_layer=towns_layer,
        source=str(p),
    )


def export_units_xlsx(
    store: Store, path: str | Path, *, jurisdictions: Sequence[str] | None = None
) -> Path:
    """Write the unit list as an Excel workbook (Chinese headers; synthetic lists say so)."""
    from yizhangtu.renewal.excel import units_to_workbook

    stored = list_units(store, jurisdictions=jurisdictions)
    wb = units_to_workbook([s.unit for s in stored], title="城市更新改造单元清单")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out


# =========================================================================== library


@dataclass(frozen=True)
class LoadedLibrary:
    """The stored library with its frames and the input references for provenance."""

    library: RenewalLibrary
    stored: tuple[StoredUnit, ...]
    units: gpd.GeoDataFrame | None
    zones: gpd.GeoDataFrame | None
    inputs: tuple[InputRef, ...]

    def geometries(self) -> dict[str, Any]:
        """Map unit id → geometry in the storage CRS."""
        return {s.unit.unit_id: s.geometry for s in self.stored if s.geometry is not None}


def load_library(store: Store, *, jurisdictions: Sequence[str] | None = None) -> LoadedLibrary:
    """Units, zones and town accounts from the store (units filtered by town codes)."""
    from yizhangtu.renewal.views import zones_from_frame

    recs = store.list_records(UNITS_COLLECTION, jurisdictions=jurisdictions)
    stored = tuple(_stored(r) for r in recs)
    trecs = store.list_records(TOWNS_COLLECTION, jurisdictions=jurisdictions)
    zones = load_zones(store)
    inputs = [records_ref(UNITS_COLLECTION, recs), records_ref(TOWNS_COLLECTION, trecs)]
    if zones is not None:
        inputs.append(snapshot_ref(store.resolve_snapshot(ZONES_LAYER)))
    try:
        inputs.append(snapshot_ref(store.resolve_snapshot(UNITS_LAYER)))
    except NotFoundError:
        pass
    lib = RenewalLibrary(
        units=tuple(s.unit for s in stored),
        zones=zones_from_frame(zones) if zones is not None else (),
        towns=tuple(_account(r.data) for r in trecs),
    )
    return LoadedLibrary(lib, stored, _frame_for_layer(stored), zones, tuple(inputs))


def _with_registry(
    store: Store, loaded: LoadedLibrary, at: dt.date, rights_pack: PolicyPack | None
) -> tuple[RenewalLibrary, dict[str, Any], list[InputRef], PolicyPack | None]:
    """Put computed figures into the units the rights registry covers."""
    from yizhangtu.rights.ratios import apply_registry, unit_ratios
    from yizhangtu.services import rights as rights_svc

    if not rights_svc.has_registry(store):
        return loaded.library, {}, [], None
    rpack = rights_pack or rights_svc.resolve_rights_pack()
    registry, refs = rights_svc.load_registry(store, with_refs=True)
    ratios = unit_ratios(loaded.library.units, loaded.geometries(), registry, at, rpack)
    return apply_registry(loaded.library, ratios), ratios, list(refs), rpack


# =========================================================================== evaluation


@dataclass(frozen=True)
class Evaluation:
    """The library evaluated on one date: findings, views, figure sources, provenance."""

    at: dt.date
    report: LibraryReport
    rights_findings: tuple[Finding, ...]
    sources: tuple[dict[str, Any], ...]
    ratios: Mapping[str, Any]
    pack: Mapping[str, str]
    rights_pack: Mapping[str, str] | None
    provenance_id: str | None
    stored: tuple[StoredUnit, ...] = ()
    synthetic: bool = False

    @property
    def findings(self) -> list[Finding]:
        """Renewal findings followed by rights-registry findings."""
        return [*self.report.findings, *self.rights_findings]

    def counts(self) -> dict[str, int]:
        """Count findings by severity."""
        out = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def pipeline(self) -> pd.DataFrame:
        """Units and land (亩) by town and stage (the four stages first)."""
        order = [s.value for s in (*ACTIVE_STAGES, Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED)]
        rows = [
            {
                "town": s.unit.town,
                "stage": s.unit.stage.value,
                "land_mu": float(convert_area(s.unit.land_area_m2, "mu")),
            }
            for s in self.stored
        ]
        df = pd.DataFrame(rows, columns=["town", "stage", "land_mu"])
        if df.empty:
            return pd.DataFrame(columns=["stage", "units", "land_mu"])
        g = (
            df.groupby("stage")
            .agg(units=("town", "size"), land_mu=("land_mu", "sum"))
            .reindex(order)
            .fillna(0)
        )
        g["units"] = g["units"].astype(int)
        return g.reset_index()

    def pipeline_by_town(self) -> pd.DataFrame:
        """Count units by town × stage."""
        order = [s.value for s in (*ACTIVE_STAGES, Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED)]
        df = pd.DataFrame(
            [{"town": s.unit.town, "stage": s.unit.stage.value} for s in self.stored],
            columns=["town", "stage"],
        )
        if df.empty:
            return pd.DataFrame(columns=["town", *order])
        t = pd.crosstab(df["town"], df["stage"]).reindex(columns=order, fill_value=0)
        return t.reset_index()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = self.report.to_dict()
        d["findings"] = [f.to_dict() for f in self.findings]
        d["counts"] = self.counts()
        d["rights_pack"] = dict(self.rights_pack) if self.rights_pack else None
        d["figure_sources"] = jsonable(list(self.sources))
        d["pipeline"] = jsonable(self.pipeline().to_dict(orient="records"))
        d["provenance_id"] = self.provenance_id
        d["synthetic"] = self.synthetic
        return d


def evaluate(
    store: Store,
    at: dt.date,
    pack: PolicyPack,
    *,
    actor: str,
    rights_pack: PolicyPack | None = None,
    jurisdictions: Sequence[str] | None = None,
    days: int | None = None,
    record: bool = True,
) -> Evaluation:
    """Evaluate the stored library on ``at`` and record provenance.

    Renewal rules (with registry figures where the registry covers a unit), hierarchy, zone
    statistics, town linkage and deadlines. The provenance record names the units and towns
    records hashes, layer snapshots, registry hashes and the pack refs.
    """
    from yizhangtu.rights.ratios import figure_sources

    loaded = load_library(store, jurisdictions=jurisdictions)
    lib, ratios, rights_inputs, rpack = _with_registry(store, loaded, at, rights_pack)
    report = library_report(lib, at, pack, zones=loaded.zones, units=loaded.units, days=days)
    rights_findings = tuple(f for r in ratios.values() if r.parcels for f in r.findings)
    sources = tuple(figure_sources(loaded.library, ratios))
    synthetic = report.synthetic or any(s.unit.synthetic for s in loaded.stored)
    prov_id = None
    if record:
        digest = [[f.rule_id, f.outcome, f.subject] for f in (*report.findings, *rights_findings)]
        rec = record_result(
            store,
            "renewal_evaluation",
            inputs=[*loaded.inputs, *rights_inputs],
            params={
                "at": at.isoformat(),
                "days": days,
                "jurisdictions": list(jurisdictions) if jurisdictions is not None else None,
                "rights_pack": rpack.ref() if rpack else None,
            },
            policy=pack.ref(),
            result={"counts": report.counts(), "findings": digest},
            actor=actor,
        )
        prov_id = rec.id
    return Evaluation(
        at=at,
        report=report,
        rights_findings=rights_findings,
        sources=sources,
        ratios=ratios,
        pack=pack.ref(),
        rights_pack=rpack.ref() if rpack else None,
        provenance_id=prov_id,
        stored=loaded.stored,
        synthetic=synthetic,
    )


def deadlines(
    store: Store,
    at: dt.date,
    pack: PolicyPack,
    *,
    days: int | None = None,
    jurisdictions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Deadlines due within ``days`` (pack ``timeline_horizon``, 90) of ``at`` and overdue ones."""
    loaded = load_library(store, jurisdictions=jurisdictions)
    return timeline(loaded.library, at, pack, days)


def show_unit(
    store: Store,
    unit_id: str,
    at: dt.date,
    pack: PolicyPack,
    *,
    rights_pack: PolicyPack | None = None,
) -> dict[str, Any]:
    """Describe a unit, its findings and possible next moves on ``at`` (registry applied)."""
    from yizhangtu.rights.ratios import figure_sources

    stored = get_unit(store, unit_id)
    loaded = load_library(store)
    lib, ratios, _refs, rpack = _with_registry(store, loaded, at, rights_pack)
    unit = next(u for u in lib.units if u.unit_id == unit_id)
    status = unit_status(unit, at, pack, lib)
    out = stored.to_dict()
    out["version"] = stored.unit.version
    out["status"] = status.to_dict()
    src = [s for s in figure_sources(loaded.library, ratios) if s["unit_id"] == unit_id]
    out["figure_source"] = src[0] if src else None
    r = ratios.get(unit_id)
    out["rights"] = r.to_dict() if r is not None and r.parcels else None
    out["rights_pack"] = rpack.ref() if rpack else None
    return jsonable(out)


@dataclass(frozen=True)
class AdvanceResult:
    """A stored transition: the unit after it, the findings, the audit record."""

    stored: StoredUnit
    from_stage: Stage
    to_stage: Stage
    findings: tuple[Finding, ...]
    audit_seq: int
    figure_source: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "unit_id": self.stored.unit.unit_id,
            "from_stage": self.from_stage.value,
            "to_stage": self.to_stage.value,
            "version": self.stored.unit.version,
            "audit_seq": self.audit_seq,
            "figure_source": self.figure_source,
            "findings": [f.to_dict() for f in self.findings],
        }


def advance_unit(
    store: Store,
    unit_id: str,
    to_stage: Stage | str,
    at: dt.date,
    pack: PolicyPack,
    *,
    actor: str,
    expected_version: int | None = None,
    note: str | None = None,
    rights_pack: PolicyPack | None = None,
) -> AdvanceResult:
    """Move a unit to ``to_stage`` on ``at`` if the rules allow it.

    The gate rules read the registry's computed figures when the registry covers the unit.
    The record write and its ``renewal.advance`` audit record share one transaction.

    Raises
    ------
    ValidationError
        ``transition_refused`` (findings in ``data``) or ``dates_out_of_order``.
    ConflictError
        ``version_conflict`` when ``expected_version`` is stale (data: the other change).
    """
    current = get_unit(store, unit_id)
    if expected_version is not None and expected_version != current.unit.version:
        raise _conflict(store, unit_id, expected_version)
    target = parse_enum(Stage, to_stage, "to_stage", unit_id)
    loaded = load_library(store)
    lib, ratios, _refs, _rpack = _with_registry(store, loaded, at, rights_pack)
    effective = next(u for u in lib.units if u.unit_id == unit_id)
    moved, findings = advance(effective, target, at, pack, lib, note=note)
    restart = moved.stage is Stage.PRELIMINARY and current.unit.stage in (
        Stage.WITHDRAWN,
        Stage.BARRED,
    )
    persisted = (
        moved
        if restart
        else replace(
            moved,
            consent=current.unit.consent,
            signing=current.unit.signing,
            holders=current.unit.holders,
        )
    )
    data = _unit_data(persisted, current.geometry, current.crs, current.scenario)
    r = ratios.get(unit_id)
    source = (
        "computed"
        if r is not None and r.covered
        else (effective.consent.source if effective.consent is not None else None)
    )
    details = {
        "unit_id": unit_id,
        "from": current.unit.stage.value,
        "to": target.value,
        "at": at.isoformat(),
        "note": note,
        "version": current.unit.version + 1,
        "pack": pack.ref(),
        "figure_source": source,
        "findings": [[f.rule_id, f.outcome, f.severity] for f in findings],
    }
    try:
        with _require_tx(store).transaction():
            rec = store.put_record(
                UNITS_COLLECTION,
                unit_id,
                data,
                expected_version=current.unit.version,
                actor=actor,
                jurisdiction=current.jurisdiction,
                action="renewal.unit.update",
            )
            audit = store.audit_append(
                "renewal.advance",
                f"{UNITS_COLLECTION}:{unit_id}",
                actor=actor,
                details=details,
                input_hashes=[sha256_hex(canonical_json(data))],
            )
    except ConflictError as exc:
        if exc.key != "version_conflict":
            raise
        raise _conflict(store, unit_id, current.unit.version, data) from None
    refresh_units_layer(store, actor=actor)
    return AdvanceResult(
        _stored(rec), current.unit.stage, target, tuple(findings), audit.seq, source
    )


# =========================================================================== report

_TEMPLATES = Path(__file__).resolve().parents[1] / "reports" / "templates"
_SEVERITY_ZH = {"error": "错误", "warning": "警告", "info": "提示"}


def _fmt_pct(v: Any) -> str:
    return (
        f"{v:.1%}"
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        else "-"
    )


def _fmt_num(v: Any, digits: int = 1) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return f"{v:,.{digits}f}"


def render_report_html(
    ev: Evaluation, *, title: str | None = None, subtitle: str | None = None
) -> str:
    """Render the library report as self-contained HTML (Chinese)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from yizhangtu import __version__

    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _fmt_pct
    env.filters["num"] = _fmt_num
    findings = ev.findings
    problems = [f for f in findings if f.severity in ("error", "warning")]
    problems.sort(key=lambda f: (0 if f.severity == "error" else 1, f.subject or "", f.rule_id))
    by_rule: dict[str, dict[str, Any]] = {}
    for f in findings:
        row = by_rule.setdefault(
            f.rule_id,
            {"rule_id": f.rule_id, "clause": f.clause, "error": 0, "warning": 0, "info": 0},
        )
        row[f.severity] += 1
    special = [f for f in ev.rights_findings if f.rule_id == "rights.special_holder"]
    tl = ev.report.timeline
    ctx = {
        "title": title or '城市更新项目库("三旧"改造单元)评估报告',
        "subtitle": subtitle
        or f"评估日期 {ev.at.isoformat()} · 政策包 {ev.pack['id']} v{ev.pack['version']}",
        "synthetic": ev.synthetic,
        "generated_at": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "base_css": (_TEMPLATES / "report_base.css").read_text(encoding="utf-8"),
        "at": ev.at.isoformat(),
        "pack": ev.pack,
        "rights_pack": ev.rights_pack,
        "counts": ev.counts(),
        "severity_zh": _SEVERITY_ZH,
        "n_units": len(ev.stored),
        "land_mu": sum(float(convert_area(s.unit.land_area_m2, "mu")) for s in ev.stored),
        "pipeline": ev.pipeline().to_dict(orient="records"),
        "pipeline_town": ev.pipeline_by_town(),
        "problems": problems,
        "by_rule": sorted(
            by_rule.values(), key=lambda r: (-r["error"], -r["warning"], r["rule_id"])
        ),
        "timeline": tl.to_dict(orient="records") if not tl.empty else [],
        "zone_stats": ev.report.zone_stats.to_dict(orient="records")
        if not ev.report.zone_stats.empty
        else [],
        "linkage": ev.report.linkage.to_dict(orient="records")
        if not ev.report.linkage.empty
        else [],
        "sources": list(ev.sources),
        "special": special,
        "provenance_id": ev.provenance_id,
        "param_required": [f for f in findings if f.outcome == "param_required"],
    }
    return env.get_template("renewal_report.html").render(**ctx)


@dataclass(frozen=True)
class ReportResult:
    """Files written by :func:`write_report` and the evaluation behind them."""

    paths: tuple[Path, ...]
    evaluation: Evaluation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "paths": [str(p) for p in self.paths],
            "counts": self.evaluation.counts(),
            "provenance_id": self.evaluation.provenance_id,
            "synthetic": self.evaluation.synthetic,
        }


def write_report(
    store: Store,
    at: dt.date,
    pack: PolicyPack,
    out_dir: str | Path,
    *,
    actor: str,
    formats: Sequence[str] = ("html", "pdf"),
    rights_pack: PolicyPack | None = None,
    jurisdictions: Sequence[str] | None = None,
    stem: str = "renewal_report",
    evaluation: Evaluation | None = None,
) -> ReportResult:
    """Evaluate and write the report as HTML and/or PDF (WeasyPrint, Noto Sans CJK SC)."""
    bad = [f for f in formats if f not in ("html", "pdf")]
    if bad:
        raise InputError(
            f"不支持的报告格式: {', '.join(bad)}", key="report_format", hint="可选 html 或 pdf"
        )
    ev = evaluation or evaluate(
        store, at, pack, actor=actor, rights_pack=rights_pack, jurisdictions=jurisdictions
    )
    html = render_report_html(ev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if "html" in formats:
        p = out / f"{stem}.html"
        p.write_text(html, encoding="utf-8")
        paths.append(p)
    if "pdf" in formats:
        from weasyprint import HTML

        p = out / f"{stem}.pdf"
        HTML(string=html, base_url=str(_TEMPLATES)).write_pdf(str(p))
        paths.append(p)
    return ReportResult(tuple(paths), ev)


# =========================================================================== web API helpers
#
# Used by the REST router ``yizhangtu.web.routers.renewal``: jurisdiction-bounded listing,
# partial updates under optimistic locking, dry-run stage moves, masking of personal data,
# and the report as a background job.

#: Record fields a partial update (``PATCH``) may change. The stage changes only through
#: :func:`advance_unit`; the unit id never changes.
PATCHABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "town",
        "unit_type",
        "mode",
        "land_area_m2",
        "area_id",
        "old_village_led",
        "deadline_exemption",
        "expropriation_requested",
        "synthetic",
        "consent_area_share",
        "consent_head_share",
        "consent_as_of",
        "signing_area_share",
        "signing_head_share",
        "signing_as_of",
        "declared_on",
        "entity_confirmed_on",
        "acquisition_completed_on",
        "plan_approved_on",
        "land_supplied_on",
        "first_demolition_on",
        "completed_on",
        "land_price_yuan",
        "balance_coefficient",
        "collective_revenue_yuan",
        "collective_reinvested_yuan",
        "fiscal_contribution",
        "floor_area_m2",
        "parking_spaces",
    }
)
#: Fields a new unit may also set (an existing project entered at its current stage).
CREATE_FIELDS: frozenset[str] = PATCHABLE_FIELDS | {
    "unit_id",
    "stage",
    "stage_since",
    "suspended_from",
    "barred_until",
}
_MAX_LON, _MAX_LAT = 180.0, 90.0


def town_codes_within(store: Store, prefixes: Sequence[str]) -> list[str]:
    """Town codes of the units and town accounts under jurisdiction prefixes (filtered in SQL).

    The codes feed :func:`list_units`, :func:`evaluate`, :func:`deadlines` and
    :func:`write_report` (``jurisdictions=``), which filter by exact code in SQL.
    """
    codes: set[str] = set()
    for coll in (UNITS_COLLECTION, TOWNS_COLLECTION):
        codes |= {
            str(r.jurisdiction)
            for r in store.query_records(coll, jurisdiction_prefixes=list(prefixes))
            if r.jurisdiction
        }
    return sorted(codes)


def unit_geometry(wkt: str, crs: str = _STORAGE_CRS) -> Any:
    """Parse a red line (WKT in ``crs``) into a valid polygon in the storage CRS (EPSG:4490).

    Raises
    ------
    InputError
        Unreadable WKT or CRS, a geometry that is not a non-empty valid (multi)polygon, or
        coordinates that do not land on the globe after transformation.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    try:
        geom = shapely.from_wkt(wkt)
    except (shapely.errors.GEOSException, ValueError, TypeError):
        raise InputError(
            "单元红线不是有效的 WKT", key="bad_wkt", field="geometry_wkt", hint="如 POLYGON((...))"
        ) from None
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(
            "单元红线须为非空的面 (Polygon 或 MultiPolygon)",
            key="bad_geometry_type",
            field="geometry_wkt",
        )
    if not geom.is_valid:
        raise InputError(
            f"单元红线图形无效: {shapely.is_valid_reason(geom)}",
            key="invalid_geometry",
            field="geometry_wkt",
            hint="检查自相交、重复点和环的方向",
        )
    try:
        src = CRS.from_user_input(crs)
    except ProjCRSError:
        raise InputError(
            f"无法识别坐标参考系 {crs}", key="bad_crs", field="crs", hint="如 EPSG:4490"
        ) from None
    out = gpd.GeoSeries([geom], crs=src).to_crs(_STORAGE_CRS).iloc[0]
    x0, y0, x1, y1 = out.bounds
    finite = all(math.isfinite(v) for v in (x0, y0, x1, y1))
    if (
        not finite
        or min(x0, x1) < -_MAX_LON
        or max(x0, x1) > _MAX_LON
        or min(y0, y1) < -_MAX_LAT
        or max(y0, y1) > _MAX_LAT
        or not out.is_valid
    ):
        raise InputError(
            f"单元红线的坐标与坐标参考系 {crs} 不符 (转换到 EPSG:4490 后超出经纬度范围)",
            key="crs_mismatch",
            field="crs",
            hint="核对坐标参考系; 东莞的经纬度约为东经 113–115°、北纬 22–23°",
        )
    return out


def unit_from_fields(fields_: Mapping[str, Any]) -> RenewalUnit:
    """Build a new unit from flat record fields (:data:`CREATE_FIELDS`), checking every field."""
    unknown = sorted(set(fields_) - CREATE_FIELDS)
    if unknown:
        raise InputError(
            f"不能设定字段: {'、'.join(unknown)}", key="unknown_field", field=unknown[0]
        )
    rec = dict(fields_)
    rec.setdefault("name", rec.get("unit_id"))
    rec["version"] = 0
    return unit_from_record(rec)


def patch_unit(
    store: Store,
    unit_id: str,
    changes: Mapping[str, Any],
    *,
    expected_version: int,
    actor: str,
    geometry: Any = ...,
    crs: Any = None,
    scenario: Any = ...,
    towns_layer: str = DEFAULT_TOWNS_LAYER,
) -> StoredUnit:
    """Change some fields of a stored unit under optimistic locking (:func:`update_unit`).

    ``changes`` maps fields of :data:`PATCHABLE_FIELDS` to new values (None clears a field);
    the rest of the record is kept. The merged record is checked as a whole (date order,
    both shares of a figure) before anything is written.

    Raises
    ------
    ConflictError
        ``version_conflict`` (HTTP 409) when ``expected_version`` is stale, with the other
        editor's record, audit entries and the fields that differ.
    """
    unknown = sorted(set(changes) - PATCHABLE_FIELDS)
    if unknown:
        raise InputError(
            f"不能修改字段: {'、'.join(unknown)}",
            key="unknown_field",
            field=unknown[0],
            hint="阶段请用推进接口 (advance) 修改; 单元编号不可修改",
        )
    current = get_unit(store, unit_id)
    if current.unit.version != expected_version:
        raise _conflict(store, unit_id, expected_version, dict(changes))
    rec = unit_to_record(current.unit)
    rec.update(changes)
    rec["version"] = current.unit.version
    unit = unit_from_record(rec)
    return update_unit(
        store,
        unit,
        expected_version=expected_version,
        actor=actor,
        geometry=geometry,
        crs=crs,
        scenario=scenario,
        towns_layer=towns_layer,
    )


def preview_advance(
    store: Store,
    unit_id: str,
    to_stage: Stage | str,
    at: dt.date,
    pack: PolicyPack,
    *,
    expected_version: int | None = None,
    rights_pack: PolicyPack | None = None,
) -> dict[str, Any]:
    """Say what :func:`advance_unit` would decide, without writing anything (dry run).

    The same gate rules run on the same inputs (registry figures included); the answer
    lists every finding and whether the move is allowed.
    """
    from yizhangtu.renewal.workflow import check_transition

    current = get_unit(store, unit_id)
    if expected_version is not None and expected_version != current.unit.version:
        raise _conflict(store, unit_id, expected_version)
    loaded = load_library(store)
    lib, ratios, _refs, rpack = _with_registry(store, loaded, at, rights_pack)
    effective = next(u for u in lib.units if u.unit_id == unit_id)
    result = check_transition(effective, to_stage, at, pack, lib)
    r = ratios.get(unit_id)
    source = (
        "computed"
        if r is not None and r.covered
        else (effective.consent.source if effective.consent is not None else None)
    )
    out = result.to_dict()
    out.update(
        preview=True,
        version=current.unit.version,
        figure_source=source,
        rights_pack=rpack.ref() if rpack else None,
    )
    return jsonable(out)


# ---------------------------------------------------------------- personal data masking


def mask_person_name(name: str) -> str:
    """Mask a natural person's name: keep the surname character (``张*``, ``欧阳**`` → ``欧**``)."""
    text = str(name).strip()
    return text[:1] + "*" * (len(text) - 1) if len(text) > 1 else "*"


@dataclass(frozen=True)
class NameMask:
    """Names of natural-person rights-holders and their masks (built from the registry)."""

    names: Mapping[str, str]
    holder_ids: frozenset[str] = frozenset()

    def text(self, value: str) -> str:
        """Mask every person's name (two characters or more) inside a text."""
        for name in sorted(self.names, key=len, reverse=True):
            if len(name) > 1 and name in value:
                value = value.replace(name, self.names[name])
        return value

    def apply(self, obj: Any, *, key: str | None = None) -> Any:
        """Mask names throughout a JSON-like structure (a ``name`` value exactly, texts inside)."""
        if isinstance(obj, Mapping):
            return {k: self.apply(v, key=str(k)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.apply(v) for v in obj]
        if isinstance(obj, str):
            if key == "name" and obj in self.names:
                return self.names[obj]
            return self.text(obj)
        return obj

    def finding(self, f: Finding) -> Finding:
        """Return ``f`` with names masked in its message and facts."""
        return replace(f, message=self.text(f.message), facts=self.apply(dict(f.facts)))


def name_mask(store: Store) -> NameMask:
    """Masks of the natural persons of the rights registry (no registry: nothing to mask)."""
    from yizhangtu.rights.model import HolderKind
    from yizhangtu.services.rights import HOLDERS_COLLECTION

    recs = store.list_records(HOLDERS_COLLECTION)
    ids = frozenset(r.key for r in recs)
    names: dict[str, str] = {}
    for r in recs:
        name = str(r.data.get("name") or "").strip()
        kind = r.data.get("kind") or HolderKind.PERSON.value
        if name and name not in ids and kind == HolderKind.PERSON.value:
            names[name] = mask_person_name(name)
    return NameMask(names, ids)


def masked_evaluation(ev: Evaluation, mask: NameMask) -> Evaluation:
    """Return ``ev`` with holders' names masked in the registry findings (reports, API)."""
    if not mask.names:
        return ev
    return replace(ev, rights_findings=tuple(mask.finding(f) for f in ev.rights_findings))


def masked_unit_ratios(
    store: Store, unit_id: str, at: dt.date, rights_pack: PolicyPack | None = None
) -> dict[str, Any]:
    """Consent and signing ratios of a stored unit with personal data masked.

    ID numbers are shown masked (the registry never holds them in clear), phone numbers not
    at all, and natural persons' names keep only the surname character. Nothing is recorded.

    Raises
    ------
    NotFoundError
        The unit, or the rights registry, does not exist.
    """
    from yizhangtu.services import rights as rights_svc

    get_unit(store, unit_id)
    if not rights_svc.has_registry(store):
        raise NotFoundError(
            "工作空间中没有权益登记库, 无法按名册计算意愿和签约比例",
            key="rights_registry_missing",
            feature=unit_id,
            hint="先用 yizhangtu rights import 导入权益人名册和宗地",
        )
    rpack = rights_pack or rights_svc.resolve_rights_pack()
    r = rights_svc.ratios_for_unit(store, unit_id, at, rpack, record=False)
    out = r.to_dict()
    out["unit_id"] = unit_id
    out["masked"] = True
    return jsonable(name_mask(store).apply(out))


# ---------------------------------------------------------------- report job


def report_job(
    uri: str,
    scope: Any,
    reports_dir: Path,
    *,
    at: dt.date,
    jurisdictions: Sequence[str],
    pack_values: Mapping[str, Any] | None = None,
    formats: Sequence[str] = ("html", "pdf"),
) -> Any:
    """Make a job writing the library report (HTML/PDF) into the report folder.

    The job evaluates the units of ``jurisdictions`` (provenance recorded), masks personal
    names, renders the files in a hidden folder and moves them into ``reports_dir`` with
    their sidecars (:func:`yizhangtu.services.jobs.write_report_meta`), so that
    ``/api/reports`` lists and serves them to the user's jurisdiction only.
    """
    import contextlib
    import shutil
    import uuid

    from yizhangtu.services.jobs import open_worker_store, write_lock, write_report_meta

    fmts = tuple(dict.fromkeys(formats))

    def run(progress: Any) -> dict[str, Any]:
        progress(0.05, "读取单元库")
        pack = resolve_pack(None, pack_values)
        pg = uri.startswith(("postgresql://", "postgres://"))
        store = open_worker_store(uri)
        try:
            lock = contextlib.nullcontext() if pg else write_lock(uri)
            with lock:
                ev = evaluate(
                    store, at, pack, actor=str(scope.username), jurisdictions=list(jurisdictions)
                )
            progress(0.3, "屏蔽个人信息")
            ev = masked_evaluation(ev, name_mask(store))
        finally:
            store.close()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        stem = f"renewal_{at.isoformat()}_{stamp}_{uuid.uuid4().hex[:6]}"
        reports_dir.mkdir(parents=True, exist_ok=True)
        tmp = reports_dir / f".{stem}.tmp"
        progress(0.4, "生成报告" + (" (PDF)" if "pdf" in fmts else ""))
        try:
            res = write_report(
                store,
                at,
                pack,
                tmp,
                actor=str(scope.username),
                formats=fmts,
                stem=stem,
                evaluation=ev,
            )
            title = f"城市更新项目库评估报告 {at.isoformat()}" + (
                " (合成数据)" if ev.synthetic else ""
            )
            files = []
            for p in res.paths:
                final = reports_dir / p.name
                write_report_meta(
                    final,
                    kind="renewal",
                    title=f"{title} · {p.suffix[1:].upper()}",
                    scope=scope,
                    synthetic=ev.synthetic,
                    extra={
                        "provenance_id": ev.provenance_id,
                        "at": at.isoformat(),
                        "towns": list(jurisdictions),
                        "pack": dict(ev.pack),
                    },
                )
                p.replace(final)
                files.append(
                    {
                        "report": final.name,
                        "url": f"/api/reports/{final.name}",
                        "format": p.suffix[1:],
                        "bytes": final.stat().st_size,
                    }
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress(1.0, "完成")
        return {
            "report": files[0]["report"],
            "url": files[0]["url"],
            "files": files,
            "at": at.isoformat(),
            "units": len(ev.stored),
            "counts": ev.counts(),
            "provenance_id": ev.provenance_id,
            "synthetic": ev.synthetic,
            "pack": dict(ev.pack),
        }

    return run
