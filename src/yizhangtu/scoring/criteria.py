"""Scoring criteria and the scoring configuration (parsed from a YAML mapping).

A criterion has an English ``name``, a Chinese ``label``, a ``direction`` (``benefit``: more is
better, ``cost``: less is better) and a ``source`` saying where its raw values come from:

``field``
    a column of the sites frame;
``layer_field``
    a field of the polygon of another layer that contains the site (e.g. a street attribute);
``indicator``
    an indicator value per spatial unit (long table: ``indicator``, ``unit``, ``value``),
    joined on a site field;
``table``
    a column of a table joined on a key;
``distance_to_nearest``
    metres from the site to the nearest feature of a layer;
``count_within``
    number of features of a layer within ``radius_m`` metres of the site;
``manual``
    a score typed per site (``values: {site_id: score}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from yizhangtu.errors import InputError, ValidationError

__all__ = [
    "DIRECTIONS",
    "METHODS",
    "NORMALISATIONS",
    "SOURCE_KINDS",
    "Criterion",
    "CriterionSource",
    "ModeRule",
    "PhaseBand",
    "RecommendationRules",
    "ScoringConfig",
    "WeightSpec",
    "parse_recommendation_rules",
    "parse_scoring_config",
]

Direction = Literal["benefit", "cost"]
DIRECTIONS: dict[str, str] = {"benefit": "效益型(越大越好)", "cost": "成本型(越小越好)"}
SOURCE_KINDS: dict[str, str] = {
    "field": "站点属性字段",
    "layer_field": "所在图层要素字段",
    "indicator": "指标值",
    "table": "外部表",
    "distance_to_nearest": "到最近要素的距离",
    "count_within": "半径范围内要素个数",
    "manual": "人工评分",
}
NORMALISATIONS: dict[str, str] = {
    "minmax": "极差标准化",
    "zscore": "Z 分数标准化",
    "rank": "排序标准化",
}
METHODS: dict[str, str] = {"weighted": "加权求和", "topsis": "TOPSIS 逼近理想解法"}

_DIRECTION_ALIASES = {
    "benefit": "benefit",
    "效益型": "benefit",
    "正向": "benefit",
    "cost": "cost",
    "成本型": "cost",
    "负向": "cost",
}


@dataclass(frozen=True)
class CriterionSource:
    """Where a criterion's raw values come from (see module docstring)."""

    kind: str
    field: str | None = None
    layer: str | None = None
    table: str | None = None
    key: str | None = None
    site_key: str | None = None
    indicator: str | None = None
    radius_m: float | None = None
    values: Mapping[str, float] | None = None

    def describe(self) -> str:
        """Chinese description for reports."""
        k = SOURCE_KINDS.get(self.kind, self.kind)
        if self.kind == "field":
            return f"{k} {self.field}"
        if self.kind == "layer_field":
            return f"{k} {self.layer}.{self.field}"
        if self.kind == "indicator":
            return f"{k} {self.indicator}"
        if self.kind == "table":
            return f"{k} {self.table}.{self.field}"
        if self.kind == "distance_to_nearest":
            return f"{k} ({self.layer}, 米)"
        if self.kind == "count_within":
            return f"{self.layer} {self.radius_m:g} 米{k}"
        return k


@dataclass(frozen=True)
class Criterion:
    """One scoring criterion."""

    name: str
    label: str
    direction: Direction
    source: CriterionSource
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class WeightSpec:
    """Weights given directly (``direct``) or as an AHP pairwise matrix (``ahp_matrix``)."""

    direct: Mapping[str, float] | None = None
    ahp_matrix: tuple[tuple[Any, ...], ...] | None = None
    ahp_pairs: tuple[tuple[str, str, Any], ...] | None = None


@dataclass(frozen=True)
class PhaseBand:
    """Rank band → implementation phase (近期/中期/远期)."""

    max_rank_fraction: float
    phase: str
    period: str = ""
    note: str = ""


@dataclass(frozen=True)
class ModeRule:
    """Conditions on normalised criterion values → recommended implementation mode."""

    when: Mapping[str, Mapping[str, float]]
    mode: str
    text: str = ""


