"""Conformance (管控线与多规合一): control lines, plan conflicts, red-line checks, transmission.

Thin routes over :mod:`yizhangtu.services.conformance`. Policy material is named by id only
(packs, matrices, hierarchies shipped with yizhangtu; never a path from the request). Every
layer a computation reads must be whole-layer-visible to the user
(:func:`yizhangtu.services.jobs.check_whole_layers`): a township user cannot run a report over a
layer holding other townships' features. Overlays of whole layers run as background jobs
writing a GeoPackage report; a red-line check (a small upload) and a transmission check answer
at once.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from yizhangtu.errors import InputError, UnsupportedTypeError
from yizhangtu.services import conformance as svc
from yizhangtu.services.auth import Scope
from yizhangtu.services.features import json_ready
from yizhangtu.store import Store
from yizhangtu.web.deps import IsoDay, get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: whole-layer jurisdiction rule is proved by tests/test_web_conformance.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/conformance/packs"): "perm:read",
    ("GET", "/api/conformance/matrices"): "perm:read",
    ("GET", "/api/conformance/hierarchies"): "perm:read",
    ("GET", "/api/conformance/line-types"): "perm:read",
    ("POST", "/api/conformance/lines"): "perm:reports",
    ("POST", "/api/conformance/conflicts"): "perm:reports",
    ("POST", "/api/conformance/check-redline"): "perm:read",
    ("POST", "/api/conformance/transmission"): "perm:read",
}

router = APIRouter(prefix="/api/conformance", tags=["规划符合性"])

_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
_LAYER = r"^[a-z][a-z0-9_]{0,46}$"
_FIELD = r"^[^\x00-\x1f\"'\\]{1,64}$"
_LINE_TYPE = r"^[a-z][a-z0-9_]{0,40}$"
PackId = Annotated[str, StringConstraints(pattern=_ID, max_length=64)]
LayerName = Annotated[str, StringConstraints(pattern=_LAYER, max_length=47)]
FieldName = Annotated[str, StringConstraints(pattern=_FIELD, max_length=64)]
LineTypeId = Annotated[str, StringConstraints(pattern=_LINE_TYPE, max_length=41)]
AreaUnit = Literal["m2", "ha", "km2", "mu"]

_PACKS_DESC = "合规审查政策包编号 (默认 conformance-national 与 conformance-beijing), 见 GET packs"
_LINES_DESC = '管控线类型 → 图层, 如 {"eco_redline": "stx_2023"} (默认按约定图层名查找)'

#: Red-line files: 界址点坐标 TXT, or polygon files (zipped shapefile, GeoPackage, GeoJSON …).
_JZD_EXT = (".txt", ".jzd")
_POLYGON_EXT = (".zip", ".gpkg", ".geojson", ".json", ".kml", ".gml", ".fgb")
_ENCODINGS = ("utf-8", "gbk", "gb18030", "gb2312", "big5")
_CRS = r"^(?i:epsg):\d{4,6}$"
_MAX_LIST = 12


def _accepted(job: Any) -> JSONResponse:
    """202 with the job and where to poll it."""
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


# -------------------------------------------------------------------------------- catalogue


@router.get("/packs", summary="合规审查政策包")
def packs(scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the policy packs usable for conformance.

    可用的合规审查政策包 (rules: 判定规则与容差; elasticity: 规划传导弹性), 含参数及其条款依据。
    """
    return {"packs": svc.conformance_packs(), "default": list(svc.DEFAULT_PACKS)}


