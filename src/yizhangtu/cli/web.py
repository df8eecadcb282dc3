"""``yizhangtu serve`` (the web server) and ``yizhangtu users`` (accounts)."""

from __future__ import annotations

import getpass
from typing import Any

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, table

__all__ = ["register", "users_app"]

users_app = typer.Typer(help="用户账号 (网页与接口登录)", no_args_is_help=True)


def _settings(ctx: Any) -> Any:
    from yizhangtu.web.config import WebSettings

    ws = ctx.obj.get("workspace") if ctx.obj else None
    return WebSettings(**({"workspace": ws} if ws else {}))


def _root_ctx(ctx: Any) -> Any:
    while ctx.parent is not None and not (ctx.obj and "workspace" in ctx.obj):
        ctx = ctx.parent
    return ctx


# Chinese help goes in help= (shown verbatim, full stop included); docstrings stay English.
@users_app.command("add", help="新建用户。")
def users_add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="用户名"),
    role: str = typer.Option(
        ..., "--role", help="角色: city_admin / district / township / department / public"
    ),
    jurisdiction: str = typer.Option(
        ..., "--jurisdiction", "-j", help="辖区代码前缀, 如 110105 (朝阳区) 或 110105001 (街道)"
    ),
    display_name: str = typer.Option(None, "--name", help="显示名称"),
    password: str = typer.Option(
        None,
        "--password",
        help="密码 (省略则交互输入; 也可用 YIZHANGTU_NEW_PASSWORD)",
        envvar="YIZHANGTU_NEW_PASSWORD",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Create a user."""
    from yizhangtu.services.users import add_user
    from yizhangtu.store import open_store

    settings = _settings(_root_ctx(ctx))
    pw = password or getpass.getpass("密码: ")
    with open_store(settings.workspace, create=True) as st:
        user = add_user(
            st,
            username,
            pw,
            role=role,
            jurisdiction=jurisdiction,
            display_name=display_name,
            actor=settings.actor,
        )
    if json_out:
        emit_json(user.to_dict())
    else:
        console.print(
            f"[green]已新建用户[/] {user.username} "
            f"({user.to_dict()['role_label']}, 辖区 {user.jurisdiction})"
        )


@users_app.command("list", help="列出用户。")
def users_list(ctx: typer.Context, json_out: bool = JSON_OPT) -> None:
    """List the users."""
    from yizhangtu.services.users import list_users
    from yizhangtu.store import open_store

    settings = _settings(_root_ctx(ctx))
    with open_store(settings.workspace, create=False) as st:
        users = list_users(st)
    if json_out:
        emit_json({"users": [u.to_dict() for u in users]})
        return
    rows = [
        [
            u.username,
            u.display_name,
            u.to_dict()["role_label"],
            u.jurisdiction,
            "停用" if u.disabled else "正常",
        ]
        for u in users
    ]
    console.print(table("用户", ["用户名", "名称", "角色", "辖区", "状态"], rows))


@users_app.command("disable", help="停用用户 (立即结束其会话)。")
def users_disable(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="用户名"),
    json_out: bool = JSON_OPT,
) -> None:
    """Disable a user, ending their sessions."""
    from yizhangtu.services.users import set_disabled
    from yizhangtu.store import open_store

    settings = _settings(_root_ctx(ctx))
    with open_store(settings.workspace, create=False) as st:
        user = set_disabled(st, username, True, actor=settings.actor)
    if json_out:
        emit_json(user.to_dict())
    else:
        console.print(f"[yellow]已停用[/] {user.username}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``users`` to the main app."""

    @app.command("serve", help="启动网页与接口服务 (REST、OGC API Features、矢量瓦片)。")
    def serve(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host", help="监听地址"),
        port: int = typer.Option(8000, "--port", help="端口"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Start the web and API server."""
        import uvicorn

        from yizhangtu.web import create_app

        settings = _settings(ctx)
        app = create_app(settings)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{port}/"
        if json_out:
            emit_json(
                {
                    "url": url,
                    "workspace": settings.workspace,
                    "docs": url + "docs",
                    "ogc": url + "ogc",
                }
            )
        else:
            console.print(
                f"[green]一张图服务[/] {url}  (工作空间 {settings.workspace}; "
                f"接口文档 {url}docs; OGC {url}ogc)"
            )
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)

    app.add_typer(users_app, name="users", help="用户账号")