@dataclass(frozen=True)
class RecommendationRules:
    """Phase bands and mode rules, with their source."""

    phases: tuple[PhaseBand, ...]
    modes: tuple[ModeRule, ...]
    source: str = ""
    example: bool = True


@dataclass(frozen=True)
class ScoringConfig:
    """A full scoring run: criteria, weights, method and reporting rules."""

    title: str
    criteria: tuple[Criterion, ...]
    weights: WeightSpec
    method: str = "weighted"
    normalisation: str = "minmax"
    id_field: str = "site_id"
    name_field: str = "name"
    synthetic: bool = False
    rules: RecommendationRules | None = None
    rules_from_config: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def criterion(self, name: str) -> Criterion:
        """Return the criterion called ``name``."""
        for c in self.criteria:
            if c.name == name:
                return c
        raise ValidationError(f"未定义的准则: {name}", key="unknown_criterion")


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] in (None, ""):
        raise ValidationError(f"{where}缺少必填项 {key}", key="config_missing", field=key)
    return d[key]


def _parse_source(d: Any, cname: str) -> CriterionSource:
    where = f"准则 {cname} 的 source "
    if not isinstance(d, Mapping):
        raise ValidationError(f"{where}必须是映射", key="config_invalid", field="source")
    kind = str(_req(d, "kind", where))
    if kind not in SOURCE_KINDS:
        raise ValidationError(
            f"{where}的类型未知: {kind}",
            key="criterion_source_unknown",
            hint="可选: " + ", ".join(SOURCE_KINDS),
        )
    radius = d.get("radius_m")
    values = d.get("values")
    src = CriterionSource(
        kind=kind,
        field=d.get("field"),
        layer=d.get("layer"),
        table=d.get("table"),
        key=d.get("key"),
        site_key=d.get("site_key"),
        indicator=d.get("indicator"),
        radius_m=float(radius) if radius is not None else None,
        values={str(k): v for k, v in values.items()} if isinstance(values, Mapping) else None,
    )
    need = {
        "field": ("field",),
        "layer_field": ("layer", "field"),
        "indicator": ("indicator", "site_key"),
        "table": ("table", "field"),
        "distance_to_nearest": ("layer",),
        "count_within": ("layer", "radius_m"),
        "manual": ("values",),
    }[kind]
    for k in need:
        if getattr(src, k) in (None, ""):
            raise ValidationError(f"{where}({kind}) 缺少 {k}", key="config_missing", field=k)
    if kind == "count_within" and (src.radius_m is None or src.radius_m <= 0):
        raise ValidationError(
            f"{where}的 radius_m 必须为正数 (米)", key="config_invalid", field="radius_m"
        )
    if kind == "manual" and values is not None and not isinstance(values, Mapping):
        raise ValidationError(
            f"{where}的 values 必须是 站点编号: 分值 的映射", key="config_invalid"
        )
    return src


def parse_recommendation_rules(d: Mapping[str, Any]) -> RecommendationRules:
    """Parse phase bands and mode rules (see ``data/recommendation_rules.yaml``)."""
    phases = []
    for p in d.get("phases") or []:
        phases.append(
            PhaseBand(
                max_rank_fraction=float(_req(p, "max_rank_fraction", "时序档位")),
                phase=str(_req(p, "phase", "时序档位")),
                period=str(p.get("period") or ""),
                note=str(p.get("note") or ""),
            )
        )
    if not phases:
        raise ValidationError("推荐规则缺少时序档位 phases", key="config_missing", field="phases")
    phases.sort(key=lambda b: b.max_rank_fraction)
    if phases[-1].max_rank_fraction < 1.0:
        raise ValidationError(
            "时序档位未覆盖全部排名 (最后一档的 max_rank_fraction 须为 1)", key="config_invalid"
        )
    modes = []
    for m in d.get("modes") or []:
        when = m.get("when") or {}
        modes.append(
            ModeRule(
                when={
                    str(k): {kk: float(vv) for kk, vv in (v or {}).items()} for k, v in when.items()
                },
                mode=str(_req(m, "mode", "模式规则")),
                text=str(m.get("text") or ""),
            )
        )
    return RecommendationRules(
        phases=tuple(phases),
        modes=tuple(modes),
        source=str(d.get("source") or ""),
        example=bool(d.get("example", True)),
    )


