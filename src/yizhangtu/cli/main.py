"""The ``yizhangtu`` command."""

from __future__ import annotations

import json
import sys

import click
import typer

from yizhangtu import __version__
from yizhangtu.errors import YizhangtuError

__all__ = ["app", "main"]

app = typer.Typer(
    name="yizhangtu",
    help="一张图: 国土空间规划实施监督平台 (版本化空间库、用地核算、减量台账、城市更新、城市体检)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"yizhangtu {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: str = typer.Option(
        None,
        "--workspace",
        "-w",
        help="工作空间: .gpkg 路径或 postgresql:// (默认 YIZHANGTU_WORKSPACE 或 ./yizhangtu.gpkg)",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="显示版本"
    ),
) -> None:
    ctx.obj = {"workspace": workspace}


def _mount() -> None:
    from yizhangtu.cli import store_cmds

    store_cmds.register(app)
    import importlib

    # Sub-apps of each capability, mounted when their module is present.
    for module, attr, name, help_text in (
        ("yizhangtu.cli.codes", "app", "codes", "地类代码表"),
        ("yizhangtu.cli.accounting", "register", None, None),
        ("yizhangtu.cli.policy", "app", "policy", "政策包"),
        ("yizhangtu.cli.renewal", "app", "renewal", "城市更新单元库"),
        ("yizhangtu.cli.reduction", "app", "reduction", "减量台账"),
        ("yizhangtu.cli.rights", "app", "rights", "权益与产权信息"),
        ("yizhangtu.cli.conformance", "app", "conformance", "管控线与多规合一"),
        ("yizhangtu.cli.indicators", "app", "indicators", "指标与城市体检"),
        ("yizhangtu.cli.report", "app", "report", "报告"),
        ("yizhangtu.cli.scoring", "score_app", "score", "选址评分 (一站一策一档)"),
        ("yizhangtu.cli.tasks", "tasks_app", "tasks", "任务督办"),
        ("yizhangtu.cli.tasks", "projects_app", "projects", "项目库"),
        ("yizhangtu.cli.demo", "register", None, None),
        ("yizhangtu.cli.web", "register", None, None),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        obj = getattr(mod, attr)
        if name is None:
            obj(app)
        else:
            app.add_typer(obj, name=name, help=help_text)


_mount()


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, render typed errors in Chinese, map them to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rc = app(args=args, standalone_mode=False)
        # with standalone_mode off, click returns the code of typer.Exit instead of exiting
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except YizhangtuError as exc:
        if _wants_json(args):
            sys.stdout.write(
                json.dumps(exc.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n"
            )
        from yizhangtu.cli._common import err_console

        err_console.print(f"[red]错误[/] [{exc.key}] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
