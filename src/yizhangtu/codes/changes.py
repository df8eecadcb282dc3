"""Code changes between the 2020 trial and the 2023 用地用海分类指南, as data.

The change list ``data/landsea_2020_to_2023_changes.csv`` holds one row per (2020 code, 2023
code) pair that differs, plus ``not_in_2020`` rows for 2023 codes that had no same-meaning
2020 code. :func:`convert_landsea_2020_to_2023` applies it; codes not listed are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import pandas as pd

from yizhangtu.codes._data import read_csv, records, systems_registry
from yizhangtu.codes.tables import load_table

__all__ = [
    "ChangeTarget",
    "change_targets",
    "convert_landsea_2020_to_2023",
    "landsea_changes",
]

_KINDS = {"renamed", "renumbered", "merged", "split", "not_in_2020"}


def landsea_changes() -> pd.DataFrame:
    """Return the 2020→2023 change list.

    Returns
    -------
    pandas.DataFrame
        Columns ``code_2020, name_2020, level_2020, parent_2020, code_2023, is_default, kind,
        verified, note, source``. ``kind`` is one of ``renamed, renumbered, merged, split,
        not_in_2020``; ``verified`` is False where the row rests on recollection, not on the
        reference CSVs. ``code_2020`` is empty for ``not_in_2020`` rows.
    """
    frame = read_csv(str(systems_registry()["landsea-2020"]["changes"]))
    frame["verified"] = frame["verified"].eq("true")
    frame["is_default"] = frame["is_default"].eq("true")
    return frame


#: One 2023 target of a 2020 code: (code_2023, is_default, kind, note).
ChangeTarget = tuple[str, bool, str, str]


@lru_cache(maxsize=1)
def _change_map() -> Mapping[str, tuple[ChangeTarget, ...]]:
    frame = landsea_changes()
    unknown_kinds = set(frame["kind"]) - _KINDS
    if unknown_kinds:  # pragma: no cover - guarded by tests on the shipped file
        raise ValueError(f"unknown change kinds: {sorted(unknown_kinds)}")
    out: dict[str, list[ChangeTarget]] = {}
    for row in records(frame[frame["code_2020"] != ""]):
        out.setdefault(row["code_2020"], []).append(
            (row["code_2023"], row["is_default"] == "True", row["kind"], row["note"])
        )
    ordered = {k: tuple(sorted(v, key=lambda t: (not t[1], t[0]))) for k, v in out.items()}
    return MappingProxyType(ordered)


def change_targets(code_2020: str) -> tuple[ChangeTarget, ...]:
    """Return the change rows for one 2020 code (default first); empty if unchanged."""
    return _change_map().get(code_2020, ())


def convert_landsea_2020_to_2023(code: object) -> tuple[str, ...]:
    """Convert one 2020 trial 用地用海 code to its 2023 code(s).

    Parameters
    ----------
    code : str
        A code of the 2020 trial table, e.g. ``"1313"``.

    Returns
    -------
    tuple of str
        The 2023 code(s), the default first: one code for a renamed, renumbered or merged
        class (``"1313"`` -> ``("1312",)``), several for a split one; the code itself when it
        did not change.

    Raises
    ------
    NotFoundError
        If ``code`` is not a 2020 trial code.
    """
    c = load_table("landsea-2020").get(code)
    rows = change_targets(c.code)
    if not rows:
        return (c.code,)
    return tuple(t[0] for t in rows)
