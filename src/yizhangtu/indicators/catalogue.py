"""Load and validate indicator catalogues (YAML, JSON Schema + semantic checks).

Packaged catalogues live in ``yizhangtu/indicators/catalogues/*.yaml``. A user catalogue is
any YAML file that passes the same schema (``schema/catalogue.schema.json``): no code is
needed to add one. Checks beyond the schema:

- indicator ids are unique, dimensions are among the declared ``dimensions`` (if any);
- the declared unit has the dimension the formula produces (``unit_mismatch``), e.g. an
  ``area_ratio`` must be in %/‰/1, a ``per_capita`` of an area in m2/人;
- operand units are known, population operands are counts of people;
- composite components exist, are not composites of themselves (no cycles);
- target years lie inside the catalogue's plan period (``target_year_outside_period``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from yizhangtu.errors import NotFoundError, ValidationError
from yizhangtu.indicators.model import (
    AreaFormula,
    AreaRatioFormula,
    Catalogue,
    Component,
    CompositeFormula,
    CountFormula,
    CoverageFormula,
    DensityFormula,
    Formula,
    FromTableFormula,
    Indicator,
    NotComputableFormula,
    Operand,
    PerCapitaFormula,
    RatioFormula,
    Target,
    WarningRule,
)

__all__ = [
    "catalogue_from_dict",
    "catalogue_schema",
    "list_catalogues",
    "load_catalogue",
    "parse_catalogue",
]

_PKG = "yizhangtu.indicators"


@cache
def catalogue_schema() -> dict[str, Any]:
    """Return the JSON Schema every catalogue must pass."""
    text = resources.files(_PKG).joinpath("schema/catalogue.schema.json").read_text("utf-8")
    return json.loads(text)


def list_catalogues() -> list[str]:
    """Ids of the catalogues shipped with the package."""
    folder = resources.files(_PKG).joinpath("catalogues")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_catalogue(name_or_path: str | Path) -> Catalogue:
    """Load a packaged catalogue by id, or a user catalogue from a YAML path.

    Parameters
    ----------
    name_or_path : str or Path
        A packaged id (see :func:`list_catalogues`) or the path of a YAML file.

    Raises
    ------
    NotFoundError
        Neither a packaged id nor an existing file.
    ValidationError
        The catalogue breaks the schema or a semantic rule.
    """
    text_name = str(name_or_path)
    if text_name in list_catalogues():
        return _packaged(text_name)
    path = Path(name_or_path)
    if not path.is_file():
        raise NotFoundError(
            f"找不到指标目录: {text_name}",
            key="catalogue_not_found",
            file=text_name,
            hint="内置目录: " + ", ".join(list_catalogues()),
        )
    return parse_catalogue(path.read_text("utf-8"), origin=str(path))


@cache
def _packaged(name: str) -> Catalogue:
    # catalogues are immutable, so packaged ones are parsed once per process
    res = resources.files(_PKG).joinpath(f"catalogues/{name}.yaml")
    return parse_catalogue(res.read_text("utf-8"), origin=f"package:{name}")


def parse_catalogue(text: str, *, origin: str | None = None) -> Catalogue:
    """Parse catalogue YAML text and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"指标目录不是合法的 YAML: {exc}", key="catalogue_yaml", file=origin
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("指标目录应为 YAML 映射(字典)", key="catalogue_yaml", file=origin)
    return catalogue_from_dict(data, origin=origin)


