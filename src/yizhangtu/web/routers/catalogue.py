"""Layers and snapshots: catalogue, metadata, export, diff, import uploads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from yizhangtu.errors import InputError
from yizhangtu.services import features as fsvc
from yizhangtu.services import jobs as jsvc
from yizhangtu.services.auth import Scope
from yizhangtu.services.uploads import check_upload
from yizhangtu.store import LAYER_KINDS
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/layers", tags=["图层"])


@router.get("", summary="图层目录")
async def list_layers(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """可见图层及其快照; 按辖区过滤的图层只计本辖区要素。"""
    return await get_rt(request).run(fsvc.catalogue, scope)


@router.get("/{layer}", summary="图层详情")
async def get_layer(
    layer: str, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """一个图层的目录信息与快照。"""
    cat = await get_rt(request).run(fsvc.catalogue, scope)
    for entry in cat["layers"]:
        if entry["name"] == layer:
            return entry
    from yizhangtu.errors import NotFoundError

    raise NotFoundError(f"图层不存在或未公开: {layer}", key="layer_not_found", field="layer")


class LayerMeta(BaseModel):
    """Catalogue fields that may change."""

    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    published: bool | None = None
    kind: str | None = None
    code_system: str | None = None
    code_field: str | None = None
    id_field: str | None = None
    jurisdiction_field: str | None = None


@router.patch("/{layer}", summary="修改图层信息 (含公开)")
async def update_layer(
    layer: str, body: LayerMeta, request: Request, scope: Scope = Depends(need("publish"))
) -> dict[str, Any]:
    """修改标题、说明、公开状态等 (市级管理员)。"""
    meta = body.model_dump(exclude_none=True)
    if not meta:
        raise InputError("没有要修改的内容", key="bad_request")

    def run(st: Any) -> dict[str, Any]:
        fsvc.visible_layer(st, scope, layer)
        return st.update_layer(layer, actor=str(scope.username), **meta).to_dict()

    return await get_rt(request).run(run)


@router.get("/{layer}/snapshots", summary="快照列表")
async def list_snapshots(
    layer: str, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """图层的全部快照 (不可变, 按时间先后)。"""
    entry = await get_layer(layer, request, scope)
    return {"layer": layer, "snapshots": entry["snapshots"]}


@router.get("/{layer}/export", summary="导出快照", response_class=FileResponse)
async def export_layer(
    layer: str,
    request: Request,
    format: str = Query("gpkg", description="gpkg / geojson / csv / shp (zip) / parquet"),
    snapshot: str | None = Query(None, description="快照标签或编号, 默认当前快照"),
    scope: Scope = Depends(need("read")),
) -> FileResponse:
    """导出一个快照 (本辖区可见部分) 为文件下载。"""
    tmp = Path(tempfile.mkdtemp(prefix="yz-export-"))
    try:
        path = await get_rt(request).run(
            lambda st: fsvc.export_features(st, scope, layer, tmp, fmt=format, snapshot=snapshot)
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    media = {
        "geojson": "application/geo+json",
        "csv": "text/csv; charset=utf-8",
        "shp": "application/zip",
        "gpkg": "application/geopackage+sqlite3",
    }
    return FileResponse(
        path,
        filename=path.name,
        media_type=media.get(format.lower(), "application/octet-stream"),
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


@router.get("/{layer}/diff", summary="快照比较")
async def diff_layer(
    layer: str,
    request: Request,
    from_: str = Query(..., alias="from", description="起始快照"),
    to: str = Query(..., description="目标快照"),
    unit: str = Query("m2", pattern="^(m2|ha|km2|mu)$", description="面积单位"),
    features: bool = Query(False, description="同时返回变化要素 (GeoJSON, CRS84)"),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """两个快照之间新增、删除、变化的要素及面积 (大图层请用后台任务)。"""
    rt = get_rt(request)

    def run(st: Any) -> dict[str, Any]:
        summary, changes = fsvc.diff_features(
            st, scope, layer, from_, to, unit=unit, max_features=rt.settings.diff_sync_max_features
        )
        out: dict[str, Any] = {"summary": fsvc.json_ready(summary)}
        if features:
            import json

            ch = changes.copy()
            ch.index.name = "fid"
            if ch.crs is not None:
                ch = ch.to_crs("OGC:CRS84")
            ch = ch.reset_index(drop=True)
            ch.index = range(1, len(ch) + 1)
            out["features"] = {
                "type": "FeatureCollection",
                "features": [json.loads(f) for f in fsvc.features_json(ch)],
            }
        return out

    return await rt.run(run)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "snapshot"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "zip (Shapefile) / gpkg / geojson / kml / csv / xlsx",
                        },
                        "snapshot": {"type": "string", "description": "快照标签, 如 2023"},
                        "kind": {"type": "string", "enum": list(LAYER_KINDS)},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "jurisdiction_field": {
                            "type": "string",
                            "description": "辖区字段 (取值为行政区划代码)",
                        },
                        "code_field": {"type": "string"},
                        "code_system": {"type": "string"},
                        "id_field": {"type": "string"},
                        "synthetic": {"type": "boolean"},
                        "encoding": {"type": "string"},
                        "crs": {"type": "string"},
                        "repair": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


def _flag(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    return str(v).strip().lower() in ("1", "true", "yes", "on", "是")


@router.post(
    "/{layer}/imports",
    summary="上传文件导入为新快照 (后台任务)",
    status_code=202,
    openapi_extra=_UPLOAD_BODY,
)
async def import_upload(
    layer: str, request: Request, scope: Scope = Depends(need("import"))
) -> JSONResponse:
    """上传文件, 检查大小、类型与压缩炸弹后作为后台任务导入; 返回 202 与任务编号。"""
    from yizhangtu.services.layers import ImportOptions
    from yizhangtu.store.base import validate_layer_name

    rt = get_rt(request)
    validate_layer_name(layer)
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        from yizhangtu.services.uploads import UnsupportedTypeError

        raise UnsupportedTypeError(
            "请用 multipart/form-data 上传文件 (字段 file)",
            key="unsupported_type",
            hint="curl -F file=@dltb.zip -F snapshot=2023 …",
        )
    tmp = Path(tempfile.mkdtemp(prefix="yz-upload-"))
    try:
        form = await request.form(max_files=1, max_fields=30)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
            raise InputError("缺少上传文件 (字段 file)", key="missing_file", field="file")
        label = str(form.get("snapshot") or "").strip()
        if not label:
            raise InputError(
                "缺少快照标签 (字段 snapshot), 如 2023", key="missing_snapshot", field="snapshot"
            )
        name = Path(str(upload.filename).replace("\\", "/")).name or "upload"
        dest = tmp / name
        with dest.open("wb") as out:
            while chunk := await upload.read(1024 * 1024):
                out.write(chunk)
        await form.close()
        check_upload(dest, name, rt.upload_limits)

        def field(k: str) -> str | None:
            v = form.get(k)
            return str(v).strip() or None if isinstance(v, str) else None

        kind = field("kind")
        spec = await rt.run(
            lambda st: jsvc.prepare_import(
                st,
                scope,
                layer,
                kind=kind,
                title=field("title"),
                description=field("description"),
                jurisdiction_field=field("jurisdiction_field"),
                code_field=field("code_field"),
                code_system=field("code_system"),
                id_field=field("id_field"),
                synthetic=_flag(form.get("synthetic")),
            )
        )
        options = ImportOptions(
            encoding=field("encoding"),
            crs=field("crs"),
            repair=bool(_flag(form.get("repair"))),
            code_field=spec.code_field,
            code_system=spec.code_system,
            id_field=spec.id_field,
        )
        fn = jsvc.import_job(
            rt.settings.workspace,
            rt.settings,
            scope,
            dest,
            spec,
            label=label,
            options=options,
            cleanup=tmp,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    job = rt.jobs.submit(
        "import",
        fn,
        title=f"导入 {name} → {layer}@{label}",
        owner=scope.username,
        jurisdiction=scope.jurisdiction,
    )
    return JSONResponse(
        {"job": job.to_dict(), "url": f"/api/jobs/{job.id}"},
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )
