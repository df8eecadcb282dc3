"""Task status at a date, overdue and due-soon alerts, rectification status.

Status of a task at date ``d`` (rules in this order; numbers from ``data/supervision.yaml``):

1. ``done`` (已完成): the latest report on or before ``d`` says 100 %.
2. ``overdue`` (逾期): ``d`` is after the deadline and the task is not done.
3. ``behind`` (滞后): progress ``p`` is below the linear pace ``e`` by more than the tolerance
   ``t``: ``p < e − t``, where ``e = 100 · clip((d − start)/(deadline − start), 0, 1)`` (days)
   and ``p`` is the latest reported progress (0 if none).
4. ``on_track`` (正常推进): otherwise.

A task whose last report is older than the reporting cycle is flagged ``stale`` (未按期报送).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from yizhangtu.tasks._data import load_packaged_yaml
from yizhangtu.tasks.model import ProgressReport, Rectification, Target, Task, target_met

__all__ = [
    "RECTIFICATION_LABELS",
    "STATUS_LABELS",
    "Alert",
    "RectificationSummary",
    "SupervisionPolicy",
    "TargetCheck",
    "TaskState",
    "evaluate_task",
    "evaluate_tasks",
    "expected_progress",
    "rectification_state",
    "summarise_rectifications",
    "supervision_policy",
    "task_alerts",
]

STATUS_LABELS: dict[str, str] = {
    "overdue": "逾期",
    "behind": "滞后",
    "on_track": "正常推进",
    "done": "已完成",
}
RECTIFICATION_LABELS: dict[str, str] = {
    "closed": "已销号",
    "open": "整改中",
    "overdue": "超期未整改",
}


@dataclass(frozen=True)
class SupervisionPolicy:
    """Supervision thresholds (configurable defaults, ``data/supervision.yaml``)."""

    behind_tolerance_pct: float
    due_soon_days: int
    report_cycle_days: int
    rectification_requires_evidence: bool
    status_order: tuple[str, ...]
    source: str = ""


def supervision_policy() -> SupervisionPolicy:
    """Load the packaged supervision policy."""
    d = load_packaged_yaml("data/supervision.yaml")
    return SupervisionPolicy(
        behind_tolerance_pct=float(d["behind_tolerance_pct"]["value"]),
        due_soon_days=int(d["due_soon_days"]["value"]),
        report_cycle_days=int(d["report_cycle_days"]["value"]),
        rectification_requires_evidence=bool(d["rectification_requires_evidence"]["value"]),
        status_order=tuple(d["status_order"]["value"]),
        source=str(d.get("source") or ""),
    )


@dataclass(frozen=True)
class TargetCheck:
    """A target against the latest reported actual value (if any)."""

    target: Target
    actual: float | None
    met: bool | None


@dataclass(frozen=True)
class TaskState:
    """Status of one task at a date."""

    task: Task
    at: dt.date
    status: str
    progress_pct: float
    expected_pct: float
    days_left: int
    days_overdue: int
    last_report: ProgressReport | None
    stale: bool
    done_on: dt.date | None
    done_late: bool
    targets: tuple[TargetCheck, ...]

    @property
    def status_label(self) -> str:
        """Chinese status label."""
        return STATUS_LABELS[self.status]

    @property
    def gap_pct(self) -> float:
        """Expected minus reported progress (percentage points; positive = behind pace)."""
        return self.expected_pct - self.progress_pct

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        t = self.task
        return {
            "task_id": t.id,
            "title": t.title,
            "clause": t.clause,
            "lead": t.lead,
            "co": list(t.co),
            "start": t.start.isoformat(),
            "deadline": t.deadline.isoformat(),
            "at": self.at.isoformat(),
            "status": self.status,
            "status_label": self.status_label,
            "progress_pct": self.progress_pct,
            "expected_pct": round(self.expected_pct, 2),
            "gap_pct": round(self.gap_pct, 2),
            "days_left": self.days_left,
            "days_overdue": self.days_overdue,
            "stale": self.stale,
            "last_report_on": self.last_report.reported_on.isoformat()
            if self.last_report
            else None,
            "evidence": list(self.last_report.evidence) if self.last_report else [],
            "done_on": self.done_on.isoformat() if self.done_on else None,
            "done_late": self.done_late,
            "targets": [
                {"id": c.target.id, "target": c.target.describe(), "actual": c.actual, "met": c.met}
                for c in self.targets
            ],
        }


def expected_progress(task: Task, at: dt.date) -> float:
    """Linear pace in per cent: ``100 · clip((at − start)/(deadline − start), 0, 1)``."""
    span = (task.deadline - task.start).days
    if span <= 0:
        return 100.0 if at >= task.deadline else 0.0
    frac = (at - task.start).days / span
    return 100.0 * min(max(frac, 0.0), 1.0)


def evaluate_task(
    task: Task,
    reports: Iterable[ProgressReport],
    at: dt.date,
    policy: SupervisionPolicy | None = None,
) -> TaskState:
    """Status of ``task`` at ``at`` from its reports (see module docstring)."""
    pol = policy or supervision_policy()
    mine = sorted(
        (r for r in reports if r.task_id == task.id and r.reported_on <= at),
        key=lambda r: r.reported_on,
    )
    last = mine[-1] if mine else None
    p = last.progress_pct if last else 0.0
    e = expected_progress(task, at)
    done_on = (
        next((r.reported_on for r in mine if r.progress_pct >= 100.0), None) if p >= 100.0 else None
    )
    if p >= 100.0:
        status = "done"
    elif at > task.deadline:
        status = "overdue"
    elif p < e - pol.behind_tolerance_pct:
        status = "behind"
    else:
        status = "on_track"
    actual: dict[str, float] = {}
    for r in mine:
        actual.update(r.actuals)
    checks = tuple(
        TargetCheck(
            tg, actual.get(tg.id), target_met(tg, actual[tg.id]) if tg.id in actual else None
        )
        for tg in task.targets
    )
    stale = (
        status != "done"
        and at >= task.start
        and (
            (last is None and (at - task.start).days > pol.report_cycle_days)
            or (last is not None and (at - last.reported_on).days > pol.report_cycle_days)
        )
    )
    return TaskState(
        task=task,
        at=at,
        status=status,
        progress_pct=p,
        expected_pct=e,
        days_left=(task.deadline - at).days,
        days_overdue=max((at - task.deadline).days, 0) if status == "overdue" else 0,
        last_report=last,
        stale=bool(stale),
        done_on=done_on,
        done_late=bool(done_on and done_on > task.deadline),
        targets=checks,
    )


def evaluate_tasks(
    tasks: Iterable[Task],
    reports: Sequence[ProgressReport],
    at: dt.date,
    policy: SupervisionPolicy | None = None,
) -> list[TaskState]:
    """Evaluate all tasks, ordered for dispatch.

    Order: overdue (most days first), behind (largest gap first), on track (nearest deadline
    first), done.
    """
    pol = policy or supervision_policy()
    states = [evaluate_task(t, reports, at, pol) for t in tasks]
    order = {s: i for i, s in enumerate(pol.status_order)}

    def key(s: TaskState) -> tuple[int, float, str]:
        if s.status == "overdue":
            k = -float(s.days_overdue)
        elif s.status == "behind":
            k = -s.gap_pct
        else:
            k = float(s.days_left)
        return (order.get(s.status, len(order)), k, s.task.id)

    return sorted(states, key=key)


@dataclass(frozen=True)
class Alert:
    """An alert for the dispatch report."""

    level: str  # "overdue" | "due_soon" | "stale" | "rectification_overdue"
    ref: str
    message: str


def task_alerts(
    states: Iterable[TaskState], policy: SupervisionPolicy | None = None
) -> list[Alert]:
    """Overdue, due-soon and not-reported alerts (overdue first)."""
    pol = policy or supervision_policy()
    out: list[Alert] = []
    sts = list(states)
    for s in sts:
        t = s.task
        if s.status == "overdue":
            out.append(
                Alert(
                    "overdue",
                    t.id,
                    f"【逾期】{t.id} {t.title}: 已超过截止日期 {t.deadline.isoformat()} "
                    f"{s.days_overdue} 天, "
                    f"进度 {s.progress_pct:g}% (牵头单位: {t.lead})",
                )
            )
    for s in sts:
        t = s.task
        if s.status not in ("done", "overdue") and 0 <= s.days_left <= pol.due_soon_days:
            out.append(
                Alert(
                    "due_soon",
                    t.id,
                    f"【临期】{t.id} {t.title}: 距截止日期 {s.days_left} 天, "
                    f"进度 {s.progress_pct:g}%",
                )
            )
    for s in sts:
        if s.stale:
            last = s.last_report.reported_on.isoformat() if s.last_report else "从未报送"
            out.append(
                Alert(
                    "stale",
                    s.task.id,
                    f"【未按期报送】{s.task.id} {s.task.title}: 最近报送 {last}, "
                    f"报送周期 {pol.report_cycle_days} 天",
                )
            )
    return out


def rectification_state(item: Rectification, at: dt.date) -> str:
    """Return ``closed`` (closed by ``at``), ``overdue`` (past deadline, open) or ``open``."""
    if item.closed_on is not None and item.closed_on <= at:
        return "closed"
    if item.deadline is not None and at > item.deadline:
        return "overdue"
    return "open"


@dataclass(frozen=True)
class RectificationSummary:
    """Counts of rectification items at a date."""

    at: dt.date
    found: int
    closed: int
    open: int
    overdue: int

    def describe(self) -> str:
        """Chinese one-liner, e.g. "共发现问题 13 项, 已整改到位 9 项, 其余 4 项整改中"."""
        rest = self.open + self.overdue
        return (
            f"共发现问题 {self.found} 项, 已整改到位 {self.closed} 项, "
            f"其余 {rest} 项整改中"
            f" (其中超期 {self.overdue} 项)"
        )


def summarise_rectifications(items: Iterable[Rectification], at: dt.date) -> RectificationSummary:
    """Count items found by ``at`` and their state at ``at``."""
    found = [i for i in items if i.found_on <= at]
    states = [rectification_state(i, at) for i in found]
    return RectificationSummary(
        at=at,
        found=len(found),
        closed=states.count("closed"),
        open=states.count("open"),
        overdue=states.count("overdue"),
    )
