"""UI support for task supervision (重点任务): status list (overdue first) and progress reports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from yizhangtu.errors import NotFoundError
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import IsoDay, get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_ui.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/ui/tasks/states"): "perm:read",
    ("POST", "/api/ui/tasks/{task_id}/progress"): "perm:write",
}

router = APIRouter(prefix="/api/ui/tasks", tags=["界面: 重点任务"])


def _jurisdictions(st: Store, scope: Scope) -> list[str]:
    from yizhangtu.services.tasks import TASKS

    recs = st.query_records(TASKS, jurisdiction_prefixes=scope.record_prefixes())
    return sorted({str(r.jurisdiction) for r in recs if r.jurisdiction})


def _states(st: Store, scope: Scope, at: str | None) -> dict[str, Any]:
    from yizhangtu.services import tasks as svc

    day = dt.date.fromisoformat(at) if at else dt.date.today()
    jur = _jurisdictions(st, scope)
    if not jur:
        return {"available": False, "at": day.isoformat(), "tasks": [], "counts": {}}
    states = svc.task_states(st, day, jurisdictions=jur)
    versions = {r.key: r.version for r in svc.task_records(st, jurisdictions=jur)}
    rows = [s.to_dict() | {"version": versions.get(s.task.id)} for s in states]
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["status_label"])] = counts.get(str(r["status_label"]), 0) + 1
    return {"available": True, "at": day.isoformat(), "tasks": rows, "counts": counts}


def _report(st: Store, scope: Scope, task_id: str, body: Progress) -> dict[str, Any]:
    from yizhangtu.services import tasks as svc
    from yizhangtu.services.records import record_dict

    try:
        cur = st.get_record(svc.TASKS, task_id)
    except NotFoundError:
        cur = None
    if cur is None or not scope.covers(cur.jurisdiction):
        raise NotFoundError(f"本辖区没有任务 {task_id}", key="task_not_found", feature=task_id)
    rec = svc.report_progress(
        st,
        task_id,
        progress_pct=body.progress_pct,
        actor=str(scope.username),
        expected_version=body.version,
        reported_on=body.reported_on,
        note=body.note or "",
        evidence=body.evidence,
    )
    return record_dict(rec)


@router.get("/states", summary="任务状态 (逾期在前)")
async def states(
    request: Request,
    at: Annotated[IsoDay, Query()] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Task states, overdue first.

    本辖区任务在某日的状态、进度与期限, 逾期的排在最前。
    """
    return await get_rt(request).run(_states, scope, at)


class Progress(BaseModel):
    """A progress report based on the task version the user saw."""

    progress_pct: float = Field(..., ge=0, le=100)
    reported_on: IsoDay = None
    note: str | None = Field(None, max_length=2000)
    evidence: list[str] = Field(default_factory=list, max_length=20)
    version: int = Field(..., ge=1, description="读取时的版本号 (乐观锁)")


@router.post("/{task_id}/progress", summary="填报任务进度")
async def report(
    task_id: str, body: Progress, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Report a task's progress.

    按版本号追加一次进度报送; 他人已先报送 409 (含对方的修改)。
    """
    return await get_rt(request).run(_report, scope, task_id, body)
