"""Report files from the workspace's report directory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from yizhangtu.services import jobs as svc
from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/reports", tags=["报告"])

_MEDIA = {
    ".pdf": "application/pdf",
    ".html": "text/html; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".png": "image/png",
    ".gpkg": "application/geopackage+sqlite3",
}


@router.get("", summary="报告列表")
async def list_reports(request: Request, scope: Scope = Depends(need("reports"))) -> dict[str, Any]:
    """本人可下载的报告 (本人生成的、辖区内的, 以及已公开的)。"""
    rt = get_rt(request)
    return {"reports": svc.list_reports(rt.settings.reports_path(), scope)}


@router.get("/{name:path}", summary="下载报告", response_class=FileResponse)
async def download_report(
    name: str, request: Request, scope: Scope = Depends(need("reports"))
) -> FileResponse:
    """下载一个报告文件。"""
    p = svc.report_path(get_rt(request).settings.reports_path(), scope, name)
    return FileResponse(
        p, filename=p.name, media_type=_MEDIA.get(p.suffix.lower(), "application/octet-stream")
    )
