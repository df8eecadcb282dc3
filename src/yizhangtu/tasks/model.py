"""Tasks (重点任务), quantitative targets, progress reports and rectification items (整改).

All records are frozen dataclasses. ``*_from_mapping`` builders validate input and raise
:class:`~yizhangtu.errors.ValidationError` with Chinese messages: unknown department, deadline
before start, progress outside 0–100 %, unknown task, closing a rectification without evidence.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from yizhangtu.errors import ValidationError
from yizhangtu.tasks.departments import DepartmentRegistry

__all__ = [
    "COMPARATORS",
    "ProgressReport",
    "Rectification",
    "Target",
    "Task",
    "TaskLedger",
    "close_rectification",
    "ledger_from_mapping",
    "ledger_to_mapping",
    "parse_date",
    "progress_from_mapping",
    "rectification_from_mapping",
    "target_from_mapping",
    "target_met",
    "task_from_mapping",
    "validate_ledger",
]

#: Comparators a target may use, with their Chinese reading.
COMPARATORS: dict[str, str] = {">=": "不低于", "<=": "不高于", "=": "等于"}


def parse_date(value: Any, *, field: str = "日期", feature: str | None = None) -> dt.date:
    """Parse a date from a ``date``, ``datetime`` or ISO text (``2021-07-15``, ``2021/7/15``)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip().replace("/", "-").replace(".", "-")
        for sep in ("年", "月"):
            text = text.replace(sep, "-")
        text = text.replace("日", "")
        try:
            y, m, d = (int(p) for p in text.split("-")[:3])
            return dt.date(y, m, d)
        except (ValueError, TypeError):
            pass
    raise ValidationError(
        f"{field}不是有效日期: {value!r}",
        key="date_invalid",
        feature=feature,
        field=field,
        hint="格式如 2021-07-15",
    )


@dataclass(frozen=True)
class Target:
    """A quantitative target (量化目标) with its citation."""

    id: str
    name: str
    value: float
    unit: str
    comparator: str = ">="
    due: dt.date | None = None
    scope: str = ""
    clause: str = ""
    quote: str = ""
    baseline: float | None = None
    baseline_year: int | None = None
    derived: bool = False
    note: str = ""

    def describe(self) -> str:
        """Chinese one-liner, e.g. "新开工改造老旧小区 不低于 1500 个"."""
        v = f"{self.value:g}"
        scope = f"({self.scope})" if self.scope else ""
        return (
            f"{self.name}{scope} {COMPARATORS.get(self.comparator, self.comparator)} {v}{self.unit}"
        )


def target_met(target: Target, actual: float) -> bool:
    """Whether ``actual`` meets ``target`` under its comparator."""
    if target.comparator == ">=":
        return actual >= target.value
    if target.comparator == "<=":
        return actual <= target.value
    return math.isclose(actual, target.value, rel_tol=1e-9, abs_tol=1e-9)


@dataclass(frozen=True)
class Task:
    """A supervised task with lead and co-responsible departments."""

    id: str
    title: str
    lead: str
    start: dt.date
    deadline: dt.date
    co: tuple[str, ...] = ()
    clause: str = ""
    section: str = ""
    summary: str = ""
    targets: tuple[Target, ...] = ()
    departments_quote: str = ""
    departments_open: bool = False
    note: str = ""
    figures: tuple[Mapping[str, str], ...] = ()

    @property
    def departments(self) -> tuple[str, ...]:
        """Lead first, then co-responsible departments."""
        return (self.lead, *self.co)


@dataclass(frozen=True)
class ProgressReport:
    """A periodic progress report (进度报送) with evidence references."""

    task_id: str
    reported_on: dt.date
    progress_pct: float
    note: str = ""
    evidence: tuple[str, ...] = ()
    reporter: str = ""
    actuals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rectification:
    """A rectification item (整改事项), open until closed with evidence."""

    id: str
    title: str
    responsible: str
    found_on: dt.date
    deadline: dt.date | None = None
    closed_on: dt.date | None = None
    evidence: tuple[str, ...] = ()
    category: str = ""
    source: str = ""
    note: str = ""
    synthetic: bool = False

    @property
    def closed(self) -> bool:
        """True once closed (销号)."""
        return self.closed_on is not None


@dataclass(frozen=True)
class TaskLedger:
    """Tasks, their progress reports and rectification items, validated together."""

    tasks: tuple[Task, ...]
    reports: tuple[ProgressReport, ...] = ()
    rectifications: tuple[Rectification, ...] = ()
    title: str = ""
    source: str = ""

    def task(self, task_id: str) -> Task:
        """Return the task with ``task_id``."""
        for t in self.tasks:
            if t.id == task_id:
                return t
        from yizhangtu.errors import NotFoundError

        raise NotFoundError(f"没有编号为 {task_id} 的任务", key="task_not_found")


