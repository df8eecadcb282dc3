"""Urban renewal ("三旧"改造, 城市更新): the renewal unit library over REST.

Thin routes over :mod:`yizhangtu.services.renewal` and :mod:`yizhangtu.services.rights`
(the same functions the CLI ``yizhangtu renewal`` and the dashboard routes call). Units carry
their town code (镇街代码) as jurisdiction: every list, check and report reads only the units
of the user's towns (filtered in SQL), a unit of another town answers 404, and a user writes
only units of towns inside their jurisdiction. Personal data of rights-holders is never
returned in clear: ID numbers masked, phones omitted, natural persons' names masked.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from yizhangtu.errors import ConflictError, InputError, NotFoundError
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import IsoDay, get_rt, need

__all__ = ["ACCESS", "router"]

_P = "/api/renewal"

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction rules themselves are proved by tests/test_web_renewal.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", f"{_P}/units"): "perm:read",
    ("POST", f"{_P}/units"): "perm:write",
    ("GET", f"{_P}/units/{{unit_id}}"): "perm:read",
    ("PATCH", f"{_P}/units/{{unit_id}}"): "perm:write",
    ("POST", f"{_P}/units/{{unit_id}}/advance"): "perm:write",
    ("GET", f"{_P}/units/{{unit_id}}/ratios"): "perm:read",
    ("GET", f"{_P}/check"): "perm:read",
    ("GET", f"{_P}/deadlines"): "perm:read",
    ("POST", f"{_P}/report"): "perm:reports",
}

router = APIRouter(prefix=_P, tags=["城市更新"])

_DAY = r"^\d{4}-\d{2}-\d{2}$"
_ID = r"^[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z_.\-\u4e00-\u9fff]{0,63}$"
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def _unit_day(value: str) -> str:
    """Accept a real calendar day between 1900 and 2100 (a unit's event date)."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"不是有效日期 {value!r} (应为 YYYY-MM-DD, 如 2024-03-15)") from None
    if not 1900 <= day.year <= 2100:
        raise ValueError(f"日期 {value} 超出 1900–2100 年")
    return value


UnitDay = Annotated[str, StringConstraints(pattern=_DAY), AfterValidator(_unit_day)] | None
TownName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
UnitId = Annotated[str, StringConstraints(pattern=_ID)]
PathId = Annotated[str, Path(max_length=64, description="单元编号")]
Share = Annotated[float, Field(ge=0, le=1)]
Money = Annotated[float, Field(ge=0, le=1e13)]

_TOWNS_Q = Query(max_length=40, description="只看这些镇街 (名称, 须在本辖区内), 可多次")
_AREA_CAP_Q = Query(
    None,
    gt=0,
    le=1e6,
    description="小圈(改造单元)面积上限, 亩 (政策包 unit_area_max; 种子 004 (三) 首位数字不可辨, "
    "不设定时面积上限规则给出“参数待设定”)",
)


# ------------------------------------------------------------------------------ helpers


def _day(at: str | None) -> dt.date:
    return dt.date.fromisoformat(at) if at else dt.date.today()


@functools.lru_cache(maxsize=16)
def _pack(unit_area_max: float | None) -> Any:
    """Return the renewal pack (dongguan-2023) with the user-set unit cap.

    Packs are immutable and shipped with the package: each variant is read once per process.
    """
    from yizhangtu.services import renewal as svc

    return svc.resolve_pack(None, {"unit_area_max": unit_area_max} if unit_area_max else None)


@functools.lru_cache(maxsize=1)
def _rights_pack() -> Any:
    """Return the rights registry's counting pack (rights-counting), read once per process."""
    from yizhangtu.services.rights import resolve_rights_pack

    return resolve_rights_pack()


def _codes(st: Store, scope: Scope, towns: list[str] | None) -> list[str]:
    """Town codes the user may read (SQL prefix filter), narrowed to the towns named."""
    from yizhangtu.services import renewal as svc

    codes = svc.town_codes_within(st, scope.record_prefixes())
    if towns:
        index = svc.town_index(st)
        wanted = [index.code(t) for t in towns]
        for c in wanted:
            scope.require_covers(c, "镇街")
        codes = [c for c in codes if c in wanted]
    return codes


def _visible(st: Store, scope: Scope, unit_id: str) -> Any:
    """Return the stored unit if it lies in the user's jurisdiction; 404 otherwise (never 403)."""
    from yizhangtu.services import renewal as svc

    try:
        stored = svc.get_unit(st, unit_id)
    except NotFoundError:
        stored = None
    if stored is None or not scope.covers(stored.jurisdiction):
        raise NotFoundError(
            f"本辖区没有更新单元 {unit_id}",
            key="unit_not_found",
            feature=unit_id,
            hint="GET /api/renewal/units 列出本辖区的单元",
        )
    return stored


def _writable(st: Store, scope: Scope, unit_id: str) -> Any:
    stored = _visible(st, scope, unit_id)
    scope.require_covers(stored.jurisdiction, "更新单元")
    return stored


def _summary(s: Any) -> dict[str, Any]:
    from yizhangtu.geo.area import convert_area

    u = s.unit

    def fig(f: Any) -> dict[str, Any] | None:
        if f is None:
            return None
        return {"area_share": f.area_share, "head_share": f.head_share, "source": f.source}

    return {
        "unit_id": u.unit_id,
        "name": u.name,
        "town": u.town,
        "town_code": s.jurisdiction,
        "unit_type": u.unit_type.value,
        "mode": u.mode.value,
        "stage": u.stage.value,
        "stage_since": u.stage_since,
        "land_area_m2": u.land_area_m2,
        "land_area_mu": float(convert_area(u.land_area_m2, "mu")),
        "area_id": u.area_id,
        "consent": fig(u.consent),
        "signing": fig(u.signing),
        "has_geometry": s.geometry is not None,
        "synthetic": u.synthetic,
        "version": u.version,
        "updated_by": s.updated_by,
        "updated_at": s.updated_at,
    }


def _stored_out(stored: Any) -> dict[str, Any]:
    from yizhangtu.services.features import json_ready

    out = stored.to_dict()
    out["version"] = stored.unit.version
    out["url"] = f"{_P}/units/{stored.unit.unit_id}"
    return json_ready(out)


# ------------------------------------------------------------------------------ units


def _list(st: Store, scope: Scope, towns: list[str] | None, stage: str | None) -> dict[str, Any]:
    from yizhangtu.renewal.model import Stage, parse_enum
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    want = parse_enum(Stage, stage, "stage") if stage else None
    codes = _codes(st, scope, towns)
    stored = svc.list_units(st, jurisdictions=codes)
    rows = [_summary(s) for s in stored if want is None or s.unit.stage is want]
    return json_ready({"towns": codes, "count": len(rows), "units": rows})


@router.get("/units", summary="本辖区更新单元清单")
async def list_units(
    request: Request,
    town: Annotated[list[TownName] | None, _TOWNS_Q] = None,
    stage: str | None = Query(None, max_length=20, description="只看此阶段, 如 前期工作"),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the renewal units of the user's towns.

    本辖区(按镇街代码在数据库中过滤)的改造单元: 编号、名称、镇街、类型、模式、阶段、
    用地面积(㎡/亩)、填报的意愿与签约占比和版本号 (修改时用作乐观锁)。
    """
    return await get_rt(request).run(_list, scope, town, stage)


def _show(
    st: Store, scope: Scope, unit_id: str, at: str | None, cap: float | None
) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    _visible(st, scope, unit_id)
    out = svc.show_unit(st, unit_id, _day(at), _pack(cap), rights_pack=_rights_pack())
    mask = svc.name_mask(st)
    for key in ("rights", "status"):
        if out.get(key) is not None:
            out[key] = mask.apply(out[key])
    out["url"] = f"{_P}/units/{unit_id}"
    return json_ready(out)


@router.get("/units/{unit_id}", summary="单元详情、检查结果与可推进阶段")
async def show_unit(
    unit_id: PathId,
    request: Request,
    at: Annotated[IsoDay, Query(description="评估日期, 默认今天")] = None,
    unit_area_max: float | None = _AREA_CAP_Q,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Show a unit with its findings and possible moves on a date.

    单元记录(含红线 WKT)、当日规则检查结果、每个可去阶段的判定、意愿/签约数据来源;
    权益登记库覆盖的单元附名册计算的比例 (个人信息已脱敏)。
    """
    return await get_rt(request).run(_show, scope, unit_id, at, unit_area_max)


class _Body(BaseModel):
    """A request body that names each unknown field in Chinese (instead of pydantic's text)."""

    _unknown_hint: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                raise ValueError(f"不能设定字段 {'、'.join(unknown)[:200]}{cls._unknown_hint}")
        return data


class UnitFields(_Body):
    """Fields of a renewal unit (flat, as in the unit list workbook and ``GET units/{id}``)."""

    _unknown_hint: ClassVar[str] = " (阶段只能经推进接口修改, 单元编号不可修改)"

    name: str | None = Field(None, min_length=1, max_length=200, description="单元名称")
    town: TownName | None = Field(None, description="镇街 (与镇街边界图层一致)")
    unit_type: str | None = Field(
        None,
        max_length=20,
        description="改造类型: 工改工/工改居商/旧村改造/城镇社区/产城融合/整村统筹",
    )
    mode: str | None = Field(
        None, max_length=30, description="改造模式: 政府主导/公开招引实施主体/权利人自行改造"
    )
    land_area_m2: float | None = Field(None, gt=0, le=1e9, description="用地面积 (平方米)")
    land_area_mu: float | None = Field(
        None, gt=0, le=1.5e6, description="用地面积 (亩), 与 land_area_m2 二选一"
    )
    area_id: str | None = Field(None, max_length=64, description="所属中圈/连片工改工片区编号")
    old_village_led: bool | None = Field(None, description="以旧村改造为主")
    deadline_exemption: str | None = Field(None, max_length=500, description="期限免责事由")
    expropriation_requested: bool | None = Field(None, description="已申请征收")
    synthetic: bool | None = Field(None, description="合成数据 (演示、测试)")
    consent_area_share: Share | None = Field(None, description="填报的改造意愿, 按面积 (0–1)")
    consent_head_share: Share | None = Field(None, description="填报的改造意愿, 按人数 (0–1)")
    consent_as_of: UnitDay = None
    signing_area_share: Share | None = Field(None, description="填报的签约比例, 按面积 (0–1)")
    signing_head_share: Share | None = Field(None, description="填报的签约比例, 按人数 (0–1)")
    signing_as_of: UnitDay = None
    declared_on: UnitDay = None
    entity_confirmed_on: UnitDay = None
    acquisition_completed_on: UnitDay = None
    plan_approved_on: UnitDay = None
    land_supplied_on: UnitDay = None
    first_demolition_on: UnitDay = None
    completed_on: UnitDay = None
    land_price_yuan: Money | None = None
    balance_coefficient: float | None = Field(None, ge=0, le=100)
    collective_revenue_yuan: Money | None = None
    collective_reinvested_yuan: Money | None = None
    fiscal_contribution: Money | None = None
    floor_area_m2: float | None = Field(None, ge=0, le=1e10)
    parking_spaces: int | None = Field(None, ge=0, le=10_000_000)
    scenario: str | None = Field(None, max_length=500, description="说明 (如演示情景)")
    geometry_wkt: str | None = Field(
        None, min_length=1, max_length=500_000, description="单元红线 (WKT, Polygon/MultiPolygon)"
    )
    crs: str = Field(
        "EPSG:4490", pattern=r"^EPSG:\d{4,6}$", description="红线坐标系, 默认 EPSG:4490"
    )

    def record_fields(self, given: set[str]) -> dict[str, Any]:
        """Return the record fields set in the request (land area in ㎡)."""
        from yizhangtu.geo.area import AREA_UNITS

        if "land_area_m2" in given and "land_area_mu" in given:
            raise InputError(
                "land_area_m2 与 land_area_mu 只能给出一个", key="area_twice", field="land_area_mu"
            )
        out = {
            k: getattr(self, k)
            for k in given
            if k not in ("land_area_mu", "scenario", "geometry_wkt", "crs")
        }
        if "land_area_mu" in given:
            mu = self.land_area_mu
            out["land_area_m2"] = mu * AREA_UNITS["mu"] if mu is not None else None
        return out


class UnitCreate(UnitFields):
    """A new renewal unit; an existing project may be entered at its current stage."""

    _unknown_hint: ClassVar[str] = ""

    unit_id: UnitId = Field(..., description="单元编号 (字母、数字、汉字、- _ .)")
    town: TownName = Field(..., description="镇街 (与镇街边界图层一致)")
    unit_type: str = Field(..., max_length=20, description="改造类型")
    mode: str = Field(..., max_length=30, description="改造模式")
    stage: str | None = Field(None, max_length=20, description="当前阶段, 默认 前期工作")
    stage_since: UnitDay = None
    suspended_from: str | None = Field(None, max_length=20, description="暂停前阶段")
    barred_until: UnitDay = None


def _create(st: Store, scope: Scope, body: UnitCreate) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc

    given = set(body.model_fields_set) | {"unit_id", "town", "unit_type", "mode"}
    fields = body.record_fields(given)
    if "land_area_m2" not in fields:
        raise InputError(
            "请给出用地面积 land_area_m2 (㎡) 或 land_area_mu (亩)",
            key="area_required",
            field="land_area_m2",
        )
    code = svc.town_index(st).code(body.town, body.unit_id)
    scope.require_covers(code, "单元所在镇街")
    unit = svc.unit_from_fields({k: v for k, v in fields.items() if v is not None})
    geom = svc.unit_geometry(body.geometry_wkt, body.crs) if body.geometry_wkt else None
    try:
        existing = svc.get_unit(st, body.unit_id)
    except NotFoundError:
        existing = None
    if existing is not None:
        raise _taken(scope, existing)
    try:
        stored = svc.add_unit(
            st,
            unit,
            actor=str(scope.username),
            geometry=geom,
            crs="EPSG:4490" if geom is not None else None,
            scenario=body.scenario,
        )
    except ConflictError as exc:
        if exc.key != "record_exists":
            raise
        raise _taken(scope, svc.get_unit(st, body.unit_id)) from None
    return _stored_out(stored)


def _taken(scope: Scope, existing: Any) -> ConflictError:
    """Refuse a unit id in use (409), naming the other unit only to users who may read it."""
    uid = existing.unit.unit_id
    mine = scope.covers(existing.jurisdiction)
    return ConflictError(
        f"单元编号 {uid} 已被使用"
        + (f" ({existing.unit.town}, 版本 {existing.unit.version})" if mine else ""),
        key="record_exists",
        field="unit_id",
        feature=uid,
        hint="换一个单元编号; 修改已有单元请用 PATCH /api/renewal/units/{unit_id}",
        data={"version": existing.unit.version, "url": f"{_P}/units/{uid}"} if mine else {},
    )


@router.post("/units", summary="新增更新单元", status_code=201)
async def create_unit(
    body: UnitCreate, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Create a renewal unit in a town of the user's jurisdiction.

    镇街须在本辖区内 (否则 403); 字段逐项校验 (类型、模式、占比 0–1、日期顺序), 红线转换到
    EPSG:4490 存储并刷新单元图层; 写入记审计。编号已存在时 409。
    """
    out = await get_rt(request).run(_create, scope, body)
    return JSONResponse(out, status_code=201, headers={"Location": out["url"]})


class UnitPatch(UnitFields):
    """Changes to a unit, based on the version the user read (optimistic locking)."""

    version: int = Field(..., ge=1, le=2**31, description="读取时的版本号 (乐观锁)")


def _patch(st: Store, scope: Scope, unit_id: str, body: UnitPatch) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc

    _writable(st, scope, unit_id)
    given = set(body.model_fields_set) - {"version", "crs"}
    if not given:
        raise InputError(
            "请求中没有要修改的字段",
            key="nothing_to_change",
            hint='如 {"version": 3, "name": "..."}',
        )
    changes = body.record_fields(given)
    if body.town is not None:
        scope.require_covers(svc.town_index(st).code(body.town, unit_id), "单元的新镇街")
    for k in ("town", "unit_type", "mode", "land_area_m2"):
        if k in changes and changes[k] is None:
            raise InputError(f"{k} 不能清空", key="required_field", field=k)
    kw: dict[str, Any] = {}
    if "geometry_wkt" in given:
        geom = svc.unit_geometry(body.geometry_wkt, body.crs) if body.geometry_wkt else None
        kw.update(geometry=geom, crs="EPSG:4490" if geom is not None else None)
    if "scenario" in given:
        kw["scenario"] = body.scenario
    stored = svc.patch_unit(
        st,
        unit_id,
        changes,
        expected_version=body.version,
        actor=str(scope.username),
        **kw,
    )
    return _stored_out(stored)


@router.patch("/units/{unit_id}", summary="修改更新单元 (乐观锁)")
async def patch_unit(
    unit_id: PathId, body: UnitPatch, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Change some fields of a unit, based on the version the user read.

    只改请求中给出的字段 (null 清空该字段); 阶段只能经推进接口修改。他人已先修改时 409,
    响应 data 中有当前记录、对方的修改(审计记录)和有分歧的字段; 本辖区以外的单元 404。
    """
    return await get_rt(request).run(_patch, scope, unit_id, body)


class Advance(_Body):
    """A stage move (or its preview) based on the version the user read."""

    to_stage: str = Field(
        ...,
        min_length=1,
        max_length=20,
        description="目标阶段: 确认主体/实施方案/开发监管/暂停/退出/禁止重启/前期工作",
    )
    at: IsoDay = Field(None, description="转换日期, 默认今天")
    note: str | None = Field(None, max_length=500, description="说明")
    version: int | None = Field(
        None, ge=1, le=2**31, description="读取时的版本号 (乐观锁; 正式推进时必填)"
    )
    preview: bool = Field(False, description="只预览规则判定, 不改变单元")
    unit_area_max: float | None = Field(None, gt=0, le=1e6, description="小圈面积上限 (亩)")


def _advance(st: Store, scope: Scope, unit_id: str, body: Advance) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    _writable(st, scope, unit_id)
    pack = _pack(body.unit_area_max)
    day = _day(body.at)
    if body.preview:
        out = svc.preview_advance(
            st,
            unit_id,
            body.to_stage,
            day,
            pack,
            expected_version=body.version,
            rights_pack=_rights_pack(),
        )
        return json_ready(out)
    if body.version is None:
        raise InputError(
            "推进阶段须给出读取时的版本号 version",
            key="version_required",
            field="version",
            hint="先 GET /api/renewal/units/{unit_id} 读取 version; 只想看判定可设 preview=true",
        )
    res = svc.advance_unit(
        st,
        unit_id,
        body.to_stage,
        day,
        pack,
        actor=str(scope.username),
        expected_version=body.version,
        note=body.note or None,
        rights_pack=_rights_pack(),
    )
    return json_ready(res.to_dict() | {"preview": False, "allowed": True})


@router.post("/units/{unit_id}/advance", summary="推进单元阶段 (可预览)")
async def advance_unit(
    unit_id: PathId, body: Advance, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Advance a unit's stage, or preview the rules' verdict (``preview``).

    规则允许时推进 (记录与审计同一事务); 规则不允许 422 (data 中有各条判定); 他人已先修改
    409 (含对方的修改)。preview=true 时只返回判定 (allowed 与 findings), 不写入任何内容。
    """
    return await get_rt(request).run(_advance, scope, unit_id, body)


def _ratios(st: Store, scope: Scope, unit_id: str, at: str | None) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    _visible(st, scope, unit_id)
    return json_ready(svc.masked_unit_ratios(st, unit_id, _day(at), _rights_pack()))


@router.get("/units/{unit_id}/ratios", summary="意愿与签约比例 (权益登记库, 已脱敏)")
async def unit_ratios(
    unit_id: PathId,
    request: Request,
    at: Annotated[IsoDay, Query(description="计算日期, 默认今天")] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Consent and signing ratios of a unit, computed from the rights registry.

    按单元红线内的宗地和为本单元所做的意愿、签约记录计算 (按面积与按人数), 列出未同意、
    未签约和特殊权益人。证件号码只显示脱敏值, 不返回电话, 自然人姓名只保留姓氏首字。
    """
    return await get_rt(request).run(_ratios, scope, unit_id, at)


# ------------------------------------------------------------------------------ library


def _empty(day: dt.date, codes: list[str]) -> dict[str, Any]:
    return {
        "available": False,
        "at": day.isoformat(),
        "towns": codes,
        "message": "本辖区没有更新单元",
        "counts": {"error": 0, "warning": 0, "info": 0},
        "units": [],
        "findings": [],
        "findings_total": 0,
    }


def _check(
    st: Store,
    scope: Scope,
    at: str | None,
    days: int | None,
    towns: list[str] | None,
    cap: float | None,
    severity: str,
) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    day = _day(at)
    pack = _pack(cap)
    codes = _codes(st, scope, towns)
    if not codes:
        pack.ensure_valid_at(day)
        return _empty(day, codes)
    ev = svc.evaluate(
        st,
        day,
        pack,
        actor=str(scope.username),
        rights_pack=_rights_pack(),
        jurisdictions=codes,
        days=days,
        record=False,
    )
    ev = svc.masked_evaluation(ev, svc.name_mask(st))
    d = ev.to_dict()
    per: dict[str, dict[str, int]] = {}
    for f in ev.findings:
        c = per.setdefault(str(f.subject), {"error": 0, "warning": 0, "info": 0})
        c[f.severity] = c.get(f.severity, 0) + 1
    units = [
        {
            "unit_id": s.unit.unit_id,
            "name": s.unit.name,
            "town": s.unit.town,
            "stage": s.unit.stage.value,
            "version": s.unit.version,
            **per.get(s.unit.unit_id, {"error": 0, "warning": 0, "info": 0}),
        }
        for s in ev.stored
    ]
    rank = _SEVERITY_RANK[severity]
    findings = [f for f in d["findings"] if _SEVERITY_RANK.get(f["severity"], 2) <= rank]
    d.update(
        available=True,
        towns=codes,
        units=units,
        findings=findings,
        findings_total=len(d["findings"]),
    )
    return json_ready(d)


@router.get("/check", summary="检查单元库 (按政策包)")
async def check(
    request: Request,
    at: Annotated[IsoDay, Query(description="评估日期, 默认今天")] = None,
    days: int | None = Query(None, ge=0, le=3650, description="期限提醒时间窗 (天)"),
    town: Annotated[list[TownName] | None, _TOWNS_Q] = None,
    unit_area_max: float | None = _AREA_CAP_Q,
    severity: Literal["error", "warning", "info"] = Query(
        "info", description="列出此级别及更严重的结果 (error/warning/info)"
    ),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Evaluate the units of the user's towns on a date.

    政策包 dongguan-2023 的全部规则 (意愿、签约、期限、片区层级、面积、工改工联动等) 与
    权益登记库计算的比例: 每条结果的规则、级别、条款和事实; 每个单元的错误/警告/提示数;
    各阶段数量与面积、片区统计、镇街联动和期限提醒。只读, 不记录出处 (报告任务记录)。
    """
    return await get_rt(request).run(_check, scope, at, days, town, unit_area_max, severity)


def _deadlines(
    st: Store, scope: Scope, at: str | None, days: int | None, towns: list[str] | None
) -> dict[str, Any]:
    from yizhangtu.policy.rules import jsonable
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    day = _day(at)
    pack = _pack(None)
    codes = _codes(st, scope, towns)
    if not codes:
        pack.ensure_valid_at(day)
        rows: list[dict[str, Any]] = []
    else:
        df = svc.deadlines(st, day, pack, days=days, jurisdictions=codes)
        rows = jsonable(df.to_dict(orient="records")) if len(df) else []
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
    horizon = days if days is not None else pack.param("timeline_horizon", unit="day", at=day)
    return json_ready(
        {
            "at": day.isoformat(),
            "days": horizon,
            "towns": codes,
            "counts": counts,
            "deadlines": rows,
        }
    )


@router.get("/deadlines", summary="期限提醒 (到期、将到期与逾期)")
async def deadlines(
    request: Request,
    at: Annotated[IsoDay, Query(description="评估日期, 默认今天")] = None,
    days: int | None = Query(
        None, ge=0, le=3650, description="时间窗 (天), 默认政策包 timeline_horizon"
    ),
    town: Annotated[list[TownName] | None, _TOWNS_Q] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Deadlines of the user's units due within ``days`` and overdue ones.

    004 (六)(十二) 的各项期限: 对象、镇街、阶段、事项、起算日、到期日、剩余天数、状态
    (pending 未到期 / due_today 今日到期 / overdue 已逾期) 和免责事由。
    """
    return await get_rt(request).run(_deadlines, scope, at, days, town)


class ReportRequest(_Body):
    """What the report covers."""

    at: IsoDay = Field(None, description="评估日期, 默认今天")
    formats: list[Literal["html", "pdf"]] = Field(
        ["html", "pdf"], min_length=1, max_length=2, description="html、pdf 或两者"
    )
    town: list[TownName] | None = Field(None, max_length=40, description="只含这些镇街")
    unit_area_max: float | None = Field(None, gt=0, le=1e6, description="小圈面积上限 (亩)")


@router.post("/report", summary="单元库评估报告 (后台任务)", status_code=202)
async def report(
    request: Request,
    body: ReportRequest | None = None,
    scope: Scope = Depends(need("reports")),
) -> JSONResponse:
    """Write the renewal library report (HTML/PDF) as a background job; returns 202 and the job id.

    本辖区单元的评估报告 (问题清单、推进情况、期限提醒、意愿来源、片区与联动), 记录出处;
    完成后在 /api/reports 中列出 (仅本辖区可见), 个人姓名已脱敏。
    """
    from yizhangtu.services import renewal as svc

    rt = get_rt(request)
    req = body or ReportRequest.model_validate({})
    day = _day(req.at)
    values = {"unit_area_max": req.unit_area_max} if req.unit_area_max else None

    def check(st: Store) -> list[str]:
        _pack(req.unit_area_max).ensure_valid_at(day)
        codes = _codes(st, scope, req.town)
        if not codes:
            raise NotFoundError(
                "本辖区没有更新单元, 无法生成报告",
                key="no_units",
                hint="先新增或导入改造单元",
            )
        return codes

    codes = await rt.run(check)
    fn = svc.report_job(
        rt.settings.workspace,
        scope,
        rt.settings.reports_path(),
        at=day,
        jurisdictions=codes,
        pack_values=values,
        formats=req.formats,
    )
    job = rt.jobs.submit(
        "renewal_report",
        fn,
        title=f"城市更新单元库评估报告 {day.isoformat()}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )
