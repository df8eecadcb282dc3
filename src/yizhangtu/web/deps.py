"""Request dependencies: who is asking (cookie or bearer session), CSRF, permissions."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from pydantic import AfterValidator, StringConstraints

from yizhangtu.errors import PermissionDeniedError
from yizhangtu.services.auth import ANONYMOUS, AuthenticationError, Scope
from yizhangtu.web.runtime import Runtime

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "IsoDay",
    "get_rt",
    "get_scope",
    "need",
]

SESSION_COOKIE = "yz_session"
CSRF_COOKIE = "yz_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def _real_day(value: str) -> str:
    """Refuse a ``YYYY-MM-DD`` text that names no calendar day (``2021-02-30``, ``0000-00-00``)."""
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"不是有效日期 {value!r} (应为 YYYY-MM-DD, 如 2021-07-15)") from None
    return value


#: An optional day as ``YYYY-MM-DD`` text (the pattern is published in the OpenAPI); a malformed
#: or impossible date (``2021-02-30``) is a 400 with a Chinese message, never a 500.
IsoDay = Annotated[str, StringConstraints(pattern=_DAY_PATTERN), AfterValidator(_real_day)] | None


def get_rt(request: Request) -> Runtime:
    """Return the application's runtime."""
    return request.app.state.rt


def _credentials(request: Request) -> tuple[str | None, str | None]:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, None


async def get_scope(request: Request) -> Scope:
    """Resolve the caller's scope: anonymous, or the signed-in user's (401 if expired)."""
    cached = getattr(request.state, "scope", None)
    if cached is not None:
        return cached
    rt = get_rt(request)
    token, via = _credentials(request)
    if token is None:
        scope = ANONYMOUS
    else:
        payload = rt.signer.verify(token)
        if rt.revoked.revoked(payload.sid):
            raise AuthenticationError("会话已注销, 请重新登录", key="session_revoked")
        user = await rt.user(payload.username)
        if user is None or user.disabled or user.epoch != payload.epoch:
            raise AuthenticationError(
                "会话已失效 (账号已变更或停用), 请重新登录", key="session_invalid"
            )
        if via == "cookie" and request.method not in _SAFE:
            header = request.headers.get(CSRF_HEADER, "")
            cookie = request.cookies.get(CSRF_COOKIE)
            if (
                not header
                or not hmac.compare_digest(header, payload.csrf)
                or (cookie is not None and not hmac.compare_digest(cookie, header))
            ):
                raise PermissionDeniedError(
                    "CSRF 校验失败: 缺少或不匹配的 X-CSRF-Token 请求头",
                    key="csrf_failed",
                    hint=(
                        "以 Cookie 会话修改数据时, 请把登录返回的 csrf_token "
                        "(或 yz_csrf Cookie) 放入 X-CSRF-Token 请求头"
                    ),
                )
        scope = user.scope()
        request.state.session = payload
    request.state.scope = scope
    return scope


def need(perm: str) -> Callable[..., Awaitable[Scope]]:
    """Make a dependency requiring a user with ``perm`` (``"login"``: any signed-in user)."""

    async def dep(scope: Scope = Depends(get_scope)) -> Scope:
        if perm == "login":
            if not scope.authenticated:
                raise AuthenticationError(
                    "请先登录", key="login_required", hint="POST /api/auth/login 登录"
                )
        else:
            scope.require(perm)
        return scope

    dep.__name__ = f"need_{perm}"
    return dep
