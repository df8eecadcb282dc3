"""Public portal (公众门户): published layers, tables and reports, without login."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from yizhangtu import __version__
from yizhangtu.services import features as fsvc
from yizhangtu.services import jobs as jsvc
from yizhangtu.services import records as rsvc
from yizhangtu.services.auth import ANONYMOUS
from yizhangtu.web.deps import get_rt

__all__ = ["router"]

router = APIRouter(prefix="/api/public", tags=["公众门户"])


@router.get("/health", summary="服务状态")
async def health(request: Request) -> dict[str, Any]:
    """服务是否可用 (连通工作空间)。"""
    backend = await get_rt(request).run(lambda st: st.backend)
    return {"status": "ok", "version": __version__, "backend": backend}


@router.get("/layers", summary="公开图层")
async def public_layers(request: Request) -> dict[str, Any]:
    """已公开的图层 (可在 /ogc 与 /tiles 中匿名访问)。"""
    cat = await get_rt(request).run(fsvc.catalogue, ANONYMOUS)
    for entry in cat["layers"]:
        entry["tiles"] = f"/tiles/{entry['name']}/{{z}}/{{x}}/{{y}}.mvt"
        entry["items"] = f"/ogc/collections/{entry['name']}/items"
    return cat


@router.get("/tables", summary="公开数据表")
async def public_tables(request: Request) -> dict[str, Any]:
    """已公开的数据表。"""
    return {"tables": await get_rt(request).run(rsvc.visible_tables, ANONYMOUS)}


@router.get("/tables/{name}", summary="读取公开数据表")
async def public_table(
    name: str,
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=0, le=10_000),
) -> dict[str, Any]:
    """一张已公开数据表的行。"""
    return await get_rt(request).run(
        lambda st: rsvc.read_table(st, ANONYMOUS, name, offset=offset, limit=limit)
    )


@router.get("/reports", summary="公开报告")
async def public_reports(request: Request) -> dict[str, Any]:
    """已公开的报告。"""
    return {"reports": jsvc.list_reports(get_rt(request).settings.reports_path(), ANONYMOUS)}


@router.get("/reports/{name:path}", summary="下载公开报告", response_class=FileResponse)
async def public_report(name: str, request: Request) -> FileResponse:
    """下载一个已公开的报告。"""
    p = jsvc.report_path(get_rt(request).settings.reports_path(), ANONYMOUS, name)
    return FileResponse(p, filename=p.name)
