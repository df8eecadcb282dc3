"""Conformance rules (合规判定), registered by id; policy packs switch them on.

Rules receive facts computed by the geometry code (areas, shares, distances) and compare them with
pack parameters; the pack gives each outcome its severity and Chinese message. No threshold lives
here.

Scopes
------
``redline_line``    one red-line parcel against one control line or zone (:class:`LineHit`)
``redline_plan``    one parcel against one plan layer (:class:`PlanHit`)
``redline_match``   one parcel against its registered version (:class:`MatchSubject`)
``line_pair``       two control lines that must not overlap (:class:`PairOverlap`)
``zone_share``      a zone's share of a jurisdiction (:class:`ZoneShareSubject`)
``transmission``    one parent, one metric of a plan hierarchy (:class:`TransmissionSubject`)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from yizhangtu.policy import PolicyPack
from yizhangtu.policy.rules import Finding, RuleContext, RuleRegistry, at_least, at_most

__all__ = [
    "RULES",
    "LineHit",
    "MatchSubject",
    "PairOverlap",
    "PlanHit",
    "TransmissionSubject",
    "ZoneShareSubject",
    "evaluate",
]

RULES = RuleRegistry("conformance")

_EPS_M2 = 1e-6


@dataclass(frozen=True)
class LineHit:
    """A red-line parcel against one control line type.

    Areas are ellipsoidal m²; ``overlap_m2`` excludes slivers, which are counted apart.
    """

    parcel: str
    line_type: str
    line_title: str
    redline_m2: float
    overlap_m2: float
    sliver_m2: float = 0.0
    sliver_count: int = 0
    outside_m2: float = 0.0

    @property
    def share(self) -> float:
        """Overlap as a share of the parcel."""
        return self.overlap_m2 / self.redline_m2 if self.redline_m2 > 0 else 0.0


@dataclass(frozen=True)
class PlanHit:
    """A red-line parcel against one plan layer."""

    parcel: str
    plan: str
    plan_title: str
    redline_m2: float
    nonconstruction_m2: float
    uncovered_m2: float
    classes: str = ""


@dataclass(frozen=True)
class MatchSubject:
    """A red-line parcel against its registered version (None when there is none)."""

    parcel: str
    registered_id: str | None
    measure: Any = None  # tolerance.MatchMeasure
    outcome: str | None = None


@dataclass(frozen=True)
class PairOverlap:
    """Overlap of two control lines, slivers apart."""

    line_a: str
    line_b: str
    title_a: str
    title_b: str
    overlap_m2: float
    patch_count: int
    sliver_m2: float
    sliver_count: int


@dataclass(frozen=True)
class ZoneShareSubject:
    """Share of one zone in one jurisdiction (``scope``)."""

    scope: str
    zone_areas_m2: Mapping[str, float]
    total_m2: float


@dataclass(frozen=True)
class TransmissionSubject:
    """One parent node and one metric of a plan hierarchy, with its children's values."""

    parent_id: str
    parent_name: str
    metric: str
    metric_label: str
    unit: str
    direction: str  # "max" (cap) or "min" (task)
    parent_value: float
    children_total: float | None
    missing: tuple[str, ...]
    elasticity: float
    elasticity_clause: str
    fmt: Any = field(default=None, compare=False)  # callable(value) -> text with unit


# ---------------------------------------------------------------------- red line: lines
def _overlap_rule(ctx: RuleContext, s: LineHit, listed: Sequence[str]) -> Finding | None:
    if s.line_type not in listed:
        return None
    facts = {
        "parcel": s.parcel,
        "line_type": s.line_type,
        "line_title": s.line_title,
        "overlap_m2": s.overlap_m2,
        "share": s.share,
        "sliver_m2": s.sliver_m2,
        "sliver_count": s.sliver_count,
        "redline_m2": s.redline_m2,
    }
    if s.overlap_m2 > _EPS_M2:
        return ctx.finding("overlap", subject=s.parcel, **facts)
    if s.sliver_count:
        return ctx.finding("sliver_only", subject=s.parcel, **facts)
    return ctx.finding("clear", subject=s.parcel, **facts)


@RULES.rule(
    "conformance.redline_forbidden_overlap",
    scope="redline_line",
    outcomes=("clear", "sliver_only", "overlap"),
    params={"forbidden_overlap_lines": "list"},
)
def redline_forbidden_overlap(ctx: RuleContext, s: LineHit) -> Finding | None:
    """Refuse overlap of a red line with the lines of ``forbidden_overlap_lines``."""
    return _overlap_rule(ctx, s, ctx.param("forbidden_overlap_lines"))


@RULES.rule(
    "conformance.redline_restricted_overlap",
    scope="redline_line",
    outcomes=("clear", "sliver_only", "overlap"),
    params={"restricted_overlap_lines": "list"},
)
def redline_restricted_overlap(ctx: RuleContext, s: LineHit) -> Finding | None:
    """Flag overlap with the lines of ``restricted_overlap_lines`` for review."""
    return _overlap_rule(ctx, s, ctx.param("restricted_overlap_lines"))