def parse_scoring_config(d: Mapping[str, Any], *, file: str | None = None) -> ScoringConfig:
    """Build a :class:`ScoringConfig` from a parsed YAML mapping.

    Raises
    ------
    ValidationError
        On a missing or invalid entry (message in Chinese, ``file`` set when given).
    """
    if not isinstance(d, Mapping):
        raise InputError("评价配置必须是 YAML 映射", key="config_invalid", file=file)
    try:
        raw_criteria = _req(d, "criteria", "评价配置")
        if not isinstance(raw_criteria, Sequence) or not raw_criteria:
            raise ValidationError("评价配置 criteria 必须是非空列表", key="config_invalid")
        criteria: list[Criterion] = []
        for i, c in enumerate(raw_criteria):
            where = f"第 {i + 1} 个准则"
            name = str(_req(c, "name", where))
            direction = _DIRECTION_ALIASES.get(str(c.get("direction", "benefit")).strip())
            if direction is None:
                raise ValidationError(
                    f"准则 {name} 的方向无效: {c.get('direction')}",
                    key="criterion_direction",
                    hint="benefit(越大越好) 或 cost(越小越好)",
                )
            criteria.append(
                Criterion(
                    name=name,
                    label=str(c.get("label") or name),
                    direction=direction,  # type: ignore[arg-type]
                    source=_parse_source(_req(c, "source", where), name),
                    unit=str(c.get("unit") or ""),
                    description=str(c.get("description") or ""),
                )
            )
        names = [c.name for c in criteria]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValidationError("准则名称重复: " + "、".join(dup), key="criterion_duplicate")
        w = _req(d, "weights", "评价配置")
        if not isinstance(w, Mapping):
            raise ValidationError("weights 必须是映射 (direct 或 ahp)", key="config_invalid")
        if "ahp" in w:
            ahp = w["ahp"] or {}
            if "matrix" in ahp:
                spec = WeightSpec(ahp_matrix=tuple(tuple(r) for r in ahp["matrix"]))
            elif "pairs" in ahp:
                spec = WeightSpec(ahp_pairs=tuple((str(a), str(b), v) for a, b, v in ahp["pairs"]))
            else:
                raise ValidationError("weights.ahp 需给出 matrix 或 pairs", key="config_missing")
        elif "direct" in w:
            spec = WeightSpec(direct={str(k): v for k, v in (w["direct"] or {}).items()})
        else:
            spec = WeightSpec(direct={str(k): v for k, v in w.items()})
        method = str(d.get("method", "weighted"))
        if method not in METHODS:
            raise ValidationError(
                f"未知的评价方法: {method}", key="method_unknown", hint="weighted 或 topsis"
            )
        norm = str(d.get("normalisation", d.get("normalization", "minmax")))
        if norm not in NORMALISATIONS:
            raise ValidationError(
                f"未知的标准化方法: {norm}",
                key="normalisation_unknown",
                hint="minmax、zscore 或 rank",
            )
        rules = None
        if d.get("recommendation"):
            rules = parse_recommendation_rules(d["recommendation"])
            for m in rules.modes:
                unknown = [k for k in m.when if k not in names]
                if unknown:
                    raise ValidationError(
                        f"模式规则「{m.mode}」引用了未定义的准则: " + "、".join(unknown),
                        key="unknown_criterion",
                    )
        sites = d.get("sites") or {}
        return ScoringConfig(
            title=str(d.get("title") or "站点综合评价"),
            criteria=tuple(criteria),
            weights=spec,
            method=method,
            normalisation=norm,
            id_field=str(sites.get("id_field") or d.get("id_field") or "site_id"),
            name_field=str(sites.get("name_field") or d.get("name_field") or "name"),
            synthetic=bool(d.get("synthetic", False)),
            rules=rules,
            rules_from_config=rules is not None,
            extra={
                k: v
                for k, v in d.items()
                if k in ("sites", "layers", "tables", "indicators", "boundaries")
            },
        )
    except (ValidationError, InputError) as e:
        if file and e.detail.file is None:
            raise type(e)(
                e.message, key=e.key, file=file, field=e.detail.field, hint=e.hint, data=e.data
            ) from None
        raise
