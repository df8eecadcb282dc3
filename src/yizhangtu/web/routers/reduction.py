"""Reduction ledger (减量台账): targets, plots, acceptance, rebuild, transfers, progress, export.

Thin routes over :mod:`yizhangtu.services.reduction`. Reads are filtered by the user's
jurisdiction in SQL (the ``*_in`` service adapters); writes stay inside it: a target only for a
unit below the user (district and city users), plots only for a township inside it, a transfer
only from a relieving unit inside it. Acceptance, rebuild checks and the ledger workbook cover
every unit at once, so they run as background jobs (202 + job id) for users whose jurisdiction
covers every unit.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from yizhangtu.errors import InputError, PermissionDeniedError, QCError
from yizhangtu.reduction import Target, Transfer
from yizhangtu.services import reduction as svc
from yizhangtu.services.auth import Scope
from yizhangtu.services.features import features_json, json_ready
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["ACCESS", "router"]

router = APIRouter(prefix="/api/reduction", tags=["减量台账"])

#: Access class of each route (checked generically by tests/test_web_access.py); the
#: jurisdiction rules are proved by tests/test_web_reduction.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/reduction/targets"): "perm:read",
    ("PUT", "/api/reduction/targets"): "perm:write",
    ("GET", "/api/reduction/plots"): "perm:read",
    ("POST", "/api/reduction/plots"): "perm:write",
    ("GET", "/api/reduction/acceptance"): "perm:read",
    ("POST", "/api/reduction/acceptance"): "perm:write",
    ("GET", "/api/reduction/rebuild"): "perm:read",
    ("POST", "/api/reduction/rebuild"): "perm:write",
    ("GET", "/api/reduction/transfers"): "perm:read",
    ("POST", "/api/reduction/transfers"): "perm:write",
    ("GET", "/api/reduction/balance"): "perm:read",
    ("GET", "/api/reduction/progress"): "perm:read",
    ("POST", "/api/reduction/ledger-exports"): "perm:reports",
}

#: Administrative codes (区划代码 / 乡镇代码), as jurisdictions are.
_CODE = r"^\d{2,12}$"
#: Snapshot labels: printable text.
_LABEL = r"^[^\x00-\x1f\x7f]{1,100}$"
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
#: Roles that set targets and run the year-end work (市—区 set and verify, 乡镇 report).
_LEDGER_ROLES = ("city_admin", "district")


def _require_ledger_role(scope: Scope, what: str) -> None:
    if scope.role not in _LEDGER_ROLES:
        raise PermissionDeniedError(
            f"只有市级、区级用户可以{what}",
            key="forbidden",
            hint="乡镇(街道)用户报送减量地块; 目标与验收由区级、市级用户办理",
        )


def _accepted(job: Any) -> JSONResponse:
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


# ----------------------------------------------------------------------------------------- targets
class TargetBody(BaseModel):
    """One reduction target (减量目标) of one unit, kind and year (added or replaced)."""

    unit_code: str = Field(..., pattern=_CODE, description="单位区划代码, 如 110105021000")
    unit_name: str = Field(..., min_length=1, max_length=100, pattern=_TEXT)
    level: Literal["city", "district", "township"] = Field(..., description="市/区/乡镇")
    kind: Literal["total", "annual"] = Field("total", description="总目标 / 年度目标")
    year: int = Field(..., description="总目标的期限年, 或年度目标的年份", ge=2000, le=2100)
    target_m2: float = Field(
        ..., ge=0, le=1e11, allow_inf_nan=False, description="城乡建设用地净减量目标 (平方米)"
    )
    parent_code: str | None = Field(None, pattern=_CODE, description="分解来源单位的代码")
    clause: str | None = Field(None, max_length=200, pattern=_TEXT, description="依据")
    note: str | None = Field(None, max_length=500, pattern=_TEXT)
    synthetic: bool = Field(False, description="演示用的合成数字")


@router.get("/targets", summary="减量目标与分解核对")
async def list_targets(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the targets of the units in the user's jurisdiction, with the split checks.

    本辖区各单位的减量目标 (总目标、年度目标), 以及上级目标与下级合计的分解核对 (市—区—乡镇)。
    """
    rep = await get_rt(request).run(svc.targets_report_in, scope.record_prefixes())
    return dict(json_ready(rep))


