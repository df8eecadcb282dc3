"""Rights registry services (权益/产权信息): store, import, ratios, unmasking, backlog.

Storage
-------
- layer ``rights_parcels`` (kind ``other``): parcels (宗地) with code, rights type,
  registered area, certificate number, town and town code;
- records ``rights_holders``: holders; ID and phone numbers only encrypted (AES-GCM, key
  from ``YIZHANGTU_SECRET_KEY``), masked and blind-indexed; jurisdiction = town code when
  all the holder's parcels lie in one town;
- records ``rights_records``: consents and signed agreements (jurisdiction = unit's town);
- tables ``rights_shares``, ``rights_transfers``, ``rights_compensation``;
- tables ``cert_projects`` and ``cert_homes``: certificate backlog;
- records ``rights_permissions``: who may unmask personal numbers. Every unmask is
  audited (``rights.unmask``, one audit record per holder, never the number itself).
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

from yizhangtu.errors import (
    FileFormatError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from yizhangtu.policy.loader import load_pack
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.provenance import InputRef, sha256_hex
from yizhangtu.rights.backlog import (
    BacklogProgress,
    backlog_from_workbook,
    backlog_progress,
    validate_backlog,
)
from yizhangtu.rights.excel import Roster, holders_to_workbook, read_roster
from yizhangtu.rights.model import (
    AgreementRecord,
    Compensation,
    Holder,
    Parcel,
    Registry,
    RegistryProblem,
    Share,
    Transfer,
    raise_problems,
)
from yizhangtu.rights.protect import PIICipher, cipher_from_secret
from yizhangtu.rights.ratios import ScopeRatios, round_start, scope_ratios
from yizhangtu.services.provenance import record_result, snapshot_ref
from yizhangtu.services.renewal import (
    _require_tx,
    _write_layer,
    get_unit,
    records_ref,
    town_index,
)
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, Store

__all__ = [
    "BACKLOG_HOMES",
    "BACKLOG_PROJECTS",
    "HOLDERS_COLLECTION",
    "PARCELS_LAYER",
    "PERMISSIONS_COLLECTION",
    "RECORDS_COLLECTION",
    "UNMASK_PERMISSION",
    "RightsImport",
    "add_record",
    "backlog_from_store",
    "cipher_for",
    "export_holders_xlsx",
    "grant_unmask",
    "has_registry",
    "import_backlog_file",
    "import_roster_file",
    "list_holders",
    "load_registry",
    "ratios_for_polygon",
    "ratios_for_unit",
    "resolve_rights_pack",
    "save_backlog",
    "save_registry",
    "unmask_holders",
]

PARCELS_LAYER = "rights_parcels"
HOLDERS_COLLECTION = "rights_holders"
RECORDS_COLLECTION = "rights_records"
PERMISSIONS_COLLECTION = "rights_permissions"
SHARES_TABLE = "rights_shares"
TRANSFERS_TABLE = "rights_transfers"
COMPENSATION_TABLE = "rights_compensation"
BACKLOG_PROJECTS = "cert_projects"
BACKLOG_HOMES = "cert_homes"
UNMASK_PERMISSION = "pii_unmask"
DEFAULT_RIGHTS_PACK = "rights-counting"
_STORAGE_CRS = "EPSG:4490"

_PARCEL_ALIASES = {
    "宗地代码": "parcel_code",
    "不动产单元号": "parcel_code",
    "权利类型": "rights_type",
    "所有权性质": "ownership",
    "登记面积": "registered_area_m2",
    "登记面积(㎡)": "registered_area_m2",
    "不动产权证号": "certificate_no",
    "镇街": "town",
}


def resolve_rights_pack(
    name_or_path: str | None = None, values: Mapping[str, Any] | None = None
) -> PolicyPack:
    """Load the counting pack (default ``rights-counting``) with user-set values."""
    pack = load_pack(name_or_path or DEFAULT_RIGHTS_PACK)
    return pack.with_values(dict(values)) if values else pack


def cipher_for(settings: Settings) -> PIICipher:
    """Cipher from ``YIZHANGTU_SECRET_KEY`` (clear InputError when it is not set)."""
    return cipher_from_secret(settings.secret_key)


# =========================================================================== load / save


def has_registry(store: Store) -> bool:
    """Tell whether the workspace holds registry parcels."""
    try:
        store.layer(PARCELS_LAYER)
    except NotFoundError:
        return False
    return True


def _table(store: Store, name: str) -> pd.DataFrame | None:
    return store.read_table(name) if name in store.table_names() else None


def _val(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.date()
    return v


def _rows(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None:
        return []
    return [{str(k): _val(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def load_registry(
    store: Store, *, with_refs: bool = False, jurisdictions: Sequence[str] | None = None
) -> Any:
    """Load the registry from the store (parcels in the storage CRS).

    Returns the :class:`Registry`, or ``(registry, input refs)`` when ``with_refs``.
    """
    refs: list[InputRef] = []
    parcels: list[Parcel] = []
    crs: Any = _STORAGE_CRS
    if has_registry(store):
        frame = store.read_layer(PARCELS_LAYER)
        refs.append(snapshot_ref(store.resolve_snapshot(PARCELS_LAYER)))
        crs = frame.crs
        for r, g in zip(
            _rows(frame.drop(columns=frame.geometry.name)), frame.geometry.values, strict=True
        ):
            parcels.append(
                Parcel(
                    parcel_code=str(r["parcel_code"]),
                    rights_type=r["rights_type"],
                    ownership=r.get("ownership"),
                    registered_area_m2=r.get("registered_area_m2"),
                    certificate_no=r.get("certificate_no"),
                    town=r.get("town"),
                    geometry=g,
                    synthetic=bool(r.get("synthetic") or False),
                )
            )
    hrecs = store.list_records(HOLDERS_COLLECTION, jurisdictions=jurisdictions)
    rrecs = store.list_records(RECORDS_COLLECTION, jurisdictions=jurisdictions)
    refs += [records_ref(HOLDERS_COLLECTION, hrecs), records_ref(RECORDS_COLLECTION, rrecs)]
    shares_df = _table(store, SHARES_TABLE)
    transfers_df = _table(store, TRANSFERS_TABLE)
    comp_df = _table(store, COMPENSATION_TABLE)
    for name, df in (
        (SHARES_TABLE, shares_df),
        (TRANSFERS_TABLE, transfers_df),
        (COMPENSATION_TABLE, comp_df),
    ):
        if df is not None:
            refs.append(InputRef(kind="table", name=name, content_hash=store.table_hash(name)))
    reg = Registry(
        parcels=tuple(parcels),
        holders=tuple(Holder.from_record(r.data) for r in hrecs),
        shares=tuple(Share(r["parcel_code"], r["holder_id"], r["share"]) for r in _rows(shares_df)),
        records=tuple(AgreementRecord.from_record(r.data) for r in rrecs),
        transfers=tuple(Transfer(**r) for r in _rows(transfers_df)),
        compensations=tuple(Compensation(**r) for r in _rows(comp_df)),
        crs=crs,
    )
    return (reg, tuple(refs)) if with_refs else reg


def _parcels_frame(
    parcels: Iterable[Parcel], crs: Any, town_codes: Mapping[str, str]
) -> gpd.GeoDataFrame:
    ps = list(parcels)
    missing = [p.parcel_code for p in ps if p.geometry is None]
    if missing:
        raise ValidationError(
            f"{len(missing)} 宗地没有图形: {'、'.join(missing[:10])}",
            key="parcel_geometry_missing",
            field="geometry",
            hint="宗地图形由 --parcels 矢量文件或工作表 宗地 的 几何(WKT) 列提供",
        )
    df = pd.DataFrame(
        [
            {
                "parcel_code": p.parcel_code,
                "rights_type": p.rights_type.value,
                "ownership": p.ownership.value if p.ownership else None,
                "registered_area_m2": p.registered_area_m2,
                "certificate_no": p.certificate_no,
                "town": p.town,
                "town_code": town_codes.get(p.town or ""),
                "synthetic": p.synthetic,
            }
            for p in ps
        ]
    )
    return gpd.GeoDataFrame(df, geometry=[p.geometry for p in ps], crs=crs).to_crs(_STORAGE_CRS)


def _town_codes(store: Store, towns_layer: str | None) -> dict[str, str]:
    if towns_layer is None:
        return {}
    try:
        return dict(town_index(store, towns_layer).codes)
    except NotFoundError:
        return {}


def _holder_jurisdiction(reg: Registry, codes: Mapping[str, str]) -> dict[str, str | None]:
    towns = {p.parcel_code: codes.get(p.town or "") for p in reg.parcels}
    out: dict[str, str | None] = {}
    for h in reg.holders:
        found = {towns.get(c) for c in reg.parcels_of(h.holder_id)} - {None}
        out[h.holder_id] = found.pop() if len(found) == 1 else None
    return out


@dataclass(frozen=True)
class RightsImport:
    """What an import or save wrote."""

    counts: Mapping[str, int]
    parcels_snapshot: Any
    synthetic: bool
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "counts": dict(self.counts),
            "parcels_snapshot": self.parcels_snapshot.to_dict() if self.parcels_snapshot else None,
            "synthetic": self.synthetic,
            "source": self.source,
        }


def save_registry(
    store: Store,
    registry: Registry,
    *,
    actor: str,
    towns_layer: str | None = "dongguan_towns",
    replace_parcels: bool = True,
    source: str | None = None,
) -> RightsImport:
    """Write a whole registry (checked first; nothing is written if it has problems).

    Parcels become a new snapshot; holders and records are created or updated at their
    current version in one transaction with the share, transfer and compensation tables.
    """
    raise_problems(registry.problems(), "权益登记库", file=source)
    codes = _town_codes(store, towns_layer)
    snap = None
    if replace_parcels and registry.parcels:
        frame = _parcels_frame(registry.parcels, registry.crs, codes)
        synthetic = bool(frame["synthetic"].any())
        spec = LayerSpec(
            name=PARCELS_LAYER,
            kind="other",
            title="权益登记宗地" + ("(合成数据)" if synthetic else ""),
            description="宗地代码、权利类型、登记面积与不动产权证号",
            id_field="parcel_code",
            synthetic=synthetic,
            jurisdiction_field="town_code",
        )
        snap = _write_layer(
            store, spec, frame, actor=actor, notes={"parcels": len(frame), "source": source}
        )
    jur = _holder_jurisdiction(registry, codes)
    existing_h = {r.key: r for r in store.list_records(HOLDERS_COLLECTION)}
    existing_r = {r.key: r for r in store.list_records(RECORDS_COLLECTION)}
    unit_codes = _unit_codes(store)
    with _require_tx(store).transaction():
        for h in registry.holders:
            old = existing_h.get(h.holder_id)
            store.put_record(
                HOLDERS_COLLECTION,
                h.holder_id,
                h.to_record(),
                expected_version=old.version if old else None,
                actor=actor,
                jurisdiction=jur.get(h.holder_id),
                action="rights.holder.put",
            )
        for r in registry.records:
            old = existing_r.get(r.record_id)
            store.put_record(
                RECORDS_COLLECTION,
                r.record_id,
                r.to_record(),
                expected_version=old.version if old else None,
                actor=actor,
                jurisdiction=unit_codes.get(r.unit_id or ""),
                action="rights.record.put",
            )
        store.write_table(
            SHARES_TABLE,
            pd.DataFrame(
                [s.__dict__ for s in registry.shares], columns=["parcel_code", "holder_id", "share"]
            ),
            actor=actor,
            action="rights.shares.write",
        )
        store.write_table(
            TRANSFERS_TABLE,
            pd.DataFrame(
                [
                    {
                        **t.__dict__,
                        "start_on": t.start_on.isoformat(),
                        "end_on": t.end_on.isoformat(),
                    }
                    for t in registry.transfers
                ],
                columns=[
                    "transfer_id",
                    "parcel_code",
                    "transferor_id",
                    "transferee",
                    "start_on",
                    "end_on",
                    "mode",
                    "synthetic",
                ],
            ),
            actor=actor,
            action="rights.transfers.write",
        )
        store.write_table(
            COMPENSATION_TABLE,
            pd.DataFrame(
                [
                    {**c.__dict__, "on": c.on.isoformat() if c.on else None}
                    for c in registry.compensations
                ],
                columns=[
                    "record_id",
                    "holder_id",
                    "parcel_code",
                    "unit_id",
                    "amount_yuan",
                    "resettlement",
                    "resettlement_area_m2",
                    "on",
                    "status",
                    "synthetic",
                ],
            ),
            actor=actor,
            action="rights.compensation.write",
        )
    counts = {
        "parcels": len(registry.parcels),
        "holders": len(registry.holders),
        "shares": len(registry.shares),
        "records": len(registry.records),
        "transfers": len(registry.transfers),
        "compensations": len(registry.compensations),
    }
    return RightsImport(counts, snap, registry.synthetic, source)


def _unit_codes(store: Store) -> dict[str, str]:
    from yizhangtu.services.renewal import UNITS_COLLECTION

    return {r.key: r.jurisdiction for r in store.list_records(UNITS_COLLECTION) if r.jurisdiction}


def _merge(old: Registry, roster: Roster, parcels: Sequence[Parcel]) -> Registry:
    """Merge a roster into a registry.

    Roster rows replace stored rows with the same id; shares of the parcels the roster
    names replace their stored shares.
    """
    pmap = {p.parcel_code: p for p in old.parcels}
    pmap.update({p.parcel_code: p for p in parcels})
    hmap = {h.holder_id: h for h in old.holders}
    hmap.update({h.holder_id: h for h in roster.holders})
    touched = {s.parcel_code for s in roster.shares}
    shares = [s for s in old.shares if s.parcel_code not in touched] + list(roster.shares)
    rmap = {r.record_id: r for r in old.records}
    rmap.update({r.record_id: r for r in roster.records})
    tmap = {t.transfer_id: t for t in old.transfers}
    tmap.update({t.transfer_id: t for t in roster.transfers})
    cmap = {c.record_id: c for c in old.compensations}
    cmap.update({c.record_id: c for c in roster.compensations})
    return Registry(
        tuple(pmap.values()),
        tuple(hmap.values()),
        tuple(shares),
        tuple(rmap.values()),
        tuple(tmap.values()),
        tuple(cmap.values()),
        _STORAGE_CRS,
    )


def _read_parcels_file(path: Path, synthetic: bool) -> list[Parcel]:
    from yizhangtu.io import read_source

    frame, _rep = read_source(path)
    if frame.crs is None:
        raise InputError(f"宗地文件 {path.name} 没有坐标参考系", key="crs_missing", file=str(path))
    frame = frame.rename(
        columns={k: v for k, v in _PARCEL_ALIASES.items() if k in frame.columns}
    ).to_crs(_STORAGE_CRS)
    for col in ("parcel_code", "rights_type"):
        if col not in frame.columns:
            raise ValidationError(
                f"宗地文件缺少字段 {col}", key="missing_field", file=str(path), field=col
            )
    out: list[Parcel] = []
    problems: list[RegistryProblem] = []
    for i, (r, g) in enumerate(
        zip(_rows(frame.drop(columns=frame.geometry.name)), frame.geometry.values, strict=True)
    ):
        try:
            out.append(
                Parcel(
                    parcel_code=str(r["parcel_code"]),
                    rights_type=r["rights_type"],
                    ownership=r.get("ownership"),
                    registered_area_m2=r.get("registered_area_m2"),
                    certificate_no=r.get("certificate_no"),
                    town=r.get("town"),
                    geometry=g,
                    synthetic=synthetic or bool(r.get("synthetic") or False),
                )
            )
        except ValidationError as exc:
            problems.append(
                RegistryProblem(exc.key, exc.message, f"第{i + 1}个要素", exc.detail.field)
            )
    raise_problems(problems, "宗地文件", file=str(path))
    return out


def import_roster_file(
    store: Store,
    path: str | Path,
    *,
    settings: Settings,
    parcels_path: str | Path | None = None,
    synthetic: bool = False,
    towns_layer: str | None = "dongguan_towns",
) -> RightsImport:
    """Import a roster workbook (and optionally a parcels vector file) into the registry.

    IDs and phones are encrypted on reading; the merged registry must be consistent
    (shares sum to 1, known holders and parcels, no duplicate holder, consent before
    signing) or nothing is written.
    """
    from openpyxl import load_workbook

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"文件不存在: {p}", key="file_not_found", file=str(p))
    cipher = cipher_for(settings)
    try:
        wb = load_workbook(p, data_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(
            f"无法读取 Excel 文件: {exc}", key="xlsx_invalid", file=str(p)
        ) from None
    try:
        roster = read_roster(wb, cipher, synthetic=synthetic)
    except InputError as exc:
        exc.detail = type(exc.detail)(
            file=str(p), feature=exc.detail.feature, field=exc.detail.field
        )
        raise
    parcels: list[Parcel] = []
    if parcels_path is not None:
        parcels = _read_parcels_file(Path(parcels_path), synthetic)
    for par in roster.parcels:
        if par.parcel_code in roster.wkt:
            try:
                geom = shapely.from_wkt(roster.wkt[par.parcel_code])
            except shapely.errors.GEOSException:
                raise ValidationError(
                    f"宗地 {par.parcel_code} 的 WKT 无法解析",
                    key="bad_wkt",
                    file=str(p),
                    feature=par.parcel_code,
                    field="wkt",
                ) from None
            parcels.append(
                Parcel(
                    par.parcel_code,
                    par.rights_type,
                    par.ownership,
                    par.registered_area_m2,
                    par.certificate_no,
                    par.town,
                    geom,
                    par.synthetic,
                )
            )
    old = load_registry(store)
    merged = _merge(old, roster, parcels)
    return save_registry(
        store,
        merged,
        actor=settings.actor,
        towns_layer=towns_layer,
        replace_parcels=bool(parcels),
        source=str(p),
    )


def add_record(store: Store, record: AgreementRecord, *, actor: str) -> dict[str, Any]:
    """Add one consent or signing record (checked against the registry), audited."""
    reg = load_registry(store)
    if any(r.record_id == record.record_id for r in reg.records):
        from yizhangtu.errors import ConflictError

        raise ConflictError(
            f"记录编号 {record.record_id} 已存在", key="record_exists", feature=record.record_id
        )
    raise_problems(reg.with_records([record]).problems(), "新增记录")
    rec = store.put_record(
        RECORDS_COLLECTION,
        record.record_id,
        record.to_record(),
        expected_version=None,
        actor=actor,
        jurisdiction=_unit_codes(store).get(record.unit_id or ""),
        action="rights.record.create",
    )
    return {"record": dict(rec.data), "version": rec.version}


# =========================================================================== holders


def list_holders(
    store: Store, *, unit_id: str | None = None, jurisdictions: Sequence[str] | None = None
) -> list[Holder]:
    """Holders (masked), optionally only those with land in one renewal unit."""
    if unit_id is None:
        return [
            Holder.from_record(r.data)
            for r in store.list_records(HOLDERS_COLLECTION, jurisdictions=jurisdictions)
        ]
    r = ratios_for_unit(store, unit_id, dt.date.today(), resolve_rights_pack(), record=False)
    ids = {ln.holder_id for ln in r.holders}
    reg = load_registry(store, jurisdictions=jurisdictions)
    return [h for h in reg.holders if h.holder_id in ids]


def grant_unmask(store: Store, grantee: str, *, granted_by: str, reason: str) -> dict[str, Any]:
    """Allow ``grantee`` to unmask personal numbers (audited).

    The first grant of a workspace bootstraps the permission; later grants need a granter
    who holds it.
    """
    if not reason or not reason.strip():
        raise InputError("授权须说明理由", key="reason_required", field="reason")
    grants = {r.key: r for r in store.list_records(PERMISSIONS_COLLECTION)}
    if grants and not _allowed(grants.get(granted_by)):
        raise PermissionDeniedError(
            f"{granted_by} 没有查看个人信息原值的权限, 不能授权他人",
            key="unmask_grant_denied",
            hint="由已获授权的人员执行授权",
        )
    old = grants.get(grantee)
    data = {
        "permissions": [UNMASK_PERMISSION],
        "granted_by": granted_by,
        "reason": reason.strip(),
        "granted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    rec = store.put_record(
        PERMISSIONS_COLLECTION,
        grantee,
        data,
        expected_version=old.version if old else None,
        actor=granted_by,
        action="rights.permission.grant",
    )
    return {"actor": grantee, **dict(rec.data), "version": rec.version}


def _allowed(rec: Any) -> bool:
    return rec is not None and UNMASK_PERMISSION in (rec.data.get("permissions") or [])


def unmask_holders(
    store: Store, holder_ids: Sequence[str], *, settings: Settings, reason: str
) -> list[dict[str, Any]]:
    """Decrypt the ID and phone of the given holders for an authorised actor.

    Raises
    ------
    PermissionDeniedError
        The actor has no ``pii_unmask`` permission, or no reason is given.
    """
    actor = settings.actor
    if not reason or not reason.strip():
        raise InputError("查看个人信息原值须说明理由", key="reason_required", field="reason")
    try:
        grant = store.get_record(PERMISSIONS_COLLECTION, actor)
    except NotFoundError:
        grant = None
    if not _allowed(grant):
        raise PermissionDeniedError(
            f"{actor} 没有查看身份证号、电话原值的权限",
            key="unmask_denied",
            hint="由授权人员执行 yizhangtu rights grant <用户> --reason ... 后再试",
        )
    cipher = cipher_for(settings)
    out = []
    for hid in holder_ids:
        h = Holder.from_record(store.get_record(HOLDERS_COLLECTION, hid).data)
        fields = [f for f, v in (("id_number", h.id_number), ("phone", h.phone)) if v is not None]
        store.audit_append(
            "rights.unmask",
            f"{HOLDERS_COLLECTION}:{hid}",
            actor=actor,
            details={"fields": fields, "reason": reason.strip(), "masked": h.id_masked},
        )
        out.append(
            {
                "holder_id": hid,
                "name": h.name,
                "id_number": cipher.decrypt(h.id_number.token) if h.id_number else None,
                "phone": cipher.decrypt(h.phone.token) if h.phone else None,
            }
        )
    return out


def export_holders_xlsx(
    store: Store,
    path: str | Path,
    *,
    unit_id: str | None = None,
    at: dt.date | None = None,
    pack: PolicyPack | None = None,
) -> Path:
    """Export holders (masked) and, for a unit, its per-holder land and agreement lines."""
    reg = load_registry(store)
    lines: list[Any] = []
    holders = list(reg.holders)
    if unit_id is not None:
        r = ratios_for_unit(
            store, unit_id, at or dt.date.today(), pack or resolve_rights_pack(), record=False
        )
        lines = list(r.holders)
        ids = {ln.holder_id for ln in lines}
        holders = [h for h in holders if h.holder_id in ids]
    codes = {h.holder_id for h in holders}
    wb = holders_to_workbook(
        holders,
        [s for s in reg.shares if s.holder_id in codes],
        lines,
        title="权益人名册" + (f"·单元 {unit_id}" if unit_id else ""),
        synthetic=reg.synthetic,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out


# =========================================================================== ratios


def ratios_for_unit(
    store: Store,
    unit_id: str,
    at: dt.date,
    pack: PolicyPack,
    *,
    actor: str = "unknown",
    record: bool = True,
) -> ScopeRatios:
    """Ratios of a stored renewal unit (its polygon; records made for it; current round)."""
    stored = get_unit(store, unit_id)
    if stored.geometry is None:
        raise ValidationError(
            f"单元 {unit_id} 没有图形, 无法按宗地计算比例",
            key="unit_geometry_missing",
            feature=unit_id,
            hint="用 renewal import --geometry 补充单元红线",
        )
    reg, refs = load_registry(store, with_refs=True)
    scope = gpd.GeoSeries([stored.geometry], crs=stored.crs or _STORAGE_CRS)
    r = scope_ratios(
        reg, scope, at, pack, scope_id=unit_id, unit_id=unit_id, since=round_start(stored.unit)
    )
    return _record(store, r, refs, pack, actor, {"unit_id": unit_id}) if record else r


def ratios_for_polygon(
    store: Store,
    polygon: gpd.GeoSeries,
    at: dt.date,
    pack: PolicyPack,
    *,
    unit_id: str | None = None,
    scope_id: str | None = None,
    actor: str = "unknown",
    record: bool = True,
) -> ScopeRatios:
    """Ratios of any polygon (records of ``unit_id`` only, or of any unit when None)."""
    if polygon.crs is None:
        raise InputError("范围图形缺少坐标参考系", key="crs_missing", field="crs")
    reg, refs = load_registry(store, with_refs=True)
    r = scope_ratios(reg, polygon, at, pack, scope_id=scope_id or "范围", unit_id=unit_id)
    if not record:
        return r
    wkt = shapely.union_all(polygon.to_crs(_STORAGE_CRS).values).wkt
    return _record(
        store, r, refs, pack, actor, {"unit_id": unit_id, "polygon_sha256": sha256_hex(wkt)}
    )


def _record(
    store: Store,
    r: ScopeRatios,
    refs: Sequence[InputRef],
    pack: PolicyPack,
    actor: str,
    params: dict[str, Any],
) -> ScopeRatios:
    rec = record_result(
        store,
        "rights_ratios",
        inputs=list(refs),
        params={"at": r.at.isoformat(), **params},
        policy=pack.ref(),
        result=r.to_dict(),
        actor=actor,
    )
    return replace(r, provenance_id=rec.id)


# =========================================================================== backlog


def save_backlog(
    store: Store, projects: pd.DataFrame, homes: pd.DataFrame, *, actor: str
) -> dict[str, Any]:
    """Validate and store backlog projects and homes (tables, one transaction)."""
    p, h = validate_backlog(projects, homes)
    with _require_tx(store).transaction():
        hp = store.write_table(BACKLOG_PROJECTS, p, actor=actor, action="rights.backlog.write")
        hh = store.write_table(BACKLOG_HOMES, h, actor=actor, action="rights.backlog.write")
    return {"projects": len(p), "homes": len(h), "hashes": {"projects": hp, "homes": hh}}


def import_backlog_file(store: Store, path: str | Path, *, actor: str) -> dict[str, Any]:
    """Import a backlog workbook (sheets 项目 and 房屋)."""
    from openpyxl import load_workbook

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"文件不存在: {p}", key="file_not_found", file=str(p))
    try:
        wb = load_workbook(p, data_only=True, read_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(
            f"无法读取 Excel 文件: {exc}", key="xlsx_invalid", file=str(p)
        ) from None
    try:
        projects, homes = backlog_from_workbook(wb)
    except InputError as exc:
        exc.detail = type(exc.detail)(
            file=str(p), feature=exc.detail.feature, field=exc.detail.field
        )
        raise
    return save_backlog(store, projects, homes, actor=actor)


def backlog_from_store(store: Store, *, district: str | None = None) -> BacklogProgress:
    """Backlog progress from the stored tables (optionally one district)."""
    names = store.table_names()
    if BACKLOG_PROJECTS not in names or BACKLOG_HOMES not in names:
        raise NotFoundError(
            "工作空间中没有办证台账",
            key="backlog_missing",
            hint="用 yizhangtu rights backlog --import 台账.xlsx 导入",
        )
    projects = store.read_table(BACKLOG_PROJECTS)
    homes = store.read_table(BACKLOG_HOMES)
    if district is not None:
        projects = projects[projects["district"] == district]
        if projects.empty:
            raise NotFoundError(
                f"办证台账中没有 {district}", key="district_not_found", feature=district
            )
        homes = homes[homes["project_id"].isin(projects["project_id"])]
    return backlog_progress(projects, homes)
