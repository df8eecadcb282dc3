"""Code tables (地类代码表): GB/T 21010-2017, 三调工作分类, 城镇村属性码, 用地用海 2020/2023.

Tables are shipped as package data (see ``data/systems.yaml``) and loaded once per process.
The 2020 trial 用地用海 table is not stored: it is derived from the 2023 table and the change
list ``data/landsea_2020_to_2023_changes.csv`` (:func:`_derive_landsea_2020`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

import pandas as pd

from yizhangtu.codes._data import corrections, read_csv, records, systems_registry, tidy
from yizhangtu.errors import NotFoundError, PolicyError, ValidationError

__all__ = [
    "Code",
    "CodeTable",
    "list_systems",
    "load_table",
    "normalize_code",
    "normalize_codes",
    "require_known",
    "unknown_codes",
]

#: Key used by :func:`unknown_codes` for missing (blank/NA) values.
MISSING_KEY = ""


@dataclass(frozen=True)
class Code:
    """One class of a code table.

    Attributes
    ----------
    system : str
        Code system id, e.g. ``"sandiao"``.
    code : str
        The code as written in the standard, e.g. ``"0101"`` or ``"05H1"``.
    name : str
        Chinese name, e.g. ``"水田"``.
    level : int
        1 for a level-1 class, 2 for level-2, 3 for level-3.
    parent : str or None
        Code of the parent class; None for level 1.
    note : str or None
        Caveat or change note from the source table.
    """

    system: str
    code: str
    name: str
    level: int
    parent: str | None
    note: str | None


@dataclass(frozen=True, eq=False)
class CodeTable:
    """An immutable code table with hierarchy helpers.

    Attributes
    ----------
    system, title, version, source : str
        Identity and citation of the table.
    kind : str
        ``"land_use"``, ``"land_sea_use"`` or ``"attribute"``.
    caveats : tuple of str
        Open questions about the table's content.
    """

    system: str
    title: str
    version: str
    source: str
    kind: str
    caveats: tuple[str, ...]
    _codes: Mapping[str, Code] = field(repr=False)
    _children: Mapping[str, tuple[str, ...]] = field(repr=False)

    @classmethod
    def build(cls, meta: Mapping[str, Any], system: str, codes: Iterable[Code]) -> CodeTable:
        """Build and check a table: unique codes, known parents, parent level = level - 1."""
        by_code: dict[str, Code] = {}
        for c in codes:
            if c.code in by_code:
                raise PolicyError(f"代码表 {system} 中代码重复: {c.code}", key="code_table_invalid")
            by_code[c.code] = c
        children: dict[str, list[str]] = {}
        for c in by_code.values():
            if c.parent is None:
                if c.level != 1:
                    raise PolicyError(
                        f"代码表 {system} 中 {c.code} 不是一级类却没有上级类",
                        key="code_table_invalid",
                    )
                continue
            parent = by_code.get(c.parent)
            if parent is None or parent.level != c.level - 1:
                raise PolicyError(
                    f"代码表 {system} 中 {c.code} 的上级类 {c.parent} 不存在或级别不符",
                    key="code_table_invalid",
                )
            children.setdefault(c.parent, []).append(c.code)
        return cls(
            system=system,
            title=str(meta["title"]),
            version=str(meta["version"]),
            source=tidy(str(meta["source"])),
            kind=str(meta.get("kind", "land_use")),
            caveats=tuple(tidy(str(x)) for x in meta.get("caveats", ())),
            _codes=MappingProxyType(by_code),
            _children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
        )

    # -- lookup ---------------------------------------------------------------------------
    def get(self, code: object) -> Code:
        """Return the class for ``code``.

        Raises
        ------
        NotFoundError
            If the code is not in the table; the hint suggests close or zero-padded codes.
        """
        key = normalize_code(code)
        if key is not None and key in self._codes:
            return self._codes[key]
        raise NotFoundError(
            f"代码表 {self.system}（{self.title}）中没有代码 {code!s}",
            key="code_not_found",
            field="code",
            hint=self.suggest(key),
            data={"system": self.system, "code": key},
        )

    def suggest(self, code: str | None) -> str:
        """Return a Chinese hint for an unknown code (lost leading zero, close matches)."""
        if code is None:
            return "地类代码为空，请补全"
        if code.isdigit():
            for width in (2, 4, 6):
                padded = code.zfill(width)
                if padded != code and padded in self._codes:
                    return f"可能丢失了前导零（读成了数字），应为 {padded}；请把代码字段按文本读取"
        close = difflib.get_close_matches(code, list(self._codes), n=3, cutoff=0.6)
        if close:
            return "相近的代码: " + "、".join(f"{c} {self._codes[c].name}" for c in close)
        return f"用 `yizhangtu codes list --system {self.system}` 查看全部代码"

    def __contains__(self, code: object) -> bool:
        key = normalize_code(code)
        return key is not None and key in self._codes

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[Code]:
        return iter(self._codes.values())

    def codes(self, level: int | None = None) -> list[Code]:
        """Return the classes in table order, optionally of one level only."""
        return [c for c in self._codes.values() if level is None or c.level == level]

    def valid_codes(self) -> frozenset[str]:
        """Return the set of all codes."""
        return frozenset(self._codes)

    # -- hierarchy ------------------------------------------------------------------------
    def ancestors(self, code: object) -> tuple[str, ...]:
        """Return the ancestor codes of ``code``, nearest first."""
        out: list[str] = []
        parent = self.get(code).parent
        while parent is not None:
            out.append(parent)
            parent = self._codes[parent].parent
        return tuple(out)

    def children(self, code: object) -> tuple[str, ...]:
        """Return the direct children of ``code``."""
        return self._children.get(self.get(code).code, ())

    def descendants(self, code: object) -> tuple[str, ...]:
        """Return all descendants of ``code`` in table order."""
        out: list[str] = []
        stack = list(reversed(self.children(code)))
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(reversed(self._children.get(c, ())))
        return tuple(out)

    def level1(self, code: object) -> str:
        """Return the level-1 class code of ``code`` (the code itself if it is level 1)."""
        c = self.get(code)
        chain = (c.code, *self.ancestors(c.code))
        return chain[-1]

    def level2(self, code: object) -> str | None:
        """Return the level-2 class code of ``code``; None for a level-1 code."""
        c = self.get(code)
        if c.level == 1:
            return None
        chain = (c.code, *self.ancestors(c.code))
        return chain[-2]

    def to_frame(self) -> pd.DataFrame:
        """Return the table as a DataFrame (system, code, name, level, parent, note)."""
        return pd.DataFrame(
            [c.__dict__ for c in self._codes.values()],
            columns=["system", "code", "name", "level", "parent", "note"],
        )


# -- normalisation --------------------------------------------------------------------------
def normalize_code(value: object) -> str | None:
    """Normalise one code value: strip, upper-case letters, ``101.0`` -> ``"101"``; blank -> None.

    Leading zeros lost by a numeric read are *not* restored (``101`` stays ``"101"``): that
    would guess; :meth:`CodeTable.suggest` reports it instead.
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value).strip().upper()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    if text in {"", "NAN", "NONE", "<NA>", "NULL"}:
        return None
    return text


