"""``yizhangtu policy``: list, show and validate policy packs (政策包)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from yizhangtu.errors import InputError, PolicyError
from yizhangtu.policy import list_packs, load_pack, validate_pack
from yizhangtu.policy.pack import UNIT_LABELS
from yizhangtu.policy.rules import PackProblem

__all__ = ["app"]

app = typer.Typer(help="政策包: 列出、查看、校验", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@app.command("list")
def list_command(json_output: JsonOpt = False) -> None:
    """列出随软件提供的政策包 (list packs)."""
    packs = list_packs()
    if json_output:
        _echo_json([p.to_dict() for p in packs])
        return
    table = Table(title="政策包")
    for col in ("编号", "版本", "名称", "适用地区", "模块", "生效", "失效"):
        table.add_column(col)
    for p in packs:
        table.add_row(
            p.id, p.version, p.title, p.jurisdiction, p.module, p.effective, p.expires or "长期"
        )
    _console().print(table)


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="政策包编号或 YAML 文件路径")],
    json_output: JsonOpt = False,
) -> None:
    """显示政策包的参数(含条款引用)和规则 (show a pack)."""
    pack = load_pack(name)
    if json_output:
        _echo_json(pack.to_dict())
        return
    con = _console()
    con.print(
        f"[bold]{pack.title}[/bold]  ({pack.id} v{pack.version}, "
        f"{pack.jurisdiction.get('name', '')})"
    )
    con.print(
        f"有效期: {pack.effective.isoformat()} 至 "
        f"{pack.expires.isoformat() if pack.expires else '长期'};"
        f" 哈希 {pack.hash[:16]}…"
    )
    for s in pack.sources:
        con.print(f"来源 {s.get('id')}: {s.get('title')} {s.get('document_no', '')}")
    table = Table(title="参数")
    for col in ("参数", "名称", "取值", "单位", "条款", "备注"):
        table.add_column(col, overflow="fold")
    for p in pack.parameters.values():
        if p.value is None and p.required_from_user:
            value = "[red]须由用户设定[/red]"
        else:
            value = (
                json.dumps(p.value, ensure_ascii=False) if not isinstance(p.value, str) else p.value
            )
        flags = []
        if p.local_choice:
            flags.append("本地设定")
        if p.user_set:
            flags.append("用户设定")
        note = " ".join(flags + ([p.note] if p.note else []))
        table.add_row(
            p.name, p.title or "", value, UNIT_LABELS.get(p.unit, p.unit), p.clause or "—", note
        )
    con.print(table)
    rules = Table(title="规则")
    for col in ("规则", "名称", "启用", "条款"):
        rules.add_column(col)
    for r in pack.rules.values():
        rules.add_row(r.id, r.title or "", "是" if r.enabled else "否", r.clause)
    con.print(rules)


@app.command("validate")
def validate_command(
    path: Annotated[Path, typer.Argument(help="政策包 YAML 文件")],
    at: Annotated[
        str | None, typer.Option("--at", help="同时检查该日期(YYYY-MM-DD)是否在有效期内")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """按 JSON Schema 和规则库校验政策包, 有错误时退出码为 3 (validate)."""
    problems = list(validate_pack(path))
    pack_ref = None
    if not any(p.severity == "error" for p in problems):
        pack = load_pack(path)
        pack_ref = pack.ref()
        if at is not None:
            try:
                when = date.fromisoformat(at)
            except ValueError:
                raise InputError(
                    f"日期格式须为 YYYY-MM-DD: {at}", key="bad_date", field="--at"
                ) from None
            try:
                pack.ensure_valid_at(when)
            except PolicyError as exc:
                problems.append(PackProblem("effective/expires", exc.message, exc.key))
    errors = [p for p in problems if p.severity == "error"]
    if json_output:
        _echo_json(
            {
                "file": str(path),
                "valid": not errors,
                "pack": pack_ref,
                "problems": [p.to_dict() for p in problems],
            }
        )
    else:
        con = _console()
        if problems:
            table = Table(title=f"{path} 的问题")
            for col in ("级别", "位置", "说明"):
                table.add_column(col, overflow="fold")
            for p in problems:
                table.add_row("错误" if p.severity == "error" else "警告", p.where, p.message)
            con.print(table)
        con.print(f"{path}: " + ("有效" if not errors else f"无效, {len(errors)} 处错误"))
    if errors:
        raise typer.Exit(code=PolicyError.exit_code)
