"""Stage workflow of a renewal unit: an explicit state machine guarded by the pack's rules.

States: 前期工作 → 确认主体 → 实施方案 → 开发监管 (004 (十)), plus 暂停 (suspended),
退出 (withdrawn) and 禁止重启 (barred, 004 (十二)). :func:`check_transition` says whether a
move is allowed and why; :func:`advance` returns the moved unit with ``version + 1``. The
caller persists it with audit and optimistic locking (:func:`check_version`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from yizhangtu.errors import ConflictError, ValidationError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding, jsonable
from yizhangtu.renewal.model import (
    STAGE_GRAPH,
    RenewalLibrary,
    RenewalUnit,
    RightsHolder,
    Stage,
    StageDates,
    StageEvent,
    parse_enum,
    unit_as_of,
)
from yizhangtu.renewal.rules import evaluate_transition, evaluate_unit, prepare_pack, unit_bar_until

__all__ = [
    "TransitionResult",
    "UnitStatus",
    "advance",
    "allowed_targets",
    "check_transition",
    "check_version",
    "next_steps",
    "prospective_unit",
    "unit_status",
]


@dataclass(frozen=True)
class TransitionResult:
    """Verdict on moving ``unit_id`` from ``from_stage`` to ``to_stage`` on ``at``."""

    unit_id: str
    from_stage: Stage
    to_stage: Stage
    at: date
    allowed: bool
    findings: tuple[Finding, ...]
    pack: dict[str, str]

    @property
    def blocking(self) -> list[Finding]:
        """Findings that block the move."""
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "unit_id": self.unit_id,
            "from_stage": self.from_stage.value,
            "to_stage": self.to_stage.value,
            "at": self.at.isoformat(),
            "allowed": self.allowed,
            "findings": [f.to_dict() for f in self.findings],
            "pack": dict(self.pack),
        }


def allowed_targets(unit: RenewalUnit) -> tuple[Stage, ...]:
    """Stages the state machine allows from the unit's stage (rules may still block them)."""
    targets = STAGE_GRAPH[unit.stage]
    if unit.stage is Stage.SUSPENDED:
        resume = {unit.suspended_from} if unit.suspended_from is not None else set()
        targets = frozenset({*resume, Stage.WITHDRAWN, Stage.BARRED})
    return tuple(t for t in Stage if t in targets)


def prospective_unit(unit: RenewalUnit, to_stage: Stage, at: date, pack: PolicyPack) -> RenewalUnit:
    """Return the unit as it would be after moving to ``to_stage`` on ``at`` (version unchanged).

    Moving to 禁止重启 records the bar's last day; restarting from 退出/禁止重启 opens a new
    round: dates restart at ``at`` and consent and signing must be collected again, while
    the bar date is kept so that the restart rule can check it.
    """
    changes: dict[str, Any] = {"stage": to_stage, "stage_since": at}
    if to_stage is Stage.SUSPENDED:
        changes["suspended_from"] = unit.working_stage
    else:
        changes["suspended_from"] = None
    if to_stage is Stage.BARRED:
        changes["barred_until"] = unit_bar_until(unit, pack, at) or unit.barred_until
    if to_stage is Stage.PRELIMINARY and unit.stage in (Stage.WITHDRAWN, Stage.BARRED):
        until = unit_bar_until(unit, pack, at)
        candidates = [d for d in (unit.barred_until, until) if d is not None]
        changes["barred_until"] = max(candidates) if candidates else None
        changes["dates"] = StageDates(declared_on=at)
        changes["consent"] = None
        changes["signing"] = None
        changes["holders"] = tuple(
            RightsHolder(h.holder_id, h.land_area_m2, h.heads, consented=False, signed=False)
            for h in unit.holders
        )
        changes["expropriation_requested"] = False
    return replace(unit, **changes)


def _target(to_stage: Stage | str, unit: RenewalUnit) -> Stage:
    return parse_enum(Stage, to_stage, "to_stage", unit.unit_id)


def _check_date_order(unit: RenewalUnit, at: date) -> None:
    if unit.stage_since is not None and at < unit.stage_since:
        raise ValidationError(
            f"单元 {unit.unit_id} 于 {unit.stage_since} 进入{unit.stage.value}, "
            f"转换日期 {at} 不能更早"
            "(依据 004 (十) 的阶段顺序)",
            key="dates_out_of_order",
            field="at",
            feature=unit.unit_id,
        )


