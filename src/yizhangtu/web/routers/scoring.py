"""Site scoring (选址评分, 一站一策一档) over :mod:`yizhangtu.services.scoring`.

Configurations are versioned records: reading needs ``read``, saving ``write`` inside the
user's jurisdiction (configurations without one are city-wide: readable by all staff,
changed only with ``publish``). Runs score a site layer as a background job (202); a user
bound to a jurisdiction may score only layers and tables readable whole (published, without a
jurisdiction field, or lying inside the jurisdiction). Dossiers (一站一档) are report files
written by a job and served by ``/api/reports``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.services import scoring as svc
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction rules themselves are proved by tests/test_web_scoring.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/scoring/configs"): "perm:read",
    ("GET", "/api/scoring/configs/{key}"): "perm:read",
    ("PUT", "/api/scoring/configs/{key}"): "perm:write",
    ("POST", "/api/scoring/runs"): "perm:write",
    ("GET", "/api/scoring/runs"): "perm:read",
    ("GET", "/api/scoring/runs/{run_id}"): "perm:read",
    ("POST", "/api/scoring/runs/{run_id}/sensitivity"): "perm:read",
    ("POST", "/api/scoring/runs/{run_id}/dossiers"): "perm:reports",
}

router = APIRouter(prefix="/api/scoring", tags=["选址评分"])

_KEY_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
ConfigKey = Annotated[
    str, Path(pattern=_KEY_PATTERN, description="配置编号 (字母、数字、_、-), 如 micro_centres")
]
RunId = Annotated[str, Path(min_length=1, max_length=200, description="运行编号, 如 mc@1a2b3c4d5e")]


def _accepted(job: Any) -> JSONResponse:
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


# -- configurations --------------------------------------------------------------------------


@router.get("/configs", summary="评价配置列表")
async def list_configs(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List scoring configurations.

    本辖区的评价配置与全市通用配置 (按辖区在数据库中过滤)。
    """
    return {"configs": await get_rt(request).run(svc.list_configs, scope)}


def _config(st: Store, scope: Scope, key: str) -> dict[str, Any]:
    rec = svc.visible_config(st, scope, key)
    return {
        "key": rec.key,
        "version": rec.version,
        "jurisdiction": rec.jurisdiction,
        "updated_by": rec.updated_by,
        "updated_at": rec.updated_at,
        "config": dict(rec.data),
        "summary": svc.describe_config(rec.data),
    }


@router.get("/configs/{key}", summary="评价配置详情 (准则、权重、AHP 判断矩阵与一致性比率)")
async def get_config(
    key: ConfigKey, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """Return one scoring configuration with criteria, weights, AHP matrix and CR.

    返回配置原文、准则 (方向、数据来源)、权重; 采用 AHP 时给出判断矩阵、λmax、CI、RI、CR
    及最不一致的判断。
    """
    return await get_rt(request).run(_config, scope, key)


class ConfigBody(BaseModel):
    """A scoring configuration to save (the YAML of ``yizhangtu score save-config`` as JSON)."""

    config: dict[str, Any] = Field(
        ...,
        description="评价配置: title, criteria, weights (direct 或 ahp), method, "
        "sites: {layer, id_field, name_field}, layers, tables, boundaries",
    )
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="修改时为读取时的版本号 (乐观锁); 新建时省略"
    )
    jurisdiction: str | None = Field(
        None, pattern=r"^\d{2,12}$", description="所属辖区代码 (缺省为本人辖区)"
    )


def _put(st: Store, scope: Scope, key: str, body: ConfigBody) -> dict[str, Any]:
    rec, created = svc.put_config(
        st, scope, key, body.config, version=body.version, jurisdiction=body.jurisdiction
    )
    return {"created": created} | _config(st, scope, rec.key)


