"""Normalisation of raw criterion values, oriented so that larger is always better.

``minmax``
    benefit: ``(x − min)/(max − min)``; cost: ``(max − x)/(max − min)``; all 1 when constant.
``zscore``
    benefit: ``(x − mean)/std`` (population std); cost: the negative; all 0 when constant.
``rank``
    percentile rank in (0, 1], ties averaged; 1 for the best value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from yizhangtu.errors import ValidationError

__all__ = ["normalise", "normalise_frame"]


def normalise(values: pd.Series, direction: str, method: str = "minmax") -> pd.Series:
    """Normalise one criterion column (see module docstring).

    Raises
    ------
    ValidationError
        On an unknown method or direction.
    """
    x = values.astype(float)
    if direction not in ("benefit", "cost"):
        raise ValidationError(f"未知的准则方向: {direction}", key="criterion_direction")
    sign = 1.0 if direction == "benefit" else -1.0
    if method == "minmax":
        lo, hi = float(x.min()), float(x.max())
        if hi - lo <= 0:
            return pd.Series(np.ones(len(x)), index=x.index, name=x.name)
        out = (x - lo) / (hi - lo) if sign > 0 else (hi - x) / (hi - lo)
        return out
    if method == "zscore":
        sd = float(x.std(ddof=0))
        if sd <= 0:
            return pd.Series(np.zeros(len(x)), index=x.index, name=x.name)
        return sign * (x - float(x.mean())) / sd
    if method == "rank":
        return (sign * x).rank(method="average", pct=True)
    raise ValidationError(f"未知的标准化方法: {method}", key="normalisation_unknown")


def normalise_frame(
    raw: pd.DataFrame, directions: dict[str, str], method: str = "minmax"
) -> pd.DataFrame:
    """Normalise every column of ``raw`` with its direction."""
    return pd.DataFrame(
        {c: normalise(raw[c], directions[c], method) for c in raw.columns}, index=raw.index
    )
