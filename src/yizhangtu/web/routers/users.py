"""Account administration (市级管理员, inside their jurisdiction)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.services import users as svc
from yizhangtu.services.auth import Scope
from yizhangtu.web.deps import get_rt, need

__all__ = ["router"]

router = APIRouter(prefix="/api/users", tags=["用户"])


class NewUser(BaseModel):
    """A new account."""

    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)
    role: str
    jurisdiction: str
    display_name: str | None = Field(None, max_length=200)


class NewPassword(BaseModel):
    """A new password."""

    password: str = Field(..., max_length=1024)


@router.get("", summary="用户列表")
async def list_users(
    request: Request, scope: Scope = Depends(need("manage_users"))
) -> dict[str, Any]:
    """本辖区的账号。"""
    users = await get_rt(request).run(svc.list_users, scope)
    return {"users": [u.to_dict() for u in users]}


@router.post("", summary="新建用户", status_code=201)
async def add_user(
    body: NewUser, request: Request, scope: Scope = Depends(need("manage_users"))
) -> JSONResponse:
    """在本辖区内新建账号。"""

    def run(st: Any) -> Any:
        return svc.add_user(
            st,
            body.username,
            body.password,
            role=body.role,
            jurisdiction=body.jurisdiction,
            display_name=body.display_name,
            actor=str(scope.username),
            scope=scope,
        )

    user = await get_rt(request).run(run)
    return JSONResponse(user.to_dict(), status_code=201)


async def _set_disabled(
    request: Request, scope: Scope, username: str, disabled: bool
) -> dict[str, Any]:
    rt = get_rt(request)
    user = await rt.run(
        lambda st: svc.set_disabled(st, username, disabled, actor=str(scope.username), scope=scope)
    )
    rt.forget_user(username)
    return user.to_dict()


@router.post("/{username}/disable", summary="停用用户")
async def disable_user(
    username: str, request: Request, scope: Scope = Depends(need("manage_users"))
) -> dict[str, Any]:
    """停用账号并结束其全部会话。"""
    return await _set_disabled(request, scope, username, True)


@router.post("/{username}/enable", summary="启用用户")
async def enable_user(
    username: str, request: Request, scope: Scope = Depends(need("manage_users"))
) -> dict[str, Any]:
    """重新启用账号。"""
    return await _set_disabled(request, scope, username, False)


@router.put("/{username}/password", summary="重置密码")
async def reset_password(
    username: str, body: NewPassword, request: Request, scope: Scope = Depends(need("manage_users"))
) -> dict[str, Any]:
    """重置密码并结束其全部会话。"""
    rt = get_rt(request)
    user = await rt.run(
        lambda st: svc.set_password(
            st, username, body.password, actor=str(scope.username), scope=scope
        )
    )
    rt.forget_user(username)
    return user.to_dict()
