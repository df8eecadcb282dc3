"""CQL2 text filters (OGC API Features Part 3): parse, type-check, compile to SQL, evaluate.

Supported: comparisons (``= <> < <= > >=``), ``AND``/``OR``/``NOT``, ``[NOT] LIKE``,
``[NOT] IN``, ``IS [NOT] NULL``, ``[NOT] BETWEEN``, ``CASEI()``, ``DATE()``/``TIMESTAMP()``
literals, and the spatial functions ``S_INTERSECTS``, ``S_DISJOINT``, ``S_WITHIN``,
``S_CONTAINS`` against WKT or ``BBOX(...)`` literals.

The compiled SQL is pushed down to the store: on PostGIS it is exact; on GeoPackage, which
has no SQL spatial functions, a spatial predicate becomes an R-tree bounding-box test that
selects a superset, and :func:`evaluate` refines the candidates in memory with SQL's
three-valued logic so that both backends return the same features.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely

from yizhangtu.errors import InputError

__all__ = [
    "GEOMETRY_PROPERTY",
    "And",
    "Between",
    "Comparison",
    "Compiled",
    "In",
    "IsNull",
    "Like",
    "Literal",
    "Not",
    "Or",
    "Property",
    "Spatial",
    "bbox_node",
    "compile_sql",
    "evaluate",
    "has_spatial",
    "parse",
    "properties",
]

#: Name of the geometry queryable.
GEOMETRY_PROPERTY = "geometry"
_GEOMETRY_ALIASES = {"geometry", "geom", "the_geom", "shape"}
_MAX_LENGTH = 20_000
_MAX_DEPTH = 64
_EXAMPLE = "示例: DLBM = '0101' AND S_INTERSECTS(geometry, BBOX(116.40, 39.90, 116.50, 40.00))"


# --------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """A queryable (attribute) reference; ``casei`` when wrapped in ``CASEI()``."""

    name: str
    casei: bool = False


@dataclass(frozen=True)
class Literal:
    """A scalar literal: str, int, float, bool, date or datetime; ``casei`` when in ``CASEI()``."""

    value: Any
    casei: bool = False


@dataclass(frozen=True)
class Comparison:
    """``left op right`` with op one of ``= <> < <= > >=``."""

    op: str
    left: Property | Literal
    right: Property | Literal


@dataclass(frozen=True)
class Like:
    """``prop [NOT] LIKE pattern``."""

    prop: Property
    pattern: Literal
    negated: bool = False


@dataclass(frozen=True)
class Between:
    """``prop [NOT] BETWEEN low AND high``."""

    prop: Property
    low: Literal
    high: Literal
    negated: bool = False


@dataclass(frozen=True)
class In:
    """``prop [NOT] IN (values)``."""

    prop: Property
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    """``prop IS [NOT] NULL``."""

    prop: Property
    negated: bool = False


@dataclass(frozen=True)
class Spatial:
    """A spatial predicate of the geometry against a literal (in the filter CRS).

    ``op`` is ``intersects``, ``within`` (feature within literal) or ``contains`` (feature
    contains literal).
    """

    op: str
    geom: Any


@dataclass(frozen=True)
class And:
    """Conjunction."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    """Disjunction."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    """Negation."""

    arg: Any


@dataclass(frozen=True)
class BoolConst:
    """``TRUE`` or ``FALSE`` as a whole predicate."""

    value: bool


Node = Comparison | Like | Between | In | IsNull | Spatial | And | Or | Not | BoolConst


def bbox_node(bbox: Sequence[float]) -> Spatial:
    """``S_INTERSECTS(geometry, BBOX(...))`` for a 4-number bbox (in the filter CRS)."""
    return Spatial("intersects", shapely.box(*bbox[:4]))


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _syntax(msg: str, pos: int | None = None) -> InputError:
    where = f" (第 {pos + 1} 个字符附近)" if pos is not None else ""
    return InputError(
        f"CQL2 筛选条件有误{where}: {msg}", key="cql2_syntax", field="filter", hint=_EXAMPLE
    )


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")+")
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,|\+|-|\*|/|\[|\])
  | (?P<id>[^\W\d][\w.:]*)
    """,
    re.VERBOSE | re.UNICODE,
)

