"""Sign-in: cookie sessions (with CSRF token) and bearer tokens."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from yizhangtu.errors import InputError, PermissionDeniedError
from yizhangtu.services.auth import Scope
from yizhangtu.services.users import authenticate, get_user
from yizhangtu.web.deps import CSRF_COOKIE, SESSION_COOKIE, get_rt, get_scope, need

__all__ = ["router"]

router = APIRouter(prefix="/api/auth", tags=["登录"])


class Credentials(BaseModel):
    """User name and password."""

    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)


# inline: the model is read by hand (JSON or form), so FastAPI never adds it to components
_CRED_SCHEMA = Credentials.model_json_schema()
_CRED_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _CRED_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _CRED_SCHEMA},
        },
    }
}


async def _read_credentials(request: Request) -> Credentials:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin and origin.split("://", 1)[-1] != host:
            raise PermissionDeniedError("跨站登录请求被拒绝", key="csrf_failed")
        form = await request.form()
        data: Any = {"username": form.get("username"), "password": form.get("password")}
    else:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InputError(
                '请求体应为 JSON: {"username": …, "password": …}', key="bad_request"
            ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("username"), str)
        or not isinstance(data.get("password"), str)
    ):
        raise InputError("缺少用户名或密码", key="bad_request", field="username")
    try:
        return Credentials(**data)
    except ValueError:
        raise InputError("用户名或密码过长", key="bad_request") from None


async def _login(request: Request) -> tuple[Any, Any, str]:
    rt = get_rt(request)
    cred = await _read_credentials(request)
    ip = request.client.host if request.client else "?"
    lim = rt.limiter
    # failures are counted in the workspace, shared by every process serving it
    await rt.run(lambda st: lim.check(ip, cred.username, store=st))
    try:
        user = await rt.run(authenticate, cred.username, cred.password)
    except Exception:
        await rt.run(lambda st: lim.failed(ip, cred.username, store=st))
        raise
    await rt.run(lambda st: lim.succeeded(ip, cred.username, store=st))
    token, payload = rt.signer.issue(user.username, user.epoch)
    return user, payload, token


@router.post("/login", summary="登录 (Cookie 会话)", openapi_extra=_CRED_BODY)
async def login(request: Request) -> JSONResponse:
    """用户名和密码登录; 设置 HttpOnly、SameSite=Strict 的会话 Cookie, 返回 CSRF 令牌。"""
    rt = get_rt(request)
    user, payload, token = await _login(request)
    secure = (
        rt.settings.cookie_secure
        if rt.settings.cookie_secure is not None
        else request.url.scheme == "https"
    )
    resp = JSONResponse(
        {"user": user.to_dict(), "csrf_token": payload.csrf, "expires_at": payload.expires}
    )
    ttl = rt.settings.session_ttl_seconds
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    resp.set_cookie(
        CSRF_COOKIE,
        payload.csrf,
        max_age=ttl,
        path="/",
        httponly=False,
        samesite="strict",
        secure=secure,
    )
    return resp


@router.post("/token", summary="获取 Bearer 令牌", openapi_extra=_CRED_BODY)
async def token(request: Request) -> dict[str, Any]:
    """用户名和密码换取 Bearer 令牌 (脚本、GIS 客户端使用, 无需 CSRF)。"""
    rt = get_rt(request)
    user, _payload, tok = await _login(request)
    return {
        "access_token": tok,
        "token_type": "bearer",
        "expires_in": rt.settings.session_ttl_seconds,
        "user": user.to_dict(),
    }


@router.post("/logout", summary="退出登录")
async def logout(request: Request, scope: Scope = Depends(need("login"))) -> JSONResponse:
    """注销当前会话 (Cookie 会话需带 X-CSRF-Token)。"""
    rt = get_rt(request)
    payload = getattr(request.state, "session", None)
    if payload is not None:
        # recorded in the workspace: refused by every process, also after a restart
        await rt.run(lambda st: rt.revoked.revoke(payload.sid, payload.expires, store=st))
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    resp.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    return resp


@router.get("/me", summary="当前用户")
async def me(request: Request, scope: Scope = Depends(get_scope)) -> dict[str, Any]:
    """当前登录用户及其权限; 未登录时 authenticated 为 false。"""
    if not scope.authenticated:
        return {"authenticated": False, "role": "anonymous"}
    user = await get_rt(request).run(get_user, scope.username)
    from yizhangtu.services.auth import ROLES

    return {
        "authenticated": True,
        "user": user.to_dict(),
        "permissions": sorted(ROLES[user.role]["perms"]),
    }
