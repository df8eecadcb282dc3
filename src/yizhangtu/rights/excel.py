"""Rights rosters as openpyxl workbooks (权益人名册), Chinese headers, pure conversions.

Reading encrypts ID and phone numbers on the spot (the plain numbers never leave
:func:`read_roster`) and collects every problem of every row before raising one
:class:`~yizhangtu.errors.ValidationError` whose ``data['problems']`` lists them: malformed ID
(GB 11643 checksum), duplicate holders, shares of a parcel not summing to 1, consent dated
after signing, unknown references. Writing masks: an exported workbook holds no plain ID.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from yizhangtu.errors import ValidationError
from yizhangtu.rights.ids import (
    mask_id,
    mask_phone,
    validate_credit_code,
    validate_id_number,
    validate_phone,
)
from yizhangtu.rights.model import (
    AgreementRecord,
    Compensation,
    Holder,
    HolderKind,
    HolderStatus,
    Parcel,
    RecordKind,
    RecordStatus,
    RegistryProblem,
    RightsType,
    Share,
    Transfer,
    duplicate_holder_problems,
    parse_choice,
    raise_problems,
    record_problems,
    share_problems,
)
from yizhangtu.rights.protect import PIICipher

__all__ = [
    "COMPENSATION_HEADERS",
    "HOLDER_HEADERS",
    "PARCEL_HEADERS",
    "RECORD_HEADERS",
    "SHARE_HEADERS",
    "SHEETS",
    "TRANSFER_HEADERS",
    "Roster",
    "holders_to_workbook",
    "read_roster",
    "roster_template",
]

HOLDER_HEADERS: dict[str, str] = {
    "holder_id": "权益人编号",
    "name": "姓名或名称",
    "kind": "类型",
    "id_number": "证件号码",
    "phone": "联系电话",
    "status": "特殊情形",
    "note": "备注",
}
SHARE_HEADERS: dict[str, str] = {
    "parcel_code": "宗地代码",
    "holder_id": "权益人编号",
    "share": "份额",
}
RECORD_HEADERS: dict[str, str] = {
    "record_id": "记录编号",
    "holder_id": "权益人编号",
    "unit_id": "单元编号",
    "parcel_code": "宗地代码",
    "kind": "类型",
    "on": "日期",
    "evidence": "凭证编号",
    "status": "状态",
    "withdrawn_on": "撤回日期",
    "via_procedure": "特别程序",
}
TRANSFER_HEADERS: dict[str, str] = {
    "transfer_id": "流转编号",
    "parcel_code": "宗地代码",
    "transferor_id": "流出方权益人编号",
    "transferee": "流入方",
    "mode": "流转方式",
    "start_on": "起始日期",
    "end_on": "终止日期",
}
COMPENSATION_HEADERS: dict[str, str] = {
    "record_id": "记录编号",
    "holder_id": "权益人编号",
    "parcel_code": "宗地代码",
    "unit_id": "单元编号",
    "amount_yuan": "补偿金额(元)",
    "resettlement": "安置方式",
    "resettlement_area_m2": "安置面积(㎡)",
    "on": "日期",
    "status": "状态",
}
PARCEL_HEADERS: dict[str, str] = {
    "parcel_code": "宗地代码",
    "rights_type": "权利类型",
    "ownership": "所有权性质",
    "registered_area_m2": "登记面积(㎡)",
    "certificate_no": "不动产权证号",
    "town": "镇街",
    "wkt": "几何(WKT)",
}

#: Sheet name → headers.
SHEETS: dict[str, dict[str, str]] = {
    "权益人": HOLDER_HEADERS,
    "权属份额": SHARE_HEADERS,
    "意愿与签约": RECORD_HEADERS,
    "土地流转": TRANSFER_HEADERS,
    "征收补偿": COMPENSATION_HEADERS,
    "宗地": PARCEL_HEADERS,
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "权益人": ("holder_id", "name"),
    "权属份额": ("parcel_code", "holder_id", "share"),
    "意愿与签约": ("record_id", "holder_id", "kind", "on"),
    "土地流转": ("transfer_id", "parcel_code", "transferor_id", "transferee", "start_on", "end_on"),
    "征收补偿": ("record_id", "holder_id"),
    "宗地": ("parcel_code", "rights_type"),
}


@dataclass(frozen=True)
class Roster:
    """What a roster workbook holds (IDs already protected)."""

    holders: tuple[Holder, ...] = ()
    shares: tuple[Share, ...] = ()
    records: tuple[AgreementRecord, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    compensations: tuple[Compensation, ...] = ()
    parcels: tuple[Parcel, ...] = ()
    wkt: Mapping[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Rows per kind."""
        return {
            "holders": len(self.holders),
            "shares": len(self.shares),
            "records": len(self.records),
            "transfers": len(self.transfers),
            "compensations": len(self.compensations),
            "parcels": len(self.parcels),
        }