def normalize_codes(codes: pd.Series) -> pd.Series:
    """Normalise a Series of codes (see :func:`normalize_code`); blanks become ``None``."""
    uniques = {v: normalize_code(v) for v in pd.unique(codes.astype(object))}
    return codes.astype(object).map(uniques).astype(object)


def unknown_codes(codes: pd.Series, system: str) -> dict[str, int]:
    """Count the values of ``codes`` that are not codes of ``system``.

    Parameters
    ----------
    codes : pandas.Series
        Code values (strings; numbers are accepted and normalised).
    system : str
        Code system id, see :func:`list_systems`.

    Returns
    -------
    dict
        ``{code: count}`` of unknown values, most frequent first; blank or missing values are
        counted under the key ``""``. Empty when every value is a known code.
    """
    table = load_table(system)
    norm = normalize_codes(codes).fillna(MISSING_KEY)
    bad = norm[~norm.isin(table.valid_codes())]
    counts = bad.value_counts(sort=True)
    return {str(k): int(v) for k, v in counts.items()}


def require_known(codes: pd.Series, system: str, *, field_name: str = "DLBM") -> pd.Series:
    """Return normalised codes, or raise :class:`ValidationError` listing the unknown ones."""
    bad = unknown_codes(codes, system)
    if bad:
        table = load_table(system)
        shown = "、".join(
            f"{'(空值)' if k == MISSING_KEY else k}×{n}" for k, n in list(bad.items())[:20]
        )
        more = f" 等 {len(bad)} 种" if len(bad) > 20 else ""
        first = next((k for k in bad if k != MISSING_KEY), None)
        raise ValidationError(
            f"{len(bad)} 种代码不属于 {system}（{table.title}）: {shown}{more}",
            key="unknown_codes",
            field=field_name,
            hint=table.suggest(first) if first else "地类代码为空的要素须补全代码",
            data={"system": system, "unknown": bad},
        )
    return normalize_codes(codes)


