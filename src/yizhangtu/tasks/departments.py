"""Responsible departments (责任单位) as data, with aliases and close-match hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yizhangtu.errors import ValidationError
from yizhangtu.tasks._data import load_packaged_yaml

__all__ = ["Department", "DepartmentRegistry", "load_departments", "registry_from_records"]

_PACKAGED = {"hunan": "data/departments_hunan.yaml"}


@dataclass(frozen=True)
class Department:
    """One responsible body."""

    name: str
    full_name: str = ""
    kind: str = ""
    aliases: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class DepartmentRegistry:
    """The bodies a task may name; resolves aliases to canonical names."""

    departments: tuple[Department, ...]
    source: str = ""

    def names(self) -> list[str]:
        """Canonical names."""
        return [d.name for d in self.departments]

    def _lookup(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for d in self.departments:
            out[d.name] = d.name
            if d.full_name:
                out[d.full_name] = d.name
            for a in d.aliases:
                out[a] = d.name
        return out

    def get(self, name: str) -> Department:
        """Return the department called (or aliased) ``name``."""
        canon = self.resolve(name)
        return next(d for d in self.departments if d.name == canon)

    def resolve(self, name: str, *, task_id: str | None = None, field: str | None = None) -> str:
        """Canonical name of ``name`` (an alias or full name is accepted).

        Raises
        ------
        ValidationError
            For an unknown department, with the closest known names as hint.
        """
        text = str(name).strip()
        table = self._lookup()
        if text in table:
            return table[text]
        close = difflib.get_close_matches(text, list(table), n=3, cutoff=0.5)
        where = f"任务 {task_id} 的" if task_id else ""
        raise ValidationError(
            f"{where}责任单位「{text}」不在单位名录中",
            key="unknown_department",
            feature=task_id,
            field=field,
            hint=("是否为: " + "、".join(close))
            if close
            else "请使用单位名录中的名称, 或先在名录中补充该单位",
            data={"department": text, "suggestions": close},
        )


def registry_from_records(
    records: Iterable[Mapping[str, Any]], source: str = ""
) -> DepartmentRegistry:
    """Build a registry from mappings with ``name`` (and optional ``full_name``, ``aliases``)."""
    deps = []
    seen: set[str] = set()
    for r in records:
        name = str(r.get("name") or "").strip()
        if not name:
            raise ValidationError("单位名录中有空名称", key="department_empty")
        if name in seen:
            raise ValidationError(f"单位名录中名称重复: {name}", key="department_duplicate")
        seen.add(name)
        deps.append(
            Department(
                name=name,
                full_name=str(r.get("full_name") or ""),
                kind=str(r.get("kind") or ""),
                aliases=tuple(str(a) for a in (r.get("aliases") or ())),
                note=str(r.get("note") or ""),
            )
        )
    return DepartmentRegistry(departments=tuple(deps), source=source)


def load_departments(name: str = "hunan") -> DepartmentRegistry:
    """Load a packaged department list (``hunan``: bodies named in seed 003)."""
    if name not in _PACKAGED:
        raise ValidationError(
            f"没有名为 {name} 的单位名录",
            key="departments_not_found",
            hint="可选: " + ", ".join(_PACKAGED),
        )
    d = load_packaged_yaml(_PACKAGED[name])
    return registry_from_records(d["departments"], source=str(d.get("source") or ""))
