"""Shared CLI plumbing: workspace, output and error rendering."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from yizhangtu.settings import Settings, get_settings
from yizhangtu.store import Store, open_store

__all__ = [
    "JSON_OPT",
    "console",
    "emit_json",
    "err_console",
    "open_workspace",
    "settings_from",
    "table",
]

console = Console()
err_console = Console(stderr=True)

JSON_OPT = typer.Option(False, "--json", help="输出机器可读的 JSON")


def settings_from(ctx: typer.Context | None) -> Settings:
    """Return the settings, with the ``--workspace`` given on the command line if any."""
    ws = None
    if ctx is not None and ctx.obj:
        ws = ctx.obj.get("workspace")
    return get_settings(workspace=ws)


def open_workspace(ctx: typer.Context | None, *, create: bool = False) -> Store:
    """Open the workspace named by ``--workspace``, ``YIZHANGTU_WORKSPACE`` or the default.

    The default is ``yizhangtu.gpkg``.
    """
    return open_store(settings_from(ctx).workspace, create=create)


def emit_json(obj: Any) -> None:
    """Print JSON to stdout (UTF-8, not escaped)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """Build a Rich table with Chinese headers."""
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t
