"""CLI: task supervision (``yizhangtu tasks …``) and the project library (``yizhangtu projects …``).

These commands read and write files for now (YAML or xlsx); the store comes later. Without
``--tasks`` the packaged seed task set (seed 003's 22 work points) is used.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer
import yaml

from yizhangtu.errors import FileFormatError, InputError
from yizhangtu.tasks import (
    STATUS_LABELS,
    TaskLedger,
    build_dispatch_report,
    compile_yearly_list,
    dispatch_html,
    dispatch_pdf,
    dispatch_xlsx,
    evaluate_tasks,
    ledger_from_mapping,
    ledger_from_xlsx,
    ledger_to_mapping,
    ledger_to_xlsx,
    library_from_mapping,
    library_from_xlsx,
    library_summary,
    load_departments,
    load_seed_targets,
    load_seed_tasks,
    parse_date,
    progress_from_mapping,
    project_vocabulary,
    reports_from_xlsx,
    task_alerts,
    validate_ledger,
    yearly_list_html,
    yearly_list_xlsx,
)

__all__ = ["app", "projects_app", "tasks_app"]

tasks_app = typer.Typer(help="重点任务督查调度", no_args_is_help=True)
projects_app = typer.Typer(help="重点项目库", no_args_is_help=True)
app = tasks_app

_TASKS_HELP = "任务文件 (YAML 或 xlsx); 缺省为内置的 2021 年湖南省新型城镇化工作要点 (种子 003)"
_PROGRESS_HELP = "进度报送文件 (YAML 或 xlsx 的「进度报送」工作表)"


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"文件不存在: {path}", key="file_not_found", file=str(path))


def _read_yaml(path: Path) -> Any:
    _exists(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FileFormatError(f"无法解析 YAML: {e}", key="yaml_invalid", file=str(path)) from None


def _is_xlsx(path: Path) -> bool:
    return path.suffix.lower() in (".xlsx", ".xlsm")


def _load_ledger(tasks: Path | None, progress: Path | None) -> TaskLedger:
    if tasks is None:
        led = load_seed_tasks("hunan_2021")
    elif _is_xlsx(tasks):
        _exists(tasks)
        led = ledger_from_xlsx(tasks.read_bytes(), file=str(tasks))
    else:
        d = _read_yaml(tasks)
        if not isinstance(d, dict):
            raise FileFormatError(
                "任务文件必须是 YAML 映射 (tasks: [...])", key="yaml_invalid", file=str(tasks)
            )
        led = ledger_from_mapping(d)
    if progress is None:
        return led
    if _is_xlsx(progress):
        _exists(progress)
        reps = reports_from_xlsx(progress.read_bytes(), file=str(progress))
    else:
        d = _read_yaml(progress)
        items = d.get("progress") if isinstance(d, dict) else d
        if not isinstance(items, list):
            raise FileFormatError(
                "进度文件必须是列表或含 progress 列表的映射", key="yaml_invalid", file=str(progress)
            )
        reps = tuple(progress_from_mapping(x) for x in items)
    v = validate_ledger(led.tasks, (*led.reports, *reps), led.rectifications)
    return TaskLedger(
        tasks=v.tasks,
        reports=v.reports,
        rectifications=v.rectifications,
        title=led.title,
        source=led.source,
    )


def _at(value: str | None) -> dt.date:
    return parse_date(value, field="--at") if value else dt.date.today()


@tasks_app.command("list")
def list_tasks(
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List tasks with their departments, dates and quantitative targets."""
    led = _load_ledger(tasks, None)
    if json_out:
        _echo_json(ledger_to_mapping(led)["tasks"])
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=led.title or "任务清单")
    for h in ("编号", "条款", "任务", "牵头单位", "配合单位", "截止日期", "量化目标"):
        t.add_column(h)
    for x in led.tasks:
        t.add_row(
            x.id,
            x.clause,
            x.title,
            x.lead,
            "、".join(x.co),
            x.deadline.isoformat(),
            "\n".join(g.describe() for g in x.targets),
        )
    Console().print(t)


