"""CLI: 地类代码表 (code tables, crosswalks, groups). Mounted by the main app as ``codes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from yizhangtu import codes as code_tables
from yizhangtu.errors import InputError

__all__ = ["app"]

app = typer.Typer(help="地类代码表", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="输出 JSON（机器可读）")]
SystemOpt = Annotated[str | None, typer.Option("--system", "-s", help="代码体系，如 sandiao")]


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if value is pd.NA:
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=_default))


def _console() -> Console:
    return Console()


def _code_dict(c: code_tables.Code) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "level": c.level,
        "parent": c.parent,
        "note": c.note,
    }


def _table_meta(t: code_tables.CodeTable) -> dict[str, Any]:
    return {
        "system": t.system,
        "title": t.title,
        "version": t.version,
        "kind": t.kind,
        "codes": len(t),
        "source": t.source,
        "caveats": list(t.caveats),
    }


@app.command("list", help="列出代码体系；给出 --system 时列出该体系的代码。")
def list_cmd(
    system: SystemOpt = None,
    level: Annotated[int | None, typer.Option("--level", "-l", help="只列出该级别")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the code systems, or the codes of one system."""
    if system is None:
        if level is not None:
            raise InputError(
                "--level 须与 --system 一起使用",
                key="bad_option",
                hint="例如: yizhangtu codes list --system sandiao --level 1",
            )
        metas = [_table_meta(code_tables.load_table(s)) for s in code_tables.list_systems()]
        if as_json:
            _echo_json(metas)
            return
        table = Table(title="地类代码体系")
        for header in ("代码体系", "名称", "版本", "代码数"):
            table.add_column(header)
        for m in metas:
            table.add_row(m["system"], m["title"], m["version"], str(m["codes"]))
        _console().print(table)
        return

    t = code_tables.load_table(system)
    rows = t.codes(level)
    if as_json:
        _echo_json({**_table_meta(t), "level": level, "items": [_code_dict(c) for c in rows]})
        return
    table = Table(title=f"{t.title}（{t.version}）", caption=f"来源: {t.source}")
    for header in ("代码", "名称", "级别", "上级", "备注"):
        table.add_column(header, overflow="fold")
    for c in rows:
        table.add_row(c.code, c.name, str(c.level), c.parent or "", c.note or "")
    _console().print(table)


@app.command("show", help="显示一个代码：名称、层级、上下级与备注。")
def show_cmd(
    code: Annotated[str, typer.Argument(help="地类代码，如 0101")],
    system: Annotated[str, typer.Option("--system", "-s", help="代码体系，如 sandiao")],
    as_json: JsonOpt = False,
) -> None:
    """Show one code with its hierarchy and note."""
    t = code_tables.load_table(system)
    c = t.get(code)
    info = {
        "system": t.system,
        "title": t.title,
        "version": t.version,
        **_code_dict(c),
        "level1": t.level1(c.code),
        "level2": t.level2(c.code),
        "ancestors": list(t.ancestors(c.code)),
        "children": [_code_dict(t.get(x)) for x in t.children(c.code)],
    }
    if as_json:
        _echo_json(info)
        return
    table = Table(title=f"{c.code} {c.name}（{t.title}）", show_header=False)
    table.add_column("项")
    table.add_column("值", overflow="fold")
    path = [*reversed(info["ancestors"]), c.code]
    table.add_row("层级路径", " › ".join(f"{x} {t.get(x).name}" for x in path))
    table.add_row("级别", str(c.level))
    table.add_row("下级类", "、".join(f"{x['code']} {x['name']}" for x in info["children"]))
    table.add_row("备注", c.note or "")
    table.add_row("版本", t.version)
    _console().print(table)


@app.command("map", help="把源代码映射到目标代码体系（一对多时列出全部候选）。")
def map_cmd(
    code: Annotated[list[str], typer.Argument(help="一个或多个源代码")],
    source: Annotated[str, typer.Option("--from", help="源代码体系")] = "sandiao",
    target: Annotated[str, typer.Option("--to", help="目标代码体系")] = "landsea-2023",
    as_json: JsonOpt = False,
) -> None:
    """Map source codes to a target code system (all candidates for 1:n)."""
    frame = code_tables.map_codes(pd.Series(code, dtype=object), source, target)
    frame = frame.drop(columns="row")
    records = frame.to_dict(orient="records")
    if as_json:
        _echo_json({"source": source, "target": target, "items": records})
        return
    src = code_tables.load_table(source)
    table = Table(title=f"{source} → {target}")
    for header in ("源代码", "源名称", "目标代码", "目标名称", "关系", "默认", "说明"):
        table.add_column(header, overflow="fold")
    for r in records:
        table.add_row(
            r["source_code"],
            src.get(r["source_code"]).name,
            r["target_code"],
            r["target_name"],
            r["relation"],
            "是" if r["is_default"] else "",
            r["note"],
        )
    _console().print(table)


@app.command("groups", help="列出地类分组及其依据、成员与城镇村属性码（CZCSXM）规则。")
def groups_cmd(
    name: Annotated[str | None, typer.Option("--name", "-n", help="只显示该分组")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="自定义分组 YAML 文件")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the land-use groups with basis, members and CZCSXM rule."""
    gs = code_tables.load_groups(file if file is not None else "default")
    names = [name] if name is not None else gs.names()
    described = [gs.describe(n) for n in names]
    if as_json:
        _echo_json(
            {
                "id": gs.id,
                "title": gs.title,
                "version": gs.version,
                "source": gs.source,
                "groups": described,
            }
        )
        return
    table = Table(title=f"{gs.title}（{gs.id} {gs.version}）")
    for header in ("分组", "名称", "代码体系", "成员", "城镇村属性码", "依据"):
        table.add_column(header, overflow="fold")
    for d in described:
        for system, r in d["systems"].items():
            members = r["members"] or []
            excl = r.get("exclude") or []
            shown = "、".join(members) + (f"（不含 {'、'.join(excl)}）" if excl else "")
            table.add_row(
                d["name"],
                d["label"],
                system,
                shown,
                r["czcsxm"]["rule"] if r["czcsxm"] else "",
                r.get("basis") or d["basis"],
            )
    _console().print(table)
    notes = Table(title="判断（非标准条文，可用自定义分组文件改变）")
    notes.add_column("分组")
    notes.add_column("判断", overflow="fold")
    for d in described:
        per_system = [
            f"[{system}] {j}"
            for system, r in d["systems"].items()
            for j in r.get("judgement") or []
        ]
        for j in [*d["judgement"], *per_system]:
            notes.add_row(d["label"], j)
    if notes.row_count:
        _console().print(notes)