@RULES.rule(
    "conformance.redline_containment",
    scope="redline_line",
    outcomes=("inside", "partly_outside", "outside"),
    params={"containment_lines": "list"},
)
def redline_containment(ctx: RuleContext, s: LineHit) -> Finding | None:
    """Check that a construction red line lies inside the lines of ``containment_lines``."""
    if s.line_type not in ctx.param("containment_lines"):
        return None
    outside_share = s.outside_m2 / s.redline_m2 if s.redline_m2 > 0 else 0.0
    facts = {
        "parcel": s.parcel,
        "line_type": s.line_type,
        "line_title": s.line_title,
        "outside_m2": s.outside_m2,
        "outside_share": outside_share,
        "inside_m2": s.overlap_m2,
        "sliver_m2": s.sliver_m2,
    }
    if s.outside_m2 <= _EPS_M2:
        return ctx.finding("inside", subject=s.parcel, **facts)
    if s.overlap_m2 <= _EPS_M2:
        return ctx.finding("outside", subject=s.parcel, **facts)
    return ctx.finding("partly_outside", subject=s.parcel, **facts)


# ---------------------------------------------------------------------- red line: plans
@RULES.rule(
    "conformance.redline_plan_use",
    scope="redline_plan",
    outcomes=("consistent", "nonconstruction", "not_covered"),
    params={},
)
def redline_plan_use(ctx: RuleContext, s: PlanHit) -> list[Finding]:
    """Land of the red line should be construction land in each plan layer."""
    facts = {
        "parcel": s.parcel,
        "plan": s.plan,
        "plan_title": s.plan_title,
        "nonconstruction_m2": s.nonconstruction_m2,
        "share": s.nonconstruction_m2 / s.redline_m2 if s.redline_m2 > 0 else 0.0,
        "uncovered_m2": s.uncovered_m2,
        "uncovered_share": s.uncovered_m2 / s.redline_m2 if s.redline_m2 > 0 else 0.0,
        "classes": s.classes or "-",
    }
    out = [
        ctx.finding(
            "nonconstruction" if s.nonconstruction_m2 > _EPS_M2 else "consistent",
            subject=s.parcel,
            **facts,
        )
    ]
    if s.uncovered_m2 > _EPS_M2:
        out.append(ctx.finding("not_covered", subject=s.parcel, **facts))
    return out


# ---------------------------------------------------------------------- red line: registered
@RULES.rule(
    "conformance.redline_registered",
    scope="redline_match",
    outcomes=("identical", "within_tolerance", "shifted", "changed", "unregistered"),
    params={
        "redline_hausdorff_tolerance_m": "m",
        "redline_shift_tolerance_m": "m",
        "redline_shift_residual_m": "m",
    },
)
def redline_registered(ctx: RuleContext, s: MatchSubject) -> Finding:
    """Compare a red line with its registered version within the 004 (十一) tolerances."""
    if s.measure is None:
        return ctx.finding("unregistered", subject=s.parcel, parcel=s.parcel, registered_id="-")
    m = s.measure
    tol_h = ctx.param("redline_hausdorff_tolerance_m")
    tol_s = ctx.param("redline_shift_tolerance_m")
    tol_r = ctx.param("redline_shift_residual_m")
    if m.hausdorff_m <= 1e-3:
        outcome = "identical"
    elif at_most(m.hausdorff_m, tol_h):
        outcome = "within_tolerance"
    elif at_most(m.shift_m, tol_s) and at_most(m.residual_m, tol_r):
        outcome = "shifted"
    else:
        outcome = "changed"
    return ctx.finding(
        outcome,
        subject=s.parcel,
        parcel=s.parcel,
        registered_id=s.registered_id,
        tolerance_m=tol_h,
        shift_tolerance_m=tol_s,
        **m.to_dict(),
    )


# ---------------------------------------------------------------------- lines among themselves
@RULES.rule(
    "conformance.line_mutual_overlap",
    scope="line_pair",
    outcomes=("clear", "sliver_only", "overlap"),
    params={"mutually_exclusive_lines": "list"},
)
def line_mutual_overlap(ctx: RuleContext, s: PairOverlap) -> Finding | None:
    """Check that the lines of ``mutually_exclusive_lines`` do not overlap one another."""
    listed = ctx.param("mutually_exclusive_lines")
    if s.line_a not in listed or s.line_b not in listed:
        return None
    facts = {
        k: getattr(s, k)
        for k in (
            "line_a",
            "line_b",
            "title_a",
            "title_b",
            "overlap_m2",
            "patch_count",
            "sliver_m2",
            "sliver_count",
        )
    }
    subject = f"{s.line_a}×{s.line_b}"
    if s.patch_count:
        return ctx.finding("overlap", subject=subject, **facts)
    if s.sliver_count:
        return ctx.finding("sliver_only", subject=subject, **facts)
    return ctx.finding("clear", subject=subject, **facts)


