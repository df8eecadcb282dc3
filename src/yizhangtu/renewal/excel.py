"""Unit lists as openpyxl workbooks with Chinese headers (改造单元清单).

Pure conversions between units and :class:`openpyxl.Workbook` objects; opening and saving
files is the caller's job. Sheet ``改造单元`` holds one unit per row, sheet ``权益人名册`` one
rights-holder per row. Headers may be Chinese (as exported) or the English field names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from yizhangtu.errors import ErrorDetail, InputError, ValidationError
from yizhangtu.renewal.model import RenewalUnit, unit_from_record, unit_to_record

__all__ = [
    "HEADERS",
    "HOLDERS_SHEET",
    "HOLDER_HEADERS",
    "UNITS_SHEET",
    "units_from_workbook",
    "units_to_workbook",
]

UNITS_SHEET = "改造单元"
HOLDERS_SHEET = "权益人名册"
NOTES_SHEET = "说明"

#: Record field → Chinese header.
HEADERS: dict[str, str] = {
    "unit_id": "单元编号",
    "name": "单元名称",
    "town": "镇街",
    "unit_type": "改造类型",
    "mode": "改造模式",
    "land_area_m2": "用地面积(㎡)",
    "stage": "阶段",
    "stage_since": "阶段起始日",
    "area_id": "所属中圈/片区编号",
    "old_village_led": "旧村改造为主",
    "consent_area_share": "改造意愿面积占比",
    "consent_head_share": "改造意愿人数占比",
    "consent_as_of": "意愿统计日期",
    "signing_area_share": "签约面积占比",
    "signing_head_share": "签约人数占比",
    "signing_as_of": "签约统计日期",
    "declared_on": "申报日期",
    "entity_confirmed_on": "确认实施主体日期",
    "acquisition_completed_on": "完成权益收购日期",
    "plan_approved_on": "实施方案批复日期",
    "land_supplied_on": "供地日期",
    "first_demolition_on": "首期拆除日期",
    "completed_on": "改造完成日期",
    "land_price_yuan": "地价(元)",
    "balance_coefficient": "平衡系数",
    "collective_revenue_yuan": "集体总收益(元)",
    "collective_reinvested_yuan": "集体再投入(元)",
    "fiscal_contribution": "承诺财政贡献",
    "floor_area_m2": "建筑面积(㎡)",
    "parking_spaces": "停车位(个)",
    "deadline_exemption": "逾期免责事由",
    "expropriation_requested": "申请提请征收",
    "suspended_from": "暂停前阶段",
    "barred_until": "禁止重启截止日",
    "synthetic": "合成数据",
    "version": "版本号",
    "history": "阶段历史(JSON)",
}

HOLDER_HEADERS: dict[str, str] = {
    "unit_id": "单元编号",
    "holder_id": "权益人编号",
    "land_area_m2": "权益土地面积(㎡)",
    "heads": "人数",
    "consented": "同意改造",
    "signed": "已签约",
}

_REQUIRED = ("unit_id", "town", "unit_type", "mode", "land_area_m2")
_SHARE_FIELDS = (
    "consent_area_share",
    "consent_head_share",
    "signing_area_share",
    "signing_head_share",
)


def _cell_out(value: Any) -> Any:
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def units_to_workbook(units: Iterable[RenewalUnit], title: str | None = None) -> Workbook:
    """Build a workbook listing ``units`` (Chinese headers); synthetic lists say so."""
    us = list(units)
    wb = Workbook()
    ws = wb.active
    ws.title = UNITS_SHEET
    fields = list(HEADERS)
    ws.append([HEADERS[f] for f in fields])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for u in us:
        rec = unit_to_record(u)
        ws.append([_cell_out(rec.get(f)) for f in fields])
    for col, f in enumerate(fields, start=1):
        if f in _SHARE_FIELDS:
            for row in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                row[0].number_format = "0.00%"
    hs = wb.create_sheet(HOLDERS_SHEET)
    hs.append(list(HOLDER_HEADERS.values()))
    for cell in hs[1]:
        cell.font = Font(bold=True)
    for u in us:
        for h in u.holders:
            hs.append(
                [
                    u.unit_id,
                    h.holder_id,
                    h.land_area_m2,
                    h.heads,
                    _cell_out(h.consented),
                    _cell_out(h.signed),
                ]
            )
    notes = wb.create_sheet(NOTES_SHEET)
    synthetic = any(u.synthetic for u in us)
    notes.append([(title or "改造单元清单") + ("(合成数据)" if synthetic else "")])
    notes.append(
        ["占比以小数或百分比填写(0.85 或 85%), 不能为负或超过 100%; 日期格式 YYYY-MM-DD。"]
    )
    notes.append(
        [
            "权益人名册中有记录的单元, 意愿和签约占比由名册计算(来源: computed); "
            "否则读取填报占比(来源: entered)。"
        ]
    )
    return wb


def _header_map(row: tuple[Any, ...], table: dict[str, str], sheet: str) -> dict[int, str]:
    reverse = {v: k for k, v in table.items()}
    out: dict[int, str] = {}
    for i, h in enumerate(row):
        if h is None:
            continue
        text = str(h).strip()
        name = reverse.get(text) or (text if text in table else None)
        if name is not None:
            if name in out.values():
                raise ValidationError(
                    f"工作表 {sheet} 的表头 {text} 重复", key="duplicate_header", field=text
                )
            out[i] = name
    return out


def _share(value: Any, field: str, feature: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValidationError(
                f"{HEADERS[field]} 不是数值: {value!r}",
                key="bad_share",
                field=field,
                feature=feature,
            ) from None
    return value


def units_from_workbook(wb: Workbook) -> list[RenewalUnit]:
    """Units read from a workbook made by :func:`units_to_workbook` or filled in by hand.

    Raises
    ------
    ValidationError
        Missing sheet or required column, or a bad cell; ``feature`` names the row
        (``改造单元!第N行``) and ``field`` the column.
    """
    if UNITS_SHEET not in wb.sheetnames:
        raise ValidationError(
            f"工作簿中没有工作表 {UNITS_SHEET}",
            key="missing_sheet",
            field=UNITS_SHEET,
            hint=f"把单元清单放在名为 {UNITS_SHEET} 的工作表中",
        )
    ws = wb[UNITS_SHEET]
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise ValidationError(f"工作表 {UNITS_SHEET} 为空", key="empty_sheet", field=UNITS_SHEET)
    cols = _header_map(header, HEADERS, UNITS_SHEET)
    missing = [f for f in _REQUIRED if f not in cols.values()]
    if missing:
        raise ValidationError(
            f"工作表 {UNITS_SHEET} 缺少必填列: {'、'.join(HEADERS[f] for f in missing)}",
            key="missing_column",
            field=HEADERS[missing[0]],
        )
    holders = _read_holders(wb)
    out: list[RenewalUnit] = []
    for n, row in enumerate(rows, start=2):
        if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        where = f"{UNITS_SHEET}!第{n}行"
        rec: dict[str, Any] = {name: row[i] if i < len(row) else None for i, name in cols.items()}
        for f in _SHARE_FIELDS:
            if f in rec:
                rec[f] = _share(rec[f], f, where)
        uid = str(rec.get("unit_id") or "").strip()
        if uid in holders:
            rec["holders"] = json.dumps(holders[uid], ensure_ascii=False)
        try:
            out.append(unit_from_record(rec))
        except InputError as exc:  # ValidationError and unknown enum values (parse_enum)
            exc.detail = ErrorDetail(
                file=exc.detail.file,
                feature=f"{where}({uid})" if uid else where,
                field=HEADERS.get(exc.detail.field or "", exc.detail.field),
            )
            raise
    ids = [u.unit_id for u in out]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValidationError(
            f"单元编号重复: {'、'.join(sorted(dup))}",
            key="duplicate_unit_id",
            field=HEADERS["unit_id"],
        )
    return out


def _yes(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return bool(value)
    return str(value).strip().lower() in ("是", "true", "yes", "y", "1", "√")


def _read_holders(wb: Workbook) -> dict[str, list[dict[str, Any]]]:
    if HOLDERS_SHEET not in wb.sheetnames:
        return {}
    rows = wb[HOLDERS_SHEET].iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        return {}
    cols = _header_map(header, HOLDER_HEADERS, HOLDERS_SHEET)
    out: dict[str, list[dict[str, Any]]] = {}
    for n, row in enumerate(rows, start=2):
        if row is None or all(v is None for v in row):
            continue
        rec = {name: row[i] if i < len(row) else None for i, name in cols.items()}
        uid = str(rec.get("unit_id") or "").strip()
        if not uid:
            raise ValidationError(
                f"{HOLDERS_SHEET}!第{n}行缺少单元编号",
                key="missing_field",
                field=HOLDER_HEADERS["unit_id"],
                feature=f"{HOLDERS_SHEET}!第{n}行",
            )
        area = rec.get("land_area_m2")
        heads = rec.get("heads")
        if not isinstance(area, int | float) or isinstance(area, bool):
            raise ValidationError(
                f"{HOLDERS_SHEET}!第{n}行的权益土地面积不是数值: {area!r}",
                key="bad_number",
                field=HOLDER_HEADERS["land_area_m2"],
                feature=f"{HOLDERS_SHEET}!第{n}行",
            )
        out.setdefault(uid, []).append(
            {
                "holder_id": str(rec.get("holder_id") or f"{uid}-{n}"),
                "land_area_m2": float(area),
                "heads": int(heads)
                if isinstance(heads, int | float) and not isinstance(heads, bool)
                else 1,
                "consented": _yes(rec.get("consented")),
                "signed": _yes(rec.get("signed")),
            }
        )
    return out
