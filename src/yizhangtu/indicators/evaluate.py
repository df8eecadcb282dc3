"""Evaluate computed indicator values against targets, trends and warning rules.

Status (状态) of each indicator and unit, by its :class:`~yizhangtu.indicators.model.WarningRule`:

- ``无法计算``: the value is not computable (the reason is kept);
- ``无目标``: no target applies to the unit;
- for a **goal** (目标值): met → ``达标``; not met and the trend moves away from the target with
  ``red_when_worsening`` → ``未达标``; shortfall within ``yellow_within_pct`` % of the target →
  ``预警``; else ``未达标``;
- for a **limit** (底线/上限, e.g. a population cap): breached → ``未达标``; holding but within
  ``yellow_within_pct`` % of the limit → ``预警`` (approaching it); holding with a worsening trend
  and ``yellow_when_worsening`` → ``预警``; else ``达标``;
- beyond ``red_threshold`` → ``未达标`` whatever the target says;
- ``neutral`` indicators with a target: within the band → ``达标``, else ``预警``.

Trend: least-squares slope of the values over all years up to the evaluated one (history +
current), in indicator units per year; 向好/变差/持平 by the indicator's direction (上升/下降/持平
for neutral ones), flat when ``|slope| <= flat_tolerance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.indicators.model import STATUS_KEYS, STATUSES, Catalogue, Indicator
from yizhangtu.indicators.targets import ResolvedTarget, achievement_pct, select_target

__all__ = ["EVALUATION_COLUMNS", "Evaluation", "evaluate", "status_of", "trend_of"]

#: Columns of :attr:`Evaluation.table`.
EVALUATION_COLUMNS: tuple[str, ...] = (
    "indicator",
    "name",
    "dimension",
    "category",
    "scope",
    "unit_id",
    "is_aggregate",
    "year",
    "value",
    "value_unit",
    "direction",
    "target",
    "target_year",
    "target_kind",
    "target_interpolated",
    "target_passed",
    "target_clause",
    "gap",
    "achievement_pct",
    "trend_slope",
    "trend_direction",
    "trend_years",
    "status",
    "status_key",
    "status_reason",
    "reason",
    "clause",
    "department",
    "synthetic",
)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Result of :func:`evaluate`: one row per indicator and unit, plus catalogue facts.

    Attributes
    ----------
    table : DataFrame
        Columns :data:`EVALUATION_COLUMNS`.
    dimensions : tuple of str
        Dimensions in catalogue order (one report table each).
    synthetic : bool
        True when any input was synthetic (reports say 合成数据).
    """

    catalogue_id: str
    catalogue_title: str
    catalogue_version: str
    year: int
    table: pd.DataFrame
    dimensions: tuple[str, ...]
    synthetic: bool = False
    jurisdiction: str | None = None

    def warnings(self) -> pd.DataFrame:
        """Rows whose status is 预警 or 未达标, red first."""
        t = self.table[self.table["status"].isin(["未达标", "预警"])].copy()
        t["_o"] = t["status"].map({"未达标": 0, "预警": 1})
        return t.sort_values(["_o", "dimension", "indicator", "unit_id"]).drop(columns="_o")

    def status_counts(self) -> dict[str, int]:
        """Count rows per status, in display order."""
        counts = self.table["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in STATUSES}

    def summary(self) -> pd.DataFrame:
        """Count statuses per dimension (rows: dimensions in order; columns: statuses)."""
        t = pd.crosstab(self.table["dimension"], self.table["status"])
        t = t.reindex(
            index=[d for d in self.dimensions if d in t.index], columns=list(STATUSES), fill_value=0
        )
        return t.fillna(0).astype(int)

    def for_dimension(self, dimension: str) -> pd.DataFrame:
        """Rows of one dimension."""
        return self.table[self.table["dimension"] == dimension]


def trend_of(
    points: pd.DataFrame, direction: str, flat_tolerance: float = 0.0
) -> tuple[float | None, str | None, int]:
    """Slope (units per year) and direction word over ``points`` (``year``, ``value``)."""
    p = points.assign(indicator="_", unit_id="_")
    res = _trends(p, int(p["year"].max()) if len(p) else 0)
    slope, n = res.get(("_", "_"), (None, 0))
    return slope, _trend_word(slope, direction, flat_tolerance), n


def _trend_word(slope: float | None, direction: str, flat_tolerance: float) -> str | None:
    if slope is None:
        return None
    if abs(slope) <= flat_tolerance:
        return "持平"
    if direction == "neutral":
        return "上升" if slope > 0 else "下降"
    good = slope > 0 if direction == "higher_better" else slope < 0
    return "向好" if good else "变差"


def _trends(points: pd.DataFrame, year: int) -> dict[tuple[str, str], tuple[float | None, int]]:
    """Least-squares slope and number of years per (indicator, unit), vectorised."""
    p = points.copy()
    p["year"] = p["year"].astype(int)
    p = p[p["year"] <= year]
    p["unit_id"] = p["unit_id"].astype(str)
    p["value"] = pd.to_numeric(p["value"], errors="coerce")
    p = p[np.isfinite(p["value"])]
    if p.empty:
        return {}
    p = p.groupby(["indicator", "unit_id", "year"], as_index=False)["value"].mean()
    p["x"] = (p["year"] - year).astype(float)  # centred: no cancellation in the sums
    p["xy"] = p["x"] * p["value"]
    p["xx"] = p["x"] * p["x"]
    g = p.groupby(["indicator", "unit_id"]).agg(
        n=("x", "size"), sx=("x", "sum"), sy=("value", "sum"), sxy=("xy", "sum"), sxx=("xx", "sum")
    )
    den = g["n"] * g["sxx"] - g["sx"] ** 2
    slope = (g["n"] * g["sxy"] - g["sx"] * g["sy"]) / den.where(den != 0)
    out: dict[tuple[str, str], tuple[float | None, int]] = {}
    for key, n, sl in zip(g.index, g["n"], slope, strict=True):
        out[key] = (None if n < 2 or not np.isfinite(sl) else float(sl), int(n))
    return out


def _fmt(v: float) -> str:
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _vu(v: float, unit: str) -> str:
    return f"{_fmt(v)}{unit}" if unit in ("%", "‰") else f"{_fmt(v)} {unit}"


def status_of(
    indicator: Indicator,
    value: float,
    target: ResolvedTarget | None,
    trend: str | None,
) -> tuple[str, str]:
    """Status and a Chinese explanation for one computable value."""
    rule = indicator.warning
    unit = indicator.unit
    d = indicator.direction
    if rule.red_threshold is not None:
        thr = rule.red_threshold
        if (d == "higher_better" and value < thr) or (d == "lower_better" and value > thr):
            side = "低于" if d == "higher_better" else "高于"
            return "未达标", f"{side}红线阈值 {_vu(thr, unit)}"
    if target is None:
        return "无目标", "未设定适用的目标值"
    t = target.value
    ty = f"{target.year} 年"
    if target.interpolated:
        ty = f"按 {target.year} 年目标的进度插值"
    elif target.passed:
        ty = f"{target.year} 年, 目标年已过"
    band = rule.yellow_within_pct
    dev_pct = abs(value - t) / abs(t) * 100.0 if t != 0 else (0.0 if value == t else math.inf)
    if d == "neutral":
        if dev_pct <= band:
            return "达标", f"与目标 {_vu(t, unit)}({ty}) 偏差 {dev_pct:.1f}%, 在 {band:g}% 以内"
        return "预警", f"与目标 {_vu(t, unit)}({ty}) 偏差 {dev_pct:.1f}%, 超过 {band:g}%"
    met = value >= t if d == "higher_better" else value <= t
    if target.kind == "limit":
        word = "下限" if d == "higher_better" else "上限"
        if not met:
            return "未达标", f"突破{word} {_vu(t, unit)}({ty}), 超出 {dev_pct:.1f}%"
        if dev_pct <= band:
            return "预警", f"距{word} {_vu(t, unit)}({ty}) 仅 {dev_pct:.1f}%, 在 {band:g}% 预警带内"
        if rule.yellow_when_worsening and trend == "变差":
            return "预警", f"未突破{word} {_vu(t, unit)}({ty}), 但趋势变差"
        return "达标", f"未突破{word} {_vu(t, unit)}({ty}), 余量 {dev_pct:.1f}%"
    if met:
        if rule.yellow_when_worsening and trend == "变差":
            return "预警", f"已达目标 {_vu(t, unit)}({ty}), 但趋势变差"
        return "达标", f"已达目标 {_vu(t, unit)}({ty})"
    if rule.red_when_worsening and trend == "变差":
        return "未达标", f"未达目标 {_vu(t, unit)}({ty}), 且趋势偏离目标"
    if dev_pct <= band:
        return "预警", f"未达目标 {_vu(t, unit)}({ty}), 差距 {dev_pct:.1f}%, 在 {band:g}% 预警带内"
    return "未达标", f"未达目标 {_vu(t, unit)}({ty}), 差距 {dev_pct:.1f}%"


def evaluate(
    values: pd.DataFrame,
    catalogue: Catalogue,
    *,
    year: int,
    history: pd.DataFrame | None = None,
) -> Evaluation:
    """Evaluate the values of ``year`` against targets, trends and warning rules.

    Parameters
    ----------
    values : DataFrame
        Output of :func:`~yizhangtu.indicators.compute.compute` (may hold several years).
    catalogue : Catalogue
        The catalogue the values were computed with.
    year : int
        Year to evaluate.
    history : DataFrame, optional
        Earlier values (``indicator``, ``unit_id``, ``year``, ``value``), e.g. earlier
        :func:`compute` outputs concatenated, for the trend. Years after ``year`` are ignored.

    Raises
    ------
    InputError
        ``year_not_in_values`` when ``values`` has no row for ``year``; ``unknown_indicator``
        when a row names an indicator the catalogue lacks.
    """
    need = {"indicator", "unit_id", "year", "value"}
    for name, frame in (("values", values), ("history", history)):
        if frame is not None and not need <= set(frame.columns):
            raise InputError(
                f"{name} 缺少字段: " + ", ".join(sorted(need - set(frame.columns))),
                key="evaluation_columns",
                field=name,
            )
    cur = values[values["year"].astype(int) == int(year)]
    if cur.empty:
        years = sorted(set(values["year"].astype(int)))
        raise InputError(
            f"指标值中没有 {year} 年的数据(已有年份: {years})",
            key="year_not_in_values",
            field="year",
            hint="先用 compute(..., year=...) 计算该年份",
        )
    known = {i.id for i in catalogue}
    unknown = sorted(set(cur["indicator"]) - known)
    if unknown:
        raise InputError(
            f"指标值中有目录 {catalogue.id} 之外的指标: " + ", ".join(unknown[:5]),
            key="unknown_indicator",
        )
    pts = [values[["indicator", "unit_id", "year", "value"]]]
    if history is not None:
        pts.append(history[["indicator", "unit_id", "year", "value"]])
    trends = _trends(pd.concat(pts, ignore_index=True), int(year))
    by_id = {i.id: i for i in catalogue}
    rows = []
    for r in cur.itertuples(index=False):
        ind = by_id[str(r.indicator)]
        uid = str(r.unit_id)
        raw: Any = r.value
        value = float(raw) if raw is not None and pd.notna(raw) else math.nan
        computable = bool(getattr(r, "computable", True)) and not math.isnan(value)
        tgt = select_target(ind, int(year), uid)
        slope, n = trends.get((ind.id, uid), (None, 0))
        word = _trend_word(slope, ind.direction, ind.warning.flat_tolerance)
        if not computable:
            status, why = "无法计算", str(getattr(r, "reason", None) or "无法计算")
        else:
            status, why = status_of(ind, value, tgt, word)
        gap = value - tgt.value if (tgt is not None and computable) else math.nan
        ach = (
            achievement_pct(value, tgt.value, ind.direction)
            if (tgt is not None and computable)
            else None
        )
        rows.append(
            {
                "indicator": ind.id,
                "name": ind.name,
                "dimension": ind.dimension,
                "category": ind.category,
                "scope": ind.scope,
                "unit_id": uid,
                "is_aggregate": bool(getattr(r, "is_aggregate", False)),
                "year": int(year),
                "value": value,
                "value_unit": ind.unit,
                "direction": ind.direction,
                "target": math.nan if tgt is None else tgt.value,
                "target_year": None if tgt is None else tgt.year,
                "target_kind": None if tgt is None else tgt.kind,
                "target_interpolated": False if tgt is None else tgt.interpolated,
                "target_passed": False if tgt is None else tgt.passed,
                "target_clause": None if tgt is None else tgt.target.clause,
                "gap": gap,
                "achievement_pct": math.nan if ach is None else ach,
                "trend_slope": math.nan if slope is None else slope,
                "trend_direction": word,
                "trend_years": n,
                "status": status,
                "status_key": STATUS_KEYS[status],
                "status_reason": why,
                "reason": getattr(r, "reason", None),
                "clause": ind.clause,
                "department": ind.department,
                "synthetic": bool(getattr(r, "synthetic", False)),
            }
        )
    table = pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS))
    return Evaluation(
        catalogue_id=catalogue.id,
        catalogue_title=catalogue.title,
        catalogue_version=catalogue.version,
        year=int(year),
        table=table,
        dimensions=catalogue.dimension_order(),
        synthetic=bool(catalogue.synthetic or table["synthetic"].any()),
        jurisdiction=catalogue.jurisdiction,
    )