@router.put("/targets", summary="设定减量目标")
async def put_target(
    body: TargetBody, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Add or replace one target of a unit below the user.

    区级用户为本区乡镇设定目标, 市级管理员为各区设定目标; 同一单位、类型、年份的目标被替换。
    """
    _require_ledger_role(scope, "设定减量目标")
    scope.require_covers(body.unit_code, "目标单位")
    if body.parent_code is not None:
        scope.require_covers(body.parent_code, "上级单位")
    if scope.role != "city_admin" and body.level != "township":
        raise PermissionDeniedError(
            "区级用户只能为本区的乡镇(街道)设定目标; 区级目标由市级下达",
            key="outside_jurisdiction",
            field="level",
        )
    target = Target(
        unit_code=body.unit_code,
        unit_name=body.unit_name,
        level=body.level,
        kind=body.kind,
        year=body.year,
        target_m2=body.target_m2,
        parent_code=body.parent_code,
        clause=body.clause,
        synthetic=body.synthetic,
        note=body.note,
    )
    prefixes = scope.record_prefixes()

    def run(st: Store) -> dict[str, Any]:
        svc.set_target(st, target, actor=str(scope.username))
        rep = svc.targets_report_in(st, prefixes)
        related = {target.unit_code, target.parent_code}
        return {
            "target": target.to_row() | {"target_km2": target.target_m2 / 1e6},
            "split_checks": [c for c in rep["split_checks"] if c["unit_code"] in related],
        }

    return dict(json_ready(await get_rt(request).run(run)))


# ----------------------------------------------------------------------------------------- plots
@router.get("/plots", summary="本辖区减量地块 (GeoJSON)")
async def list_plots(
    request: Request,
    year: int | None = Query(None, ge=2000, le=2100),
    township: str | None = Query(None, pattern=_CODE, description="乡镇代码"),
    after: int | None = Query(None, ge=0, le=2**62, description="上一页最后一个要素编号"),
    limit: int = Query(1000, ge=1, le=5000),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the current reduction plots in the jurisdiction as GeoJSON (CGCS2000 lon/lat).

    本辖区已提交的减量地块 (当前快照) 及其质检状态, 按要素编号分页; 辖区过滤在数据库中完成。
    """
    prefixes = scope.record_prefixes()
    gdf, nxt = await get_rt(request).run(
        lambda st: svc.plots_in(
            st, prefixes, township=township, year=year, after=after, limit=limit
        )
    )
    feats = [json.loads(f) for f in features_json(gdf)]
    return {
        "type": "FeatureCollection",
        "features": feats,
        "numberReturned": len(feats),
        "next": nxt,
    }


def _safe_name(filename: str | None) -> str:
    """Return the upload's file name without folders or control characters (≤ 180 bytes)."""
    name = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]', "_", (filename or "").replace("\\", "/"))
    name = name.rsplit("/", 1)[-1].strip().lstrip(".")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext if re.fullmatch(r"[A-Za-z0-9]{1,10}", ext) else ""
    while stem and len(f"{stem}.{ext}".encode()) > 180:
        stem = stem[:-1]
    return f"{stem or 'plots'}.{ext}" if ext else (stem or "plots")