def _text(
    d: Mapping[str, Any], key: str, where: str, *, required: bool = True, feature: str | None = None
) -> str:
    v = d.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
        if required:
            raise ValidationError(
                f"{where}缺少{key}", key="field_missing", feature=feature, field=key
            )
        return ""
    return str(v).strip()


def _number(v: Any, *, field: str, feature: str | None) -> float:
    if isinstance(v, bool):
        raise ValidationError(
            f"{field}不是数字: {v!r}", key="number_invalid", feature=feature, field=field
        )
    if isinstance(v, str):
        v = v.strip().replace(",", "").replace("，", "").rstrip("%％")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{field}不是数字: {v!r}", key="number_invalid", feature=feature, field=field
        ) from None
    if math.isnan(x):
        raise ValidationError(f"{field}为空", key="number_invalid", feature=feature, field=field)
    return x


def target_from_mapping(
    d: Mapping[str, Any],
    *,
    clause: str = "",
    due: dt.date | None = None,
    task_id: str | None = None,
) -> Target:
    """Build a :class:`Target`; ``clause`` and ``due`` default to the task's."""
    where = f"任务 {task_id} 的量化目标" if task_id else "量化目标"
    tid = _text(d, "id", where, required=False) or (f"{task_id}-T" if task_id else "T")
    comp = str(d.get("comparator") or ">=").strip()
    comp = {"≥": ">=", "≤": "<=", "==": "="}.get(comp, comp)
    if comp not in COMPARATORS:
        raise ValidationError(
            f"{where}的比较方式无效: {comp}",
            key="comparator_invalid",
            feature=task_id,
            hint=">=、<= 或 =",
        )
    base = d.get("baseline")
    return Target(
        id=tid,
        name=_text(d, "name", where, feature=task_id),
        value=_number(d.get("value"), field=f"{where}的目标值", feature=task_id),
        unit=str(d.get("unit") or ""),
        comparator=comp,
        due=parse_date(d["due"], field="目标期限", feature=task_id) if d.get("due") else due,
        scope=str(d.get("scope") or ""),
        clause=str(d.get("clause") or clause),
        quote=str(d.get("quote") or ""),
        baseline=float(base) if base not in (None, "") else None,
        baseline_year=int(d["baseline_year"]) if d.get("baseline_year") else None,
        derived=bool(d.get("derived", False)),
        note=str(d.get("note") or ""),
    )


