"""三调 → 用地用海 crosswalk (基数转换对照), in 2020 trial codes and converted to 2023 codes.

The shipped crosswalk (``data/sandiao_to_landsea_crosswalk_2020trial_codes.csv``, from
vanadis91/bxgis) uses 2020 trial codes. :func:`crosswalk` with ``target="landsea-2023"``
converts every target with :func:`~yizhangtu.codes.changes.convert_landsea_2020_to_2023`,
so the 2023 crosswalk is computed from the change data, never stored.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from yizhangtu.codes._data import corrections, read_csv, records
from yizhangtu.codes.changes import change_targets
from yizhangtu.codes.tables import load_table, normalize_codes, require_known
from yizhangtu.errors import NotFoundError, PolicyError, ValidationError

__all__ = ["CROSSWALK_PAIRS", "crosswalk", "map_codes"]

_RAW_FILE = "sandiao_to_landsea_crosswalk_2020trial_codes.csv"
_RAW_TABLE = "crosswalk-sandiao-landsea-2020"

#: Supported (source, target) pairs.
CROSSWALK_PAIRS: tuple[tuple[str, str], ...] = (
    ("sandiao", "landsea-2023"),
    ("sandiao", "landsea-2020"),
    ("landsea-2020", "landsea-2023"),
)

COLUMNS = [
    "source_code",
    "target_code",
    "relation",
    "note",
    "source_name",
    "target_name",
    "is_default",
]


def _resolve_target(raw: str, name: str) -> tuple[str, bool]:
    """Resolve one target of the shipped crosswalk to a 2020 trial code.

    bxgis marks village-internal targets with a ``v`` suffix (``"1207v#村庄内部道路用地"``).
    In 2020 trial codes that class is the one carrying the given name (060102 村庄内部道路用地),
    so a suffixed code is resolved by its name; without a name match the suffix is dropped.
    Returns ``(code, village)``.
    """
    raw = raw.strip()
    if not raw.endswith("v"):
        return raw, False
    by_name = {c.name: c.code for c in load_table("landsea-2020")}
    return by_name.get(name.strip(), raw[:-1]), True


def _raw_rows() -> pd.DataFrame:
    """Long form of the shipped crosswalk, 2020 trial codes, corrections applied."""
    frame = read_csv(_RAW_FILE)
    frame = frame[~frame["sandiao_code"].str.startswith("#")].reset_index(drop=True)
    fixes = corrections(_RAW_TABLE)
    fixed: dict[str, str] = {}
    for fix in records(fixes):
        key, fld = fix["key"], fix["field"]
        hit = frame["sandiao_code"] == key
        if int(hit.sum()) != 1 or str(frame.loc[hit, fld].iloc[0]) != fix["old_value"]:
            raise PolicyError(
                f"转换表更正 {key}.{fld} 不再适用（原值已变）",
                key="code_correction_stale",
                hint="检查 corrections.csv 与转换表是否一致",
            )
        frame.loc[hit, fld] = fix["new_value"]
        fixed[key] = f"更正: 目标原为 {fix['old_value']}（{fix['reason']}）"

    rows: list[dict[str, object]] = []
    for rec in records(frame):
        src, default = rec["sandiao_code"], rec["landsea_code"]
        targets = [(default, rec["landsea_name"])]
        if rec["candidate_targets"]:
            for item in rec["candidate_targets"].split(","):
                code, _, name = item.partition("#")
                targets.append((code, name))
        seen: set[str] = set()
        for raw, name in targets:
            raw = raw.strip()
            if not raw or raw in seen:
                continue
            seen.add(raw)
            code, village = _resolve_target(raw, name)
            notes = [f"源表: {rec['conversion_type']}"]
            if village:
                notes.append(f"村庄内（源表 {raw} {name}）")
            if src in fixed and raw == default:
                notes.append(fixed[src])
            rows.append(
                {
                    "source_code": src,
                    "target_code_2020": code,
                    "is_default": raw == default,
                    "village": village,
                    "source_target_name": name.strip(),
                    "note": "；".join(notes),
                }
            )
    return pd.DataFrame(rows)


def _finish(frame: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Merge duplicate targets, add names and the relation column."""

    def join_unique(values: pd.Series, sep: str) -> str:
        parts = (p for v in values if isinstance(v, str) and v for p in v.split(sep))
        return sep.join(dict.fromkeys(parts))

    special = {"source_code", "target_code", "is_default", "village", "note"}
    spec: dict[str, tuple[str, object]] = {
        "is_default": ("is_default", "any"),
        "note": ("note", lambda s: join_unique(s, "；")),
    }
    if "village" in frame.columns:
        spec["village"] = ("village", "any")
    for col in frame.columns:
        if col not in special:
            spec[col] = (col, lambda s: join_unique(s, ","))
    agg = frame.groupby(["source_code", "target_code"], sort=False).agg(**spec).reset_index()
    n_targets = agg.groupby("source_code", sort=False)["target_code"].transform("size")
    agg["relation"] = n_targets.map(lambda n: "1:1" if n == 1 else "1:n")
    src, tgt = load_table(source), load_table(target)
    agg["source_name"] = agg["source_code"].map(lambda c: src.get(c).name)
    agg["target_name"] = agg["target_code"].map(lambda c: tgt.get(c).name)
    extra = [c for c in agg.columns if c not in COLUMNS]
    return agg[COLUMNS + extra]


