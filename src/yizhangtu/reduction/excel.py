"""Excel (xlsx) for the reduction ledger: import targets, export the ledger (台账).

Functions take and return bytes; reading and writing files is the caller's business.

Targets workbook (sheet 目标, or the first sheet), one row per target:
单位代码, 单位名称, 层级 (市/区/乡镇), 上级代码, 目标类型 (总目标/年度目标), 年份,
目标面积(平方公里) — or (公顷) / (亩) / (平方米) —, 依据, 备注, 合成数据 (是/否).

Ledger workbook: 说明, 进度, 区级台账, 乡镇台账, 地块验收, 复建预警, 指标联动, 增减挂钩; Chinese
headers with their units; areas in 公顷 in the ledger sheets and 平方公里 in 进度.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from yizhangtu.errors import FileFormatError, ValidationError, YizhangtuError
from yizhangtu.geo.area import AREA_UNITS
from yizhangtu.reduction.model import (
    LEVEL_LABELS,
    STATUS_LABELS,
    TARGET_KIND_LABELS,
    VERDICT_LABELS,
    BalanceRow,
    ProgressRow,
    RebuildAlert,
    Target,
    Transfer,
)

__all__ = [
    "LEDGER_SHEETS",
    "TARGET_HEADERS",
    "ledger_to_xlsx",
    "targets_from_xlsx",
    "targets_to_xlsx",
]

#: Target sheet headers → field (area headers carry their unit).
TARGET_HEADERS: dict[str, str] = {
    "单位代码": "unit_code",
    "单位名称": "unit_name",
    "层级": "level",
    "上级代码": "parent_code",
    "目标类型": "kind",
    "年份": "year",
    "依据": "clause",
    "备注": "note",
    "合成数据": "synthetic",
}
_AREA_HEADERS = {
    "目标面积(平方公里)": "km2",
    "目标面积(公顷)": "ha",
    "目标面积(亩)": "mu",
    "目标面积(平方米)": "m2",
}

#: Sheet names of the ledger workbook, in order.
LEDGER_SHEETS: tuple[str, ...] = (
    "说明",
    "进度",
    "区级台账",
    "乡镇台账",
    "地块验收",
    "复建预警",
    "指标联动",
    "增减挂钩",
)

_HA = AREA_UNITS["ha"]
_KM2 = AREA_UNITS["km2"]

_LEDGER_HEADERS: list[tuple[str, str, float | None]] = [
    ("单位代码", "unit_code", None),
    ("单位名称", "unit_name", None),
    ("上级代码", "parent_code", None),
    ("年度", "year", None),
    ("上年城乡建设用地(公顷)", "stock_prev_m2", _HA),
    ("本年城乡建设用地(公顷)", "stock_m2", _HA),
    ("净减量(公顷)", "net_m2", _HA),
    ("退出城乡建设用地(公顷)", "removed_m2", _HA),
    ("其中: 验收地块减量(公顷)", "accepted_m2", _HA),
    ("其中: 其他减少(公顷)", "other_removed_m2", _HA),
    ("新增城乡建设用地(公顷)", "added_m2", _HA),
    ("核对差(平方米)", "residual_m2", 1.0),
    ("调查覆盖变化(平方米)", "coverage_change_m2", 1.0),
    ("地块数", "plots", None),
    ("已减量", "plots_reduced", None),
    ("部分减量", "plots_partial", None),
    ("未减量", "plots_not_reduced", None),
    ("其他", "plots_other", None),
    ("上年调查", "baseline_label", None),
    ("本年调查", "survey_label", None),
    ("溯源号", "provenance_id", None),
]

_ACCEPT_HEADERS: list[tuple[str, str, float | None]] = [
    ("年度", "year", None),
    ("地块编号", "plot_id", None),
    ("乡镇", "township", None),
    ("地块类型", "plot_type", None),
    ("权属", "ownership", None),
    ("减量后用途", "planned_use", None),
    ("地块面积(平方米)", "area_m2", 1.0),
    ("基期城乡建设用地(平方米)", "base_m2", 1.0),
    ("现状城乡建设用地(平方米)", "remaining_m2", 1.0),
    ("退出城乡建设用地(平方米)", "reduced_m2", 1.0),
    ("新增城乡建设用地(平方米)", "new_m2", 1.0),
    ("退出占比", "share", None),
    ("验收结论", "verdict_label", None),
    ("计入验收减量", "counted_label", None),
    ("计入面积(平方米)", "counted_m2", 1.0),
    ("说明", "message", None),
    ("地块快照", "plot_snapshot", None),
    ("基期调查", "baseline_label", None),
    ("验收调查", "survey_label", None),
    ("调查快照哈希", "survey_hash", None),
    ("政策包", "policy", None),
    ("溯源号", "provenance_id", None),
]


def _norm(text: object) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)).strip())


def _open(data: bytes, file: str | None) -> Any:
    from openpyxl import load_workbook

    try:
        return load_workbook(io.BytesIO(data), data_only=True, read_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a bad file
        raise FileFormatError(
            f"无法读取 Excel 文件: {exc}",
            key="xlsx_unreadable",
            file=file,
            hint="请另存为 .xlsx 后重试",
        ) from None


def targets_from_xlsx(data: bytes, *, file: str | None = None) -> list[Target]:
    """Targets from a bureau workbook (see module docstring).

    Raises
    ------
    FileFormatError
        Not an xlsx, or no header row; ValidationError for bad rows (row number given).
    """
    wb = _open(data, file)
    ws = wb["目标"] if "目标" in wb.sheetnames else wb[wb.sheetnames[0]]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    if not rows:
        raise FileFormatError("目标表为空", key="reduction_targets_empty", file=file)
    header = [_norm(h) if h is not None else "" for h in rows[0]]
    cols: dict[str, int] = {}
    area_col: tuple[int, str] | None = None
    for i, h in enumerate(header):
        if h in TARGET_HEADERS:
            cols[TARGET_HEADERS[h]] = i
        elif h in _AREA_HEADERS and area_col is None:
            area_col = (i, _AREA_HEADERS[h])
    missing = [h for h, f in TARGET_HEADERS.items() if f in ("unit_code", "year") and f not in cols]
    if area_col is None:
        missing.append("目标面积(平方公里)")
    if missing:
        raise FileFormatError(
            "目标表缺少列: " + "、".join(missing),
            key="reduction_targets_columns",
            file=file,
            field=missing[0],
            hint="表头: " + "、".join([*TARGET_HEADERS, "目标面积(平方公里)"]),
        )
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if r is None or all(v is None or str(v).strip() == "" for v in r):
            continue

        def get(field: str, row: tuple[Any, ...] = r) -> Any:
            i = cols.get(field)
            return None if i is None or i >= len(row) else row[i]

        try:
            value = r[area_col[0]]
            if value is None or str(value).strip() == "":
                raise ValidationError("目标面积为空", key="reduction_target_area", field="目标面积")
            code = str(get("unit_code")).strip().removesuffix(".0")
            parent = get("parent_code")
            out.append(
                Target(
                    unit_code=code,
                    unit_name=str(get("unit_name") or code).strip(),
                    level=get("level") or "township",
                    kind=get("kind") or "total",
                    year=int(float(str(get("year")))),
                    target_m2=float(value) * AREA_UNITS[area_col[1]],
                    parent_code=None if parent is None else str(parent).strip().removesuffix(".0"),
                    clause=None if get("clause") is None else str(get("clause")),
                    synthetic=str(get("synthetic") or "").strip()
                    in ("是", "true", "True", "1", "Y", "y"),
                    note=None if get("note") is None else str(get("note")),
                )
            )
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"目标表第 {n} 行无法读取: {exc}", key="reduction_target_row", file=file, feature=n
            ) from None
        except YizhangtuError as exc:
            raise ValidationError(
                f"目标表第 {n} 行: {exc.message}",
                key=exc.key,
                file=file,
                feature=n,
                field=exc.detail.field,
                hint=exc.hint,
            ) from None
    return out


def targets_to_xlsx(targets: Iterable[Target]) -> bytes:
    """Write targets as a workbook that :func:`targets_from_xlsx` reads back."""
    rows = [
        [
            t.unit_code,
            t.unit_name,
            LEVEL_LABELS[t.level],
            t.parent_code,
            TARGET_KIND_LABELS[t.kind],
            t.year,
            t.target_m2 / _KM2,
            t.clause,
            t.note,
            "是" if t.synthetic else "否",
        ]
        for t in targets
    ]
    return _book(
        [
            (
                "目标",
                [
                    "单位代码",
                    "单位名称",
                    "层级",
                    "上级代码",
                    "目标类型",
                    "年份",
                    "目标面积(平方公里)",
                    "依据",
                    "备注",
                    "合成数据",
                ],
                rows,
            )
        ]
    )


def _frame_rows(
    df: pd.DataFrame, spec: Sequence[tuple[str, str, float | None]]
) -> tuple[list[str], list[list[Any]]]:
    headers = [h for h, _, _ in spec]
    rows = []
    for r in df.to_dict("records") if len(df) else []:
        row = []
        for _, key, div in spec:
            v = r.get(key)
            if v is not None and not isinstance(v, str) and pd.isna(v):
                v = None
            if div is not None and v is not None:
                v = float(v) / div
            elif hasattr(v, "item"):
                v = v.item()
            row.append(v)
        rows.append(row)
    return headers, rows


def _book(sheets: Sequence[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for name, headers, rows in sheets:
        ws = wb.create_sheet(name)
        ws.append(headers)
        for c in ws[1]:
            c.font = bold
            c.fill = fill
            c.alignment = Alignment(wrap_text=True, vertical="center")
        for r in rows:
            ws.append(r)
        for row in ws.iter_rows(min_row=2):
            for c in row:
                if isinstance(c.value, float):
                    c.number_format = "0.0000"
        for i, h in enumerate(headers, start=1):
            width = max(
                [len(str(h)) * 2]
                + [min(len(str(r[i - 1])) if r[i - 1] is not None else 0, 60) for r in rows[:200]]
            )
            ws.column_dimensions[ws.cell(1, i).column_letter].width = max(8, min(width + 2, 62))
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _fmt(v: float | None, div: float = _KM2, nd: int = 4) -> float | None:
    return None if v is None else round(v / div, nd)


def ledger_to_xlsx(
    *,
    district: pd.DataFrame,
    township: pd.DataFrame,
    acceptance: pd.DataFrame,
    progress: Sequence[ProgressRow],
    rebuild: Sequence[RebuildAlert] = (),
    transfers: Sequence[Transfer] = (),
    balance: Sequence[BalanceRow] = (),
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Build the ledger workbook (台账): one sheet per level plus plots, alerts and transfers."""
    meta = dict(meta or {})
    about = [
        [k, v if isinstance(v, str | int | float) or v is None else str(v)] for k, v in meta.items()
    ]
    prog_headers = [
        "数据来源",
        "层级",
        "单位代码",
        "单位名称",
        "截至年度",
        "目标(平方公里)",
        "期限",
        "累计验收减量(平方公里)",
        "累计净减量(平方公里)",
        "完成率(%)",
        "剩余年数",
        "所需年均净减量(平方公里)",
        "实际年均净减量(平方公里)",
        "当年年度目标(平方公里)",
        "当年净减量(平方公里)",
        "状态",
        "说明",
        "备注",
    ]
    prog_rows = [
        [
            "报告数 (种子 002)" if p.source == "reported" else "本系统计算",
            LEVEL_LABELS.get(p.level, p.level),
            p.unit_code,
            p.unit_name,
            p.year,
            _fmt(p.target_m2),
            p.horizon_year,
            _fmt(p.accepted_m2),
            _fmt(p.net_m2),
            None if p.percent_complete is None else round(p.percent_complete, 2),
            p.years_left,
            _fmt(p.required_pace_m2),
            _fmt(p.achieved_pace_m2),
            _fmt(p.annual_target_m2),
            _fmt(p.annual_net_m2),
            STATUS_LABELS.get(p.status, p.status),
            p.message,
            p.note,
        ]
        for p in progress
    ]
    acc = acceptance.copy()
    if len(acc):
        acc["verdict_label"] = acc["verdict"].map(VERDICT_LABELS).fillna(acc["verdict"])
        acc["counted_label"] = acc["counted"].map(lambda v: "是" if bool(v) else "否")
        acc["policy"] = (
            acc["policy_id"].astype(str) + " " + acc["policy_version"].astype(str)
            if "policy_id" in acc.columns
            else None
        )
    dh, dr = _frame_rows(district, _LEDGER_HEADERS)
    th, tr = _frame_rows(township, _LEDGER_HEADERS)
    ah, ar = _frame_rows(acc, _ACCEPT_HEADERS)
    rb_rows = [
        [
            a.plot_id,
            a.township,
            a.accepted_year,
            a.survey_label,
            a.survey_year,
            round(a.rebuilt_m2, 2),
            round(a.plot_area_m2, 2),
            "是" if a.alert else "否",
            a.message,
            a.provenance_id,
        ]
        for a in rebuild
    ]
    tf_rows = [
        [
            t.transfer_id,
            t.from_unit,
            t.to_unit,
            t.year,
            round(t.quota_m2 / _HA, 4),
            t.ratio,
            round(t.received_m2 / _HA, 4),
            t.population_credit,
            t.output_credit_wan_yuan,
            "、".join(t.compensation),
            t.terms,
        ]
        for t in transfers
    ]
    bl_rows = [
        [
            b.unit_code,
            b.unit_name,
            b.year,
            round(b.added_m2 / _HA, 4),
            round(b.own_m2 / _HA, 4),
            round(b.sent_m2 / _HA, 4),
            round(b.received_m2 / _HA, 4),
            round(b.allowance_m2 / _HA, 4),
            {"balanced": "平衡", "over": "超出", "overdrawn": "指标透支"}.get(b.status, b.status),
            b.message,
        ]
        for b in balance
    ]
    return _book(
        [
            ("说明", ["项目", "内容"], about),
            ("进度", prog_headers, prog_rows),
            ("区级台账", dh, dr),
            ("乡镇台账", th, tr),
            ("地块验收", ah, ar),
            (
                "复建预警",
                [
                    "地块编号",
                    "乡镇",
                    "验收年度",
                    "调查快照",
                    "调查年度",
                    "复建面积(平方米)",
                    "地块面积(平方米)",
                    "预警",
                    "说明",
                    "溯源号",
                ],
                rb_rows,
            ),
            (
                "指标联动",
                [
                    "编号",
                    "转出地(疏解地)",
                    "承接地",
                    "年度",
                    "转出指标(公顷)",
                    "比例",
                    "承接指标(公顷)",
                    "人口承接(人)",
                    "产值分计(万元)",
                    "补偿方式",
                    "补偿条款",
                ],
                tf_rows,
            ),
            (
                "增减挂钩",
                [
                    "单位代码",
                    "单位名称",
                    "截至年度",
                    "新增城乡建设用地(公顷)",
                    "自身减量(公顷)",
                    "转出指标(公顷)",
                    "承接指标(公顷)",
                    "可用指标(公顷)",
                    "结论",
                    "说明",
                ],
                bl_rows,
            ),
        ]
    )
