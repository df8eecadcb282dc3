"""Data model of the Dongguan "三旧" renewal library (城市更新项目库).

Three tiers (004 (三)): 大圈 priority zones, 中圈 areas, 小圈 renewal units (改造单元).
Every dataclass is frozen; constructors check what can be checked without a policy pack
(types, ranges, date order) and raise :class:`~yizhangtu.errors.InputError` subclasses
that name the field, the feature and the clause.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from itertools import pairwise
from typing import Any, Literal, TypeVar

from yizhangtu.errors import ErrorDetail, InputError, ValidationError

__all__ = [
    "ACTIVE_STAGES",
    "DATE_ORDER",
    "FIELD_CLAUSES",
    "STAGE_GRAPH",
    "BookedTask",
    "ConsentFigures",
    "Mode",
    "RenewalLibrary",
    "RenewalUnit",
    "RightsHolder",
    "Stage",
    "StageDates",
    "StageEvent",
    "TownAccount",
    "TownYearTask",
    "UnitMoney",
    "UnitType",
    "Zone",
    "ZoneTier",
    "figures_from_holders",
    "parse_enum",
    "unit_as_of",
    "unit_from_record",
    "unit_to_record",
]


class UnitType(enum.StrEnum):
    """Renewal unit type (改造类型)."""

    INDUSTRIAL = "工改工"
    RESIDENTIAL_COMMERCIAL = "工改居商"
    OLD_VILLAGE = "旧村改造"
    TOWN_COMMUNITY = "城镇社区"
    INDUSTRY_CITY = "产城融合"
    WHOLE_VILLAGE = "整村统筹"


class Mode(enum.StrEnum):
    """Implementation mode (改造模式), 004 (九)(十二)."""

    GOVERNMENT = "政府主导"
    OPEN_BIDDING = "公开招引实施主体"
    SELF_RENEWAL = "权利人自行改造"


class Stage(enum.StrEnum):
    """Workflow state: the four stages of 004 (十) plus suspended, withdrawn and barred."""

    PRELIMINARY = "前期工作"
    ENTITY = "确认主体"
    PLAN = "实施方案"
    SUPERVISION = "开发监管"
    SUSPENDED = "暂停"
    WITHDRAWN = "退出"
    BARRED = "禁止重启"


class ZoneTier(enum.StrEnum):
    """Zone tier: 大圈 / 中圈 (004 (三)) and contiguous 工改工 clusters (004 (六))."""

    PRIORITY_ZONE = "大圈"
    AREA = "中圈"
    INDUSTRIAL_CLUSTER = "连片工改工片区"


#: The four stages in order (004 (十)).
ACTIVE_STAGES: tuple[Stage, ...] = (Stage.PRELIMINARY, Stage.ENTITY, Stage.PLAN, Stage.SUPERVISION)

#: Allowed transitions. SUSPENDED resumes only to the stage it left (``suspended_from``);
#: WITHDRAWN and BARRED restart at PRELIMINARY when the rules allow it.
STAGE_GRAPH: dict[Stage, frozenset[Stage]] = {
    Stage.PRELIMINARY: frozenset({Stage.ENTITY, Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED}),
    Stage.ENTITY: frozenset({Stage.PLAN, Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED}),
    Stage.PLAN: frozenset({Stage.SUPERVISION, Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED}),
    Stage.SUPERVISION: frozenset({Stage.SUSPENDED, Stage.WITHDRAWN, Stage.BARRED}),
    Stage.SUSPENDED: frozenset({*ACTIVE_STAGES, Stage.WITHDRAWN, Stage.BARRED}),
    Stage.WITHDRAWN: frozenset({Stage.PRELIMINARY}),
    Stage.BARRED: frozenset({Stage.PRELIMINARY}),
}

#: Clause cited in input errors about a field.
FIELD_CLAUSES: dict[str, str] = {
    "unit_type": "004 (三)(六)(七)(十三)(十四)",
    "mode": "004 (九)(十二)",
    "stage": "004 (十)",
    "consent": "004 (十)",
    "signing": "004 (十六)",
    "dates": "004 (十)(十二)",
    "tier": "004 (三)(六)",
    "money": "004 (六)(十三)(十七)",
}

#: Event dates that must not run backwards, in stage order (004 (十)(十二)).
DATE_ORDER: tuple[str, ...] = (
    "declared_on",
    "entity_confirmed_on",
    "acquisition_completed_on",
    "plan_approved_on",
    "land_supplied_on",
    "completed_on",
)

# Traditional-character and short forms found in source documents and spreadsheets.
_ALIASES: dict[str, str] = {
    "舊村改造": "旧村改造",
    "城鎮社區": "城镇社区",
    "產城融合": "产城融合",
    "整村統籌": "整村统筹",
    "政府主導": "政府主导",
    "公開招引實施主體": "公开招引实施主体",
    "公开招引": "公开招引实施主体",
    "權利人自行改造": "权利人自行改造",
    "自行改造": "权利人自行改造",
    "確認主體": "确认主体",
    "實施方案": "实施方案",
    "開發監管": "开发监管",
    "退出改造": "退出",
    "連片工改工片區": "连片工改工片区",
    "连片工改工": "连片工改工片区",
}

E = TypeVar("E", bound=enum.Enum)


def parse_enum(cls: type[E], value: Any, field_name: str, feature: str | int | None = None) -> E:
    """Read an enum from its Chinese value, English name or a traditional-character alias."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        text = value.strip()
        text = _ALIASES.get(text, text)
        for member in cls:
            if text in (member.value, member.name, member.name.lower()):
                return member
    raise InputError(
        f"{field_name} 的取值 {value!r} 无法识别",
        key=f"unknown_{field_name}",
        field=field_name,
        feature=feature,
        hint="可选: "
        + "、".join(str(m.value) for m in cls)
        + f"(依据 {FIELD_CLAUSES.get(field_name, '')})",
    )


def _check_date(value: Any, field_name: str, feature: str | None) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    if isinstance(value, str) and not value.strip():
        return None
    raise ValidationError(
        f"{field_name} 不是有效日期: {value!r}",
        key="bad_date",
        field=field_name,
        feature=feature,
        hint="日期格式为 YYYY-MM-DD",
    )


def _check_number(
    value: Any, field_name: str, feature: str | None, *, allow_none: bool = True
) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(
            f"{field_name} 须为数值, 实为 {value!r}",
            key="bad_number",
            field=field_name,
            feature=feature,
        )
    if value < 0:
        raise ValidationError(
            f"{field_name} 不能为负数: {value}",
            key="negative_value",
            field=field_name,
            feature=feature,
        )
    return float(value)


@dataclass(frozen=True)
class RightsHolder:
    """A rights-holder (权益人) in the demolition scope: land area and headcount."""

    holder_id: str
    land_area_m2: float
    heads: int = 1
    consented: bool = False
    signed: bool = False

    def __post_init__(self) -> None:
        _check_number(self.land_area_m2, "land_area_m2", self.holder_id, allow_none=False)
        if isinstance(self.heads, bool) or not isinstance(self.heads, int) or self.heads < 0:
            raise ValidationError(
                f"权益人 {self.holder_id} 的人数须为非负整数: {self.heads!r}",
                key="bad_heads",
                field="heads",
                feature=self.holder_id,
            )


@dataclass(frozen=True)
class ConsentFigures:
    """Shares of rights-holders by land area and headcount (consent 004 (十), signing 004 (十六)).

    Attributes
    ----------
    area_share, head_share : float
        Shares as fractions in [0, 1] (0.85 means 85%).
    source : {'computed', 'entered'}
        ``computed`` from the rights registry, or ``entered`` by hand.
    as_of : date, optional
        Date the figures describe; rules ignore figures dated after the evaluation date.
    """

    area_share: float
    head_share: float
    source: Literal["computed", "entered"] = "entered"
    as_of: date | None = None
    area_total_m2: float | None = None
    heads_total: int | None = None
    note: str | None = None
    kind: Literal["consent", "signing"] = "consent"

    def __post_init__(self) -> None:
        clause = FIELD_CLAUSES[self.kind]
        label = "改造意愿" if self.kind == "consent" else "签约比例"
        if self.source not in ("computed", "entered"):
            raise ValidationError(
                f"{label}来源须为 computed(由权益人名册计算)或 entered(人工填报), "
                f"实为 {self.source!r}",
                key="bad_share_source",
                field=f"{self.kind}_source",
            )
        for name in ("area_share", "head_share"):
            value = getattr(self, name)
            fname = f"{self.kind}_{name}"
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValidationError(
                    f"{label}{'面积' if name == 'area_share' else '人数'}占比须为数值, "
                    f"实为 {value!r}(依据 {clause})",
                    key="bad_share",
                    field=fname,
                )
            if value < 0 or value > 1:
                raise ValidationError(
                    f"{label}{'面积' if name == 'area_share' else '人数'}占比 {value!r} "
                    f"超出 0–100% 范围(依据 {clause})",
                    key="share_out_of_range",
                    field=fname,
                    hint="以小数填写, 如 0.85 表示 85%; 不能为负, 也不能超过 1",
                )


def figures_from_holders(
    holders: Iterable[RightsHolder],
    kind: Literal["consent", "signing"] = "consent",
    as_of: date | None = None,
) -> ConsentFigures:
    """Compute consent or signing shares from the rights registry (权益人名册)."""
    hs = list(holders)
    area = sum(h.land_area_m2 for h in hs)
    heads = sum(h.heads for h in hs)
    if area <= 0 or heads <= 0:
        raise ValidationError(
            "权益人名册的土地面积或人数合计为 0, 无法计算占比",
            key="empty_registry",
            field="holders",
            hint=f"补齐权益人土地面积和人数(依据 {FIELD_CLAUSES[kind]})",
        )
    flag = "consented" if kind == "consent" else "signed"
    yes_area = sum(h.land_area_m2 for h in hs if getattr(h, flag))
    yes_heads = sum(h.heads for h in hs if getattr(h, flag))
    return ConsentFigures(
        area_share=yes_area / area,
        head_share=yes_heads / heads,
        source="computed",
        as_of=as_of,
        area_total_m2=area,
        heads_total=heads,
        kind=kind,
    )


@dataclass(frozen=True)
class StageDates:
    """Dates of the events that drive stages and deadlines (004 (十)(十二))."""

    declared_on: date | None = None
    entity_confirmed_on: date | None = None
    acquisition_completed_on: date | None = None
    plan_approved_on: date | None = None
    land_supplied_on: date | None = None
    first_demolition_on: date | None = None
    completed_on: date | None = None

    def check(self, feature: str | None = None) -> None:
        """Raise ValidationError if dates run backwards."""
        for f in fields(self):
            object.__setattr__(self, f.name, _check_date(getattr(self, f.name), f.name, feature))
        present = [(n, getattr(self, n)) for n in DATE_ORDER if getattr(self, n) is not None]
        for (n0, d0), (n1, d1) in pairwise(present):
            if d1 < d0:
                raise ValidationError(
                    f"日期顺序颠倒: {n1}({d1}) 早于 {n0}({d0})"
                    f"(依据 {FIELD_CLAUSES['dates']} 的阶段顺序)",
                    key="dates_out_of_order",
                    field=n1,
                    feature=feature,
                    hint="检查各阶段日期, 后一阶段不能早于前一阶段",
                )
        if (
            self.first_demolition_on
            and self.declared_on
            and self.first_demolition_on < self.declared_on
        ):
            raise ValidationError(
                f"日期顺序颠倒: first_demolition_on({self.first_demolition_on}) "
                f"早于 declared_on({self.declared_on})",
                key="dates_out_of_order",
                field="first_demolition_on",
                feature=feature,
            )

    def __post_init__(self) -> None:
        self.check()


@dataclass(frozen=True)
class UnitMoney:
    """Money and plan figures of a unit (004 (六)(十三)(十七)). All optional, all non-negative."""

    land_price_yuan: float | None = None
    balance_coefficient: float | None = None
    collective_revenue_yuan: float | None = None
    collective_reinvested_yuan: float | None = None
    fiscal_contribution: float | None = None
    floor_area_m2: float | None = None
    parking_spaces: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and isinstance(value, float) and math.isnan(value):
                object.__setattr__(self, f.name, None)
                continue
            _check_number(value, f.name, None)


@dataclass(frozen=True)
class StageEvent:
    """One transition in a unit's history."""

    from_stage: Stage
    to_stage: Stage
    at: date
    note: str | None = None


@dataclass(frozen=True)
class RenewalUnit:
    """A renewal unit (改造单元, 小圈).

    ``version`` is the optimistic-locking counter: :func:`yizhangtu.renewal.workflow.advance`
    returns a copy with ``version + 1``; the store refuses writes with a stale version.
    """

    unit_id: str
    name: str
    town: str
    unit_type: UnitType
    mode: Mode
    land_area_m2: float
    stage: Stage = Stage.PRELIMINARY
    stage_since: date | None = None
    area_id: str | None = None
    old_village_led: bool = False
    consent: ConsentFigures | None = None
    signing: ConsentFigures | None = None
    holders: tuple[RightsHolder, ...] = ()
    dates: StageDates = field(default_factory=StageDates)
    money: UnitMoney = field(default_factory=UnitMoney)
    deadline_exemption: str | None = None
    expropriation_requested: bool = False
    suspended_from: Stage | None = None
    barred_until: date | None = None
    history: tuple[StageEvent, ...] = ()
    synthetic: bool = False
    version: int = 0

    def __post_init__(self) -> None:
        uid = self.unit_id
        if not isinstance(uid, str) or not uid.strip():
            raise ValidationError("单元编号不能为空", key="missing_unit_id", field="unit_id")
        set_ = object.__setattr__
        set_(self, "unit_type", parse_enum(UnitType, self.unit_type, "unit_type", uid))
        set_(self, "mode", parse_enum(Mode, self.mode, "mode", uid))
        set_(self, "stage", parse_enum(Stage, self.stage, "stage", uid))
        if self.suspended_from is not None:
            set_(
                self,
                "suspended_from",
                parse_enum(Stage, self.suspended_from, "suspended_from", uid),
            )
        area = _check_number(self.land_area_m2, "land_area_m2", uid, allow_none=False)
        if not area:
            raise ValidationError(
                f"单元 {uid} 的用地面积须大于 0", key="bad_area", field="land_area_m2", feature=uid
            )
        set_(self, "stage_since", _check_date(self.stage_since, "stage_since", uid))
        set_(self, "barred_until", _check_date(self.barred_until, "barred_until", uid))
        set_(self, "holders", tuple(self.holders))
        set_(self, "history", tuple(self.history))
        self.dates.check(uid)
        if self.stage is Stage.SUSPENDED and self.suspended_from not in ACTIVE_STAGES:
            raise ValidationError(
                f"单元 {uid} 处于暂停, 须注明暂停前阶段 suspended_from(四个阶段之一)",
                key="suspended_without_stage",
                field="suspended_from",
                feature=uid,
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise ValidationError(
                f"单元 {uid} 的版本号须为非负整数: {self.version!r}",
                key="bad_version",
                field="version",
                feature=uid,
            )
        for name in ("consent", "signing"):
            fig = getattr(self, name)
            if fig is not None and not isinstance(fig, ConsentFigures):
                raise ValidationError(
                    f"{name} 须为 ConsentFigures", key="bad_share", field=name, feature=uid
                )

    @property
    def is_old_village_led(self) -> bool:
        """Old-village renewal or led by it (旧村改造为主), 004 (十二)(十四)."""
        return self.old_village_led or self.unit_type is UnitType.OLD_VILLAGE

    @property
    def working_stage(self) -> Stage | None:
        """The active stage the unit is in, or was in when suspended; None if withdrawn/barred."""
        if self.stage in ACTIVE_STAGES:
            return self.stage
        if self.stage is Stage.SUSPENDED:
            return self.suspended_from
        return None

    def computed_figures(self, kind: Literal["consent", "signing"]) -> ConsentFigures | None:
        """Figures computed from the rights registry, if the unit has one."""
        if not self.holders:
            return None
        return figures_from_holders(self.holders, kind, as_of=None)


def unit_as_of(unit: RenewalUnit, at: date) -> RenewalUnit:
    """Return the unit as known on ``at``: later event dates and later figures are ignored.

    The stage is taken from the history when it records the stage on ``at``.
    """
    d = unit.dates
    masked = {
        f.name: (v if v is not None and v <= at else None)
        for f in fields(d)
        for v in [getattr(d, f.name)]
    }
    changes: dict[str, Any] = {"dates": replace(d, **masked)}
    for name in ("consent", "signing"):
        fig = getattr(unit, name)
        if fig is not None and fig.as_of is not None and fig.as_of > at:
            changes[name] = None
    past = [e for e in unit.history if e.at <= at]
    if unit.history and len(past) < len(unit.history):
        if past:
            changes["stage"] = past[-1].to_stage
            changes["stage_since"] = past[-1].at
            changes["suspended_from"] = (
                past[-1].from_stage if past[-1].to_stage is Stage.SUSPENDED else None
            )
        else:
            changes["stage"] = unit.history[0].from_stage
            changes["stage_since"] = None
            changes["suspended_from"] = None
    return replace(unit, **changes)


@dataclass(frozen=True)
class Zone:
    """A 大圈, 中圈 or contiguous 工改工 cluster, with its ellipsoidal area."""

    zone_id: str
    tier: ZoneTier
    name: str = ""
    town: str | None = None
    parent_id: str | None = None
    area_m2: float | None = None
    planned_scale_m2: float | None = None
    started_on: date | None = None
    first_demolition_on: date | None = None
    completed_on: date | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "tier", parse_enum(ZoneTier, self.tier, "tier", self.zone_id))
        for name in ("area_m2", "planned_scale_m2"):
            set_(self, name, _check_number(getattr(self, name), name, self.zone_id))
        for name in ("started_on", "first_demolition_on", "completed_on"):
            set_(self, name, _check_date(getattr(self, name), name, self.zone_id))
        seq = [(n, getattr(self, n)) for n in ("started_on", "first_demolition_on", "completed_on")]
        seq = [(n, d) for n, d in seq if d is not None]
        for (n0, d0), (n1, d1) in pairwise(seq):
            if d1 < d0:
                raise ValidationError(
                    f"片区 {self.zone_id} 日期顺序颠倒: {n1}({d1}) 早于 {n0}({d0})(依据 004 (六))",
                    key="dates_out_of_order",
                    field=n1,
                    feature=self.zone_id,
                )


@dataclass(frozen=True)
class BookedTask:
    """A 工改居商 unit started on credit (挂账), 004 (十四); open until ``cleared_on``."""

    unit_id: str
    booked_on: date
    cleared_on: date | None = None
    owed_industrial_m2: float | None = None

    def open_on(self, at: date) -> bool:
        """Tell whether the booked task is still owed on ``at``."""
        return self.booked_on <= at and (self.cleared_on is None or self.cleared_on > at)


@dataclass(frozen=True)
class TownYearTask:
    """A town's yearly 工改工 task and the land-banking part of it (004 (六))."""

    year: int
    industrial_task_m2: float
    land_banking_task_m2: float
    land_banked_m2: float | None = None


@dataclass(frozen=True)
class TownAccount:
    """Per-town facts the town rules need (镇街台账)."""

    town: str
    fiscal_baseline: float | None = None
    booked: tuple[BookedTask, ...] = ()
    tasks: tuple[TownYearTask, ...] = ()
    linkage_alternative: str | None = None
    synthetic: bool = False


@dataclass(frozen=True)
class RenewalLibrary:
    """Zones, units and town accounts evaluated together."""

    units: tuple[RenewalUnit, ...] = ()
    zones: tuple[Zone, ...] = ()
    towns: tuple[TownAccount, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "zones", tuple(self.zones))
        object.__setattr__(self, "towns", tuple(self.towns))
        seen: set[str] = set()
        for u in self.units:
            if u.unit_id in seen:
                raise ValidationError(
                    f"单元编号重复: {u.unit_id}",
                    key="duplicate_unit_id",
                    field="unit_id",
                    feature=u.unit_id,
                )
            seen.add(u.unit_id)

    def zone(self, zone_id: str | None) -> Zone | None:
        """Zone by id, or None."""
        if zone_id is None:
            return None
        return next((z for z in self.zones if z.zone_id == zone_id), None)

    def town(self, name: str) -> TownAccount | None:
        """Town account by name, or None."""
        return next((t for t in self.towns if t.town == name), None)

    def town_names(self) -> list[str]:
        """Towns that have units or accounts, sorted."""
        return sorted({u.town for u in self.units} | {t.town for t in self.towns})

    def units_in_town(self, name: str) -> list[RenewalUnit]:
        """Units of one town."""
        return [u for u in self.units if u.town == name]

    def children(self, zone_id: str) -> list[Zone]:
        """Zones whose parent is ``zone_id``."""
        return [z for z in self.zones if z.parent_id == zone_id]

    def units_in_zone(self, zone_id: str) -> list[RenewalUnit]:
        """Units assigned to ``zone_id``."""
        return [u for u in self.units if u.area_id == zone_id]

    def priority_zone_of(self, unit: RenewalUnit) -> Zone | None:
        """Return the 大圈 a unit belongs to through its zone chain, or None."""
        z = self.zone(unit.area_id)
        guard = 0
        while z is not None and guard <= len(self.zones):
            if z.tier is ZoneTier.PRIORITY_ZONE:
                return z
            z = self.zone(z.parent_id)
            guard += 1
        return None


# ---------------------------------------------------------------------- flat records

_RECORD_SCALARS = (
    "unit_id",
    "name",
    "town",
    "unit_type",
    "mode",
    "land_area_m2",
    "stage",
    "stage_since",
    "area_id",
    "old_village_led",
    "deadline_exemption",
    "expropriation_requested",
    "suspended_from",
    "barred_until",
    "synthetic",
    "version",
)


def _jsonish(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def unit_to_record(unit: RenewalUnit) -> dict[str, Any]:
    """Flatten a unit to one record (dates as ISO text; holders and history as JSON text)."""
    rec: dict[str, Any] = {k: _jsonish(getattr(unit, k)) for k in _RECORD_SCALARS}
    for kind in ("consent", "signing"):
        fig: ConsentFigures | None = getattr(unit, kind)
        rec[f"{kind}_area_share"] = fig.area_share if fig and fig.source == "entered" else None
        rec[f"{kind}_head_share"] = fig.head_share if fig and fig.source == "entered" else None
        rec[f"{kind}_as_of"] = _jsonish(fig.as_of) if fig and fig.source == "entered" else None
    for f in fields(unit.dates):
        rec[f.name] = _jsonish(getattr(unit.dates, f.name))
    for f in fields(unit.money):
        rec[f.name] = getattr(unit.money, f.name)
    rec["holders"] = (
        json.dumps([h.__dict__ for h in unit.holders], ensure_ascii=False) if unit.holders else None
    )
    rec["history"] = (
        json.dumps(
            [
                {
                    "from": e.from_stage.value,
                    "to": e.to_stage.value,
                    "at": e.at.isoformat(),
                    "note": e.note,
                }
                for e in unit.history
            ],
            ensure_ascii=False,
        )
        if unit.history
        else None
    )
    return rec


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _bool(value: Any, field_name: str, feature: str | None) -> bool:
    if _blank(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "是", "y"):
        return True
    if text in ("false", "no", "0", "否", "n"):
        return False
    raise ValidationError(
        f"{field_name} 须为 是/否, 实为 {value!r}",
        key="bad_bool",
        field=field_name,
        feature=feature,
    )


def _with_feature(exc: ValidationError, feature: str) -> ValidationError:
    exc.detail = ErrorDetail(file=exc.detail.file, feature=feature, field=exc.detail.field)
    return exc


def unit_from_record(rec: Mapping[str, Any]) -> RenewalUnit:
    """Build a unit from a flat record (see :func:`unit_to_record`), checking every field."""
    r: dict[str, Any] = {k: (None if _blank(v) else v) for k, v in rec.items()}
    uid = r.get("unit_id")
    uid = str(uid).strip() if uid is not None else None
    if not uid:
        raise ValidationError("单元编号 unit_id 不能为空", key="missing_unit_id", field="unit_id")
    for req in ("town", "unit_type", "mode", "land_area_m2"):
        if r.get(req) is None:
            raise ValidationError(
                f"单元 {uid} 缺少 {req}", key="missing_field", field=req, feature=uid
            )
    figures: dict[str, ConsentFigures | None] = {}
    kinds: tuple[Literal["consent", "signing"], ...] = ("consent", "signing")
    for kind in kinds:
        a, h = r.get(f"{kind}_area_share"), r.get(f"{kind}_head_share")
        if a is None and h is None:
            figures[kind] = None
            continue
        if a is None or h is None:
            missing = f"{kind}_area_share" if a is None else f"{kind}_head_share"
            raise ValidationError(
                f"单元 {uid} 的{'改造意愿' if kind == 'consent' else '签约'}"
                "须同时填写面积占比和人数占比"
                f"(依据 {FIELD_CLAUSES[kind]})",
                key="share_incomplete",
                field=missing,
                feature=uid,
            )
        try:
            figures[kind] = ConsentFigures(
                area_share=float(a)
                if isinstance(a, int | float | str) and not isinstance(a, bool)
                else a,
                head_share=float(h)
                if isinstance(h, int | float | str) and not isinstance(h, bool)
                else h,
                source="entered",
                as_of=_check_date(r.get(f"{kind}_as_of"), f"{kind}_as_of", uid),
                kind=kind,
            )
        except ValidationError as exc:
            raise _with_feature(exc, uid) from None
        except ValueError:
            raise ValidationError(
                f"单元 {uid} 的{kind}占比不是数值",
                key="bad_share",
                field=f"{kind}_area_share",
                feature=uid,
            ) from None
    holders: tuple[RightsHolder, ...] = ()
    if r.get("holders"):
        raw = r["holders"]
        try:
            items = json.loads(raw) if isinstance(raw, str) else list(raw)
            holders = tuple(RightsHolder(**h) for h in items)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"单元 {uid} 的权益人名册无法解读: {exc}",
                key="bad_holders",
                field="holders",
                feature=uid,
            ) from None
    history: tuple[StageEvent, ...] = ()
    if r.get("history"):
        try:
            history = tuple(
                StageEvent(
                    parse_enum(Stage, e["from"], "stage", uid),
                    parse_enum(Stage, e["to"], "stage", uid),
                    date.fromisoformat(e["at"]),
                    e.get("note"),
                )
                for e in json.loads(r["history"])
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError(
                f"单元 {uid} 的阶段历史无法解读: {exc}",
                key="bad_history",
                field="history",
                feature=uid,
            ) from None
    try:
        dates = StageDates(
            **{f.name: _check_date(r.get(f.name), f.name, uid) for f in fields(StageDates)}
        )
    except ValidationError as exc:
        raise _with_feature(exc, uid) from None
    money_kw: dict[str, Any] = {}
    for f in fields(UnitMoney):
        v = r.get(f.name)
        if v is not None and isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise ValidationError(
                    f"{f.name} 须为数值: {v!r}", key="bad_number", field=f.name, feature=uid
                ) from None
        money_kw[f.name] = v
    if money_kw.get("parking_spaces") is not None:
        money_kw["parking_spaces"] = int(money_kw["parking_spaces"])
    try:
        money = UnitMoney(**money_kw)
    except ValidationError as exc:
        raise _with_feature(exc, uid) from None
    land: Any = r.get("land_area_m2")
    if isinstance(land, str):
        try:
            land = float(land)
        except ValueError:
            raise ValidationError(
                f"land_area_m2 须为数值: {land!r}",
                key="bad_number",
                field="land_area_m2",
                feature=uid,
            ) from None
    version = r.get("version")
    return RenewalUnit(
        unit_id=uid,
        name=str(r.get("name") or uid),
        town=str(r["town"]),
        unit_type=r["unit_type"],
        mode=r["mode"],
        land_area_m2=land,
        stage=r.get("stage") or Stage.PRELIMINARY,
        stage_since=r.get("stage_since"),
        area_id=str(r["area_id"]) if r.get("area_id") is not None else None,
        old_village_led=_bool(r.get("old_village_led"), "old_village_led", uid),
        consent=figures["consent"],
        signing=figures["signing"],
        holders=holders,
        dates=dates,
        money=money,
        deadline_exemption=r.get("deadline_exemption"),
        expropriation_requested=_bool(
            r.get("expropriation_requested"), "expropriation_requested", uid
        ),
        suspended_from=r.get("suspended_from"),
        barred_until=r.get("barred_until"),
        history=history,
        synthetic=_bool(r.get("synthetic"), "synthetic", uid),
        version=int(version) if version is not None else 0,
    )
