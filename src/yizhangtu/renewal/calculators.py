"""Renewal calculators: balance funds, revenue splits, reinvestment, parking, fiscal floor.

Each returns a :class:`Calculation` holding the figures, the parameters used and the clause
they come from. Every coefficient and ratio is read from the policy pack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from yizhangtu.errors import InputError, PolicyError, ValidationError
from yizhangtu.geo.area import convert_area
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import at_least, jsonable
from yizhangtu.renewal.model import Mode, RenewalLibrary, RenewalUnit, UnitType, parse_enum
from yizhangtu.renewal.rules import PARAM_UNITS, PARKING_RATE_BASE_M2

__all__ = [
    "Calculation",
    "balance_fund",
    "fiscal_contribution_floor",
    "land_banking_minimum",
    "parking_requirement",
    "reinvestment_minimum",
    "reserve_land_split",
    "revenue_split",
    "unit_calculations",
]


@dataclass(frozen=True)
class Calculation:
    """Figures of one calculation with the parameters and clause behind them."""

    name: str
    title: str
    figures: Mapping[str, Any]
    clause: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    pack: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "name": self.name,
            "title": self.title,
            "figures": jsonable(self.figures),
            "clause": self.clause,
            "params": jsonable(self.params),
            "pack": dict(self.pack),
            "note": self.note,
        }


def _param(pack: PolicyPack, name: str, at: date | None) -> Any:
    return pack.param(name, unit=PARAM_UNITS[name], at=at)


def _amount(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} 须为数值, 实为 {value!r}", key="bad_number", field=name)
    if value < 0:
        raise ValidationError(f"{name} 不能为负数: {value}", key="negative_value", field=name)
    return float(value)


def revenue_split(
    amount_yuan: float, pack: PolicyPack, param: str = "balance_fund_split", at: date | None = None
) -> Calculation:
    """Split an amount between parties by a ``split`` parameter (e.g. 市:镇街 = 5:5).

    Parameters
    ----------
    amount_yuan : float
        Amount to split.
    param : str
        ``balance_fund_split`` (004 (十三)) or ``reserve_land_split`` (004 (十五)).
    """
    amount = _amount(amount_yuan, "amount_yuan")
    parts = pack.param(param, unit="split", at=at)
    total = float(sum(parts.values()))
    shares = {party: amount * float(n) / total for party, n in parts.items()}
    return Calculation(
        name="revenue_split",
        title=pack.parameter(param).title or "分成",
        figures={
            "amount_yuan": amount,
            "shares_yuan": shares,
            "ratios": {party: float(n) / total for party, n in parts.items()},
        },
        clause=pack.parameter(param).clause,
        params={param: dict(parts)},
        pack=pack.ref(),
    )


def reserve_land_split(
    revenue_yuan: float, pack: PolicyPack, at: date | None = None
) -> Calculation:
    """Split of 发展备用地 sale revenue between city and town (004 (十五))."""
    return revenue_split(revenue_yuan, pack, "reserve_land_split", at)


def balance_fund(
    land_price_yuan: float,
    mode: Mode | str,
    pack: PolicyPack,
    unit_type: UnitType | str = UnitType.RESIDENTIAL_COMMERCIAL,
    at: date | None = None,
) -> Calculation:
    """Balance fund of a 工改居商 unit and its city/town split (004 (十三)).

    The coefficient depends on the mode (``balance_coefficient``). With basis ``excess``
    the fund is land price × (coefficient − 1); with ``total`` it is land price × coefficient
    (``balance_fund_basis``, a local choice). The fund is split by ``balance_fund_split``.
    """
    price = _amount(land_price_yuan, "land_price_yuan")
    m = parse_enum(Mode, mode, "mode")
    t = parse_enum(UnitType, unit_type, "unit_type")
    types = _param(pack, "balance_coefficient_types", at)
    if t.value not in types:
        raise InputError(
            f"{t.value}单元不适用平衡系数(适用: {'、'.join(types)})",
            key="not_applicable",
            field="unit_type",
            hint=f"依据 {pack.parameter('balance_coefficient_types').clause}",
        )
    coefs = _param(pack, "balance_coefficient", at)
    if isinstance(coefs, dict):
        if m.value not in coefs:
            raise InputError(
                f"政策包未规定{m.value}模式的平衡系数(已规定: {'、'.join(coefs)})",
                key="not_applicable",
                field="mode",
                hint=f"依据 {pack.parameter('balance_coefficient').clause}",
            )
        k = float(coefs[m.value])
    else:
        k = float(coefs)
    basis = _param(pack, "balance_fund_basis", at)
    if basis == "excess":
        fund = price * (k - 1)
    elif basis == "total":
        fund = price * k
    else:
        raise PolicyError(
            f"参数 balance_fund_basis 须为 excess 或 total, 实为 {basis!r}",
            key="policy_param_value",
            field="balance_fund_basis",
        )
    split = revenue_split(fund, pack, "balance_fund_split", at)
    return Calculation(
        name="balance_fund",
        title="平衡资金",
        figures={
            "land_price_yuan": price,
            "coefficient": k,
            "payable_yuan": price * k,
            "balance_fund_yuan": fund,
            "shares_yuan": split.figures["shares_yuan"],
            "basis": basis,
        },
        clause=pack.parameter("balance_coefficient").clause,
        params={
            "balance_coefficient": k,
            "balance_fund_basis": basis,
            "balance_fund_split": split.params["balance_fund_split"],
        },
        pack=pack.ref(),
        note=pack.parameter("balance_fund_basis").note,
    )


def reinvestment_minimum(
    total_revenue_yuan: float,
    pack: PolicyPack,
    reinvested_yuan: float | None = None,
    at: date | None = None,
) -> Calculation:
    """Minimum collective reinvestment of residential/commercial revenue (004 (十三))."""
    revenue = _amount(total_revenue_yuan, "total_revenue_yuan")
    share = _param(pack, "reinvestment_share_min", at)
    figures: dict[str, Any] = {
        "revenue_yuan": revenue,
        "min_share": share,
        "required_yuan": revenue * share,
    }
    if reinvested_yuan is not None:
        r = _amount(reinvested_yuan, "reinvested_yuan")
        figures["reinvested_yuan"] = r
        figures["share"] = r / revenue if revenue else None
        figures["meets"] = at_least(r, revenue * share)
    return Calculation(
        name="reinvestment_minimum",
        title="集体收益再投入下限",
        figures=figures,
        clause=pack.parameter("reinvestment_share_min").clause,
        params={"reinvestment_share_min": share},
        pack=pack.ref(),
    )


def parking_requirement(
    floor_area_m2: float,
    land_area_m2: float,
    pack: PolicyPack,
    unit_type: UnitType | str = UnitType.INDUSTRIAL,
    at: date | None = None,
) -> Calculation:
    """Parking spaces at the reduced rate for contiguous 工改工 units (004 (六))."""
    floor = _amount(floor_area_m2, "floor_area_m2")
    land = _amount(land_area_m2, "land_area_m2")
    t = parse_enum(UnitType, unit_type, "unit_type")
    minimum = _param(pack, "parking_eligible_area_min", at)
    rate = _param(pack, "parking_rate", at)
    types = _param(pack, "parking_types", at)
    area_mu = float(convert_area(land, "mu"))
    eligible = t.value in types and at_least(area_mu, minimum)
    required = floor / PARKING_RATE_BASE_M2 * rate
    return Calculation(
        name="parking_requirement",
        title="停车位配置",
        figures={
            "floor_area_m2": floor,
            "land_area_mu": area_mu,
            "eligible": eligible,
            "spaces": required if eligible else None,
            "spaces_rounded": math.ceil(required - 1e-9) if eligible else None,
        },
        clause=pack.parameter("parking_rate").clause,
        params={
            "parking_rate": rate,
            "parking_eligible_area_min": minimum,
            "parking_types": list(types),
        },
        pack=pack.ref(),
        note=None if eligible else "不适用折减标准, 按一般停车配建标准",
    )


def fiscal_contribution_floor(
    baseline: float, pack: PolicyPack, committed: float | None = None, at: date | None = None
) -> Calculation:
    """Lowest fiscal contribution an industrial project may commit (004 (十七))."""
    base = _amount(baseline, "baseline")
    share = _param(pack, "fiscal_contribution_share_min", at)
    figures: dict[str, Any] = {"baseline": base, "min_share": share, "floor": base * share}
    if committed is not None:
        c = _amount(committed, "committed")
        figures["committed"] = c
        figures["meets"] = at_least(c, base * share)
    return Calculation(
        name="fiscal_contribution_floor",
        title="财政贡献下限",
        figures=figures,
        clause=pack.parameter("fiscal_contribution_share_min").clause,
        params={"fiscal_contribution_share_min": share},
        pack=pack.ref(),
    )


def land_banking_minimum(
    industrial_task_m2: float, pack: PolicyPack, at: date | None = None
) -> Calculation:
    """Land-banking part of a town's yearly 工改工 task (004 (六))."""
    task = _amount(industrial_task_m2, "industrial_task_m2")
    share = _param(pack, "land_banking_share_min", at)
    return Calculation(
        name="land_banking_minimum",
        title="连片产业用地收储任务下限",
        figures={
            "industrial_task_m2": task,
            "industrial_task_mu": float(convert_area(task, "mu")),
            "min_share": share,
            "banking_task_m2": task * share,
            "banking_task_mu": float(convert_area(task * share, "mu")),
        },
        clause=pack.parameter("land_banking_share_min").clause,
        params={"land_banking_share_min": share},
        pack=pack.ref(),
    )


