"""Packaged data files of the tasks package (YAML), read once and cached."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["load_packaged_yaml", "packaged_text"]


@cache
def _read(package: str, name: str) -> str:
    return (resources.files(package) / name).read_text(encoding="utf-8")


def packaged_text(name: str, package: str = "yizhangtu.tasks") -> str:
    """Return the text of a packaged file, e.g. ``"templates/dispatch.html.j2"``."""
    return _read(package, name)


def load_packaged_yaml(name: str, package: str = "yizhangtu.tasks") -> Any:
    """Parse a packaged YAML file, e.g. ``"data/supervision.yaml"`` (a fresh object each call)."""
    return yaml.safe_load(_read(package, name))