def _path_text(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(根)"


def _schema_check(data: dict[str, Any], origin: str | None) -> None:
    validator = jsonschema.Draft202012Validator(catalogue_schema())
    errors = sorted(
        validator.iter_errors(data),
        # an unknown `kind` explains every other error of its object: report it first
        key=lambda e: (
            0 if (e.absolute_path and e.absolute_path[-1] == "kind") else 1,
            len(e.absolute_path),
            list(map(str, e.absolute_path)),
        ),
    )
    if not errors:
        return
    first = errors[0]
    where = _path_text(first.absolute_path)
    feature = None
    if len(first.absolute_path) >= 2 and first.absolute_path[0] == "indicators":
        idx = first.absolute_path[1]
        try:
            feature = data["indicators"][idx].get("id", idx)
        except (AttributeError, IndexError, KeyError, TypeError):
            feature = idx
    path = list(first.absolute_path)
    key = "catalogue_schema"
    message = f"指标目录不符合规范: {where}: {first.message}"
    if (
        path
        and path[-1] == "kind"
        and len(path) >= 2
        and path[-2] in {"numerator", "denominator", "population", "area"}
    ):
        key = "unknown_input_kind"
        message = (
            f"指标目录 {where}: 未知的输入类型 {first.instance!r}; "
            "可用类型: area, unit_area, table, facility_count, facility_sum"
        )
    elif path and path[-1] == "kind" and len(path) >= 2 and path[-2] == "formula":
        key = "unknown_formula_kind"
        message = f"指标目录 {where}: 未知的公式类型 {first.instance!r}"
    raise ValidationError(
        message,
        key=key,
        file=origin,
        feature=feature,
        field=where,
        hint="对照 yizhangtu/indicators/schema/catalogue.schema.json 修改",
        data={"errors": [f"{_path_text(e.absolute_path)}: {e.message}" for e in errors[:20]]},
    )


def _operand(d: dict[str, Any] | None) -> Operand | None:
    if d is None:
        return None
    return Operand(
        kind=d["kind"],
        groups=tuple(d.get("groups", ())),
        table=d.get("table"),
        column=d.get("column"),
        facilities=d.get("facilities"),
        unit=d.get("unit"),
        label=d.get("label"),
    )


def _req(d: dict[str, Any], name: str) -> Operand:
    op = _operand(d[name])
    assert op is not None  # the schema requires it
    return op


def _formula(d: dict[str, Any]) -> Formula:
    kind = d["kind"]
    note = d.get("method_note")
    if kind == "area":
        return AreaFormula(groups=tuple(d["groups"]), method_note=note)
    if kind == "area_ratio":
        return AreaRatioFormula(_req(d, "numerator"), _req(d, "denominator"), method_note=note)
    if kind == "per_capita":
        return PerCapitaFormula(_req(d, "numerator"), _req(d, "population"), method_note=note)
    if kind == "density":
        area = _operand(d.get("area")) or Operand("unit_area")
        return DensityFormula(_req(d, "numerator"), area, method_note=note)
    if kind == "count":
        fac = d["facilities"]
        if isinstance(fac, list):
            if len(fac) != 1:
                raise ValidationError("count 公式只能指定一个设施图层", key="catalogue_schema")
            fac = fac[0]
        return CountFormula(facilities=fac, method_note=note)
    if kind == "coverage":
        fac = d["facilities"]
        facs = (fac,) if isinstance(fac, str) else tuple(fac)
        return CoverageFormula(
            facilities=facs,
            radius_m=float(d["radius_m"]),
            combine=d.get("combine", "any"),
            weight=d.get("weight", "auto"),
            population=_operand(d.get("population")),
            radius_note=d.get("radius_note"),
            method_note=note,
        )
    if kind == "from_table":
        op = Operand("table", table=d["table"], column=d["column"], unit=d["unit"])
        return FromTableFormula(op, aggregate=d.get("aggregate", "none"), method_note=note)
    if kind == "ratio":
        return RatioFormula(_req(d, "numerator"), _req(d, "denominator"), method_note=note)
    if kind == "composite":
        comps = tuple(Component(c["indicator"], float(c["weight"])) for c in d["components"])
        return CompositeFormula(
            comps,
            method=d.get("method", "weighted_mean"),
            normalize=d.get("normalize", "none"),
            cap_achievement_pct=d.get("cap_achievement_pct"),
            method_note=note,
        )
    return NotComputableFormula(missing=tuple(d["missing"]), method_note=note)


def _warning(d: dict[str, Any] | None, default: WarningRule) -> WarningRule:
    if d is None:
        return default
    return WarningRule(
        yellow_within_pct=float(d.get("yellow_within_pct", default.yellow_within_pct)),
        red_when_worsening=bool(d.get("red_when_worsening", default.red_when_worsening)),
        yellow_when_worsening=bool(d.get("yellow_when_worsening", default.yellow_when_worsening)),
        red_threshold=d.get("red_threshold", default.red_threshold),
        flat_tolerance=float(d.get("flat_tolerance", default.flat_tolerance)),
        clause=d.get("clause", default.clause),
        note=d.get("note", default.note),
    )


def _target(d: dict[str, Any]) -> Target:
    uid = d.get("unit_id")
    return Target(
        year=int(d["year"]),
        value=float(d["value"]),
        kind=d.get("kind", "goal"),
        unit_id=None if uid is None else str(uid),
        baseline_year=d.get("baseline_year"),
        baseline_value=None if d.get("baseline_value") is None else float(d["baseline_value"]),
        clause=d.get("clause"),
        quote=d.get("quote"),
        note=d.get("note"),
    )


def _fail(
    message: str,
    key: str,
    origin: str | None,
    ind: str | None,
    field: str | None,
    hint: str | None = None,
) -> None:
    raise ValidationError(message, key=key, file=origin, feature=ind, field=field, hint=hint)


def _check_indicator(ind: Indicator, cat_period: tuple[int, int], origin: str | None) -> None:
    unit = ind.parsed_unit
    f = ind.formula
    where = f"indicators[{ind.id}]"
    if isinstance(f, NotComputableFormula | FromTableFormula | CompositeFormula):
        pass
    elif not unit.known:
        _fail(
            f"指标 {ind.id}({ind.name}) 的单位 {ind.unit!r} 无法识别, "
            f"公式 {f.kind} 需要可换算的单位",
            "unknown_unit",
            origin,
            ind.id,
            f"{where}.unit",
            "常用单位: %, m2, ha, km2, 万亩, 人, 万人, m2/人, 人/km2, 个/万人, 张/千人",
        )
    for op in f.operands():
        if (
            op.kind in ("table", "facility_sum")
            and not op.value_unit.known
            and not isinstance(f, FromTableFormula)
        ):
            _fail(
                f"指标 {ind.id} 的输入 {op.describe()} 的单位 {op.unit!r} 无法识别",
                "unknown_unit",
                origin,
                ind.id,
                f"{where}.formula",
            )
    if isinstance(f, AreaRatioFormula):
        for side, op in (("numerator", f.numerator), ("denominator", f.denominator)):
            if op.kind not in ("area", "unit_area"):
                _fail(
                    f"指标 {ind.id}: area_ratio 的 {side} 必须是面积 (area 或 unit_area), "
                    f"而不是 {op.kind}",
                    "formula_operand",
                    origin,
                    ind.id,
                    f"{where}.formula.{side}",
                )
    if isinstance(f, PerCapitaFormula | CoverageFormula):
        pop = f.population
        if pop is not None and pop.dims != (("P", 1),):
            _fail(
                f"指标 {ind.id}: 人口输入 {pop.describe()} 的单位 {pop.unit!r} 不是人数单位",
                "unit_mismatch",
                origin,
                ind.id,
                f"{where}.formula.population",
                "人口字段单位应为 人 或 万人",
            )
    if isinstance(f, DensityFormula) and f.area.kind not in ("area", "unit_area"):
        _fail(
            f"指标 {ind.id}: density 的 area 必须是面积",
            "formula_operand",
            origin,
            ind.id,
            f"{where}.formula.area",
        )
    if isinstance(f, CompositeFormula):
        if f.normalize == "achievement" and not unit.dimensionless:
            _fail(
                f"指标 {ind.id}: 按完成度合成的指标单位应为 %, 而不是 {ind.unit!r}",
                "unit_mismatch",
                origin,
                ind.id,
                f"{where}.unit",
            )
    elif not isinstance(f, NotComputableFormula):
        dims = f.result_dims()
        ok = (
            unit.dims == dims
            if unit.known
            else (isinstance(f, FromTableFormula) and f.value.unit == ind.unit)
        )
        if isinstance(f, FromTableFormula) and unit.known and not f.value.value_unit.known:
            ok = False
        if not ok:
            _fail(
                f"指标 {ind.id}({ind.name}) 的单位 {ind.unit!r} 与公式 {f.kind} 的结果量纲不符"
                f" (公式量纲 {dict(dims) or '无量纲'}, 单位量纲 {dict(unit.dims) or '无量纲'})",
                "unit_mismatch",
                origin,
                ind.id,
                f"{where}.unit",
                "比例类用 % 或 ‰; 面积用 m2/ha/km2/亩; 人均面积用 m2/人",
            )
    start, end = cat_period
    for t in ind.targets:
        for y, label in ((t.year, "year"), (t.baseline_year, "baseline_year")):
            if y is not None and not (start <= y <= end):
                _fail(
                    f"指标 {ind.id} 的目标年份 {y} 超出目录规划期 {start}–{end}",
                    "target_year_outside_period",
                    origin,
                    ind.id,
                    f"{where}.targets.{label}",
                    "修改目标年份, 或调整目录的 period",
                )
        if t.baseline_year is not None and t.baseline_year >= t.year:
            _fail(
                f"指标 {ind.id}: 基期年 {t.baseline_year} 应早于目标年 {t.year}",
                "target_baseline",
                origin,
                ind.id,
                f"{where}.targets",
            )
    if ind.warning.red_threshold is not None and ind.direction == "neutral":
        _fail(
            f"指标 {ind.id}: 方向为 neutral 的指标不能设置 red_threshold",
            "warning_rule",
            origin,
            ind.id,
            f"{where}.warning",
        )


def _check_composites(inds: dict[str, Indicator], origin: str | None) -> None:
    state: dict[str, int] = {}

    def visit(iid: str, stack: list[str]) -> None:
        if state.get(iid) == 2:
            return
        if state.get(iid) == 1:
            _fail(
                "合成指标存在循环引用: " + " → ".join([*stack, iid]),
                "composite_cycle",
                origin,
                iid,
                "formula.components",
            )
        state[iid] = 1
        f = inds[iid].formula
        if isinstance(f, CompositeFormula):
            for c in f.components:
                if c.indicator not in inds:
                    _fail(
                        f"合成指标 {iid} 引用了不存在的指标 {c.indicator}",
                        "composite_unknown_component",
                        origin,
                        iid,
                        "formula.components",
                    )
                comp = inds[c.indicator]
                if f.normalize == "none" and not comp.parsed_unit.same_dimension(
                    inds[iid].parsed_unit
                ):
                    _fail(
                        f"合成指标 {iid} 的组成指标 {c.indicator} 单位 {comp.unit!r} "
                        f"与合成单位 {inds[iid].unit!r} 量纲不同",
                        "unit_mismatch",
                        origin,
                        iid,
                        "formula.components",
                        "量纲不同的指标请用 normalize: achievement 按完成度合成",
                    )
                visit(c.indicator, [*stack, iid])
        state[iid] = 2

    for iid in inds:
        visit(iid, [])


def catalogue_from_dict(data: dict[str, Any], *, origin: str | None = None) -> Catalogue:
    """Validate a catalogue mapping and build a :class:`Catalogue`.

    Raises
    ------
    ValidationError
        With ``key`` = ``catalogue_schema``, ``unknown_input_kind``, ``unknown_formula_kind``,
        ``unit_mismatch``, ``unknown_unit``, ``target_year_outside_period``,
        ``duplicate_indicator``, ``unknown_dimension``, ``composite_cycle`` ….
    """
    _schema_check(data, origin)
    start, end = int(data["period"]["start"]), int(data["period"]["end"])
    if start > end:
        _fail(
            f"目录规划期起始年 {start} 晚于结束年 {end}", "catalogue_period", origin, None, "period"
        )
    default_warning = _warning(data.get("default_warning"), WarningRule())
    dims = tuple(data.get("dimensions", ()))
    inds: dict[str, Indicator] = {}
    for i, d in enumerate(data["indicators"]):
        iid = d["id"]
        if iid in inds:
            _fail(f"指标 id 重复: {iid}", "duplicate_indicator", origin, iid, f"indicators[{i}].id")
        if dims and d["dimension"] not in dims:
            _fail(
                f"指标 {iid} 的维度 {d['dimension']!r} 不在目录声明的维度 {list(dims)} 中",
                "unknown_dimension",
                origin,
                iid,
                f"indicators[{i}].dimension",
            )
        ref = d.get("ref")
        ind = Indicator(
            id=iid,
            name=d["name"],
            dimension=d["dimension"],
            unit=d["unit"],
            direction=d["direction"],
            scope=d["scope"],
            formula=_formula(d["formula"]),
            category=d.get("category"),
            inputs=tuple(d.get("inputs", ())),
            source_level=d.get("source_level"),
            department=d.get("department"),
            targets=tuple(_target(t) for t in d.get("targets", ())),
            warning=_warning(d.get("warning"), default_warning),
            clause=d.get("clause"),
            note=d.get("note"),
            source=d.get("source"),
            ref=None if ref is None else str(ref),
        )
        _check_indicator(ind, (start, end), origin)
        inds[iid] = ind
    _check_composites(inds, origin)
    return Catalogue(
        id=data["id"],
        title=data["title"],
        version=str(data["version"]),
        period_start=start,
        period_end=end,
        indicators=tuple(inds.values()),
        jurisdiction=data.get("jurisdiction"),
        source=data.get("source"),
        description=data.get("description"),
        dimensions=dims,
        default_warning=default_warning,
        synthetic=bool(data.get("synthetic", False)),
        origin=origin,
    )
