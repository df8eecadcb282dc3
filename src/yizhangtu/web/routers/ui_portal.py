"""UI support for the public portal (no login): what the portal presents (004 (九))."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from yizhangtu.services import portal as svc
from yizhangtu.web.deps import get_rt

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_ui.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/ui/portal"): "public",
}

router = APIRouter(prefix="/api/ui/portal", tags=["界面: 公众门户"])


@router.get("", summary="公众门户内容")
async def overview(request: Request) -> dict[str, Any]:
    """Describe what the public portal shows.

    区片容积率图层、区片地价表和其他已公开数据表 (只含已公开内容, 无需登录)。
    """
    return await get_rt(request).run(svc.portal_overview)
