"""QC options, findings and reports (成果质量控制报告).

The dataclasses here are plain values: the checks in :mod:`yizhangtu.qc.checks` fill them,
the CLI renders them (:mod:`yizhangtu.cli.qc_render`), the web API serialises them with
:meth:`QCReport.to_dict`, and :meth:`QCReport.to_geodataframe` gives a layer of flagged
places that can be written to a GeoPackage and opened in QGIS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import geopandas as gpd
import numpy as np
from shapely.geometry.base import BaseGeometry

__all__ = [
    "CHECKS",
    "CHECK_TITLES",
    "SEVERITIES",
    "SEVERITY_TITLES",
    "Finding",
    "QCOptions",
    "QCReport",
]

#: Every check name, in the order :func:`yizhangtu.qc.run_qc` runs them.
CHECKS: tuple[str, ...] = (
    "missing_crs",
    "missing_geometry",
    "empty_geometry",
    "invalid_geometry",
    "z_or_m",
    "mixed_geometry",
    "multipart",
    "missing_field",
    "missing_value",
    "duplicate_id",
    "unknown_code",
    "sliver",
    "overlap",
    "gap",
    "repair",
)

#: Chinese name of each check, as shown to users.
CHECK_TITLES: dict[str, str] = {
    "missing_crs": "缺少坐标系",
    "missing_geometry": "缺少几何",
    "empty_geometry": "空几何",
    "invalid_geometry": "几何无效",
    "z_or_m": "含Z/M值",
    "mixed_geometry": "几何类型混杂",
    "multipart": "多部件",
    "missing_field": "缺少字段",
    "missing_value": "必填值为空",
    "duplicate_id": "标识重复",
    "unknown_code": "编码不在代码表中",
    "sliver": "碎片多边形",
    "overlap": "重叠",
    "gap": "缝隙",
    "repair": "几何修复",
}

SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
SEVERITY_TITLES: dict[str, str] = {"error": "错误", "warning": "警告", "info": "提示"}

_EXPECTED_GEOMETRIES = ("polygon", "line", "point")


@dataclass(frozen=True)
class QCOptions:
    """What to check.

    Attributes
    ----------
    id_field : str, optional
        Feature identifier field (e.g. ``BSM``). When set, findings name features by it,
        duplicated values are errors, and the field is required.
    tiling : bool
        The layer must tile (a survey layer, 三调图斑): overlaps and gaps are errors.
    check_overlap : bool, optional
        Check overlaps without requiring a tiling (e.g. submitted reduction plots, 减量地块).
        ``None`` follows ``tiling``. Gaps are checked only when ``tiling`` is set.
    expect_single : bool
        Multipart features (more than one part) are errors.
    expected_geometry : {'polygon', 'line', 'point'}, optional
        Features of another type are errors. When ``None``, the most common type of the
        layer is expected; a layer mixing types is always flagged.
    code_field : str, optional
        Classification code field (地类编码); required when set.
    valid_codes : frozenset of str, optional
        Allowed codes for ``code_field``; codes outside it are errors.
    required_fields : tuple of str
        Fields that must exist and be non-blank on every feature.
    sliver_area_m2 : float
        Polygons (and gaps) smaller than this ellipsoidal area are slivers. The default
        ``1.0`` is ``Settings.sliver_area_m2``; callers pass the value from settings or the
        policy pack.
    sliver_thinness : float, optional
        Polygons whose Polsby-Popper compactness ``4πA/P²`` is below this are slivers
        (e.g. ``0.05``). Off when ``None``.
    overlap_tolerance_m2 : float
        Overlap patches up to this ellipsoidal area are reported as ``info``, not errors.
    max_findings_per_check : int
        Findings kept per check (errors first); ``QCReport.counts`` counts all of them.
    """

    id_field: str | None = None
    tiling: bool = False
    expect_single: bool = False
    expected_geometry: str | None = None
    code_field: str | None = None
    valid_codes: frozenset[str] | None = None
    required_fields: tuple[str, ...] = ()
    sliver_area_m2: float = 1.0
    sliver_thinness: float | None = None
    overlap_tolerance_m2: float = 0.01
    max_findings_per_check: int = 1000
    check_overlap: bool | None = None

    def __post_init__(self) -> None:
        from yizhangtu.errors import InputError

        if self.expected_geometry not in (None, *_EXPECTED_GEOMETRIES):
            raise InputError(
                f"未知的几何类型要求: {self.expected_geometry}",
                key="qc_bad_expected_geometry",
                hint="可选: polygon, line, point",
            )
        if self.sliver_area_m2 < 0 or self.overlap_tolerance_m2 < 0:
            raise InputError("面积阈值不能为负数", key="qc_bad_tolerance")
        if self.max_findings_per_check < 1:
            raise InputError("每项检查保留的问题数至少为 1", key="qc_bad_limit")
        if isinstance(self.required_fields, str):
            raise InputError(
                "required_fields 应为字段名元组, 而非单个字符串",
                key="qc_bad_required_fields",
                hint=f"写作 ({self.required_fields!r},)",
            )

    @property
    def overlaps_checked(self) -> bool:
        """Whether overlaps are checked (``check_overlap``, else ``tiling``)."""
        return self.tiling if self.check_overlap is None else self.check_overlap


@dataclass(frozen=True)
class Finding:
    """One problem found by a check.

    Attributes
    ----------
    check : str
        One of :data:`CHECKS`.
    severity : {'error', 'warning', 'info'}
    message : str
        Chinese, naming the feature and field.
    feature : int or str, optional
        The feature's ``id_field`` value, else its row index label.
    field : str, optional
        The attribute concerned.
    reason : str, optional
        Raw machine reason, e.g. GEOS ``'Self-intersection[116.4 39.9]'`` or the bad code.
    x, y : float, optional
        Location, in the layer's CRS.
    area_m2 : float, optional
        Ellipsoidal area of the patch or feature, in m².
    other : int or str, optional
        Second feature (overlaps).
    geometry : shapely geometry, optional
        The offending patch (overlap piece, gap polygon, self-intersection point) or the feature.
    detail : mapping, optional
        Extra machine-readable facts (e.g. code counts, area before repair).
    """

    check: str
    severity: str
    message: str
    feature: int | str | None = None
    field: str | None = None
    reason: str | None = None
    x: float | None = None
    y: float | None = None
    area_m2: float | None = None
    other: int | str | None = None
    geometry: BaseGeometry | None = dc_field(default=None, repr=False)
    detail: Mapping[str, Any] | None = dc_field(default=None, hash=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no geometry; location as ``x``, ``y``)."""
        return {
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "feature": _json_value(self.feature),
            "field": self.field,
            "reason": self.reason,
            "x": _json_value(self.x),
            "y": _json_value(self.y),
            "area_m2": _json_value(self.area_m2),
            "other": _json_value(self.other),
            "detail": _json_value(dict(self.detail)) if self.detail else None,
        }