# ---------------------------------------------------------------------- zones
@RULES.rule(
    "conformance.zone_share_target",
    scope="zone_share",
    outcomes=("met", "below", "absent"),
    params={"eco_control_zone_value": "text", "eco_control_zone_share_min": "ratio"},
)
def zone_share_target(ctx: RuleContext, s: ZoneShareSubject) -> Finding:
    """Share of the ecological-control zone against the target of the next target year."""
    zone = ctx.param("eco_control_zone_value")
    targets = ctx.param("eco_control_zone_share_min")
    if not isinstance(targets, Mapping):
        targets = {str(ctx.at.year): targets}
    years = sorted(int(y) for y in targets)
    year = next((y for y in years if y >= ctx.at.year), years[-1])
    target = float(targets[str(year)])
    area = float(s.zone_areas_m2.get(zone, 0.0))
    share = area / s.total_m2 if s.total_m2 > 0 else 0.0
    facts = {
        "scope": s.scope,
        "zone": zone,
        "share": share,
        "target": target,
        "target_year": year,
        "area_km2": area / 1e6,
        "total_km2": s.total_m2 / 1e6,
        "gap_km2": max(0.0, target * s.total_m2 - area) / 1e6,
        "targets": {str(y): float(targets[str(y)]) for y in years},
    }
    if area <= _EPS_M2:
        return ctx.finding("absent", subject=s.scope, **facts)
    return ctx.finding("met" if at_least(share, target) else "below", subject=s.scope, **facts)


# ---------------------------------------------------------------------- transmission
@RULES.rule(
    "conformance.transmission",
    scope="transmission",
    outcomes=(
        "within",
        "elastic",
        "exceeds",
        "floor_met",
        "floor_elastic",
        "floor_short",
        "incomplete",
    ),
    params={},
)
def transmission(ctx: RuleContext, s: TransmissionSubject) -> Finding:
    """Children's total against the parent's cap (or task) within the elasticity."""
    fmt = s.fmt or (lambda v: f"{v:,.6g}{s.unit}")
    base = {
        "parent_id": s.parent_id,
        "parent_name": s.parent_name,
        "metric": s.metric,
        "metric_label": s.metric_label,
        "unit": s.unit,
        "parent_value": s.parent_value,
        "parent_value_text": fmt(s.parent_value),
        "elasticity": s.elasticity,
        "elasticity_clause": s.elasticity_clause,
    }
    if s.children_total is None or s.missing:
        return ctx.finding(
            "incomplete",
            subject=s.parent_id,
            missing="、".join(s.missing),
            children_total=s.children_total,
            **base,
        )
    total = s.children_total
    base |= {"children_total": total, "children_total_text": fmt(total)}
    if s.direction == "max":
        limit = s.parent_value * (1.0 + s.elasticity)
        excess = (total - s.parent_value) / s.parent_value if s.parent_value else 0.0
        facts = base | {"limit": limit, "limit_text": fmt(limit), "excess_share": excess}
        if at_most(total, s.parent_value):
            return ctx.finding(
                "within",
                subject=s.parent_id,
                headroom=s.parent_value - total,
                headroom_text=fmt(s.parent_value - total),
                **facts,
            )
        if at_most(total, limit):
            return ctx.finding(
                "elastic",
                subject=s.parent_id,
                headroom=limit - total,
                headroom_text=fmt(limit - total),
                **facts,
            )
        return ctx.finding(
            "exceeds",
            subject=s.parent_id,
            headroom=limit - total,
            headroom_text=fmt(limit - total),
            **facts,
        )
    limit = s.parent_value * (1.0 - s.elasticity)
    short = (s.parent_value - total) / s.parent_value if s.parent_value else 0.0
    facts = base | {"limit": limit, "limit_text": fmt(limit), "shortfall_share": short}
    if at_least(total, s.parent_value):
        return ctx.finding(
            "floor_met",
            subject=s.parent_id,
            headroom=total - s.parent_value,
            headroom_text=fmt(total - s.parent_value),
            **facts,
        )
    if at_least(total, limit):
        return ctx.finding(
            "floor_elastic",
            subject=s.parent_id,
            headroom=total - limit,
            headroom_text=fmt(total - limit),
            **facts,
        )
    return ctx.finding(
        "floor_short",
        subject=s.parent_id,
        headroom=total - limit,
        headroom_text=fmt(total - limit),
        **facts,
    )


def evaluate(
    packs: Sequence[PolicyPack],
    scope: str,
    subject: Any,
    at: date,
    *,
    subject_id: str | None = None,
) -> list[Finding]:
    """Run the enabled rules of ``scope`` of every pack of module ``conformance`` on ``subject``."""
    out: list[Finding] = []
    for pack in packs:
        if pack.module != RULES.module:
            continue
        out.extend(RULES.evaluate(pack, scope, subject, at, subject_id=subject_id))
    return out
