"""CLI: task supervision (``yizhangtu tasks …``) and the project library (``yizhangtu projects …``).

The file-based commands read and write YAML or xlsx. Without ``--tasks`` they use the task
ledger of the workspace when it holds one (``tasks load-seed`` / ``tasks import --store``), else
the packaged seed task set (seed 003's 22 work points); ``--store`` / ``--no-store`` forces the
choice. Workspace commands (``load-seed``, ``progress``, ``rectify``, ``actual``, ``projects
import`` …) write versioned records with optimistic locking and an audit trail.
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


_STORE_HELP = (
    "从工作空间读取任务台账 (--no-store: 读文件或内置种子; 缺省: 工作空间有台账时读工作空间)"
)


def _workspace_exists(ctx: typer.Context | None) -> bool:
    from yizhangtu.cli._common import settings_from

    ws = settings_from(ctx).workspace
    return ws.startswith(("postgresql://", "postgres://")) or Path(ws).exists()


def _use_store(ctx: typer.Context | None, store: bool | None, tasks: Path | None) -> bool:
    """Decide where the ledger comes from: explicit flag, else the workspace if it has tasks."""
    if store is not None:
        if store and tasks is not None:
            raise InputError("--store 与 --tasks 不能同时使用", key="option_conflict")
        return store
    if tasks is not None:
        return False
    explicit = bool(ctx is not None and ctx.obj and ctx.obj.get("workspace"))
    if not explicit and not _workspace_exists(ctx):
        return False  # no workspace given and none here: the packaged seed
    from yizhangtu.cli._common import open_workspace
    from yizhangtu.services.tasks import has_tasks

    with open_workspace(ctx) as st:
        return has_tasks(st)


def _store_ledger(
    ctx: typer.Context | None, task_set: list[str] | None, department: str | None
) -> tuple[TaskLedger, bool]:
    from yizhangtu.cli._common import open_workspace
    from yizhangtu.services.tasks import _synthetic, task_ledger

    with open_workspace(ctx) as st:
        led = task_ledger(st, task_set=task_set or None, department=department)
        return led, _synthetic(st, led, task_set or None, None)


@tasks_app.command("list")
def list_tasks(
    ctx: typer.Context,
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    store: bool | None = typer.Option(None, "--store/--no-store", help=_STORE_HELP),
    task_set: list[str] | None = typer.Option(None, "--set", help="只列出这些任务集 (工作空间)"),
    department: str | None = typer.Option(
        None, "--department", help="只列出该单位牵头或配合的任务"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List tasks with their departments, dates and quantitative targets."""
    if _use_store(ctx, store, tasks):
        led, _ = _store_ledger(ctx, task_set, department)
    else:
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
    ctx: typer.Context,
    at: str | None = typer.Option(None, "--at", help="评价日期 (缺省为今天), 如 2021-09-30"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    store: bool | None = typer.Option(None, "--store/--no-store", help=_STORE_HELP),
    task_set: list[str] | None = typer.Option(None, "--set", help="只看这些任务集 (工作空间)"),
    department: str | None = typer.Option(None, "--department", help="只看该单位牵头或配合的任务"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Status of every task at a date (overdue first) and alerts."""
    day = _at(at)
    from_store = _use_store(ctx, store, tasks)
    if from_store:
        led, _ = _store_ledger(ctx, task_set, department)
    else:
        led = _load_ledger(tasks, progress)
    source = "store" if from_store else ("file" if tasks else "seed")
    states = evaluate_tasks(led.tasks, led.reports, day)
    alerts = task_alerts(states)
    if json_out:
        _echo_json(
            {
                "at": day.isoformat(),
                "source": source,
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
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="输出文件 (缺省 调度报告_<日期>.<格式>)"
    ),
    fmt: str = typer.Option("html", "--format", help="html | pdf | xlsx"),
    at: str | None = typer.Option(None, "--at", help="调度日期 (缺省为今天)"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    title: str | None = typer.Option(None, "--title", help="报告标题"),
    synthetic: bool = typer.Option(False, "--synthetic", help="标注为合成数据"),
    store: bool | None = typer.Option(None, "--store/--no-store", help=_STORE_HELP),
    task_set: list[str] | None = typer.Option(None, "--set", help="只含这些任务集 (工作空间)"),
    department: str | None = typer.Option(None, "--department", help="只含该单位牵头或配合的任务"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Write the periodic dispatch report (调度报告), overdue items first."""
    if fmt not in ("html", "pdf", "xlsx"):
        raise InputError(f"未知的报告格式: {fmt}", key="format_unknown", hint="html、pdf 或 xlsx")
    day = _at(at)
    from_store = _use_store(ctx, store, tasks)
    if from_store:
        led, stored_synth = _store_ledger(ctx, task_set, department)
        synthetic = synthetic or stored_synth
    else:
        led = _load_ledger(tasks, progress)
    out = out or Path(f"调度报告_{day.isoformat()}.{fmt}")
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
                "source": "store" if from_store else ("file" if tasks else "seed"),
            }
        )
        return
    counts = "、".join(f"{STATUS_LABELS[k]} {n}" for k, n in rep.counts().items())
    typer.echo(f"已写出: {out} ({counts})")