def _blank(v: Any) -> bool:
    return (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str) and not v.strip())
    )


def _rows(
    wb: Workbook, sheet: str, problems: list[RegistryProblem]
) -> list[tuple[int, dict[str, Any]]]:
    if sheet not in wb.sheetnames:
        return []
    headers = SHEETS[sheet]
    reverse = {v: k for k, v in headers.items()}
    it = wb[sheet].iter_rows(values_only=True)
    head = next(it, None)
    if head is None:
        return []
    cols: dict[int, str] = {}
    for i, h in enumerate(head):
        if h is None:
            continue
        text = str(h).strip()
        name = reverse.get(text) or (text if text in headers else None)
        if name is not None:
            cols[i] = name
    missing = [headers[f] for f in _REQUIRED[sheet] if f not in cols.values()]
    if missing:
        problems.append(
            RegistryProblem(
                "missing_column",
                f"工作表 {sheet} 缺少必填列: {'、'.join(missing)}",
                sheet,
                missing[0],
            )
        )
        return []
    out = []
    for n, row in enumerate(it, start=2):
        if row is None or all(_blank(v) for v in row):
            continue
        out.append(
            (
                n,
                {
                    name: (None if _blank(row[i]) else row[i])
                    for i, name in cols.items()
                    if i < len(row)
                },
            )
        )
    return out


def _where(sheet: str, n: int, key: Any = None) -> str:
    return f"{sheet}!第{n}行" + (f"({key})" if key not in (None, "") else "")


def _collect(
    problems: list[RegistryProblem], where: str, build: Callable[[], Any], out: list[Any]
) -> None:
    try:
        out.append(build())
    except ValidationError as exc:
        problems.append(RegistryProblem(exc.key, exc.message, where, exc.detail.field))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    t = str(v).strip()
    return t or None


def _any(v: Any) -> Any:
    """Pass a cell through untyped (the dataclass checks and converts it)."""
    return v


def _share(r: dict[str, Any]) -> Share:
    share: Any = r.get("share")
    return Share(_text(r.get("parcel_code")) or "", _text(r.get("holder_id")) or "", share)


def _record(r: dict[str, Any], synthetic: bool) -> AgreementRecord:
    rid = _text(r.get("record_id")) or ""
    return AgreementRecord(
        record_id=rid,
        holder_id=_text(r.get("holder_id")) or "",
        unit_id=_text(r.get("unit_id")),
        kind=parse_choice(RecordKind, r.get("kind"), "kind", rid),
        on=_any(r.get("on")),
        status=parse_choice(RecordStatus, r.get("status") or "有效", "status", rid),
        evidence=_text(r.get("evidence")),
        parcel_code=_text(r.get("parcel_code")),
        withdrawn_on=r.get("withdrawn_on"),
        via_procedure=_text(r.get("via_procedure")),
        synthetic=synthetic,
    )


def _transfer(r: dict[str, Any], synthetic: bool) -> Transfer:
    return Transfer(
        transfer_id=_text(r.get("transfer_id")) or "",
        parcel_code=_text(r.get("parcel_code")) or "",
        transferor_id=_text(r.get("transferor_id")) or "",
        transferee=_text(r.get("transferee")) or "",
        start_on=_any(r.get("start_on")),
        end_on=_any(r.get("end_on")),
        mode=_text(r.get("mode")),
        synthetic=synthetic,
    )


