"""Quota transfer (指标联动) and the linked increase-decrease balance (增减挂钩).

001: "将疏解企业和机构腾退出来的土地指标, 按照一定比例由疏解区转移到承接区, 承接地通过人口承接、
产值分计等措施对转出地予以补偿" and "在保持建设用地总规模不增加的基础上". A unit's new
construction may not exceed its own reduction minus the quota it sent plus the quota it received.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import pandas as pd

from yizhangtu.errors import ValidationError
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding
from yizhangtu.reduction.model import BalanceRow, Transfer
from yizhangtu.reduction.rules import BalanceFacts, evaluate, param

__all__ = ["balance", "check_transfer"]


def check_transfer(
    t: Transfer, pack: PolicyPack, *, known_units: Iterable[str] | None = None
) -> list[Finding]:
    """Check one transfer: ratio cap, distinct units, compensation recorded.

    Raises
    ------
    ValidationError
        A unit that is not in ``known_units``.
    """
    if known_units is not None:
        known = set(known_units)
        for role, code in (("from_unit", t.from_unit), ("to_unit", t.to_unit)):
            if code not in known:
                raise ValidationError(
                    f"指标联动 {t.transfer_id} 的{'转出地' if role == 'from_unit' else '承接地'}"
                    f" {code} 不是已知单位",
                    key="reduction_transfer_unit",
                    field=role,
                    feature=t.transfer_id,
                    hint="单位代码须为单元图层中的代码, 或已设定目标的单位",
                )
    return evaluate(pack, "transfer", t, date(t.year, 12, 31), subject_id=t.transfer_id)


def balance(
    ledger: pd.DataFrame,
    transfers: Sequence[Transfer],
    pack: PolicyPack,
    *,
    year: int,
    level: str = "township",
    names: Mapping[str, str] | None = None,
) -> list[BalanceRow]:
    """增减挂钩 balance of each unit of ``level``, cumulative through ``year``.

    Own reduction is the accepted reduction (``balance_basis: accepted``) or all area that
    left construction land in the surveys (``removed``).
    """
    basis = str(param(pack, "balance_basis"))
    if basis not in ("accepted", "removed"):
        raise ValidationError(
            f"balance_basis 须为 accepted 或 removed, 实为 {basis}",
            key="reduction_balance_basis",
            field="balance_basis",
        )
    col = "accepted_m2" if basis == "accepted" else "removed_m2"
    rows = ledger[(ledger["level"] == level) & (ledger["year"].astype(int) <= int(year))]
    added: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    label: dict[str, str] = dict(names or {})
    for r in rows.itertuples(index=False):
        code = str(r.unit_code)
        added.setdefault(code, []).append(float(r.added_m2))
        own.setdefault(code, []).append(float(getattr(r, col)))
        label.setdefault(code, str(r.unit_name))
    sent: dict[str, list[float]] = {}
    received: dict[str, list[float]] = {}
    for t in transfers:
        if t.year > int(year):
            continue
        if t.from_unit in own or t.from_unit in label:
            sent.setdefault(t.from_unit, []).append(t.quota_m2)
        if t.to_unit in own or t.to_unit in label:
            received.setdefault(t.to_unit, []).append(t.received_m2)
    out = []
    for code in sorted(set(own) | set(sent) | set(received)):
        facts = BalanceFacts(
            unit=label.get(code, code),
            added_m2=math.fsum(added.get(code, [])),
            own_m2=math.fsum(own.get(code, [])),
            sent_m2=math.fsum(sent.get(code, [])),
            received_m2=math.fsum(received.get(code, [])),
        )
        found = evaluate(pack, "balance", facts, date(int(year), 12, 31), subject_id=code)
        worst = next((f for f in found if f.outcome == "overdrawn"), None) or next(
            (f for f in found if f.outcome == "over"), found[-1]
        )
        out.append(
            BalanceRow(
                unit_code=code,
                unit_name=label.get(code, code),
                year=int(year),
                added_m2=facts.added_m2,
                own_m2=facts.own_m2,
                sent_m2=facts.sent_m2,
                received_m2=facts.received_m2,
                status=worst.outcome,
                severity=max((f.severity for f in found), key=["info", "warning", "error"].index),
                message="; ".join(f.message for f in found),
            )
        )
    return out