@tasks_app.command("import")
def import_(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Excel 任务台账 (.xlsx)"),
    out: Path | None = typer.Option(None, "--out", help="输出 YAML 文件"),
    store: bool = typer.Option(False, "--store", help="导入工作空间 (而不是转换为 YAML)"),
    task_set: str | None = typer.Option(
        None, "--set", help="任务集编号 (--store 必填), 如 hunan_2021"
    ),
    jurisdiction: str | None = typer.Option(None, "--jurisdiction", help="所属辖区, 如 湖南省"),
    replace: bool = typer.Option(False, "--replace", help="覆盖同编号的已有任务"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Validate an Excel ledger and convert it to YAML, or import it into the workspace."""
    if not _is_xlsx(source):
        raise InputError(f"导入文件须为 .xlsx: {source}", key="format_unknown", file=str(source))
    _exists(source)
    if store:
        if not task_set:
            raise InputError(
                "--store 需要 --set 指定任务集编号", key="option_missing", field="--set"
            )
        from yizhangtu.cli._common import open_workspace, settings_from
        from yizhangtu.services.tasks import import_ledger_xlsx

        with open_workspace(ctx, create=True) as st:
            info = import_ledger_xlsx(
                st,
                source.read_bytes(),
                task_set=task_set,
                actor=settings_from(ctx).actor,
                jurisdiction=jurisdiction,
                replace=replace,
                file=str(source),
            )
        if json_out:
            _echo_json(info.to_dict())
            return
        typer.echo(
            f"已导入工作空间: 任务集 {info.task_set} {info.tasks} 项任务、{info.progress} 条进度、"
            f"{info.rectifications} 项整改事项 (新建 {info.created}, 更新 {info.updated})"
        )
        return
    if out is None:
        raise InputError(
            "需要 --out 指定输出 YAML 文件, 或用 --store 导入工作空间",
            key="option_missing",
            field="--out",
        )
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
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="输出 .xlsx 文件"),
    tasks: Path | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    progress: Path | None = typer.Option(None, "--progress", help=_PROGRESS_HELP),
    store: bool | None = typer.Option(None, "--store/--no-store", help=_STORE_HELP),
    task_set: list[str] | None = typer.Option(None, "--set", help="只导出这些任务集 (工作空间)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON 摘要"),
) -> None:
    """Export the task ledger to Excel with Chinese headers."""
    if _use_store(ctx, store, tasks):
        from yizhangtu.cli._common import open_workspace
        from yizhangtu.services.tasks import export_ledger_xlsx, task_ledger

        with open_workspace(ctx) as st:
            data = export_ledger_xlsx(st, task_set=task_set or None)
            led = task_ledger(st, task_set=task_set or None)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        if json_out:
            _echo_json(
                {
                    "file": str(out),
                    "tasks": len(led.tasks),
                    "progress": len(led.reports),
                    "source": "store",
                }
            )
            return
        typer.echo(f"已写出: {out}")
        return
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
    ctx: typer.Context,
    name: str = typer.Option("fangshan", "--set", help="内置目标集: fangshan (种子 000)"),
    store: bool = typer.Option(False, "--store", help="列出工作空间中的目标及其实际值"),
    at: str | None = typer.Option(None, "--at", help="截至日期 (--store)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List a packaged target set (seed 000), or the stored targets with their actual values."""
    if store:
        from yizhangtu.cli._common import open_workspace
        from yizhangtu.services.tasks import list_targets

        with open_workspace(ctx) as st:
            items = list_targets(st, at=_at(at) if at else None)
        if json_out:
            _echo_json({"targets": items})
            return
        for r in items:
            met = "—" if r["met"] is None else ("已达标" if r["met"] else "未达标")
            typer.echo(
                f"{r['id']}\t{r['target']}\t期限 {r['due']}\t"
                f"实际 {r['actual'] if r['actual'] is not None else '未报送'}\t{met}"
            )
        return
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


def _library(
    ctx: typer.Context | None, file: Path | None, jurisdiction: list[str] | None = None
) -> tuple[Any, Any]:
    if file is not None:
        return _load_library(file)
    from yizhangtu.cli._common import open_workspace
    from yizhangtu.services.tasks import project_library

    with open_workspace(ctx) as st:
        return project_library(st, jurisdictions=jurisdiction or None)


_LIB_HELP = "项目库文件 (YAML 或 xlsx); 缺省读工作空间中的项目库"


@projects_app.command("list")
def list_projects(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", help=_LIB_HELP),
    level: str | None = typer.Option(None, "--level", help="只列出该级别 (市级/区级)"),
    category: str | None = typer.Option(None, "--category", help="只列出该类别"),
    jurisdiction: list[str] | None = typer.Option(
        None, "--jurisdiction", help="只列出这些辖区的项目 (工作空间)"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List projects, optionally filtered by level and category."""
    projects, _ = _library(ctx, file, jurisdiction)
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
    ctx: typer.Context,
    year: int = typer.Option(..., "--year", help="年度"),
    file: Path | None = typer.Option(None, "--file", help=_LIB_HELP),
    fmt: str = typer.Option("json", "--format", help="json | html | xlsx"),
    out: Path | None = typer.Option(None, "--out", help="输出文件 (html/xlsx 必填)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Compile the yearly comprehensive list (年度重点项目综合清单)."""
    if fmt not in ("json", "html", "xlsx"):
        raise InputError(f"未知的格式: {fmt}", key="format_unknown", hint="json、html 或 xlsx")
    projects, _ = _library(ctx, file)
    if not projects:
        from yizhangtu.errors import NotFoundError

        raise NotFoundError(
            "项目库为空",
            key="projects_not_found",
            hint="用 --file 指定项目库文件, 或先 yizhangtu projects import FILE",
        )
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


# ---------------------------------------------------------------------------
# workspace commands
# ---------------------------------------------------------------------------


def _ws(ctx: typer.Context, *, create: bool = False) -> Any:
    from yizhangtu.cli._common import open_workspace

    return open_workspace(ctx, create=create)


def _actor(ctx: typer.Context) -> str:
    from yizhangtu.cli._common import settings_from

    return settings_from(ctx).actor


def _pairs(items: list[str] | None, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for it in items or []:
        if "=" not in it:
            raise InputError(f"{what}格式应为 编号=数值: {it}", key="bad_pair", field=what)
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise InputError(f"{what}的数值无效: {it}", key="number_invalid", field=what) from None
    return out


@tasks_app.command("load-seed", help="把内置任务集 (及目标集) 载入工作空间。")
def load_seed(
    ctx: typer.Context,
    name: str = typer.Option(
        "hunan_2021", "--set", help="内置任务集: hunan_2021 (种子 003, 22 项)"
    ),
    targets_set: str | None = typer.Option(
        "fangshan", "--targets", help="同时载入的内置目标集 (种子 000); 空字符串表示不载入"
    ),
    replace: bool = typer.Option(False, "--replace", help="覆盖已有的同编号任务与目标"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Load a packaged task set (and target set) into the workspace."""
    from yizhangtu.services.tasks import load_seed_targets_into, load_seed_tasks_into

    with _ws(ctx, create=True) as st:
        info = load_seed_tasks_into(st, name, actor=_actor(ctx), replace=replace)
        recs = (
            load_seed_targets_into(st, targets_set, actor=_actor(ctx), replace=replace)
            if targets_set
            else []
        )
    res = info.to_dict() | {"targets": len(recs)}
    if json_out:
        _echo_json(res)
        return
    typer.echo(
        f"已载入任务集 {info.task_set}: {info.tasks} 项任务 (辖区 {info.jurisdiction}); "
        f"目标 {len(recs)} 项"
    )


@tasks_app.command("progress", help="报送任务进度 (工作空间; 版本冲突时拒绝, 全程留痕)。")
def progress_cmd(
    ctx: typer.Context,
    task_id: str = typer.Argument(..., metavar="TASK", help="任务编号"),
    value: float = typer.Option(..., "--value", help="进度 (%), 0–100"),
    date: str | None = typer.Option(None, "--date", help="报送日期 (缺省今天)"),
    evidence: list[str] | None = typer.Option(
        None, "--evidence", help="佐证材料 (文件名、文号或链接), 可重复"
    ),
    note: str = typer.Option("", "--note", help="进展情况"),
    actual: list[str] | None = typer.Option(
        None, "--actual", help="量化目标实际值 目标编号=数值, 可重复"
    ),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="你看到的任务版本号 (乐观锁; 缺省为当前版本)"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Report task progress (optimistic locking, audited)."""
    from yizhangtu.services.tasks import report_progress

    with _ws(ctx) as st:
        rec = report_progress(
            st,
            task_id,
            progress_pct=value,
            reported_on=date,
            evidence=evidence or (),
            note=note,
            actuals=_pairs(actual, "--actual"),
            expected_version=expected_version,
            actor=_actor(ctx),
        )
    if json_out:
        _echo_json(
            {
                "task_id": rec.key,
                "version": rec.version,
                "progress": rec.data["progress"][-1],
                "updated_by": rec.updated_by,
            }
        )
        return
    typer.echo(f"已报送 {rec.key}: 进度 {value:g}% (版本 {rec.version})")


@tasks_app.command("rectifications", help="列出工作空间中的整改事项及其状态。")
def rectifications_cmd(
    ctx: typer.Context,
    at: str | None = typer.Option(None, "--at", help="统计日期 (缺省今天)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List the rectification items of the workspace."""
    from yizhangtu.services.tasks import RECTIFICATIONS
    from yizhangtu.tasks import (
        RECTIFICATION_LABELS,
        rectification_from_mapping,
        rectification_state,
        summarise_rectifications,
    )

    day = _at(at)
    with _ws(ctx) as st:
        recs = st.list_records(RECTIFICATIONS)
    items = [(r, rectification_from_mapping(r.data)) for r in recs]
    rows = [
        {
            "id": x.id,
            "title": x.title,
            "responsible": x.responsible,
            "state": rectification_state(x, day),
            "state_label": RECTIFICATION_LABELS[rectification_state(x, day)],
            "deadline": x.deadline.isoformat() if x.deadline else None,
            "closed_on": x.closed_on.isoformat() if x.closed_on else None,
            "version": r.version,
            "jurisdiction": r.jurisdiction,
            "synthetic": x.synthetic,
        }
        for r, x in items
        if x.found_on <= day
    ]
    summary = summarise_rectifications([x for _, x in items], day).describe() if items else ""
    if json_out:
        _echo_json({"at": day.isoformat(), "items": rows, "summary": summary})
        return
    for r in rows:
        typer.echo(
            f"{r['state_label']}\t{r['id']}\t{r['title']}\t{r['responsible']}\t期限 {r['deadline']}"
        )
    typer.echo(summary)


@tasks_app.command("rectify", help="整改事项销号 (须附佐证材料)。")
def rectify(
    ctx: typer.Context,
    item_id: str = typer.Argument(..., metavar="ITEM", help="整改事项编号"),
    date: str | None = typer.Option(None, "--date", help="销号日期 (缺省今天)"),
    evidence: list[str] | None = typer.Option(
        None, "--evidence", help="整改佐证材料, 可重复 (必填)"
    ),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="你看到的版本号 (乐观锁)"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Close a rectification item with evidence."""
    from yizhangtu.services.tasks import close_rectification_item

    with _ws(ctx) as st:
        rec = close_rectification_item(
            st,
            item_id,
            on=date or dt.date.today().isoformat(),
            evidence=evidence or (),
            expected_version=expected_version,
            actor=_actor(ctx),
        )
    if json_out:
        _echo_json(
            {
                "id": rec.key,
                "version": rec.version,
                "closed_on": rec.data["closed_on"],
                "evidence": rec.data["evidence"],
            }
        )
        return
    typer.echo(f"已销号 {rec.key} ({rec.data['closed_on']}, 版本 {rec.version})")


@tasks_app.command("actual", help="报送目标的实际值 (须附佐证材料或溯源记录号)。")
def actual_cmd(
    ctx: typer.Context,
    target_id: str = typer.Argument(..., metavar="TARGET", help="目标编号, 如 FS-T2"),
    value: float = typer.Option(..., "--value", help="实际值 (目标的单位)"),
    date: str | None = typer.Option(None, "--date", help="数据日期 (缺省今天)"),
    evidence: list[str] | None = typer.Option(None, "--evidence", help="佐证材料, 可重复"),
    provenance: str | None = typer.Option(None, "--provenance", help="计算结果的溯源记录号"),
    source: str = typer.Option("", "--source", help="数据来源说明"),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="你看到的版本号 (乐观锁)"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Record an actual value of a target."""
    from yizhangtu.services.tasks import record_target_actual

    with _ws(ctx) as st:
        rec = record_target_actual(
            st,
            target_id,
            value=value,
            on=date or dt.date.today().isoformat(),
            evidence=evidence or (),
            provenance_id=provenance,
            source=source,
            expected_version=expected_version,
            actor=_actor(ctx),
        )
    if json_out:
        _echo_json({"id": rec.key, "version": rec.version, "actual": rec.data["actuals"][-1]})
        return
    typer.echo(f"已记录 {rec.key} 实际值 {value:g} (版本 {rec.version})")


@projects_app.command("import", help="把项目库文件导入工作空间。")
def import_projects_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="项目库文件 (YAML 或 xlsx)"),
    jurisdiction: str | None = typer.Option(
        None, "--jurisdiction", help="所属辖区, 如 北京市朝阳区"
    ),
    replace: bool = typer.Option(False, "--replace", help="覆盖同编号的已有项目"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Import a project library file into the workspace."""
    from yizhangtu.services.tasks import import_projects

    projects, progress = _load_library(file)
    with _ws(ctx, create=True) as st:
        res = import_projects(
            st, projects, progress, actor=_actor(ctx), jurisdiction=jurisdiction, replace=replace
        )
    res = res | {"projects": len(projects), "progress": len(progress)}
    if json_out:
        _echo_json(res)
        return
    typer.echo(
        f"已导入 {res['projects']} 个项目、{res['progress']} 条进度 "
        f"(新建 {res['created']}, 更新 {res['updated']})"
    )


@projects_app.command("progress", help="报送项目进度 (工作空间, 乐观锁, 留痕)。")
def project_progress_cmd(
    ctx: typer.Context,
    project_id: str = typer.Argument(..., metavar="PROJECT", help="项目编号"),
    value: float = typer.Option(..., "--value", help="进度 (%)"),
    date: str | None = typer.Option(None, "--date", help="报送日期 (缺省今天)"),
    invested: float | None = typer.Option(None, "--invested", help="累计完成投资"),
    evidence: list[str] | None = typer.Option(None, "--evidence", help="佐证材料, 可重复"),
    note: str = typer.Option("", "--note"),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="你看到的版本号 (乐观锁)"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Report project progress (optimistic locking, audited)."""
    from yizhangtu.services.tasks import report_project_progress

    with _ws(ctx) as st:
        rec = report_project_progress(
            st,
            project_id,
            progress_pct=value,
            reported_on=date,
            invested_to_date=invested,
            evidence=evidence or (),
            note=note,
            expected_version=expected_version,
            actor=_actor(ctx),
        )
    if json_out:
        _echo_json(
            {"project_id": rec.key, "version": rec.version, "progress": rec.data["progress"][-1]}
        )
        return
    typer.echo(f"已报送 {rec.key}: 进度 {value:g}% (版本 {rec.version})")