def unit_calculations(
    unit: RenewalUnit,
    pack: PolicyPack,
    library: RenewalLibrary | None = None,
    at: date | None = None,
) -> list[Calculation]:
    """Every calculation that applies to ``unit`` given its figures."""
    out: list[Calculation] = []
    m = unit.money
    if m.land_price_yuan is not None and unit.unit_type.value in _param(
        pack, "balance_coefficient_types", at
    ):
        coefs = _param(pack, "balance_coefficient", at)
        if not isinstance(coefs, dict) or unit.mode.value in coefs:
            out.append(balance_fund(m.land_price_yuan, unit.mode, pack, unit.unit_type, at))
    if m.collective_revenue_yuan and unit.unit_type.value in _param(pack, "reinvestment_types", at):
        out.append(
            reinvestment_minimum(m.collective_revenue_yuan, pack, m.collective_reinvested_yuan, at)
        )
    if m.floor_area_m2 is not None and unit.unit_type.value in _param(pack, "parking_types", at):
        out.append(
            parking_requirement(m.floor_area_m2, unit.land_area_m2, pack, unit.unit_type, at)
        )
    town = library.town(unit.town) if library is not None else None
    if (
        town is not None
        and town.fiscal_baseline
        and unit.unit_type.value in _param(pack, "fiscal_contribution_types", at)
    ):
        out.append(fiscal_contribution_floor(town.fiscal_baseline, pack, m.fiscal_contribution, at))
    return out
