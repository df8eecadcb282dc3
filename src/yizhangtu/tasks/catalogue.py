"""Packaged task and target sets transcribed from the seeds.

``hunan_2021``
    the 22 work points of seed 003 with departments and quantitative targets.
``fangshan``
    the targets of seed 000 (urbanisation 72 % by 2017 and 75 % by 2020, ≥1500 fund
    institutions and 45 % forest cover by 2020), with the 2014 baseline.
``chaoyang_2022``
    reported figures of seed 002 (project library 2 levels / 8 categories / 399 projects,
    rectification 13 found / 9 closed, …).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from yizhangtu.errors import NotFoundError
from yizhangtu.tasks._data import load_packaged_yaml
from yizhangtu.tasks.departments import DepartmentRegistry, load_departments
from yizhangtu.tasks.model import Target, TaskLedger, ledger_from_mapping, target_from_mapping

__all__ = [
    "SeedTargets",
    "chaoyang_facts",
    "load_seed_targets",
    "load_seed_tasks",
    "seed_task_mapping",
]

_TASK_SETS = {"hunan_2021": ("data/hunan_2021_work_points.yaml", "hunan")}
_TARGET_SETS = {"fangshan": "data/fangshan_targets.yaml"}


def seed_task_mapping(name: str = "hunan_2021") -> dict[str, Any]:
    """Return the raw packaged mapping of a seed task set."""
    if name not in _TASK_SETS:
        raise NotFoundError(
            f"没有名为 {name} 的任务集",
            key="task_set_not_found",
            hint="可选: " + ", ".join(_TASK_SETS),
        )
    return load_packaged_yaml(_TASK_SETS[name][0])


def load_seed_tasks(
    name: str = "hunan_2021", registry: DepartmentRegistry | None = None
) -> TaskLedger:
    """Load a packaged seed task set as a validated ledger (no progress reports)."""
    d = seed_task_mapping(name)
    reg = registry or load_departments(_TASK_SETS[name][1])
    led = ledger_from_mapping({k: v for k, v in d.items() if k != "departments"}, reg)
    return replace(led, title=str(d.get("title") or ""), source=str(d.get("source") or ""))


@dataclass(frozen=True)
class SeedTargets:
    """A packaged target set with its baseline."""

    title: str
    source: str
    jurisdiction: str
    targets: tuple[Target, ...]
    baseline: dict[str, Any]


def load_seed_targets(name: str = "fangshan") -> SeedTargets:
    """Load a packaged target set (``fangshan``: seed 000)."""
    if name not in _TARGET_SETS:
        raise NotFoundError(
            f"没有名为 {name} 的目标集",
            key="target_set_not_found",
            hint="可选: " + ", ".join(_TARGET_SETS),
        )
    d = load_packaged_yaml(_TARGET_SETS[name])
    return SeedTargets(
        title=str(d["title"]),
        source=str(d["source"]),
        jurisdiction=str(d.get("jurisdiction") or ""),
        targets=tuple(target_from_mapping(t) for t in d["targets"]),
        baseline=dict(d.get("baseline") or {}),
    )


def chaoyang_facts() -> dict[str, Any]:
    """Return the reported figures of seed 002, each with its clause."""
    return dict(load_packaged_yaml("data/chaoyang_2022_facts.yaml")["facts"])
