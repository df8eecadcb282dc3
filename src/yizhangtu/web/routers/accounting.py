"""Area tables (用地核算): class × unit areas from ``yizhangtu.services.accounting``, as jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

try:  # the capability is optional: without its service, this router is not included
    import yizhangtu.services.accounting  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "yizhangtu.services.accounting":
        raise
    raise ModuleNotFoundError(f"No module named {__name__!r}", name=__name__) from None
from yizhangtu.services import jobs as svc
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/accounting", tags=["用地核算"])


class AreaTableRequest(BaseModel):
    """What to tabulate."""

    layer: str = Field(..., max_length=64, description="被统计的图层, 如 survey")
    by: str = Field(..., max_length=64, description="统计单元图层, 如 chaoyang_streets")
    unit_field: str | None = Field(None, max_length=64, description="统计单元名称字段")
    snapshot: str | None = Field(None, max_length=100)
    by_snapshot: str | None = Field(None, max_length=100)
    group: str = Field(
        "level1", max_length=64, description="分组: level1 / level2 / code / 自定义组"
    )
    unit: str = Field("km2", pattern="^(m2|ha|km2|mu)$")
    engine: str = Field("local", pattern="^(local|postgis)$")


@router.post("/area-tables", summary="面积统计 (后台任务)", status_code=202)
async def area_table(
    body: AreaTableRequest, request: Request, scope: Scope = Depends(need("reports"))
) -> JSONResponse:
    """按统计单元汇总各地类面积 (椭球面积), 生成 xlsx 报告与溯源记录; 返回 202 与任务编号。"""
    rt = get_rt(request)
    params: dict[str, Any] = body.model_dump(exclude_none=True)

    def check(st: Store) -> None:
        svc.check_whole_layers(st, scope, body.layer, body.by)
        st.resolve_snapshot(body.layer, body.snapshot)
        st.resolve_snapshot(body.by, body.by_snapshot)

    await rt.run(check)
    fn = svc.area_table_job(
        rt.settings.workspace, rt.settings, scope, rt.settings.reports_path(), params
    )
    job = rt.jobs.submit(
        "area_table",
        fn,
        title=f"面积统计 {body.layer} × {body.by}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )
