"""Measurement units of indicators: parsing, dimensions and conversion factors.

A unit string such as ``"m2/人"``, ``"张/千人"``, ``"亿㎡"`` or ``"%"`` is parsed into a
:class:`Unit`: a dimension (exponents of length, person, item, money, mass, time) and the factor
that converts one unit into SI base quantities (m, person, item, 元, kg, s). Formulas compute in
base quantities; the declared unit converts the result (``value / unit.factor``), so a catalogue
never carries a separate "scale" number and a unit that does not fit the formula is caught when
the catalogue is loaded.

Chinese magnitude prefixes (百, 千, 万, 十万/10万, 百万, 亿) are accepted in front of any simple
unit: ``万人``, ``亿元``, ``万亩``. Units outside this table are *opaque*: allowed only for
``from_table`` and ``not_computable`` formulas, compared by their exact text.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Unit", "dims_of", "parse_unit"]

# dimension symbols: L length, P person, N item (count of things), Y money, M mass, T time
_SIMPLE: dict[str, tuple[dict[str, int], float]] = {}


def _reg(names: str, dims: dict[str, int], factor: float) -> None:
    for name in names.split():
        _SIMPLE[name] = (dims, factor)


_reg("m2 ㎡ m² 平方米", {"L": 2}, 1.0)
_reg("ha 公顷", {"L": 2}, 1.0e4)
_reg("km2 km² 平方公里 平方千米", {"L": 2}, 1.0e6)
_reg("亩", {"L": 2}, 10_000.0 / 15.0)
_reg("m3 m³ 立方米", {"L": 3}, 1.0)
_reg("m 米", {"L": 1}, 1.0)
_reg("mm 毫米", {"L": 1}, 0.001)
_reg("km 公里 千米", {"L": 1}, 1000.0)
_reg("人", {"P": 1}, 1.0)
_reg("个 处 栋 幢 套 张 所 条 宗 项 座 班 家 次 床 辆 件 户", {"N": 1}, 1.0)
_reg("元", {"Y": 1}, 1.0)
_reg("kg 千克 公斤", {"M": 1}, 1.0)
_reg("吨 t", {"M": 1}, 1000.0)
_reg("秒 s", {"T": 1}, 1.0)
_reg("分钟 min", {"T": 1}, 60.0)
_reg("小时 h", {"T": 1}, 3600.0)
_reg("天 日", {"T": 1}, 86_400.0)
_reg("%", {}, 0.01)
_reg("‰", {}, 0.001)
_reg("1 比值", {}, 1.0)

# Longest first so that 十万 wins over 万.
_PREFIXES: list[tuple[str, float]] = [
    ("十万", 1e5),
    ("10万", 1e5),
    ("百万", 1e6),
    ("千万", 1e7),
    ("百", 1e2),
    ("千", 1e3),
    ("万", 1e4),
    ("亿", 1e8),
]


@dataclass(frozen=True)
class Unit:
    """A parsed measurement unit.

    Attributes
    ----------
    text : str
        The unit as written in the catalogue.
    dims : tuple of (symbol, exponent)
        Sorted non-zero exponents; empty for dimensionless units (%, ‰, 1).
    factor : float
        Base quantities per one unit (``"%"`` → 0.01, ``"亿㎡"`` → 1e8).
    known : bool
        False for opaque units, which only compare equal by text.
    """

    text: str
    dims: tuple[tuple[str, int], ...]
    factor: float
    known: bool = True

    @property
    def dimensionless(self) -> bool:
        """True for %, ‰ and plain ratios."""
        return self.known and not self.dims

    def same_dimension(self, other: Unit) -> bool:
        """Whether values in ``other`` can be converted to this unit."""
        if not (self.known and other.known):
            return self.text == other.text
        return self.dims == other.dims

    def to_base(self, value: float) -> float:
        """Convert a value in this unit to base quantities."""
        return value * self.factor

    def from_base(self, value: float) -> float:
        """Convert a base quantity to this unit."""
        return value / self.factor


def _simple(text: str) -> tuple[dict[str, int], float] | None:
    text = text.strip()
    if text in _SIMPLE:
        return _SIMPLE[text]
    for prefix, mult in _PREFIXES:
        if text.startswith(prefix) and text[len(prefix) :] in _SIMPLE:
            dims, factor = _SIMPLE[text[len(prefix) :]]
            return dims, factor * mult
    return None


def _combine(a: dict[str, int], b: dict[str, int], sign: int) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
    return {k: v for k, v in out.items() if v}


def dims_of(parts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """Canonical tuple form of a dimension dict."""
    return tuple(sorted((k, v) for k, v in parts.items() if v))


def parse_unit(text: str) -> Unit:
    """Parse a unit string; unknown units come back with ``known=False``.

    Parameters
    ----------
    text : str
        E.g. ``"m2/人"``, ``"人/km2"``, ``"张/千人"``, ``"万人"``, ``"%"``.
    """
    raw = str(text).strip()
    if "/" in raw:
        num_text, _, den_text = raw.partition("/")
        num = _simple(num_text)
        den = _simple(den_text)
        if num is None or den is None:
            return Unit(raw, (("?" + raw, 1),), 1.0, known=False)
        return Unit(raw, dims_of(_combine(num[0], den[0], -1)), num[1] / den[1])
    simple = _simple(raw)
    if simple is None:
        return Unit(raw, (("?" + raw, 1),), 1.0, known=False)
    return Unit(raw, dims_of(simple[0]), simple[1])
