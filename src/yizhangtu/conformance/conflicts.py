"""Multi-plan conflict analysis (多规合一冲突分析) with a compatibility matrix kept as data.

A matrix (``data/matrices/*.yaml`` or a user file) names two sides (e.g. 三调现状 and 用地用海规划),
how each side's codes fall into classes, the conflict types, and for every pair of classes either
a type or ``"-"`` (compatible). :func:`find_conflicts` overlays the two layers, classifies both
sides of each piece, looks the pair up and returns the conflict patches with area, type and the
attributes of both sides; slivers (pack tolerance, 004 (十一)) are counted apart.
:func:`summarise_by_unit` totals the patches by statistical unit.

A side may declare an ``uncovered`` class: land that the other side covers and this side does not
(e.g. 开发边界外). Without it, land covered by one side only is not analysed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import yaml

from yizhangtu.accounting import overlay, tabulate
from yizhangtu.codes import load_groups, load_table, normalize_codes
from yizhangtu.conformance._common import data_names, explode_patches, read_data_yaml, require_crs
from yizhangtu.conformance.tolerance import Tolerances, split_slivers
from yizhangtu.errors import (
    FileFormatError,
    InputError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from yizhangtu.geo.area import convert_area

__all__ = [
    "COMPATIBLE",
    "ClassRule",
    "CompatibilityMatrix",
    "ConflictResult",
    "ConflictType",
    "MatrixSide",
    "find_conflicts",
    "list_matrices",
    "load_matrix",
    "matrix_from_mapping",
    "summarise_by_unit",
]

#: Cell value meaning "compatible" (no conflict).
COMPATIBLE = "-"
_SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class ClassRule:
    """How codes or values fall into one class of a matrix side."""

    id: str
    label: str
    codes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    default: bool = False


@dataclass(frozen=True)
class MatrixSide:
    """One side of a matrix: name, code system (None for plain values), field, classes."""

    name: str
    system: str | None
    field: str | None
    classes: tuple[ClassRule, ...]
    uncovered: ClassRule | None = None

    @property
    def class_ids(self) -> tuple[str, ...]:
        """Ids of every class, the uncovered one last."""
        return tuple(c.id for c in self.classes) + ((self.uncovered.id,) if self.uncovered else ())

    def label(self, class_id: str) -> str:
        """Chinese label of a class."""
        for c in (*self.classes, *((self.uncovered,) if self.uncovered else ())):
            if c.id == class_id:
                return c.label
        return class_id

    def classify(self, values: pd.Series, *, what: str = "") -> pd.Series:
        """Class id of each value; ValidationError listing the values no class takes.

        Codes are normalised (``codes.normalize_codes``); a code matches a ``codes`` rule when it
        or one of its ancestors in the side's code table is listed, and a ``groups`` rule when it
        belongs to the group in the default group set. The first matching class wins.
        """
        norm = (
            normalize_codes(values)
            if self.system
            else values.astype(object).map(lambda v: None if pd.isna(v) else str(v).strip())
        )
        uniq = [v for v in pd.unique(norm.dropna())]
        mapping: dict[Any, str] = {}
        table = load_table(self.system) if self.system else None
        members: dict[str, frozenset[str]] = {}
        if self.system:
            gs = load_groups("default")
            for c in self.classes:
                for g in c.groups:
                    members[g] = frozenset(gs.members(g, self.system))
        for v in uniq:
            keys = (v, *table.ancestors(v)) if table is not None and v in table else (v,)
            for c in self.classes:
                if (
                    c.default
                    or any(k in c.codes for k in keys)
                    or any(v in members[g] for g in c.groups)
                    or (v in c.values)
                ):
                    mapping[v] = c.id
                    break
        out = norm.map(mapping)
        bad = norm[out.isna()]
        if len(bad):
            counts = bad.fillna("(空值)").value_counts()
            shown = "、".join(f"{k}×{n}" for k, n in list(counts.items())[:15])
            raise ValidationError(
                f"{what or self.name}有 {len(counts)} 种{'代码' if self.system else '取值'}"
                f"不属于冲突矩阵“{self.name}”的任何类别: {shown}",
                key="matrix_unclassified",
                field=self.field,
                hint=(
                    "在矩阵文件中为这些代码增加类别或设置 default: true 的兜底类别; "
                    "也可能是字段选错 (--left-field/--right-field)"
                ),
                data={"unclassified": {str(k): int(n) for k, n in counts.items()}},
            )
        return out.astype(object)


@dataclass(frozen=True)
class ConflictType:
    """A conflict type: id, label, severity, note."""

    id: str
    label: str
    severity: str
    note: str = ""


@dataclass(frozen=True)
class CompatibilityMatrix:
    """A validated compatibility matrix (see module docstring)."""

    id: str
    title: str
    version: str
    left: MatrixSide
    right: MatrixSide
    types: Mapping[str, ConflictType]
    cells: Mapping[tuple[str, str], str]
    basis: str = ""
    judgement: tuple[str, ...] = ()
    source: str = ""
    content: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def lookup(self, left_class: str, right_class: str) -> str:
        """Conflict type id of a pair, or :data:`COMPATIBLE`."""
        return self.cells[(left_class, right_class)]

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the matrix content."""
        from yizhangtu.provenance import canonical_json, sha256_hex

        return sha256_hex(canonical_json(self.content))

    def ref(self) -> dict[str, str]:
        """Provenance reference."""
        return {"id": self.id, "version": self.version, "hash": self.hash}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with the full grid."""
        return {
            "id": self.id,
            "title": self.title,
            "version": self.version,
            "source": self.source,
            "basis": self.basis,
            "judgement": list(self.judgement),
            "left": {
                "name": self.left.name,
                "system": self.left.system,
                "field": self.left.field,
                "classes": {c: self.left.label(c) for c in self.left.class_ids},
            },
            "right": {
                "name": self.right.name,
                "system": self.right.system,
                "field": self.right.field,
                "classes": {c: self.right.label(c) for c in self.right.class_ids},
            },
            "types": {
                k: {"label": t.label, "severity": t.severity, "note": t.note}
                for k, t in self.types.items()
            },
            "cells": {f"{a}|{b}": v for (a, b), v in self.cells.items()},
        }


def _bad(msg: str, source: str, where: str | None = None, hint: str | None = None) -> PolicyError:
    return PolicyError(
        msg,
        key="matrix_invalid",
        file=source,
        field=where,
        hint=hint or "按 conformance/data/matrices/*.yaml 的格式修改矩阵文件",
    )


def _as_tuple(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(str(x) for x in v)


def _rule(raw: Any, side: str, source: str, system: str | None) -> ClassRule:
    if not isinstance(raw, Mapping) or "id" not in raw or "label" not in raw:
        raise _bad(f"{side} 的类别须为含 id 和 label 的映射: {raw!r}", source, side)
    rule = ClassRule(
        id=str(raw["id"]),
        label=str(raw["label"]),
        codes=_as_tuple(raw.get("codes")),
        groups=_as_tuple(raw.get("group", raw.get("groups"))),
        values=_as_tuple(raw.get("values")),
        default=bool(raw.get("default", False)),
    )
    if not (rule.codes or rule.groups or rule.values or rule.default):
        raise _bad(
            f"{side} 的类别 {rule.id} 没有 codes/group/values/default 中的任何一项",
            source,
            f"{side}.{rule.id}",
        )
    if (rule.codes or rule.groups) and not system:
        raise _bad(
            f"{side} 没有 system (代码体系), 类别 {rule.id} 不能用 codes/group, 请用 values",
            source,
            f"{side}.{rule.id}",
        )
    if system:
        table = load_table(system)
        unknown = [c for c in rule.codes if c not in table]
        if unknown:
            raise _bad(
                f"{side} 类别 {rule.id} 列出的代码不属于 {system}: {', '.join(unknown)}",
                source,
                f"{side}.{rule.id}",
            )
        gs = load_groups("default")
        for g in rule.groups:
            gs.rule(g, system)  # raises for unknown group / system
    return rule


def _side(raw: Any, side: str, source: str) -> MatrixSide:
    if not isinstance(raw, Mapping) or "classes" not in raw:
        raise _bad(f"矩阵缺少 {side} 或其 classes", source, side)
    system = raw.get("system")
    if system:
        load_table(system)  # NotFoundError for an unknown system
    classes = tuple(_rule(c, side, source, system) for c in raw["classes"])
    unc = raw.get("uncovered")
    uncovered = None
    if unc is not None:
        if not isinstance(unc, Mapping) or "id" not in unc:
            raise _bad(f"{side}.uncovered 须为含 id 和 label 的映射", source, f"{side}.uncovered")
        uncovered = ClassRule(id=str(unc["id"]), label=str(unc.get("label", unc["id"])))
    ids = [c.id for c in classes] + ([uncovered.id] if uncovered else [])
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise _bad(f"{side} 的类别 id 重复: {', '.join(dup)}", source, side)
    return MatrixSide(
        name=str(raw.get("name", side)),
        system=system,
        field=raw.get("field"),
        classes=classes,
        uncovered=uncovered,
    )


def matrix_from_mapping(doc: Any, *, source: str = "<mapping>") -> CompatibilityMatrix:
    """Build and validate a matrix from parsed YAML.

    Raises
    ------
    PolicyError
        ``matrix_invalid`` (structure, unknown code or group), ``matrix_missing_class`` (a class
        of either side without its row or column, or an empty cell), ``matrix_unknown_type``.
    """
    if not isinstance(doc, Mapping):
        raise _bad("矩阵文件顶层须为映射", source)
    for k in ("id", "title", "left", "right", "types", "cells"):
        if k not in doc:
            raise _bad(f"矩阵缺少 {k}", source, k)
    left = _side(doc["left"], "left", source)
    right = _side(doc["right"], "right", source)
    types: dict[str, ConflictType] = {}
    for tid, t in (doc["types"] or {}).items():
        if not isinstance(t, Mapping) or "label" not in t:
            raise _bad(f"冲突类型 {tid} 须含 label", source, f"types.{tid}")
        sev = str(t.get("severity", "warning"))
        if sev not in _SEVERITIES:
            raise _bad(
                f"冲突类型 {tid} 的 severity 须为 error/warning/info, 实为 {sev}",
                source,
                f"types.{tid}",
            )
        if str(tid) == COMPATIBLE:
            raise _bad(f'冲突类型不能命名为 "{COMPATIBLE}" (该值表示相容)', source, "types")
        types[str(tid)] = ConflictType(
            id=str(tid), label=str(t["label"]), severity=sev, note=str(t.get("note", ""))
        )
    raw_cells = doc["cells"] or {}
    if not isinstance(raw_cells, Mapping):
        raise _bad("cells 须为 左类别 → {右类别: 类型} 的映射", source, "cells")
    cells: dict[tuple[str, str], str] = {}
    missing: list[str] = []
    for a in left.class_ids:
        row = raw_cells.get(a)
        if not isinstance(row, Mapping):
            missing.append(f"左类别 {a}({left.label(a)}) 整行")
            continue
        for b in right.class_ids:
            v = row.get(b)
            if v is None:
                missing.append(f"{a}({left.label(a)}) × {b}({right.label(b)})")
                continue
            v = str(v)
            if v != COMPATIBLE and v not in types:
                raise PolicyError(
                    f"矩阵单元 {a} × {b} 的冲突类型 {v} 未在 types 中定义",
                    key="matrix_unknown_type",
                    file=source,
                    field=f"cells.{a}.{b}",
                    hint=f'在 types 中定义 {v}, 或用 "{COMPATIBLE}" 表示相容',
                )
            cells[(a, b)] = v
        extra = sorted(set(map(str, row)) - set(right.class_ids))
        if extra:
            raise _bad(f"矩阵行 {a} 含有未定义的右类别: {', '.join(extra)}", source, f"cells.{a}")
    extra_rows = sorted(set(map(str, raw_cells)) - set(left.class_ids))
    if extra_rows:
        raise _bad(f"矩阵含有未定义的左类别行: {', '.join(extra_rows)}", source, "cells")
    if missing:
        raise PolicyError(
            f"冲突矩阵 {doc['id']} 缺少 {len(missing)} 个类别组合: "
            + "; ".join(missing[:10])
            + (" …" if len(missing) > 10 else ""),
            key="matrix_missing_class",
            file=source,
            field="cells",
            hint=f'每个左类别 × 右类别都须填写冲突类型或 "{COMPATIBLE}" (相容)',
            data={"missing": missing},
        )
    from yizhangtu.codes._data import tidy

    return CompatibilityMatrix(
        id=str(doc["id"]),
        title=str(doc["title"]),
        version=str(doc.get("version", "1")),
        left=left,
        right=right,
        types=types,
        cells=cells,
        basis=tidy(str(doc.get("basis", ""))),
        judgement=tuple(str(j) for j in doc.get("judgement", []) or []),
        source=source,
        content=dict(doc),
    )


def list_matrices() -> list[dict[str, Any]]:
    """Matrices shipped with yizhangtu (id, title, sides)."""
    out = []
    for name in data_names("matrices"):
        m = load_matrix(name)
        out.append(
            {
                "id": m.id,
                "title": m.title,
                "version": m.version,
                "left": m.left.name,
                "right": m.right.name,
                "types": len(m.types),
                "hash": m.hash,
            }
        )
    return out


def load_matrix(name_or_path: str | os.PathLike[str]) -> CompatibilityMatrix:
    """Load a shipped matrix by id (``sandiao-vs-landsea``) or a matrix YAML file by path."""
    text = os.fspath(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or os.sep in text:
        if not p.is_file():
            raise NotFoundError(f"找不到冲突矩阵文件 {p}", key="matrix_not_found", file=str(p))
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FileFormatError(
                f"冲突矩阵不是有效的 YAML: {exc}", key="matrix_yaml", file=str(p)
            ) from None
        return matrix_from_mapping(doc, source=str(p))
    if text not in data_names("matrices"):
        raise NotFoundError(
            f"没有名为 {text} 的冲突矩阵",
            key="matrix_not_found",
            hint="内置矩阵: " + ", ".join(data_names("matrices")) + "; 或给出 YAML 文件路径",
        )
    return matrix_from_mapping(
        read_data_yaml(f"matrices/{text}.yaml"), source=f"matrices/{text}.yaml"
    )


@dataclass(frozen=True)
class ConflictResult:
    """Conflict patches of two plan layers.

    Attributes
    ----------
    patches : GeoDataFrame
        One row per conflict patch: ``conflict_type``, ``conflict_label``, ``severity``,
        ``left_class``, ``left_label``, ``right_class``, ``right_label``, ``a_*`` (left
        attributes), ``b_*`` (right attributes), ``area_m2``, ``width_m``, geometry.
    slivers : GeoDataFrame
        Conflict patches below the sliver thresholds (same columns).
    by_type : DataFrame
        ``conflict_type``, ``conflict_label``, ``severity``, ``patches``, ``area_m2``,
        ``sliver_count``, ``sliver_m2``; every type of the matrix, zeros included.
    pairs : DataFrame
        Area of every (left class, right class) pair met, conflict or not.
    matrix : CompatibilityMatrix
    """

    patches: gpd.GeoDataFrame
    slivers: gpd.GeoDataFrame
    by_type: pd.DataFrame
    pairs: pd.DataFrame
    matrix: CompatibilityMatrix

    def summary(self, unit: str = "m2") -> dict[str, Any]:
        """JSON-ready summary, areas in ``unit``."""
        bt = self.by_type
        return {
            "matrix": self.matrix.ref() | {"title": self.matrix.title},
            "area_unit": unit,
            "patches": len(self.patches),
            "conflict_area": float(convert_area(float(self.patches["area_m2"].sum()), unit)),
            "slivers": len(self.slivers),
            "sliver_area": float(convert_area(float(self.slivers["area_m2"].sum()), unit)),
            "by_type": [
                {
                    "type": r["conflict_type"],
                    "label": r["conflict_label"],
                    "severity": r["severity"],
                    "patches": int(r["patches"]),
                    "area": float(convert_area(float(r["area_m2"]), unit)),
                    "sliver_count": int(r["sliver_count"]),
                    "sliver_area": float(convert_area(float(r["sliver_m2"]), unit)),
                }
                for r in bt.to_dict("records")
            ],
            "pairs": [
                {
                    "left": r["left_label"],
                    "right": r["right_label"],
                    "type": r["conflict_type"],
                    "area": float(convert_area(float(r["area_m2"]), unit)),
                }
                for r in self.pairs.to_dict("records")
            ],
        }


def _prefixed(gdf: gpd.GeoDataFrame, prefix: str, keep: Sequence[str] | None) -> gpd.GeoDataFrame:
    cols = [c for c in gdf.columns if c != gdf.geometry.name and (keep is None or c in keep)]
    out = gdf[cols].rename(columns={c: f"{prefix}{c}" for c in cols})
    return gpd.GeoDataFrame(out, geometry=gdf.geometry.values, crs=gdf.crs)


def find_conflicts(
    left: gpd.GeoDataFrame,
    right: gpd.GeoDataFrame,
    matrix: CompatibilityMatrix,
    *,
    tol: Tolerances,
    left_field: str | None = None,
    right_field: str | None = None,
    keep_fields: Sequence[str] | None = None,
    workers: int | None = 1,
) -> ConflictResult:
    """Overlay two plan layers and classify every piece with ``matrix``.

    Parameters
    ----------
    left, right : GeoDataFrame
        The matrix's left and right layers, same CRS.
    matrix : CompatibilityMatrix
    tol : Tolerances
        Sliver thresholds (area, mean width).
    left_field, right_field : str, optional
        Class fields; default the matrix sides' ``field``.
    keep_fields : sequence of str, optional
        Attributes of both sides to carry (default all).

    Raises
    ------
    ValidationError
        A code or value of either layer that no class of the matrix takes.
    InputError, CRSError, GeometryError
        Missing field, mixed CRS, invalid polygons (from the overlay engine).
    """
    lf = left_field or matrix.left.field
    rf = right_field or matrix.right.field
    for gdf, fld, side in ((left, lf, "左"), (right, rf, "右")):
        if not fld or fld not in gdf.columns:
            raise InputError(
                f"{side}图层缺少分类字段 {fld}",
                key="conflict_field_missing",
                field=fld,
                hint=(
                    f"用 --{'left' if side == '左' else 'right'}-field 指定字段; 图层字段: "
                    f"{', '.join(c for c in gdf.columns if c != gdf.geometry.name)}"
                ),
            )
    require_crs(left, "左图层")
    require_crs(right, "右图层")
    lclass = matrix.left.classify(left[lf], what=f"左图层 ({matrix.left.name}) 字段 {lf} ")
    rclass = matrix.right.classify(right[rf], what=f"右图层 ({matrix.right.name}) 字段 {rf} ")
    lkeep = None if keep_fields is None else [*keep_fields, str(lf)]
    rkeep = None if keep_fields is None else [*keep_fields, str(rf)]
    L = _prefixed(left, "a_", lkeep)
    L["left_class"] = lclass.to_numpy()
    R = _prefixed(right, "b_", rkeep)
    R["right_class"] = rclass.to_numpy()
    lu, ru = matrix.left.uncovered, matrix.right.uncovered
    # Only the pieces the matrix can classify are computed: land covered by one side only matters
    # when that side's counterpart has an `uncovered` class. "identity" of A over B gives A∩B and
    # A-only pieces, computing A minus B per feature of A (cheap for many small features).
    if lu is not None and ru is not None:
        pieces = overlay(L, R, how="union", workers=workers)
    elif lu is not None:
        pieces = overlay(R, L, how="identity", workers=workers)
    elif ru is not None:
        pieces = overlay(L, R, how="identity", workers=workers)
    else:
        pieces = overlay(L, R, how="intersection", workers=workers)
    pieces = pieces.reset_index(drop=True)
    if lu is not None:
        pieces.loc[pieces["left_class"].isna(), "left_class"] = lu.id
    if ru is not None:
        pieces.loc[pieces["right_class"].isna(), "right_class"] = ru.id
    pieces = pieces[pieces["left_class"].notna() & pieces["right_class"].notna()].reset_index(
        drop=True
    )
    ctype = [
        matrix.lookup(a, b)
        for a, b in zip(pieces["left_class"], pieces["right_class"], strict=True)
    ]
    pieces["conflict_type"] = ctype
    pieces["left_label"] = pieces["left_class"].map(matrix.left.label)
    pieces["right_label"] = pieces["right_class"].map(matrix.right.label)
    keys = ["left_class", "left_label", "right_class", "right_label", "conflict_type"]
    pairs = (
        pd.DataFrame(pieces[[*keys, "area_m2"]])
        .groupby(keys, as_index=False)
        .agg(area_m2=("area_m2", "sum"))
    )
    pairs = pairs.sort_values(by="area_m2", ascending=False).reset_index(drop=True)
    conf = pieces[pieces["conflict_type"] != COMPATIBLE]
    conf = gpd.GeoDataFrame(conf, geometry=conf.geometry.name, crs=left.crs)
    patches = explode_patches(conf)
    patches["conflict_label"] = patches["conflict_type"].map(
        {k: t.label for k, t in matrix.types.items()}
    )
    patches["severity"] = patches["conflict_type"].map(
        {k: t.severity for k, t in matrix.types.items()}
    )
    front = [
        "conflict_type",
        "conflict_label",
        "severity",
        "left_class",
        "left_label",
        "right_class",
        "right_label",
    ]
    patches = patches[[*front, *[c for c in patches.columns if c not in front]]]
    kept, slivers = split_slivers(
        gpd.GeoDataFrame(patches, geometry=patches.geometry.name, crs=left.crs), tol
    )
    rows = []
    for tid, t in matrix.types.items():
        k = kept[kept["conflict_type"] == tid]
        s = slivers[slivers["conflict_type"] == tid]
        rows.append(
            {
                "conflict_type": tid,
                "conflict_label": t.label,
                "severity": t.severity,
                "patches": len(k),
                "area_m2": float(k["area_m2"].sum()),
                "sliver_count": len(s),
                "sliver_m2": float(s["area_m2"].sum()),
            }
        )
    return ConflictResult(
        patches=kept, slivers=slivers, by_type=pd.DataFrame(rows), pairs=pairs, matrix=matrix
    )


def summarise_by_unit(
    result: ConflictResult,
    units: gpd.GeoDataFrame,
    *,
    unit_field: str,
    unit_name_field: str | None = None,
    min_area_m2: float = 0.0,
    workers: int | None = 1,
) -> pd.DataFrame:
    """Total the conflict area by unit and type.

    Columns: ``unit``, ``unit_name``, ``conflict_type``, ``conflict_label``, ``area_m2``,
    ``share``.

    ``share`` is the conflict area over the unit's area. Units with no conflicts, and unit × type
    rows below ``min_area_m2`` (crumbs of patches cut by unit borders), are omitted.
    """
    cols = ["unit", "unit_name", "conflict_type", "conflict_label", "area_m2", "share"]
    if len(result.patches) == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=float if c in ("area_m2", "share") else object) for c in cols}
        )
    patches = result.patches
    if not patches.crs.equals(units.crs):
        patches = patches.to_crs(units.crs)
    table = tabulate(
        patches, units, class_field="conflict_type", unit_field=unit_field, workers=workers
    )
    rows = table.rows.rename(columns={"class": "conflict_type"})[
        ["unit", "conflict_type", "area_m2"]
    ].copy()
    # patches cut by unit borders leave crumbs; rows below ``min_area_m2`` (e.g. the pack's sliver
    # area) are dropped from the summary, never from the patches
    rows = rows[rows["area_m2"] > max(min_area_m2, 0.0)]
    names = dict(
        zip(
            units[unit_field],
            units[unit_name_field]
            if unit_name_field and unit_name_field in units.columns
            else units[unit_field],
            strict=False,
        )
    )
    rows.insert(1, "unit_name", rows["unit"].map(names))
    rows.insert(
        3,
        "conflict_label",
        rows["conflict_type"].map({k: t.label for k, t in result.matrix.types.items()}),
    )
    rows["share"] = rows["area_m2"] / rows["unit"].map(table.unit_areas).astype(float)
    return rows.sort_values(["unit", "area_m2"], ascending=[True, False]).reset_index(drop=True)[
        cols
    ]