def _compensation(r: dict[str, Any], synthetic: bool) -> Compensation:
    return Compensation(
        record_id=_text(r.get("record_id")) or "",
        holder_id=_text(r.get("holder_id")) or "",
        parcel_code=_text(r.get("parcel_code")),
        unit_id=_text(r.get("unit_id")),
        amount_yuan=r.get("amount_yuan"),
        resettlement=_text(r.get("resettlement")),
        resettlement_area_m2=r.get("resettlement_area_m2"),
        on=r.get("on"),
        status=_text(r.get("status")),
        synthetic=synthetic,
    )


def _parcel(r: dict[str, Any], synthetic: bool) -> Parcel:
    code = _text(r.get("parcel_code")) or ""
    return Parcel(
        parcel_code=code,
        rights_type=parse_choice(RightsType, r.get("rights_type"), "rights_type", code),
        ownership=r.get("ownership"),
        registered_area_m2=r.get("registered_area_m2"),
        certificate_no=_text(r.get("certificate_no")),
        town=_text(r.get("town")),
        synthetic=synthetic,
    )


def read_roster(wb: Workbook, cipher: PIICipher, *, synthetic: bool = False) -> Roster:
    """Read every sheet the workbook has (权益人, 权属份额, 意愿与签约, 土地流转, 征收补偿, 宗地).

    Raises
    ------
    ValidationError
        With ``data['problems']`` listing each bad row (``feature`` = ``工作表!第N行``).
    """
    problems: list[RegistryProblem] = []
    holders: list[Holder] = []
    for n, r in _rows(wb, "权益人", problems):
        hid = _text(r.get("holder_id"))
        where = _where("权益人", n, hid)

        def build(r: dict[str, Any] = r, hid: str | None = hid, where: str = where) -> Holder:
            kind = parse_choice(HolderKind, r.get("kind") or "个人", "kind", where)
            raw_id = _text(r.get("id_number"))
            protected = None
            if raw_id is not None:
                checker = validate_id_number if kind is HolderKind.PERSON else validate_credit_code
                protected = cipher.protect(checker(raw_id, where), mask_id)
            raw_phone = r.get("phone")
            phone = None
            if not _blank(raw_phone):
                phone = cipher.protect(validate_phone(raw_phone, where), mask_phone)
            return Holder(
                holder_id=hid or "",
                name=_text(r.get("name")) or "",
                kind=kind,
                status=parse_choice(HolderStatus, r.get("status") or "正常", "status", where),
                id_number=protected,
                phone=phone,
                note=_text(r.get("note")),
                synthetic=synthetic,
            )

        _collect(problems, where, build, holders)

    shares: list[Share] = []
    for n, r in _rows(wb, "权属份额", problems):
        where = _where("权属份额", n, _text(r.get("parcel_code")))
        _collect(
            problems,
            where,
            partial(_share, r),
            shares,
        )

    records: list[AgreementRecord] = []
    for n, r in _rows(wb, "意愿与签约", problems):
        where = _where("意愿与签约", n, _text(r.get("record_id")))
        _collect(
            problems,
            where,
            partial(_record, r, synthetic),
            records,
        )

    transfers: list[Transfer] = []
    for n, r in _rows(wb, "土地流转", problems):
        where = _where("土地流转", n, _text(r.get("transfer_id")))
        _collect(
            problems,
            where,
            partial(_transfer, r, synthetic),
            transfers,
        )

    comps: list[Compensation] = []
    for n, r in _rows(wb, "征收补偿", problems):
        where = _where("征收补偿", n, _text(r.get("record_id")))
        _collect(
            problems,
            where,
            partial(_compensation, r, synthetic),
            comps,
        )

    parcels: list[Parcel] = []
    wkt: dict[str, str] = {}
    for n, r in _rows(wb, "宗地", problems):
        code = _text(r.get("parcel_code"))
        where = _where("宗地", n, code)
        _collect(
            problems,
            where,
            partial(_parcel, r, synthetic),
            parcels,
        )
        if code and _text(r.get("wkt")):
            wkt[code] = str(r["wkt"])

    # ---- cross-row checks within the workbook (references to the store are checked on merge)
    problems += duplicate_holder_problems(holders)
    mentioned = sorted({s.parcel_code for s in shares})
    stub_holders = [
        Holder(h, h) for h in sorted({s.holder_id for s in shares} | {h.holder_id for h in holders})
    ]
    stub_parcels = [Parcel(code, RightsType.STATE_CONSTRUCTION) for code in mentioned]
    problems += share_problems(stub_parcels, stub_holders, shares)
    problems += [
        p
        for p in record_problems(records, stub_holders, [])
        if p.key not in ("unknown_holder", "unknown_parcel")
    ]
    raise_problems(problems, "权益人名册")
    return Roster(
        holders=tuple(holders),
        shares=tuple(shares),
        records=tuple(records),
        transfers=tuple(transfers),
        compensations=tuple(comps),
        parcels=tuple(parcels),
        wkt=wkt,
    )