def _names(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        for sep in ("；", ";", "，", ",", "/"):
            v = v.replace(sep, "、")
        return [p.strip() for p in v.split("、") if p.strip()]
    return [str(x).strip() for x in v if str(x).strip()]


def task_from_mapping(
    d: Mapping[str, Any],
    registry: DepartmentRegistry,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> Task:
    """Build and validate a :class:`Task`.

    Raises
    ------
    ValidationError
        Missing id/title/lead, unknown department, deadline before start, bad target.
    """
    defaults = defaults or {}
    tid = _text(d, "id", "任务")
    where = f"任务 {tid} "
    lead = registry.resolve(_text(d, "lead", where, feature=tid), task_id=tid, field="lead")
    co = []
    for n in _names(d.get("co")):
        c = registry.resolve(n, task_id=tid, field="co")
        if c != lead and c not in co:
            co.append(c)
    start_raw = d.get("start") or defaults.get("start")
    end_raw = d.get("deadline") or defaults.get("deadline")
    if not start_raw:
        raise ValidationError(
            f"{where}缺少开始日期", key="field_missing", feature=tid, field="start"
        )
    if not end_raw:
        raise ValidationError(
            f"{where}缺少截止日期", key="field_missing", feature=tid, field="deadline"
        )
    start = parse_date(start_raw, field="开始日期", feature=tid)
    deadline = parse_date(end_raw, field="截止日期", feature=tid)
    if deadline < start:
        raise ValidationError(
            f"{where}的截止日期 {deadline.isoformat()} 早于开始日期 {start.isoformat()}",
            key="deadline_before_start",
            feature=tid,
            field="deadline",
            hint="检查开始日期与截止日期是否填反",
        )
    clause = str(d.get("clause") or "")
    targets = tuple(
        target_from_mapping(t, clause=clause, due=deadline, task_id=tid)
        for t in (d.get("targets") or ())
    )
    ids = [t.id for t in targets]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{where}的量化目标编号重复", key="target_duplicate", feature=tid)
    return Task(
        id=tid,
        title=_text(d, "title", where, feature=tid),
        lead=lead,
        start=start,
        deadline=deadline,
        co=tuple(co),
        clause=clause,
        section=str(d.get("section") or ""),
        summary=str(d.get("summary") or ""),
        targets=targets,
        departments_quote=str(d.get("departments_quote") or ""),
        departments_open=bool(d.get("departments_open", False)),
        note=str(d.get("note") or ""),
        figures=tuple(dict(f) for f in (d.get("figures") or ())),
    )


def progress_from_mapping(d: Mapping[str, Any]) -> ProgressReport:
    """Build and validate a :class:`ProgressReport` (progress in per cent, 0–100).

    Raises
    ------
    ValidationError
        Progress below 0 or above 100 %, a missing task id or date.
    """
    tid = _text(d, "task_id", "进度报送")
    raw = d.get("progress_pct", d.get("progress"))
    p = _number(raw, field="进度(%)", feature=tid)
    if p > 100:
        raise ValidationError(
            f"任务 {tid} 报送的进度为 {p:g}%, 超过 100%",
            key="progress_above_100",
            feature=tid,
            field="progress_pct",
            hint="进度按百分比填写, 范围 0–100; 超额完成请在量化目标的实际值中体现",
        )
    if p < 0:
        raise ValidationError(
            f"任务 {tid} 报送的进度为 {p:g}%, 不能为负", key="progress_negative", feature=tid
        )
    actuals = {
        str(k): _number(v, field=f"目标 {k} 实际值", feature=tid)
        for k, v in (d.get("actuals") or {}).items()
    }
    return ProgressReport(
        task_id=tid,
        reported_on=parse_date(
            d.get("reported_on") or d.get("date"), field="报送日期", feature=tid
        ),
        progress_pct=p,
        note=str(d.get("note") or ""),
        evidence=tuple(
            _names(d.get("evidence"))
            if isinstance(d.get("evidence"), str)
            else (str(e) for e in (d.get("evidence") or ()))
        ),
        reporter=str(d.get("reporter") or ""),
        actuals=actuals,
    )


def rectification_from_mapping(
    d: Mapping[str, Any], registry: DepartmentRegistry | None = None
) -> Rectification:
    """Build and validate a :class:`Rectification`.

    Raises
    ------
    ValidationError
        Dates out of order, an unknown responsible department (when a registry is given).
    """
    rid = _text(d, "id", "整改事项")
    where = f"整改事项 {rid} "
    resp = _text(d, "responsible", where, feature=rid)
    if registry is not None:
        resp = registry.resolve(resp, task_id=rid, field="responsible")
    found = parse_date(d.get("found_on"), field="发现日期", feature=rid)
    deadline = (
        parse_date(d["deadline"], field="整改期限", feature=rid) if d.get("deadline") else None
    )
    closed = (
        parse_date(d["closed_on"], field="销号日期", feature=rid) if d.get("closed_on") else None
    )
    if deadline and deadline < found:
        raise ValidationError(
            f"{where}的整改期限早于发现日期",
            key="deadline_before_start",
            feature=rid,
            field="deadline",
        )
    if closed and closed < found:
        raise ValidationError(
            f"{where}的销号日期早于发现日期",
            key="closed_before_found",
            feature=rid,
            field="closed_on",
        )
    ev = d.get("evidence")
    evidence = tuple(_names(ev)) if isinstance(ev, str) else tuple(str(e) for e in (ev or ()))
    item = Rectification(
        id=rid,
        title=_text(d, "title", where, feature=rid),
        responsible=resp,
        found_on=found,
        deadline=deadline,
        closed_on=None,
        evidence=evidence,
        category=str(d.get("category") or ""),
        source=str(d.get("source") or ""),
        note=str(d.get("note") or ""),
        synthetic=bool(d.get("synthetic", False)),
    )
    return close_rectification(item, closed, evidence) if closed else item


def close_rectification(
    item: Rectification,
    on: dt.date,
    evidence: Sequence[str] = (),
    *,
    require_evidence: bool | None = None,
) -> Rectification:
    """Close (销号) a rectification item; evidence is required by default (data rule).

    Raises
    ------
    ValidationError
        No evidence while the rule requires it, or a closing date before the finding.
    """
    if require_evidence is None:
        from yizhangtu.tasks.status import supervision_policy

        require_evidence = supervision_policy().rectification_requires_evidence
    ev = tuple(evidence) or item.evidence
    if require_evidence and not ev:
        raise ValidationError(
            f"整改事项 {item.id} 销号须附佐证材料",
            key="rectification_no_evidence",
            feature=item.id,
            field="evidence",
            hint="填写整改佐证材料 (文件名、文号或链接)",
        )
    if on < item.found_on:
        raise ValidationError(
            f"整改事项 {item.id} 的销号日期早于发现日期", key="closed_before_found", feature=item.id
        )
    return replace(item, closed_on=on, evidence=ev)


def validate_ledger(
    tasks: Iterable[Task],
    reports: Iterable[ProgressReport] = (),
    rectifications: Iterable[Rectification] = (),
) -> TaskLedger:
    """Check cross-references: unique task ids, reports on known tasks and known targets."""
    ts = tuple(tasks)
    ids = [t.id for t in ts]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValidationError("任务编号重复: " + "、".join(dup), key="task_duplicate")
    known = {t.id: t for t in ts}
    rs = tuple(reports)
    for r in rs:
        if r.task_id not in known:
            raise ValidationError(
                f"进度报送引用了不存在的任务编号: {r.task_id}",
                key="task_not_found",
                feature=r.task_id,
            )
        tids = {tg.id for tg in known[r.task_id].targets}
        bad = [k for k in r.actuals if k not in tids]
        if bad:
            raise ValidationError(
                f"任务 {r.task_id} 的进度报送引用了不存在的量化目标: " + "、".join(bad),
                key="target_not_found",
                feature=r.task_id,
            )
    rc = tuple(rectifications)
    rids = [x.id for x in rc]
    dup = sorted({i for i in rids if rids.count(i) > 1})
    if dup:
        raise ValidationError("整改事项编号重复: " + "、".join(dup), key="rectification_duplicate")
    return TaskLedger(tasks=ts, reports=rs, rectifications=rc)


def ledger_from_mapping(
    d: Mapping[str, Any], registry: DepartmentRegistry | None = None
) -> TaskLedger:
    """Build a ledger from a YAML-like mapping with ``tasks``, ``progress``, ``rectifications``.

    The department list is, in order of precedence: the mapping's own ``departments`` list,
    ``registry``, or the packaged Hunan list (seed 003).
    """
    from yizhangtu.tasks.departments import load_departments, registry_from_records

    if d.get("departments"):
        registry = registry_from_records(d["departments"], source="任务文件内名录")
    elif registry is None:
        registry = load_departments("hunan")
    defaults = d.get("defaults") or {}
    tasks = [task_from_mapping(t, registry, defaults=defaults) for t in (d.get("tasks") or ())]
    reports = [progress_from_mapping(r) for r in (d.get("progress") or ())]
    rect = [rectification_from_mapping(r, registry) for r in (d.get("rectifications") or ())]
    led = validate_ledger(tasks, reports, rect)
    return replace(led, title=str(d.get("title") or ""), source=str(d.get("source") or ""))


def _target_mapping(g: Target) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g.id,
        "name": g.name,
        "value": g.value,
        "unit": g.unit,
        "comparator": g.comparator,
    }
    if g.due:
        out["due"] = g.due.isoformat()
    for k in ("scope", "clause", "quote", "note"):
        if getattr(g, k):
            out[k] = getattr(g, k)
    if g.baseline is not None:
        out["baseline"] = g.baseline
    if g.baseline_year is not None:
        out["baseline_year"] = g.baseline_year
    if g.derived:
        out["derived"] = True
    return out


def ledger_to_mapping(
    ledger: TaskLedger, registry: DepartmentRegistry | None = None
) -> dict[str, Any]:
    """YAML-ready mapping of a ledger (inverse of :func:`ledger_from_mapping`)."""
    tasks = []
    for t in ledger.tasks:
        d: dict[str, Any] = {
            "id": t.id,
            "title": t.title,
            "clause": t.clause,
            "section": t.section,
            "lead": t.lead,
            "co": list(t.co),
            "start": t.start.isoformat(),
            "deadline": t.deadline.isoformat(),
            "summary": t.summary,
        }
        if t.departments_quote:
            d["departments_quote"] = t.departments_quote
        d["departments_open"] = t.departments_open
        if t.note:
            d["note"] = t.note
        d["targets"] = [_target_mapping(g) for g in t.targets]
        if t.figures:
            d["figures"] = [dict(f) for f in t.figures]
        tasks.append(d)
    out: dict[str, Any] = {"title": ledger.title, "source": ledger.source}
    if registry is not None:
        out["departments"] = [
            {"name": x.name, "full_name": x.full_name, "kind": x.kind, "aliases": list(x.aliases)}
            for x in registry.departments
        ]
    out["tasks"] = tasks
    out["progress"] = [
        {
            "task_id": r.task_id,
            "reported_on": r.reported_on.isoformat(),
            "progress_pct": r.progress_pct,
            "note": r.note,
            "evidence": list(r.evidence),
            "reporter": r.reporter,
            "actuals": dict(r.actuals),
        }
        for r in ledger.reports
    ]
    out["rectifications"] = [
        {
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
        }
        for x in ledger.rectifications
    ]
    return out
