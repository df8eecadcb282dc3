"""Indicators and the city health check (指标与城市体检): catalogues, inputs, runs, reports.

Thin routes over :mod:`yizhangtu.services.indicators`. Catalogues are named by packaged id only
(never a path from the request). Evaluating and writing the health check report are background
jobs (202 + job id); the stored runs are read back from the evaluation ledger.

Jurisdiction rules
------------------
Reading a run
    Only the rows of units *inside* the caller's jurisdiction are returned; the filter runs in
    the store's SQL on the ledger's ``unit_id``. A township user therefore sees its own street
    row of a street-level run and neither the district aggregate row nor other streets; a
    district-level run (one row, the district) is invisible to it (404). District and city
    users see the streets and the aggregate of their area. Run lists and counts are of the
    visible rows only.
Evaluating, writing a report
    The evaluated area must lie inside the caller's jurisdiction (403 otherwise): the job
    writes the area's rows (its streets and its aggregate) to the ledger. Jurisdiction-bound
    layers (e.g. the survey) are read only within the area's unit boundaries, so the results
    concern the caller's own units. The report file carries the caller's jurisdiction, so
    ``/api/reports`` shows it to the caller and to users above them.
Input readiness
    Lists workspace objects (layers, tables) by name, as the catalogue does; it is open to a
    user whose jurisdiction covers the area or lies inside it (a township checking its
    district's inputs). Notes naming individual units are shown only when the area is inside
    the caller's jurisdiction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from yizhangtu.errors import PermissionDeniedError
from yizhangtu.services import indicators as svc
from yizhangtu.services.auth import Scope
from yizhangtu.services.features import json_ready
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_indicators.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/indicators/catalogues"): "perm:read",
    ("GET", "/api/indicators/catalogues/{name}"): "perm:read",
    ("GET", "/api/indicators/inputs"): "perm:read",
    ("POST", "/api/indicators/runs"): "perm:write",
    ("GET", "/api/indicators/runs"): "perm:read",
    ("GET", "/api/indicators/runs/{run_id}"): "perm:read",
    ("GET", "/api/indicators/runs/{run_id}/provenance"): "perm:read",
    ("POST", "/api/indicators/health-check-reports"): "perm:reports",
}

router = APIRouter(prefix="/api/indicators", tags=["指标与城市体检"])

_CATALOGUE = r"^[a-z][a-z0-9_]{0,63}$"
_INDICATOR = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$"
_LAYER = r"^[a-z][a-z0-9_]{0,46}$"
_UNIT = r"^[^\x00-\x1f\x7f]{1,64}$"
_RUN_ID = r"^[A-Za-z0-9_-]{4,128}$"
_LEVEL = r"^(street|district)$"
_FORMAT = r"^(html|pdf|xlsx)$"
_TEXT = r"^[^\x00-\x1f\x7f]{1,100}$"

CatalogueId = Annotated[str, StringConstraints(pattern=_CATALOGUE, max_length=64)]
LayerName = Annotated[str, StringConstraints(pattern=_LAYER, max_length=47)]
Year = Annotated[int, Field(ge=1949, le=2100)]

_UNIT_DESC = "评估单元名称或代码, 如 朝阳区 或 110105"
_LEVEL_DESC = "单元层级: street (街道乡镇, 含区县汇总行) 或 district (区县)"
_CAT_DESC = (
    "指标目录编号 (内置目录, 见 GET catalogues), 可多个; 缺省为该地区的本地目录 + tdt1063_style"
)


class EvaluateRequest(BaseModel):
    """An evaluation of one area for one year."""

    model_config = ConfigDict(extra="forbid")

    unit: str = Field(..., min_length=1, max_length=64, pattern=_UNIT, description=_UNIT_DESC)
    year: Year = Field(..., description="评估年份, 如 2021")
    level: str = Field("street", pattern=_LEVEL, description=_LEVEL_DESC)
    catalogues: list[CatalogueId] | None = Field(None, max_length=8, description=_CAT_DESC)
    history_years: list[Year] | None = Field(
        None, max_length=20, description="用于趋势的往年; 缺省为工作空间中所有更早的调查与统计年份"
    )
    survey: LayerName | None = Field(None, description="三调图层 (缺省 survey)")
    units_layer: LayerName | None = Field(None, description="街道乡镇边界图层 (缺省自动查找)")
    district_layer: LayerName | None = Field(None, description="区县边界图层 (缺省自动查找)")
    min_coverage: float | None = Field(
        None, gt=0, le=1, description="三调覆盖单元的最小比例, 低于此比例的单元不计算面积类指标"
    )


class ReportRequest(EvaluateRequest):
    """A health check report: the evaluation, then the report file(s)."""

    format: str = Field("html", pattern=_FORMAT, description="报告格式: html、pdf 或 xlsx")
    xlsx: bool = Field(False, description="同时导出评估结果 Excel (格式为 html 或 pdf 时)")
    map_indicator: str | None = Field(
        None, max_length=100, pattern=_INDICATOR, description="专题图指标编码 (缺省自动选择)"
    )
    save: bool = Field(True, description="同时把评估结果写入评估台账")


def _related(scope: Scope, code: str) -> bool:
    """Tell whether the area is inside the caller's jurisdiction, or contains it."""
    j = str(scope.jurisdiction or "")
    return bool(j) and (code.startswith(j) or j.startswith(code.rstrip("0") or code))