def _sheet(wb: Workbook, title: str, headers: list[str], rows: Iterable[list[Any]]) -> None:
    ws = wb.create_sheet(title)
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append(["是" if v is True else "否" if v is False else v for v in r])


def holders_to_workbook(
    holders: Iterable[Holder],
    shares: Iterable[Share] = (),
    lines: Iterable[Any] = (),
    *,
    title: str = "权益人名册",
    synthetic: bool = False,
) -> Workbook:
    """Export holders (masked ID and phone), shares and optional scope lines.

    ``lines`` are :class:`~yizhangtu.rights.ratios.HolderLine` of one scope (land, consent,
    signing by holder). No plain personal number is written.
    """
    wb = Workbook()
    wb.remove(wb.active)
    hs = list(holders)
    _sheet(
        wb,
        "权益人",
        [
            "权益人编号",
            "姓名或名称",
            "类型",
            "证件号码(脱敏)",
            "联系电话(脱敏)",
            "特殊情形",
            "备注",
        ],
        [
            [h.holder_id, h.name, h.kind.value, h.id_masked, h.phone_masked, h.status.value, h.note]
            for h in hs
        ],
    )
    _sheet(
        wb,
        "权属份额",
        list(SHARE_HEADERS.values()),
        [[s.parcel_code, s.holder_id, s.share] for s in shares],
    )
    ls = list(lines)
    if ls:
        _sheet(
            wb,
            "单元权益统计",
            [
                "权益人编号",
                "姓名或名称",
                "证件号码(脱敏)",
                "特殊情形",
                "宗地",
                "权益土地面积(㎡)",
                "已同意面积(㎡)",
                "已签约面积(㎡)",
                "按人数计同意",
                "按人数计签约",
            ],
            [
                [
                    ln.holder_id,
                    ln.name,
                    ln.id_masked,
                    ln.status,
                    "、".join(ln.parcels),
                    round(ln.land_m2, 2),
                    round(ln.consented_m2, 2),
                    round(ln.signed_m2, 2),
                    ln.consented,
                    ln.signed,
                ]
                for ln in ls
            ],
        )
    notes = wb.create_sheet("说明")
    notes.append([title + ("(合成数据)" if synthetic or any(h.synthetic for h in hs) else "")])
    notes.append(["证件号码和联系电话已脱敏; 原值加密保存, 查看原值须经授权并记入审计日志。"])
    return wb


def roster_template() -> Workbook:
    """Return an empty roster workbook with every sheet and its Chinese headers."""
    wb = Workbook()
    wb.remove(wb.active)
    for sheet, headers in SHEETS.items():
        _sheet(wb, sheet, list(headers.values()), [])
    kinds = "、".join(k.value for k in RecordKind)
    wb.create_sheet("说明").append(
        [f"意愿与签约的类型填 {kinds}; 份额填小数、分数或百分比; 日期 YYYY-MM-DD"]
    )
    return wb
