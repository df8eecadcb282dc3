"""Typed indicator model: operands, formula kinds, targets, warning rules, catalogues.

Formulas are frozen dataclasses, one class per kind; nothing is ever evaluated from a string.
Each formula knows the dimension of its result (:meth:`result_dims`), which the catalogue
loader compares with the indicator's declared unit.

Formula kinds (``kind`` in the YAML):

``area``
    Sum of the areas of land-use class groups (or control-line layers) in the unit.
``area_ratio``
    Area of group(s) A over area of group(s) B, or over the unit area.
``per_capita``
    An area, a facility count, a facility attribute sum or a statistic over population.
``density``
    A quantity over the unit area (or over an area operand).
``count``
    Number of facility features inside each unit.
``coverage``
    Share of the unit covered by straight-line service buffers of facilities
    (see :mod:`yizhangtu.indicators.coverage` for the method).
``from_table``
    A statistic used directly.
``ratio``
    Any operand over any operand (e.g. urban over total population).
``composite``
    Weighted mean or sum of other indicators, optionally of their achievement (% of target).
``not_computable``
    Declared as not computable with the platform's data; ``missing`` names what is lacking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from yizhangtu.indicators.units import Unit, dims_of, parse_unit

__all__ = [
    "STATUSES",
    "STATUS_COLORS",
    "STATUS_KEYS",
    "AreaFormula",
    "AreaRatioFormula",
    "Catalogue",
    "Component",
    "CompositeFormula",
    "CountFormula",
    "CoverageFormula",
    "DensityFormula",
    "Direction",
    "Formula",
    "FromTableFormula",
    "Indicator",
    "NotComputableFormula",
    "Operand",
    "PerCapitaFormula",
    "RatioFormula",
    "Target",
    "WarningRule",
]

Direction = Literal["higher_better", "lower_better", "neutral"]
OperandKind = Literal["area", "unit_area", "table", "facility_count", "facility_sum"]

#: Status labels shown to users, in display order, with stable English keys.
STATUSES: tuple[str, ...] = ("达标", "预警", "未达标", "无目标", "无法计算")
STATUS_KEYS: dict[str, str] = {
    "达标": "met",
    "预警": "warning",
    "未达标": "not_met",
    "无目标": "no_target",
    "无法计算": "not_computable",
}
STATUS_COLORS: dict[str, str] = {
    "达标": "#2e7d32",
    "预警": "#f9a825",
    "未达标": "#c62828",
    "无目标": "#757575",
    "无法计算": "#bdbdbd",
}

_AREA = dims_of({"L": 2})
_PERSON = dims_of({"P": 1})
_ITEM = dims_of({"N": 1})


def _sub(
    a: tuple[tuple[str, int], ...], b: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    out = dict(a)
    for k, v in b:
        out[k] = out.get(k, 0) - v
    return dims_of(out)


@dataclass(frozen=True)
class Operand:
    """One input quantity of a formula, resolved per unit from :class:`IndicatorInputs`.

    Attributes
    ----------
    kind : {'area', 'unit_area', 'table', 'facility_count', 'facility_sum'}
        ``area``: summed area (m²) of class groups; ``unit_area``: area of the unit;
        ``table``: a column of a statistical table; ``facility_count``: number of facility
        features in the unit; ``facility_sum``: sum of a facility attribute in the unit.
    groups : tuple of str
        Area groups (``area`` only), e.g. ``("park_green",)``.
    table, column : str, optional
        Statistical table and column (``table``); column also for ``facility_sum``.
    facilities : str, optional
        Facility layer name (``facility_count``, ``facility_sum``).
    unit : str, optional
        Unit of the table column or facility attribute (required for those kinds).
    label : str, optional
        Chinese name used in messages.
    """

    kind: OperandKind
    groups: tuple[str, ...] = ()
    table: str | None = None
    column: str | None = None
    facilities: str | None = None
    unit: str | None = None
    label: str | None = None

    @property
    def value_unit(self) -> Unit:
        """Unit of the operand's raw values."""
        if self.kind in ("area", "unit_area"):
            return parse_unit("m2")
        if self.kind == "facility_count":
            return parse_unit("个")
        return parse_unit(self.unit or "")

    @property
    def dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the operand."""
        return self.value_unit.dims

    def describe(self) -> str:
        """Short Chinese description for messages and reports."""
        if self.label:
            return self.label
        if self.kind == "area":
            return "地类面积(" + "+".join(self.groups) + ")"
        if self.kind == "unit_area":
            return "单元面积"
        if self.kind == "table":
            return f"统计表 {self.table}.{self.column}"
        if self.kind == "facility_count":
            return f"设施 {self.facilities} 数量"
        return f"设施 {self.facilities}.{self.column} 合计"

    def requirement(self) -> str:
        """Describe, in Chinese, what the caller must supply (for 'not computable' reasons)."""
        if self.kind == "area":
            return "地类面积表中的分组 " + "、".join(self.groups)
        if self.kind == "unit_area":
            return "单元面积或单元边界"
        if self.kind == "table":
            return f"统计表 {self.table} 的字段 {self.column}"
        if self.kind == "facility_count":
            return f"设施图层 {self.facilities} 与单元边界"
        return f"设施图层 {self.facilities} 的字段 {self.column} 与单元边界"


@dataclass(frozen=True)
class AreaFormula:
    """Sum of group areas in the unit."""

    groups: tuple[str, ...]
    method_note: str | None = None
    kind: Literal["area"] = "area"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (Operand("area", groups=self.groups),)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return _AREA


@dataclass(frozen=True)
class AreaRatioFormula:
    """Area of groups A over area of groups B (or over the unit area)."""

    numerator: Operand
    denominator: Operand
    method_note: str | None = None
    kind: Literal["area_ratio"] = "area_ratio"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (self.numerator, self.denominator)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return ()


@dataclass(frozen=True)
class PerCapitaFormula:
    """A quantity over population."""

    numerator: Operand
    population: Operand
    method_note: str | None = None
    kind: Literal["per_capita"] = "per_capita"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (self.numerator, self.population)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return _sub(self.numerator.dims, self.population.dims)


@dataclass(frozen=True)
class DensityFormula:
    """A quantity over the unit area (or over ``area``)."""

    numerator: Operand
    area: Operand = field(default_factory=lambda: Operand("unit_area"))
    method_note: str | None = None
    kind: Literal["density"] = "density"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (self.numerator, self.area)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return _sub(self.numerator.dims, _AREA)


@dataclass(frozen=True)
class CountFormula:
    """Number of facility features inside each unit."""

    facilities: str
    method_note: str | None = None
    kind: Literal["count"] = "count"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (Operand("facility_count", facilities=self.facilities),)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return _ITEM


@dataclass(frozen=True)
class CoverageFormula:
    """Share of each unit within ``radius_m`` (straight line) of facilities.

    ``combine='all'`` requires every listed facility layer within reach (e.g. a complete
    15-minute life circle); ``'any'`` accepts any of them. ``weight`` decides how units are
    pooled in an aggregate row: by population (``population`` operand) or by area; ``auto``
    uses population when the table is supplied, else area.
    """

    facilities: tuple[str, ...]
    radius_m: float
    combine: Literal["any", "all"] = "any"
    weight: Literal["auto", "population", "area"] = "auto"
    population: Operand | None = None
    radius_note: str | None = None
    method_note: str | None = None
    kind: Literal["coverage"] = "coverage"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        ops = [Operand("facility_count", facilities=f) for f in self.facilities]
        ops.append(Operand("unit_area"))
        if self.population is not None:
            ops.append(self.population)
        return tuple(ops)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return ()


@dataclass(frozen=True)
class FromTableFormula:
    """A statistic used directly; ``aggregate='sum'`` allows summing units."""

    value: Operand
    aggregate: Literal["sum", "none"] = "none"
    method_note: str | None = None
    kind: Literal["from_table"] = "from_table"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (self.value,)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return self.value.dims


@dataclass(frozen=True)
class RatioFormula:
    """Any operand over any operand."""

    numerator: Operand
    denominator: Operand
    method_note: str | None = None
    kind: Literal["ratio"] = "ratio"

    def operands(self) -> tuple[Operand, ...]:
        """Input operands."""
        return (self.numerator, self.denominator)

    def result_dims(self) -> tuple[tuple[str, int], ...]:
        """Dimension of the result."""
        return _sub(self.numerator.dims, self.denominator.dims)


@dataclass(frozen=True)
class Component:
    """One weighted part of a composite indicator."""

    indicator: str
    weight: float


@dataclass(frozen=True)
class CompositeFormula:
    """Weighted mean or sum of other indicators' values (or of their achievement, %)."""

    components: tuple[Component, ...]
    method: Literal["weighted_mean", "weighted_sum"] = "weighted_mean"
    normalize: Literal["none", "achievement"] = "none"
    cap_achievement_pct: float | None = None
    method_note: str | None = None
    kind: Literal["composite"] = "composite"

    def operands(self) -> tuple[Operand, ...]:
        """Composite formulas read other indicators, not inputs."""
        return ()


