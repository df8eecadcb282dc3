"""Claimed-versus-computed consistency checks (数据一致性核查).

Planning reports state figures and the ratios derived from them ("已供应约22公顷, 完成供应任务
(25公顷)比例超92%"). A :class:`Claim` records the stated comparison; :func:`check_claim`
recomputes and says whether the text is internally consistent.

Comparators: ``>``, ``>=``, ``<``, ``<=`` compare the computed value with the claimed one;
``≈`` (also ``=``) holds when the computed value rounded half-up to the claim's stated
decimals equals it (68.9% claims one decimal: 71.4/103.6 = 68.92% → 68.9 ✓). The claimed
value is kept as text so that its precision is the one printed in the source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from yizhangtu.errors import ValidationError

__all__ = ["Claim", "ClaimCheck", "check_claim"]

Comparator = Literal[">", ">=", "<", "<=", "≈", "="]
_WORDS = {">": "超过", ">=": "不低于", "<": "低于", "<=": "不超过", "≈": "约为", "=": "等于"}


@dataclass(frozen=True)
class Claim:
    """A figure as stated in a source text.

    Attributes
    ----------
    op : str
        ``>``, ``>=``, ``<``, ``<=``, ``≈`` or ``=``.
    value : str
        The stated number as printed (``"92"``, ``"68.9"``).
    unit : str
        Unit of the stated number.
    text : str, optional
        The quoted sentence.
    clause : str, optional
        Where it is (``002 一(二)一``).
    decimals : int, optional
        Stated precision; by default the decimals printed in ``value``.
    """

    op: Comparator
    value: str
    unit: str = ""
    text: str | None = None
    clause: str | None = None
    decimals: int | None = None

    def number(self) -> Decimal:
        """Return the claimed value as a Decimal."""
        try:
            return Decimal(str(self.value).strip())
        except InvalidOperation:
            raise ValidationError(
                f"声称值不是数字: {self.value!r}", key="claim_value", field="value"
            ) from None

    def precision(self) -> int:
        """Decimals the claim is stated with."""
        if self.decimals is not None:
            return self.decimals
        exp = self.number().as_tuple().exponent
        return max(0, -int(exp)) if isinstance(exp, int) else 0


@dataclass(frozen=True)
class ClaimCheck:
    """Outcome of one check: consistent or not, with a Chinese message."""

    claim: Claim
    computed: float
    consistent: bool
    message: str
    rounded: str | None = None


def check_claim(claim: Claim, computed: float) -> ClaimCheck:
    """Compare a claimed figure with the computed one.

    Parameters
    ----------
    claim : Claim
        The stated comparison.
    computed : float
        The value recomputed from the stated inputs, in the claim's unit.
    """
    if claim.op not in _WORDS:
        raise ValidationError(
            f"未知的比较符: {claim.op!r}",
            key="claim_op",
            field="op",
            hint="可用: " + " ".join(_WORDS),
        )
    stated = claim.number()
    where = f"({claim.clause})" if claim.clause else ""
    if computed is None or not math.isfinite(computed):
        return ClaimCheck(
            claim,
            math.nan,
            False,
            f"声称{_WORDS[claim.op]} {claim.value}{claim.unit}{where}, 但无法计算核对值",
        )
    c = Decimal(repr(float(computed)))
    rounded = None
    if claim.op in ("≈", "="):
        q = Decimal(1).scaleb(-claim.precision())
        r = c.quantize(q, rounding=ROUND_HALF_UP)
        rounded = str(r)
        ok = r == stated.quantize(q, rounding=ROUND_HALF_UP)
    elif claim.op == ">":
        ok = c > stated
    elif claim.op == ">=":
        ok = c >= stated
    elif claim.op == "<":
        ok = c < stated
    else:
        ok = c <= stated
    shown = rounded if rounded is not None else f"{float(computed):.{max(claim.precision(), 1)}f}"
    verdict = "一致" if ok else "不一致"
    msg = (
        f"声称{_WORDS[claim.op]} {claim.value}{claim.unit}{where}, "
        f"按所列数据计算为 {shown}{claim.unit}: {verdict}"
    )
    return ClaimCheck(claim, float(computed), ok, msg, rounded)
