"""Provenance: explain a result back to its inputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from yizhangtu.services.auth import Scope
from yizhangtu.services.features import json_ready
from yizhangtu.services.provenance import explain_chain
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/provenance", tags=["溯源"])


@router.get("/{rid}", summary="溯源链")
async def explain(
    request: Request,
    rid: str = Path(..., min_length=4, max_length=128),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """结果的溯源记录, 以及每个输入快照的导入情况与审计序号。"""
    return json_ready(await get_rt(request).run(explain_chain, rid))