def _check_targets(frame: pd.DataFrame, column: str, system: str) -> None:
    table = load_table(system)
    bad = sorted(set(frame[column]) - table.valid_codes())
    if bad:
        raise PolicyError(
            f"转换表的目标代码不属于 {system}: {'、'.join(bad)}",
            key="crosswalk_invalid",
            hint="在 corrections.csv 中更正转换表",
        )


@cache
def _crosswalk_cached(source: str, target: str) -> pd.DataFrame:
    if (source, target) == ("landsea-2020", "landsea-2023"):
        rows: list[dict[str, object]] = []
        for c in load_table("landsea-2020"):
            changes = change_targets(c.code)
            if not changes:
                rows.append(
                    {
                        "source_code": c.code,
                        "target_code": c.code,
                        "is_default": True,
                        "note": "未变化",
                    }
                )
            for code_2023, is_default, kind, note in changes:
                rows.append(
                    {
                        "source_code": c.code,
                        "target_code": code_2023,
                        "is_default": is_default,
                        "note": f"{kind}: {note}",
                    }
                )
        frame = pd.DataFrame(rows)
        _check_targets(frame, "target_code", target)
        return _finish(frame, source, target)

    raw = _raw_rows()
    _check_targets(raw, "target_code_2020", "landsea-2020")
    if target == "landsea-2020":
        frame = raw.rename(columns={"target_code_2020": "target_code"})
        return _finish(frame, source, target)

    rows = []
    for item in raw.to_dict("records"):
        rec: dict[str, object] = {str(k): v for k, v in item.items()}
        code_2020 = str(rec["target_code_2020"])
        changes = change_targets(code_2020)
        if not changes:
            rows.append({**rec, "target_code": code_2020})
            continue
        for code_2023, is_default, kind, _note in changes:
            rows.append(
                {
                    **rec,
                    "target_code": code_2023,
                    "is_default": bool(rec["is_default"]) and is_default,
                    "note": f"{rec['note']}；2020 {code_2020} → 2023 {code_2023}（{kind}）",
                }
            )
    frame = pd.DataFrame(rows)
    _check_targets(frame, "target_code", target)
    return _finish(frame, source, target)


def crosswalk(source: str = "sandiao", target: str = "landsea-2023") -> pd.DataFrame:
    """Return a code crosswalk as a long table (one row per source→target pair).

    Parameters
    ----------
    source, target : str
        One of :data:`CROSSWALK_PAIRS`: ``sandiao → landsea-2023`` (converted from the 2020
        trial codes by the change data), ``sandiao → landsea-2020`` (as shipped) or
        ``landsea-2020 → landsea-2023`` (the change list over the whole 2020 table).

    Returns
    -------
    pandas.DataFrame
        Columns ``source_code, target_code, relation ('1:1'|'1:n'), note, source_name,
        target_name, is_default``; the 三调 crosswalks add ``target_code_2020`` (the trial
        code the row came from) and ``village`` (bxgis' ``v`` suffix: village-internal).
        ``relation`` counts distinct targets per source code; ``is_default`` marks the
        source table's preferred target; ``note`` keeps the source's own wording.
    """
    if (source, target) not in CROSSWALK_PAIRS:
        raise NotFoundError(
            f"没有 {source} → {target} 的转换表",
            key="crosswalk_not_found",
            hint="可用: " + "、".join(f"{s} → {t}" for s, t in CROSSWALK_PAIRS),
        )
    return _crosswalk_cached(source, target).copy()


def map_codes(codes: pd.Series, source: str, target: str) -> pd.DataFrame:
    """Map each input code to its target code(s).

    Parameters
    ----------
    codes : pandas.Series
        Source codes (e.g. a 三调 DLBM column).
    source, target : str
        A pair from :data:`CROSSWALK_PAIRS`.

    Returns
    -------
    pandas.DataFrame
        One row per (input row, target), in input order: ``row`` (the input index label),
        ``source_code, target_code, target_name, relation, is_default, note``. A ``1:n`` code
        yields several rows; filter ``is_default`` to keep the preferred target.

    Raises
    ------
    ValidationError
        If some codes are not codes of ``source`` (``data['unknown']`` lists them with counts)
        or have no crosswalk entry.
    """
    table = crosswalk(source, target)
    norm = require_known(codes, source)
    mapped = set(table["source_code"])
    missing = sorted(set(norm) - mapped)
    if missing:
        raise ValidationError(
            f"{len(missing)} 种代码没有 {source} → {target} 的对应关系: {'、'.join(missing)}",
            key="unmapped_codes",
            field="DLBM",
            hint="这些代码在转换表中没有条目，请人工确定目标地类",
            data={"unmapped": missing},
        )
    left = pd.DataFrame({"row": codes.index, "source_code": normalize_codes(codes).to_numpy()})
    left["_order"] = range(len(left))
    keep = ["source_code", "target_code", "target_name", "relation", "is_default", "note"]
    out = left.merge(table[keep], on="source_code", how="left", sort=False)
    out = out.sort_values("_order", kind="stable").drop(columns="_order")
    return out.reset_index(drop=True)
