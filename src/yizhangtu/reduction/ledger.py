"""One year of the reduction ledger: plot acceptance (验收) and unit reconciliation (台账).

For each unit and the year t (survey t−1 = baseline, survey t = the year's 年度变更调查):

* ``stock_prev_m2`` / ``stock_m2``: 城乡建设用地 in the unit in each survey;
* ``net_m2 = stock_prev_m2 − stock_m2`` (净减量);
* ``removed_m2``: area that left construction land (construction at t−1, not at t);
* ``added_m2``: new construction (not construction at t−1, construction at t);
* ``accepted_m2``: area that left construction land inside the plots accepted this year (gross
  reduction), summed from the acceptance rows of the unit's plots;
* ``other_removed_m2 = removed_m2 − accepted_m2`` (outside accepted plots);
* ``residual_m2 = net_m2 − (removed_m2 − added_m2)``: zero up to float rounding when the surveys
  tile the unit (removed and added are cut geometrically, stocks are summed parcel pieces,
  so the residual is a real check, not an identity).

Everything is cut and measured in one equal-area plane (:mod:`yizhangtu.reduction._geom`).
Parcels with identical geometry that are construction land in both surveys are recognised
and not cut again (they cancel in ``net``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.errors import InputError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.reduction._geom import Plane, difference_each, fsum_by, intersect, wkb_keys
from yizhangtu.reduction.model import COUNTED_VERDICTS, LEDGER_COLUMNS, PlotMeasure
from yizhangtu.reduction.rules import evaluate, param

__all__ = ["UnitColumns", "YearResult", "aggregate_ledger", "evaluate_year", "measure_plots"]


@dataclass(frozen=True)
class UnitColumns:
    """Which columns of the unit layer hold code, name and parent (district) code."""

    code: str = "code"
    name: str = "name"
    parent: str | None = "district_code"
    parent_name: str | None = "district_name"


@dataclass(frozen=True)
class YearResult:
    """Acceptance of the year's plots and the unit ledger rows (finest level)."""

    year: int
    measures: tuple[PlotMeasure, ...]
    acceptance: pd.DataFrame
    ledger: pd.DataFrame
    plane: str
    stats: Mapping[str, int]


