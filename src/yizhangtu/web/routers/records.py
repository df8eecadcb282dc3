"""Editable records (renewal units, tasks …) in the user's jurisdiction, optimistically locked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.services import records as svc
from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/records", tags=["记录"])


class NewRecord(BaseModel):
    """A record to create."""

    key: str = Field(..., min_length=1, max_length=200)
    data: dict[str, Any]
    jurisdiction: str | None = Field(None, description="行政区划代码, 默认为本人辖区")


class RecordUpdate(BaseModel):
    """A record update based on ``version``."""

    data: dict[str, Any]
    version: int = Field(..., ge=1, description="所依据的版本号 (乐观锁)")
    jurisdiction: str | None = None


@router.get("/{collection}", summary="记录列表")
async def list_records(
    collection: str,
    request: Request,
    after: str | None = Query(None, description="上一页最后一个键"),
    limit: int = Query(100, ge=1, le=1000),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """本辖区内的记录 (按键分页)。"""
    rows, nxt = await get_rt(request).run(
        lambda st: svc.list_records(st, scope, collection, after=after, limit=limit)
    )
    return {"records": [svc.record_dict(r) for r in rows], "next": nxt}


@router.post("/{collection}", summary="新建记录", status_code=201)
async def create_record(
    collection: str, body: NewRecord, request: Request, scope: Scope = Depends(need("write"))
) -> JSONResponse:
    """在本辖区内新建记录; 已存在时 409。"""
    rec = await get_rt(request).run(
        lambda st: svc.put_record(
            st,
            scope,
            collection,
            body.key,
            body.data,
            expected_version=None,
            jurisdiction=body.jurisdiction,
        )
    )
    return JSONResponse(svc.record_dict(rec), status_code=201)


@router.get("/{collection}/{key}", summary="读取记录")
async def get_record(
    collection: str, key: str, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """一条记录 (辖区外视为不存在)。"""
    return svc.record_dict(await get_rt(request).run(svc.get_record, scope, collection, key))


@router.put("/{collection}/{key}", summary="保存记录")
async def update_record(
    collection: str,
    key: str,
    body: RecordUpdate,
    request: Request,
    scope: Scope = Depends(need("write")),
) -> dict[str, Any]:
    """按版本号保存; 他人已先保存时 409, 并返回对方的修改。"""
    rec = await get_rt(request).run(
        lambda st: svc.put_record(
            st,
            scope,
            collection,
            key,
            body.data,
            expected_version=body.version,
            jurisdiction=body.jurisdiction,
        )
    )
    return svc.record_dict(rec)


@router.delete("/{collection}/{key}", summary="删除记录")
async def delete_record(
    collection: str,
    key: str,
    request: Request,
    version: int = Query(..., ge=1),
    scope: Scope = Depends(need("write")),
) -> dict[str, Any]:
    """按版本号删除。"""
    await get_rt(request).run(
        lambda st: svc.delete_record(st, scope, collection, key, expected_version=version)
    )
    return {"ok": True}


@router.get("/{collection}/{key}/history", summary="记录的审计历史")
async def record_history(
    collection: str, key: str, request: Request, scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """这条记录的审计链条目。"""
    return {"history": await get_rt(request).run(svc.record_history, scope, collection, key)}