def _inputs(st: Store, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    code, _name = svc.area_code(st, params["unit"], layer=params.get("district_layer") or None)
    if not _related(scope, code):
        raise PermissionDeniedError(
            f"评估单元不在你的辖区内 (辖区 {scope.jurisdiction}, 单元 {code})",
            key="outside_jurisdiction",
            field="unit",
            hint="只能查看本辖区或上级区县的指标输入",
        )
    out = svc.inputs_overview(st, **params)
    out["notes_hidden"] = not scope.covers(code)
    if out["notes_hidden"]:
        out["notes"] = []
    return out


def _accepted(job: Any) -> JSONResponse:
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


@router.get("/catalogues", summary="指标目录列表")
async def catalogues(scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the packaged indicator catalogues.

    内置指标目录及其指标数、有公式的指标数、有目标值的指标数和维度。
    """
    rows = await run_in_threadpool(svc.catalogue_overview)
    return {"catalogues": json_ready(rows)}


@router.get("/catalogues/{name}", summary="指标目录详情")
async def catalogue(
    name: str = Path(..., max_length=64, pattern=_CATALOGUE, description="指标目录编号"),
    dimension: str | None = Query(None, max_length=100, pattern=_TEXT, description="只列该维度"),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Describe one catalogue and its indicators.

    每项指标的公式 (类型与输入)、单位、方向、目标值 (年份、数值、条款)、预警规则与依据条款。
    """
    out = await run_in_threadpool(svc.catalogue_detail, name, dimension=dimension)
    return dict(json_ready(out))


@router.get("/inputs", summary="指标输入检查")
async def inputs(
    request: Request,
    unit: str = Query(..., max_length=64, pattern=_UNIT, description=_UNIT_DESC),
    year: int = Query(..., ge=1949, le=2100, description="评估年份"),
    level: str = Query("street", pattern=_LEVEL, description=_LEVEL_DESC),
    catalogue: list[CatalogueId] | None = Query(None, max_length=8, description=_CAT_DESC),
    survey: str | None = Query(None, max_length=47, pattern=_LAYER, description="三调图层"),
    units_layer: str | None = Query(None, max_length=47, pattern=_LAYER),
    district_layer: str | None = Query(None, max_length=47, pattern=_LAYER),
    min_coverage: float | None = Query(None, gt=0, le=1),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Which workspace inputs each indicator needs, and whether they are present.

    按输入 (地类分组、统计表、设施图层、单元边界) 和按指标列出: 需要什么、工作空间是否具备、
    来自哪个图层或数据表、缺什么。读取方式与评估相同 (对三调做一次统计)。
    """
    params = {
        "unit": unit,
        "year": year,
        "level": level,
        "catalogues": catalogue or None,
        "survey": survey,
        "units_layer": units_layer,
        "district_layer": district_layer,
        "min_coverage": min_coverage,
    }
    return dict(json_ready(await get_rt(request).run(_inputs, scope, params)))


@router.post("/runs", summary="指标评估 (后台任务)", status_code=202)
async def evaluate(
    body: EvaluateRequest, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Evaluate the indicators of an area for a year (background job).

    计算并评估指标 (目标、趋势、预警), 写入评估台账并记录溯源; 评估单元须在本人辖区内。
    返回 202 与任务编号, 任务结果给出评估编号 (run_id)。
    """
    rt = get_rt(request)
    params = body.model_dump(exclude_none=True)
    _code, name = await rt.run(svc.check_evaluation, scope, params)
    job = rt.jobs.submit(
        "indicators_evaluate",
        svc.evaluate_job(rt.settings.workspace, scope, params),
        title=f"指标评估 {name} {body.year} 年 ({svc.LEVELS[body.level]})",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


@router.get("/runs", summary="评估结果列表")
async def runs(
    request: Request,
    year: int | None = Query(None, ge=1949, le=2100),
    level: str | None = Query(None, pattern=_LEVEL),
    area: str | None = Query(None, max_length=64, pattern=_UNIT, description="评估地区名称或代码"),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=100_000),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List stored evaluation runs with units inside the caller's jurisdiction.

    已保存的评估 (最新在前); 只计本人辖区内的单元 (乡镇用户只看到含本乡镇的街道级评估)。
    """
    rows = await get_rt(request).run(
        lambda st: svc.list_runs(
            st, jurisdictions=scope.record_prefixes(), year=year, level=level, area=area
        )
    )
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "runs": json_ready(rows[offset : offset + limit]),
    }


@router.get("/runs/{run_id}", summary="评估结果")
async def run_result(
    request: Request,
    run_id: str = Path(..., max_length=128, pattern=_RUN_ID, description="评估编号 (溯源编号)"),
    indicator: str | None = Query(None, max_length=100, pattern=_INDICATOR),
    unit_id: str | None = Query(None, max_length=64, pattern=_UNIT, description="单元代码"),
    status: str | None = Query(
        None, max_length=20, pattern=_TEXT, description="状态: 达标/预警/未达标/无目标/无法计算"
    ),
    dimension: str | None = Query(None, max_length=100, pattern=_TEXT),
    limit: int = Query(2000, ge=1, le=20_000),
    offset: int = Query(0, ge=0, le=10_000_000),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Return the rows of one run: value, target and status per indicator and unit.

    只返回本人辖区内单元的行 (在数据库中按单元代码前缀过滤): 乡镇用户只看到本乡镇的行,
    看不到区县汇总行; 没有可见行时为 404。
    """
    out = await get_rt(request).run(
        lambda st: svc.run_result(
            st,
            run_id,
            jurisdictions=scope.record_prefixes(),
            indicator=indicator,
            unit_id=unit_id,
            status=status,
            dimension=dimension,
            offset=offset,
            limit=limit,
        )
    )
    return dict(json_ready(out))


@router.get("/runs/{run_id}/provenance", summary="评估溯源链")
async def run_provenance(
    request: Request,
    run_id: str = Path(..., max_length=128, pattern=_RUN_ID, description="评估编号"),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Explain a run back to its inputs (provenance chain).

    评估的溯源记录 (参数、指标目录版本、结果哈希) 以及每个输入快照和数据表是否仍一致;
    appendix 为报告附录中的数据来源行。评估须有本人辖区内的单元。
    """
    out = await get_rt(request).run(
        lambda st: svc.run_provenance(st, run_id, jurisdictions=scope.record_prefixes())
    )
    return dict(json_ready(out))


@router.post("/health-check-reports", summary="城市体检报告 (后台任务)", status_code=202)
async def health_check_report(
    body: ReportRequest, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """Write the city health check report of an area and year (background job).

    评估 (默认写入评估台账) 后生成城市体检评估报告 (HTML、PDF 或 Excel), 附数据来源与溯源记录,
    存入报告目录 (GET /api/reports 下载); 评估单元须在本人辖区内。返回 202 与任务编号。
    """
    rt = get_rt(request)
    params = body.model_dump(exclude_none=True)
    if params.get("save", True):
        scope.require("write")
    _code, name = await rt.run(svc.check_evaluation, scope, params)
    fn = svc.health_check_report_job(
        rt.settings.workspace, scope, rt.settings.reports_path(), params
    )
    job = rt.jobs.submit(
        "health_check_report",
        fn,
        title=f"城市体检报告 {name} {body.year} 年 ({body.format})",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)
