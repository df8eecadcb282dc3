"""Reduction rules (减量规则), registered by id; the policy pack switches them on.

Each rule turns measured facts into a verdict with the pack's severity and Chinese message.
Every threshold comes from the pack (``ctx.param``); "不低于" includes the number
(:func:`~yizhangtu.policy.rules.at_least`).

Scopes
------
``submission``  one submitted plot (落图质检)
``acceptance``  one plot against the year's survey (验收)
``rebuild``     one accepted plot against a later survey (复建)
``pace``        one unit's progress (进度)
``balance``     one unit's 增减挂钩 balance
``transfer``    one quota transfer (指标联动)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from yizhangtu.errors import PolicyError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding, RuleContext, RuleRegistry, at_least, at_most
from yizhangtu.reduction.model import PlotMeasure, Transfer

__all__ = [
    "PARAM_UNITS",
    "RULES",
    "BalanceFacts",
    "PaceFacts",
    "RebuildFacts",
    "SubmissionFacts",
    "evaluate",
    "param",
]

RULES = RuleRegistry("reduction")

#: Unit of every parameter the reduction module reads. A pack with another unit is refused.
PARAM_UNITS: dict[str, str] = {
    "construction_group": "text",
    "code_system": "text",
    "plan_period_start": "date",
    "horizon_date": "date",
    "district_targets": "km2",
    "reported_net_reduction": "km2",
    "reported_as_of": "date",
    "plot_types": "list",
    "ownerships": "list",
    "planned_uses": "list",
    "plot_construction_share_min": "ratio",
    "outside_tolerance_m2": "m2",
    "overlap_tolerance_m2": "m2",
    "declared_area_tolerance": "ratio",
    "acceptance_share_min": "ratio",
    "count_partial": "bool",
    "area_tolerance_m2": "m2",
    "coverage_tolerance": "ratio",
    "rebuild_tolerance_m2": "m2",
    "pace_warning_margin": "ratio",
    "transfer_ratio_max": "ratio",
    "transfer_ratio_default": "ratio",
    "transfer_compensation_kinds": "list",
    "balance_basis": "text",
}


def _p(*names: str) -> dict[str, str]:
    return {n: PARAM_UNITS[n] for n in names}


def param(pack: PolicyPack, name: str) -> object:
    """Read a reduction parameter from ``pack``, unit-checked against :data:`PARAM_UNITS`."""
    return pack.param(name, unit=PARAM_UNITS[name])


def evaluate(
    pack: PolicyPack, scope: str, subject: object, at: date, subject_id: str | None = None
) -> list[Finding]:
    """Run the pack's enabled rules of ``scope``; PolicyError if the pack misses the rule."""
    RULES.ensure_pack(pack)
    if not RULES.enabled(pack, scope):
        raise PolicyError(
            f"政策包 {pack.id} 未启用 {scope} 规则",
            key="reduction_rule_missing",
            hint=f"在政策包 rules 中加入 reduction.{scope}",
        )
    return RULES.evaluate(pack, scope, subject, at, subject_id=subject_id)


# ------------------------------------------------------------------------------------ submission
@dataclass(frozen=True)
class SubmissionFacts:
    """Spatial and attribute facts of one submitted plot."""

    plot_id: str
    unit: str
    survey: str
    area_m2: float
    outside_m2: float
    overlaps: Sequence[tuple[str, float]]
    construction_m2: float
    cover_m2: float
    plot_type: str
    ownership: str
    planned_use: str
    declared_m2: float | None = None


