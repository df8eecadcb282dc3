"""Rules of the rights registry (module ``rights``), switched on by a policy pack.

Scopes
------
``scope``   the ratios of one renewal unit or polygon (:class:`ScopeFacts`)
``holder``  one special holder in a scope (:class:`HolderFacts`), 004 (十六)

The counting method (membership, area basis, heads, shared parcels) is read by
:mod:`yizhangtu.rights.ratios` from the same pack; :data:`PARAM_UNITS` lists every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yizhangtu.policy.rules import Finding, RuleContext, RuleRegistry, at_least

__all__ = ["PARAM_UNITS", "RULES", "HolderFacts", "ScopeFacts"]

RULES = RuleRegistry("rights")

#: Unit of every parameter of a rights pack.
PARAM_UNITS: dict[str, str] = {
    "parcel_membership": "text",
    "area_basis": "text",
    "head_count_basis": "text",
    "shared_parcel_split": "text",
    "head_agrees_when": "text",
    "signing_implies_consent": "bool",
    "special_needs_procedure": "bool",
    "registry_coverage_min": "ratio",
    "procedure_abroad": "text",
    "procedure_missing": "text",
    "procedure_unknown": "text",
    "procedure_ownerless": "text",
}

#: Parameter naming the procedure for each special status.
PROCEDURE_PARAM: dict[str, str] = {
    "境外": "procedure_abroad",
    "下落不明": "procedure_missing",
    "权属不明": "procedure_unknown",
    "无主": "procedure_ownerless",
}
_OUTCOME: dict[str, str] = {
    "境外": "abroad",
    "下落不明": "missing",
    "权属不明": "unknown",
    "无主": "ownerless",
}


@dataclass(frozen=True)
class ScopeFacts:
    """What the scope rules see: coverage and the holders still missing."""

    scope_id: str
    parcels: int
    heads_total: int
    area_total_m2: float
    coverage: float | None
    missing_consent: tuple[str, ...]
    missing_consent_m2: float
    missing_signing: tuple[str, ...]
    missing_signing_m2: float
    signing_started: bool
    unassigned: tuple[str, ...] = ()
    unassigned_m2: float = 0.0


@dataclass(frozen=True)
class HolderFacts:
    """A special holder in a scope and how its records were counted."""

    scope_id: str
    holder_id: str
    name: str
    status: str
    land_m2: float
    consented: bool
    signed: bool
    via_procedure: tuple[str, ...]
    ignored_records: tuple[str, ...]


def _p(*names: str) -> dict[str, str]:
    return {n: PARAM_UNITS[n] for n in names}


@RULES.rule(
    "rights.coverage",
    scope="scope",
    params=_p("registry_coverage_min"),
    outcomes=("covered", "partial", "none"),
)
def coverage(ctx: RuleContext, s: ScopeFacts) -> Finding:
    """Say whether the registry covers the scope (its parcels cover enough of it)."""
    minimum = ctx.param("registry_coverage_min")
    facts: dict[str, Any] = {
        "scope_id": s.scope_id,
        "parcels": s.parcels,
        "heads_total": s.heads_total,
        "area_total_m2": s.area_total_m2,
        "coverage": s.coverage if s.coverage is not None else 0.0,
        "min_coverage": minimum,
    }
    if s.parcels == 0 or s.heads_total == 0:
        return ctx.finding("none", **facts)
    if s.coverage is not None and at_least(s.coverage, minimum):
        return ctx.finding("covered", **facts)
    return ctx.finding("partial", **facts)


@RULES.rule(
    "rights.missing_holders",
    scope="scope",
    outcomes=("complete", "consent", "signing", "unassigned"),
)
def missing_holders(ctx: RuleContext, s: ScopeFacts) -> list[Finding]:
    """List holders who have not consented or signed, and parcels without any holder.

    Signing is reported once it has begun; unassigned parcels keep their land in the area
    denominator.
    """
    if s.parcels == 0:
        return []
    out = []
    base: dict[str, Any] = {
        "scope_id": s.scope_id,
        "heads_total": s.heads_total,
        "area_total_m2": s.area_total_m2,
    }
    if s.unassigned:
        out.append(
            ctx.finding(
                "unassigned",
                count=len(s.unassigned),
                parcels="、".join(s.unassigned),
                area_m2=s.unassigned_m2,
                **base,
            )
        )
    if s.missing_consent:
        out.append(
            ctx.finding(
                "consent",
                count=len(s.missing_consent),
                holders="、".join(s.missing_consent),
                area_m2=s.missing_consent_m2,
                **base,
            )
        )
    if s.signing_started and s.missing_signing:
        out.append(
            ctx.finding(
                "signing",
                count=len(s.missing_signing),
                holders="、".join(s.missing_signing),
                area_m2=s.missing_signing_m2,
                **base,
            )
        )
    if not out:
        out.append(ctx.finding("complete", **base))
    return out


@RULES.rule(
    "rights.special_holder",
    scope="holder",
    params=_p(
        "procedure_abroad",
        "procedure_missing",
        "procedure_unknown",
        "procedure_ownerless",
        "special_needs_procedure",
    ),
    outcomes=("abroad", "missing", "unknown", "ownerless", "handled", "record_ignored"),
)
def special_holder(ctx: RuleContext, h: HolderFacts) -> Finding | None:
    """Flag special holders with the procedure 004 (十六) names; they stay in the denominator."""
    if h.status not in PROCEDURE_PARAM:
        return None
    procedure = ctx.param(PROCEDURE_PARAM[h.status])
    ctx.param("special_needs_procedure")
    facts: dict[str, Any] = {
        "scope_id": h.scope_id,
        "holder_id": h.holder_id,
        "name": h.name,
        "status": h.status,
        "land_m2": h.land_m2,
        "procedure": procedure,
        "consented": h.consented,
        "signed": h.signed,
    }
    if h.ignored_records:
        return ctx.finding("record_ignored", records="、".join(h.ignored_records), **facts)
    if h.via_procedure and (h.consented or h.signed):
        return ctx.finding("handled", via="、".join(h.via_procedure), **facts)
    return ctx.finding(_OUTCOME[h.status], **facts)
