"""Background jobs: status, and report jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.errors import AuthenticationError
from yizhangtu.services import jobs as svc
from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, get_scope, need

__all__ = ["router"]

router = APIRouter(prefix="/api/jobs", tags=["后台任务"])


@router.get("", summary="任务列表")
async def list_jobs(request: Request, scope: Scope = Depends(need("login"))) -> dict[str, Any]:
    """本人提交的任务 (市级管理员可见辖区内全部); 同一工作空间的各服务进程结果一致。"""
    rt = get_rt(request)
    jobs = await rt.run(lambda st: rt.jobs.list(scope, store=st))
    return {"jobs": [j.to_dict() for j in jobs]}


@router.get("/{job_id}", summary="任务状态")
async def get_job(
    job_id: str, request: Request, scope: Scope = Depends(get_scope)
) -> dict[str, Any]:
    """任务进度、结果或错误 (任务可由同一工作空间的任一服务进程提交)。

    服务进程停止时未完成的任务, 状态为 interrupted (已中断)。
    """
    if not scope.authenticated:
        raise AuthenticationError("请先登录", key="login_required")
    rt = get_rt(request)
    return (await rt.run(lambda st: rt.jobs.get(job_id, scope, store=st))).to_dict()


def _accepted(job: svc.Job) -> JSONResponse:
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


@router.post("/layers-report", summary="生成图层目录报告 (后台任务)", status_code=202)
async def layers_report(request: Request, scope: Scope = Depends(need("reports"))) -> JSONResponse:
    """生成本人可见图层目录的 xlsx 报告; 返回 202 与任务编号。"""
    rt = get_rt(request)
    fn = svc.layers_report_job(rt.settings.workspace, scope, rt.settings.reports_path())
    return _accepted(
        rt.jobs.submit(
            "layers_report",
            fn,
            title="图层目录报告",
            owner=scope.username,
            jurisdiction=scope.jurisdiction,
        )
    )


class DiffReport(BaseModel):
    """Which snapshots to compare."""

    layer: str = Field(..., max_length=64)
    from_: str = Field(..., alias="from", max_length=100)
    to: str = Field(..., max_length=100)
    unit: str = Field("m2", pattern="^(m2|ha|km2|mu)$")


@router.post("/diff-report", summary="生成快照比较报告 (后台任务)", status_code=202)
async def diff_report(
    body: DiffReport, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """比较两个快照 (本辖区可见部分) 并写成 xlsx 报告; 返回 202 与任务编号。"""
    from yizhangtu.services.features import visible_layer

    rt = get_rt(request)
    await rt.run(
        lambda st: (
            visible_layer(st, scope, body.layer),
            st.resolve_snapshot(body.layer, body.from_),
            st.resolve_snapshot(body.layer, body.to),
        )
    )
    fn = svc.diff_report_job(
        rt.settings.workspace,
        scope,
        rt.settings.reports_path(),
        body.layer,
        body.from_,
        body.to,
        body.unit,
    )
    return _accepted(
        rt.jobs.submit(
            "diff_report",
            fn,
            title=f"快照比较 {body.layer} {body.from_}→{body.to}",
            owner=scope.username,
            jurisdiction=scope.jurisdiction,
        )
    )