@router.put("/configs/{key}", summary="保存评价配置 (校验; AHP 一致性比率 CR > 0.1 拒绝)")
async def put_config(
    key: ConfigKey, body: ConfigBody, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Create or update a scoring configuration (validated, optimistic locking).

    新建时省略 version; 修改时给出读取时的版本号, 他人已先修改返回 409。配置先经校验:
    准则、权重与 AHP 判断矩阵 (一致性比率 CR 超过 0.10 时拒绝并指出最不一致的判断)。
    """
    return await get_rt(request).run(_put, scope, key, body)


# -- runs ------------------------------------------------------------------------------------


class RunRequest(BaseModel):
    """What to score."""

    config: str = Field(..., pattern=_KEY_PATTERN, description="评价配置编号")
    sites_layer: str | None = Field(
        None, pattern=_NAME_PATTERN, description="站点图层 (覆盖配置中的 sites.layer)"
    )
    method: Literal["weighted", "topsis"] | None = Field(
        None, description="评价方法: weighted (加权求和) 或 topsis (缺省按配置)"
    )
    normalisation: Literal["minmax", "zscore", "rank"] | None = Field(
        None, description="标准化方法 (缺省按配置)"
    )


@router.post("/runs", summary="运行选址评价 (后台任务)", status_code=202)
async def start_run(
    body: RunRequest, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """Score the sites of a layer with a stored configuration, as a background job.

    先同步检查配置与图层 (站点图层等须整层可读), 再在后台计算并保存结果与溯源记录;
    返回 202 与任务编号, 完成后任务结果给出运行编号。
    """
    rt = get_rt(request)
    await rt.run(svc.check_run_inputs, scope, body.config, body.sites_layer)
    fn = svc.scoring_run_job(rt.settings.workspace, scope, body.model_dump(exclude_none=True))
    job = rt.jobs.submit(
        "scoring_run",
        fn,
        title=f"选址评价 {body.config}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)


@router.get("/runs", summary="评价运行列表")
async def list_runs(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """List stored scoring runs.

    本辖区已保存的评价运行, 新的在前 (按辖区在数据库中过滤)。
    """
    return {"runs": await get_rt(request).run(svc.list_runs, scope)}


def _run(st: Store, scope: Scope, run_id: str) -> dict[str, Any]:
    return svc.run_detail(st, svc.visible_run(st, scope, run_id))


@router.get("/runs/{run_id}", summary="评价结果 (排名与各准则得分)")
async def get_run(
    run_id: RunId, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """Return a stored run: ranked sites with per-criterion scores.

    各站点的综合得分、排名、实施时序与模式建议, 以及每个准则的原始值、标准化值与加权贡献;
    给出评价方法 (加权求和 / TOPSIS)、权重、AHP 一致性比率和溯源记录编号。
    """
    return await get_rt(request).run(_run, scope, run_id)


class SensitivityRequest(BaseModel):
    """Sensitivity parameters."""

    step: float | None = Field(
        None, gt=0, le=0.5, description="权重上下浮动比例 (缺省 0.10, 即 ±10%)"
    )


def _sensitivity(st: Store, scope: Scope, run_id: str, step: float | None) -> dict[str, Any]:
    return svc.run_sensitivity(st, svc.visible_run(st, scope, run_id), step=step)


@router.post("/runs/{run_id}/sensitivity", summary="权重灵敏度分析 (±10%)")
async def sensitivity(
    run_id: RunId,
    request: Request,
    body: SensitivityRequest | None = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Check rank stability of a run when each weight moves by ±10% (renormalised).

    逐个准则把权重上调、下调 (缺省 10%) 并重新归一化, 重算排名; 给出每个站点排名是否
    保持不变。用已保存的逐站数据计算, 不读取图层, 不保存结果。
    """
    step = body.step if body is not None else None
    return await get_rt(request).run(_sensitivity, scope, run_id, step)


class DossierRequest(BaseModel):
    """Which dossiers to write."""

    format: Literal["html", "pdf"] = Field("html", description="html 或 pdf")
    site_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, max_length=500, description="只输出这些站点 (缺省全部)"
    )
    combined: bool = Field(False, description="合并为一个文件 (缺省每站一个文件)")
    with_map: bool = Field(True, description="绘制区位图")


def _check_dossiers(st: Store, scope: Scope, run_id: str, req: DossierRequest) -> None:
    from yizhangtu.errors import InputError, NotFoundError

    rec = svc.visible_run(st, scope, run_id)
    known = [str(s["site_id"]) for s in rec.data.get("sites") or ()]
    unknown = [s for s in req.site_ids or () if s not in set(known)]
    if unknown:
        raise NotFoundError(
            "评价结果中没有这些站点: " + "、".join(unknown[:20]),
            key="site_not_found",
            field="site_ids",
        )
    if not req.combined:  # one file per site, named after the site
        odd = [s for s in req.site_ids or known if "/" in s or "\\" in s or s.strip(".") == ""]
        if odd:
            raise InputError(
                "站点编号含路径字符, 不能作为档案文件名: " + "、".join(odd[:20]),
                key="site_id_unsafe",
                field="site_ids",
                hint="改用 combined=true 合并为一个文件",
            )
    svc.check_rerunnable(st, scope, rec)


@router.post(
    "/runs/{run_id}/dossiers", summary="生成一站一档 (HTML/PDF, 后台任务)", status_code=202
)
async def dossiers(
    run_id: RunId,
    request: Request,
    body: DossierRequest | None = None,
    scope: Scope = Depends(need("reports")),
) -> JSONResponse:
    """Write the run's site dossiers (一站一档) as report files, in a background job.

    按运行时的快照重算 (配置或数据表已变化时拒绝, 409), 每个站点生成一份档案
    (或合并为一个文件), 写入报告目录; 任务结果给出各文件的下载地址 (/api/reports/...)。
    """
    rt = get_rt(request)
    req = body or DossierRequest.model_validate({})
    await rt.run(_check_dossiers, scope, run_id, req)
    fn = svc.dossiers_job(
        rt.settings.workspace, scope, rt.settings.reports_path(), run_id, req.model_dump()
    )
    job = rt.jobs.submit(
        "scoring_dossiers",
        fn,
        title=f"一站一档 {run_id}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return _accepted(job)
