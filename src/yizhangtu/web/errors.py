"""Errors as JSON with Chinese messages, and the request-body size limit."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yizhangtu.errors import InputError, YizhangtuError
from yizhangtu.services.uploads import PayloadTooLargeError

__all__ = ["BodyLimitMiddleware", "NulGuardMiddleware", "error_response", "install_error_handlers"]

log = logging.getLogger("yizhangtu.web")

_HTTP_ZH = {
    400: "请求有误",
    401: "请先登录",
    403: "无权访问",
    404: "接口或资源不存在",
    405: "不支持的请求方法",
    406: "不支持请求的格式",
    409: "数据冲突",
    413: "请求内容过大",
    415: "不支持的内容类型",
    429: "请求过于频繁",
}


def _clear_session(resp: JSONResponse) -> None:
    from yizhangtu.web.deps import CSRF_COOKIE, SESSION_COOKIE

    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    resp.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")


def error_response(exc: YizhangtuError) -> JSONResponse:
    """Return the JSON response of a typed error (status from the error class)."""
    body = exc.to_dict()
    status = int(getattr(exc, "http_status", 400))
    resp = JSONResponse(body, status_code=status, media_type="application/json; charset=utf-8")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="yizhangtu"'
        _clear_session(resp)
    retry = exc.data.get("retry_after") if isinstance(exc.data, dict) else None
    if status == 429 and retry:
        resp.headers["Retry-After"] = str(retry)
    return resp


_LOC_ZH = {
    "query": "查询参数",
    "path": "路径参数",
    "body": "请求体",
    "header": "请求头",
    "cookie": "Cookie",
}
_MSG_ZH = [
    (re.compile(r"valid integer"), "应为整数"),
    (re.compile(r"valid number"), "应为数字"),
    (re.compile(r"Field required"), "缺少必填项"),
    (re.compile(r"valid boolean"), "应为 true 或 false"),
    (re.compile(r"greater than or equal to (\S+)"), r"应不小于 \1"),
    (re.compile(r"less than or equal to (\S+)"), r"应不大于 \1"),
    (re.compile(r"greater than (\S+)"), r"应大于 \1"),
    (re.compile(r"valid dictionary|valid object"), "应为 JSON 对象"),
    (re.compile(r"valid string"), "应为字符串"),
    (re.compile(r"JSON decode error"), "JSON 格式错误"),
    (re.compile(r"at most (\d+) character"), r"最多 \1 个字符"),
    (re.compile(r"String should match pattern '(.*)'"), r"格式不符 (应匹配 \1)"),
]


def _zh(msg: str) -> str:
    if msg.startswith("Value error, "):  # our own validators already speak Chinese
        return msg.removeprefix("Value error, ")
    for rx, zh in _MSG_ZH:
        if rx.search(msg):
            return rx.sub(zh, msg) if "\\1" in zh else zh
    return msg


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers that turn every error into JSON with a Chinese message."""

    @app.exception_handler(YizhangtuError)
    async def _typed(request: Request, exc: YizhangtuError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:10]:
            loc = [str(x) for x in list(e.get("loc") or [])]
            where = _LOC_ZH.get(loc[0], loc[0]) if loc else ""
            name = ".".join(loc[1:]) if len(loc) > 1 else ""
            problems.append(f"{where} {name}: {_zh(str(e.get('msg', '')))}".strip())
        body = {
            "error": "bad_request",
            "type": "InputError",
            "message": "请求参数有误: " + "; ".join(problems),
            "hint": "对照 /docs 中的接口说明",
        }
        first = list(exc.errors()[0].get("loc") or []) if exc.errors() else []
        if len(first) > 1:
            body["field"] = str(first[-1])
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        cause = exc.__cause__
        if isinstance(cause, YizhangtuError):
            return error_response(cause)
        if exc.status_code == 304:
            from starlette.responses import Response

            return Response(status_code=304, headers=dict(exc.headers or {}))
        msg = _HTTP_ZH.get(exc.status_code, "请求失败")
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and re.search(r"[\u4e00-\u9fff]", exc.detail)
            else None
        )
        body = {"error": f"http_{exc.status_code}", "type": "HTTPError", "message": detail or msg}
        if exc.status_code == 404:
            body["hint"] = "接口列表见 /docs"
        return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, ValueError) and "NUL (0x00)" in str(exc):
            # PostgreSQL text cannot hold NUL; psycopg refuses such a parameter before sending
            return error_response(_nul_error())
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal", "type": "InternalError", "message": "服务器内部错误, 已记录日志"},
            status_code=500,
        )


def _nul_error() -> InputError:
    return InputError(
        "请求中含有空字符 (NUL, \\0), 无法处理",
        key="nul_character",
        hint="去掉参数或文本中的 \\0 字符",
    )


class NulGuardMiddleware:
    """Refuse a path or query string that carries a NUL character (400), before any handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the decoded path and the raw query string."""
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"%00" in scope.get("query_string", b"")
            or b"\x00" in scope.get("query_string", b"")
        ):
            await error_response(_nul_error())(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse request bodies over a limit (413): uploads get the upload limit, others a small one.

    The declared ``Content-Length`` is checked before anything is read; a chunked body is
    counted as it arrives and cut off at the limit.
    """

    def __init__(
        self, app: ASGIApp, *, default_limit: int, upload_limit: int, upload_paths: re.Pattern[str]
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the body as it arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = bool(self.upload_paths.search(scope.get("path", "")))
        limit = (
            self.upload_limit + 1024 * 1024 if upload else self.default_limit
        )  # multipart framing
        mb = limit / 1024 / 1024
        err = PayloadTooLargeError(
            f"请求内容过大, 上限 {mb:.1f} MB",
            key="upload_too_large" if upload else "body_too_large",
            hint="拆分文件或联系管理员调整 YIZHANGTU_UPLOAD_MAX_BYTES" if upload else None,
        )
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > limit:
                    resp = error_response(err)
                    resp.headers["Connection"] = "close"
                    await resp(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise err
            return msg

        await self.app(scope, limited, send)


def json_dumps(obj: Any) -> str:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
