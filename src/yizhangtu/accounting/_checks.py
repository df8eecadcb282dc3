"""Input checks shared by tabulation and overlay (QC-style, never repairing anything)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.errors import CRSError, GeometryError, InputError, ValidationError

__all__ = [
    "MAX_LISTED",
    "MAX_REPORTED",
    "POLYGONAL_TYPE_IDS",
    "check_crs",
    "check_not_empty",
    "classify_layer",
    "geometry_problems",
    "raise_geometry_problems",
    "require_field",
]

#: Shapely type ids of Polygon and MultiPolygon.
POLYGONAL_TYPE_IDS = (3, 6)
#: How many offending features or codes an error message names.
MAX_LISTED = 20
#: How many offending features an error's ``data`` lists (``data['count']`` has the total).
MAX_REPORTED = 1000


def check_not_empty(frame: gpd.GeoDataFrame, role: str) -> None:
    """Refuse an empty layer (a failed import, an empty snapshot)."""
    if len(frame) == 0:
        raise InputError(
            f"{_role_zh(role)}为空, 没有任何要素",
            key="empty_layer",
            hint="检查快照是否导入成功, 或是否选错了图层",
            data={"layer": role},
        )


def check_crs(*frames: tuple[str, gpd.GeoDataFrame]) -> CRS:
    """Return the common CRS of the frames; refuse missing or mixed coordinate systems."""
    crs_list: list[tuple[str, CRS]] = []
    for role, frame in frames:
        if frame.crs is None:
            raise CRSError(
                f"{_role_zh(role)}没有坐标参考系",
                key="crs_missing",
                hint="导入时用 --crs 指定坐标参考系",
                data={"layer": role},
            )
        crs_list.append((role, CRS.from_user_input(frame.crs)))
    first_role, first = crs_list[0]
    for role, crs in crs_list[1:]:
        if not crs.equals(first):
            raise CRSError(
                f"{_role_zh(first_role)}与{_role_zh(role)}的坐标参考系不一致"
                f" ({first.name} / {crs.name}), 拒绝混合计算",
                key="crs_mismatch",
                hint="先把两个图层转换到同一坐标参考系 (如 EPSG:4490) 再统计",
                data={first_role: first.to_string(), role: crs.to_string()},
            )
    if first.ellipsoid is None:
        raise CRSError(
            f"坐标参考系 {first.name} 没有椭球, 无法计算椭球面积",
            key="crs_no_ellipsoid",
            hint="使用 CGCS2000 (EPSG:4490) 或其高斯-克吕格投影带",
        )
    return first


def require_field(frame: pd.DataFrame, name: str, role: str) -> None:
    """Refuse a missing attribute field."""
    if name not in frame.columns:
        raise ValidationError(
            f"{_role_zh(role)}缺少字段 {name}",
            key="missing_field",
            field=name,
            hint="可用字段: " + ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
            if isinstance(frame, gpd.GeoDataFrame)
            else None,
            data={"layer": role},
        )


def geometry_problems(geoms: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Positions and Chinese reasons of the features that are not valid polygons.

    Missing, empty, non-polygonal and invalid geometries are all problems; nothing is
    repaired.
    """
    missing = shapely.is_missing(geoms)
    empty = np.zeros(len(geoms), dtype=bool)
    empty[~missing] = shapely.is_empty(geoms[~missing])
    type_ids = shapely.get_type_id(geoms)
    wrong_type = ~missing & ~empty & ~np.isin(type_ids, POLYGONAL_TYPE_IDS)
    valid = shapely.is_valid(geoms)
    invalid = ~missing & ~empty & ~wrong_type & ~valid
    bad = missing | empty | wrong_type | invalid
    positions = np.flatnonzero(bad)
    reasons: list[str] = []
    for pos in positions:
        if missing[pos]:
            reasons.append("几何缺失")
        elif empty[pos]:
            reasons.append("几何为空")
        elif wrong_type[pos]:
            reasons.append(
                f"不是面要素 ({shapely.get_type_id(geoms[pos])}: {geoms[pos].geom_type})"
            )
        else:
            reasons.append(f"几何无效: {shapely.is_valid_reason(geoms[pos])}")
    return positions, reasons