@tasks_app.command("status")
def status(
    at: str | None = typer.Option(None, "--at", help="评价日期 (缺省为今天), 如 2021-09-30"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Status of every task at a date (overdue first) and alerts."""
    day = _at(at)
    led = _load_ledger(tasks, progress)
    states = evaluate_tasks(led.tasks, led.reports, day)
    alerts = task_alerts(states)
    if json_out:
        _echo_json(
            {
                "at": day.isoformat(),
                "tasks": [s.to_dict() for s in states],
                "alerts": [a.__dict__ for a in alerts],
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    colour = {"overdue": "red", "behind": "yellow", "on_track": "green", "done": "dim"}
    t = Table(title=f"{led.title or '任务'} · {day.isoformat()}")
    for h in ("状态", "编号", "任务", "牵头单位", "截止日期", "进度", "线性进度", "最近报送"):
        t.add_column(h)
    for s in states:
        t.add_row(
            f"[{colour[s.status]}]{STATUS_LABELS[s.status]}[/]",
            s.task.id,
            s.task.title,
            s.task.lead,
            s.task.deadline.isoformat(),
            f"{s.progress_pct:g}%",
            f"{s.expected_pct:.0f}%",
            s.last_report.reported_on.isoformat() if s.last_report else "未报送",
        )
    c = Console()
    c.print(t)
    for a in alerts:
        c.print(a.message)


@tasks_app.command("report")
def report(
    out: Path = typer.Option(..., "--out", help="输出文件"),
    fmt: str = typer.Option("html", "--format", help="html | pdf | xlsx"),
    at: str | None = typer.Option(None, "--at", help="调度日期 (缺省为今天)"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    title: str | None = typer.Option(None, "--title", help="报告标题"),
    synthetic: bool = typer.Option(False, "--synthetic", help="标注为合成数据"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Write the periodic dispatch report (调度报告), overdue items first."""
    if fmt not in ("html", "pdf", "xlsx"):
        raise InputError(f"未知的报告格式: {fmt}", key="format_unknown", hint="html、pdf 或 xlsx")
    day = _at(at)
    led = _load_ledger(tasks, progress)
    rep = build_dispatch_report(led, day, title=title, synthetic=synthetic)
    pages = None
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(dispatch_html(rep), encoding="utf-8")
    elif fmt == "pdf":
        pdf, pages = dispatch_pdf(rep)
        out.write_bytes(pdf)
    else:
        out.write_bytes(dispatch_xlsx(rep))
    if json_out:
        _echo_json(
            {
                "file": str(out),
                "format": fmt,
                "pages": pages,
                "at": day.isoformat(),
                "counts": rep.counts(),
            }
        )
        return
    counts = "、".join(f"{STATUS_LABELS[k]} {n}" for k, n in rep.counts().items())
    typer.echo(f"已写出: {out} ({counts})")


@tasks_app.command("import")
def import_(
    source: Path = typer.Argument(..., help="Excel 任务台账 (.xlsx)"),
    out: Path = typer.Option(..., "--out", help="输出 YAML 文件"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Validate an Excel ledger and convert it to YAML."""
    if not _is_xlsx(source):
        raise InputError(f"导入文件须为 .xlsx: {source}", key="format_unknown", file=str(source))
    _exists(source)
    led = ledger_from_xlsx(source.read_bytes(), file=str(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        yaml.safe_dump(ledger_to_mapping(led), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    summary = {
        "file": str(out),
        "tasks": len(led.tasks),
        "progress": len(led.reports),
        "rectifications": len(led.rectifications),
    }
    if json_out:
        _echo_json(summary)
        return
    typer.echo(
        f"已导入 {summary['tasks']} 项任务、{summary['progress']} 条进度、"
        f"{summary['rectifications']} 项整改事项 → {out}"
    )


@tasks_app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="输出 .xlsx 文件"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Export the task ledger to Excel with Chinese headers."""
    led = _load_ledger(tasks, progress)
    reg = load_departments("hunan") if tasks is None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(ledger_to_xlsx(led, reg))
    if json_out:
        _echo_json({"file": str(out), "tasks": len(led.tasks), "progress": len(led.reports)})
        return
    typer.echo(f"已写出: {out}")


@tasks_app.command("targets")
def targets(
    name: str = typer.Option("fangshan", "--set", help="内置目标集: fangshan (种子 000)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List a packaged target set (seed 000: urbanisation, forest cover, fund institutions)."""
    ts = load_seed_targets(name)
    rows = [
        {
            "id": g.id,
            "target": g.describe(),
            "due": g.due.isoformat() if g.due else None,
            "clause": g.clause,
            "quote": g.quote,
        }
        for g in ts.targets
    ]
    if json_out:
        _echo_json({"title": ts.title, "source": ts.source, "targets": rows})
        return
    typer.echo(f"{ts.title} ({ts.source})")
    for r in rows:
        typer.echo(f"{r['id']}\t{r['target']}\t期限 {r['due']}\t{r['clause']}")


def _load_library(file: Path) -> tuple[Any, Any]:
    _exists(file)
    if _is_xlsx(file):
        return library_from_xlsx(file.read_bytes(), file=str(file))
    d = _read_yaml(file)
    if not isinstance(d, dict):
        raise FileFormatError(
            "项目库文件必须是 YAML 映射 (projects: [...])", key="yaml_invalid", file=str(file)
        )
    return library_from_mapping(d)


@projects_app.command("list")
def list_projects(
    file: Path = typer.Option(..., "--file", help="项目库文件 (YAML 或 xlsx)"),
    level: str | None = typer.Option(None, "--level", help="只列出该级别 (市级/区级)"),
    category: str | None = typer.Option(None, "--category", help="只列出该类别"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List projects, optionally filtered by level and category."""
    projects, _ = _load_library(file)
    v = project_vocabulary()
    lv = v.level(level) if level else None
    ct = v.category(category) if category else None
    sel = [
        p for p in projects if (lv is None or p.level == lv) and (ct is None or p.category == ct)
    ]
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "level": p.level,
            "category": p.category,
            "status": p.status,
            "total_investment": p.total_investment,
        }
        for p in sel
    ]
    if json_out:
        _echo_json(
            {
                "projects": rows,
                "summary": library_summary(projects).reset_index().to_dict(orient="records"),
            }
        )
        return
    for r in rows:
        typer.echo(f"{r['id']}\t{r['level']}\t{r['category']}\t{r['status']}\t{r['name']}")
    typer.echo(f"共 {len(rows)} 个项目")


@projects_app.command("compile")
def compile_(
    year: int = typer.Option(..., "--year", help="年度"),
    file: Path = typer.Option(..., "--file", help="项目库文件 (YAML 或 xlsx)"),
    fmt: str = typer.Option("json", "--format", help="json | html | xlsx"),
    out: Path | None = typer.Option(None, "--out", help="输出文件 (html/xlsx 必填)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Compile the yearly comprehensive list (年度重点项目综合清单)."""
    if fmt not in ("json", "html", "xlsx"):
        raise InputError(f"未知的格式: {fmt}", key="format_unknown", hint="json、html 或 xlsx")
    projects, _ = _load_library(file)
    yl = compile_yearly_list(projects, year)
    if fmt in ("html", "xlsx"):
        if out is None:
            raise InputError(f"--format {fmt} 需要 --out 指定输出文件", key="option_missing")
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "html":
            out.write_text(yearly_list_html(yl), encoding="utf-8")
        else:
            out.write_bytes(yearly_list_xlsx(yl))
    if json_out or fmt == "json":
        d = yl.to_dict()
        if out is not None and fmt != "json":
            d["file"] = str(out)
        _echo_json(d)
        return
    typer.echo(f"已写出: {out} ({year} 年 {len(yl.rows)} 个项目)")
