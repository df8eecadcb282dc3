"""Task supervision services over the workspace.

Task sets, tasks, progress, rectification, targets and projects are kept in the workspace as
versioned records (``yz_records``), with jurisdictions.

Collections
-----------
``task_sets``
    one per set (``hunan_2021``): title, source, its department list (名录), jurisdiction.
``tasks``
    one per task: the task as in the ledger YAML, plus ``task_set``, ``department`` (lead),
    ``departments`` (lead + co) and ``progress`` (the reports, oldest first). A progress
    report is an update of the task record under optimistic locking (``expected_version``);
    the store audits it (action ``task.progress``) in the same transaction.
``rectifications``
    整改事项, with ``unit_id`` when it belongs to a statistical unit (the indicator service
    counts them as the ``rectification`` table).
``targets``
    quantitative targets of a target set (seed 000), with reported ``actuals``.
``projects``
    the project library (项目库), with ``progress``.

Every function takes the store and an ``actor``; nothing here opens a file except the xlsx
helpers, which take and return bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yizhangtu.errors import ConflictError, InputError, NotFoundError, ValidationError
from yizhangtu.store import Record, Store
from yizhangtu.tasks import (
    DepartmentRegistry,
    DispatchReport,
    Project,
    ProjectProgress,
    TaskLedger,
    YearlyList,
    build_dispatch_report,
    close_rectification,
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
    load_departments,
    load_seed_targets,
    load_seed_tasks,
    parse_date,
    progress_from_mapping,
    project_from_mapping,
    project_progress_from_mapping,
    rectification_from_mapping,
    registry_from_records,
)
from yizhangtu.tasks.status import TaskState

__all__ = [
    "PROJECTS",
    "RECTIFICATIONS",
    "TARGETS",
    "TASKS",
    "TASK_SETS",
    "TaskSetInfo",
    "add_rectification",
    "check_dispatch",
    "close_rectification_item",
    "dispatch_report",
    "dispatch_report_job",
    "export_ledger_xlsx",
    "has_tasks",
    "import_ledger",
    "import_ledger_xlsx",
    "import_projects",
    "list_targets",
    "load_seed_targets_into",
    "load_seed_tasks_into",
    "project_library",
    "record_target_actual",
    "record_visible_target_actual",
    "rectification_items",
    "report_progress",
    "report_project_progress",
    "report_task_progress",
    "scope_jurisdictions",
    "task_detail",
    "task_ledger",
    "task_list",
    "task_records",
    "task_state_counts",
    "task_states",
    "visible_projects",
    "visible_targets",
    "visible_task",
    "write_dispatch",
    "yearly_project_list",
]

TASK_SETS = "task_sets"
TASKS = "tasks"
RECTIFICATIONS = "rectifications"
TARGETS = "targets"
PROJECTS = "projects"

# jurisdiction of the packaged seed sets (seed 003: the province of Hunan)
# jurisdictions are administrative codes, matched by prefix (43 = 湖南省, 110111 = 北京市房山区)
_SEED_JURISDICTION = {"hunan_2021": "43", "fangshan": "110111"}


@dataclass(frozen=True)
class TaskSetInfo:
    """What a load or import wrote."""

    task_set: str
    jurisdiction: str | None
    tasks: int
    progress: int
    rectifications: int
    created: int
    updated: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def _registry_records(reg: DepartmentRegistry) -> list[dict[str, Any]]:
    return [
        {
            "name": d.name,
            "full_name": d.full_name,
            "kind": d.kind,
            "aliases": list(d.aliases),
            "note": d.note,
        }
        for d in reg.departments
    ]


def _put(
    store: Store,
    collection: str,
    key: str,
    data: Mapping[str, Any],
    *,
    actor: str,
    jurisdiction: str | None,
    action: str,
    replace: bool,
) -> tuple[Record, bool]:
    """Create, or (``replace``) update at the current version; returns (record, created)."""
    try:
        cur = store.get_record(collection, key)
    except NotFoundError:
        return store.put_record(
            collection,
            key,
            data,
            expected_version=None,
            actor=actor,
            jurisdiction=jurisdiction,
            action=action,
        ), True
    if not replace:
        raise ConflictError(
            f"{collection} 中已有 {key}",
            key="record_exists",
            feature=key,
            hint="要覆盖已有记录请加 --replace (原有进度报送将被导入文件中的内容替换)",
        )
    return store.put_record(
        collection,
        key,
        data,
        expected_version=cur.version,
        actor=actor,
        jurisdiction=jurisdiction,
        action=action,
    ), False


def _transaction(store: Store) -> Any:
    """One transaction on backends that offer it (both SQL backends do)."""
    from contextlib import nullcontext

    tx = getattr(store, "transaction", None)
    return tx() if tx is not None else nullcontext()


def import_ledger(
    store: Store,
    ledger: TaskLedger,
    *,
    task_set: str,
    registry: DepartmentRegistry,
    actor: str,
    jurisdiction: str | None = None,
    replace: bool = False,
    synthetic: bool = False,
) -> TaskSetInfo:
    """Write a validated ledger (tasks with their reports, rectifications) as records.

    ``replace`` overwrites existing tasks of the same id (their stored progress is replaced by
    the ledger's); without it an existing id raises :class:`ConflictError` and nothing is
    written.
    """
    from yizhangtu.store.base import validate_layer_name

    validate_layer_name(task_set)
    mapping = ledger_to_mapping(ledger)
    progress: dict[str, list[dict[str, Any]]] = {}
    for r in mapping["progress"]:
        progress.setdefault(r["task_id"], []).append(r | ({"synthetic": True} if synthetic else {}))
    created = updated = 0
    with _transaction(store):
        set_data = {
            "title": ledger.title,
            "source": ledger.source,
            "departments": _registry_records(registry),
            "departments_source": registry.source,
            "synthetic": synthetic,
        }
        _rec, new = _put(
            store,
            TASK_SETS,
            task_set,
            set_data,
            actor=actor,
            jurisdiction=jurisdiction,
            action="task_set.put",
            replace=True,
        )
        for t in mapping["tasks"]:
            data = dict(t) | {
                "task_set": task_set,
                "department": t["lead"],
                "departments": [t["lead"], *t["co"]],
                "progress": sorted(progress.get(t["id"], []), key=lambda r: r["reported_on"]),
            }
            _r, new = _put(
                store,
                TASKS,
                t["id"],
                data,
                actor=actor,
                jurisdiction=jurisdiction,
                action="task.import",
                replace=replace,
            )
            created += int(new)
            updated += int(not new)
        for x in mapping["rectifications"]:
            data = dict(x) | {"task_set": task_set}
            _r, new = _put(
                store,
                RECTIFICATIONS,
                x["id"],
                data,
                actor=actor,
                jurisdiction=jurisdiction,
                action="rectification.import",
                replace=replace,
            )
            created += int(new)
            updated += int(not new)
    return TaskSetInfo(
        task_set,
        jurisdiction,
        len(mapping["tasks"]),
        len(mapping["progress"]),
        len(mapping["rectifications"]),
        created,
        updated,
    )


def load_seed_tasks_into(
    store: Store, name: str = "hunan_2021", *, actor: str, replace: bool = False
) -> TaskSetInfo:
    """Load a packaged seed task set (``hunan_2021``: seed 003's 22 work points)."""
    from yizhangtu.tasks.catalogue import _TASK_SETS

    led = load_seed_tasks(name)
    reg = load_departments(_TASK_SETS[name][1])
    return import_ledger(
        store,
        led,
        task_set=name,
        registry=reg,
        actor=actor,
        jurisdiction=_SEED_JURISDICTION.get(name),
        replace=replace,
    )


def import_ledger_xlsx(
    store: Store,
    data: bytes,
    *,
    task_set: str,
    actor: str,
    jurisdiction: str | None = None,
    registry: DepartmentRegistry | None = None,
    replace: bool = False,
    file: str | None = None,
) -> TaskSetInfo:
    """Import an Excel ledger (sheets 任务清单, 量化目标, 进度报送, 整改事项) into the store."""
    if registry is None:
        try:
            registry = _registry(store, [task_set])
        except NotFoundError:
            registry = load_departments("hunan")
    led = ledger_from_xlsx(data, registry, file=file)
    return import_ledger(
        store,
        led,
        task_set=task_set,
        registry=registry,
        actor=actor,
        jurisdiction=jurisdiction,
        replace=replace,
    )


def has_tasks(store: Store) -> bool:
    """Whether the workspace holds any task set."""
    return bool(store.list_records(TASK_SETS))


def _sets(
    store: Store, task_set: str | Sequence[str] | None, jurisdictions: Sequence[str] | None
) -> list[Record]:
    recs = store.list_records(TASK_SETS, jurisdictions=jurisdictions)
    if task_set is not None:
        want = {task_set} if isinstance(task_set, str) else set(task_set)
        recs = [r for r in recs if r.key in want]
        missing = want - {r.key for r in recs}
        if missing:
            raise NotFoundError(
                "工作空间中没有任务集: " + "、".join(sorted(missing)),
                key="task_set_not_found",
                hint="先用 yizhangtu tasks load-seed 或 tasks import --store 导入",
            )
    return recs


def _registry(store: Store, task_sets: Iterable[str]) -> DepartmentRegistry:
    deps: dict[str, dict[str, Any]] = {}
    sources = []
    for key in task_sets:
        rec = store.get_record(TASK_SETS, key)
        sources.append(str(rec.data.get("departments_source") or key))
        for d in rec.data.get("departments") or ():
            deps.setdefault(str(d["name"]), dict(d))
    return registry_from_records(list(deps.values()), source="; ".join(sources))


def task_records(
    store: Store,
    *,
    task_set: str | Sequence[str] | None = None,
    jurisdictions: Sequence[str] | None = None,
    department: str | None = None,
) -> list[Record]:
    """Task records, optionally of some sets, jurisdictions or one department (lead or co)."""
    sets = {r.key for r in _sets(store, task_set, jurisdictions)}
    recs = [
        r
        for r in store.list_records(TASKS, jurisdictions=jurisdictions)
        if r.data.get("task_set") in sets
    ]
    if department:
        recs = [
            r
            for r in recs
            if department in (r.data.get("departments") or [r.data.get("department")])
        ]
    return recs


def task_ledger(
    store: Store,
    *,
    task_set: str | Sequence[str] | None = None,
    jurisdictions: Sequence[str] | None = None,
    department: str | None = None,
) -> TaskLedger:
    """Rebuild the ledger (tasks, progress reports, rectifications) from the records.

    Raises
    ------
    NotFoundError
        When the workspace has no task set (matching the filters).
    """
    sets = _sets(store, task_set, jurisdictions)
    if not sets:
        raise NotFoundError(
            "工作空间中没有任务台账",
            key="task_set_not_found",
            hint="先用 yizhangtu tasks load-seed 或 yizhangtu tasks import FILE --store 导入",
        )
    keys = [r.key for r in sets]
    reg = _registry(store, keys)
    tasks = task_records(store, task_set=keys, jurisdictions=jurisdictions, department=department)
    rects = [
        r
        for r in store.list_records(RECTIFICATIONS, jurisdictions=jurisdictions)
        if r.data.get("task_set") in set(keys)
    ]
    if department:
        rects = [r for r in rects if r.data.get("responsible") == department]
    task_keys = (
        "id",
        "title",
        "clause",
        "section",
        "lead",
        "co",
        "start",
        "deadline",
        "summary",
        "departments_quote",
        "departments_open",
        "note",
        "targets",
        "figures",
    )
    mapping = {
        "departments": _registry_records(reg),
        "tasks": [{k: r.data[k] for k in task_keys if k in r.data} for r in tasks],
        "progress": [p for r in tasks for p in (r.data.get("progress") or ())],
        "rectifications": [r.data for r in rects],
        "title": sets[0].data.get("title", "") if len(sets) == 1 else "重点任务",
        "source": "; ".join(str(s.data.get("source") or "") for s in sets),
    }
    led = ledger_from_mapping(mapping)
    return led


def _synthetic(
    store: Store,
    led: TaskLedger,
    task_set: str | Sequence[str] | None,
    jurisdictions: Sequence[str] | None,
) -> bool:
    if any(s.data.get("synthetic") for s in _sets(store, task_set, jurisdictions)):
        return True
    for r in store.list_records(TASKS, jurisdictions=jurisdictions):
        if any(p.get("synthetic") for p in r.data.get("progress") or ()):
            return True
    return any(x.synthetic for x in led.rectifications)


def _stored_task(
    data: Mapping[str, Any], task_id: str
) -> tuple[dt.date, set[str], list[dict[str, Any]]]:
    """Start date, target ids and earlier reports of a stored task record, checked.

    A record written by other means than the task import (e.g. the generic records API) may
    lack these or hold them in another shape; that is a 422, not a crash.
    """

    def bad(what: str, field: str) -> ValidationError:
        return ValidationError(
            f"任务 {task_id} 的记录{what}, 无法报送进度",
            key="task_record_invalid",
            feature=task_id,
            field=field,
            hint="通过任务台账导入 (yizhangtu tasks import) 维护任务, 或补全该记录",
        )

    if not data.get("start"):
        raise bad("缺少开始日期 (start)", "start")
    start = parse_date(data["start"], field="开始日期", feature=task_id)
    targets = data.get("targets") or []
    if not isinstance(targets, list) or not all(
        isinstance(t, Mapping) and "id" in t for t in targets
    ):
        raise bad("中的量化目标 (targets) 格式有误", "targets")
    earlier = data.get("progress") or []
    if not isinstance(earlier, list) or not all(
        isinstance(r, Mapping) and r.get("reported_on") for r in earlier
    ):
        raise bad("中的进度报送 (progress) 格式有误", "progress")
    return start, {str(t["id"]) for t in targets}, [dict(r) for r in earlier]


def report_progress(
    store: Store,
    task_id: str,
    *,
    progress_pct: float,
    actor: str,
    expected_version: int | None,
    reported_on: dt.date | str | None = None,
    evidence: Sequence[str] = (),
    note: str = "",
    reporter: str = "",
    actuals: Mapping[str, float] | None = None,
    synthetic: bool = False,
) -> Record:
    """Add a progress report to a task under optimistic locking; audited as ``task.progress``.

    Parameters
    ----------
    expected_version : int or None
        The task version the reporter saw. ``None`` means "the current one" (read now); a
        concurrent update between the read and the write still raises :class:`ConflictError`.

    Raises
    ------
    ConflictError
        ``version_conflict`` when the task changed since ``expected_version``.
    ValidationError
        Progress outside 0–100 %, a date before the task's start, an unknown target.
    """
    cur = store.get_record(TASKS, task_id)
    day = (
        parse_date(reported_on, field="报送日期", feature=task_id)
        if reported_on
        else dt.date.today()
    )
    rep = progress_from_mapping(
        {
            "task_id": task_id,
            "reported_on": day.isoformat(),
            "progress_pct": progress_pct,
            "evidence": list(evidence),
            "note": note,
            "reporter": reporter or actor,
            "actuals": dict(actuals or {}),
        }
    )
    start, known, earlier = _stored_task(cur.data, task_id)
    if rep.reported_on < start:
        raise ValidationError(
            f"任务 {task_id} 的报送日期 {rep.reported_on.isoformat()} "
            f"早于开始日期 {start.isoformat()}",
            key="report_before_start",
            feature=task_id,
            field="reported_on",
        )
    bad = [k for k in rep.actuals if k not in known]
    if bad:
        raise ValidationError(
            f"任务 {task_id} 没有量化目标: " + "、".join(bad),
            key="target_not_found",
            feature=task_id,
            hint="可用目标: " + ("、".join(sorted(known)) or "(无)"),
        )
    entry = {
        "task_id": task_id,
        "reported_on": rep.reported_on.isoformat(),
        "progress_pct": rep.progress_pct,
        "note": rep.note,
        "evidence": list(rep.evidence),
        "reporter": rep.reporter,
        "actuals": dict(rep.actuals),
    } | ({"synthetic": True} if synthetic else {})
    version = cur.version if expected_version is None else int(expected_version)
    data = dict(cur.data)
    data["progress"] = sorted([*earlier, entry], key=lambda r: str(r["reported_on"]))
    return store.put_record(
        TASKS, task_id, data, expected_version=version, actor=actor, action="task.progress"
    )


def task_states(
    store: Store,
    at: dt.date,
    *,
    task_set: str | Sequence[str] | None = None,
    jurisdictions: Sequence[str] | None = None,
    department: str | None = None,
) -> list[TaskState]:
    """Status of every stored task at ``at`` (overdue first)."""
    led = task_ledger(store, task_set=task_set, jurisdictions=jurisdictions, department=department)
    return evaluate_tasks(led.tasks, led.reports, at)


def dispatch_report(
    store: Store,
    at: dt.date,
    *,
    task_set: str | Sequence[str] | None = None,
    jurisdictions: Sequence[str] | None = None,
    department: str | None = None,
    title: str | None = None,
    synthetic: bool | None = None,
) -> DispatchReport:
    """Build the dispatch report (调度报告) of the stored ledger at ``at``.

    Synthetic progress or items make the report say 合成数据.
    """
    led = task_ledger(store, task_set=task_set, jurisdictions=jurisdictions, department=department)
    synth = _synthetic(store, led, task_set, jurisdictions) if synthetic is None else synthetic
    if department and title is None:
        title = f"{led.title or '重点任务'}调度报告({department})"
    return build_dispatch_report(led, at, title=title, synthetic=synth)


def write_dispatch(report: DispatchReport, out: str | Path, fmt: str) -> dict[str, Any]:
    """Write a dispatch report as html, pdf or xlsx; returns file facts."""
    if fmt not in ("html", "pdf", "xlsx"):
        raise InputError(f"未知的报告格式: {fmt}", key="format_unknown", hint="html、pdf 或 xlsx")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    pages = None
    if fmt == "html":
        path.write_text(dispatch_html(report), encoding="utf-8")
    elif fmt == "pdf":
        pdf, pages = dispatch_pdf(report)
        path.write_bytes(pdf)
    else:
        path.write_bytes(dispatch_xlsx(report))
    return {
        "file": str(path),
        "format": fmt,
        "pages": pages,
        "at": report.at.isoformat(),
        "counts": report.counts(),
        "synthetic": report.synthetic,
    }


def export_ledger_xlsx(
    store: Store,
    *,
    task_set: str | Sequence[str] | None = None,
    jurisdictions: Sequence[str] | None = None,
) -> bytes:
    """Export the stored ledger as xlsx (the layout :func:`import_ledger_xlsx` reads)."""
    led = task_ledger(store, task_set=task_set, jurisdictions=jurisdictions)
    keys = [r.key for r in _sets(store, task_set, jurisdictions)]
    return ledger_to_xlsx(led, _registry(store, keys))


# ---------------------------------------------------------------------------
# rectification
# ---------------------------------------------------------------------------


def add_rectification(
    store: Store,
    item: Mapping[str, Any],
    *,
    task_set: str,
    actor: str,
    jurisdiction: str | None = None,
    unit_id: str | None = None,
) -> Record:
    """Add one rectification item (validated against the set's department list)."""
    reg = _registry(store, [task_set])
    x = rectification_from_mapping(item, reg)
    data = {
        "id": x.id,
        "title": x.title,
        "responsible": x.responsible,
        "found_on": x.found_on.isoformat(),
        "deadline": x.deadline.isoformat() if x.deadline else None,
        "closed_on": x.closed_on.isoformat() if x.closed_on else None,
        "evidence": list(x.evidence),
        "category": x.category,
        "source": x.source,
        "note": x.note,
        "synthetic": x.synthetic,
        "task_set": task_set,
    } | ({"unit_id": str(unit_id)} if unit_id else {})
    return store.put_record(
        RECTIFICATIONS,
        x.id,
        data,
        expected_version=None,
        actor=actor,
        jurisdiction=jurisdiction,
        action="rectification.add",
    )


def close_rectification_item(
    store: Store,
    item_id: str,
    *,
    on: dt.date | str,
    evidence: Sequence[str],
    actor: str,
    expected_version: int | None,
) -> Record:
    """Close (销号) a rectification item with evidence, under optimistic locking."""
    cur = store.get_record(RECTIFICATIONS, item_id)
    x = rectification_from_mapping(cur.data)
    if x.closed:
        raise ConflictError(
            f"整改事项 {item_id} 已于 {x.closed_on} 销号", key="already_closed", feature=item_id
        )
    day = parse_date(on, field="销号日期", feature=item_id)
    closed = close_rectification(x, day, tuple(evidence))
    data = dict(cur.data) | {
        "closed_on": closed.closed_on.isoformat() if closed.closed_on else None,
        "evidence": list(closed.evidence),
    }
    version = cur.version if expected_version is None else int(expected_version)
    return store.put_record(
        RECTIFICATIONS,
        item_id,
        data,
        expected_version=version,
        actor=actor,
        action="rectification.close",
    )


# ---------------------------------------------------------------------------
# target sets (seed 000)
# ---------------------------------------------------------------------------


def load_seed_targets_into(
    store: Store, name: str = "fangshan", *, actor: str, replace: bool = False
) -> list[Record]:
    """Load a packaged target set (``fangshan``: seed 000) as target records."""
    ts = load_seed_targets(name)
    out = []
    with _transaction(store):
        for g in ts.targets:
            data = {
                "id": g.id,
                "name": g.name,
                "value": g.value,
                "unit": g.unit,
                "comparator": g.comparator,
                "due": g.due.isoformat() if g.due else None,
                "scope": g.scope,
                "clause": g.clause,
                "quote": g.quote,
                "baseline": g.baseline,
                "baseline_year": g.baseline_year,
                "note": g.note,
                "target_set": name,
                "set_title": ts.title,
                "source": ts.source,
                "actuals": [],
            }
            rec, _new = _put(
                store,
                TARGETS,
                g.id,
                data,
                actor=actor,
                jurisdiction=ts.jurisdiction or _SEED_JURISDICTION.get(name),
                action="target.load",
                replace=replace,
            )
            out.append(rec)
    return out


def record_target_actual(
    store: Store,
    target_id: str,
    *,
    value: float,
    on: dt.date | str,
    actor: str,
    expected_version: int | None,
    evidence: Sequence[str] = (),
    source: str = "",
    provenance_id: str | None = None,
) -> Record:
    """Record an actual value of a target (with evidence or a provenance id), optimistic lock."""
    cur = store.get_record(TARGETS, target_id)
    day = parse_date(on, field="日期", feature=target_id)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"目标 {target_id} 的实际值不是数字: {value!r}", key="number_invalid", feature=target_id
        ) from None
    if not evidence and not provenance_id:
        raise ValidationError(
            f"目标 {target_id} 的实际值须附佐证材料或计算溯源记录",
            key="actual_no_evidence",
            feature=target_id,
            hint="用 --evidence 给出文件名/文号, 或引用指标计算的溯源记录号",
        )
    entry = {
        "value": v,
        "on": day.isoformat(),
        "evidence": list(evidence),
        "source": source,
        "provenance_id": provenance_id,
        "by": actor,
    }
    data = dict(cur.data) | {
        "actuals": sorted([*(cur.data.get("actuals") or ()), entry], key=lambda a: a["on"])
    }
    version = cur.version if expected_version is None else int(expected_version)
    return store.put_record(
        TARGETS, target_id, data, expected_version=version, actor=actor, action="target.actual"
    )


def list_targets(
    store: Store, *, at: dt.date | None = None, jurisdictions: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Targets with their latest actual (up to ``at``) and whether it meets the target."""
    from yizhangtu.tasks import target_from_mapping, target_met

    out = []
    for r in store.list_records(TARGETS, jurisdictions=jurisdictions):
        d = r.data
        g = target_from_mapping(
            {
                k: d[k]
                for k in (
                    "id",
                    "name",
                    "value",
                    "unit",
                    "comparator",
                    "due",
                    "scope",
                    "clause",
                    "quote",
                    "baseline",
                    "baseline_year",
                    "note",
                )
                if d.get(k) is not None
            }
        )
        acts = [a for a in d.get("actuals") or () if at is None or a["on"] <= at.isoformat()]
        last = acts[-1] if acts else None
        out.append(
            {
                "id": r.key,
                "target": g.describe(),
                "due": d.get("due"),
                "clause": d.get("clause"),
                "jurisdiction": r.jurisdiction,
                "actual": last["value"] if last else None,
                "actual_on": last["on"] if last else None,
                "met": target_met(g, float(last["value"])) if last else None,
                "evidence": last["evidence"] if last else [],
                "provenance_id": last.get("provenance_id") if last else None,
                "version": r.version,
            }
        )
    return out


# ---------------------------------------------------------------------------
# project library
# ---------------------------------------------------------------------------


def _project_mapping(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "level": p.level,
        "category": p.category,
        "status": p.status,
        "total_investment": p.total_investment,
        "year_plans": [
            {"year": y.year, "planned_investment": y.planned_investment, "milestone": y.milestone}
            for y in p.year_plans
        ],
        "lead": p.lead,
        "location": p.location,
        "start_year": p.start_year,
        "end_year": p.end_year,
        "geometry_wkt": p.geometry.wkt if p.geometry is not None else None,
        "note": p.note,
        "synthetic": p.synthetic,
    }


def _progress_mapping(r: ProjectProgress) -> dict[str, Any]:
    return {
        "project_id": r.project_id,
        "reported_on": r.reported_on.isoformat(),
        "progress_pct": r.progress_pct,
        "invested_to_date": r.invested_to_date,
        "note": r.note,
        "evidence": list(r.evidence),
    }


def import_projects(
    store: Store,
    projects: Iterable[Project],
    progress: Iterable[ProjectProgress] = (),
    *,
    actor: str,
    jurisdiction: str | None = None,
    replace: bool = False,
) -> dict[str, int]:
    """Write projects (with their progress) as records."""
    reps: dict[str, list[dict[str, Any]]] = {}
    for r in progress:
        reps.setdefault(r.project_id, []).append(_progress_mapping(r))
    created = updated = 0
    with _transaction(store):
        for p in projects:
            data = _project_mapping(p) | {
                "progress": sorted(reps.get(p.id, []), key=lambda x: x["reported_on"])
            }
            _r, new = _put(
                store,
                PROJECTS,
                p.id,
                data,
                actor=actor,
                jurisdiction=jurisdiction,
                action="project.import",
                replace=replace,
            )
            created += int(new)
            updated += int(not new)
    return {"created": created, "updated": updated}


def project_library(
    store: Store, *, jurisdictions: Sequence[str] | None = None
) -> tuple[tuple[Project, ...], tuple[ProjectProgress, ...]]:
    """Projects and their progress reports from the records."""
    recs = store.list_records(PROJECTS, jurisdictions=jurisdictions)
    return library_from_mapping(
        {
            "projects": [{k: v for k, v in r.data.items() if k != "progress"} for r in recs],
            "progress": [p for r in recs for p in (r.data.get("progress") or ())],
        }
    )


def yearly_project_list(
    store: Store, year: int, *, jurisdictions: Sequence[str] | None = None
) -> YearlyList:
    """Compile the yearly list (年度重点项目综合清单) of the stored library."""
    projects, _ = project_library(store, jurisdictions=jurisdictions)
    if not projects:
        raise NotFoundError(
            "工作空间中没有项目库",
            key="projects_not_found",
            hint="先用 yizhangtu projects import FILE 导入",
        )
    return compile_yearly_list(projects, year)


def report_project_progress(
    store: Store,
    project_id: str,
    *,
    progress_pct: float,
    actor: str,
    expected_version: int | None,
    reported_on: dt.date | str | None = None,
    invested_to_date: float | None = None,
    note: str = "",
    evidence: Sequence[str] = (),
) -> Record:
    """Add a progress report to a project under optimistic locking."""
    cur = store.get_record(PROJECTS, project_id)
    day = (
        parse_date(reported_on, field="报送日期", feature=project_id)
        if reported_on
        else dt.date.today()
    )
    rep = project_progress_from_mapping(
        {
            "project_id": project_id,
            "reported_on": day.isoformat(),
            "progress_pct": progress_pct,
            "invested_to_date": invested_to_date,
            "note": note,
            "evidence": list(evidence),
        }
    )
    project_from_mapping({k: v for k, v in cur.data.items() if k != "progress"})  # still valid
    data = dict(cur.data) | {
        "progress": sorted(
            [*(cur.data.get("progress") or ()), _progress_mapping(rep)],
            key=lambda x: x["reported_on"],
        )
    }
    version = cur.version if expected_version is None else int(expected_version)
    return store.put_record(
        PROJECTS, project_id, data, expected_version=version, actor=actor, action="project.progress"
    )


# ---------------------------------------------------------------------------
# Web adapters: what a user sees and may change, by the records' jurisdictions. The
# jurisdictions visible to a user are found in SQL (prefix filter on the records'
# jurisdiction column); the ledger is then rebuilt from the records of those jurisdictions.
# ---------------------------------------------------------------------------


def scope_jurisdictions(store: Store, collection: str, prefixes: Sequence[str]) -> list[str]:
    """Return the distinct jurisdictions of a collection's records under ``prefixes`` (SQL)."""
    recs = store.query_records(collection, jurisdiction_prefixes=prefixes)
    return sorted({str(r.jurisdiction) for r in recs if r.jurisdiction})


def _no_ledger(exc: NotFoundError, task_set: Any) -> bool:
    return exc.key == "task_set_not_found" and task_set is None


def task_list(
    store: Store,
    scope: Any,
    at: dt.date,
    *,
    task_set: str | None = None,
    department: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Return the visible tasks' states at ``at`` (overdue first), with versions and counts."""
    from yizhangtu.tasks import STATUS_LABELS

    jur = scope_jurisdictions(store, TASKS, scope.record_prefixes())
    out: dict[str, Any] = {"at": at.isoformat(), "available": False, "tasks": [], "counts": {}}
    if not jur:
        if task_set is not None:
            raise NotFoundError(
                f"本辖区没有任务集: {task_set}", key="task_set_not_found", field="task_set"
            )
        return out
    try:
        states = task_states(store, at, task_set=task_set, jurisdictions=jur, department=department)
    except NotFoundError as exc:
        if _no_ledger(exc, task_set):
            return out
        raise
    recs = {
        r.key: r
        for r in task_records(store, task_set=task_set, jurisdictions=jur, department=department)
    }
    rows = []
    for s in states:
        rec = recs.get(s.task.id)
        rows.append(
            s.to_dict()
            | {
                "version": rec.version if rec else None,
                "jurisdiction": rec.jurisdiction if rec else None,
                "task_set": rec.data.get("task_set") if rec else None,
            }
        )
    counts = {k: 0 for k in STATUS_LABELS}
    for r in rows:
        counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return out | {"available": True, "tasks": rows, "counts": counts, "labels": STATUS_LABELS}


def task_state_counts(store: Store, scope: Any, at: dt.date) -> dict[str, Any]:
    """Return the visible tasks' status counts at ``at``, their alerts and rectification counts."""
    from yizhangtu.tasks import (
        STATUS_LABELS,
        rectification_from_mapping,
        summarise_rectifications,
        task_alerts,
    )

    jur = scope_jurisdictions(store, TASKS, scope.record_prefixes())
    counts = {k: 0 for k in STATUS_LABELS}
    states: list[TaskState] = []
    if jur:
        try:
            states = task_states(store, at, jurisdictions=jur)
        except NotFoundError as exc:
            if not _no_ledger(exc, None):
                raise
    for s in states:
        counts[s.status] = counts.get(s.status, 0) + 1
    items = [
        rectification_from_mapping(r.data)
        for r in store.query_records(RECTIFICATIONS, jurisdiction_prefixes=scope.record_prefixes())
    ]
    rect = summarise_rectifications(items, at) if items else None
    return {
        "at": at.isoformat(),
        "total": len(states),
        "counts": counts,
        "labels": STATUS_LABELS,
        "alerts": [a.__dict__ for a in task_alerts(states)],
        "rectifications": (rect.__dict__ | {"at": at.isoformat(), "text": rect.describe()})
        if rect
        else None,
    }


def visible_task(store: Store, scope: Any, task_id: str) -> Record:
    """Return a supervised task inside the scope's jurisdiction; 404 otherwise."""
    try:
        rec = store.get_record(TASKS, task_id)
    except NotFoundError:
        rec = None
    if rec is None or not scope.covers(rec.jurisdiction) or not rec.data.get("task_set"):
        raise NotFoundError(
            f"本辖区没有任务 {task_id}", key="task_not_found", feature=task_id, field="task_id"
        )
    return rec


def task_detail(store: Store, scope: Any, task_id: str, at: dt.date) -> dict[str, Any]:
    """Return one visible task: its state at ``at`` and its record (progress history)."""
    from yizhangtu.services.records import record_dict

    rec = visible_task(store, scope, task_id)
    states = task_states(
        store, at, task_set=str(rec.data["task_set"]), jurisdictions=[str(rec.jurisdiction)]
    )
    state = next((s for s in states if s.task.id == task_id), None)
    return {
        "task_id": task_id,
        "at": at.isoformat(),
        "state": state.to_dict() if state is not None else None,
        "version": rec.version,
        "jurisdiction": rec.jurisdiction,
        "record": record_dict(rec),
    }


def report_task_progress(
    store: Store,
    scope: Any,
    task_id: str,
    *,
    progress_pct: float,
    version: int,
    reported_on: str | None = None,
    note: str = "",
    evidence: Sequence[str] = (),
    actuals: Mapping[str, float] | None = None,
) -> Record:
    """Report progress on a task inside the scope's jurisdiction (optimistic lock, audited)."""
    visible_task(store, scope, task_id)
    return report_progress(
        store,
        task_id,
        progress_pct=progress_pct,
        actor=str(scope.username),
        expected_version=version,
        reported_on=reported_on,
        note=note,
        evidence=evidence,
        actuals=actuals,
    )


def visible_targets(store: Store, scope: Any, at: dt.date | None = None) -> list[dict[str, Any]]:
    """Return the targets inside the scope's jurisdiction with their latest actual."""
    jur = scope_jurisdictions(store, TARGETS, scope.record_prefixes())
    return list_targets(store, at=at, jurisdictions=jur) if jur else []


def record_visible_target_actual(
    store: Store,
    scope: Any,
    target_id: str,
    *,
    value: float,
    on: str,
    version: int,
    evidence: Sequence[str] = (),
    source: str = "",
    provenance_id: str | None = None,
) -> Record:
    """Record an actual value of a target inside the scope's jurisdiction (optimistic lock)."""
    try:
        rec = store.get_record(TARGETS, target_id)
    except NotFoundError:
        rec = None
    if rec is None or not scope.covers(rec.jurisdiction):
        raise NotFoundError(
            f"本辖区没有目标 {target_id}",
            key="target_not_found",
            feature=target_id,
            field="target_id",
        )
    return record_target_actual(
        store,
        target_id,
        value=value,
        on=on,
        actor=str(scope.username),
        expected_version=version,
        evidence=evidence,
        source=source,
        provenance_id=provenance_id,
    )


def visible_projects(
    store: Store, scope: Any, *, at: dt.date, year: int | None = None
) -> dict[str, Any]:
    """Return the project library inside the scope's jurisdiction, and a yearly list."""
    from yizhangtu.services.features import json_ready
    from yizhangtu.tasks import library_summary, project_progress_table

    jur = scope_jurisdictions(store, PROJECTS, scope.record_prefixes())
    projects, progress = project_library(store, jurisdictions=jur) if jur else ((), ())
    recs = {r.key: r for r in store.list_records(PROJECTS, jurisdictions=jur)} if jur else {}
    table = project_progress_table(projects, progress, at)
    rows = []
    for r in table.to_dict(orient="records") if len(table) else []:
        rec = recs.get(str(r["id"]))
        rows.append(
            r
            | {
                "version": rec.version if rec else None,
                "jurisdiction": rec.jurisdiction if rec else None,
            }
        )
    summary = library_summary(projects).reset_index().to_dict(orient="records")
    return dict(
        json_ready(
            {
                "at": at.isoformat(),
                "projects": rows,
                "summary": summary,
                "synthetic": any(p.synthetic for p in projects),
                "yearly": compile_yearly_list(projects, year).to_dict()
                if year is not None and projects
                else None,
            }
        )
    )


def rectification_items(
    store: Store, scope: Any, at: dt.date, *, task_set: str | None = None
) -> dict[str, Any]:
    """Return the rectification items inside the scope's jurisdiction with their state at ``at``."""
    from yizhangtu.tasks import (
        RECTIFICATION_LABELS,
        rectification_from_mapping,
        rectification_state,
        summarise_rectifications,
    )

    recs = store.query_records(RECTIFICATIONS, jurisdiction_prefixes=scope.record_prefixes())
    if task_set is not None:
        recs = [r for r in recs if r.data.get("task_set") == task_set]
    items = [(r, rectification_from_mapping(r.data)) for r in recs]
    rows = []
    for r, x in items:
        if x.found_on > at:
            continue
        state = rectification_state(x, at)
        rows.append(
            {
                "id": x.id,
                "title": x.title,
                "responsible": x.responsible,
                "category": x.category,
                "found_on": x.found_on.isoformat(),
                "deadline": x.deadline.isoformat() if x.deadline else None,
                "closed_on": x.closed_on.isoformat() if x.closed_on else None,
                "state": state,
                "state_label": RECTIFICATION_LABELS[state],
                "evidence": list(x.evidence),
                "task_set": r.data.get("task_set"),
                "unit_id": r.data.get("unit_id"),
                "synthetic": x.synthetic,
                "version": r.version,
                "jurisdiction": r.jurisdiction,
            }
        )
    order = {"overdue": 0, "open": 1, "closed": 2}
    rows.sort(key=lambda x: (order[str(x["state"])], str(x["deadline"] or ""), str(x["id"])))
    summary = summarise_rectifications([x for _, x in items], at) if items else None
    return {
        "at": at.isoformat(),
        "items": rows,
        "summary": (summary.__dict__ | {"at": at.isoformat(), "text": summary.describe()})
        if summary
        else None,
    }


def check_dispatch(
    store: Store, scope: Any, *, task_set: str | None = None, department: str | None = None
) -> list[str]:
    """Return the jurisdictions a dispatch report of the scope covers; 404 without a ledger."""
    jur = scope_jurisdictions(store, TASKS, scope.record_prefixes())
    if not jur:
        raise NotFoundError(
            "本辖区没有任务台账, 无法生成调度报告",
            key="task_set_not_found",
            hint="先导入任务台账 (yizhangtu tasks load-seed / tasks import --store)",
        )
    task_ledger(store, task_set=task_set, jurisdictions=jur, department=department)
    return jur


def dispatch_report_job(uri: str, scope: Any, reports_dir: Path, params: Mapping[str, Any]) -> Any:
    """Make a job writing the dispatch report (调度报告) of the scope's tasks as a report file.

    ``params``: ``at`` (ISO date), ``format`` (html, pdf or xlsx), optional ``task_set``,
    ``department``, ``title``.
    """
    from yizhangtu.services.jobs import open_worker_store, write_report_meta

    def run(progress: Any) -> dict[str, Any]:
        import uuid

        fmt = str(params.get("format") or "html")
        at = parse_date(params["at"], field="at")
        progress(0.05, "读取任务台账")
        store = open_worker_store(uri)
        try:
            jur = check_dispatch(
                store, scope, task_set=params.get("task_set"), department=params.get("department")
            )
            rep = dispatch_report(
                store,
                at,
                task_set=params.get("task_set"),
                jurisdictions=jur,
                department=params.get("department"),
                title=params.get("title"),
            )
        finally:
            store.close()
        progress(0.5, "写入调度报告")
        reports_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        final = reports_dir / f"dispatch_{at.isoformat()}_{stamp}_{uuid.uuid4().hex[:6]}.{fmt}"
        tmp = final.with_name("." + final.name + ".tmp")
        try:
            info = write_dispatch(rep, tmp, fmt)
            title = f"{rep.title} ({at.isoformat()})"
            if rep.synthetic and "合成数据" not in title:
                title += " (合成数据)"
            write_report_meta(
                final,
                kind="dispatch",
                title=title,
                scope=scope,
                synthetic=rep.synthetic,
                extra={"at": at.isoformat(), "counts": rep.counts()},
            )
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        return {
            "report": final.name,
            "url": f"/api/reports/{final.name}",
            "bytes": final.stat().st_size,
            "format": fmt,
            "pages": info["pages"],
            "at": at.isoformat(),
            "counts": rep.counts(),
            "synthetic": rep.synthetic,
            "title": rep.title,
        }

    return run
