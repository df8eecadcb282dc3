"""Task supervision (任务督办) over :mod:`yizhangtu.services.tasks`.

Tasks, targets, projects and rectification items are versioned records with a jurisdiction;
every list is filtered by the user's jurisdiction in SQL, and writes (progress reports,
target actuals) stay inside it, under optimistic locking (a stale version is a 409 carrying
the other user's change). The dispatch report (调度报告) is written by a background job into the
report folder. The dashboard's own routes live under ``/api/ui/tasks``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.services import tasks as svc
from yizhangtu.services.auth import Scope
from yizhangtu.services.records import record_dict
from yizhangtu.store import Store
from yizhangtu.web.deps import IsoDay, get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_tasks.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/tasks/tasks"): "perm:read",
    ("GET", "/api/tasks/tasks/{task_id}"): "perm:read",
    ("POST", "/api/tasks/tasks/{task_id}/progress"): "perm:write",
    ("GET", "/api/tasks/states"): "perm:read",
    ("GET", "/api/tasks/targets"): "perm:read",
    ("POST", "/api/tasks/targets/{target_id}/actual"): "perm:write",
    ("GET", "/api/tasks/projects"): "perm:read",
    ("GET", "/api/tasks/rectifications"): "perm:read",
    ("POST", "/api/tasks/dispatch-report"): "perm:reports",
}

router = APIRouter(prefix="/api/tasks", tags=["任务督办"])

TaskId = Annotated[str, Path(min_length=1, max_length=64, description="任务编号, 如 HN2021-01")]
TargetId = Annotated[str, Path(min_length=1, max_length=64, description="目标编号, 如 FS-T2")]
Name = Annotated[str | None, Query(min_length=1, max_length=64)]
_Evidence = Annotated[str, Field(min_length=1, max_length=500)]


def _day(at: str | None) -> dt.date:
    return dt.date.fromisoformat(at) if at else dt.date.today()


# -- tasks ---------------------------------------------------------------------------------


@router.get("/tasks", summary="任务台账 (逾期在前)")
async def list_tasks(
    request: Request,
    at: Annotated[IsoDay, Query(description="评价日期 (缺省今天)")] = None,
    task_set: Name = None,
    department: Annotated[
        str | None, Query(min_length=1, max_length=64, description="牵头或配合单位")
    ] = None,
    status: Annotated[
        Literal["overdue", "behind", "on_track", "done"] | None, Query(description="只看该状态")
    ] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the tasks of the user's jurisdiction with their status at a date, overdue first.

    本辖区的重点任务: 牵头与配合单位、期限、进度、线性进度、状态 (逾期、滞后、正常推进、
    已完成) 与版本号; 逾期的排在最前。
    """
    day = _day(at)
    return await get_rt(request).run(
        lambda st: svc.task_list(
            st, scope, day, task_set=task_set, department=department, status=status
        )
    )


@router.get("/states", summary="任务状态统计")
async def states(
    request: Request,
    at: Annotated[IsoDay, Query(description="统计日期 (缺省今天)")] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Count the jurisdiction's tasks per status at a date, with alerts.

    某日本辖区任务按状态的个数、逾期/临期/未按期报送提醒, 以及整改事项的销号情况。
    """
    return await get_rt(request).run(svc.task_state_counts, scope, _day(at))


@router.get("/tasks/{task_id}", summary="任务详情 (含进度报送记录)")
async def get_task(
    task_id: TaskId,
    request: Request,
    at: Annotated[IsoDay, Query(description="评价日期 (缺省今天)")] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Return one task of the jurisdiction: its state at a date and its report history.

    任务的状态、量化目标、历次进度报送 (含佐证材料) 与当前版本号; 辖区外的任务 404。
    """
    return await get_rt(request).run(svc.task_detail, scope, task_id, _day(at))


class Progress(BaseModel):
    """A progress report based on the task version the user saw."""

    progress_pct: float = Field(..., ge=0, le=100, description="进度 (%)")
    reported_on: IsoDay = Field(None, description="报送日期 (缺省今天)")
    note: str | None = Field(None, max_length=2000, description="进展情况")
    evidence: list[_Evidence] = Field(
        default_factory=list, max_length=20, description="佐证材料 (文件名、文号或链接)"
    )
    actuals: dict[Annotated[str, Field(max_length=64)], float] | None = Field(
        None, max_length=50, description="量化目标实际值 {目标编号: 数值}"
    )
    version: int = Field(..., ge=1, le=2**31 - 1, description="读取时的版本号 (乐观锁)")


def _progress(st: Store, scope: Scope, task_id: str, body: Progress) -> dict[str, Any]:
    rec = svc.report_task_progress(
        st,
        scope,
        task_id,
        progress_pct=body.progress_pct,
        version=body.version,
        reported_on=body.reported_on,
        note=body.note or "",
        evidence=body.evidence,
        actuals=body.actuals,
    )
    return record_dict(rec)


@router.post("/tasks/{task_id}/progress", summary="报送任务进度")
async def report_progress(
    task_id: TaskId, body: Progress, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Report a task's progress inside the jurisdiction (optimistic locking, audited).

    按读取时的版本号追加一次进度报送; 他人已先报送返回 409 (含对方的修改); 辖区外的任务 404。
    """
    return await get_rt(request).run(_progress, scope, task_id, body)


# -- targets -------------------------------------------------------------------------------


@router.get("/targets", summary="量化目标及实际值")
async def targets(
    request: Request,
    at: Annotated[IsoDay, Query(description="截至日期 (缺省为全部报送)")] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the jurisdiction's quantitative targets with their latest actual value.

    本辖区的量化目标、出处条款、最近一次实际值 (截至某日) 及是否达标。
    """
    day = dt.date.fromisoformat(at) if at else None
    return {"targets": await get_rt(request).run(svc.visible_targets, scope, day)}


class Actual(BaseModel):
    """An actual value of a target, with evidence or a provenance id."""

    value: float = Field(..., allow_inf_nan=False, description="实际值 (目标的单位)")
    on: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="数据日期")]
    evidence: list[_Evidence] = Field(default_factory=list, max_length=20)
    source: str = Field("", max_length=500, description="数据来源说明")
    provenance_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{8,64}$", description="计算结果的溯源记录号"
    )
    version: int = Field(..., ge=1, le=2**31 - 1, description="读取时的版本号 (乐观锁)")


