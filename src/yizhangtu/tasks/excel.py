"""Excel (xlsx) import and export of the task ledger, with Chinese headers.

Workbook layout (one sheet each; only 任务 is required on import):

- 任务: 编号, 任务名称, 条款, 所属部分, 牵头单位, 配合单位, 开始日期, 截止日期, 工作内容, 备注,
  责任单位原文, 单位未列尽 (是/否: 原文有"等部门")
- 量化目标: 任务编号, 目标编号, 指标名称, 比较, 目标值, 单位, 范围, 期限, 条款, 原文, 备注, 基数,
  基数年份, 解读推定 (是/否)
- 进度报送: 任务编号, 报送日期, 进度(%), 进展情况, 佐证材料, 报送人, 目标实际值
  (``目标编号=数值``, several separated by ``;``)
- 整改事项: 编号, 问题, 类别, 责任单位, 发现日期, 整改期限, 销号日期, 佐证材料, 来源, 备注,
  合成数据 (是/否)
- 单位名录: 名称, 全称, 类别, 别名 (``、``-separated); when present it replaces the packaged list

Lists inside a cell (配合单位, 佐证材料, 别名) are separated by ``、`` or ``;``. Functions take
and return bytes; reading or writing files is the caller's business.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from yizhangtu.errors import FileFormatError, ValidationError
from yizhangtu.tasks.departments import DepartmentRegistry, load_departments, registry_from_records
from yizhangtu.tasks.model import (
    ProgressReport,
    TaskLedger,
    progress_from_mapping,
    rectification_from_mapping,
    task_from_mapping,
    validate_ledger,
)

__all__ = ["SHEETS", "ledger_from_xlsx", "ledger_to_xlsx", "reports_from_xlsx", "write_sheet"]

#: sheet → [(Chinese header, key)].
SHEETS: dict[str, list[tuple[str, str]]] = {
    "任务": [
        ("编号", "id"),
        ("任务名称", "title"),
        ("条款", "clause"),
        ("所属部分", "section"),
        ("牵头单位", "lead"),
        ("配合单位", "co"),
        ("开始日期", "start"),
        ("截止日期", "deadline"),
        ("工作内容", "summary"),
        ("备注", "note"),
        ("责任单位原文", "departments_quote"),
        ("单位未列尽", "departments_open"),
    ],
    "量化目标": [
        ("任务编号", "task_id"),
        ("目标编号", "id"),
        ("指标名称", "name"),
        ("比较", "comparator"),
        ("目标值", "value"),
        ("单位", "unit"),
        ("范围", "scope"),
        ("期限", "due"),
        ("条款", "clause"),
        ("原文", "quote"),
        ("备注", "note"),
        ("基数", "baseline"),
        ("基数年份", "baseline_year"),
        ("解读推定", "derived"),
    ],
    "进度报送": [
        ("任务编号", "task_id"),
        ("报送日期", "reported_on"),
        ("进度(%)", "progress_pct"),
        ("进展情况", "note"),
        ("佐证材料", "evidence"),
        ("报送人", "reporter"),
        ("目标实际值", "actuals"),
    ],
    "整改事项": [
        ("编号", "id"),
        ("问题", "title"),
        ("类别", "category"),
        ("责任单位", "responsible"),
        ("发现日期", "found_on"),
        ("整改期限", "deadline"),
        ("销号日期", "closed_on"),
        ("佐证材料", "evidence"),
        ("来源", "source"),
        ("备注", "note"),
        ("合成数据", "synthetic"),
    ],
    "单位名录": [("名称", "name"), ("全称", "full_name"), ("类别", "kind"), ("别名", "aliases")],
}


def write_sheet(
    wb: Any,
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    widths: Mapping[int, int] | None = None,
) -> Any:
    """Append a sheet with a bold, frozen header row; dates formatted ``yyyy-mm-dd``."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.append(list(headers))
    for c in ws[1]:
        c.font = Font(bold=True)
        c.fill = PatternFill("solid", fgColor="DDE6F0")
        c.alignment = Alignment(vertical="center", wrap_text=True)
    for r in rows:
        ws.append(list(r))
    for row in ws.iter_rows(min_row=2):
        for c in row:
            if isinstance(c.value, dt.date):
                c.number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A2"
    for i, h in enumerate(headers, start=1):
        w = (widths or {}).get(i) or max(8, min(40, 2 * len(str(h)) + 4))
        ws.column_dimensions[get_column_letter(i)].width = w
    return ws