def raise_geometry_problems(
    problems: list[tuple[str, Any, str]], *, total: int | None = None
) -> None:
    """Raise one :class:`GeometryError` that lists every problem ``(layer, feature, reason)``."""
    if not problems:
        return
    count = total if total is not None else len(problems)
    listed = "; ".join(f"{_role_zh(r)} 要素 {f}: {why}" for r, f, why in problems[:MAX_LISTED])
    more = f" 等 {count} 个" if count > MAX_LISTED else ""
    _, first_feature, _ = problems[0]
    raise GeometryError(
        f"发现 {count} 个无效几何, 按质检规则拒绝统计 (不做任何自动修复): {listed}{more}",
        key="invalid_geometry",
        feature=_plain(first_feature),
        hint="在数据质检中修复这些要素 (例如重新数字化或 make_valid 后人工核对), 再重新导入",
        data={
            "count": count,
            "invalid": [
                {"layer": r, "feature": _plain(f), "reason": why}
                for r, f, why in problems[:MAX_REPORTED]
            ],
        },
    )


def classify_layer(
    layer: pd.DataFrame,
    *,
    class_field: str,
    classify: Callable[[pd.DataFrame], pd.Series] | None,
    valid_classes: Collection[Any] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class code per layer row and the sorted class labels.

    Returns
    -------
    codes : numpy.ndarray
        Index into ``classes`` for each row.
    classes : numpy.ndarray
        Class labels.

    Raises
    ------
    ValidationError
        When a row has no class, or a class outside ``valid_classes``; the error lists the raw
        codes (values of ``class_field``) with their counts.
    """
    raw = layer[class_field] if class_field in layer.columns else None
    if classify is not None:
        labels = classify(layer)
        if len(labels) != len(layer):
            raise ValidationError(
                "分类函数返回的行数与图层不一致",
                key="classifier_length",
                field=class_field,
            )
        labels = pd.Series(np.asarray(labels, dtype=object), index=layer.index)
    else:
        require_field(layer, class_field, "layer")
        labels = pd.Series(np.asarray(layer[class_field], dtype=object), index=layer.index)
    bad = labels.isna().to_numpy()
    if valid_classes is not None:
        allowed = set(valid_classes)
        bad = bad | ~labels.map(lambda v: v in allowed).to_numpy(dtype=bool)
    if bad.any():
        offending = raw[bad] if raw is not None else labels[bad]
        counts = offending.astype(object).where(offending.notna(), "<空>").value_counts()
        items = [(_plain(k), int(v)) for k, v in counts.items()]
        listed = ", ".join(f"{k} ({v} 个)" for k, v in items[:MAX_LISTED])
        more = f" 等 {len(items)} 种" if len(items) > MAX_LISTED else ""
        raise ValidationError(
            f"{int(bad.sum())} 个图斑的地类代码不在分类表中: {listed}{more}",
            key="unknown_class",
            field=class_field,
            feature=_plain(layer.index[np.flatnonzero(bad)[0]]),
            hint="核对地类代码, 或在分类表中补充这些代码后重试",
            data={"codes": [{"code": k, "count": v} for k, v in items]},
        )
    try:
        codes, classes = pd.factorize(labels, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, classes = pd.factorize(labels, sort=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(classes, dtype=object)


def _plain(value: Any) -> Any:
    """Turn numpy scalars into JSON-ready Python values."""
    if isinstance(value, np.generic):
        return value.item()
    return value


_ROLES_ZH = {"layer": "图层", "units": "统计单元图层", "left": "左图层", "right": "右图层"}


def _role_zh(role: str) -> str:
    return _ROLES_ZH.get(role, role)
