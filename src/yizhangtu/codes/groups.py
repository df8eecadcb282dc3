"""Land-use groups as data (建设用地, 城乡建设用地, 农用地, 未利用地, 生态用地).

Groups are defined in YAML (``data/groups/default.yaml``; schema ``data/groups/schema.json``),
per code system, with a basis citation and the judgement calls made. A group may also require
the 三调 城镇村属性码 (CZCSXM). Rule, for one parcel of system S and group G:

1. its code must be a code of S (otherwise :class:`ValidationError` lists the unknown codes);
2. it is *covered* when the code or an ancestor is in G's ``members`` for S and neither the
   code nor an ancestor is in ``exclude``; a code only partly covered (e.g. level-1 ``04`` of
   which only 0401/0402 are 农用地) is *ambiguous* and rejected (or NA on request);
3. when G has a ``czcsxm`` rule for S, the parcel must also have a CZCSXM value in ``in``.
   With ``required: true`` the CZCSXM column is mandatory and a blank value means "outside
   every 城镇村 range" (does not count); with ``required: false`` a missing column or a blank
   value leaves the decision to the code.

The result is the group's ``label`` (e.g. ``城乡建设用地``) or ``other_label``
(``非城乡建设用地``) per row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema
import pandas as pd
import yaml

from yizhangtu.codes._data import data_text, tidy
from yizhangtu.codes.tables import (
    CodeTable,
    list_systems,
    load_table,
    normalize_codes,
    require_known,
)
from yizhangtu.errors import InputError, NotFoundError, PolicyError, ValidationError

__all__ = [
    "LEVEL_GROUPS",
    "CzcsxmRule",
    "Group",
    "GroupSet",
    "SystemRule",
    "classify",
    "list_group_sets",
    "load_groups",
]

#: Pseudo-groups that return a code's level-1 / level-2 class code.
LEVEL_GROUPS = ("level1", "level2")
_CZCSXM_SYSTEM = "sandiao-czcsxm"
_SHIPPED = ("default",)


@dataclass(frozen=True)
class CzcsxmRule:
    """A 城镇村属性码 condition: the value must be in ``values``."""

    values: frozenset[str]
    required: bool
    basis: str

    def describe(self) -> str:
        """Return the rule as one Chinese sentence."""
        vals = "、".join(sorted(self.values))
        if self.required:
            return f"须提供 CZCSXM，且其值属于 {{{vals}}}；空值表示不在城镇村范围内，不计入"
        return f"若提供 CZCSXM，其值须属于 {{{vals}}}；未提供或为空时仅按地类代码判断"


@dataclass(frozen=True)
class SystemRule:
    """Members of one group in one code system."""

    system: str
    members: tuple[str, ...]
    exclude: tuple[str, ...]
    czcsxm: CzcsxmRule | None
    basis: str
    judgement: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """One group: labels, basis, judgement calls and the per-system rules."""

    name: str
    label: str
    other_label: str
    basis: str
    judgement: tuple[str, ...]
    systems: Mapping[str, SystemRule]


def _status_map(table: CodeTable, rule: SystemRule) -> dict[str, str]:
    """Return ``{code: 'in' | 'out' | 'ambiguous'}`` for every code of the table."""
    members, exclude = set(rule.members), set(rule.exclude)
    covered: set[str] = set()
    for c in table:
        chain = (c.code, *table.ancestors(c.code))
        if any(x in members for x in chain) and not any(x in exclude for x in chain):
            covered.add(c.code)
    out: dict[str, str] = {}
    for c in table:
        inside = [c.code in covered, *(d in covered for d in table.descendants(c.code))]
        out[c.code] = "in" if all(inside) else "out" if not any(inside) else "ambiguous"
    return out


class GroupSet:
    """A validated set of group definitions (see module docstring for the rule).

    Attributes
    ----------
    id, title, version, description : str
        Identity of the set, from the YAML.
    source : str
        ``"default"`` (shipped) or the path the set was loaded from.
    """

    def __init__(self, doc: Mapping[str, Any], *, source: str) -> None:
        _validate_schema(doc, source)
        self.id = str(doc["id"])
        self.title = str(doc["title"])
        self.version = str(doc["version"])
        self.description = tidy(str(doc.get("description", "")))
        self.source = source
        groups: dict[str, Group] = {}
        for name, g in doc["groups"].items():
            rules = {
                system: _system_rule(system, r, name, source) for system, r in g["systems"].items()
            }
            groups[name] = Group(
                name=name,
                label=g["label"],
                other_label=g["other_label"],
                basis=tidy(g["basis"]),
                judgement=tuple(g.get("judgement", ())),
                systems=MappingProxyType(rules),
            )
        self._groups: Mapping[str, Group] = MappingProxyType(groups)
        self._status: dict[tuple[str, str], dict[str, str]] = {}

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, source: str = "<mapping>") -> GroupSet:
        """Build a group set from an already parsed YAML/JSON document."""
        return cls(doc, source=source)

    def names(self) -> list[str]:
        """Return the group names defined in this set (without ``level1``/``level2``)."""
        return list(self._groups)

    def group(self, name: str) -> Group:
        """Return one group definition."""
        if name not in self._groups:
            raise NotFoundError(
                f"分组集 {self.id} 中没有分组 {name}",
                key="group_not_found",
                hint="可用分组: " + "、".join([*self._groups, *LEVEL_GROUPS]),
                data={"group": name, "available": [*self._groups, *LEVEL_GROUPS]},
            )
        return self._groups[name]

    def rule(self, name: str, system: str) -> SystemRule:
        """Return the rule of group ``name`` for ``system``."""
        g = self.group(name)
        if system not in g.systems:
            raise PolicyError(
                f"分组 {name}（{g.label}）没有为代码体系 {system} 定义成员",
                key="group_system_missing",
                hint="已定义的代码体系: "
                + "、".join(g.systems)
                + "；2020 试行版代码请先用 map_codes 转为 landsea-2023",
                data={"group": name, "system": system, "defined": list(g.systems)},
            )
        return g.systems[system]

    def members(self, name: str, system: str) -> list[str]:
        """Return every code of ``system`` that belongs to group ``name`` (table order)."""
        status = self._status_for(name, system)
        return [c for c, s in status.items() if s == "in"]

    def describe(self, name: str) -> dict[str, Any]:
        """Describe a group: labels, basis, judgement calls, members and CZCSXM rule per system."""
        if name in LEVEL_GROUPS:
            level = name[-1]
            return {
                "name": name,
                "label": f"{level}级类",
                "other_label": None,
                "basis": f"代码表层级：返回每个代码所属的{level}级类代码（一级类代码的二级类为空）",
                "judgement": [],
                "systems": {s: {"members": None, "czcsxm": None} for s in list_systems()},
            }
        g = self.group(name)
        systems: dict[str, Any] = {}
        for system, r in g.systems.items():
            systems[system] = {
                "members": list(r.members),
                "exclude": list(r.exclude),
                "codes": self.members(name, system),
                "basis": tidy(r.basis),
                "judgement": list(r.judgement),
                "czcsxm": None
                if r.czcsxm is None
                else {
                    "in": sorted(r.czcsxm.values),
                    "required": r.czcsxm.required,
                    "rule": r.czcsxm.describe(),
                    "basis": tidy(r.czcsxm.basis),
                },
            }
        return {
            "name": g.name,
            "label": g.label,
            "other_label": g.other_label,
            "basis": g.basis,
            "judgement": list(g.judgement),
            "systems": systems,
        }

    def classify(
        self,
        codes: pd.Series,
        *,
        system: str,
        group: str,
        czcsxm: pd.Series | None = None,
        ambiguous: Literal["raise", "na"] = "raise",
    ) -> pd.Series:
        """Return the group label of every row.

        Parameters
        ----------
        codes : pandas.Series
            Land-use codes (e.g. DLBM).
        system : str
            Code system of ``codes``.
        group : str
            A group name (see :meth:`names`), or ``"level1"`` / ``"level2"`` for the code's
            level-1 / level-2 class code (``pd.NA`` as level 2 of a level-1 code).
        czcsxm : pandas.Series, optional
            城镇村属性码 aligned with ``codes``; required by groups whose rule says so.
        ambiguous : {"raise", "na"}
            What to do with codes only partly inside the group.

        Returns
        -------
        pandas.Series
            Labels (e.g. ``"城乡建设用地"`` / ``"非城乡建设用地"``), same index as ``codes``,
            named after the group.

        Raises
        ------
        ValidationError
            Unknown codes or CZCSXM values, ambiguous codes.
        InputError
            CZCSXM missing where required, or not aligned with ``codes``.
        """
        norm = require_known(codes, system)
        if group in LEVEL_GROUPS:
            table = load_table(system)
            fn = table.level1 if group == "level1" else table.level2
            lookup = {c: fn(c) for c in pd.unique(norm)}
            level_values = [pd.NA if lookup[c] is None else lookup[c] for c in norm]
            return pd.Series(level_values, index=codes.index, dtype=object, name=group)

        g = self.group(group)
        rule = self.rule(group, system)
        status = norm.map(self._status_for(group, system))
        amb = status.eq("ambiguous")
        if amb.any() and ambiguous == "raise":
            counts = norm[amb].value_counts()
            shown = "、".join(f"{k}×{v}" for k, v in counts.items())
            raise ValidationError(
                f"{len(counts)} 种代码只有部分下级类属于{g.label}，无法判定: {shown}",
                key="ambiguous_codes",
                field="DLBM",
                hint=f"请使用更细的地类代码，或先按 level1 汇总；也可传 ambiguous='na'。"
                f"{g.label}在 {system} 中的成员见 `yizhangtu codes groups`",
                data={
                    "group": group,
                    "system": system,
                    "ambiguous": {str(k): int(v) for k, v in counts.items()},
                },
            )
        inside = status.eq("in").to_numpy()
        if rule.czcsxm is not None:
            inside = inside & self._czcsxm_ok(rule.czcsxm, czcsxm, codes, group, system).to_numpy()
        values: list[object] = [
            pd.NA if a else g.label if x else g.other_label
            for a, x in zip(amb.tolist(), inside.tolist(), strict=True)
        ]
        return pd.Series(values, index=codes.index, dtype=object, name=group)

    # -- internals ------------------------------------------------------------------------
    def _status_for(self, name: str, system: str) -> dict[str, str]:
        key = (name, system)
        if key not in self._status:
            self._status[key] = _status_map(load_table(system), self.rule(name, system))
        return self._status[key]

    @staticmethod
    def _czcsxm_ok(
        rule: CzcsxmRule,
        czcsxm: pd.Series | None,
        codes: pd.Series,
        group: str,
        system: str,
    ) -> pd.Series:
        if czcsxm is None:
            if rule.required:
                raise InputError(
                    f"分组 {group} 在 {system} 中须同时依据城镇村属性码（CZCSXM）判定",
                    key="czcsxm_required",
                    field="CZCSXM",
                    hint="传入与地类代码对应的 CZCSXM 列（三调地类图斑的城镇村属性码）",
                    data={"group": group, "system": system},
                )
            return pd.Series(True, index=codes.index)
        if len(czcsxm) != len(codes) or not czcsxm.index.equals(codes.index):
            raise InputError(
                "CZCSXM 与地类代码的行数或索引不一致",
                key="czcsxm_misaligned",
                field="CZCSXM",
                hint="两列应取自同一张图斑表",
            )
        values = normalize_codes(czcsxm)
        known = load_table(_CZCSXM_SYSTEM).valid_codes()
        bad = values[values.notna() & ~values.isin(known)].value_counts()
        if not bad.empty:
            shown = "、".join(f"{k}×{v}" for k, v in bad.items())
            raise ValidationError(
                f"{len(bad)} 种城镇村属性码无法识别: {shown}",
                key="unknown_czcsxm",
                field="CZCSXM",
                hint="有效值: " + "、".join(sorted(known)) + "；不在城镇村范围内应为空",
                data={"unknown": {str(k): int(v) for k, v in bad.items()}},
            )
        blank = values.isna()
        ok = values.isin(rule.values)
        return ok | (blank & (not rule.required))


def _validate_schema(doc: Mapping[str, Any], source: str) -> None:
    schema = json.loads(data_text("groups/schema.json"))
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(根)"
        raise PolicyError(
            f"分组文件不符合格式要求（{len(errors)} 处），首个在 {where}: {first.message}",
            key="groups_invalid",
            file=source,
            hint='代码须加引号（如 "0101"），每个体系须有 members 与 basis',
            data={"errors": [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]},
        )


def _system_rule(system: str, raw: Mapping[str, Any], group: str, source: str) -> SystemRule:
    if system not in list_systems():
        raise PolicyError(
            f"分组 {group} 引用了未知代码体系 {system}",
            key="groups_invalid",
            file=source,
            hint="可用的代码体系: " + "、".join(list_systems()),
        )
    table = load_table(system)
    listed = [*raw["members"], *raw.get("exclude", ())]
    bad = [c for c in listed if c not in table.valid_codes()]
    if bad:
        raise PolicyError(
            f"分组 {group} 在 {system} 中列出了不存在的代码: {'、'.join(bad)}",
            key="groups_invalid",
            file=source,
            hint=table.suggest(bad[0]),
        )
    czcsxm = None
    if "czcsxm" in raw:
        c = raw["czcsxm"]
        known = load_table(_CZCSXM_SYSTEM).valid_codes()
        bad = [v for v in c["in"] if v not in known]
        if bad:
            raise PolicyError(
                f"分组 {group} 在 {system} 中列出了未知的城镇村属性码: {'、'.join(bad)}",
                key="groups_invalid",
                file=source,
                hint="有效值: " + "、".join(sorted(known)),
            )
        czcsxm = CzcsxmRule(
            values=frozenset(c["in"]), required=bool(c["required"]), basis=c.get("basis", "")
        )
    return SystemRule(
        system=system,
        members=tuple(raw["members"]),
        exclude=tuple(raw.get("exclude", ())),
        czcsxm=czcsxm,
        basis=raw["basis"],
        judgement=tuple(raw.get("judgement", ())),
    )


def list_group_sets() -> list[str]:
    """Return the names of the shipped group sets."""
    return list(_SHIPPED)


@cache
def _load_shipped(name: str) -> GroupSet:
    return GroupSet(yaml.safe_load(data_text(f"groups/{name}.yaml")), source=name)


@lru_cache(maxsize=32)
def _load_path(path: str, mtime_ns: int, size: int) -> GroupSet:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(
            f"分组文件不是有效的 YAML: {exc}", key="groups_invalid", file=path
        ) from exc
    if not isinstance(doc, Mapping):
        raise PolicyError("分组文件内容应为映射（mapping）", key="groups_invalid", file=path)
    return GroupSet(doc, source=path)


def load_groups(path_or_name: str | os.PathLike[str] = "default") -> GroupSet:
    """Load a group set: a shipped one by name, or a YAML file by path (cached).

    Parameters
    ----------
    path_or_name : str or path-like
        ``"default"`` or the path of a YAML file following ``data/groups/schema.json``.
        A file is re-read when its modification time or size changes.

    Raises
    ------
    NotFoundError
        Neither a shipped name nor an existing file.
    PolicyError
        The file is not valid YAML, breaks the schema or lists unknown codes.
    """
    text = os.fspath(path_or_name)
    if text in _SHIPPED:
        return _load_shipped(text)
    p = Path(text)
    if p.is_file():
        st = p.stat()
        return _load_path(str(p.resolve()), st.st_mtime_ns, st.st_size)
    raise NotFoundError(
        f"没有分组集或文件: {text}",
        key="groups_not_found",
        file=text,
        hint="内置分组集: " + "、".join(_SHIPPED) + "；或给出 YAML 文件路径",
    )


def classify(
    codes: pd.Series,
    *,
    system: str,
    group: str,
    czcsxm: pd.Series | None = None,
    ambiguous: Literal["raise", "na"] = "raise",
) -> pd.Series:
    """Classify codes with the default group set; see :meth:`GroupSet.classify`."""
    return load_groups("default").classify(
        codes, system=system, group=group, czcsxm=czcsxm, ambiguous=ambiguous
    )
