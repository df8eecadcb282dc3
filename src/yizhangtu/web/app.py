"""The FastAPI application factory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from yizhangtu import __version__
from yizhangtu.settings import Settings
from yizhangtu.web.config import WebSettings, web_settings
from yizhangtu.web.errors import BodyLimitMiddleware, NulGuardMiddleware, install_error_handlers
from yizhangtu.web.routers import include_routers
from yizhangtu.web.runtime import Runtime

__all__ = ["STATIC_DIR", "create_app", "iter_routes"]

#: Front-end bundle; ``index.html`` there replaces the placeholder page.
STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_PATHS = re.compile(r"^/api/layers/[^/]+/imports/?$")

_PLACEHOLDER = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>一张图 · 国土空间规划实施监督</title>
<style>body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:46rem;
margin:3rem auto;padding:0 1rem;color:#222;line-height:1.7}
code{background:#f3f3f3;padding:0 .3em}a{color:#0b5cad}</style></head>
<body><h1>一张图</h1>
<p>国土空间规划实施监督平台的服务已启动。网页界面尚未安装, 可以直接使用以下接口:</p>
<ul>
<li><a href="/docs">API 文档</a> (OpenAPI: <a href="/openapi.json">/openapi.json</a>)</li>
<li><a href="/ogc">OGC API Features</a>:
QGIS、GDAL (<code>ogrinfo OAPIF:…/ogc</code>) 可直接读取</li>
<li>矢量瓦片: <code>/tiles/{图层}/{z}/{x}/{y}.mvt</code></li>
<li><a href="/api/public/layers">公开图层</a> · <a href="/api/public/tables">公开数据表</a></li>
</ul></body></html>"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for one workspace.

    Parameters
    ----------
    settings : Settings, optional
        Plain settings get the web defaults; pass :class:`~yizhangtu.web.config.WebSettings`
        to change limits. Nothing is read from the environment here.
    """
    ws: WebSettings = web_settings(settings)
    rt = Runtime(ws)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            rt.close()

    app = FastAPI(
        title="一张图 API",
        version=__version__,
        description=(
            "国土空间规划实施监督平台的 REST 接口、OGC API Features (/ogc) 与矢量瓦片 (/tiles)。"
            "登录: POST /api/auth/login (Cookie 会话, 修改数据时带 X-CSRF-Token) "
            "或 POST /api/auth/token (Bearer)。"
            "长时间的工作 (导入、报告) 以后台任务运行: 返回 202 与任务编号, "
            "用 GET /api/jobs/{id} 查询。"
        ),
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.rt = rt
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=ws.json_max_bytes,
        upload_limit=ws.upload_max_bytes,
        upload_paths=UPLOAD_PATHS,
    )
    app.add_middleware(NulGuardMiddleware)
    app.state.routers = include_routers(app)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html; charset=utf-8")
        return HTMLResponse(_PLACEHOLDER)

    app.mount("/static", _Static(directory=STATIC_DIR, check_dir=False), name="static")
    return app


class _Static(StaticFiles):
    """Static files that answer 404 (not 500) while the front-end bundle is not installed."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not STATIC_DIR.is_dir():
            from fastapi.responses import JSONResponse

            resp = JSONResponse(
                {"error": "http_404", "type": "HTTPError", "message": "网页资源尚未安装"},
                status_code=404,
            )
            await resp(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def iter_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the application serves, mounts as ("MOUNT", path)."""
    try:  # FastAPI ≥ 0.16x keeps included routers as lazy branches
        from fastapi.routing import _iter_included_route_candidates

        routes = list(_iter_included_route_candidates(app.routes))
    except ImportError:
        routes = list(app.routes)
    out: list[tuple[str, str]] = []
    for r in routes:
        methods = getattr(r, "methods", None)
        path = getattr(r, "path", "")
        if methods:
            out.extend((m, path) for m in sorted(methods) if m != "HEAD")
        else:
            out.append(("MOUNT", path))
    return out