@dataclass(frozen=True)
class NotComputableFormula:
    """Not computable with the platform's data; ``missing`` says what is lacking."""

    missing: tuple[str, ...]
    method_note: str | None = None
    kind: Literal["not_computable"] = "not_computable"

    def operands(self) -> tuple[Operand, ...]:
        """No operands."""
        return ()


Formula = (
    AreaFormula
    | AreaRatioFormula
    | PerCapitaFormula
    | DensityFormula
    | CountFormula
    | CoverageFormula
    | FromTableFormula
    | RatioFormula
    | CompositeFormula
    | NotComputableFormula
)


@dataclass(frozen=True)
class Target:
    """A target value for a year; ``kind='limit'`` is a bottom line or cap (底线/上限).

    With ``baseline_year``/``baseline_value`` the target for an earlier year is interpolated
    linearly along the path from the baseline (按进度目标).
    """

    year: int
    value: float
    kind: Literal["goal", "limit"] = "goal"
    unit_id: str | None = None
    baseline_year: int | None = None
    baseline_value: float | None = None
    clause: str | None = None
    quote: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class WarningRule:
    """How an indicator's status follows from its value, target and trend.

    Attributes
    ----------
    yellow_within_pct : float
        Band, in % of the target value. For a goal not yet met, a shortfall within the band
        is 预警; for a limit that holds, a margin within the band is 预警 (approaching it).
    red_when_worsening : bool
        A goal not met whose trend moves away from the target is 未达标, whatever the band.
    yellow_when_worsening : bool
        A met target whose trend moves towards breaking it is 预警.
    red_threshold : float, optional
        Absolute threshold: beyond it (below for higher-better, above for lower-better) the
        status is 未达标.
    flat_tolerance : float
        Absolute slope per year (indicator unit) below which the trend counts as flat.
    """

    yellow_within_pct: float = 0.0
    red_when_worsening: bool = False
    yellow_when_worsening: bool = False
    red_threshold: float | None = None
    flat_tolerance: float = 0.0
    clause: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Indicator:
    """One indicator of a catalogue."""

    id: str
    name: str
    dimension: str
    unit: str
    direction: Direction
    scope: str
    formula: Formula
    category: str | None = None
    inputs: tuple[str, ...] = ()
    source_level: str | None = None
    department: str | None = None
    targets: tuple[Target, ...] = ()
    warning: WarningRule = field(default_factory=WarningRule)
    clause: str | None = None
    note: str | None = None
    source: str | None = None
    ref: str | None = None

    @property
    def parsed_unit(self) -> Unit:
        """The declared unit, parsed."""
        return parse_unit(self.unit)

    @property
    def computable(self) -> bool:
        """False when the formula is ``not_computable``."""
        return self.formula.kind != "not_computable"

    def required_inputs(self) -> tuple[str, ...]:
        """Chinese descriptions of the inputs the formula reads."""
        if isinstance(self.formula, NotComputableFormula):
            return self.formula.missing
        if isinstance(self.formula, CompositeFormula):
            return tuple(f"指标 {c.indicator}" for c in self.formula.components)
        return tuple(dict.fromkeys(op.requirement() for op in self.formula.operands()))


