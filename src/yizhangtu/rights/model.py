"""Rights registry (权益/产权信息): parcels, rights-holders, shares and their records.

- :class:`Parcel` 宗地: geometry, code, rights type, registered area, certificate number.
- :class:`Holder` 权益人: person or organisation; ID and phone only as
  :class:`~yizhangtu.rights.protect.ProtectedValue` (encrypted, masked, indexed).
- :class:`Share` 份额: a holder's share of a parcel; shares of a parcel sum to 1.
- :class:`AgreementRecord`: a consent (改造意愿书面同意, 004 (十)) or a signed compensation
  agreement (补偿协议, 004 (十六)), with date, evidence reference and status.
- :class:`Transfer` 土地流转 and :class:`Compensation` 征收补偿安置.

:meth:`Registry.problems` lists every inconsistency (shares not summing to 1, unknown
holders or parcels, duplicate holders, consent dated after signing) so that imports can
report them all at once.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.rights.protect import ProtectedValue

__all__ = [
    "RIGHTS_OWNERSHIP",
    "SHARE_TOLERANCE",
    "AgreementRecord",
    "Compensation",
    "Holder",
    "HolderKind",
    "HolderStatus",
    "Ownership",
    "Parcel",
    "RecordKind",
    "RecordStatus",
    "Registry",
    "RegistryProblem",
    "RightsType",
    "Share",
    "Transfer",
    "duplicate_holder_problems",
    "parse_choice",
    "parse_date",
    "parse_share",
    "raise_problems",
    "record_problems",
    "share_problems",
    "transfer_problems",
]

#: Numerical tolerance when checking that shares of a parcel sum to 1 (rounding only).
SHARE_TOLERANCE = 1e-6


class Ownership(enum.StrEnum):
    """Land ownership (土地所有权性质)."""

    STATE = "国有"
    COLLECTIVE = "集体"


class RightsType(enum.StrEnum):
    """Type of right registered on a parcel (权利类型)."""

    STATE_CONSTRUCTION = "国有建设用地使用权"
    COLLECTIVE_COMMERCIAL = "集体经营性建设用地使用权"
    COLLECTIVE_CONSTRUCTION = "其他集体建设用地使用权"
    HOMESTEAD = "宅基地使用权"
    CONTRACTED = "土地承包经营权"
    COLLECTIVE_OWNERSHIP = "集体土地所有权"


#: Ownership each rights type implies.
RIGHTS_OWNERSHIP: dict[RightsType, Ownership] = {
    RightsType.STATE_CONSTRUCTION: Ownership.STATE,
    RightsType.COLLECTIVE_COMMERCIAL: Ownership.COLLECTIVE,
    RightsType.COLLECTIVE_CONSTRUCTION: Ownership.COLLECTIVE,
    RightsType.HOMESTEAD: Ownership.COLLECTIVE,
    RightsType.CONTRACTED: Ownership.COLLECTIVE,
    RightsType.COLLECTIVE_OWNERSHIP: Ownership.COLLECTIVE,
}


class HolderKind(enum.StrEnum):
    """Person or organisation (个人 / 单位, incl. 集体经济组织)."""

    PERSON = "个人"
    ORGANISATION = "单位"


class HolderStatus(enum.StrEnum):
    """Special situations of 004 (十六); special holders always stay in the denominators."""

    NORMAL = "正常"
    ABROAD = "境外"
    MISSING = "下落不明"
    UNKNOWN = "权属不明"
    OWNERLESS = "无主"


class RecordKind(enum.StrEnum):
    """Consent (004 (十)) or signed compensation agreement (004 (十六))."""

    CONSENT = "意愿"
    SIGNING = "签约"


class RecordStatus(enum.StrEnum):
    """Status of a record: valid, withdrawn (from ``withdrawn_on``) or void (never counts)."""

    VALID = "有效"
    WITHDRAWN = "撤回"
    VOID = "作废"


_ALIASES: dict[str, str] = {
    "国有建设用地": "国有建设用地使用权",
    "國有建設用地使用權": "国有建设用地使用权",
    "集体经营性建设用地": "集体经营性建设用地使用权",
    "集体建设用地使用权": "其他集体建设用地使用权",
    "宅基地": "宅基地使用权",
    "承包地": "土地承包经营权",
    "承包经营权": "土地承包经营权",
    "集体土地": "集体土地所有权",
    "國有": "国有",
    "集體": "集体",
    "自然人": "个人",
    "法人": "单位",
    "组织": "单位",
    "集体经济组织": "单位",
    "境外权益人": "境外",
    "失联": "下落不明",
    "不明": "权属不明",
    "未知": "权属不明",
    "无主房屋": "无主",
    "同意": "意愿",
    "意愿征询": "意愿",
    "书面同意": "意愿",
    "补偿协议": "签约",
    "已签约": "签约",
    "撤销": "撤回",
    "无效": "作废",
}


def parse_choice(
    cls: type[enum.StrEnum], value: Any, field_name: str, feature: str | None = None
) -> Any:
    """Read an enum from its Chinese value, English name or a common alias."""
    if isinstance(value, cls):
        return value
    text = "" if value is None else str(value).strip()
    text = _ALIASES.get(text, text)
    for member in cls:
        if text in (member.value, member.name, member.name.lower()):
            return member
    raise ValidationError(
        f"{field_name} 的取值 {value!r} 无法识别",
        key=f"unknown_{field_name}",
        field=field_name,
        feature=feature,
        hint="可选: " + "、".join(m.value for m in cls),
    )


def parse_date(value: Any, field_name: str, feature: str | None = None) -> date | None:
    """Read a date (date, datetime or ISO text); blank gives None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValidationError(
            f"{field_name} 不是有效日期: {value!r}",
            key="bad_date",
            field=field_name,
            feature=feature,
            hint="日期格式为 YYYY-MM-DD",
        ) from None