def _split_common(
    s0: gpd.GeoDataFrame, c0: np.ndarray, s1: gpd.GeoDataFrame, c1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split two surveys into common and changed parcels (positions).

    Returns common construction parcels (in s0), changed construction parcels of s0 and s1, and
    the parcels of s0 / s1 whose geometry has no identical twin in the other survey (coverage).
    """
    same_crs = s0.crs is not None and s1.crs is not None and s0.crs == s1.crs
    if not same_crs or len(s0) == 0 or len(s1) == 0:
        return (
            np.empty(0, dtype=np.int64),
            np.flatnonzero(c0),
            np.flatnonzero(c1),
            np.arange(len(s0)),
            np.arange(len(s1)),
        )
    k0 = wkb_keys(s0).to_numpy()
    k1 = wkb_keys(s1).to_numpy()
    n0, n1 = Counter(k0), Counter(k1)
    uniq0 = np.array([n0[k] == 1 for k in k0], dtype=bool)
    uniq1 = np.array([n1[k] == 1 for k in k1], dtype=bool)
    twin0 = np.array([n1.get(k, 0) == 1 for k in k0], dtype=bool) & uniq0
    twin1 = np.array([n0.get(k, 0) == 1 for k in k1], dtype=bool) & uniq1
    cons1_by_key = {k: bool(c) for k, c, t in zip(k1, c1, twin1, strict=True) if t}
    common0 = (
        twin0
        & np.asarray(c0, dtype=bool)
        & np.array([cons1_by_key.get(k, False) for k in k0], dtype=bool)
    )
    common_keys = set(k0[common0])
    common1 = twin1 & np.array([k in common_keys for k in k1], dtype=bool)
    changed0 = np.flatnonzero(np.asarray(c0, dtype=bool) & ~common0)
    changed1 = np.flatnonzero(np.asarray(c1, dtype=bool) & ~common1)
    return (
        np.flatnonzero(common0),
        changed0,
        changed1,
        np.flatnonzero(~twin0),
        np.flatnonzero(~twin1),
    )


def measure_plots(
    plots: gpd.GeoDataFrame,
    P: np.ndarray,
    G0: np.ndarray,
    G1: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    removed: np.ndarray,
    added: np.ndarray,
) -> list[PlotMeasure]:
    """Per-plot figures from plane geometries (see :class:`PlotMeasure`)."""
    n = len(P)

    def per_plot(b: np.ndarray) -> dict[object, float]:
        pcs = intersect(P, b)
        return fsum_by(pcs.ia, pcs.area)

    cov0, cov1 = per_plot(G0), per_plot(G1)
    base, rem = per_plot(G0[c0]), per_plot(G1[c1])
    red = per_plot(np.array([g for g in removed if g is not None], dtype=object))
    new = per_plot(np.array([g for g in added if g is not None], dtype=object))
    area = np.asarray(shapely.area(P), dtype=float) if n else np.empty(0)
    flagged = (
        plots["qc_status"].astype(str).eq("flagged").to_numpy()
        if "qc_status" in plots.columns
        else np.zeros(n, dtype=bool)
    )
    reasons = (
        plots["qc_reasons"].astype(object).fillna("").astype(str).to_numpy()
        if "qc_reasons" in plots.columns
        else np.array([""] * n)
    )
    out = []
    for i, row in enumerate(plots.itertuples(index=False)):
        out.append(
            PlotMeasure(
                plot_id=str(row.plot_id),
                township=str(row.township),
                area_m2=float(area[i]),
                baseline_cover_m2=cov0.get(i, 0.0),
                cover_m2=cov1.get(i, 0.0),
                base_m2=base.get(i, 0.0),
                remaining_m2=rem.get(i, 0.0),
                reduced_m2=red.get(i, 0.0),
                new_m2=new.get(i, 0.0),
                flagged=bool(flagged[i]),
                flag_reasons=str(reasons[i]),
            )
        )
    return out


def evaluate_year(
    *,
    units: gpd.GeoDataFrame,
    baseline: gpd.GeoDataFrame,
    baseline_construction: np.ndarray,
    survey: gpd.GeoDataFrame,
    survey_construction: np.ndarray,
    plots: gpd.GeoDataFrame | None,
    year: int,
    pack: PolicyPack,
    columns: UnitColumns = UnitColumns(),
) -> YearResult:
    """Accept the year's plots and reconcile every unit (see module docstring).

    Parameters
    ----------
    units : GeoDataFrame
        Finest units (乡镇/街道) with code, name and parent (district) code columns.
    baseline, survey : GeoDataFrame
        Survey t−1 and survey t (年度变更调查 snapshots).
    baseline_construction, survey_construction : bool array
        Which parcels are 城乡建设用地 (:func:`yizhangtu.reduction.survey.construction_mask`).
    plots : GeoDataFrame, optional
        Plot layer (``plot_id``, ``township``, ``year``, ``qc_status`` …); only plots of ``year``
        are accepted.
    year : int
        The survey year t.
    pack : PolicyPack
        Reduction pack (acceptance rule and thresholds).

    Returns
    -------
    YearResult
    """
    for name, frame in (("units", units), ("baseline", baseline), ("survey", survey)):
        if len(frame) == 0:
            raise InputError(f"{name} 图层为空", key="reduction_empty_layer", field=name)
    if columns.code not in units.columns:
        raise InputError(
            f"单元图层缺少字段 {columns.code}", key="reduction_unit_field", field=columns.code
        )
    c0 = np.asarray(baseline_construction, dtype=bool)
    c1 = np.asarray(survey_construction, dtype=bool)
    year_plots = (
        plots[plots["year"].astype(int) == int(year)].reset_index(drop=True)
        if plots is not None and len(plots)
        else None
    )
    plane = Plane.for_frames(units, baseline, survey, year_plots)
    U = plane.project(units)
    G0 = plane.project(baseline)
    G1 = plane.project(survey)
    codes = units[columns.code].astype(str).to_numpy()

    common, ch0, ch1, cov0_idx, cov1_idx = _split_common(baseline, c0, survey, c1)
    # stocks: common parcels (once) + changed construction parcels of each survey
    pk = intersect(G0[common], U)
    p0 = intersect(G0[ch0], U)
    p1 = intersect(G1[ch1], U)
    # geometric change: A0' − C1 and A1' − C0 (C = all construction parcels of a survey)
    removed = difference_each(G0[ch0], G1[c1])
    added = difference_each(G1[ch1], G0[c0])
    rpcs = intersect(np.array([g for g in removed if g is not None], dtype=object), U)
    apcs = intersect(np.array([g for g in added if g is not None], dtype=object), U)
    # coverage change, on parcels without an identical twin
    q0 = intersect(G0[cov0_idx], U)
    q1 = intersect(G1[cov1_idx], U)

    def by_unit(p: Any) -> dict[object, list[float]]:
        out: dict[object, list[float]] = {}
        for j, a in zip(p.ib, p.area, strict=True):
            out.setdefault(int(j), []).append(float(a))
        return out

    k_u, a0_u, a1_u = by_unit(pk), by_unit(p0), by_unit(p1)
    r_u, n_u = by_unit(rpcs), by_unit(apcs)
    q0_u, q1_u = by_unit(q0), by_unit(q1)

    # plots: measure, accept, attribute accepted area to units geometrically
    measures: list[PlotMeasure] = []
    acc_rows: list[dict[str, Any]] = []
    accepted_u: dict[object, list[float]] = {}
    counts: dict[tuple[int, str], int] = {}
    at = date(int(year), 12, 31)
    if year_plots is not None and len(year_plots):
        P = plane.project(year_plots)
        measures = measure_plots(year_plots, P, G0, G1, c0, c1, removed, added)
        count_partial = bool(param(pack, "count_partial"))
        for i, m in enumerate(measures):
            f = evaluate(pack, "acceptance", m, at, subject_id=m.plot_id)[0]
            counted = f.outcome in COUNTED_VERDICTS and (f.outcome == "reduced" or count_partial)
            row = year_plots.iloc[i]
            acc_rows.append(
                {
                    "year": int(year),
                    "plot_id": m.plot_id,
                    "township": m.township,
                    "district": None
                    if "district" not in year_plots.columns or pd.isna(row.get("district"))
                    else str(row.get("district")),
                    "plot_type": str(row.get("plot_type", "")),
                    "ownership": str(row.get("ownership", "")),
                    "planned_use": str(row.get("planned_use", "")),
                    "area_m2": m.area_m2,
                    "baseline_cover_m2": m.baseline_cover_m2,
                    "cover_m2": m.cover_m2,
                    "base_m2": m.base_m2,
                    "remaining_m2": m.remaining_m2,
                    "reduced_m2": m.reduced_m2,
                    "new_m2": m.new_m2,
                    "share": m.share,
                    "verdict": f.outcome,
                    "counted": counted,
                    "counted_m2": m.reduced_m2 if counted else 0.0,
                    "severity": f.severity,
                    "message": f.message,
                }
            )
        # plot counts per unit (by the plot's township attribute)
        # accepted area per unit: the counted plots' reduced area, by the plot's township
        # (plots are checked to lie in it at submission; flagged plots never count)
        code_pos = {c: k for k, c in enumerate(codes)}
        for r in acc_rows:
            k = code_pos.get(r["township"])
            if k is None:
                continue
            counts[(k, r["verdict"])] = counts.get((k, r["verdict"]), 0) + 1
            if r["counted"]:
                accepted_u.setdefault(k, []).append(float(r["counted_m2"]))

    rows = []
    for k, code in enumerate(codes):
        common_m2 = k_u.get(k, [])
        stock0 = math.fsum(common_m2 + a0_u.get(k, []))
        stock1 = math.fsum(common_m2 + a1_u.get(k, []))
        removed_m2 = math.fsum(r_u.get(k, []))
        added_m2 = math.fsum(n_u.get(k, []))
        accepted_m2 = math.fsum(accepted_u.get(k, []))
        net = stock0 - stock1
        nplots = sum(v for (kk, _), v in counts.items() if kk == k)
        rows.append(
            {
                "level": "township",
                "unit_code": str(code),
                "unit_name": str(units.iloc[k][columns.name])
                if columns.name in units.columns
                else str(code),
                "parent_code": str(units.iloc[k][columns.parent])
                if columns.parent and columns.parent in units.columns
                else None,
                "year": int(year),
                "stock_prev_m2": stock0,
                "stock_m2": stock1,
                "net_m2": net,
                "removed_m2": removed_m2,
                "accepted_m2": accepted_m2,
                "other_removed_m2": removed_m2 - accepted_m2,
                "added_m2": added_m2,
                "residual_m2": net - (removed_m2 - added_m2),
                "coverage_change_m2": math.fsum(q0_u.get(k, [])) - math.fsum(q1_u.get(k, [])),
                "plots": nplots,
                "plots_reduced": counts.get((k, "reduced"), 0),
                "plots_partial": counts.get((k, "partial"), 0),
                "plots_not_reduced": counts.get((k, "not_reduced"), 0),
                "plots_other": counts.get((k, "not_covered"), 0) + counts.get((k, "flagged"), 0),
            }
        )
    ledger = pd.DataFrame(
        rows,
        columns=[
            c
            for c in LEDGER_COLUMNS
            if c not in ("baseline_label", "survey_label", "provenance_id")
        ],
    )
    acceptance = pd.DataFrame(acc_rows)
    stats = {
        "units": len(U),
        "baseline_parcels": len(G0),
        "survey_parcels": len(G1),
        "common_construction": len(common),
        "changed_baseline": len(ch0),
        "changed_survey": len(ch1),
        "plots": 0 if year_plots is None else len(year_plots),
    }
    return YearResult(int(year), tuple(measures), acceptance, ledger, plane.proj, stats)


_SUM_COLS = (
    "stock_prev_m2",
    "stock_m2",
    "net_m2",
    "removed_m2",
    "accepted_m2",
    "other_removed_m2",
    "added_m2",
    "residual_m2",
    "coverage_change_m2",
    "plots",
    "plots_reduced",
    "plots_partial",
    "plots_not_reduced",
    "plots_other",
)


def aggregate_ledger(
    ledger: pd.DataFrame, *, level: str = "district", names: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Sum finest-level rows to their parent units (区), per year.

    Sums are exact (:func:`math.fsum`), so the district's residual is the sum of its units'.
    """
    base = ledger[ledger["level"] == "township"]
    if base.empty:
        return ledger.iloc[0:0].copy()
    rows = []
    for (parent, yr), g in base.groupby(["parent_code", "year"], dropna=False, sort=True):
        row: dict[str, Any] = {
            "level": level,
            "unit_code": None if pd.isna(parent) else str(parent),
            "unit_name": (names or {}).get(str(parent), str(parent)),
            "parent_code": None,
            "year": int(yr),
        }
        for c in _SUM_COLS:
            if c in g.columns:
                vals = g[c].to_numpy()
                row[c] = (
                    int(vals.sum()) if c.startswith("plots") else math.fsum(float(v) for v in vals)
                )
        for c in ("baseline_label", "survey_label", "provenance_id"):
            if c in g.columns:
                row[c] = g[c].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(ledger.columns))
