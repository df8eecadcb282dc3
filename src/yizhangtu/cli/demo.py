"""``yizhangtu demo``: build the demo workspace."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, settings_from, table

__all__ = ["register"]


def _shared_default() -> Path:
    env = os.environ.get("YIZHANGTU_SHARED_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), *Path.cwd().parents):
        cand = base / "shared"
        if (cand / "data" / "boundaries").is_dir():
            return cand
        cand = base.parent / "shared"
        if (cand / "data" / "boundaries").is_dir():
            return cand
    return Path("../shared")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    # Chinese help goes in help= (shown verbatim, full stop included); docstrings stay English.
    @app.command("demo", help="用真实边界与普查数据、加上标注为合成的图层, 构建演示工作空间。")
    def demo(
        ctx: typer.Context,
        out_dir: Path = typer.Argument(Path("demo"), help="输出目录"),
        shared: Path = typer.Option(
            None, "--shared", help="共享数据目录 (默认 YIZHANGTU_SHARED_DIR 或 ../shared)"
        ),
        workspace: str = typer.Option(
            None, "--into", help="写入此工作空间 (默认 DIR/yizhangtu-demo.gpkg)"
        ),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Build the demo workspace."""
        from yizhangtu.services.demo import build_demo

        settings = settings_from(ctx)
        log = (lambda _m: None) if json_out else (lambda m: console.print(f"  • {m}"))
        if not json_out:
            console.print(f"[bold]构建演示工作空间[/] → {out_dir}")
        res = build_demo(
            out_dir,
            shared=shared or _shared_default(),
            settings=settings,
            workspace=workspace,
            log=log,
        )
        if json_out:
            emit_json(
                {
                    "workspace": res.extras["workspace"],
                    "built": res.built,
                    "outputs": res.extras.get("outputs", []),
                }
            )
            return
        rows = [
            [b["what"], b["name"], b["count"], "合成" if b["synthetic"] else "真实", b["detail"]]
            for b in res.built
        ]
        console.print(table("已构建", ["类别", "名称", "数量", "数据", "说明"], rows))
        for o in res.extras.get("outputs", []):
            console.print(f"  报告: {o}")
        console.print(f"[green]演示工作空间[/]: {res.extras['workspace']}")