@router.post("/plots", summary="提交减量地块 (落图, 含质检)")
async def submit_plots(
    request: Request,
    file: UploadFile = File(
        ..., description="地块文件: geojson / gpkg / zip (Shapefile) / kml / xlsx / csv"
    ),
    township: str = Form(..., pattern=_CODE, description="乡镇代码 (须在本人辖区内)"),
    year: int = Form(..., ge=2000, le=2100),
    dry_run: bool = Form(False, description="只做质检, 不写入"),
    flag: bool = Form(False, description="仅减量检查未通过的地块带标记入库 (不计入验收)"),
    replace: bool = Form(False, description="替换该乡镇该年度未验收的地块"),
    scope: Scope = Depends(need("write")),
) -> JSONResponse:
    """Check a township's plot file and store it as a new snapshot of the plot layer.

    上传乡镇年度减量地块 (multipart: file, township, year), 经图层质检与减量检查 (在乡镇内、
    为城乡建设用地、不与已交地块重叠等) 后写入新快照 (201); dry_run 只返回检查结果 (200);
    未通过时 422, 问题清单见 data.issues。
    """
    from yizhangtu.services.uploads import check_upload

    scope.require_covers(township, "乡镇")
    rt = get_rt(request)
    tmp = Path(tempfile.mkdtemp(prefix="yz-plots-"))
    try:
        name = _safe_name(file.filename)
        dest = tmp / name
        with dest.open("wb") as out:
            while chunk := await file.read(1024 * 1024):
                out.write(chunk)
        await file.close()
        check_upload(dest, name, rt.upload_limits)
        settings = rt.settings.model_copy(update={"actor": str(scope.username)})
        try:
            res = await rt.run(
                lambda st: svc.submit_plots(
                    st,
                    dest,
                    township=township,
                    year=year,
                    settings=settings,
                    flag=flag,
                    replace_existing=replace,
                    dry_run=dry_run,
                )
            )
        except QCError as exc:
            exc.data = dict(json_ready(exc.data))
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out_body: dict[str, Any] = res.to_dict()
    if res.plots is not None:
        out_body["plots"] = res.plots.drop(columns=[res.plots.geometry.name]).to_dict("records")
    return JSONResponse(json_ready(out_body), status_code=200 if dry_run else 201)


# ----------------------------------------------------------------------------------------- accept
class AcceptBody(BaseModel):
    """Year-end acceptance (验收) of one year against that year's change survey."""

    year: int = Field(..., description="验收年度", ge=2000, le=2100)
    survey: str = Field(..., pattern=_LABEL, description="当年年度变更调查快照, 如 2021")
    baseline: str | None = Field(None, pattern=_LABEL, description="上年调查快照 (默认上一快照)")