@router.get("/matrices", summary="冲突矩阵")
def matrices(scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the shipped compatibility matrices.

    内置的多规冲突矩阵 (左右两侧的分类与冲突类型数)。
    """
    from yizhangtu.conformance import list_matrices

    return {"matrices": list_matrices()}


@router.get("/hierarchies", summary="规划层级 (传导)")
def hierarchies(scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the shipped plan hierarchies for transmission checks.

    内置的规划传导层级 (上级 → 下级), 及其弹性所在的政策包。
    """
    from yizhangtu.conformance import list_hierarchies, load_hierarchy

    out = []
    for hid in list_hierarchies():
        h = load_hierarchy(hid)
        out.append(
            {
                "id": h.id,
                "title": h.title,
                "levels": list(h.levels),
                "nodes": len(h.nodes),
                "metrics": {k: {"label": m.label, "unit": m.unit} for k, m in h.metrics.items()},
                "elasticity_pack": h.elasticity_pack,
                "synthetic": h.synthetic,
                "hash": h.hash,
            }
        )
    return {"hierarchies": out}


@router.get("/line-types", summary="管控线类型")
def line_types(scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the control line and zone types, with their conventional layer names.

    三条控制线与两线三区分区类型, 及工作空间中的约定图层名。
    """
    import dataclasses

    from yizhangtu.conformance import line_types as types

    return {"line_types": [dataclasses.asdict(t) for t in types().values()]}


# -------------------------------------------------------------------------------- jobs


class LinesRequest(BaseModel):
    """Which control lines, zones and units to check."""

    model_config = ConfigDict(extra="forbid")

    lines: dict[LineTypeId, LayerName] | None = Field(
        None, max_length=_MAX_LIST, description=_LINES_DESC
    )
    zones_layer: LayerName | None = Field(None, description="两线三区分区图层 (默认 bj_zones)")
    zone_field: FieldName = Field("zone", description="分区字段")
    units_layer: LayerName | None = Field(
        None, description="统计分区占比的辖区图层, 如 streets; 不给则不统计占比"
    )
    unit_field: FieldName = Field("code", description="辖区编号字段")
    unit_name_field: FieldName | None = Field("name", description="辖区名称字段")
    scope_name: str = Field("合计", min_length=1, max_length=50, description="辖区合计的名称")
    packs: list[PackId] | None = Field(None, max_length=5, description=_PACKS_DESC)
    at: IsoDay = Field(None, description="评价日期 YYYY-MM-DD (默认今天)")
    area_unit: AreaUnit = Field("ha", description="面积单位")


@router.post("/lines", summary="三条控制线重叠检查 (后台任务)", status_code=202)
async def lines(
    body: LinesRequest, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """Check the control lines for mutual overlaps, and zone shares by unit (a job).

    三条控制线 (生态保护红线、永久基本农田、城镇开发边界) 相互重叠检查, 及两线三区各分区
    占辖区面积的比例; 结果图斑与汇总写入 GeoPackage 报告。所用图层须对本人整层可见。
    返回 202 与任务编号。
    """
    from yizhangtu.services.jobs import check_whole_layers

    rt = get_rt(request)
    params = body.model_dump()
    fn = svc.lines_report_job(rt.settings.workspace, scope, rt.settings.reports_path(), params)

    def check(st: Store) -> None:
        layers = svc.lines_layers(
            st,
            lines=body.lines or None,
            zones_layer=body.zones_layer,
            zone_field=body.zone_field,
            units_layer=body.units_layer,
            unit_field=body.unit_field,
        )
        check_whole_layers(st, scope, *layers)

    await rt.run(check)
    job = rt.jobs.submit(
        "conformance_lines",
        fn,
        title="三条控制线重叠检查",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


class ConflictsRequest(BaseModel):
    """Two layers and the matrix to compare them under."""

    model_config = ConfigDict(extra="forbid")

    left_layer: LayerName = Field(..., description="左图层 (矩阵左侧, 如三调 survey)")
    right_layer: LayerName = Field(..., description="右图层 (矩阵右侧, 如规划 plan_landuse)")
    matrix: PackId = Field(..., description="冲突矩阵编号, 见 GET matrices")
    left_field: FieldName | None = Field(None, description="左图层分类字段 (默认矩阵或图层登记)")
    right_field: FieldName | None = Field(None, description="右图层分类字段")
    units_layer: LayerName | None = Field(None, description="按此单元图层汇总, 如 streets")
    unit_field: FieldName = Field("code", description="单元编号字段")
    unit_name_field: FieldName | None = Field("name", description="单元名称字段")
    packs: list[PackId] | None = Field(None, max_length=5, description=_PACKS_DESC)
    area_unit: AreaUnit = Field("ha", description="面积单位")


@router.post("/conflicts", summary="多规冲突分析 (后台任务)", status_code=202)
async def conflicts(
    body: ConflictsRequest, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """Overlay two layers under a compatibility matrix (a job).

    按冲突矩阵叠加两个图层 (如三调现状 × 用地用海规划), 输出冲突图斑、按类型与按单元的
    汇总, 写入 GeoPackage 报告。所用图层须对本人整层可见。返回 202 与任务编号。
    """
    from yizhangtu.services.jobs import check_whole_layers

    rt = get_rt(request)
    params = body.model_dump()
    fn = svc.conflicts_report_job(rt.settings.workspace, scope, rt.settings.reports_path(), params)

    def check(st: Store) -> None:
        layers = svc.conflicts_layers(
            st,
            body.left_layer,
            body.right_layer,
            matrix=body.matrix,
            left_field=body.left_field,
            right_field=body.right_field,
            units_layer=body.units_layer,
            unit_field=body.unit_field,
        )
        check_whole_layers(st, scope, *layers)

    await rt.run(check)
    job = rt.jobs.submit(
        "conformance_conflicts",
        fn,
        title=f"多规冲突分析 {body.left_layer} × {body.right_layer}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


# -------------------------------------------------------------------------------- red line

_REDLINE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "界址点坐标 TXT (.txt/.jzd)、zip 压缩的 Shapefile、"
                            "gpkg、geojson、kml、gml 或 fgb (面要素)",
                        },
                        "line": {
                            "type": "array",
                            "items": {"type": "string", "maxLength": 100},
                            "description": "管控线 类型=图层, 可多次 (默认按约定图层名查找)",
                        },
                        "zones_layer": {"type": "string", "pattern": _LAYER},
                        "zone_field": {"type": "string", "maxLength": 64},
                        "plan": {
                            "type": "array",
                            "items": {"type": "string", "maxLength": 120},
                            "description": "规划图层[:地类字段], 可多次 (默认全部登记了地类字段的"
                            "规划图层)",
                        },
                        "registered_layer": {
                            "type": "string",
                            "pattern": _LAYER,
                            "description": "登记红线图层 (默认 redlines)",
                        },
                        "registered_id_field": {"type": "string", "maxLength": 64},
                        "crs": {
                            "type": "string",
                            "pattern": _CRS,
                            "description": "红线坐标系, 覆盖文件声明, 如 EPSG:4527",
                        },
                        "xy_order": {"type": "string", "enum": ["ne", "en"]},
                        "encoding": {"type": "string", "enum": list(_ENCODINGS)},
                        "id_field": {"type": "string", "maxLength": 64},
                        "pack": {
                            "type": "array",
                            "items": {"type": "string", "pattern": _ID},
                            "description": _PACKS_DESC,
                        },
                        "at": {"type": "string", "format": "date"},
                        "area_unit": {"type": "string", "enum": list(svc.AREA_UNITS)},
                        "report": {
                            "type": "string",
                            "enum": ["html", "pdf"],
                            "description": "另存一页审查结果单为报告 (html 或 pdf)",
                        },
                    },
                }
            }
        },
    }
}


def _one(
    form: Any, key: str, pattern: str | None = None, choices: tuple[str, ...] = ()
) -> str | None:
    """Return one optional text field of the form, checked; InputError names the field."""
    v = form.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InputError(f"字段 {key} 应为文本", key="bad_form_field", field=key)
    v = v.strip()
    if not v:
        return None
    if choices and v not in choices:
        raise InputError(
            f"字段 {key} 的取值 {v[:40]!r} 无效",
            key="bad_form_field",
            field=key,
            hint="可选: " + ", ".join(choices),
        )
    if pattern and not re.match(pattern, v):
        raise InputError(f"字段 {key} 的取值 {v[:40]!r} 格式不符", key="bad_form_field", field=key)
    return v


def _many(form: Any, key: str, pattern: str) -> list[str]:
    """Return a repeated text field of the form, each value checked."""
    vals = [v for v in form.getlist(key) if not (isinstance(v, str) and not v.strip())]
    if len(vals) > _MAX_LIST:
        raise InputError(f"字段 {key} 最多 {_MAX_LIST} 项", key="bad_form_field", field=key)
    out = []
    for v in vals:
        if not isinstance(v, str) or not re.match(pattern, v.strip()):
            raise InputError(
                f"字段 {key} 的取值 {str(v)[:40]!r} 格式不符", key="bad_form_field", field=key
            )
        out.append(v.strip())
    return out


def _line_pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


async def _save_upload(upload: Any, dest: Path, limit: int) -> None:
    """Stream an upload to ``dest``, refusing it past ``limit`` bytes."""
    from yizhangtu.services.uploads import PayloadTooLargeError

    size = 0
    with dest.open("wb") as out:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"红线文件过大, 上限 {limit / 1024 / 1024:.1f} MB",
                    key="upload_too_large",
                    file=dest.name,
                )
            out.write(chunk)


def _check_redline_file(path: Path, name: str, rt: Any) -> None:
    """Type checks of the upload: 界址点 TXT must be text; other files go through check_upload."""
    from yizhangtu.errors import FileFormatError
    from yizhangtu.services.uploads import check_upload

    ext = Path(name).suffix.lower()
    if ext in _JZD_EXT:
        if path.stat().st_size == 0:
            raise FileFormatError("上传的文件是空的", key="empty_upload", file=name)
        with path.open("rb") as fh:
            head = fh.read(4096)
        if b"\x00" in head or head.startswith((b"PK\x03\x04", b"SQLite format 3")):
            raise UnsupportedTypeError(
                f"文件内容与扩展名 {ext} 不符 (不是文本)", key="content_mismatch", file=name
            )
        return
    if ext not in _POLYGON_EXT:
        raise UnsupportedTypeError(
            f"不支持的红线文件类型: {ext or '(无扩展名)'}",
            key="unsupported_type",
            file=name,
            hint="可上传: " + ", ".join(_JZD_EXT + _POLYGON_EXT) + " (Shapefile 请打包为 zip)",
        )
    check_upload(path, name, rt.upload_limits)


@router.post("/check-redline", summary="红线合规性审查 (上传红线文件)", openapi_extra=_REDLINE_BODY)
async def check_redline(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """Check an uploaded project red line against control lines, zones, plans and registrations.

    上传红线文件 (multipart: file 为界址点坐标 TXT 或面图层文件), 审查其与三条控制线、两线
    三区分区、规划地类的交叉面积与占比, 以及与登记红线的比对 (坐标容差, 004 (十一));
    按政策包给出结论 (通过 / 需审查 / 不通过) 与依据条款。report=html|pdf 时另存一页结果单
    为报告。所用图层须对本人整层可见。
    """
    rt = get_rt(request)
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedTypeError(
            "请用 multipart/form-data 上传红线文件 (字段 file)",
            key="unsupported_type",
            hint="curl -F file=@redline.txt …/api/conformance/check-redline",
        )
    tmp = Path(tempfile.mkdtemp(prefix="yz-redline-"))
    try:
        form = await request.form(max_files=1, max_fields=60)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
                raise InputError("缺少上传文件 (字段 file)", key="missing_file", field="file")
            report = _one(form, "report", choices=("html", "pdf"))
            if report:
                scope.require("reports")
            at_text = _one(form, "at", r"^\d{4}-\d{2}-\d{2}$")
            try:
                at = dt.date.fromisoformat(at_text) if at_text else None
            except ValueError:
                raise InputError(
                    f"日期无效: {at_text} (应为 YYYY-MM-DD)", key="bad_date", field="at"
                ) from None
            unit = _one(form, "area_unit", choices=svc.AREA_UNITS) or "m2"
            lines = _line_pairs(_many(form, "line", r"^[a-z][a-z0-9_]{0,40}=[a-z][a-z0-9_]{0,46}$"))
            opts: dict[str, Any] = {
                "lines": lines or None,
                "zones_layer": _one(form, "zones_layer", _LAYER),
                "zone_field": _one(form, "zone_field", _FIELD) or "zone",
                "plans": _many(form, "plan", r"^[a-z][a-z0-9_]{0,46}(:[^\x00-\x1f\"'\\]{1,64})?$")
                or None,
                "registered_layer": _one(form, "registered_layer", _LAYER),
                "registered_id_field": _one(form, "registered_id_field", _FIELD),
                "packs": _many(form, "pack", _ID) or None,
                "crs": _one(form, "crs", _CRS),
                "xy_order": _one(form, "xy_order", choices=("ne", "en")) or "ne",
                "encoding": _one(form, "encoding", choices=_ENCODINGS),
                "id_field": _one(form, "id_field", _FIELD),
                "at": at,
                "target_crs": rt.settings.storage_crs,
            }
            if opts["crs"]:
                opts["crs"] = str(opts["crs"]).upper()
            name = Path(str(upload.filename).replace("\\", "/")).name or "redline"
            if name.startswith("."):
                name = "redline" + name
            dest = tmp / name
            await _save_upload(upload, dest, rt.upload_limits.max_bytes)
        finally:
            await form.close()
        _check_redline_file(dest, name, rt)
        outcome = await rt.run(lambda st: svc.check_redline_scoped(st, scope, dest, **opts))
        entry = None
        if report:
            entry = await run_in_threadpool(
                svc.write_redline_report,
                outcome,
                rt.settings.reports_path(),
                scope,
                report,
                unit=unit,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(json_ready(outcome.to_dict(unit) | {"report": entry}))


# -------------------------------------------------------------------------------- transmission

_Num = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
_NonNeg = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
_Metric = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
_Short = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PlanNodeIn(BaseModel):
    """One plan of an inline hierarchy."""

    model_config = ConfigDict(extra="forbid")

    id: _Short = Field(..., description="节点编号")
    name: str | None = Field(None, max_length=200, description="名称")
    level: _Short = Field(..., description="层级, 须在 levels 中")
    parent: _Short | None = Field(None, description="上级节点编号 (根节点为空)")
    values: dict[_Metric, _Num] = Field(
        default_factory=dict,
        max_length=20,
        description="规划值 (上限或任务), 指标见 GET hierarchies",
    )
    current: dict[_Metric, _NonNeg] = Field(
        default_factory=dict, max_length=20, description="现状值"
    )
    synthetic: bool | None = None
    source: str | None = Field(None, max_length=200, description="数值出处")


class HierarchyIn(BaseModel):
    """A plan hierarchy given inline: a parent plan and its children (and theirs)."""

    model_config = ConfigDict(extra="forbid")

    id: PackId = Field("request", description="层级编号")
    title: str = Field(..., min_length=1, max_length=200)
    levels: list[_Short] = Field(..., min_length=2, max_length=8, description="层级, 从上到下")
    elasticity_pack: PackId | None = Field(None, description="弹性所在政策包")
    synthetic: bool = False
    notes: list[Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=list, max_length=20
    )
    nodes: list[PlanNodeIn] = Field(..., min_length=2, max_length=500)


class TransmissionRequest(BaseModel):
    """A shipped hierarchy by id, or one given inline."""

    model_config = ConfigDict(extra="forbid")

    hierarchy: PackId | None = Field(None, description="内置规划层级编号, 见 GET hierarchies")
    plan: HierarchyIn | None = Field(None, description="或直接给出上下级规划 (二选一)")
    elasticity_pack: PackId | None = Field(
        None, description="弹性所在政策包 (默认层级指定), 如 dongguan-2023"
    )
    packs: list[PackId] | None = Field(
        None, max_length=5, description="提示语所在政策包 (默认 conformance-national)"
    )
    at: IsoDay = Field(None, description="评价日期 YYYY-MM-DD (默认今天)")


@router.post("/transmission", summary="规划传导检查")
async def transmission(
    body: TransmissionRequest, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """Check a plan hierarchy: children's totals within the parent's caps plus elasticity.

    规划传导检查: 下级合计不得超过上级上限 (允许政策包规定的每级弹性, 如东莞 10%,
    004 (四)), 任务须由下级共同完成; 报告余量与现状对照, 并记录溯源。hierarchy (内置编号)
    与 plan (直接给出的上下级规划) 二选一。
    """
    source: str | dict[str, Any]
    if body.hierarchy is not None and body.plan is None:
        source = body.hierarchy
    elif body.plan is not None and body.hierarchy is None:
        source = body.plan.model_dump(exclude_none=True)
    else:
        raise InputError(
            "请在 hierarchy (内置规划层级编号) 与 plan (直接给出的层级) 中二选一",
            key="hierarchy_choice",
            field="hierarchy",
            hint="内置层级见 GET /api/conformance/hierarchies",
        )
    at = dt.date.fromisoformat(body.at) if body.at else None

    def run(st: Store) -> dict[str, Any]:
        out = svc.transmission_check(
            source,
            elasticity_pack=body.elasticity_pack,
            packs=body.packs,
            at=at,
            store=st,
            actor=str(scope.username),
        )
        return dict(json_ready(out.to_dict()))

    return await get_rt(request).run(run)
