"""Target selection for a year and unit, achievement and gap.

Which target applies in year *Y*: among the targets for the unit (or, if the unit has none of
its own, the catalogue-wide ones), the one with the smallest target year ≥ *Y* (the next
milestone). If it has a baseline, the target for *Y* is interpolated linearly between the
baseline and the target (按进度). After the last milestone the latest target still applies
and is marked as passed (目标年已过).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from yizhangtu.indicators.model import Indicator, Target

__all__ = ["ResolvedTarget", "achievement_pct", "select_target"]


@dataclass(frozen=True)
class ResolvedTarget:
    """The target that applies in a given year.

    Attributes
    ----------
    value : float
        Target for the evaluated year (interpolated when the target has a baseline).
    target : Target
        The catalogue target it comes from.
    interpolated : bool
        True when ``value`` lies on the baseline → target path.
    passed : bool
        True when the target year is before the evaluated year.
    """

    value: float
    target: Target
    interpolated: bool = False
    passed: bool = False

    @property
    def year(self) -> int:
        """Target year."""
        return self.target.year

    @property
    def kind(self) -> str:
        """``goal`` or ``limit``."""
        return self.target.kind


def select_target(
    indicator: Indicator, year: int, unit_id: str | None = None
) -> ResolvedTarget | None:
    """Return the target of ``indicator`` that applies to ``unit_id`` in ``year``, if any."""
    own = [t for t in indicator.targets if t.unit_id is not None and t.unit_id == unit_id]
    cands = own or [t for t in indicator.targets if t.unit_id is None]
    if not cands:
        return None
    future = [t for t in cands if t.year >= year]
    if future:
        t = min(future, key=lambda x: x.year)
        if t.year > year and t.baseline_year is not None and t.baseline_value is not None:
            if year <= t.baseline_year:
                return ResolvedTarget(t.baseline_value, t, interpolated=True)
            frac = (year - t.baseline_year) / (t.year - t.baseline_year)
            return ResolvedTarget(
                t.baseline_value + (t.value - t.baseline_value) * frac, t, interpolated=True
            )
        return ResolvedTarget(t.value, t)
    t = max(cands, key=lambda x: x.year)
    return ResolvedTarget(t.value, t, passed=True)


def achievement_pct(value: float, target: float, direction: str) -> float | None:
    """Return the percent of target achieved, or None when undefined.

    value/target for higher-better (and neutral) indicators, target/value for lower-better ones;
    None for a zero divisor or NaN.
    """
    if value is None or target is None or math.isnan(value) or math.isnan(target):
        return None
    if direction == "lower_better":
        return None if value == 0 else target / value * 100.0
    return None if target == 0 else value / target * 100.0