def parse_share(value: Any, feature: str | None = None) -> float:
    """Read a share as a fraction: ``0.5``, ``"1/3"`` or ``"50%"``; must lie in (0, 1]."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            share = float(value)
        else:
            text = str(value).strip()
            share = float(text[:-1]) / 100 if text.endswith("%") else float(Fraction(text))
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValidationError(
            f"份额 {value!r} 不是数值",
            key="bad_share",
            field="share",
            feature=feature,
            hint="以小数、分数或百分比填写, 如 0.5、1/3、50%",
        ) from None
    if not math.isfinite(share) or share <= 0 or share > 1 + SHARE_TOLERANCE:
        raise ValidationError(
            f"份额 {value!r} 须大于 0 且不超过 1",
            key="bad_share",
            field="share",
            feature=feature,
        )
    return min(share, 1.0)


def _number(
    value: Any, field_name: str, feature: str | None, *, allow_none: bool = True
) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if allow_none:
            return None
        raise ValidationError(
            f"缺少 {field_name}", key="missing_field", field=field_name, feature=feature
        )
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{field_name} 须为数值: {value!r}", key="bad_number", field=field_name, feature=feature
        ) from None
    if not math.isfinite(out) or out < 0:
        raise ValidationError(
            f"{field_name} 须为非负数: {value!r}",
            key="bad_number",
            field=field_name,
            feature=feature,
        )
    return out


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Parcel:
    """A land parcel (宗地) with its registered right.

    ``geometry`` is a shapely geometry in the registry's CRS (None when only the attributes
    are known); ``registered_area_m2`` is the area on the certificate (登记面积).
    """

    parcel_code: str
    rights_type: RightsType
    ownership: Ownership | None = None
    registered_area_m2: float | None = None
    certificate_no: str | None = None
    town: str | None = None
    geometry: Any = field(default=None, compare=False, repr=False)
    synthetic: bool = False

    def __post_init__(self) -> None:
        code = _text(self.parcel_code)
        if code is None:
            raise ValidationError(
                "宗地代码不能为空", key="missing_parcel_code", field="parcel_code"
            )
        set_ = object.__setattr__
        set_(self, "parcel_code", code)
        rtype = parse_choice(RightsType, self.rights_type, "rights_type", code)
        set_(self, "rights_type", rtype)
        implied = RIGHTS_OWNERSHIP[rtype]
        own = (
            parse_choice(Ownership, self.ownership, "ownership", code)
            if _text(self.ownership)
            else implied
        )
        if own is not implied:
            raise ValidationError(
                f"宗地 {code} 的权利类型 {rtype.value} 须为{implied.value}土地, 登记为{own.value}",
                key="ownership_mismatch",
                field="ownership",
                feature=code,
            )
        set_(self, "ownership", own)
        set_(
            self, "registered_area_m2", _number(self.registered_area_m2, "registered_area_m2", code)
        )
        set_(self, "certificate_no", _text(self.certificate_no))
        set_(self, "town", _text(self.town))


@dataclass(frozen=True)
class Holder:
    """A rights-holder (权益人). Personal numbers are held only in protected form."""

    holder_id: str
    name: str
    kind: HolderKind = HolderKind.PERSON
    status: HolderStatus = HolderStatus.NORMAL
    id_number: ProtectedValue | None = None
    phone: ProtectedValue | None = None
    note: str | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        hid = _text(self.holder_id)
        if hid is None:
            raise ValidationError("权益人编号不能为空", key="missing_holder_id", field="holder_id")
        object.__setattr__(self, "holder_id", hid)
        object.__setattr__(self, "name", _text(self.name) or hid)
        object.__setattr__(self, "kind", parse_choice(HolderKind, self.kind or "个人", "kind", hid))
        object.__setattr__(
            self, "status", parse_choice(HolderStatus, self.status or "正常", "status", hid)
        )

    @property
    def special(self) -> bool:
        """True for 境外, 下落不明, 权属不明 and 无主 holders (004 (十六))."""
        return self.status is not HolderStatus.NORMAL

    @property
    def id_masked(self) -> str | None:
        """Masked ID number (the only form shown by default)."""
        return self.id_number.masked if self.id_number else None

    @property
    def phone_masked(self) -> str | None:
        """Masked phone number."""
        return self.phone.masked if self.phone else None

    def to_record(self) -> dict[str, Any]:
        """Return the stored form (ciphertexts, masks, indexes; no plain personal number)."""
        return {
            "holder_id": self.holder_id,
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "id_number": self.id_number.to_dict() if self.id_number else None,
            "phone": self.phone.to_dict() if self.phone else None,
            "note": self.note,
            "synthetic": self.synthetic,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Holder:
        """Rebuild from :meth:`to_record`."""
        return cls(
            holder_id=data["holder_id"],
            name=data.get("name") or data["holder_id"],
            kind=data.get("kind") or HolderKind.PERSON,
            status=data.get("status") or HolderStatus.NORMAL,
            id_number=ProtectedValue.from_dict(data.get("id_number")),
            phone=ProtectedValue.from_dict(data.get("phone")),
            note=data.get("note"),
            synthetic=bool(data.get("synthetic", False)),
        )


@dataclass(frozen=True)
class Share:
    """Share of ``holder_id`` in ``parcel_code`` (a fraction in (0, 1])."""

    parcel_code: str
    holder_id: str
    share: float

    def __post_init__(self) -> None:
        where = f"{self.parcel_code}/{self.holder_id}"
        object.__setattr__(self, "parcel_code", str(self.parcel_code).strip())
        object.__setattr__(self, "holder_id", str(self.holder_id).strip())
        object.__setattr__(self, "share", parse_share(self.share, where))


@dataclass(frozen=True)
class AgreementRecord:
    """A consent or a signed compensation agreement of a holder for a renewal unit.

    ``parcel_code`` None covers every parcel of the holder in the unit. A record counts on a
    date when it is dated on or before it, is not void, and is not withdrawn by then.
    ``via_procedure`` names the special procedure (e.g. 财产代管) used for a special holder.
    """

    record_id: str
    holder_id: str
    unit_id: str | None
    kind: RecordKind
    on: date
    status: RecordStatus = RecordStatus.VALID
    evidence: str | None = None
    parcel_code: str | None = None
    withdrawn_on: date | None = None
    via_procedure: str | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        rid = _text(self.record_id)
        if rid is None:
            raise ValidationError("记录编号不能为空", key="missing_record_id", field="record_id")
        set_ = object.__setattr__
        set_(self, "record_id", rid)
        set_(self, "holder_id", _text(self.holder_id) or "")
        set_(self, "unit_id", _text(self.unit_id))
        set_(self, "parcel_code", _text(self.parcel_code))
        set_(self, "kind", parse_choice(RecordKind, self.kind, "kind", rid))
        set_(self, "status", parse_choice(RecordStatus, self.status or "有效", "status", rid))
        on = parse_date(self.on, "on", rid)
        if on is None:
            raise ValidationError(
                f"记录 {rid} 缺少日期", key="missing_field", field="on", feature=rid
            )
        set_(self, "on", on)
        set_(self, "withdrawn_on", parse_date(self.withdrawn_on, "withdrawn_on", rid))
        set_(self, "evidence", _text(self.evidence))
        set_(self, "via_procedure", _text(self.via_procedure))
        if not self.holder_id:
            raise ValidationError(
                f"记录 {rid} 缺少权益人编号", key="missing_field", field="holder_id", feature=rid
            )
        if self.status is RecordStatus.WITHDRAWN and self.withdrawn_on is None:
            raise ValidationError(
                f"记录 {rid} 状态为撤回, 须填写撤回日期",
                key="missing_field",
                field="withdrawn_on",
                feature=rid,
            )
        if self.withdrawn_on is not None and self.withdrawn_on < self.on:
            raise ValidationError(
                f"记录 {rid} 的撤回日期 {self.withdrawn_on} 早于记录日期 {self.on}",
                key="dates_out_of_order",
                field="withdrawn_on",
                feature=rid,
            )

    def counts_on(self, at: date, since: date | None = None) -> bool:
        """Whether the record is in force on ``at`` (and dated on or after ``since``)."""
        if self.status is RecordStatus.VOID or self.on > at:
            return False
        if since is not None and self.on < since:
            return False
        return self.withdrawn_on is None or self.withdrawn_on > at

    def covers(self, parcel_code: str) -> bool:
        """Whether the record applies to ``parcel_code``."""
        return self.parcel_code is None or self.parcel_code == parcel_code

    def to_record(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "record_id": self.record_id,
            "holder_id": self.holder_id,
            "unit_id": self.unit_id,
            "kind": self.kind.value,
            "on": self.on.isoformat(),
            "status": self.status.value,
            "evidence": self.evidence,
            "parcel_code": self.parcel_code,
            "withdrawn_on": self.withdrawn_on.isoformat() if self.withdrawn_on else None,
            "via_procedure": self.via_procedure,
            "synthetic": self.synthetic,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> AgreementRecord:
        """Rebuild from :meth:`to_record`."""
        return cls(
            record_id=data["record_id"],
            holder_id=data["holder_id"],
            unit_id=data.get("unit_id"),
            kind=data["kind"],
            on=data["on"],
            status=data.get("status") or RecordStatus.VALID,
            evidence=data.get("evidence"),
            parcel_code=data.get("parcel_code"),
            withdrawn_on=data.get("withdrawn_on"),
            via_procedure=data.get("via_procedure"),
            synthetic=bool(data.get("synthetic", False)),
        )


@dataclass(frozen=True)
class Transfer:
    """Land transfer (土地流转): operating rights of a parcel for a term; the holder stays."""

    transfer_id: str
    parcel_code: str
    transferor_id: str
    transferee: str
    start_on: date
    end_on: date
    mode: str | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        tid = _text(self.transfer_id) or ""
        if not tid:
            raise ValidationError("流转编号不能为空", key="missing_field", field="transfer_id")
        set_ = object.__setattr__
        set_(self, "transfer_id", tid)
        for name in ("parcel_code", "transferor_id", "transferee"):
            v = _text(getattr(self, name))
            if v is None:
                raise ValidationError(
                    f"流转 {tid} 缺少 {name}", key="missing_field", field=name, feature=tid
                )
            set_(self, name, v)
        start = parse_date(self.start_on, "start_on", tid)
        end = parse_date(self.end_on, "end_on", tid)
        if start is None or end is None:
            raise ValidationError(
                f"流转 {tid} 须填写起止日期", key="missing_field", field="start_on", feature=tid
            )
        if end < start:
            raise ValidationError(
                f"流转 {tid} 的终止日期 {end} 早于起始日期 {start}",
                key="dates_out_of_order",
                field="end_on",
                feature=tid,
            )
        set_(self, "start_on", start)
        set_(self, "end_on", end)
        set_(self, "mode", _text(self.mode))

    @property
    def term_years(self) -> float:
        """Term in years (365.25-day years)."""
        return (self.end_on - self.start_on).days / 365.25

    def active_on(self, at: date) -> bool:
        """Whether the transfer is running on ``at``."""
        return self.start_on <= at <= self.end_on


@dataclass(frozen=True)
class Compensation:
    """Expropriation compensation and resettlement (征收补偿安置) of a holder."""

    record_id: str
    holder_id: str
    parcel_code: str | None = None
    unit_id: str | None = None
    amount_yuan: float | None = None
    resettlement: str | None = None
    resettlement_area_m2: float | None = None
    on: date | None = None
    status: str | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        rid = _text(self.record_id) or ""
        if not rid:
            raise ValidationError("补偿记录编号不能为空", key="missing_field", field="record_id")
        set_ = object.__setattr__
        set_(self, "record_id", rid)
        hid = _text(self.holder_id)
        if hid is None:
            raise ValidationError(
                f"补偿记录 {rid} 缺少权益人编号",
                key="missing_field",
                field="holder_id",
                feature=rid,
            )
        set_(self, "holder_id", hid)
        set_(self, "parcel_code", _text(self.parcel_code))
        set_(self, "unit_id", _text(self.unit_id))
        set_(self, "amount_yuan", _number(self.amount_yuan, "amount_yuan", rid))
        set_(
            self,
            "resettlement_area_m2",
            _number(self.resettlement_area_m2, "resettlement_area_m2", rid),
        )
        set_(self, "on", parse_date(self.on, "on", rid))
        set_(self, "resettlement", _text(self.resettlement))
        set_(self, "status", _text(self.status))


@dataclass(frozen=True)
class RegistryProblem:
    """One inconsistency in a registry or roster."""

    key: str
    message: str
    feature: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "key": self.key,
            "message": self.message,
            "feature": self.feature,
            "field": self.field,
        }


def raise_problems(problems: Sequence[RegistryProblem], what: str, file: str | None = None) -> None:
    """Raise one ValidationError listing every problem (the first one's key)."""
    if not problems:
        return
    first = problems[0]
    more = f"; 另有 {len(problems) - 1} 处问题" if len(problems) > 1 else ""
    raise ValidationError(
        f"{what}有 {len(problems)} 处问题: {first.message}{more}",
        key=first.key,
        file=file,
        feature=first.feature,
        field=first.field,
        hint="逐条见 data.problems; 修正后重新导入",
        data={"problems": [p.to_dict() for p in problems]},
    )


@dataclass(frozen=True)
class Registry:
    """Parcels, holders, shares and records of one area (the rights registry).

    ``crs`` is the CRS of the parcel geometries (anything pyproj accepts).
    """

    parcels: tuple[Parcel, ...] = ()
    holders: tuple[Holder, ...] = ()
    shares: tuple[Share, ...] = ()
    records: tuple[AgreementRecord, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    compensations: tuple[Compensation, ...] = ()
    crs: Any = None

    def __post_init__(self) -> None:
        for name in ("parcels", "holders", "shares", "records", "transfers", "compensations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def synthetic(self) -> bool:
        """True when any part is synthetic."""
        return any(
            getattr(x, "synthetic", False) for x in (*self.parcels, *self.holders, *self.records)
        )

    def holder(self, holder_id: str) -> Holder:
        """Holder by id (NotFound as InputError)."""
        for h in self.holders:
            if h.holder_id == holder_id:
                return h
        raise InputError(
            f"权益人 {holder_id} 不在登记库中", key="holder_not_found", feature=holder_id
        )

    def holder_map(self) -> dict[str, Holder]:
        """Holder id → holder."""
        return {h.holder_id: h for h in self.holders}

    def parcel_map(self) -> dict[str, Parcel]:
        """Parcel code → parcel."""
        return {p.parcel_code: p for p in self.parcels}

    def shares_by_parcel(self) -> dict[str, list[Share]]:
        """Parcel code → its shares."""
        out: dict[str, list[Share]] = defaultdict(list)
        for s in self.shares:
            out[s.parcel_code].append(s)
        return dict(out)

    def parcels_of(self, holder_id: str) -> list[str]:
        """Codes of the parcels ``holder_id`` holds a share of."""
        return sorted({s.parcel_code for s in self.shares if s.holder_id == holder_id})

    def problems(self) -> list[RegistryProblem]:
        """Every inconsistency of the registry (empty list: consistent)."""
        return (
            duplicate_holder_problems(self.holders)
            + share_problems(self.parcels, self.holders, self.shares)
            + record_problems(self.records, self.holders, self.parcels)
            + transfer_problems(self.transfers, self.shares)
        )

    def with_records(self, records: Iterable[AgreementRecord]) -> Registry:
        """Return a copy with more records."""
        return Registry(
            self.parcels,
            self.holders,
            self.shares,
            (*self.records, *records),
            self.transfers,
            self.compensations,
            self.crs,
        )


def duplicate_holder_problems(holders: Iterable[Holder]) -> list[RegistryProblem]:
    """Find a holder id given twice, or one ID number (blind index) under two ids."""
    out: list[RegistryProblem] = []
    seen: dict[str, Holder] = {}
    by_index: dict[str, str] = {}
    for h in holders:
        if h.holder_id in seen:
            out.append(
                RegistryProblem(
                    "duplicate_holder",
                    f"权益人编号 {h.holder_id} 重复",
                    feature=h.holder_id,
                    field="holder_id",
                )
            )
            continue
        seen[h.holder_id] = h
        if h.id_number is not None:
            other = by_index.get(h.id_number.index)
            if other is not None:
                out.append(
                    RegistryProblem(
                        "duplicate_holder",
                        f"权益人 {h.holder_id} 与 {other} 的证件号码相同({h.id_number.masked}), "
                        "同一权益人只能登记一次",
                        feature=h.holder_id,
                        field="id_number",
                    )
                )
            else:
                by_index[h.id_number.index] = h.holder_id
    return out


def share_problems(
    parcels: Iterable[Parcel], holders: Iterable[Holder], shares: Iterable[Share]
) -> list[RegistryProblem]:
    """Shares of each parcel that has shares sum to 1; each names a known holder and parcel, once.

    A parcel with no share at all is not an error here: it is an unassigned parcel, kept in
    the area denominator of any scope and flagged there.
    """
    out: list[RegistryProblem] = []
    parcel_codes = {p.parcel_code for p in parcels}
    holder_ids = {h.holder_id for h in holders}
    sums: dict[str, float] = defaultdict(float)
    pairs: set[tuple[str, str]] = set()
    for s in shares:
        where = f"{s.parcel_code}/{s.holder_id}"
        if (s.parcel_code, s.holder_id) in pairs:
            out.append(
                RegistryProblem(
                    "duplicate_share",
                    f"宗地 {s.parcel_code} 中权益人 {s.holder_id} 的份额重复",
                    where,
                    "share",
                )
            )
            continue
        pairs.add((s.parcel_code, s.holder_id))
        if s.holder_id not in holder_ids:
            out.append(
                RegistryProblem(
                    "unknown_holder", f"份额引用了未登记的权益人 {s.holder_id}", where, "holder_id"
                )
            )
        if s.parcel_code not in parcel_codes:
            out.append(
                RegistryProblem(
                    "unknown_parcel",
                    f"份额引用了未登记的宗地 {s.parcel_code}",
                    where,
                    "parcel_code",
                )
            )
        sums[s.parcel_code] += s.share
    for code in sorted(sums):
        total = sums[code]
        if abs(total - 1.0) > SHARE_TOLERANCE:
            out.append(
                RegistryProblem(
                    "shares_not_one",
                    f"宗地 {code} 的权益份额合计为 {total:.6g}, 应为 1",
                    code,
                    "share",
                )
            )
    return out


def record_problems(
    records: Iterable[AgreementRecord], holders: Iterable[Holder], parcels: Iterable[Parcel]
) -> list[RegistryProblem]:
    """Check that records name known holders and parcels, consent before signing."""
    out: list[RegistryProblem] = []
    recs = list(records)
    holder_ids = {h.holder_id for h in holders}
    parcel_codes = {p.parcel_code for p in parcels}
    seen: set[str] = set()
    for r in recs:
        if r.record_id in seen:
            out.append(
                RegistryProblem(
                    "duplicate_record", f"记录编号 {r.record_id} 重复", r.record_id, "record_id"
                )
            )
        seen.add(r.record_id)
        if r.holder_id not in holder_ids:
            out.append(
                RegistryProblem(
                    "unknown_holder",
                    f"记录 {r.record_id} 引用了未登记的权益人 {r.holder_id}",
                    r.record_id,
                    "holder_id",
                )
            )
        if r.parcel_code is not None and r.parcel_code not in parcel_codes:
            out.append(
                RegistryProblem(
                    "unknown_parcel",
                    f"记录 {r.record_id} 引用了未登记的宗地 {r.parcel_code}",
                    r.record_id,
                    "parcel_code",
                )
            )
    live = [r for r in recs if r.status is not RecordStatus.VOID]
    signings = [r for r in live if r.kind is RecordKind.SIGNING]
    for c in (r for r in live if r.kind is RecordKind.CONSENT):
        for s in signings:
            same_scope = s.holder_id == c.holder_id and s.unit_id == c.unit_id
            same_parcel = (
                c.parcel_code is None or s.parcel_code is None or c.parcel_code == s.parcel_code
            )
            if same_scope and same_parcel and c.on > s.on:
                out.append(
                    RegistryProblem(
                        "consent_after_signing",
                        f"权益人 {c.holder_id} 在单元 {c.unit_id or '-'} 的意愿记录 "
                        f"{c.record_id}({c.on}) "
                        f"晚于签约记录 {s.record_id}({s.on}); 书面同意应先于签订补偿协议",
                        c.record_id,
                        "on",
                    )
                )
    return out


def transfer_problems(
    transfers: Iterable[Transfer], shares: Iterable[Share]
) -> list[RegistryProblem]:
    """Check that the transferor of each transfer holds a share of the parcel."""
    held = {(s.parcel_code, s.holder_id) for s in shares}
    return [
        RegistryProblem(
            "transfer_not_holder",
            f"流转 {t.transfer_id} 的流出方 {t.transferor_id} 不是宗地 {t.parcel_code} 的权益人",
            t.transfer_id,
            "transferor_id",
        )
        for t in transfers
        if (t.parcel_code, t.transferor_id) not in held
    ]
