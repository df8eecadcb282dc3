"""Compute indicator values per unit and year from :class:`IndicatorInputs`.

Every formula is reduced to a numerator and (optionally) a denominator per unit in base
quantities (m², persons, items, 元 …); the declared unit converts the quotient. This makes
aggregate rows exact: an aggregate over units is Σnumerator / Σdenominator (a ratio of sums,
never a mean of ratios), and for coverage this is the population- or area-weighted share.

Missing inputs never become zeros: the value is NaN, ``computable`` is False and ``reason``
says ``无法计算: 缺少 …`` (``reason_en``: ``not computable: needs …``). A zero denominator
(e.g. zero population) gives ``无法计算: 分母 … 为 0``, never ``inf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.indicators.coverage import count_in_units, covered_area, sum_in_units
from yizhangtu.indicators.inputs import IndicatorInputs
from yizhangtu.indicators.model import (
    AreaFormula,
    AreaRatioFormula,
    Catalogue,
    CompositeFormula,
    CountFormula,
    CoverageFormula,
    DensityFormula,
    FromTableFormula,
    Indicator,
    NotComputableFormula,
    Operand,
    PerCapitaFormula,
    RatioFormula,
)
from yizhangtu.indicators.targets import achievement_pct, select_target

__all__ = ["RESULT_COLUMNS", "compute"]

#: Columns of the frame returned by :func:`compute`.
RESULT_COLUMNS: tuple[str, ...] = (
    "indicator",
    "name",
    "dimension",
    "category",
    "unit_id",
    "is_aggregate",
    "year",
    "value",
    "value_unit",
    "computable",
    "reason",
    "reason_en",
    "reason_key",
    "kind",
    "numerator_base",
    "denominator_base",
    "synthetic",
)

NC_PREFIX = "无法计算: "
NC_PREFIX_EN = "not computable: "


@dataclass(frozen=True)
class _Why:
    zh: str
    en: str
    key: str = "missing_input"


def _missing(zh: str, en: str) -> _Why:
    return _Why("缺少 " + zh, "needs " + en, "missing_input")


@dataclass
class _Part:
    num: pd.Series
    den: pd.Series | None
    why: pd.Series  # object: _Why or None


def _empty_why(ids: Sequence[str]) -> pd.Series:
    return pd.Series([None] * len(ids), index=list(ids), dtype=object)


class _Ctx:
    def __init__(self, inputs: IndicatorInputs, year: int) -> None:
        self.inputs = inputs
        self.year = year
        self._unit_areas: pd.Series | bool | None = False
        self.cache: dict[tuple, object] = {}

    def unit_areas(self) -> pd.Series | None:
        if self._unit_areas is False:
            self._unit_areas = self.inputs.unit_area_series()
        return self._unit_areas  # type: ignore[return-value]


def _resolve(op: Operand, ctx: _Ctx, ids: list[str]) -> tuple[pd.Series, pd.Series]:
    """Values (base quantities) and reasons for one operand over ``ids``."""
    inp, year = ctx.inputs, ctx.year
    vals = pd.Series(np.nan, index=ids, dtype=float)
    why = _empty_why(ids)
    if op.kind == "area":
        areas = inp.areas
        if areas is None:
            why[:] = _missing("地类面积表(areas)", "the land-use area table (areas)")
            return vals, why
        if "year" in areas.columns:
            areas = areas[pd.to_numeric(areas["year"]) == year]
            if areas.empty:
                why[:] = _missing(f"{year} 年的地类面积表", f"the land-use area table for {year}")
                return vals, why
        absent = [g for g in op.groups if g not in set(areas["group"])]
        if absent:
            names = "、".join(inp.label(g) for g in absent)
            why[:] = _missing(f"地类面积表中的分组 {names}", "area group(s) " + ", ".join(absent))
            return vals, why
        present = set(areas["unit_id"])
        sums = areas[areas["group"].isin(op.groups)].groupby("unit_id")["area_m2"].sum()
        for u in ids:
            if u in present:
                vals[u] = float(sums.get(u, 0.0))
            else:
                why[u] = _missing(f"单元 {u} 的地类面积", f"land-use areas of unit {u}")
        return vals, why
    if op.kind == "unit_area":
        ua = ctx.unit_areas()
        if ua is None:
            why[:] = _missing(
                "单元面积(unit_areas 或单元边界 units)", "unit areas or unit boundaries"
            )
            return vals, why
        for u in ids:
            if u in ua.index and pd.notna(ua[u]):
                vals[u] = float(ua[u])
            else:
                why[u] = _missing(f"单元 {u} 的面积", f"the area of unit {u}")
        return vals, why
    if op.kind == "table":
        assert op.table is not None and op.column is not None
        t = inp.tables.get(op.table)
        label = inp.label(op.table)
        if t is None:
            why[:] = _missing(f"统计表 {label}", f"statistical table {op.table}")
            return vals, why
        if op.column not in t.columns:
            why[:] = _missing(
                f"统计表 {label} 的字段 {op.column}", f"column {op.column} of table {op.table}"
            )
            return vals, why
        rows = t[t["year"] == year].set_index("unit_id")[op.column]
        rows = pd.to_numeric(rows, errors="coerce")
        factor = op.value_unit.factor
        for u in ids:
            v = rows.get(u, np.nan)
            if pd.isna(v):
                why[u] = _missing(
                    f"统计表 {label} 中单元 {u} {year} 年的 {op.column}",
                    f"{op.table}.{op.column} for unit {u} in {year}",
                )
            else:
                vals[u] = float(v) * factor
        return vals, why
    # facility_count / facility_sum
    assert op.facilities is not None
    fac = inp.facilities.get(op.facilities)
    label = inp.label(op.facilities)
    if fac is None:
        why[:] = _missing(f"设施图层 {label}", f"facility layer {op.facilities}")
        return vals, why
    if inp.units is None:
        why[:] = _missing(
            "单元边界(units), 无法统计设施", "unit boundaries (units) to place facilities"
        )
        return vals, why
    if op.kind == "facility_sum" and op.column not in fac.columns:
        why[:] = _missing(
            f"设施图层 {label} 的字段 {op.column}",
            f"column {op.column} of facility layer {op.facilities}",
        )
        return vals, why
    key = (op.kind, op.facilities, op.column)
    if key not in ctx.cache:
        if op.kind == "facility_count":
            ctx.cache[key] = count_in_units(inp.units, fac)
        else:
            assert op.column is not None
            ctx.cache[key] = sum_in_units(inp.units, fac, op.column) * op.value_unit.factor
    series: pd.Series = ctx.cache[key]  # type: ignore[assignment]
    for u in ids:
        if u in series.index:
            vals[u] = float(series[u])
        else:
            why[u] = _missing(f"单元 {u} 的边界", f"the boundary of unit {u}")
    return vals, why


def _merge(*whys: pd.Series) -> pd.Series:
    out = whys[0].copy()
    for w in whys[1:]:
        for u in out.index:
            if out[u] is None and w[u] is not None:
                out[u] = w[u]
    return out


def _coverage(f: CoverageFormula, ctx: _Ctx, ids: list[str]) -> _Part:
    inp = ctx.inputs
    why = _empty_why(ids)
    nan = pd.Series(np.nan, index=ids, dtype=float)
    absent = [n for n in f.facilities if n not in inp.facilities]
    if absent:
        why[:] = _missing(
            "设施图层 " + "、".join(inp.label(n) for n in absent),
            "facility layer(s) " + ", ".join(absent),
        )
        return _Part(nan, nan.copy(), why)
    if inp.units is None:
        why[:] = _missing("单元边界(units), 无法计算覆盖率", "unit boundaries (units) for coverage")
        return _Part(nan, nan.copy(), why)
    key = ("coverage", f.facilities, f.radius_m, f.combine)
    if key not in ctx.cache:
        ctx.cache[key] = covered_area(
            inp.units, [inp.facilities[n] for n in f.facilities], f.radius_m, f.combine
        )
    covered, total = cast("tuple[pd.Series, pd.Series]", ctx.cache[key])
    share = pd.Series(np.nan, index=ids, dtype=float)
    weight = pd.Series(np.nan, index=ids, dtype=float)
    for u in ids:
        if u in total.index and total[u] > 0:
            share[u] = covered[u] / total[u]
            weight[u] = total[u]
        elif u in total.index:
            why[u] = _Why(f"单元 {u} 面积为 0", f"unit {u} has zero area", "zero_denominator")
        else:
            why[u] = _missing(f"单元 {u} 的边界", f"the boundary of unit {u}")
    use_pop = False
    if f.population is not None and f.weight in ("auto", "population"):
        pop, pwhy = _resolve(f.population, ctx, ids)
        if f.weight == "population":
            why = _merge(why, pwhy)
            use_pop = True
        else:
            use_pop = all(w is None for w in pwhy)
        if use_pop:
            weight = pop
    elif f.weight == "population":
        why[:] = _missing("人口表(覆盖率按人口加权)", "a population table for population weighting")
    return _Part(share * weight, weight, why)


def _part(ind: Indicator, ctx: _Ctx, ids: list[str]) -> _Part:
    f = ind.formula
    if isinstance(f, AreaFormula):
        v, w = _resolve(Operand("area", groups=f.groups), ctx, ids)
        return _Part(v, None, w)
    if isinstance(f, CountFormula):
        v, w = _resolve(Operand("facility_count", facilities=f.facilities), ctx, ids)
        return _Part(v, None, w)
    if isinstance(f, FromTableFormula):
        v, w = _resolve(f.value, ctx, ids)
        return _Part(v, None, w)
    if isinstance(f, CoverageFormula):
        return _coverage(f, ctx, ids)
    if isinstance(f, AreaRatioFormula | RatioFormula):
        num, nw = _resolve(f.numerator, ctx, ids)
        den, dw = _resolve(f.denominator, ctx, ids)
        return _Part(num, den, _merge(nw, dw))
    if isinstance(f, PerCapitaFormula):
        num, nw = _resolve(f.numerator, ctx, ids)
        den, dw = _resolve(f.population, ctx, ids)
        return _Part(num, den, _merge(nw, dw))
    if isinstance(f, DensityFormula):
        num, nw = _resolve(f.numerator, ctx, ids)
        den, dw = _resolve(f.area, ctx, ids)
        return _Part(num, den, _merge(nw, dw))
    raise AssertionError(f"unexpected formula kind {f.kind}")  # pragma: no cover


def _den_label(ind: Indicator) -> str:
    f = ind.formula
    if isinstance(f, PerCapitaFormula):
        return f.population.describe()
    if isinstance(f, DensityFormula):
        return f.area.describe()
    if isinstance(f, AreaRatioFormula | RatioFormula):
        return f.denominator.describe()
    if isinstance(f, CoverageFormula):
        return "加权人口或面积"
    return "分母"


def _finish(ind: Indicator, part: _Part) -> tuple[pd.Series, pd.Series]:
    """Values in the declared unit and final reasons."""
    unit = ind.parsed_unit
    factor = unit.factor if unit.known else 1.0  # opaque units: from_table values pass through
    why = part.why.copy()
    out = pd.Series(np.nan, index=part.num.index, dtype=float)
    for u in out.index:
        if why[u] is not None:
            continue
        num = part.num[u]
        if part.den is None:
            base = num
        else:
            den = part.den[u]
            if den == 0:
                label = _den_label(ind)
                why[u] = _Why(
                    f"分母 {label} 为 0", f"denominator {label} is zero", "zero_denominator"
                )
                continue
            base = num / den
        if not np.isfinite(base):
            why[u] = _Why("计算结果不是有限数", "result is not a finite number", "not_finite")
            continue
        out[u] = base / factor
    return out, why


def _aggregate_part(ind: Indicator, part: _Part, ctx: _Ctx, ids: list[str], label: str) -> _Part:
    f = ind.formula
    if isinstance(f, FromTableFormula) and f.aggregate == "none":
        v, w = _resolve(f.value, ctx, [label])
        if w[label] is not None:
            w[label] = _Why(
                f"统计表 {ctx.inputs.label(f.value.table or '')} 中汇总行 {label} 的数据"
                "(该统计量不可相加)",
                f"an aggregate row {label} in table {f.value.table} (values are not additive)",
                "aggregate_unavailable",
            )
        return _Part(v, None, w)
    bad = [u for u in ids if part.why[u] is not None]
    why = _empty_why([label])
    distinct = {(part.why[u].zh, part.why[u].en, part.why[u].key) for u in bad}
    if bad and len(bad) == len(ids) and len(distinct) == 1:
        # every unit fails for the same reason (e.g. a missing group): say that reason
        why[label] = part.why[bad[0]]
        nan = pd.Series([np.nan], index=[label], dtype=float)
        return _Part(nan, None if part.den is None else nan.copy(), why)
    if bad:
        why[label] = _Why(
            "可汇总的全部单元数据(无法计算的单元: "
            + "、".join(bad[:5])
            + ("…" if len(bad) > 5 else "")
            + ")",
            "all units to be computable (failing: " + ", ".join(bad[:5]) + ")",
            "aggregate_unavailable",
        )
        nan = pd.Series([np.nan], index=[label], dtype=float)
        return _Part(nan, None if part.den is None else nan.copy(), why)
    num = pd.Series([float(part.num[ids].sum())], index=[label])
    den = None if part.den is None else pd.Series([float(part.den[ids].sum())], index=[label])
    return _Part(num, den, why)


def _composite(
    ind: Indicator,
    f: CompositeFormula,
    catalogue: Catalogue,
    results: dict[str, tuple[pd.Series, pd.Series]],
    year: int,
    ids: list[str],
) -> tuple[pd.Series, pd.Series]:
    unit = ind.parsed_unit
    out = pd.Series(np.nan, index=ids, dtype=float)
    why = _empty_why(ids)
    for u in ids:
        total = 0.0
        wsum = 0.0
        for c in f.components:
            comp = catalogue.get(c.indicator)
            vals, whys = results[c.indicator]
            if whys[u] is not None:
                why[u] = _Why(
                    f"组成指标 {comp.name}({c.indicator}) 的值",
                    f"a value of component {c.indicator}",
                    "component_unavailable",
                )
                break
            v = float(vals[u])
            if f.normalize == "achievement":
                tgt = select_target(comp, year, u)
                ach = None if tgt is None else achievement_pct(v, tgt.value, comp.direction)
                if ach is None:
                    why[u] = _Why(
                        f"组成指标 {comp.name}({c.indicator}) 的目标值",
                        f"a target of component {c.indicator}",
                        "component_unavailable",
                    )
                    break
                if f.cap_achievement_pct is not None:
                    ach = min(ach, f.cap_achievement_pct)
                v = ach * 0.01 / unit.factor
            elif comp.parsed_unit.known and unit.known:
                v = v * comp.parsed_unit.factor / unit.factor
            total += c.weight * v
            wsum += c.weight
        else:
            out[u] = total / wsum if f.method == "weighted_mean" else total
    return out, why


def _order(catalogue: Catalogue) -> list[Indicator]:
    done: dict[str, Indicator] = {}

    def visit(ind: Indicator) -> None:
        if ind.id in done:
            return
        if isinstance(ind.formula, CompositeFormula):
            for c in ind.formula.components:
                visit(catalogue.get(c.indicator))
        done[ind.id] = ind

    for ind in catalogue:
        visit(ind)
    return list(done.values())


def compute(
    catalogue: Catalogue,
    inputs: IndicatorInputs,
    *,
    year: int,
    units: Sequence[str] | None = None,
    aggregate: str | None = None,
    indicators: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compute every indicator of ``catalogue`` for ``year`` and each unit.

    Parameters
    ----------
    catalogue : Catalogue
        A loaded catalogue.
    inputs : IndicatorInputs
        Area tables, unit areas, statistical tables, facility layers, units.
    year : int
        Year of the statistics (and of the area snapshot, if ``areas`` has a ``year``).
    units : sequence of str, optional
        Unit ids to compute (default: all units known to ``inputs``).
    aggregate : str, optional
        If given, also compute a pooled row with this ``unit_id`` (Σnum/Σden over ``units``;
        for non-additive statistics the table's own row with this id).
    indicators : sequence of str, optional
        Restrict to these indicator ids (composites pull in their components).

    Returns
    -------
    DataFrame
        One row per indicator and unit, columns :data:`RESULT_COLUMNS`.
    """
    ids = [str(u) for u in (units if units is not None else inputs.unit_ids(year))]
    if not ids:
        raise InputError(
            "没有可计算的单元",
            key="no_units",
            hint="传入 units, 或在 IndicatorInputs 中提供单元边界/统计表",
        )
    if aggregate is not None and str(aggregate) in ids:
        raise InputError(
            f"汇总行标识 {aggregate} 与单元 id 重复", key="aggregate_label", field="aggregate"
        )
    ctx = _Ctx(inputs, int(year))
    order = _order(catalogue)
    if indicators is not None:
        wanted = set(indicators)
        for iid in indicators:
            catalogue.get(iid)
        keep: dict[str, Indicator] = {}

        def pull(ind: Indicator) -> None:
            if isinstance(ind.formula, CompositeFormula):
                for c in ind.formula.components:
                    pull(catalogue.get(c.indicator))
            keep[ind.id] = ind

        for ind in order:
            if ind.id in wanted:
                pull(ind)
        order = [i for i in order if i.id in keep]
    all_ids = ids + ([str(aggregate)] if aggregate is not None else [])
    results: dict[str, tuple[pd.Series, pd.Series]] = {}
    parts: dict[str, _Part] = {}
    for ind in order:
        f = ind.formula
        if isinstance(f, NotComputableFormula):
            why = _empty_why(all_ids)
            why[:] = _Why(
                "缺少 " + "、".join(f.missing),
                "needs " + ", ".join(f.missing),
                "declared_not_computable",
            )
            results[ind.id] = (pd.Series(np.nan, index=all_ids, dtype=float), why)
            continue
        if isinstance(f, CompositeFormula):
            results[ind.id] = _composite(ind, f, catalogue, results, int(year), all_ids)
            continue
        part = _part(ind, ctx, ids)
        if aggregate is not None:
            agg = _aggregate_part(ind, part, ctx, ids, str(aggregate))
            den = None
            if part.den is not None and agg.den is not None:
                den = pd.concat([part.den, agg.den])
            part = _Part(pd.concat([part.num, agg.num]), den, pd.concat([part.why, agg.why]))
        parts[ind.id] = part
        results[ind.id] = _finish(ind, part)
    rows = []
    for ind in order:
        vals, whys = results[ind.id]
        done = parts.get(ind.id)
        for u in all_ids:
            w: _Why | None = whys[u]
            rows.append(
                {
                    "indicator": ind.id,
                    "name": ind.name,
                    "dimension": ind.dimension,
                    "category": ind.category,
                    "unit_id": u,
                    "is_aggregate": aggregate is not None and u == str(aggregate),
                    "year": int(year),
                    "value": float(vals[u]) if w is None else np.nan,
                    "value_unit": ind.unit,
                    "computable": w is None,
                    "reason": None if w is None else NC_PREFIX + w.zh,
                    "reason_en": None if w is None else NC_PREFIX_EN + w.en,
                    "reason_key": None if w is None else w.key,
                    "kind": ind.formula.kind,
                    "numerator_base": np.nan if done is None else float(done.num.get(u, np.nan)),
                    "denominator_base": (
                        np.nan
                        if part is None or part.den is None
                        else float(part.den.get(u, np.nan))
                    ),
                    "synthetic": bool(inputs.synthetic or catalogue.synthetic),
                }
            )
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