def check_transition(
    unit: RenewalUnit,
    to_stage: Stage | str,
    at: date,
    pack: PolicyPack,
    library: RenewalLibrary | None = None,
) -> TransitionResult:
    """Say whether ``unit`` may move to ``to_stage`` on ``at`` and list the findings.

    The stage-order rule checks the graph; every gate rule of the pack (consent, entity,
    plan approval, bar) runs on the unit as it would be after the move, and any error
    finding blocks the move.
    """
    prepare_pack(pack, at)
    to = _target(to_stage, unit)
    _check_date_order(unit, at)
    current = unit_as_of(unit, at)
    prospective = prospective_unit(current, to, at, pack)
    findings = evaluate_transition(current, prospective, to, at, pack, library)
    allowed = not any(f.severity == "error" for f in findings)
    return TransitionResult(
        unit_id=unit.unit_id,
        from_stage=current.stage,
        to_stage=to,
        at=at,
        allowed=allowed,
        findings=tuple(findings),
        pack=pack.ref(),
    )


def advance(
    unit: RenewalUnit,
    to_stage: Stage | str,
    at: date,
    pack: PolicyPack,
    library: RenewalLibrary | None = None,
    note: str | None = None,
) -> tuple[RenewalUnit, tuple[Finding, ...]]:
    """Move ``unit`` to ``to_stage`` on ``at``; returns the new unit (``version + 1``) and findings.

    Raises
    ------
    ValidationError
        ``transition_refused`` with ``data['findings']`` when a rule blocks the move, or
        ``dates_out_of_order`` when ``at`` precedes the current stage's start.
    PolicyError
        The pack is not in force on ``at`` or lacks what the rules need.
    """
    result = check_transition(unit, to_stage, at, pack, library)
    if not result.allowed:
        first = result.blocking[0]
        raise ValidationError(
            f"单元 {unit.unit_id} 不能由{unit.stage.value}转入{result.to_stage.value}: "
            f"{first.message}",
            key="transition_refused",
            feature=unit.unit_id,
            field="stage",
            hint=f"依据 {first.clause}",
            data={"transition": jsonable(result.to_dict())},
        )
    new = prospective_unit(unit, result.to_stage, at, pack)
    event = StageEvent(from_stage=unit.stage, to_stage=result.to_stage, at=at, note=note)
    new = replace(new, history=(*unit.history, event), version=unit.version + 1)
    return new, result.findings


def check_version(expected: int, actual: int, other_change: str | None = None) -> None:
    """Raise ConflictError when a stored version differs from the one the caller read."""
    if expected != actual:
        raise ConflictError(
            f"记录已被他人修改(读取时版本 {expected}, 当前版本 {actual})"
            + (f": {other_change}" if other_change else ""),
            key="version_conflict",
            field="version",
            data={"expected": expected, "actual": actual, "other_change": other_change},
            hint="重新读取最新记录后再提交",
        )


def next_steps(
    unit: RenewalUnit, at: date, pack: PolicyPack, library: RenewalLibrary | None = None
) -> list[TransitionResult]:
    """Verdict on every move the state machine allows from the unit's stage on ``at``."""
    return [
        check_transition(unit, t, at, pack, library) for t in allowed_targets(unit_as_of(unit, at))
    ]


@dataclass(frozen=True)
class UnitStatus:
    """What is wrong with a unit on a date and what it may do next."""

    unit_id: str
    at: date
    stage: Stage
    findings: tuple[Finding, ...]
    next_steps: tuple[TransitionResult, ...]

    @property
    def allowed_next(self) -> list[Stage]:
        """Stages the unit may move to now."""
        return [r.to_stage for r in self.next_steps if r.allowed]

    @property
    def problems(self) -> list[Finding]:
        """Errors and warnings."""
        return [f for f in self.findings if f.severity in ("error", "warning")]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "unit_id": self.unit_id,
            "at": self.at.isoformat(),
            "stage": self.stage.value,
            "allowed_next": [s.value for s in self.allowed_next],
            "findings": [f.to_dict() for f in self.findings],
            "next_steps": [r.to_dict() for r in self.next_steps],
        }


def unit_status(
    unit: RenewalUnit, at: date, pack: PolicyPack, library: RenewalLibrary | None = None
) -> UnitStatus:
    """Report findings and possible next moves of ``unit`` on ``at``."""
    findings = evaluate_unit(unit, at, pack, library)
    steps = next_steps(unit, at, pack, library)
    return UnitStatus(
        unit_id=unit.unit_id,
        at=at,
        stage=unit_as_of(unit, at).stage,
        findings=tuple(findings),
        next_steps=tuple(steps),
    )
