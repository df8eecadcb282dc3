"""Rich rendering of a QC report (质检报告) for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from yizhangtu.qc import CHECK_TITLES, SEVERITY_TITLES, QCReport
from yizhangtu.qc._geom import fmt_area

__all__ = ["render_qc_report"]

_SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _location(x: float | None, y: float | None) -> str:
    if x is None or y is None:
        return ""
    # 6 decimals: ≈0.1 m in lon/lat; trailing zeros dropped for projected metres.
    return ", ".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in (x, y))


def render_qc_report(report: QCReport, console: Console, *, max_rows: int | None = None) -> None:
    """Print the findings as a table, then a summary line.

    Parameters
    ----------
    report : QCReport
    console : rich.console.Console
    max_rows : int, optional
        Show at most this many findings (all kept findings when ``None``).
    """
    title = "质检报告" + (f": {report.file}" if report.file else "")
    findings = report.findings if max_rows is None else report.findings[:max_rows]
    if findings:
        table = Table(title=title, show_lines=False, header_style="bold")
        for name, kw in (
            ("检查项", {"no_wrap": True}),
            ("级别", {"no_wrap": True}),
            ("要素", {}),
            ("字段", {}),
            ("说明", {"ratio": 1}),
            ("位置", {"no_wrap": True}),
            ("面积(㎡)", {"justify": "right", "no_wrap": True}),
        ):
            table.add_column(name, **kw)
        for f in findings:
            other = f" / {f.other}" if f.other is not None else ""
            table.add_row(
                Text(CHECK_TITLES.get(f.check, f.check)),
                Text(
                    SEVERITY_TITLES.get(f.severity, f.severity),
                    style=_SEVERITY_STYLES.get(f.severity, ""),
                ),
                Text("" if f.feature is None else f"{f.feature}{other}"),
                Text(f.field or ""),
                Text(f.message),
                Text(_location(f.x, f.y)),
                Text("" if f.area_m2 is None else fmt_area(f.area_m2)),
            )
        console.print(table)
    else:
        console.print(Text(title, style="bold"))

    sc = report.severity_counts
    shown = len(findings)
    total = sum(report.counts.values())
    summary = Text()
    summary.append(
        "通过" if report.ok else "未通过", style="bold green" if report.ok else "bold red"
    )
    summary.append(
        f": {report.feature_count} 个要素, 运行 {len(report.checks_run)} 项检查; "
        f"错误 {sc.get('error', 0)} 条, 警告 {sc.get('warning', 0)} 条, 提示 {sc.get('info', 0)} 条"
    )
    if shown < total:
        summary.append(f" (显示 {shown} / {total} 条)")
    console.print(summary)
    omitted = report.truncated
    if omitted:
        parts = ", ".join(f"{CHECK_TITLES.get(c, c)} {n} 条" for c, n in omitted.items())
        console.print(Text(f"报告中未列出: {parts} (计数为全部)", style="dim"))