@dataclass(frozen=True)
class QCReport:
    """The result of :func:`yizhangtu.qc.run_qc`.

    Attributes
    ----------
    file : str, optional
        Source file, when known.
    feature_count : int
    checks_run : tuple of str
    findings : tuple of Finding
        At most ``max_findings_per_check`` per check, errors first.
    counts : mapping of str to int
        True number of findings per check run, even when ``findings`` is truncated.
    severity_counts : mapping of str to int
        True number of findings per severity. When not given, it is counted from
        ``findings`` (a lower bound if those were truncated).
    """

    file: str | None
    feature_count: int
    checks_run: tuple[str, ...]
    findings: tuple[Finding, ...]
    counts: Mapping[str, int] = dc_field(hash=False)
    severity_counts: Mapping[str, int] = dc_field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.severity_counts:
            counted = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
            object.__setattr__(self, "severity_counts", counted)

    @classmethod
    def merge(cls, reports: Sequence[QCReport], *, file: str | None = None) -> QCReport:
        """Combine reports of chunks of one layer: counts add up, findings concatenate.

        Overlaps and gaps across chunk borders are not found by per-chunk reports.
        """
        counts: dict[str, int] = {}
        severity: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        checks: list[str] = []
        for r in reports:
            checks.extend(c for c in r.checks_run if c not in checks)
            for k, v in r.counts.items():
                counts[k] = counts.get(k, 0) + int(v)
            for k, v in r.severity_counts.items():
                severity[k] = severity.get(k, 0) + int(v)
        return cls(
            file=file if file is not None else (reports[0].file if reports else None),
            feature_count=sum(r.feature_count for r in reports),
            checks_run=tuple(c for c in CHECKS if c in checks),
            findings=tuple(f for r in reports for f in r.findings),
            counts={c: counts[c] for c in CHECKS if c in counts},
            severity_counts=severity,
        )

    @property
    def ok(self) -> bool:
        """True when there is no error-severity finding (counting truncated ones)."""
        return self.severity_counts.get("error", 0) == 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Error findings kept in the report."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Warning findings kept in the report."""
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def truncated(self) -> dict[str, int]:
        """Number of findings left out, per check (only checks that were truncated)."""
        kept: dict[str, int] = {}
        for f in self.findings:
            kept[f.check] = kept.get(f.check, 0) + 1
        return {c: n - kept.get(c, 0) for c, n in self.counts.items() if n > kept.get(c, 0)}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: summary, counts and findings without geometry."""
        return {
            "file": self.file,
            "feature_count": int(self.feature_count),
            "ok": self.ok,
            "checks_run": list(self.checks_run),
            "counts": {k: int(v) for k, v in self.counts.items()},
            "severity_counts": {k: int(v) for k, v in self.severity_counts.items()},
            "truncated": self.truncated,
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_geodataframe(self, crs: Any = None) -> gpd.GeoDataFrame:
        """One row per finding, with its geometry (null where there is none).

        Parameters
        ----------
        crs : optional
            CRS of the checked layer; finding geometries are in it.

        Returns
        -------
        GeoDataFrame
            Columns ``check, check_title, severity, message, feature, field, reason, x, y,
            area_m2, other`` and ``geometry``. ``feature``/``other`` are text so the layer
            writes to any format.
        """
        rows = {
            "check": [f.check for f in self.findings],
            "check_title": [CHECK_TITLES.get(f.check, f.check) for f in self.findings],
            "severity": [f.severity for f in self.findings],
            "message": [f.message for f in self.findings],
            "feature": [_text(f.feature) for f in self.findings],
            "field": [f.field for f in self.findings],
            "reason": [f.reason for f in self.findings],
            "x": np.array([np.nan if f.x is None else f.x for f in self.findings], dtype=float),
            "y": np.array([np.nan if f.y is None else f.y for f in self.findings], dtype=float),
            "area_m2": np.array(
                [np.nan if f.area_m2 is None else f.area_m2 for f in self.findings], dtype=float
            ),
            "other": [_text(f.other) for f in self.findings],
        }
        geoms = gpd.GeoSeries([f.geometry for f in self.findings], crs=crs)
        return gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _json_value(value: Any) -> Any:
    """Convert numpy scalars and non-finite floats to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
