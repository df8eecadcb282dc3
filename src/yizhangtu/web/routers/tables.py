"""Ledger tables (统计表、台账)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from yizhangtu.services import records as svc
from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/tables", tags=["数据表"])


class TableMeta(BaseModel):
    """Publication and jurisdiction column of a table."""

    published: bool | None = None
    jurisdiction_field: str | None = None
    title: str | None = Field(None, max_length=200)


@router.get("", summary="数据表列表")
async def list_tables(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """全部数据表及其公开状态。"""
    return {"tables": await get_rt(request).run(svc.visible_tables, scope)}


@router.get("/{name}", summary="读取数据表")
async def read_table(
    name: str,
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=0, le=10_000),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """数据表的行 (设了辖区列的表只返回本辖区的行)。"""
    return await get_rt(request).run(
        lambda st: svc.read_table(st, scope, name, offset=offset, limit=limit)
    )


@router.put("/{name}/meta", summary="设置数据表公开与辖区列")
async def set_meta(
    name: str, body: TableMeta, request: Request, scope: Scope = Depends(need("publish"))
) -> dict[str, Any]:
    """公开数据表, 或指定其辖区列 (市级管理员)。"""
    return await get_rt(request).run(
        lambda st: svc.set_table_meta(
            st,
            scope,
            name,
            published=body.published,
            jurisdiction_field=body.jurisdiction_field,
            title=body.title,
        )
    )