@RULES.rule(
    "reduction.submission",
    scope="submission",
    params=_p(
        "outside_tolerance_m2",
        "overlap_tolerance_m2",
        "plot_construction_share_min",
        "coverage_tolerance",
        "declared_area_tolerance",
        "plot_types",
        "ownerships",
        "planned_uses",
    ),
    outcomes=(
        "outside_unit",
        "overlap",
        "not_construction",
        "not_covered",
        "bad_plot_type",
        "bad_ownership",
        "bad_planned_use",
        "declared_area_mismatch",
    ),
)
def submission(ctx: RuleContext, s: SubmissionFacts) -> list[Finding]:
    """Check a plot: in its township, no overlap, construction land, allowed values.

    Clause 002 (三(二)): 对年度拟减量腾退用地进行矢量化.
    """
    out: list[Finding] = []
    base = {"plot_id": s.plot_id, "unit": s.unit, "survey": s.survey, "area_m2": s.area_m2}
    if s.outside_m2 > ctx.param("outside_tolerance_m2"):
        out.append(ctx.finding("outside_unit", outside_m2=s.outside_m2, **base))
    tol = ctx.param("overlap_tolerance_m2")
    for other, m2 in s.overlaps:
        if m2 > tol:
            out.append(ctx.finding("overlap", other_id=other, overlap_m2=m2, **base))
    uncovered = max(s.area_m2 - s.cover_m2, 0.0)
    if s.area_m2 > 0 and uncovered > s.area_m2 * ctx.param("coverage_tolerance"):
        out.append(ctx.finding("not_covered", uncovered_m2=uncovered, **base))
    share = s.construction_m2 / s.area_m2 if s.area_m2 > 0 else 0.0
    minimum = ctx.param("plot_construction_share_min")
    if not at_least(share, minimum):
        out.append(
            ctx.finding(
                "not_construction",
                share_pct=share * 100,
                min_pct=minimum * 100,
                construction_m2=s.construction_m2,
                **base,
            )
        )
    for outcome, value, pname in (
        ("bad_plot_type", s.plot_type, "plot_types"),
        ("bad_ownership", s.ownership, "ownerships"),
        ("bad_planned_use", s.planned_use, "planned_uses"),
    ):
        allowed = ctx.param(pname)
        if value not in allowed:
            out.append(ctx.finding(outcome, value=value, allowed="、".join(allowed), **base))
    if s.declared_m2 is not None and s.declared_m2 > 0 and s.area_m2 > 0:
        diff = abs(s.declared_m2 - s.area_m2) / s.area_m2
        if diff > ctx.param("declared_area_tolerance"):
            out.append(
                ctx.finding(
                    "declared_area_mismatch", declared_m2=s.declared_m2, diff_pct=diff * 100, **base
                )
            )
    return out


# ------------------------------------------------------------------------------------ acceptance
@RULES.rule(
    "reduction.acceptance",
    scope="acceptance",
    params=_p("acceptance_share_min", "area_tolerance_m2", "coverage_tolerance"),
    outcomes=("reduced", "partial", "not_reduced", "not_covered", "flagged"),
)
def acceptance(ctx: RuleContext, m: PlotMeasure) -> Finding:
    """Judge a plot reduced when the pack's share of its construction land left construction."""
    minimum = ctx.param("acceptance_share_min")
    facts = {
        "plot_id": m.plot_id,
        "unit": m.township,
        "reduced_m2": m.reduced_m2,
        "base_m2": m.base_m2,
        "share_pct": m.share * 100,
        "min_pct": minimum * 100,
    }
    if m.flagged:
        return ctx.finding("flagged", reasons=m.flag_reasons or "-", **facts)
    tol = ctx.param("coverage_tolerance")
    uncovered = max(m.area_m2 - m.cover_m2, m.area_m2 - m.baseline_cover_m2, 0.0)
    if uncovered > m.area_m2 * tol:
        return ctx.finding("not_covered", uncovered_m2=uncovered, **facts)
    if at_most(m.reduced_m2, ctx.param("area_tolerance_m2")):
        return ctx.finding("not_reduced", **facts)
    if at_least(m.share, minimum):
        return ctx.finding("reduced", **facts)
    return ctx.finding("partial", **facts)


# ------------------------------------------------------------------------------------ rebuild
@dataclass(frozen=True)
class RebuildFacts:
    """Construction on an accepted plot in a later survey that was not there at acceptance."""

    plot_id: str
    unit: str
    survey_year: int
    rebuilt_m2: float
    plot_area_m2: float


@RULES.rule(
    "reduction.rebuild",
    scope="rebuild",
    params=_p("rebuild_tolerance_m2"),
    outcomes=("clear", "rebuilt"),
)
def rebuild(ctx: RuleContext, r: RebuildFacts) -> Finding:
    """Alert when construction reappears on an accepted plot over more than the tolerance (001)."""
    facts = {
        "plot_id": r.plot_id,
        "unit": r.unit,
        "survey_year": r.survey_year,
        "rebuilt_m2": r.rebuilt_m2,
    }
    if r.rebuilt_m2 > ctx.param("rebuild_tolerance_m2"):
        return ctx.finding("rebuilt", **facts)
    return ctx.finding("clear", **facts)


# ------------------------------------------------------------------------------------ pace
@dataclass(frozen=True)
class PaceFacts:
    """Progress facts of one unit (m², years)."""

    unit_name: str
    target_m2: float | None
    net_m2: float | None
    years_left: int | None
    years_counted: int
    annual_target_m2: float | None = None
    annual_net_m2: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def required_pace_m2(self) -> float | None:
        """Yearly net reduction still needed."""
        if (
            self.target_m2 is None
            or self.net_m2 is None
            or not self.years_left
            or self.years_left <= 0
        ):
            return None
        return max(self.target_m2 - self.net_m2, 0.0) / self.years_left

    @property
    def achieved_pace_m2(self) -> float | None:
        """Average yearly net reduction over the counted years."""
        if self.net_m2 is None or self.years_counted <= 0:
            return None
        return self.net_m2 / self.years_counted


