"""The audit trail (hash chain)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["审计"])


@router.get("", summary="审计记录")
async def audit_log(
    request: Request,
    limit: int = Query(100, ge=1, le=10_000),
    target: str | None = Query(None, max_length=300, description="如 layer:survey"),
    scope: Scope = Depends(need("audit")),
) -> dict[str, Any]:
    """最近的审计记录 (市级管理员)。"""
    rows = await get_rt(request).run(lambda st: st.audit_log(limit=limit, target=target))
    return {"records": [r.to_dict() for r in rows]}


@router.get("/verify", summary="校验审计链")
async def audit_verify(request: Request, scope: Scope = Depends(need("audit"))) -> dict[str, Any]:
    """重算哈希链, 报告缺失或篡改的记录。"""
    v = await get_rt(request).run(lambda st: st.audit_verify())
    return {"ok": v.ok, "count": v.count, "head": v.head, "problems": list(v.problems)}
