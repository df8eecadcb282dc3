"""Access to the packaged data files of :mod:`yizhangtu.codes` (CSV and YAML).

The only file I/O in this package: reading files shipped inside ``yizhangtu/codes/data``.
"""

from __future__ import annotations

import io
import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from yizhangtu.errors import PolicyError

__all__ = ["corrections", "data_text", "read_csv", "records", "systems_registry", "tidy"]

_PACKAGE = "yizhangtu.codes"


_CJK_GAP = re.compile(
    r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f])|(?<=[，。；：、（“])\s+|\s+(?=[，。；：、）”])"
)


def tidy(text: str) -> str:
    """Collapse whitespace from folded YAML; drop the spaces a fold leaves inside Chinese text."""
    return _CJK_GAP.sub("", " ".join(str(text).split()))


def data_text(name: str) -> str:
    """Return the text of one packaged data file, e.g. ``"systems.yaml"``.

    Parameters
    ----------
    name : str
        Path relative to ``yizhangtu/codes/data`` (``/`` separated).
    """
    node = resources.files(_PACKAGE).joinpath("data")
    for part in name.split("/"):
        node = node.joinpath(part)
    if not node.is_file():
        raise PolicyError(
            f"缺少内置数据文件: {name}",
            key="code_data_missing",
            file=name,
            hint="安装包不完整，请重新安装 yizhangtu",
        )
    return node.read_text(encoding="utf-8")


@cache
def _read_csv_cached(name: str) -> pd.DataFrame:
    frame = pd.read_csv(
        io.StringIO(data_text(name)), dtype=str, keep_default_na=False, na_filter=False
    )
    return frame.apply(lambda col: col.str.strip())


def records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Return the rows of a string frame as plain ``{column: str}`` dicts."""
    return [{str(k): str(v) for k, v in row.items()} for row in frame.to_dict("records")]


def read_csv(name: str) -> pd.DataFrame:
    """Read a packaged CSV as strings (no NA conversion, values stripped); returns a copy."""
    return _read_csv_cached(name).copy()


@lru_cache(maxsize=1)
def systems_registry() -> dict[str, dict[str, Any]]:
    """Return the code-system registry from ``systems.yaml`` (id -> metadata)."""
    doc = yaml.safe_load(data_text("systems.yaml"))
    return dict(doc["systems"])


def corrections(table: str) -> pd.DataFrame:
    """Return the documented corrections that apply to one packaged table."""
    frame = read_csv("corrections.csv")
    return frame[frame["table"] == table].reset_index(drop=True)