_WKT_TYPES = {
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "GEOMETRYCOLLECTION",
}
_SPATIAL_FUNCS = {
    "S_INTERSECTS": "intersects",
    "S_DISJOINT": "disjoint",
    "S_WITHIN": "within",
    "S_CONTAINS": "contains",
}
_UNSUPPORTED_FUNCS = {
    "S_EQUALS",
    "S_TOUCHES",
    "S_OVERLAPS",
    "S_CROSSES",
    "T_AFTER",
    "T_BEFORE",
    "T_INTERSECTS",
    "T_DURING",
    "T_EQUALS",
    "A_CONTAINS",
    "A_EQUALS",
    "A_OVERLAPS",
    "A_CONTAINEDBY",
    "ACCENTI",
}
_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _syntax(f"无法识别的字符 {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("eof", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    # helpers --------------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _kw(self, *words: str) -> bool:
        t = self.tok
        return t.kind == "id" and t.text.upper() in words

    def _take_kw(self, word: str) -> None:
        if not self._kw(word):
            raise _syntax(f"此处应为 {word}, 实为 {self.tok.text or '结尾'!r}", self.tok.pos)
        self.i += 1

    def _take_op(self, op: str) -> None:
        if not (self.tok.kind == "op" and self.tok.text == op):
            raise _syntax(f"此处应为 {op!r}, 实为 {self.tok.text or '结尾'!r}", self.tok.pos)
        self.i += 1

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _syntax(f"嵌套层数超过 {_MAX_DEPTH}", self.tok.pos)

    # grammar --------------------------------------------------------------------
    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "eof":
            raise _syntax(f"多余的内容 {self.tok.text!r}", self.tok.pos)
        return node

    def expr(self) -> Node:
        self._enter()
        args = [self.term()]
        while self._kw("OR"):
            self.i += 1
            args.append(self.term())
        self.depth -= 1
        return args[0] if len(args) == 1 else Or(tuple(args))

    def term(self) -> Node:
        args = [self.factor()]
        while self._kw("AND"):
            self.i += 1
            args.append(self.factor())
        return args[0] if len(args) == 1 else And(tuple(args))

    def factor(self) -> Node:
        if self._kw("NOT"):
            self.i += 1
            self._enter()
            node = Not(self.factor())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if self._is_op("("):
            # a parenthesised boolean expression (scalars never start a predicate with "(")
            self.i += 1
            node = self.expr()
            self._take_op(")")
            return node
        if t.kind == "id":
            up = t.text.upper()
            if up in _SPATIAL_FUNCS:
                return self.spatial(_SPATIAL_FUNCS[up])
            if up in _UNSUPPORTED_FUNCS:
                raise _syntax(f"暂不支持函数 {t.text}", t.pos)
            if up in ("TRUE", "FALSE") and not self._next_is_comparison():
                self.i += 1
                return BoolConst(up == "TRUE")
        return self.predicate()

    def _next_is_comparison(self) -> bool:
        nxt = self.toks[self.i + 1]
        return (nxt.kind == "op" and nxt.text in ("=", "<>", "!=", "<", "<=", ">", ">=")) or (
            nxt.kind == "id" and nxt.text.upper() in ("LIKE", "IN", "IS", "BETWEEN", "NOT")
        )

    def predicate(self) -> Node:
        start = self.tok
        left = self.scalar()
        if self._kw("IS"):
            self.i += 1
            neg = False
            if self._kw("NOT"):
                self.i += 1
                neg = True
            self._take_kw("NULL")
            return IsNull(self._prop(left, start, "IS NULL"), neg)
        neg = False
        if self._kw("NOT"):
            self.i += 1
            neg = True
            if not self._kw("LIKE", "IN", "BETWEEN"):
                raise _syntax("NOT 之后应为 LIKE、IN 或 BETWEEN", self.tok.pos)
        if self._kw("LIKE"):
            self.i += 1
            pat_tok = self.tok
            pat = self.scalar()
            if not isinstance(pat, Literal) or not isinstance(pat.value, str):
                raise _syntax("LIKE 的模式应为字符串, 如 '01%'", pat_tok.pos)
            prop = self._prop(left, start, "LIKE")
            return Like(
                Property(prop.name, prop.casei or pat.casei),
                Literal(pat.value, prop.casei or pat.casei),
                neg,
            )
        if self._kw("BETWEEN"):
            self.i += 1
            lo = self._literal(self.scalar(), "BETWEEN")
            self._take_kw("AND")
            hi = self._literal(self.scalar(), "BETWEEN")
            return Between(self._prop(left, start, "BETWEEN"), lo, hi, neg)
        if self._kw("IN"):
            self.i += 1
            self._take_op("(")
            vals = [self._literal(self.scalar(), "IN")]
            while self._is_op(","):
                self.i += 1
                vals.append(self._literal(self.scalar(), "IN"))
            self._take_op(")")
            return In(self._prop(left, start, "IN"), tuple(vals), neg)
        if self._is_op("=", "<>", "!=", "<", "<=", ">", ">="):
            op = self.tok.text
            self.i += 1
            right = self.scalar()
            return Comparison("<>" if op == "!=" else op, left, right)
        if isinstance(left, Property):
            raise _syntax(
                f"属性 {left.name} 之后应为比较运算符 (=, <>, <, >, LIKE, IN, IS NULL, BETWEEN)",
                self.tok.pos,
            )
        raise _syntax(f"此处应为一个条件, 实为 {start.text or '结尾'!r}", start.pos)

    def _prop(self, node: Property | Literal, tok: _Tok, what: str) -> Property:
        if not isinstance(node, Property):
            raise _syntax(f"{what} 的左侧应为属性名", tok.pos)
        return node

    def _literal(self, node: Property | Literal, what: str) -> Literal:
        if not isinstance(node, Literal):
            raise _syntax(f"{what} 的取值应为字面量 (字符串或数字)", self.tok.pos)
        return node

    def scalar(self) -> Property | Literal:
        t = self.tok
        if t.kind == "str":
            self.i += 1
            return Literal(t.text[1:-1].replace("''", "'"))
        if t.kind == "num" or (
            t.kind == "op" and t.text in ("-", "+") and self.toks[self.i + 1].kind == "num"
        ):
            sign = 1
            if t.kind == "op":
                sign = -1 if t.text == "-" else 1
                self.i += 1
                t = self.tok
            self.i += 1
            text = t.text
            val: int | float = int(text) if re.fullmatch(r"\d+", text) else float(text)
            return Literal(sign * val)
        if t.kind == "qid":
            self.i += 1
            return Property(t.text[1:-1].replace('""', '"'))
        if t.kind == "id":
            up = t.text.upper()
            if up in ("TRUE", "FALSE"):
                self.i += 1
                return Literal(up == "TRUE")
            if (
                up in ("DATE", "TIMESTAMP")
                and self.toks[self.i + 1].kind == "op"
                and self.toks[self.i + 1].text == "("
            ):
                self.i += 2
                s = self.tok
                if s.kind != "str":
                    raise _syntax(f"{up}() 内应为带引号的日期, 如 {up}('2020-12-31')", s.pos)
                self.i += 1
                self._take_op(")")
                return Literal(_parse_instant(s.text[1:-1], up, s.pos))
            if (
                up == "CASEI"
                and self.toks[self.i + 1].kind == "op"
                and self.toks[self.i + 1].text == "("
            ):
                self.i += 2
                inner = self.scalar()
                self._take_op(")")
                if isinstance(inner, Property):
                    return Property(inner.name, casei=True)
                if not isinstance(inner.value, str):
                    raise _syntax("CASEI() 只能用于文本", t.pos)
                return Literal(inner.value, casei=True)
            if up in _KEYWORDS:
                raise _syntax(f"此处不应出现关键字 {t.text}", t.pos)
            if (
                up in _SPATIAL_FUNCS
                or up in _UNSUPPORTED_FUNCS
                or (self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(")
            ):
                raise _syntax(f"此处不支持函数 {t.text}()", t.pos)
            self.i += 1
            return Property(t.text)
        if t.kind == "op" and t.text in ("+", "-", "*", "/"):
            raise _syntax("暂不支持算术表达式", t.pos)
        raise _syntax(f"此处应为属性名或取值, 实为 {t.text or '结尾'!r}", t.pos)

    def spatial(self, op: str) -> Node:
        name_tok = self.tok
        self.i += 1
        self._take_op("(")
        a = self.geom_arg()
        self._take_op(",")
        b = self.geom_arg()
        self._take_op(")")
        if isinstance(a, Property) and not isinstance(b, Property):
            prop_first, lit = True, b
        elif isinstance(b, Property) and not isinstance(a, Property):
            prop_first, lit = False, a
        else:
            raise _syntax(
                f"{name_tok.text} 需要一个几何属性 (geometry) 和一个几何字面量", name_tok.pos
            )
        prop = a if prop_first else b
        if prop.name.lower() not in _GEOMETRY_ALIASES:
            raise _syntax(
                f"{name_tok.text} 的属性应为几何属性 geometry, 而不是 {prop.name}", name_tok.pos
            )
        if op == "disjoint":
            return Not(Spatial("intersects", lit))
        if op in ("within", "contains") and not prop_first:
            op = "contains" if op == "within" else "within"
        return Spatial(op, lit)

    def geom_arg(self) -> Any:
        t = self.tok
        if t.kind == "id" and t.text.upper() == "BBOX":
            self.i += 1
            self._take_op("(")
            nums = [self._number()]
            while self._is_op(","):
                self.i += 1
                nums.append(self._number())
            self._take_op(")")
            if len(nums) == 6:
                nums = [nums[0], nums[1], nums[3], nums[4]]
            if len(nums) != 4:
                raise _syntax(
                    "BBOX 需要 4 个 (或 6 个) 数字: 最小经度, 最小纬度, 最大经度, 最大纬度", t.pos
                )
            if nums[0] > nums[2] or nums[1] > nums[3]:
                raise _syntax("BBOX 的最小值大于最大值", t.pos)
            return shapely.box(*nums)
        if t.kind == "id" and t.text.upper() in _WKT_TYPES:
            self.i += 1
            depth = 0
            j = self.i
            # collect the balanced parenthesised coordinate text
            while True:
                tk = self.toks[j]
                if tk.kind == "eof":
                    raise _syntax(f"{t.text} 的括号不匹配", t.pos)
                if tk.kind == "op" and tk.text == "(":
                    depth += 1
                elif tk.kind == "op" and tk.text == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = self.toks[j].pos + 1
            wkt = t.text.upper() + " " + self.text[self.tok.pos : end]
            self.i = j + 1
            try:
                g = shapely.from_wkt(wkt)
            except Exception as exc:  # GEOS parse error: report it in Chinese
                raise _syntax(f"几何 WKT 无法解析: {exc}", t.pos) from None
            if g is None or g.is_empty:
                raise _syntax("几何为空", t.pos)
            return g
        node = self.scalar()
        if isinstance(node, Property):
            return node
        raise _syntax("此处应为几何 (BBOX(...)、POLYGON(...) 等 WKT) 或几何属性", t.pos)

    def _number(self) -> float:
        node = self.scalar()
        if (
            not isinstance(node, Literal)
            or isinstance(node.value, bool)
            or not isinstance(node.value, (int, float))
        ):
            raise _syntax("此处应为数字", self.tok.pos)
        return float(node.value)


def _parse_instant(text: str, kind: str, pos: int) -> date | datetime:
    try:
        if kind == "DATE":
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _syntax(
            f"日期格式有误: {text!r} (应为 2020-12-31 或 2020-12-31T00:00:00Z)", pos
        ) from None


def parse(text: str) -> Node:
    """Parse a CQL2 text filter; InputError (400) with a Chinese message if malformed."""
    if text is None or not str(text).strip():
        raise _syntax("筛选条件为空")
    if len(text) > _MAX_LENGTH:
        raise _syntax(f"筛选条件过长 (超过 {_MAX_LENGTH} 个字符)")
    return _Parser(str(text)).parse()


def properties(node: Node) -> set[str]:
    """Attribute names a filter uses (the geometry excluded)."""
    out: set[str] = set()

    def walk(n: Any) -> None:
        if isinstance(n, Property):
            out.add(n.name)
        elif isinstance(n, Comparison):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, (Like, Between, In, IsNull)):
            walk(n.prop)
        elif isinstance(n, (And, Or)):
            for a in n.args:
                walk(a)
        elif isinstance(n, Not):
            walk(n.arg)

    walk(node)
    return out


def has_spatial(node: Node) -> bool:
    """Whether a filter contains a spatial predicate."""
    if isinstance(node, Spatial):
        return True
    if isinstance(node, (And, Or)):
        return any(has_spatial(a) for a in node.args)
    if isinstance(node, Not):
        return has_spatial(node.arg)
    return False


def map_geometries(node: Node, fn: Callable[[Any], Any]) -> Node:
    """Copy the tree, passing every geometry literal through ``fn`` (e.g. to the storage CRS)."""
    if isinstance(node, Spatial):
        return Spatial(node.op, fn(node.geom))
    if isinstance(node, And):
        return And(tuple(map_geometries(a, fn) for a in node.args))
    if isinstance(node, Or):
        return Or(tuple(map_geometries(a, fn) for a in node.args))
    if isinstance(node, Not):
        return Not(map_geometries(node.arg, fn))
    return node


# --------------------------------------------------------------------------------------
# Type checking and SQL
# --------------------------------------------------------------------------------------

_KIND_ZH = {"str": "文本", "int": "整数", "float": "数值", "bool": "布尔", "datetime": "日期"}


def _lit_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (date, datetime)):
        return "datetime"
    return "str"


def _compatible(col_kind: str, lit: Any) -> bool:
    lk = _lit_kind(lit)
    if col_kind == "str":
        return lk == "str"
    if col_kind in ("int", "float"):
        return lk == "number"
    if col_kind == "bool":
        return lk == "bool"
    if col_kind == "datetime":
        return lk == "datetime" or (lk == "str" and _looks_like_date(lit))
    return True


def _looks_like_date(s: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?", s))


@dataclass(frozen=True)
class Compiled:
    """SQL for a filter: a WHERE expression, its parameters, and whether it is exact."""

    sql: str
    params: tuple[Any, ...]
    exact: bool


class _Compiler:
    def __init__(
        self,
        schema: Mapping[str, str],
        ph: str,
        dialect: str,
        spatial_sql: Callable[[Any, str], tuple[str, list[Any], bool]] | None,
    ) -> None:
        self.schema = dict(schema)
        self.ph = ph
        self.dialect = dialect
        self.spatial_sql = spatial_sql
        self.params: list[Any] = []
        self.exact = True

    def ident(self, name: str) -> str:
        q = '"' + name.replace('"', '""') + '"'
        return q.replace("%", "%%") if self.dialect == "postgresql" else q

    def kind(self, prop: Property) -> str:
        if prop.name.lower() in _GEOMETRY_ALIASES and prop.name not in self.schema:
            raise InputError(
                f"几何属性 {prop.name} 只能用于空间函数 (如 S_INTERSECTS)",
                key="cql2_geometry_misuse",
                field="filter",
                hint=_EXAMPLE,
            )
        if prop.name not in self.schema:
            known = ", ".join(sorted(self.schema)[:30])
            raise InputError(
                f"筛选条件中的属性不存在: {prop.name}",
                key="cql2_unknown_property",
                field="filter",
                hint=f"可用属性: {known}; 也可查看 /queryables",
            )
        return self.schema[prop.name]

    def col(self, prop: Property) -> str:
        c = self.ident(prop.name)
        return f"LOWER({c})" if prop.casei else c

    def param(self, value: Any, kind: str, casei: bool = False) -> str:
        if casei and isinstance(value, str):
            value = value.lower()
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind == "datetime":
            value = self._instant(value)
        self.params.append(value)
        return self.ph

    def _instant(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = (
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if "T" in value or " " in value
                    else date.fromisoformat(value)
                )
            except ValueError:
                raise InputError(
                    f"日期格式有误: {value!r}", key="cql2_bad_date", field="filter"
                ) from None
        if self.dialect == "postgresql":
            return value
        return value.isoformat()

    def check(self, prop: Property, lit: Literal, what: str) -> str:
        k = self.kind(prop)
        if lit.value is None:
            return k
        if not _compatible(k, lit.value):
            raise InputError(
                f"类型不匹配: 属性 {prop.name} 是{_KIND_ZH.get(k, k)}, "
                f"而{what}的取值是 {lit.value!r}",
                key="cql2_type_mismatch",
                field="filter",
                hint="文本取值请加单引号, 数字不加引号, 日期用 DATE('2020-12-31')",
            )
        if prop.casei and k != "str":
            raise InputError(
                f"CASEI() 只能用于文本属性, {prop.name} 是{_KIND_ZH.get(k, k)}",
                key="cql2_type_mismatch",
                field="filter",
            )
        return k

    def node(self, n: Any, positive: bool = True) -> str:
        if isinstance(n, BoolConst):
            return "1 = 1" if n.value else "1 = 0"
        if isinstance(n, And):
            return "(" + " AND ".join(self.node(a, positive) for a in n.args) + ")"
        if isinstance(n, Or):
            return "(" + " OR ".join(self.node(a, positive) for a in n.args) + ")"
        if isinstance(n, Not):
            return f"(NOT {self.node(n.arg, not positive)})"
        if isinstance(n, IsNull):
            self.kind(n.prop)
            return f"({self.ident(n.prop.name)} IS {'NOT ' if n.negated else ''}NULL)"
        if isinstance(n, Comparison):
            return self.comparison(n)
        if isinstance(n, Like):
            return self.like(n)
        if isinstance(n, Between):
            k = self.check(n.prop, n.low, "BETWEEN")
            self.check(n.prop, n.high, "BETWEEN")
            if k not in ("int", "float", "datetime", "str"):
                raise InputError(
                    f"BETWEEN 不能用于属性 {n.prop.name}", key="cql2_type_mismatch", field="filter"
                )
            lo = self.param(n.low.value, k)
            hi = self.param(n.high.value, k)
            return f"({self.col(n.prop)} {'NOT ' if n.negated else ''}BETWEEN {lo} AND {hi})"
        if isinstance(n, In):
            k = self.kind(n.prop)
            marks = []
            for v in n.values:
                self.check(n.prop, v, "IN")
                marks.append(self.param(v.value, k, n.prop.casei))
            return f"({self.col(n.prop)} {'NOT ' if n.negated else ''}IN ({', '.join(marks)}))"
        if isinstance(n, Spatial):
            return self.spatial(n, positive)
        raise InputError("无法编译的筛选条件", key="cql2_syntax", field="filter")

    def comparison(self, n: Comparison) -> str:
        left, right, op = n.left, n.right, n.op
        if isinstance(left, Literal) and isinstance(right, Property):
            left, right = right, left
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
        if isinstance(left, Property) and isinstance(right, Property):
            ka, kb = self.kind(left), self.kind(right)
            if (ka == "str") != (kb == "str"):
                raise InputError(
                    f"类型不匹配: {left.name} 与 {right.name} 不能比较",
                    key="cql2_type_mismatch",
                    field="filter",
                )
            return f"({self.col(left)} {op} {self.col(right)})"
        if isinstance(left, Property) and isinstance(right, Literal):
            k = self.check(left, right, "比较")
            if right.value is None:
                raise InputError("与空值比较请用 IS NULL", key="cql2_syntax", field="filter")
            casei = left.casei or right.casei
            col = f"LOWER({self.ident(left.name)})" if casei else self.ident(left.name)
            return f"({col} {op} {self.param(right.value, k, casei)})"
        # literal op literal: constant
        a, b = left.value, right.value  # type: ignore[union-attr]
        try:
            value = bool(_PY_OPS[op](a, b))
        except TypeError:
            raise InputError(
                f"无法比较 {a!r} 与 {b!r}", key="cql2_type_mismatch", field="filter"
            ) from None
        return "1 = 1" if value else "1 = 0"

    def like(self, n: Like) -> str:
        k = self.check(n.prop, n.pattern, "LIKE")
        if k != "str":
            raise InputError(
                f"LIKE 只能用于文本属性, {n.prop.name} 是{_KIND_ZH.get(k, k)}",
                key="cql2_type_mismatch",
                field="filter",
            )
        pattern = n.pattern.value.lower() if n.prop.casei else n.pattern.value
        col = self.col(n.prop)
        neg = "NOT " if n.negated else ""
        if self.dialect == "postgresql":
            self.params.append(pattern)
            return f"({col} {neg}LIKE {self.ph})"
        # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive like CQL2's LIKE
        self.params.append(_like_to_glob(pattern))
        return f"({col} {neg}GLOB {self.ph})"

    def spatial(self, n: Spatial, positive: bool) -> str:
        if self.spatial_sql is None:
            raise InputError(
                "此数据源不支持空间筛选", key="cql2_spatial_unsupported", field="filter"
            )
        sql, params, exact = self.spatial_sql(n.geom, n.op)
        if exact:
            self.params.extend(params)
            return f"({sql})"
        self.exact = False
        if not positive:
            # under NOT a candidate superset would drop matches: keep everything, refine later
            return "1 = 0"
        self.params.extend(params)
        return f"({sql})"


_PY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _like_to_glob(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(f"[{nxt}]" if nxt in "*?[" else nxt)
            i += 2
            continue
        if c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        elif c in "*?[":
            out.append(f"[{c}]")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _like_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return "".join(out)


def compile_sql(
    node: Node,
    *,
    schema: Mapping[str, str],
    ph: str,
    dialect: str,
    spatial_sql: Callable[[Any, str], tuple[str, list[Any], bool]] | None = None,
) -> Compiled:
    """Type-check a filter against ``schema`` ({name: kind}) and compile it to a WHERE expression.

    ``spatial_sql(geom, op)`` returns (sql, params, exact) for one spatial predicate whose
    literal is already in the storage CRS. ``exact`` is False when the SQL selects a
    superset, in which case the caller refines the rows with :func:`evaluate`.
    """
    c = _Compiler(schema, ph, dialect, spatial_sql)
    sql = c.node(node)
    return Compiled(sql=sql, params=tuple(c.params), exact=c.exact)


# --------------------------------------------------------------------------------------
# In-memory evaluation (refinement on GeoPackage), with SQL's three-valued logic
# --------------------------------------------------------------------------------------


def _na_where(values: Any, null: Any) -> pd.arrays.BooleanArray:
    arr = pd.array(np.asarray(values, dtype=bool), dtype="boolean")
    arr[np.asarray(null, dtype=bool)] = pd.NA
    return arr


def _series(frame: pd.DataFrame, prop: Property) -> pd.Series:
    s = frame[prop.name]
    if prop.casei:
        s = s.astype(object).where(s.isna(), s.astype(str).str.lower())
    return s


def _py_value(s: pd.Series, value: Any, casei: bool) -> Any:
    if casei and isinstance(value, str):
        value = value.lower()
    if pd.api.types.is_datetime64_any_dtype(s.dtype) and isinstance(value, (str, date, datetime)):
        ts = pd.Timestamp(value)
        tz = getattr(s.dt, "tz", None)
        if tz is not None and ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        elif tz is None and ts.tzinfo is not None:
            ts = ts.tz_convert(None)
        return ts
    return value


def evaluate(node: Node, frame: pd.DataFrame, geometry: Any) -> np.ndarray:
    """Evaluate a filter on rows (geometry literals in the rows' CRS); True where it holds."""
    res = _eval(node, frame, np.asarray(geometry, dtype=object))
    return np.asarray(res.fillna(False), dtype=bool)


def _eval(n: Any, frame: pd.DataFrame, geoms: np.ndarray) -> Any:
    size = len(frame)
    if isinstance(n, BoolConst):
        return pd.array([bool(n.value)] * size, dtype="boolean")
    if isinstance(n, And):
        out: Any = _eval(n.args[0], frame, geoms)
        for a in n.args[1:]:
            out = out & _eval(a, frame, geoms)
        return out
    if isinstance(n, Or):
        alt: Any = _eval(n.args[0], frame, geoms)
        for a in n.args[1:]:
            alt = alt | _eval(a, frame, geoms)
        return alt
    if isinstance(n, Not):
        return ~_eval(n.arg, frame, geoms)
    if isinstance(n, IsNull):
        isna = frame[n.prop.name].isna().to_numpy()
        return pd.array(list(~isna if n.negated else isna), dtype="boolean")
    if isinstance(n, Spatial):
        null = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        safe = np.where(null, shapely.Point(0, 0), geoms)
        fn = {
            "intersects": shapely.intersects,
            "within": shapely.within,
            "contains": shapely.contains,
        }[n.op]
        return _na_where(fn(safe, n.geom), null)
    if isinstance(n, Comparison):
        left, right, op = n.left, n.right, n.op
        if isinstance(left, Literal) and isinstance(right, Property):
            left, right = right, left
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
        if isinstance(left, Property) and isinstance(right, Property):
            a, b = _series(frame, left), _series(frame, right)
            null = (a.isna() | b.isna()).to_numpy()
            vals = _PY_OPS[op](a.where(~null, other=None), b.where(~null, other=None))
            truth = np.array([v is True or v is np.True_ for v in np.asarray(vals, dtype=object)])
            return _na_where(np.where(null, False, truth), null)
        if isinstance(left, Property):
            s = _series(frame, left)
            v = _py_value(s, right.value, left.casei or right.casei)  # type: ignore[union-attr]
            null = s.isna().to_numpy()
            vals = [
                False if nn else bool(_PY_OPS[op](x, v))
                for x, nn in zip(s.tolist(), null, strict=True)
            ]
            return _na_where(vals, null)
        const = bool(_PY_OPS[op](left.value, right.value))  # type: ignore[union-attr]
        return pd.array([const] * size, dtype="boolean")
    if isinstance(n, Like):
        s = _series(frame, n.prop)
        null = s.isna().to_numpy()
        pattern = n.pattern.value.lower() if n.prop.casei else n.pattern.value
        rx = re.compile(_like_to_regex(pattern), re.DOTALL)
        vals = np.array(
            [
                False if nn else bool(rx.fullmatch(str(x)))
                for x, nn in zip(s.tolist(), null, strict=True)
            ]
        )
        return _na_where(~vals if n.negated else vals, null)
    if isinstance(n, Between):
        s = frame[n.prop.name]
        lo, hi = _py_value(s, n.low.value, False), _py_value(s, n.high.value, False)
        null = s.isna().to_numpy()
        vals = np.array(
            [False if nn else bool(lo <= x <= hi) for x, nn in zip(s.tolist(), null, strict=True)]
        )
        return _na_where(~vals if n.negated else vals, null)
    if isinstance(n, In):
        s = _series(frame, n.prop)
        wanted = {_py_value(s, v.value, n.prop.casei) for v in n.values}
        null = s.isna().to_numpy()
        vals = np.array(
            [False if nn else x in wanted for x, nn in zip(s.tolist(), null, strict=True)]
        )
        return _na_where(~vals if n.negated else vals, null)
    raise InputError("无法计算的筛选条件", key="cql2_syntax", field="filter")