@router.post("/acceptance", summary="年度验收 (后台任务)", status_code=202)
async def accept(
    body: AcceptBody, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Run the year-end acceptance of every plot of the year as a background job.

    对照当年年度变更调查验收当年全部减量地块并生成各乡镇、区的台账 (覆盖同年旧结果);
    须由辖区覆盖全部核算单元的区级或市级用户运行。返回 202 与任务编号。
    """
    _require_ledger_role(scope, "运行年度验收")
    rt = get_rt(request)
    prefixes = scope.record_prefixes()

    def check(st: Store) -> dict[str, Any]:
        svc.require_whole_ledger(st, prefixes, action="年度验收")
        return svc.check_accept(st, year=body.year, survey=body.survey, baseline=body.baseline)

    labels = await rt.run(check)
    fn = svc.accept_job(
        rt.settings.workspace,
        rt.settings,
        scope,
        year=body.year,
        survey=body.survey,
        baseline=body.baseline,
    )
    job = rt.jobs.submit(
        "reduction_accept",
        fn,
        title=f"减量验收 {body.year} 年 (调查 {labels['survey']}, 基期 {labels['baseline']})",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


@router.get("/acceptance", summary="验收结果与台账")
async def acceptance(
    request: Request,
    year: int | None = Query(None, ge=2000, le=2100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the acceptance verdicts and ledger rows in the user's jurisdiction.

    本辖区地块的验收结论 (已减量/部分减量/未减量…) 与各单位台账 (净减量、验收减量、新增),
    可按年度筛选。
    """
    prefixes = scope.record_prefixes()
    rep = await get_rt(request).run(lambda st: svc.acceptance_in(st, prefixes, year=year))
    return dict(json_ready(rep))


# ----------------------------------------------------------------------------------------- rebuild
class RebuildBody(BaseModel):
    """Rebuild check (复建监测) of the accepted plots against a later survey."""

    survey: str = Field(..., pattern=_LABEL, description="较新的年度变更调查快照, 如 2022")


@router.post("/rebuild", summary="复建监测 (后台任务)", status_code=202)
async def rebuild(
    body: RebuildBody, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Check every accepted plot against a later survey as a background job.

    对照较新的调查检查此前验收的全部地块是否复建; 须由辖区覆盖全部核算单元的区级或市级用户运行。
    返回 202 与任务编号。
    """
    _require_ledger_role(scope, "运行复建监测")
    rt = get_rt(request)
    prefixes = scope.record_prefixes()

    def check(st: Store) -> str:
        svc.require_whole_ledger(st, prefixes, action="复建监测")
        return st.resolve_snapshot(svc.get_config(st).survey_layer, body.survey).label

    label = await rt.run(check)
    fn = svc.rebuild_job(rt.settings.workspace, rt.settings, scope, survey=body.survey)
    job = rt.jobs.submit(
        "reduction_rebuild",
        fn,
        title=f"复建监测 (调查 {label})",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


@router.get("/rebuild", summary="复建预警")
async def rebuild_alerts(
    request: Request,
    survey: str | None = Query(None, pattern=_LABEL, max_length=100, description="调查快照"),
    alerts_only: bool = Query(False, description="只列出预警"),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the rebuild checks of the accepted plots in the user's jurisdiction.

    本辖区已验收地块的复建检查结果, 预警行 alert 为 true。
    """
    prefixes = scope.record_prefixes()
    rows = await get_rt(request).run(
        lambda st: svc.rebuild_in(st, prefixes, survey=survey, alerts_only=alerts_only)
    )
    return {"rows": json_ready(rows), "alerts": sum(1 for r in rows if r.get("alert"))}


# ------------------------------------------------------------------------------------- transfers
class TransferBody(BaseModel):
    """A quota transfer (指标联动) from a relieving unit (疏解地) to a receiving unit (承接地)."""

    transfer_id: str = Field(..., pattern=r"^[\w.\-]{1,64}$", description="编号")
    from_unit: str = Field(..., pattern=_CODE, description="转出地 (疏解地), 须在本人辖区内")
    to_unit: str = Field(..., pattern=_CODE, description="承接地")
    year: int = Field(..., ge=2000, le=2100)
    quota_m2: float = Field(
        ..., gt=0, le=1e11, allow_inf_nan=False, description="转出指标 (平方米)"
    )
    ratio: float = Field(..., gt=0, le=100, allow_inf_nan=False, description="转移比例")
    population_credit: float | None = Field(
        None, ge=0, le=1e9, allow_inf_nan=False, description="人口承接 (人)"
    )
    output_credit_wan_yuan: float | None = Field(
        None, ge=0, le=1e12, allow_inf_nan=False, description="产值分计 (万元)"
    )
    compensation: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    ] = Field(default_factory=list, max_length=10, description="补偿方式, 如 人口承接、产值分计")
    terms: str | None = Field(None, max_length=500, pattern=_TEXT, description="约定")


@router.get("/transfers", summary="指标联动记录")
async def list_transfers(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List the quota transfers whose relieving unit lies in the user's jurisdiction.

    转出地 (疏解地) 在本辖区内的指标联动记录。
    """
    rows = await get_rt(request).run(svc.transfers_in, scope.record_prefixes())
    return {"transfers": json_ready(rows)}


@router.post("/transfers", summary="登记指标联动", status_code=201)
async def add_transfer(
    body: TransferBody, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Record a quota transfer after the policy pack's checks.

    转出地须在本人辖区内, 两地须为已知单位; 比例上限与补偿登记按政策包核对,
    不合规时 422 (data.findings), 编号已存在时 409。
    """
    scope.require_covers(body.from_unit, "转出地 (疏解地)")
    transfer = Transfer(
        transfer_id=body.transfer_id,
        from_unit=body.from_unit,
        to_unit=body.to_unit,
        year=body.year,
        quota_m2=body.quota_m2,
        ratio=body.ratio,
        population_credit=body.population_credit,
        output_credit_wan_yuan=body.output_credit_wan_yuan,
        compensation=tuple(body.compensation),
        terms=body.terms,
    )
    t, findings = await get_rt(request).run(
        lambda st: svc.add_transfer(st, transfer, actor=str(scope.username))
    )
    return JSONResponse(
        json_ready({"transfer": t.to_dict(), "findings": findings}), status_code=201
    )


@router.get("/balance", summary="增减挂钩平衡")
async def balance(
    request: Request,
    level: str = Query("township", pattern="^(district|township)$", description="区或乡镇"),
    year: int | None = Query(None, ge=2000, le=2100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Return the linked increase-decrease balance of the units in the jurisdiction.

    本辖区各单位至某年 (默认台账最新年度) 的新增城乡建设用地与可用指标
    (自身减量 − 转出 + 转入) 的平衡。
    """
    prefixes = scope.record_prefixes()
    rows = await get_rt(request).run(
        lambda st: svc.balance_in(st, prefixes, year=year, level=level)
    )
    return {"level": level, "rows": json_ready([r.to_dict() for r in rows])}


@router.get("/progress", summary="减量进度")
async def progress(
    request: Request,
    by: str = Query("township", pattern="^(district|township)$", description="区或乡镇"),
    year: int | None = Query(None, ge=2000, le=2100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Return the progress of the units in the user's jurisdiction towards their targets.

    本辖区各区或乡镇的目标、累计验收减量与净减量、完成率、所需年均进度与预警;
    区级另列种子报告数 (不参与计算)。
    """
    prefixes = scope.record_prefixes()
    rep = await get_rt(request).run(lambda st: svc.progress_in(st, prefixes, by=by, year=year))
    return dict(json_ready(rep))


# ----------------------------------------------------------------------------------------- export
class LedgerExportBody(BaseModel):
    """Which ledger to write."""

    year: int | None = Field(None, description="截至年度 (默认台账最新年度)", ge=2000, le=2100)


@router.post("/ledger-exports", summary="导出减量台账 xlsx (后台任务)", status_code=202)
async def export_ledger(
    body: LedgerExportBody, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """Write the ledger workbook as a report in a background job.

    生成减量台账 (说明、进度、区级台账、乡镇台账、地块验收、复建预警、指标联动、增减挂钩),
    完成后在 /api/reports 中下载; 须由辖区覆盖全部单位的用户运行。返回 202 与任务编号。
    """
    rt = get_rt(request)
    prefixes = scope.record_prefixes()

    def check(st: Store) -> None:
        svc.require_whole_ledger(st, prefixes, action="导出减量台账", tables=True)
        if svc.T_LEDGER not in st.table_names() or not st.query_table(svc.T_LEDGER, limit=0)[1]:
            raise InputError(
                "台账中还没有核算结果",
                key="reduction_no_ledger",
                hint="先运行年度验收 (POST /api/reduction/acceptance)",
            )

    await rt.run(check)
    fn = svc.ledger_export_job(
        rt.settings.workspace, scope, rt.settings.reports_path(), year=body.year
    )
    job = rt.jobs.submit(
        "reduction_ledger",
        fn,
        title="减量台账导出" + (f" (截至 {body.year} 年)" if body.year else ""),
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)
