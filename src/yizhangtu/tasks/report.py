"""Periodic dispatch report (调度报告) in HTML, PDF and xlsx — overdue items first."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

from yizhangtu.reports.pdf import html_to_pdf
from yizhangtu.tasks._data import packaged_text
from yizhangtu.tasks.model import Rectification, TaskLedger
from yizhangtu.tasks.status import (
    RECTIFICATION_LABELS,
    STATUS_LABELS,
    Alert,
    RectificationSummary,
    SupervisionPolicy,
    TaskState,
    evaluate_tasks,
    rectification_state,
    summarise_rectifications,
    supervision_policy,
    task_alerts,
)

__all__ = [
    "DispatchReport",
    "build_dispatch_report",
    "dispatch_html",
    "dispatch_pdf",
    "dispatch_xlsx",
    "html_to_pdf",
]

FONT_FAMILY = "Noto Sans CJK SC"


@dataclass(frozen=True)
class DispatchReport:
    """A dispatch report at one date: task states (overdue first), alerts, rectifications."""

    title: str
    at: dt.date
    states: tuple[TaskState, ...]
    alerts: tuple[Alert, ...]
    rectifications: tuple[tuple[Rectification, str], ...]
    rect_summary: RectificationSummary | None
    policy: SupervisionPolicy
    synthetic: bool = False
    source: str = ""

    def counts(self) -> dict[str, int]:
        """Count tasks per status, in report order."""
        c = Counter(s.status for s in self.states)
        return {k: c.get(k, 0) for k in self.policy.status_order}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "title": self.title,
            "at": self.at.isoformat(),
            "synthetic": self.synthetic,
            "counts": self.counts(),
            "alerts": [{"level": a.level, "ref": a.ref, "message": a.message} for a in self.alerts],
            "tasks": [s.to_dict() for s in self.states],
            "rectifications": [
                {
                    "id": r.id,
                    "title": r.title,
                    "responsible": r.responsible,
                    "state": st,
                    "state_label": RECTIFICATION_LABELS[st],
                    "found_on": r.found_on.isoformat(),
                    "deadline": r.deadline.isoformat() if r.deadline else None,
                    "closed_on": r.closed_on.isoformat() if r.closed_on else None,
                    "evidence": list(r.evidence),
                }
                for r, st in self.rectifications
            ],
            "rectification_summary": self.rect_summary.describe() if self.rect_summary else None,
        }


def build_dispatch_report(
    ledger: TaskLedger,
    at: dt.date,
    *,
    title: str | None = None,
    policy: SupervisionPolicy | None = None,
    synthetic: bool = False,
) -> DispatchReport:
    """Evaluate every task at ``at`` and assemble the dispatch report."""
    pol = policy or supervision_policy()
    states = evaluate_tasks(ledger.tasks, ledger.reports, at, pol)
    alerts = task_alerts(states, pol)
    rect_order = {"overdue": 0, "open": 1, "closed": 2}
    rects = sorted(
        ((r, rectification_state(r, at)) for r in ledger.rectifications if r.found_on <= at),
        key=lambda x: (rect_order[x[1]], x[0].deadline or dt.date.max, x[0].id),
    )
    for r, st in rects:
        if st == "overdue":
            alerts.insert(
                sum(1 for a in alerts if a.level == "overdue"),
                Alert(
                    "rectification_overdue",
                    r.id,
                    f"【整改超期】{r.id} {r.title}: 整改期限 "
                    f"{r.deadline.isoformat() if r.deadline else ''}, 责任单位 {r.responsible}",
                ),
            )
    summary = summarise_rectifications(ledger.rectifications, at) if ledger.rectifications else None
    base = title or (f"{ledger.title}调度报告" if ledger.title else "重点任务调度报告")
    if synthetic and "合成数据" not in base:
        base += "(合成数据)"
    return DispatchReport(
        title=base,
        at=at,
        states=tuple(states),
        alerts=tuple(alerts),
        rectifications=tuple(rects),
        rect_summary=summary,
        policy=pol,
        synthetic=synthetic,
        source=ledger.source,
    )


def _row(s: TaskState) -> dict[str, Any]:
    t = s.task
    lr = s.last_report
    targets = []
    for c in s.targets:
        txt = c.target.describe()
        if c.actual is not None:
            txt += f"; 实际 {c.actual:g}{c.target.unit} ({'已达标' if c.met else '未达标'})"
        targets.append(txt)
    return {
        "id": t.id,
        "title": t.title,
        "clause": t.clause,
        "lead": t.lead,
        "co": "、".join(t.co),
        "start": t.start.isoformat(),
        "deadline": t.deadline.isoformat(),
        "status": s.status,
        "status_label": s.status_label + ("(逾期完成)" if s.done_late else ""),
        "days_overdue": s.days_overdue,
        "progress": f"{s.progress_pct:g}%",
        "expected": f"{s.expected_pct:.0f}%",
        "last": lr.reported_on.isoformat() if lr else "未报送",
        "stale": s.stale,
        "note": lr.note if lr else "",
        "evidence": "、".join(lr.evidence) if lr else "",
        "targets": targets,
    }


def dispatch_context(report: DispatchReport) -> dict[str, Any]:
    """Template context of the HTML report."""
    counts = report.counts()
    return {
        "title": report.title,
        "at": report.at.isoformat(),
        "source": report.source,
        "synthetic": report.synthetic,
        "n_tasks": len(report.states),
        "counts": [{"status": k, "label": STATUS_LABELS[k], "n": n} for k, n in counts.items()],
        "rect_summary": report.rect_summary.describe() if report.rect_summary else "",
        "alerts": report.alerts,
        "rows": [_row(s) for s in report.states],
        "rect_rows": [
            {
                "id": r.id,
                "title": r.title,
                "responsible": r.responsible,
                "found_on": r.found_on.isoformat(),
                "deadline": r.deadline.isoformat() if r.deadline else "",
                "closed_on": r.closed_on.isoformat() if r.closed_on and st == "closed" else "",
                "evidence": "、".join(r.evidence),
                "label": RECTIFICATION_LABELS[st],
                "css": "rect-overdue" if st == "overdue" else st,
            }
            for r, st in report.rectifications
        ],
        "tolerance": f"{report.policy.behind_tolerance_pct:g}",
        "cycle": report.policy.report_cycle_days,
        "policy_source": report.policy.source,
    }


def dispatch_html(report: DispatchReport) -> str:
    """Render the dispatch report as a standalone HTML page."""
    import jinja2

    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True)
    )
    return env.from_string(packaged_text("templates/dispatch.html.j2")).render(
        **dispatch_context(report)
    )


def dispatch_pdf(report: DispatchReport) -> tuple[bytes, int]:
    """Render the dispatch report as PDF bytes, with its page count."""
    return html_to_pdf(dispatch_html(report))


def dispatch_xlsx(report: DispatchReport) -> bytes:
    """Render the dispatch report as an xlsx workbook (调度总表, 预警提醒, 整改事项, 说明)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    from yizhangtu.tasks.excel import write_sheet

    wb = Workbook()
    wb.remove(wb.active)
    fills = {"overdue": "F4C7C3", "behind": "FFE0A3", "on_track": "E3F3E4", "done": "EEEEEE"}
    headers = [
        "序号",
        "状态",
        "逾期天数",
        "编号",
        "任务",
        "条款",
        "牵头单位",
        "配合单位",
        "开始日期",
        "截止日期",
        "进度(%)",
        "线性进度(%)",
        "最近报送",
        "未按期报送",
        "进展情况",
        "佐证材料",
        "量化目标",
    ]
    rows = []
    for i, s in enumerate(report.states, start=1):
        r = _row(s)
        rows.append(
            [
                i,
                r["status_label"],
                s.days_overdue or None,
                r["id"],
                r["title"],
                r["clause"],
                r["lead"],
                r["co"],
                s.task.start,
                s.task.deadline,
                s.progress_pct,
                round(s.expected_pct, 1),
                s.last_report.reported_on if s.last_report else None,
                "是" if s.stale else "",
                r["note"],
                r["evidence"],
                "\n".join(r["targets"]),
            ]
        )
    ws = write_sheet(wb, "调度总表", headers, rows, widths={5: 28, 8: 30, 15: 36, 16: 30, 17: 40})
    for i, s in enumerate(report.states, start=2):
        ws.cell(row=i, column=2).fill = PatternFill("solid", fgColor=fills[s.status])
        if s.status == "overdue":
            ws.cell(row=i, column=2).font = Font(bold=True, color="B71C1C")
    write_sheet(
        wb,
        "预警提醒",
        ["类别", "编号", "内容"],
        (
            [
                {
                    "overdue": "逾期",
                    "due_soon": "临期",
                    "stale": "未按期报送",
                    "rectification_overdue": "整改超期",
                }[a.level],
                a.ref,
                a.message,
            ]
            for a in report.alerts
        ),
        widths={3: 90},
    )
    write_sheet(
        wb,
        "整改事项",
        ["状态", "编号", "问题", "责任单位", "发现日期", "整改期限", "销号日期", "佐证材料"],
        (
            [
                RECTIFICATION_LABELS[st],
                r.id,
                r.title,
                r.responsible,
                r.found_on,
                r.deadline,
                r.closed_on if st == "closed" else None,
                "、".join(r.evidence),
            ]
            for r, st in report.rectifications
        ),
        widths={3: 40, 8: 40},
    )
    notes: list[list[Any]] = [
        ["报告", report.title],
        ["调度日期", report.at],
        ["合成数据", "是" if report.synthetic else "否"],
        [
            "状态口径",
            f"滞后 = 报送进度低于线性进度 {report.policy.behind_tolerance_pct:g} 个百分点以上; "
            "逾期 = 超过截止日期未完成",
        ],
        ["阈值来源", report.policy.source],
    ]
    if report.rect_summary:
        notes.append(["整改情况", report.rect_summary.describe()])
    write_sheet(wb, "说明", ["项目", "内容"], notes, widths={2: 90})
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
