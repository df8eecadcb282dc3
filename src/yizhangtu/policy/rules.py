"""Rule registry and findings, shared by every module.

A module registers pure rule functions by id. A policy pack decides which of them run and
supplies each outcome's severity and Chinese message. A rule reads its numbers from the pack
through :meth:`RuleContext.param` and returns findings built with :meth:`RuleContext.finding`.
"""

from __future__ import annotations

import enum
import math
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from yizhangtu.errors import PolicyError
from yizhangtu.policy.pack import PolicyPack, RuleSpec

__all__ = [
    "SEVERITIES",
    "SEVERITY_LABELS",
    "Finding",
    "PackProblem",
    "RuleContext",
    "RuleDef",
    "RuleRegistry",
    "at_least",
    "at_most",
    "errors_in",
    "jsonable",
]

SEVERITIES = ("error", "warning", "info")
SEVERITY_LABELS = {"error": "错误", "warning": "警告", "info": "提示"}


def jsonable(value: Any) -> Any:
    """Convert dates, enums, tuples, sets and numpy scalars for JSON output."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def at_least(value: float, threshold: float) -> bool:
    """Test ``value >= threshold``, robust to float rounding (以上/不低于 include the number)."""
    return value >= threshold or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def at_most(value: float, threshold: float) -> bool:
    """``value <= threshold``, robust to float rounding (以内、不超过 include the number)."""
    return value <= threshold or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


@dataclass(frozen=True)
class Finding:
    """One verdict of one rule on one subject.

    Attributes
    ----------
    rule_id : str
        Registered rule id, e.g. ``renewal.consent``.
    outcome : str
        Outcome key (``pass``, ``fail``, ...); the pack maps it to severity and message.
    severity : str
        ``error``, ``warning`` or ``info``.
    message : str
        Chinese message rendered from the pack template.
    clause : str or None
        Clause the verdict rests on, e.g. ``004 (十)``.
    subject : str or None
        What the finding is about (unit id, zone id, town name, ``library``).
    facts : dict
        The facts and parameter values used.
    """

    rule_id: str
    outcome: str
    severity: str
    message: str
    clause: str | None
    subject: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def blocking(self) -> bool:
        """True for errors."""
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "rule_id": self.rule_id,
            "outcome": self.outcome,
            "severity": self.severity,
            "severity_label": SEVERITY_LABELS.get(self.severity, self.severity),
            "message": self.message,
            "clause": self.clause,
            "subject": self.subject,
            "facts": jsonable(self.facts),
        }


def errors_in(findings: Iterable[Finding]) -> list[Finding]:
    """Return the findings of severity error."""
    return [f for f in findings if f.severity == "error"]


@dataclass(frozen=True)
class PackProblem:
    """A problem found while validating a pack."""

    where: str
    message: str
    key: str = "policy_invalid"
    severity: str = "error"

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready description."""
        return {
            "where": self.where,
            "message": self.message,
            "key": self.key,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class RuleDef:
    """A registered rule: id, scope, the parameters (name to unit) and outcomes it uses."""

    id: str
    scope: str
    func: Callable[..., Any]
    params: Mapping[str, str]
    outcomes: tuple[str, ...]
    gate: bool = False
    doc: str = ""


class _Facts(dict[str, Any]):
    def __init__(self, data: Mapping[str, Any], rule_id: str, pack_id: str) -> None:
        super().__init__(data)
        self._rule_id = rule_id
        self._pack_id = pack_id

    def __missing__(self, key: str) -> Any:
        raise PolicyError(
            f"政策包 {self._pack_id} 中规则 {self._rule_id} 的提示语引用了未知字段 {{{key}}}",
            key="policy_message_field",
            data={"rule": self._rule_id, "field": key},
            hint="提示语只能引用规则提供的事实字段",
        )


def render(template: str, facts: Mapping[str, Any], rule_id: str, pack_id: str) -> str:
    """Fill a pack message template with facts; PolicyError names a bad placeholder."""
    try:
        return string.Formatter().vformat(template, (), _Facts(facts, rule_id, pack_id))
    except (ValueError, TypeError, IndexError) as exc:
        raise PolicyError(
            f"政策包 {pack_id} 中规则 {rule_id} 的提示语无法填充: {exc}",
            key="policy_message_format",
            data={"rule": rule_id, "template": template},
        ) from None


@dataclass
class RuleContext:
    """What a rule function sees: its pack, the evaluation date and context objects."""

    rule: RuleDef
    spec: RuleSpec
    pack: PolicyPack
    at: date
    subject: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    used: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        """Value of a parameter the rule declared; PolicyError if missing, null or wrong unit."""
        if name not in self.rule.params:
            raise PolicyError(
                f"规则 {self.rule.id} 读取了未声明的参数 {name}",
                key="rule_param_undeclared",
                data={"rule": self.rule.id, "param": name},
            )
        value = self.pack.param(name, unit=self.rule.params[name], at=self.at)
        self.used[name] = value
        return value

    def param_clause(self, name: str) -> str | None:
        """Clause of a parameter, for facts."""
        return self.pack.parameter(name).clause

    def finding(self, outcome: str, subject: str | None = None, **facts: Any) -> Finding:
        """Build a finding for ``outcome`` with the pack's severity and message."""
        if outcome not in self.rule.outcomes:
            raise PolicyError(
                f"规则 {self.rule.id} 返回了未登记的结果 {outcome}",
                key="rule_outcome_undeclared",
                data={"rule": self.rule.id, "outcome": outcome},
            )
        msg = self.spec.messages.get(outcome)
        if msg is None:
            raise PolicyError(
                f"政策包 {self.pack.id} 缺少规则 {self.rule.id} 结果 {outcome} 的提示语",
                key="policy_message_missing",
                data={"rule": self.rule.id, "outcome": outcome},
                hint=f"在 rules.{self.rule.id}.messages 中补充 {outcome}",
            )
        subj = subject if subject is not None else self.subject
        all_facts = {"subject": subj, "at": self.at, **facts}
        text = render(msg.text, all_facts, self.rule.id, self.pack.id)
        stored = dict(facts)
        stored["params"] = dict(self.used)
        return Finding(
            rule_id=self.rule.id,
            outcome=outcome,
            severity=msg.severity,
            message=text,
            clause=self.spec.clause,
            subject=subj,
            facts=stored,
        )


class RuleRegistry:
    """Rules of one module, registered by id.

    Parameters
    ----------
    module : str
        Module name; a pack's ``module`` must match it.
    """

    def __init__(self, module: str) -> None:
        self.module = module
        self._rules: dict[str, RuleDef] = {}

    def rule(
        self,
        rule_id: str,
        *,
        scope: str,
        outcomes: Iterable[str],
        params: Mapping[str, str] | None = None,
        gate: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``func(ctx, subject)`` as rule ``rule_id`` (decorator)."""

        def deco(func: Callable[..., Any]) -> Callable[..., Any]:
            if rule_id in self._rules:
                raise ValueError(f"rule {rule_id} registered twice")
            self._rules[rule_id] = RuleDef(
                id=rule_id,
                scope=scope,
                func=func,
                params=dict(params or {}),
                outcomes=tuple(outcomes),
                gate=gate,
                doc=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "",
            )
            return func

        return deco

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __iter__(self) -> Iterator[RuleDef]:
        return iter(self._rules.values())

    def get(self, rule_id: str) -> RuleDef:
        """Return the rule registered as ``rule_id`` (KeyError if none)."""
        return self._rules[rule_id]

    def ids(self) -> tuple[str, ...]:
        """All registered ids."""
        return tuple(self._rules)

    # ------------------------------------------------------------------ pack checks
    def check_pack(self, pack: PolicyPack) -> list[PackProblem]:
        """List problems between a pack and this registry (unknown rules, params, messages)."""
        problems: list[PackProblem] = []
        if pack.module != self.module:
            problems.append(
                PackProblem(
                    "module", f"政策包模块为 {pack.module}, 规则库为 {self.module}", "policy_module"
                )
            )
            return problems
        for rid, spec in pack.rules.items():
            if rid not in self._rules:
                problems.append(
                    PackProblem(
                        f"rules.{rid}",
                        f"未登记的规则 {rid}(模块 {self.module})",
                        "policy_rule_unknown",
                    )
                )
                continue
            if not spec.enabled:
                continue
            rdef = self._rules[rid]
            for name, unit in rdef.params.items():
                p = pack.parameters.get(name)
                if p is None:
                    problems.append(
                        PackProblem(
                            f"parameters.{name}",
                            f"规则 {rid} 需要参数 {name}({unit}), 政策包中没有",
                            "policy_param_missing",
                        )
                    )
                elif p.unit != unit:
                    problems.append(
                        PackProblem(
                            f"parameters.{name}.unit",
                            f"规则 {rid} 需要参数 {name} 的单位为 {unit}, 政策包中为 {p.unit}",
                            "policy_param_unit",
                        )
                    )
            for outcome in rdef.outcomes:
                if outcome not in spec.messages:
                    problems.append(
                        PackProblem(
                            f"rules.{rid}.messages",
                            f"规则 {rid} 缺少结果 {outcome} 的提示语",
                            "policy_message_missing",
                        )
                    )
            for outcome in spec.messages:
                if outcome not in rdef.outcomes:
                    problems.append(
                        PackProblem(
                            f"rules.{rid}.messages.{outcome}",
                            f"规则 {rid} 没有结果 {outcome}(可用: {', '.join(rdef.outcomes)})",
                            "policy_message_unknown",
                            "warning",
                        )
                    )
        return problems

    def ensure_pack(self, pack: PolicyPack) -> None:
        """Raise PolicyError if :meth:`check_pack` finds errors."""
        errs = [p for p in self.check_pack(pack) if p.severity == "error"]
        if errs:
            raise PolicyError(
                f"政策包 {pack.id} 与 {self.module} 规则库不匹配: "
                + "; ".join(p.message for p in errs),
                key=errs[0].key,
                file=pack.path,
                data={"problems": [p.to_dict() for p in errs]},
            )

    # ------------------------------------------------------------------ evaluation
    def enabled(
        self, pack: PolicyPack, scope: str, *, gate_only: bool = False
    ) -> list[tuple[RuleDef, RuleSpec]]:
        """Rules of ``scope`` that the pack switches on, in pack order."""
        out = []
        for rid, spec in pack.rules.items():
            if not spec.enabled or rid not in self._rules:
                continue
            rdef = self._rules[rid]
            if rdef.scope == scope and (rdef.gate or not gate_only):
                out.append((rdef, spec))
        return out

    def evaluate(
        self,
        pack: PolicyPack,
        scope: str,
        subject: Any,
        at: date,
        *,
        subject_id: str | None = None,
        gate_only: bool = False,
        **extra: Any,
    ) -> list[Finding]:
        """Run every enabled rule of ``scope`` on ``subject`` at date ``at``.

        A rule whose parameter the user must still set yields one error finding
        (outcome ``param_required``) instead of a verdict; other pack defects raise PolicyError.
        """
        findings: list[Finding] = []
        for rdef, spec in self.enabled(pack, scope, gate_only=gate_only):
            ctx = RuleContext(
                rule=rdef, spec=spec, pack=pack, at=at, subject=subject_id, extra=extra
            )
            try:
                result = rdef.func(ctx, subject)
            except PolicyError as exc:
                if exc.key != "policy_param_required":
                    raise
                findings.append(_param_required_finding(pack, rdef, spec, exc, subject_id))
                continue
            if result is None:
                continue
            if isinstance(result, Finding):
                findings.append(result)
            else:
                findings.extend(result)
        return findings


def _param_required_finding(
    pack: PolicyPack, rdef: RuleDef, spec: RuleSpec, exc: PolicyError, subject_id: str | None
) -> Finding:
    name = str(exc.data.get("param"))
    p = pack.parameter(name)
    facts = {
        "pack_id": pack.id,
        "param": name,
        "title": p.title or name,
        "rule_id": rdef.id,
        "clause": p.clause or spec.clause,
        "note": p.note or "",
        "unit": p.unit,
    }
    return Finding(
        rule_id=rdef.id,
        outcome="param_required",
        severity="error",
        message=render(pack.message("param_required"), facts, rdef.id, pack.id),
        clause=p.clause or spec.clause,
        subject=subject_id,
        facts=facts,
    )