# -- loading --------------------------------------------------------------------------------
def list_systems() -> list[str]:
    """Return the ids of the shipped code systems."""
    return list(systems_registry())


def _meta(system: str) -> dict[str, Any]:
    registry = systems_registry()
    if system not in registry:
        raise NotFoundError(
            f"没有代码体系 {system}",
            key="code_system_not_found",
            hint="可用的代码体系: " + "、".join(registry),
            data={"system": system, "available": list(registry)},
        )
    return registry[system]


def _rows_to_codes(system: str, frame: pd.DataFrame) -> list[Code]:
    out: list[Code] = []
    for row in records(frame):
        if not row["level"].isdigit():  # e.g. the 'attr' row of the 三调 reference CSV
            continue
        out.append(
            Code(
                system=system,
                code=row["code"],
                name=row["name"],
                level=int(row["level"]),
                parent=row["parent_code"] or None,
                note=row["note"] or None,
            )
        )
    return out


def _apply_corrections(system: str, codes: list[Code]) -> list[Code]:
    fixes = corrections(system)
    if fixes.empty:
        return codes
    by_code = {c.code: c for c in codes}
    for fix in records(fixes):
        key, fld = fix["key"], fix["field"]
        current = by_code.get(key)
        if current is None or getattr(current, fld) != fix["old_value"]:
            raise PolicyError(
                f"更正 {system} {key}.{fld} 不再适用（原值已变）",
                key="code_correction_stale",
                hint="检查 corrections.csv 与数据文件是否一致",
            )
        note = f"更正: {fld} 原为 {fix['old_value']}（{fix['reason']}）"
        merged = f"{current.note}；{note}" if current.note else note
        by_code[key] = Code(**{**current.__dict__, fld: fix["new_value"], "note": merged})
    return list(by_code.values())


def _derive_landsea_2020(base: CodeTable, changes: pd.DataFrame) -> list[Code]:
    """Derive the 2020 trial codes from the 2023 table and the change list.

    2020 = 2023 codes, minus codes marked ``not_in_2020``, minus codes whose 2020 meaning or
    name differs (listed by ``code_2020``), plus the 2020 rows of the change list.
    """
    changed = changes[changes["code_2020"] != ""]
    absent = set(changes.loc[changes["kind"] == "not_in_2020", "code_2023"])
    override = set(changed["code_2020"])
    kept = [
        Code("landsea-2020", c.code, c.name, c.level, c.parent, None)
        for c in base
        if c.code not in absent and c.code not in override
    ]
    added: dict[str, Code] = {}
    for code_2020, rows in changed.groupby("code_2020", sort=False):
        first = rows.iloc[0]
        targets = "、".join(rows["code_2023"])
        added[str(code_2020)] = Code(
            "landsea-2020",
            str(code_2020),
            str(first["name_2020"]),
            int(first["level_2020"]),
            str(first["parent_2020"]) or None,
            f"2023: {targets}（{first['kind']}）；{first['note']}",
        )
    return sorted([*kept, *added.values()], key=lambda c: c.code)


@cache
def load_table(system: str) -> CodeTable:
    """Load a code table (cached; the returned table is immutable).

    Parameters
    ----------
    system : str
        ``"gbt21010-2017"``, ``"sandiao"``, ``"sandiao-czcsxm"``, ``"landsea-2023"`` or
        ``"landsea-2020"`` (see :func:`list_systems`).

    Raises
    ------
    NotFoundError
        If the system is unknown.
    """
    meta = _meta(system)
    if "derived_from" in meta:
        base = load_table(str(meta["derived_from"]))
        codes = _derive_landsea_2020(base, read_csv(str(meta["changes"])))
    else:
        codes = []
        for name in meta["files"]:
            codes.extend(_rows_to_codes(system, read_csv(str(name))))
        codes = _apply_corrections(system, codes)
    return CodeTable.build(meta, system, codes)