def _actual(st: Store, scope: Scope, target_id: str, body: Actual) -> dict[str, Any]:
    rec = svc.record_visible_target_actual(
        st,
        scope,
        target_id,
        value=body.value,
        on=body.on,
        version=body.version,
        evidence=body.evidence,
        source=body.source,
        provenance_id=body.provenance_id,
    )
    return record_dict(rec)


@router.post("/targets/{target_id}/actual", summary="报送目标实际值")
async def record_actual(
    target_id: TargetId, body: Actual, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Record an actual value of a target inside the jurisdiction (optimistic locking).

    须附佐证材料或计算溯源记录号; 他人已先修改返回 409; 辖区外的目标 404。
    """
    return await get_rt(request).run(_actual, scope, target_id, body)


# -- projects and rectification --------------------------------------------------------------


@router.get("/projects", summary="重点项目库 (及年度清单)")
async def projects(
    request: Request,
    year: Annotated[int | None, Query(ge=1990, le=2100, description="编制该年度清单")] = None,
    at: Annotated[IsoDay, Query(description="进度截至日期 (缺省今天)")] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the jurisdiction's key projects with their latest progress, and a yearly list.

    本辖区项目库: 级别、类别、状态、最近进度与投资完成情况, 按级别×类别的统计;
    给出 year 时编制年度重点项目综合清单。
    """
    day = _day(at)
    return await get_rt(request).run(lambda st: svc.visible_projects(st, scope, at=day, year=year))


@router.get("/rectifications", summary="整改事项")
async def rectifications(
    request: Request,
    at: Annotated[IsoDay, Query(description="统计日期 (缺省今天)")] = None,
    task_set: Name = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the jurisdiction's rectification items with their state at a date.

    本辖区整改事项: 超期未整改在前, 其次整改中、已销号; 附销号统计。
    """
    day = _day(at)
    return await get_rt(request).run(
        lambda st: svc.rectification_items(st, scope, day, task_set=task_set)
    )


# -- dispatch report -------------------------------------------------------------------------


class DispatchRequest(BaseModel):
    """What the dispatch report covers."""

    at: IsoDay = Field(None, description="调度日期 (缺省今天)")
    format: Literal["html", "pdf", "xlsx"] = Field("html", description="html、pdf 或 xlsx")
    task_set: str | None = Field(None, min_length=1, max_length=64, description="只含该任务集")
    department: str | None = Field(
        None, min_length=1, max_length=64, description="只含该单位牵头或配合的任务"
    )
    title: str | None = Field(None, min_length=1, max_length=200, description="报告标题")


@router.post("/dispatch-report", summary="生成调度报告 (后台任务)", status_code=202)
async def dispatch_report(
    request: Request,
    body: DispatchRequest | None = None,
    scope: Scope = Depends(need("reports")),
) -> JSONResponse:
    """Write the dispatch report of the jurisdiction's tasks (HTML, PDF or xlsx) in a job.

    本辖区任务在某日的调度报告 (逾期在前、提醒、整改情况), 写入报告目录;
    返回 202 与任务编号, 完成后任务结果给出下载地址。
    """
    rt = get_rt(request)
    req = body or DispatchRequest.model_validate({})
    params = req.model_dump(exclude_none=True) | {"at": _day(req.at).isoformat()}
    await rt.run(
        lambda st: svc.check_dispatch(st, scope, task_set=req.task_set, department=req.department)
    )
    fn = svc.dispatch_report_job(rt.settings.workspace, scope, rt.settings.reports_path(), params)
    job = rt.jobs.submit(
        "dispatch_report",
        fn,
        title=f"调度报告 {params['at']}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )
