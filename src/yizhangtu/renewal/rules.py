"""Renewal rules (改造规则), registered by id; the policy pack switches them on.

Every number comes from the pack: rules read parameters through ``ctx.param`` and compare.
Thresholds "以上 / 不低于 / 不少于" include the number and deadlines "X 内" include their
last day (民法典 第一千二百五十九条), via :func:`~yizhangtu.policy.rules.at_least`.

Scopes
------
``unit``        one renewal unit (gate rules also guard workflow transitions)
``transition``  a unit and a target stage
``zone``        a 大圈 / 中圈 / 连片工改工片区
``placement``   a spatial containment fact computed by :mod:`yizhangtu.renewal.views`
``town``        one town (镇街)
``library``     the whole library
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from yizhangtu.errors import InputError, PolicyError
from yizhangtu.geo.area import convert_area
from yizhangtu.policy.pack import PolicyPack, add_period
from yizhangtu.policy.rules import Finding, RuleContext, RuleRegistry, at_least, at_most
from yizhangtu.renewal.model import (
    ACTIVE_STAGES,
    STAGE_GRAPH,
    ConsentFigures,
    RenewalLibrary,
    RenewalUnit,
    Stage,
    TownAccount,
    Zone,
    ZoneTier,
    parse_enum,
    unit_as_of,
)

__all__ = [
    "PARAM_UNITS",
    "RULES",
    "Deadline",
    "Placement",
    "TownSubject",
    "TransitionSubject",
    "collapse_param_required",
    "evaluate_library",
    "evaluate_placements",
    "evaluate_town",
    "evaluate_transition",
    "evaluate_unit",
    "evaluate_zone",
    "library_as_of",
    "linkage_areas",
    "prepare_pack",
    "resolve_figures",
    "unit_bar_until",
    "unit_deadlines",
    "zone_deadlines",
]

RULES = RuleRegistry("renewal")

#: Unit of every parameter the renewal rules read. A pack with another unit is refused.
PARAM_UNITS: dict[str, str] = {
    "unit_types": "list",
    "modes": "list",
    "priority_zone_area_min": "km2",
    "priority_zone_area_max": "km2",
    "area_plan_area_min": "km2",
    "area_plan_area_max": "km2",
    "unit_area_max": "mu",
    "unit_area_cap_relaxed_types": "list",
    "transmission_elasticity": "ratio",
    "priority_zone_scale_share_min": "ratio",
    "industrial_cluster_area_min": "mu",
    "industrial_cluster_first_demolition": "year",
    "industrial_cluster_completion": "year",
    "land_banking_share_min": "ratio",
    "industry_city_area_min": "mu",
    "industry_city_types": "list",
    "parking_types": "list",
    "parking_eligible_area_min": "mu",
    "parking_rate": "spaces_per_100m2",
    "consent_share_min": "ratio",
    "consent_required_from_stage": "text",
    "share_source_precedence": "text",
    "acquisition_modes": "list",
    "acquisition_deadline": "year",
    "acquisition_deadline_old_village": "year",
    "land_supply_modes": "list",
    "land_supply_deadline": "month",
    "restart_bar_period": "year",
    "deadline_exemption_reasons": "list",
    "balance_coefficient": "coefficient",
    "balance_coefficient_types": "list",
    "balance_fund_basis": "text",
    "balance_fund_split": "split",
    "reinvestment_share_min": "ratio",
    "reinvestment_types": "list",
    "linkage_share_min": "ratio",
    "linkage_industrial_types": "list",
    "linkage_rescom_types": "list",
    "linkage_exclude_old_village": "bool",
    "reserve_land_split": "split",
    "expropriation_signing_share_min": "ratio",
    "fiscal_contribution_share_min": "ratio",
    "fiscal_contribution_types": "list",
    "fiscal_contribution_required_from_stage": "text",
    "hierarchy_tolerance": "m",
    "hierarchy_outside_area_max": "m2",
    "timeline_horizon": "day",
}

#: Floor area per parking-rate unit: the unit ``spaces_per_100m2`` counts per this many m².
PARKING_RATE_BASE_M2 = 100


def _p(*names: str) -> dict[str, str]:
    return {n: PARAM_UNITS[n] for n in names}


def _mu(m2: float) -> float:
    return float(convert_area(m2, "mu"))


def _km2(m2: float) -> float:
    return float(convert_area(m2, "km2"))


def _stage_param(ctx: RuleContext, name: str) -> Stage:
    value = ctx.param(name)
    try:
        return parse_enum(Stage, value, name)
    except InputError:
        raise PolicyError(
            f"政策包 {ctx.pack.id} 的参数 {name} 须为四个阶段之一, 实为 {value!r}",
            key="policy_param_value",
            field=name,
        ) from None


def _library(ctx: RuleContext) -> RenewalLibrary | None:
    return ctx.extra.get("library")


# ---------------------------------------------------------------------- consent figures

_SOURCE_LABELS = {"computed": "权益人名册计算", "entered": "人工填报"}


def resolve_figures(
    unit: RenewalUnit, kind: str, precedence: str
) -> tuple[ConsentFigures | None, ConsentFigures | None]:
    """Consent or signing figures to use, and the other source's figures if both exist.

    ``precedence`` (pack parameter ``share_source_precedence``) is ``computed`` or ``entered``.
    """
    if precedence not in _SOURCE_LABELS:
        raise PolicyError(
            f"参数 share_source_precedence 须为 computed 或 entered, 实为 {precedence!r}",
            key="policy_param_value",
            field="share_source_precedence",
        )
    computed = unit.computed_figures(kind)  # type: ignore[arg-type]
    entered = getattr(unit, kind)
    if entered is not None and entered.source == "computed":
        computed, entered = computed or entered, None
    first, second = (computed, entered) if precedence == "computed" else (entered, computed)
    if first is None:
        return second, None
    return first, second


def _figure_facts(fig: ConsentFigures, other: ConsentFigures | None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "area_share": fig.area_share,
        "head_share": fig.head_share,
        "source": fig.source,
        "source_label": _SOURCE_LABELS[fig.source],
        "as_of": fig.as_of,
    }
    if fig.area_total_m2 is not None:
        facts["area_total_m2"] = fig.area_total_m2
        facts["heads_total"] = fig.heads_total
    if other is not None:
        facts["other_source"] = other.source
        facts["other_area_share"] = other.area_share
        facts["other_head_share"] = other.head_share
    return facts


def _short_of(fig: ConsentFigures, minimum: float) -> str:
    short = [
        label
        for label, v in (("面积", fig.area_share), ("人数", fig.head_share))
        if not at_least(v, minimum)
    ]
    return "、".join(short)


# ---------------------------------------------------------------------- deadlines

_DEADLINE_LABELS = {
    "acquisition": "不动产权益收购",
    "land_supply": "供地",
    "cluster_first_demolition": "首期拆除整备",
    "cluster_completion": "全部改造",
}


@dataclass(frozen=True)
class Deadline:
    """A dated obligation: what, from when, due when, done when."""

    kind: str
    subject: str
    start: date
    due: date
    done_on: date | None
    period: int
    period_unit: str
    param: str
    clause: str | None

    @property
    def label(self) -> str:
        """Chinese label."""
        return _DEADLINE_LABELS.get(self.kind, self.kind)

    def status(self, at: date) -> str:
        """``done``, ``done_late``, ``pending``, ``due_today`` or ``overdue`` on ``at``."""
        if self.done_on is not None and self.done_on <= at:
            return "done" if self.done_on <= self.due else "done_late"
        if at < self.due:
            return "pending"
        if at == self.due:
            return "due_today"
        return "overdue"

    def days_left(self, at: date) -> int:
        """Days from ``at`` to the due date (negative when overdue)."""
        return (self.due - at).days

    def facts(self, at: date) -> dict[str, Any]:
        """Facts for findings and timelines."""
        return {
            "deadline": self.kind,
            "deadline_label": self.label,
            "start": self.start,
            "due": self.due,
            "done_on": self.done_on,
            "period": self.period,
            "period_unit": self.period_unit,
            "days_left": self.days_left(at),
            "days_overdue": max(0, -self.days_left(at)),
        }


Getter = Callable[[str], Any]


def _getter(pack: PolicyPack, at: date | None) -> Getter:
    return lambda name: pack.param(name, unit=PARAM_UNITS[name], at=at)


def _unit_deadlines(unit: RenewalUnit, get: Getter, pack: PolicyPack) -> list[Deadline]:
    out: list[Deadline] = []
    d = unit.dates
    if d.entity_confirmed_on is not None and unit.mode.value in get("acquisition_modes"):
        name = (
            "acquisition_deadline_old_village"
            if unit.is_old_village_led
            else "acquisition_deadline"
        )
        n = get(name)
        out.append(
            Deadline(
                "acquisition",
                unit.unit_id,
                d.entity_confirmed_on,
                add_period(d.entity_confirmed_on, n, PARAM_UNITS[name]),
                d.acquisition_completed_on,
                n,
                PARAM_UNITS[name],
                name,
                pack.parameter(name).clause,
            )
        )
    if d.plan_approved_on is not None and unit.mode.value in get("land_supply_modes"):
        n = get("land_supply_deadline")
        out.append(
            Deadline(
                "land_supply",
                unit.unit_id,
                d.plan_approved_on,
                add_period(d.plan_approved_on, n, PARAM_UNITS["land_supply_deadline"]),
                d.land_supplied_on,
                n,
                PARAM_UNITS["land_supply_deadline"],
                "land_supply_deadline",
                pack.parameter("land_supply_deadline").clause,
            )
        )
    return out


def unit_deadlines(unit: RenewalUnit, pack: PolicyPack, at: date | None = None) -> list[Deadline]:
    """Deadlines of 004 (十二) that apply to ``unit`` (as known on ``at`` when given)."""
    u = unit_as_of(unit, at) if at is not None else unit
    return _unit_deadlines(u, _getter(pack, at), pack)


def _exempt(unit: RenewalUnit, get: Getter) -> bool:
    reason = (unit.deadline_exemption or "").strip()
    return bool(reason) and reason in get("deadline_exemption_reasons")


def _bar_until(unit: RenewalUnit, at: date, get: Getter, pack: PolicyPack) -> date | None:
    if _exempt(unit, get):
        return None
    ends = []
    for dl in _unit_deadlines(unit, get, pack):
        if dl.status(at) in ("overdue", "done_late"):
            ends.append(
                add_period(dl.due, get("restart_bar_period"), PARAM_UNITS["restart_bar_period"])
            )
    return max(ends) if ends else None


def unit_bar_until(unit: RenewalUnit, pack: PolicyPack, at: date) -> date | None:
    """Last day of the restart bar caused by unexempted overdue deadlines (004 (十二)), or None."""
    u = unit_as_of(unit, at)
    return _bar_until(u, at, _getter(pack, at), pack)


def zone_deadlines(zone: Zone, pack: PolicyPack, at: date | None = None) -> list[Deadline]:
    """Deadlines of a contiguous 工改工 cluster (004 (六)): first demolition and completion."""
    if zone.tier is not ZoneTier.INDUSTRIAL_CLUSTER or zone.started_on is None:
        return []
    get = _getter(pack, at)
    out = []
    for kind, name, done in (
        (
            "cluster_first_demolition",
            "industrial_cluster_first_demolition",
            zone.first_demolition_on,
        ),
        ("cluster_completion", "industrial_cluster_completion", zone.completed_on),
    ):
        n = get(name)
        if done is not None and at is not None and done > at:
            done = None
        out.append(
            Deadline(
                kind,
                zone.zone_id,
                zone.started_on,
                add_period(zone.started_on, n, PARAM_UNITS[name]),
                done,
                n,
                PARAM_UNITS[name],
                name,
                pack.parameter(name).clause,
            )
        )
    return out


# ====================================================================== transition rules


@dataclass(frozen=True)
class TransitionSubject:
    """A unit (as known on the date) and the stage it would move to."""

    unit: RenewalUnit
    to_stage: Stage


@RULES.rule("renewal.stage_order", scope="transition", outcomes=("pass", "fail", "resume_mismatch"))
def stage_order(ctx: RuleContext, s: TransitionSubject) -> Finding:
    """Follow the four stages in order (004 (十)); a suspension resumes where it left."""
    u, to = s.unit, s.to_stage
    allowed = sorted(STAGE_GRAPH[u.stage], key=lambda st: list(Stage).index(st))
    facts = {
        "unit_id": u.unit_id,
        "from_stage": u.stage.value,
        "to_stage": to.value,
        "allowed": "、".join(st.value for st in allowed),
    }
    if to not in STAGE_GRAPH[u.stage]:
        return ctx.finding("fail", **facts)
    if u.stage is Stage.SUSPENDED and to in ACTIVE_STAGES and to is not u.suspended_from:
        return ctx.finding(
            "resume_mismatch",
            suspended_from=u.suspended_from.value if u.suspended_from else "",
            **facts,
        )
    return ctx.finding("pass", **facts)


# ====================================================================== unit rules


@RULES.rule(
    "renewal.type_mode",
    scope="unit",
    params=_p("unit_types", "modes"),
    outcomes=("pass", "type_not_allowed", "mode_not_allowed"),
)
def type_mode(ctx: RuleContext, u: RenewalUnit) -> Finding:
    """Check that the unit's type and mode are ones the pack admits (004 (三)(六)(七)(九)(十二))."""
    types, modes = ctx.param("unit_types"), ctx.param("modes")
    facts = {"unit_id": u.unit_id, "unit_type": u.unit_type.value, "mode": u.mode.value}
    if u.unit_type.value not in types:
        return ctx.finding("type_not_allowed", allowed="、".join(types), **facts)
    if u.mode.value not in modes:
        return ctx.finding("mode_not_allowed", allowed="、".join(modes), **facts)
    return ctx.finding("pass", **facts)


@RULES.rule(
    "renewal.consent",
    scope="unit",
    gate=True,
    params=_p("consent_share_min", "consent_required_from_stage", "share_source_precedence"),
    outcomes=("pass", "fail", "pending", "missing", "not_collected"),
)
def consent(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Consent ≥ threshold by land area AND headcount before 前期工作 ends (004 (十))."""
    stage = u.working_stage
    if stage is None:
        return None
    minimum = ctx.param("consent_share_min")
    required_from = _stage_param(ctx, "consent_required_from_stage")
    required = ACTIVE_STAGES.index(stage) >= ACTIVE_STAGES.index(required_from)
    fig, other = resolve_figures(u, "consent", ctx.param("share_source_precedence"))
    base = {
        "unit_id": u.unit_id,
        "stage": stage.value,
        "min_share": minimum,
        "required_from": required_from.value,
    }
    if fig is None:
        return ctx.finding("missing" if required else "not_collected", **base)
    facts = {**base, **_figure_facts(fig, other), "short_of": _short_of(fig, minimum)}
    if not facts["short_of"]:
        return ctx.finding("pass", **facts)
    return ctx.finding("fail" if required else "pending", **facts)


@RULES.rule(
    "renewal.entity_confirmed",
    scope="unit",
    gate=True,
    params=_p("acquisition_modes"),
    outcomes=("pass", "no_entity", "no_acquisition"),
)
def entity_confirmed(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """实施方案 needs a confirmed entity and, where required, completed acquisition (004 (十))."""
    stage = u.working_stage
    if stage is None or ACTIVE_STAGES.index(stage) <= ACTIVE_STAGES.index(Stage.ENTITY):
        return None
    facts = {"unit_id": u.unit_id, "stage": stage.value, "mode": u.mode.value}
    if u.dates.entity_confirmed_on is None:
        return ctx.finding("no_entity", **facts)
    if u.mode.value in ctx.param("acquisition_modes") and u.dates.acquisition_completed_on is None:
        return ctx.finding(
            "no_acquisition", entity_confirmed_on=u.dates.entity_confirmed_on, **facts
        )
    return ctx.finding(
        "pass",
        entity_confirmed_on=u.dates.entity_confirmed_on,
        acquisition_completed_on=u.dates.acquisition_completed_on,
        **facts,
    )


@RULES.rule("renewal.plan_approved", scope="unit", gate=True, outcomes=("pass", "fail"))
def plan_approved(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """开发监管 needs an approved 实施方案 (004 (十))."""
    if u.working_stage is not Stage.SUPERVISION:
        return None
    facts = {"unit_id": u.unit_id, "stage": Stage.SUPERVISION.value}
    if u.dates.plan_approved_on is None:
        return ctx.finding("fail", **facts)
    return ctx.finding("pass", plan_approved_on=u.dates.plan_approved_on, **facts)


_DEADLINE_PARAMS = _p(
    "acquisition_modes",
    "acquisition_deadline",
    "acquisition_deadline_old_village",
    "land_supply_modes",
    "land_supply_deadline",
    "restart_bar_period",
    "deadline_exemption_reasons",
)


@RULES.rule(
    "renewal.bar_entry", scope="unit", gate=True, params=_DEADLINE_PARAMS, outcomes=("pass", "fail")
)
def bar_entry(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """禁止重启 only on an unexempted missed deadline (004 (十二))."""
    if u.stage is not Stage.BARRED:
        return None
    until = _bar_until(u, ctx.at, ctx.param, ctx.pack)
    facts = {"unit_id": u.unit_id, "exemption": u.deadline_exemption or ""}
    if until is None:
        return ctx.finding("fail", **facts)
    return ctx.finding(
        "pass", barred_until=until, bar_years=ctx.param("restart_bar_period"), **facts
    )


@RULES.rule("renewal.restart_bar", scope="unit", gate=True, outcomes=("pass", "fail"))
def restart_bar(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Refuse a restart before the bar for a missed deadline ends (004 (十二))."""
    if u.stage is not Stage.PRELIMINARY or u.barred_until is None:
        return None
    facts: dict[str, Any] = {"unit_id": u.unit_id, "barred_until": u.barred_until}
    if ctx.at <= u.barred_until:
        return ctx.finding("fail", days_left=(u.barred_until - ctx.at).days, **facts)
    return ctx.finding("pass", **facts)


def _deadline_finding(ctx: RuleContext, dl: Deadline, u: RenewalUnit | None) -> Finding:
    status = dl.status(ctx.at)
    facts: dict[str, Any] = {"unit_id": dl.subject, **dl.facts(ctx.at)}
    if u is not None and status in ("overdue", "done_late"):
        reason = (u.deadline_exemption or "").strip()
        facts["exemption"] = reason
        if reason and reason in ctx.param("deadline_exemption_reasons"):
            return ctx.finding("overdue_exempt" if status == "overdue" else "done", **facts)
        facts["barred_until"] = add_period(
            dl.due, ctx.param("restart_bar_period"), PARAM_UNITS["restart_bar_period"]
        )
        facts["bar_years"] = ctx.param("restart_bar_period")
    return ctx.finding(status, **facts)


_DEADLINE_OUTCOMES = ("done", "done_late", "pending", "due_today", "overdue", "overdue_exempt")


@RULES.rule(
    "renewal.acquisition_deadline",
    scope="unit",
    params=_DEADLINE_PARAMS,
    outcomes=_DEADLINE_OUTCOMES,
)
def acquisition_deadline(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Acquisition within the period after the entity is chosen (004 (十二))."""
    if u.working_stage is None:
        return None
    for dl in _unit_deadlines(u, ctx.param, ctx.pack):
        if dl.kind == "acquisition":
            return _deadline_finding(ctx, dl, u)
    return None


@RULES.rule(
    "renewal.land_supply_deadline",
    scope="unit",
    params=_DEADLINE_PARAMS,
    outcomes=_DEADLINE_OUTCOMES,
)
def land_supply_deadline(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Land supply within the period after plan approval (004 (十二))."""
    if u.working_stage is None:
        return None
    for dl in _unit_deadlines(u, ctx.param, ctx.pack):
        if dl.kind == "land_supply":
            return _deadline_finding(ctx, dl, u)
    return None


@RULES.rule(
    "renewal.unit_area_cap",
    scope="unit",
    params=_p("unit_area_max", "unit_area_cap_relaxed_types"),
    outcomes=("pass", "fail", "relaxed"),
)
def unit_area_cap(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """小圈 units stay within the unit-size cap (004 (三)); 城镇社区 may be relaxed (004 (七))."""
    if u.stage is Stage.WITHDRAWN:
        return None
    cap = ctx.param("unit_area_max")
    facts = {
        "unit_id": u.unit_id,
        "area_mu": _mu(u.land_area_m2),
        "max_mu": cap,
        "unit_type": u.unit_type.value,
    }
    if at_most(facts["area_mu"], cap):
        return ctx.finding("pass", **facts)
    if u.unit_type.value in ctx.param("unit_area_cap_relaxed_types"):
        return ctx.finding("relaxed", **facts)
    return ctx.finding("fail", **facts)


@RULES.rule(
    "renewal.industry_city_scale",
    scope="unit",
    params=_p("industry_city_types", "industry_city_area_min"),
    outcomes=("pass", "fail"),
)
def industry_city_scale(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """产城融合 units reach the minimum contiguous size (004 (六))."""
    if u.unit_type.value not in ctx.param("industry_city_types") or u.stage is Stage.WITHDRAWN:
        return None
    minimum = ctx.param("industry_city_area_min")
    facts = {"unit_id": u.unit_id, "area_mu": _mu(u.land_area_m2), "min_mu": minimum}
    return ctx.finding("pass" if at_least(facts["area_mu"], minimum) else "fail", **facts)


@RULES.rule(
    "renewal.parking",
    scope="unit",
    params=_p("parking_types", "parking_eligible_area_min", "parking_rate"),
    outcomes=("pass", "below", "eligible", "not_eligible"),
)
def parking(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Check parking of large contiguous 工改工 units at the reduced rate (004 (六))."""
    if u.unit_type.value not in ctx.param("parking_types") or u.stage is Stage.WITHDRAWN:
        return None
    minimum = ctx.param("parking_eligible_area_min")
    rate = ctx.param("parking_rate")
    m = u.money
    facts: dict[str, Any] = {
        "unit_id": u.unit_id,
        "area_mu": _mu(u.land_area_m2),
        "min_mu": minimum,
        "rate": rate,
        "floor_area_m2": m.floor_area_m2,
        "parking_spaces": m.parking_spaces,
    }
    eligible = at_least(facts["area_mu"], minimum)
    if not eligible:
        return ctx.finding("not_eligible", **facts) if m.parking_spaces is not None else None
    if m.floor_area_m2 is None or m.parking_spaces is None:
        return ctx.finding("eligible", **facts)
    required = m.floor_area_m2 / PARKING_RATE_BASE_M2 * rate
    facts["required_spaces"] = required
    facts["required_spaces_rounded"] = math.ceil(required - 1e-9)
    return ctx.finding("pass" if at_least(m.parking_spaces, required) else "below", **facts)


@RULES.rule(
    "renewal.balance_coefficient",
    scope="unit",
    params=_p("balance_coefficient", "balance_coefficient_types"),
    outcomes=("pass", "fail", "missing"),
)
def balance_coefficient(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """工改居商 units apply the balance coefficient of their mode (004 (十三))."""
    if u.unit_type.value not in ctx.param("balance_coefficient_types"):
        return None
    coefs = ctx.param("balance_coefficient")
    if isinstance(coefs, dict):
        if u.mode.value not in coefs:
            return None
        required = coefs[u.mode.value]
    else:
        required = coefs
    applied = u.money.balance_coefficient
    facts = {"unit_id": u.unit_id, "mode": u.mode.value, "required": required, "applied": applied}
    if applied is None:
        return ctx.finding("missing", **facts)
    ok = math.isclose(applied, required, rel_tol=1e-9, abs_tol=1e-12)
    return ctx.finding("pass" if ok else "fail", **facts)


@RULES.rule(
    "renewal.reinvestment",
    scope="unit",
    params=_p("reinvestment_share_min", "reinvestment_types"),
    outcomes=("pass", "fail", "missing"),
)
def reinvestment(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Check that collectives reinvest the minimum share of 居商 revenue (004 (十三))."""
    m = u.money
    if u.unit_type.value not in ctx.param("reinvestment_types") or not m.collective_revenue_yuan:
        return None
    minimum = ctx.param("reinvestment_share_min")
    facts: dict[str, Any] = {
        "unit_id": u.unit_id,
        "revenue_yuan": m.collective_revenue_yuan,
        "min_share": minimum,
        "required_yuan": m.collective_revenue_yuan * minimum,
        "reinvested_yuan": m.collective_reinvested_yuan,
    }
    if m.collective_reinvested_yuan is None:
        return ctx.finding("missing", **facts)
    facts["share"] = m.collective_reinvested_yuan / m.collective_revenue_yuan
    return ctx.finding("pass" if at_least(facts["share"], minimum) else "fail", **facts)


@RULES.rule(
    "renewal.expropriation",
    scope="unit",
    params=_p("expropriation_signing_share_min", "share_source_precedence"),
    outcomes=("eligible", "not_eligible", "refused", "no_figures"),
)
def expropriation(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Allow applying to expropriate when signing reaches the threshold (004 (十六))."""
    if u.working_stage is None:
        return None
    fig, other = resolve_figures(u, "signing", ctx.param("share_source_precedence"))
    minimum = ctx.param("expropriation_signing_share_min")
    base = {"unit_id": u.unit_id, "min_share": minimum, "requested": u.expropriation_requested}
    if fig is None:
        return ctx.finding("no_figures", **base) if u.expropriation_requested else None
    facts = {**base, **_figure_facts(fig, other), "short_of": _short_of(fig, minimum)}
    if not facts["short_of"]:
        return ctx.finding("eligible", **facts)
    return ctx.finding("refused" if u.expropriation_requested else "not_eligible", **facts)


@RULES.rule(
    "renewal.fiscal_contribution",
    scope="unit",
    params=_p(
        "fiscal_contribution_share_min",
        "fiscal_contribution_types",
        "fiscal_contribution_required_from_stage",
    ),
    outcomes=("pass", "fail", "missing"),
)
def fiscal_contribution(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """Check industrial units' fiscal commitment against the town baseline (004 (十七)).

    A missing commitment is reported only from the stage the pack names; a commitment
    already entered is checked at any stage.
    """
    stage = u.working_stage
    if u.unit_type.value not in ctx.param("fiscal_contribution_types") or stage is None:
        return None
    required_from = _stage_param(ctx, "fiscal_contribution_required_from_stage")
    if u.money.fiscal_contribution is None and ACTIVE_STAGES.index(stage) < ACTIVE_STAGES.index(
        required_from
    ):
        return None
    lib = _library(ctx)
    town = lib.town(u.town) if lib is not None else None
    minimum = ctx.param("fiscal_contribution_share_min")
    baseline = town.fiscal_baseline if town is not None else None
    committed = u.money.fiscal_contribution
    facts: dict[str, Any] = {
        "unit_id": u.unit_id,
        "town": u.town,
        "baseline": baseline,
        "committed": committed,
        "min_share": minimum,
    }
    if baseline is None or committed is None or baseline <= 0:
        facts["missing_what"] = (
            "镇街财政贡献基准线" if baseline is None or baseline <= 0 else "单元承诺财政贡献"
        )
        return ctx.finding("missing", **facts)
    facts["required"] = baseline * minimum
    facts["share"] = committed / baseline
    return ctx.finding("pass" if at_least(facts["share"], minimum) else "fail", **facts)


@RULES.rule(
    "renewal.booked_linkage",
    scope="unit",
    params=_p("linkage_rescom_types"),
    outcomes=("booked", "blocked"),
)
def booked_linkage(ctx: RuleContext, u: RenewalUnit) -> Finding | None:
    """No new 工改居商 unit while a town's 挂账 task is open (004 (十四))."""
    if u.unit_type.value not in ctx.param("linkage_rescom_types") or u.working_stage is None:
        return None
    lib = _library(ctx)
    town = lib.town(u.town) if lib is not None else None
    if town is None:
        return None
    own = [b for b in town.booked if b.unit_id == u.unit_id]
    if own:
        b = own[0]
        return ctx.finding(
            "booked", unit_id=u.unit_id, town=u.town, booked_on=b.booked_on, cleared_on=b.cleared_on
        )
    declared = u.dates.declared_on
    if declared is None:
        return None
    blocking = [b for b in town.booked if b.open_on(declared) and b.unit_id != u.unit_id]
    if not blocking:
        return None
    return ctx.finding(
        "blocked",
        unit_id=u.unit_id,
        town=u.town,
        declared_on=declared,
        booked_units="、".join(b.unit_id for b in blocking),
        booked_on=min(b.booked_on for b in blocking),
    )


# ====================================================================== zone rules


@RULES.rule(
    "renewal.zone_size",
    scope="zone",
    params=_p(
        "priority_zone_area_min",
        "priority_zone_area_max",
        "area_plan_area_min",
        "area_plan_area_max",
    ),
    outcomes=("pass", "too_small", "too_large", "no_area"),
)
def zone_size(ctx: RuleContext, z: Zone) -> Finding | None:
    """大圈 and 中圈 sizes (004 (三))."""
    if z.tier is ZoneTier.PRIORITY_ZONE:
        lo, hi = ctx.param("priority_zone_area_min"), ctx.param("priority_zone_area_max")
    elif z.tier is ZoneTier.AREA:
        lo, hi = ctx.param("area_plan_area_min"), ctx.param("area_plan_area_max")
    else:
        return None
    facts: dict[str, Any] = {
        "zone_id": z.zone_id,
        "tier": z.tier.value,
        "min_km2": lo,
        "max_km2": hi,
    }
    if z.area_m2 is None:
        return ctx.finding("no_area", **facts)
    facts["area_km2"] = _km2(z.area_m2)
    if not at_least(facts["area_km2"], lo):
        return ctx.finding("too_small", **facts)
    if not at_most(facts["area_km2"], hi):
        return ctx.finding("too_large", **facts)
    return ctx.finding("pass", **facts)


@RULES.rule(
    "renewal.cluster_size",
    scope="zone",
    params=_p("industrial_cluster_area_min"),
    outcomes=("pass", "too_small", "no_area"),
)
def cluster_size(ctx: RuleContext, z: Zone) -> Finding | None:
    """Contiguous 工改工 clusters reach the minimum size (004 (六))."""
    if z.tier is not ZoneTier.INDUSTRIAL_CLUSTER:
        return None
    minimum = ctx.param("industrial_cluster_area_min")
    facts: dict[str, Any] = {"zone_id": z.zone_id, "min_mu": minimum}
    if z.area_m2 is None:
        return ctx.finding("no_area", **facts)
    facts["area_mu"] = _mu(z.area_m2)
    return ctx.finding("pass" if at_least(facts["area_mu"], minimum) else "too_small", **facts)


@RULES.rule(
    "renewal.cluster_deadlines",
    scope="zone",
    params=_p("industrial_cluster_first_demolition", "industrial_cluster_completion"),
    outcomes=("done", "done_late", "pending", "due_today", "overdue"),
)
def cluster_deadlines(ctx: RuleContext, z: Zone) -> list[Finding]:
    """Clusters: first demolition and completion within their periods of the start (004 (六))."""
    if z.tier is not ZoneTier.INDUSTRIAL_CLUSTER or z.started_on is None:
        return []
    out = []
    for dl in zone_deadlines(z, ctx.pack, ctx.at):
        ctx.param(dl.param)
        out.append(_deadline_finding(ctx, dl, None))
    return out


@RULES.rule(
    "renewal.transmission_elasticity",
    scope="zone",
    params=_p("transmission_elasticity"),
    outcomes=("within", "elastic", "exceeds"),
)
def transmission_elasticity(ctx: RuleContext, z: Zone) -> Finding | None:
    """Lower tiers may exceed the scale passed down by at most the elasticity (004 (四))."""
    lib = _library(ctx)
    if z.planned_scale_m2 is None or lib is None:
        return None
    if z.tier is ZoneTier.PRIORITY_ZONE:
        parts = [
            c.planned_scale_m2 for c in lib.children(z.zone_id) if c.planned_scale_m2 is not None
        ]
        level = "下层片区规划规模"
    else:
        parts = [
            u.land_area_m2 for u in lib.units_in_zone(z.zone_id) if u.stage is not Stage.WITHDRAWN
        ]
        level = "单元用地面积"
    if not parts:
        return None
    e = ctx.param("transmission_elasticity")
    total = float(sum(parts))
    limit = z.planned_scale_m2 * (1 + e)
    facts = {
        "zone_id": z.zone_id,
        "tier": z.tier.value,
        "level": level,
        "planned_m2": z.planned_scale_m2,
        "children_m2": total,
        "limit_m2": limit,
        "elasticity": e,
        "excess_share": total / z.planned_scale_m2 - 1 if z.planned_scale_m2 else math.inf,
    }
    if at_most(total, z.planned_scale_m2):
        return ctx.finding("within", **facts)
    return ctx.finding("elastic" if at_most(total, limit) else "exceeds", **facts)


# ====================================================================== placement rule


@dataclass(frozen=True)
class Placement:
    """Containment of a unit in its 中圈 or of a zone in its 大圈, measured by the views.

    ``outside_area_m2`` is the ellipsoidal area of the child outside its parent buffered by
    the pack's tolerance (004 (十一) 容差处理).
    """

    child_id: str
    child_kind: str
    child_tier: str
    parent_id: str | None
    parent_tier: str | None
    parent_found: bool
    expected_tiers: tuple[str, ...]
    outside_area_m2: float | None
    child_area_m2: float | None
    tolerance_m: float | None


@RULES.rule(
    "renewal.hierarchy",
    scope="placement",
    params=_p("hierarchy_tolerance", "hierarchy_outside_area_max"),
    outcomes=("pass", "outside", "parent_missing", "no_parent", "tier_mismatch"),
)
def hierarchy(ctx: RuleContext, p: Placement) -> Finding | None:
    """Check that units lie in their 中圈 and 中圈 in their 大圈 (004 (三)(十一))."""
    facts: dict[str, Any] = {
        "child_id": p.child_id,
        "child_tier": p.child_tier,
        "parent_id": p.parent_id or "",
        "parent_tier": p.parent_tier or "",
        "expected": "、".join(p.expected_tiers),
        "tolerance_m": ctx.param("hierarchy_tolerance"),
        "max_outside_m2": ctx.param("hierarchy_outside_area_max"),
    }
    if p.parent_id is None:
        return ctx.finding("no_parent", **facts) if p.expected_tiers else None
    if not p.parent_found:
        return ctx.finding("parent_missing", **facts)
    if p.parent_tier not in p.expected_tiers:
        return ctx.finding("tier_mismatch", **facts)
    if p.outside_area_m2 is None:
        return None
    facts["outside_m2"] = p.outside_area_m2
    facts["child_area_m2"] = p.child_area_m2
    ok = at_most(p.outside_area_m2, facts["max_outside_m2"])
    return ctx.finding("pass" if ok else "outside", **facts)


# ====================================================================== town rules


@dataclass(frozen=True)
class TownSubject:
    """A town, its account (may be None) and its units as known on the date."""

    town: str
    account: TownAccount | None
    units: tuple[RenewalUnit, ...]


def _counting(units: Iterable[RenewalUnit]) -> list[RenewalUnit]:
    return [u for u in units if u.stage not in (Stage.WITHDRAWN, Stage.BARRED)]


def linkage_areas(
    units: Iterable[RenewalUnit],
    industrial_types: Iterable[str],
    rescom_types: Iterable[str],
    exclude_old_village: bool,
) -> tuple[float, float, float]:
    """Return 工改工, counted 工改居商 and excluded old-village areas in m² (004 (十四))."""
    ind_types, res_types = set(industrial_types), set(rescom_types)
    ind = res = excluded = 0.0
    for u in _counting(units):
        if u.unit_type.value in ind_types:
            ind += u.land_area_m2
        elif u.unit_type.value in res_types and not (exclude_old_village and u.is_old_village_led):
            res += u.land_area_m2
        elif u.is_old_village_led:
            excluded += u.land_area_m2
    return ind, res, excluded


@RULES.rule(
    "renewal.linkage",
    scope="town",
    params=_p(
        "linkage_share_min",
        "linkage_industrial_types",
        "linkage_rescom_types",
        "linkage_exclude_old_village",
    ),
    outcomes=("pass", "fail", "alternative"),
)
def linkage(ctx: RuleContext, t: TownSubject) -> Finding | None:
    """Check a town's 工改工 share of 工改工 + 工改居商, old-village 居商 excluded (004 (十四))."""
    ind, res, excluded = linkage_areas(
        t.units,
        ctx.param("linkage_industrial_types"),
        ctx.param("linkage_rescom_types"),
        ctx.param("linkage_exclude_old_village"),
    )
    if ind + res <= 0:
        return None
    minimum = ctx.param("linkage_share_min")
    facts = {
        "town": t.town,
        "industrial_mu": _mu(ind),
        "rescom_mu": _mu(res),
        "excluded_old_village_mu": _mu(excluded),
        "share": ind / (ind + res),
        "min_share": minimum,
    }
    if at_least(facts["share"], minimum):
        return ctx.finding("pass", **facts)
    if t.account is not None and t.account.linkage_alternative:
        return ctx.finding("alternative", alternative=t.account.linkage_alternative, **facts)
    return ctx.finding("fail", **facts)


@RULES.rule(
    "renewal.land_banking",
    scope="town",
    params=_p("land_banking_share_min"),
    outcomes=("pass", "fail", "behind"),
)
def land_banking(ctx: RuleContext, t: TownSubject) -> list[Finding]:
    """Check each year's land-banking share of the 工改工 task (004 (六))."""
    if t.account is None:
        return []
    minimum = ctx.param("land_banking_share_min")
    out = []
    for task in t.account.tasks:
        if task.year > ctx.at.year:
            continue
        required = task.industrial_task_m2 * minimum
        facts = {
            "town": t.town,
            "year": task.year,
            "industrial_task_mu": _mu(task.industrial_task_m2),
            "banking_task_mu": _mu(task.land_banking_task_m2),
            "required_mu": _mu(required),
            "banked_mu": _mu(task.land_banked_m2) if task.land_banked_m2 is not None else None,
            "min_share": minimum,
        }
        if not at_least(task.land_banking_task_m2, required):
            out.append(ctx.finding("fail", subject=t.town, **facts))
        elif (
            task.year < ctx.at.year
            and task.land_banked_m2 is not None
            and not at_least(task.land_banked_m2, task.land_banking_task_m2)
        ):
            out.append(ctx.finding("behind", subject=t.town, **facts))
        else:
            out.append(ctx.finding("pass", subject=t.town, **facts))
    return out


# ====================================================================== library rules


@RULES.rule(
    "renewal.priority_zone_share",
    scope="library",
    params=_p("priority_zone_scale_share_min"),
    outcomes=("pass", "fail"),
)
def priority_zone_share(ctx: RuleContext, lib: RenewalLibrary) -> list[Finding]:
    """Check the share of renewal scale inside 大圈, city-wide and per town (004 (五))."""
    minimum = ctx.param("priority_zone_scale_share_min")
    units = _counting(lib.units)
    groups: list[tuple[str, list[RenewalUnit]]] = [("全市", units)]
    groups += [
        (town, [u for u in units if u.town == town]) for town in sorted({u.town for u in units})
    ]
    out = []
    for name, us in groups:
        total = sum(u.land_area_m2 for u in us)
        if total <= 0:
            continue
        inside = sum(u.land_area_m2 for u in us if lib.priority_zone_of(u) is not None)
        facts = {
            "scope": name,
            "inside_mu": _mu(inside),
            "total_mu": _mu(total),
            "share": inside / total,
            "min_share": minimum,
        }
        out.append(
            ctx.finding(
                "pass" if at_least(facts["share"], minimum) else "fail", subject=name, **facts
            )
        )
    return out


# ====================================================================== evaluation entry points


def prepare_pack(pack: PolicyPack, at: date) -> None:
    """Check that ``pack`` is a renewal pack in force on ``at`` and matches the registry."""
    if not isinstance(pack, PolicyPack):
        raise PolicyError(f"需要政策包, 实为 {type(pack).__name__}", key="policy_missing")
    pack.ensure_valid_at(at)
    RULES.ensure_pack(pack)


def library_as_of(lib: RenewalLibrary, at: date) -> RenewalLibrary:
    """Return the library as known on ``at`` (later dates and figures ignored)."""
    zones = tuple(
        replace(
            z,
            started_on=z.started_on if z.started_on and z.started_on <= at else None,
            first_demolition_on=z.first_demolition_on
            if z.first_demolition_on and z.first_demolition_on <= at
            else None,
            completed_on=z.completed_on if z.completed_on and z.completed_on <= at else None,
        )
        for z in lib.zones
    )
    return RenewalLibrary(
        units=tuple(unit_as_of(u, at) for u in lib.units), zones=zones, towns=lib.towns
    )


def evaluate_unit(
    unit: RenewalUnit, at: date, pack: PolicyPack, library: RenewalLibrary | None = None
) -> list[Finding]:
    """Run every enabled unit rule for ``unit`` on ``at``."""
    prepare_pack(pack, at)
    u = unit_as_of(unit, at)
    return RULES.evaluate(pack, "unit", u, at, subject_id=unit.unit_id, library=library)


def evaluate_transition(
    unit: RenewalUnit,
    prospective: RenewalUnit,
    to_stage: Stage,
    at: date,
    pack: PolicyPack,
    library: RenewalLibrary | None = None,
) -> list[Finding]:
    """Stage-order findings plus gate-rule findings on the unit as it would be after the move."""
    prepare_pack(pack, at)
    out = RULES.evaluate(
        pack,
        "transition",
        TransitionSubject(unit, to_stage),
        at,
        subject_id=unit.unit_id,
        library=library,
    )
    if any(f.rule_id == "renewal.stage_order" and f.severity == "error" for f in out):
        return out
    out += RULES.evaluate(
        pack, "unit", prospective, at, subject_id=unit.unit_id, gate_only=True, library=library
    )
    return out


def evaluate_zone(
    zone: Zone, at: date, pack: PolicyPack, library: RenewalLibrary | None = None
) -> list[Finding]:
    """Run every enabled zone rule for ``zone`` on ``at``."""
    prepare_pack(pack, at)
    return RULES.evaluate(pack, "zone", zone, at, subject_id=zone.zone_id, library=library)


def evaluate_town(town: str, at: date, pack: PolicyPack, library: RenewalLibrary) -> list[Finding]:
    """Run every enabled town rule for ``town`` on ``at``."""
    prepare_pack(pack, at)
    lib = library_as_of(library, at)
    subject = TownSubject(town, lib.town(town), tuple(lib.units_in_town(town)))
    return RULES.evaluate(pack, "town", subject, at, subject_id=town, library=lib)


def evaluate_placements(
    placements: Iterable[Placement], at: date, pack: PolicyPack
) -> list[Finding]:
    """Run the placement rules on containment facts computed by the views."""
    prepare_pack(pack, at)
    out: list[Finding] = []
    for p in placements:
        out += RULES.evaluate(pack, "placement", p, at, subject_id=p.child_id)
    return out


def evaluate_library(
    library: RenewalLibrary, at: date, pack: PolicyPack, placements: Iterable[Placement] = ()
) -> list[Finding]:
    """Every finding for the library on ``at``: units, zones, towns, library and placements."""
    prepare_pack(pack, at)
    lib = library_as_of(library, at)
    out: list[Finding] = []
    for u in lib.units:
        out += RULES.evaluate(pack, "unit", u, at, subject_id=u.unit_id, library=lib)
    for z in lib.zones:
        out += RULES.evaluate(pack, "zone", z, at, subject_id=z.zone_id, library=lib)
    for town in lib.town_names():
        subject = TownSubject(town, lib.town(town), tuple(lib.units_in_town(town)))
        out += RULES.evaluate(pack, "town", subject, at, subject_id=town, library=lib)
    out += RULES.evaluate(pack, "library", lib, at, subject_id="全市", library=lib)
    out += evaluate_placements(placements, at, pack)
    return collapse_param_required(out)


def collapse_param_required(findings: Iterable[Finding]) -> list[Finding]:
    """Merge repeated ``param_required`` findings of one rule (subjects listed in facts)."""
    out: list[Finding] = []
    seen: dict[tuple[str, Any], Finding] = {}
    for f in findings:
        if f.outcome != "param_required":
            out.append(f)
            continue
        key = (f.rule_id, f.facts.get("param"))
        if key in seen:
            seen[key].facts["subjects"].append(f.subject)
            continue
        merged = replace(f, subject=None, facts={**f.facts, "subjects": [f.subject]})
        seen[key] = merged
        out.append(merged)
    return out
