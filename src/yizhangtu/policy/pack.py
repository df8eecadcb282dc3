"""Policy packs (政策包): parameters with clause citations, rule switches and messages.

A pack is data: every threshold, ratio, coefficient and deadline a module applies lives in
a YAML pack with the clause it comes from. Code asks the pack with :meth:`PolicyPack.param`
and never holds such a number itself.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

from yizhangtu.errors import PolicyError

__all__ = [
    "DURATION_UNITS",
    "UNIT_KINDS",
    "UNIT_LABELS",
    "MessageSpec",
    "Parameter",
    "PolicyPack",
    "RuleSpec",
    "add_period",
    "canonical_json",
    "check_value_kind",
    "parse_ratio",
]

#: Kind of value each unit admits. Must list exactly the units of the JSON Schema.
UNIT_KINDS: dict[str, str] = {
    "m": "number",
    "m2": "number",
    "ha": "number",
    "km2": "number",
    "mu": "number",
    "ratio": "ratio",
    "percent": "number",
    "coefficient": "number",
    "year": "duration",
    "month": "duration",
    "day": "duration",
    "count": "number",
    "person": "number",
    "yuan": "number",
    "wan_yuan": "number",
    "yuan_per_m2": "number",
    "spaces_per_100m2": "number",
    "list": "list",
    "split": "split",
    "text": "text",
    "bool": "bool",
    "date": "date",
}

#: Chinese display label of each unit.
UNIT_LABELS: dict[str, str] = {
    "m": "米",
    "m2": "平方米",
    "ha": "公顷",
    "km2": "平方公里",
    "mu": "亩",
    "ratio": "比例",
    "percent": "%",
    "coefficient": "系数",
    "year": "年",
    "month": "个月",
    "day": "天",
    "count": "个",
    "person": "人",
    "yuan": "元",
    "wan_yuan": "万元",
    "yuan_per_m2": "元/平方米",
    "spaces_per_100m2": "个/100平方米建筑面积",
    "list": "列表",
    "split": "分成比例",
    "text": "文本",
    "bool": "是/否",
    "date": "日期",
}

DURATION_UNITS = ("year", "month", "day")


def canonical_json(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces, UTF-8 characters kept)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_ratio(value: Any) -> float:
    """Read a ratio given as a number or an exact fraction string such as ``"1/3"``."""
    if isinstance(value, bool):
        raise ValueError("布尔值不是比例")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(Fraction(value.strip()))
    raise ValueError(f"无法解读为比例: {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_value_kind(value: Any, unit: str) -> str | None:
    """Return a Chinese description of why ``value`` does not fit ``unit``, or None if it fits."""
    kind = UNIT_KINDS.get(unit)
    if kind is None:
        return f"未知单位 {unit}"
    if value is None:
        return None
    if kind in ("number", "duration", "ratio") and isinstance(value, Mapping):
        if not value:
            return "按类别取值的映射不能为空"
        for key, item in value.items():
            problem = check_value_kind(item, unit)
            if problem:
                return f"键 {key}: {problem}"
        return None
    if kind == "number":
        return None if _is_number(value) else f"单位 {unit} 需要数值, 实为 {value!r}"
    if kind == "duration":
        if _is_number(value) and value >= 0 and float(value).is_integer():
            return None
        return f"期限单位 {unit} 需要非负整数, 实为 {value!r}"
    if kind == "ratio":
        try:
            ratio = parse_ratio(value)
        except (ValueError, ZeroDivisionError):
            return f'比例须为 0 到 1 之间的数或分数(如 "1/3"), 实为 {value!r}'
        if not (0.0 <= ratio <= 1.0) or not math.isfinite(ratio):
            return f"比例须在 0 到 1 之间(以小数表示, 如 0.8 表示 80%), 实为 {value!r}"
        return None
    if kind == "list":
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return None
        return f"单位 list 需要非空字符串列表, 实为 {value!r}"
    if kind == "split":
        if (
            isinstance(value, Mapping)
            and len(value) >= 2
            and all(_is_number(v) and v > 0 for v in value.values())
        ):
            return None
        return f"单位 split 需要至少两方的正数份额映射(如 {{市: 5, 镇街: 5}}), 实为 {value!r}"
    if kind == "text":
        return (
            None if isinstance(value, str) and value else f"单位 text 需要非空文本, 实为 {value!r}"
        )
    if kind == "bool":
        return None if isinstance(value, bool) else f"单位 bool 需要 true/false, 实为 {value!r}"
    if kind == "date":
        if isinstance(value, date):
            return None
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
            except ValueError:
                return f"日期格式须为 YYYY-MM-DD, 实为 {value!r}"
            return None
        return f"单位 date 需要日期, 实为 {value!r}"
    return None  # pragma: no cover - every kind handled above


def _to_python(value: Any, unit: str) -> Any:
    """Convert a stored value to the Python value rules receive."""
    kind = UNIT_KINDS[unit]
    if value is None:
        return None
    if isinstance(value, Mapping) and kind in ("number", "duration", "ratio"):
        return {k: _to_python(v, unit) for k, v in value.items()}
    if kind == "ratio":
        return parse_ratio(value)
    if kind == "duration":
        return int(value)
    if kind == "list":
        return tuple(value)
    if kind == "split":
        return dict(value)
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def add_period(start: date, amount: int, unit: str) -> date:
    """Add a period in calendar units; month ends are clamped (1-31 + 1 month = 2-28/29).

    A deadline "within N years of X" falls on ``add_period(X, N, "year")`` and that day is
    still on time (民法典 第二百零一条、第一千二百五十九条: 期间自次日起算, 期间届满包括本数).
    """
    if unit not in DURATION_UNITS:
        raise PolicyError(
            f"期限单位须为 year、month 或 day, 实为 {unit}",
            key="policy_bad_duration_unit",
            hint="在政策包中把期限参数的 unit 改为 year、month 或 day",
        )
    if unit == "day":
        return date.fromordinal(start.toordinal() + amount)
    months = amount * (12 if unit == "year" else 1)
    total = start.year * 12 + (start.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


@dataclass(frozen=True)
class Parameter:
    """One policy parameter: a value with its unit, clause citation and validity.

    Attributes
    ----------
    name : str
        Parameter id, e.g. ``consent_share_min``.
    value : Any
        Value as written in the pack (``None`` when the user must set it).
    unit : str
        One of :data:`UNIT_KINDS`.
    clause : str or None
        Citation such as ``004 (十)``; None only for local choices.
    local_choice : bool
        The value is a local choice or default, not read from the cited text.
    required_from_user : bool
        The user must set the value (e.g. an illegible digit in the source).
    """

    name: str
    value: Any
    unit: str
    clause: str | None = None
    title: str | None = None
    note: str | None = None
    local_choice: bool = False
    required_from_user: bool = False
    user_set: bool = False
    effective_from: date | None = None
    effective_to: date | None = None

    @property
    def is_set(self) -> bool:
        """True when the parameter has a value."""
        return self.value is not None

    @property
    def python_value(self) -> Any:
        """Value converted for use (ratios as float, lists as tuples, dates as date)."""
        return _to_python(self.value, self.unit)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        out: dict[str, Any] = {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "unit_label": UNIT_LABELS.get(self.unit, self.unit),
            "clause": self.clause,
            "local_choice": self.local_choice,
            "required_from_user": self.required_from_user,
        }
        for key in ("title", "note"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.user_set:
            out["user_set"] = True
        if self.effective_from:
            out["effective_from"] = self.effective_from.isoformat()
        if self.effective_to:
            out["effective_to"] = self.effective_to.isoformat()
        return out


@dataclass(frozen=True)
class MessageSpec:
    """Severity and Chinese text template of one rule outcome."""

    severity: str
    text: str


@dataclass(frozen=True)
class RuleSpec:
    """How a pack applies one registered rule: switch, clause and per-outcome messages."""

    id: str
    clause: str
    messages: Mapping[str, MessageSpec]
    enabled: bool = True
    title: str | None = None
    note: str | None = None


def _date_or_none(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


DEFAULT_MESSAGES: dict[str, str] = {
    "param_required": (
        "政策包 {pack_id} 的参数 {param}({title})须由用户设定后才能执行规则 {rule_id}"
        "(依据 {clause}): {note}"
    ),
}


@dataclass(frozen=True, eq=False)
class PolicyPack:
    """A loaded, schema-valid policy pack.

    Build packs with :func:`yizhangtu.policy.load_pack`; the constructor trusts its input.
    """

    id: str
    version: str
    title: str
    module: str
    jurisdiction: Mapping[str, Any]
    effective: date
    expires: date | None
    sources: tuple[Mapping[str, Any], ...]
    parameters: Mapping[str, Parameter]
    rules: Mapping[str, RuleSpec]
    messages: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    synthetic: bool = False
    content: Mapping[str, Any] = field(default_factory=dict, repr=False)
    path: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_content(cls, content: Mapping[str, Any], path: str | None = None) -> PolicyPack:
        """Build a pack from schema-valid content (dates as ISO strings)."""
        params = {
            name: Parameter(
                name=name,
                value=spec.get("value"),
                unit=spec["unit"],
                clause=spec.get("clause"),
                title=spec.get("title"),
                note=spec.get("note"),
                local_choice=bool(spec.get("local_choice", False)),
                required_from_user=bool(spec.get("required_from_user", False)),
                user_set=bool(spec.get("user_set", False)),
                effective_from=_date_or_none(spec.get("effective_from")),
                effective_to=_date_or_none(spec.get("effective_to")),
            )
            for name, spec in content.get("parameters", {}).items()
        }
        rules = {
            rid: RuleSpec(
                id=rid,
                clause=spec["clause"],
                messages={
                    k: MessageSpec(severity=m["severity"], text=m["text"])
                    for k, m in spec.get("messages", {}).items()
                },
                enabled=bool(spec.get("enabled", True)),
                title=spec.get("title"),
                note=spec.get("note"),
            )
            for rid, spec in content.get("rules", {}).items()
        }
        return cls(
            id=content["id"],
            version=str(content["version"]),
            title=content["title"],
            module=content["module"],
            jurisdiction=dict(content["jurisdiction"]),
            effective=_date_or_none(content["effective"]),  # type: ignore[arg-type]
            expires=_date_or_none(content.get("expires")),
            sources=tuple(dict(s) for s in content.get("sources", [])),
            parameters=params,
            rules=rules,
            messages=dict(content.get("messages", {})),
            notes=tuple(content.get("notes", [])),
            synthetic=bool(content.get("synthetic", False)),
            content=copy.deepcopy(dict(content)),
            path=path,
        )

    # ------------------------------------------------------------------ identity
    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the pack content (hex)."""
        return hashlib.sha256(canonical_json(self.content).encode("utf-8")).hexdigest()

    def ref(self) -> dict[str, str]:
        """Provenance reference: id, version and content hash."""
        return {"id": self.id, "version": self.version, "hash": self.hash}

    # ------------------------------------------------------------------ validity
    def is_valid_at(self, at: date) -> bool:
        """Tell whether ``at`` lies within [effective, expires] (both days included)."""
        return self.effective <= at and (self.expires is None or at <= self.expires)

    def ensure_valid_at(self, at: date) -> None:
        """Raise PolicyError if the pack is not in force on ``at``."""
        if not isinstance(at, date):
            raise PolicyError(f"评价日期无效: {at!r}", key="policy_bad_date", field="at")
        if at < self.effective:
            raise PolicyError(
                f"政策包 {self.id}({self.title})自 {self.effective.isoformat()} 起施行,"
                f"评价日期 {at.isoformat()} 尚未生效",
                key="policy_not_yet_effective",
                data={"pack": self.ref(), "at": at.isoformat()},
                hint="改用评价日期适用的政策包, 或调整评价日期",
            )
        if self.expires is not None and at > self.expires:
            raise PolicyError(
                f"政策包 {self.id}({self.title})有效期至 {self.expires.isoformat()},"
                f"评价日期 {at.isoformat()} 已过期",
                key="policy_expired",
                data={"pack": self.ref(), "at": at.isoformat()},
                hint="改用新的政策包, 或在有效期内评价",
            )

    # ------------------------------------------------------------------ parameters
    def parameter(self, name: str) -> Parameter:
        """Return the :class:`Parameter` called ``name``; PolicyError if the pack lacks it."""
        try:
            return self.parameters[name]
        except KeyError:
            raise PolicyError(
                f"政策包 {self.id} 缺少参数 {name}",
                key="policy_param_missing",
                field=name,
                file=self.path,
                data={"pack": self.id, "param": name},
                hint=f"在政策包 parameters 中补充 {name}(value、unit、clause)",
            ) from None

    def param(self, name: str, unit: str | None = None, at: date | None = None) -> Any:
        """Value of parameter ``name`` ready for use.

        Parameters
        ----------
        name : str
            Parameter id.
        unit : str, optional
            Unit the caller expects; a different unit in the pack raises PolicyError.
        at : date, optional
            Evaluation date; a parameter not in force on that date raises PolicyError.

        Raises
        ------
        PolicyError
            Missing parameter (``policy_param_missing``), unit mismatch
            (``policy_param_unit``), value the user must still set
            (``policy_param_required``) or parameter not in force (``policy_param_inactive``).
        """
        p = self.parameter(name)
        if unit is not None and p.unit != unit:
            raise PolicyError(
                f"政策包 {self.id} 的参数 {name} 单位为 {p.unit}"
                f"({UNIT_LABELS.get(p.unit, p.unit)}),"
                f"规则需要 {unit}({UNIT_LABELS.get(unit, unit)})",
                key="policy_param_unit",
                field=name,
                file=self.path,
                data={"pack": self.id, "param": name, "unit": p.unit, "expected_unit": unit},
                hint=f"把 {name} 换算为 {unit} 并修改 unit",
            )
        if at is not None:
            start = p.effective_from or self.effective
            end = p.effective_to or self.expires
            if at < start or (end is not None and at > end):
                raise PolicyError(
                    f"政策包 {self.id} 的参数 {name} 在 {at.isoformat()} 不适用"
                    f"(适用期 {start.isoformat()} 至 {end.isoformat() if end else '长期'})",
                    key="policy_param_inactive",
                    field=name,
                    data={"pack": self.id, "param": name, "at": at.isoformat()},
                )
        if p.value is None:
            raise PolicyError(
                f"政策包 {self.id} 的参数 {name} 须由用户设定"
                + (f"({p.clause})" if p.clause else "")
                + (f": {p.note}" if p.note else ""),
                key="policy_param_required",
                field=name,
                file=self.path,
                data={"pack": self.id, "param": name, "clause": p.clause},
                hint=f"用 pack.with_values({name}=...) 或在政策包中填写 {name} 的 value",
            )
        return p.python_value

    def with_values(self, values: Mapping[str, Any] | None = None, **kw: Any) -> PolicyPack:
        """Return a copy in which the user has set parameter values (hash changes).

        Raises PolicyError for an unknown parameter or a value that does not fit its unit.
        """
        updates = dict(values or {})
        updates.update(kw)
        content = copy.deepcopy(dict(self.content))
        for name, value in updates.items():
            p = self.parameter(name)
            problem = check_value_kind(value, p.unit)
            if problem or value is None:
                raise PolicyError(
                    f"参数 {name} 的设定值无效: {problem or '不能为空'}",
                    key="policy_param_value",
                    field=name,
                    data={"pack": self.id, "param": name, "value": value},
                )
            content["parameters"][name]["value"] = value
            content["parameters"][name]["user_set"] = True
        return PolicyPack.from_content(content, path=self.path)

    # ------------------------------------------------------------------ rules and messages
    def rule(self, rule_id: str) -> RuleSpec | None:
        """Return the pack's spec for ``rule_id``, or None if the pack does not mention it."""
        return self.rules.get(rule_id)

    def enabled_rule_ids(self) -> tuple[str, ...]:
        """Ids of the rules this pack switches on."""
        return tuple(rid for rid, spec in self.rules.items() if spec.enabled)

    def message(self, key: str) -> str:
        """Framework message template ``key`` (pack text, else the built-in default)."""
        return self.messages.get(key) or DEFAULT_MESSAGES[key]

    def summary(self) -> dict[str, Any]:
        """Short JSON-ready description."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "module": self.module,
            "jurisdiction": dict(self.jurisdiction),
            "effective": self.effective.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "synthetic": self.synthetic,
            "hash": self.hash,
            "path": self.path,
            "parameters": len(self.parameters),
            "rules_enabled": len(self.enabled_rule_ids()),
            "required_from_user": [
                p.name for p in self.parameters.values() if p.required_from_user and not p.is_set
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        """Full JSON-ready description."""
        out = self.summary()
        out["sources"] = [dict(s) for s in self.sources]
        out["notes"] = list(self.notes)
        out["parameters"] = [p.to_dict() for p in self.parameters.values()]
        out["rules"] = [
            {
                "id": r.id,
                "enabled": r.enabled,
                "clause": r.clause,
                "title": r.title,
                "messages": {
                    k: {"severity": m.severity, "text": m.text} for k, m in r.messages.items()
                },
            }
            for r in self.rules.values()
        ]
        return out