@dataclass(frozen=True)
class Catalogue:
    """A validated indicator catalogue."""

    id: str
    title: str
    version: str
    period_start: int
    period_end: int
    indicators: tuple[Indicator, ...]
    jurisdiction: str | None = None
    source: str | None = None
    description: str | None = None
    dimensions: tuple[str, ...] = ()
    default_warning: WarningRule = field(default_factory=WarningRule)
    synthetic: bool = False
    origin: str | None = None

    def __iter__(self) -> Iterator[Indicator]:
        return iter(self.indicators)

    def __len__(self) -> int:
        return len(self.indicators)

    def get(self, indicator_id: str) -> Indicator:
        """Return the indicator with this id.

        Raises
        ------
        NotFoundError
            If the catalogue has no such indicator.
        """
        for ind in self.indicators:
            if ind.id == indicator_id:
                return ind
        from yizhangtu.errors import NotFoundError

        raise NotFoundError(
            f"指标目录 {self.id} 中没有指标 {indicator_id}",
            key="indicator_not_found",
            hint="用 list_indicators 查看可用指标",
        )

    def dimension_order(self) -> tuple[str, ...]:
        """Dimensions in display order: declared ones first, then any others."""
        seen = list(self.dimensions)
        for ind in self.indicators:
            if ind.dimension not in seen:
                seen.append(ind.dimension)
        return tuple(seen)

    def computable_ids(self) -> tuple[str, ...]:
        """Ids of indicators with a real formula."""
        return tuple(i.id for i in self.indicators if i.computable)