def _join(items: Iterable[str]) -> str:
    return "、".join(items)


def ledger_to_xlsx(ledger: TaskLedger, registry: DepartmentRegistry | None = None) -> bytes:
    """Export the ledger (and the department list, if given) as xlsx bytes."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    write_sheet(
        wb,
        "任务",
        [h for h, _ in SHEETS["任务"]],
        (
            [
                t.id,
                t.title,
                t.clause,
                t.section,
                t.lead,
                _join(t.co),
                t.start,
                t.deadline,
                t.summary,
                t.note,
                t.departments_quote,
                "是" if t.departments_open else "否",
            ]
            for t in ledger.tasks
        ),
        widths={2: 28, 9: 60},
    )
    write_sheet(
        wb,
        "量化目标",
        [h for h, _ in SHEETS["量化目标"]],
        (
            [
                t.id,
                g.id,
                g.name,
                g.comparator,
                g.value,
                g.unit,
                g.scope,
                g.due,
                g.clause,
                g.quote,
                g.note,
                g.baseline,
                g.baseline_year,
                "是" if g.derived else "否",
            ]
            for t in ledger.tasks
            for g in t.targets
        ),
        widths={3: 30, 10: 50},
    )
    write_sheet(
        wb,
        "进度报送",
        [h for h, _ in SHEETS["进度报送"]],
        (
            [
                r.task_id,
                r.reported_on,
                r.progress_pct,
                r.note,
                _join(r.evidence),
                r.reporter,
                "; ".join(f"{k}={v:g}" for k, v in r.actuals.items()),
            ]
            for r in ledger.reports
        ),
        widths={4: 40, 5: 40},
    )
    write_sheet(
        wb,
        "整改事项",
        [h for h, _ in SHEETS["整改事项"]],
        (
            [
                x.id,
                x.title,
                x.category,
                x.responsible,
                x.found_on,
                x.deadline,
                x.closed_on,
                _join(x.evidence),
                x.source,
                x.note,
                "是" if x.synthetic else "否",
            ]
            for x in ledger.rectifications
        ),
        widths={2: 36, 8: 36},
    )
    if registry is not None:
        write_sheet(
            wb,
            "单位名录",
            [h for h, _ in SHEETS["单位名录"]],
            ([d.name, d.full_name, d.kind, _join(d.aliases)] for d in registry.departments),
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rows(ws: Any, sheet: str, file: str | None) -> list[tuple[int, dict[str, Any]]]:
    spec = SHEETS[sheet]
    by_header = {h: k for h, k in spec} | {k: k for _, k in spec}
    it = ws.iter_rows(values_only=True)
    try:
        header = next(it)
    except StopIteration:
        return []
    cols: dict[int, str] = {}
    for i, h in enumerate(header):
        if h is None:
            continue
        key = by_header.get(str(h).strip())
        if key:
            cols[i] = key
    required = {
        "任务": ("id", "title", "lead"),
        "进度报送": ("task_id", "reported_on", "progress_pct"),
        "整改事项": ("id", "title", "responsible", "found_on"),
        "量化目标": ("task_id", "name", "value"),
        "单位名录": ("name",),
    }[sheet]
    missing = [h for h, k in spec if k in required and k not in cols.values()]
    if missing:
        raise ValidationError(
            f"工作表「{sheet}」缺少列: " + "、".join(missing),
            key="xlsx_missing_column",
            file=file,
            hint="列名: " + "、".join(h for h, _ in spec),
        )
    out = []
    for n, row in enumerate(it, start=2):
        rec = {cols[i]: v for i, v in enumerate(row) if i in cols}
        if all(v is None or str(v).strip() == "" for v in rec.values()):
            continue
        out.append((n, rec))
    return out


def _located(e: ValidationError, sheet: str, n: int, file: str | None) -> ValidationError:
    return ValidationError(
        f"{e.message} (工作表「{sheet}」第 {n} 行)",
        key=e.key,
        file=file,
        feature=f"{sheet}!{n}",
        field=e.detail.field,
        hint=e.hint,
        data=e.data,
    )


def _actuals(text: Any) -> dict[str, Any]:
    if text is None or str(text).strip() == "":
        return {}
    out: dict[str, Any] = {}
    for part in str(text).replace("；", ";").split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValidationError(
                f"目标实际值格式应为 目标编号=数值: {part!r}", key="actuals_invalid"
            )
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def ledger_from_xlsx(
    data: bytes, registry: DepartmentRegistry | None = None, *, file: str | None = None
) -> TaskLedger:
    """Import a ledger from xlsx bytes (see module docstring for the layout).

    Raises
    ------
    FileFormatError
        Not an xlsx workbook, or no 任务 sheet.
    ValidationError
        A bad row, located by sheet and row number (unknown department, deadline before
        start, progress above 100 %, …).
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for a bad file
        raise FileFormatError(
            f"无法读取 Excel 文件: {e}",
            key="xlsx_unreadable",
            file=file,
            hint="请提供 .xlsx 格式的工作簿",
        ) from None
    if "任务" not in wb.sheetnames:
        raise FileFormatError(
            "Excel 文件中没有「任务」工作表",
            key="xlsx_no_tasks",
            file=file,
            hint="工作表: " + "、".join(SHEETS),
        )
    if "单位名录" in wb.sheetnames:
        recs = []
        for _n, r in _rows(wb["单位名录"], "单位名录", file):
            r = dict(r)
            r["aliases"] = [
                a for a in str(r.get("aliases") or "").replace(";", "、").split("、") if a.strip()
            ]
            recs.append(r)
        try:
            registry = registry_from_records(recs, source="Excel 单位名录")
        except ValidationError as e:
            raise _located(e, "单位名录", 0, file) from None
    reg = registry or load_departments("hunan")
    targets: dict[str, list[dict[str, Any]]] = {}
    if "量化目标" in wb.sheetnames:
        for _n, r in _rows(wb["量化目标"], "量化目标", file):
            r = dict(r)
            r["derived"] = str(r.get("derived") or "").strip() in ("是", "True", "true", "1")
            targets.setdefault(str(r.pop("task_id")).strip(), []).append(r)
    tasks = []
    for n, r in _rows(wb["任务"], "任务", file):
        r = dict(r)
        r["id"] = str(r.get("id") or "").strip()
        r["targets"] = targets.pop(r["id"], [])
        r["departments_open"] = str(r.get("departments_open") or "").strip() in (
            "是",
            "True",
            "true",
            "1",
            "Y",
            "y",
        )
        try:
            tasks.append(task_from_mapping(r, reg))
        except ValidationError as e:
            raise _located(e, "任务", n, file) from None
    if targets:
        raise ValidationError(
            "「量化目标」引用了不存在的任务编号: " + "、".join(sorted(targets)),
            key="task_not_found",
            file=file,
        )
    reports = []
    if "进度报送" in wb.sheetnames:
        for n, r in _rows(wb["进度报送"], "进度报送", file):
            try:
                r = dict(r)
                r["actuals"] = _actuals(r.get("actuals"))
                reports.append(progress_from_mapping(r))
            except ValidationError as e:
                raise _located(e, "进度报送", n, file) from None
    rect = []
    if "整改事项" in wb.sheetnames:
        for n, r in _rows(wb["整改事项"], "整改事项", file):
            try:
                r = dict(r)
                r["synthetic"] = str(r.get("synthetic") or "").strip() in (
                    "是",
                    "True",
                    "true",
                    "1",
                )
                rect.append(rectification_from_mapping(r, reg))
            except ValidationError as e:
                raise _located(e, "整改事项", n, file) from None
    try:
        return validate_ledger(tasks, reports, rect)
    except ValidationError as e:
        raise ValidationError(
            e.message, key=e.key, file=file, feature=e.detail.feature, hint=e.hint
        ) from None


def reports_from_xlsx(data: bytes, *, file: str | None = None) -> tuple[ProgressReport, ...]:
    """Read only the 进度报送 sheet of a workbook (a periodic progress submission).

    Raises
    ------
    FileFormatError
        Not an xlsx workbook, or no 进度报送 sheet.
    ValidationError
        A bad row (e.g. progress above 100 %), located by row number.
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for a bad file
        raise FileFormatError(
            f"无法读取 Excel 文件: {e}", key="xlsx_unreadable", file=file
        ) from None
    if "进度报送" not in wb.sheetnames:
        raise FileFormatError(
            "Excel 文件中没有「进度报送」工作表", key="xlsx_no_progress", file=file
        )
    out = []
    for n, r in _rows(wb["进度报送"], "进度报送", file):
        try:
            r = dict(r)
            r["actuals"] = _actuals(r.get("actuals"))
            out.append(progress_from_mapping(r))
        except ValidationError as e:
            raise _located(e, "进度报送", n, file) from None
    return tuple(out)
