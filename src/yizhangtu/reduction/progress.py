"""Progress towards reduction targets (减量进度): percent complete, years left, pace, warnings.

Per unit as of year Y: target (total to its horizon), accepted and net reduction summed over the
ledger years ≤ Y, percent complete = net / target (北京减量计净减量, 001), years left = horizon − Y,
required pace = (target − net) / years left, achieved pace = net / ledger years counted. The
pack's ``reduction.pace`` rule warns when the achieved pace (or the year's net reduction against
an annual target) falls short by more than its margin.

Figures reported in a seed document are a separate row (``source='reported'``), never mixed
into the computed ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date

import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.reduction.model import ProgressRow, Target
from yizhangtu.reduction.rules import PaceFacts, evaluate, param

__all__ = ["pick_total_target", "progress", "reported_rows"]


def pick_total_target(targets: Sequence[Target], unit: str, year: int) -> Target | None:
    """Pick the unit's total target in force in ``year`` (nearest horizon not before it)."""
    totals = [t for t in targets if t.unit_code == unit and t.kind == "total"]
    if not totals:
        return None
    ahead = [t for t in totals if t.year >= year]
    return min(ahead, key=lambda t: t.year) if ahead else max(totals, key=lambda t: t.year)


def _row(
    pack: PolicyPack,
    *,
    unit: str,
    name: str,
    level: str,
    year: int,
    source: str,
    target: Target | None,
    accepted: float | None,
    net: float | None,
    removed: float | None,
    added: float | None,
    years_counted: int,
    annual_target: float | None,
    annual_net: float | None,
    parent: str | None,
    note: str | None = None,
) -> ProgressRow:
    target_m2 = None if target is None else target.target_m2
    horizon = None if target is None else target.year
    years_left = None if horizon is None else horizon - year
    facts = PaceFacts(
        unit_name=name,
        target_m2=target_m2,
        net_m2=net,
        years_left=years_left,
        years_counted=years_counted,
        annual_target_m2=annual_target,
        annual_net_m2=annual_net,
    )
    f = evaluate(pack, "pace", facts, date(year, 12, 31), subject_id=unit)[0]
    pct = None if not target_m2 or net is None else net / target_m2 * 100
    return ProgressRow(
        unit_code=unit,
        unit_name=name,
        level=level,
        year=year,
        source=source,
        target_m2=target_m2,
        horizon_year=horizon,
        accepted_m2=accepted,
        net_m2=net,
        removed_m2=removed,
        added_m2=added,
        percent_complete=pct,
        years_left=years_left,
        required_pace_m2=facts.required_pace_m2,
        achieved_pace_m2=facts.achieved_pace_m2,
        annual_target_m2=annual_target,
        annual_net_m2=annual_net,
        status=f.outcome,
        severity=f.severity,
        message=f.message,
        years_counted=years_counted,
        parent_code=parent,
        note=note,
    )