@RULES.rule(
    "reduction.pace",
    scope="pace",
    params=_p("pace_warning_margin"),
    outcomes=("done", "on_track", "behind", "overdue", "no_target", "no_data"),
)
def pace(ctx: RuleContext, p: PaceFacts) -> Finding:
    """Warn when the yearly net reduction falls short of the pace required or the annual target."""
    margin = ctx.param("pace_warning_margin")
    pct = 0.0 if not p.target_m2 or p.net_m2 is None else p.net_m2 / p.target_m2 * 100
    facts = {"unit_name": p.unit_name, "pct": pct}
    if p.target_m2 is None:
        return ctx.finding("no_target", **facts)
    if p.net_m2 is None or p.years_counted <= 0:
        return ctx.finding("no_data", **facts)
    if at_least(p.net_m2, p.target_m2):
        return ctx.finding("done", **facts)
    if p.years_left is not None and p.years_left <= 0:
        return ctx.finding("overdue", **facts)
    required = p.required_pace_m2 or 0.0
    achieved = p.achieved_pace_m2 or 0.0
    reasons = []
    if achieved < required * (1 - margin):
        reasons.append(
            f"年均净减量 {achieved / 1e6:.3f} 平方公里, 低于剩余 {p.years_left} 年"
            f"所需的 {required / 1e6:.3f} 平方公里/年"
        )
    if (
        p.annual_target_m2
        and p.annual_net_m2 is not None
        and p.annual_net_m2 < p.annual_target_m2 * (1 - margin)
    ):
        reasons.append(
            f"当年净减量 {p.annual_net_m2 / 1e6:.3f} 平方公里,"
            f" 低于年度目标 {p.annual_target_m2 / 1e6:.3f} 平方公里"
        )
    if reasons:
        return ctx.finding(
            "behind",
            reason="; ".join(reasons),
            achieved_km2=achieved / 1e6,
            required_km2=required / 1e6,
            **facts,
        )
    return ctx.finding(
        "on_track", achieved_km2=achieved / 1e6, required_km2=required / 1e6, **facts
    )


# ------------------------------------------------------------------------------------ balance
@dataclass(frozen=True)
class BalanceFacts:
    """增减挂钩 facts of one unit (m²)."""

    unit: str
    added_m2: float
    own_m2: float
    sent_m2: float
    received_m2: float

    @property
    def allowance_m2(self) -> float:
        """Own reduction − quota sent + quota received."""
        return self.own_m2 - self.sent_m2 + self.received_m2


@RULES.rule(
    "reduction.balance",
    scope="balance",
    params=_p("area_tolerance_m2"),
    outcomes=("balanced", "over", "overdrawn"),
)
def balance(ctx: RuleContext, b: BalanceFacts) -> list[Finding]:
    """Check that new construction stays within own reduction plus quota received (增减挂钩)."""
    tol = ctx.param("area_tolerance_m2")
    facts = {
        "unit": b.unit,
        "added_m2": b.added_m2,
        "own_m2": b.own_m2,
        "sent_m2": b.sent_m2,
        "received_m2": b.received_m2,
        "allowance_m2": b.allowance_m2,
    }
    out = []
    if b.sent_m2 > b.own_m2 + tol:
        out.append(ctx.finding("overdrawn", **facts))
    out.append(ctx.finding("over" if b.added_m2 > b.allowance_m2 + tol else "balanced", **facts))
    return out


# ------------------------------------------------------------------------------------ transfer
@RULES.rule(
    "reduction.transfer",
    scope="transfer",
    params=_p("transfer_ratio_max"),
    outcomes=("ok", "ratio_too_high", "same_unit", "no_compensation"),
)
def transfer(ctx: RuleContext, t: Transfer) -> list[Finding]:
    """Check a transfer: ratio within the cap (total may not grow, 001), units, compensation."""
    cap = ctx.param("transfer_ratio_max")
    facts = {
        "transfer_id": t.transfer_id,
        "from_unit": t.from_unit,
        "to_unit": t.to_unit,
        "ratio": t.ratio,
        "ratio_max": cap,
        "quota_m2": t.quota_m2,
        "received_m2": t.received_m2,
    }
    out = []
    if t.from_unit == t.to_unit:
        out.append(ctx.finding("same_unit", **facts))
    if not at_most(t.ratio, cap):
        out.append(ctx.finding("ratio_too_high", **facts))
    if (
        not t.compensation
        and t.population_credit is None
        and t.output_credit_wan_yuan is None
        and not t.terms
    ):
        out.append(ctx.finding("no_compensation", **facts))
    if not out:
        out.append(ctx.finding("ok", **facts))
    return out