def progress(
    targets: Sequence[Target],
    ledger: pd.DataFrame,
    pack: PolicyPack,
    *,
    level: str = "township",
    year: int | None = None,
    include_untargeted: bool = False,
) -> list[ProgressRow]:
    """Compute the progress of every unit of ``level`` that has a target (or all, on request).

    Parameters
    ----------
    targets : sequence of Target
    ledger : DataFrame
        Ledger rows (:data:`~yizhangtu.reduction.model.LEDGER_COLUMNS`) of ``level``.
    level : {'township', 'district'}
    year : int, optional
        As-of year; default the latest ledger year.
    include_untargeted : bool
        Also list units with ledger rows but no target (status ``no_target``).
    """
    rows = ledger[ledger["level"] == level] if len(ledger) else ledger
    if year is None:
        if rows is None or len(rows) == 0:
            raise InputError(
                "台账中还没有核算结果",
                key="reduction_no_ledger",
                hint="先运行 yizhangtu reduction accept --year Y --survey LABEL",
            )
        year = int(rows["year"].max())
    year = int(year)
    rows = rows[rows["year"].astype(int) <= year]
    by_unit = {str(k): g for k, g in rows.groupby("unit_code")} if len(rows) else {}
    names = {str(r.unit_code): str(r.unit_name) for r in rows.itertuples(index=False)}
    parents = {
        str(r.unit_code): (
            None if r.parent_code is None or pd.isna(r.parent_code) else str(r.parent_code)
        )
        for r in rows.itertuples(index=False)
    }
    units = [t.unit_code for t in targets if t.level == level]
    for t in targets:
        if t.level == level:
            names.setdefault(t.unit_code, t.unit_name)
            parents.setdefault(t.unit_code, t.parent_code)
    if include_untargeted:
        units += list(by_unit)
    out = []
    for unit in dict.fromkeys(units):
        g = by_unit.get(unit)
        target = pick_total_target(targets, unit, year)
        annual = next(
            (
                t.target_m2
                for t in targets
                if t.unit_code == unit and t.kind == "annual" and t.year == year
            ),
            None,
        )
        if g is None or len(g) == 0:
            acc = net = rem = add = annual_net = None
            counted = 0
        else:
            acc = math.fsum(g["accepted_m2"].astype(float))
            net = math.fsum(g["net_m2"].astype(float))
            rem = math.fsum(g["removed_m2"].astype(float))
            add = math.fsum(g["added_m2"].astype(float))
            this = g[g["year"].astype(int) == year]
            annual_net = math.fsum(this["net_m2"].astype(float)) if len(this) else None
            counted = int(g["year"].nunique())
        out.append(
            _row(
                pack,
                unit=unit,
                name=names.get(unit, unit),
                level=level,
                year=year,
                source="computed",
                target=target,
                accepted=acc,
                net=net,
                removed=rem,
                added=add,
                years_counted=counted,
                annual_target=annual,
                annual_net=annual_net,
                parent=parents.get(unit),
            )
        )
    return out


def reported_rows(pack: PolicyPack, *, names: Mapping[str, str] | None = None) -> list[ProgressRow]:
    """Progress as reported in the seed (报告数), one row per unit the pack reports on.

    The reported cumulative net reduction is counted from ``plan_period_start`` to the year of
    ``reported_as_of``; these rows are labelled ``source='reported'`` and are never summed with
    computed figures.
    """
    reported = param(pack, "reported_net_reduction")
    targets = param(pack, "district_targets")
    as_of: date = param(pack, "reported_as_of")  # type: ignore[assignment]
    start: date = param(pack, "plan_period_start")  # type: ignore[assignment]
    horizon: date = param(pack, "horizon_date")  # type: ignore[assignment]
    clause = pack.parameter("reported_net_reduction").clause
    out = []
    for code, km2 in dict(reported).items():  # type: ignore[call-overload]
        tkm2 = dict(targets).get(code)  # type: ignore[call-overload]
        target = (
            None
            if tkm2 is None
            else Target(
                code,
                (names or {}).get(code, code),
                "district",
                "total",
                horizon.year,
                float(tkm2) * 1e6,
                clause=pack.parameter("district_targets").clause,
            )
        )
        name = (names or {}).get(code, code)
        out.append(
            _row(
                pack,
                unit=code,
                name=name,
                level="district",
                year=as_of.year,
                source="reported",
                target=target,
                accepted=None,
                net=float(km2) * 1e6,
                removed=None,
                added=None,
                years_counted=max(as_of.year - start.year, 1),
                annual_target=None,
                annual_net=None,
                parent=None,
                note=(
                    f"报告数 ({pack.id} · {clause}, {as_of.isoformat()} 报告), 非本系统计算;"
                    f" 年均按 {start.year}—{as_of.year} "
                    f"共 {max(as_of.year - start.year, 1)} 年计 (基期为本项目解读)"
                ),
            )
        )
    return out
