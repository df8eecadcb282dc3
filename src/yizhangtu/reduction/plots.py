"""Reduction plots (减量地块): field normalisation and submission checks (落图质检).

A township submits the plots it plans to reduce this year. The checks here are the domain
half of ``reduction plots submit``; the generic layer QC (invalid geometry, duplicated ids,
overlaps inside the file, missing values) is :func:`yizhangtu.qc.run_qc`, run by the service.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.geo.area import AREA_UNITS
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.reduction._geom import Plane, fsum_by, intersect
from yizhangtu.reduction.model import PLOT_ALIASES, PLOT_REQUIRED
from yizhangtu.reduction.rules import SubmissionFacts, evaluate

__all__ = ["PlotIssue", "check_plots", "issues_from_qc", "normalise_plots", "plots_from_links"]


def _norm_header(name: object) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip()
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class PlotIssue:
    """One problem of one submitted plot."""

    plot_id: str | None
    check: str
    severity: str
    message: str
    area_m2: float | None = None
    other: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def _text(v: object) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return str(v).strip()


def _text_id(v: object) -> str | None:
    t = _text(v)
    return None if t is None else t.removesuffix(".0")


def normalise_plots(
    gdf: gpd.GeoDataFrame, *, township: str, year: int, file: str | None = None
) -> gpd.GeoDataFrame:
    """Rename bureau headers to plot fields and fill township and year.

    Declared areas in 公顷 or 亩 become ``declared_area_m2``. A township or year column that
    contradicts ``township`` / ``year`` is an error (a file for another township).

    Raises
    ------
    InputError
        Missing required fields; ValidationError for a township or year mismatch.
    """
    out = gdf.copy()
    mapping: dict[str, str] = {}
    for c in out.columns:
        if c == out.geometry.name:
            continue
        key = _norm_header(c)
        target = PLOT_ALIASES.get(key) or PLOT_ALIASES.get(
            key.replace("(", "（").replace(")", "）")
        )
        if target is None and key.lower() in {
            "plot_id",
            "plot_type",
            "ownership",
            "planned_use",
            "township",
            "year",
            "declared_area_m2",
            "link_layer",
            "link_id",
        }:
            target = key.lower()
        if target and target not in mapping.values():
            mapping[c] = target
    out = out.rename(columns=mapping)
    missing = [f for f in PLOT_REQUIRED if f not in out.columns]
    if missing:
        raise InputError(
            "减量地块清单缺少字段: " + ", ".join(missing),
            key="reduction_plot_fields",
            file=file,
            field=missing[0],
            hint="需要: 地块编号、地块类型、权属、减量后用途"
            " (plot_id, plot_type, ownership, planned_use)",
        )
    for unit_col, factor in (
        ("declared_area_ha", AREA_UNITS["ha"]),
        ("declared_area_mu", AREA_UNITS["mu"]),
    ):
        if unit_col in out.columns:
            vals = pd.to_numeric(out[unit_col], errors="coerce") * factor
            out["declared_area_m2"] = (
                vals
                if "declared_area_m2" not in out.columns
                else out["declared_area_m2"].fillna(vals)
            )
            out = out.drop(columns=[unit_col])
    if "declared_area_m2" in out.columns:
        out["declared_area_m2"] = pd.to_numeric(out["declared_area_m2"], errors="coerce").astype(
            float
        )
    else:
        out["declared_area_m2"] = np.nan
    for col, want in (("township", str(township)), ("year", str(int(year)))):
        if col in out.columns:
            given = (
                out[col]
                .astype(object)
                .map(
                    lambda v: None if v is None or pd.isna(v) else str(v).strip().removesuffix(".0")
                )
            )
            bad = given.notna() & (given != want)
            if bad.any():
                raise ValidationError(
                    f"清单中 {int(bad.sum())} 个地块的{'乡镇' if col == 'township' else '年度'}"
                    f"为 {given[bad].iloc[0]}, 与提交的 {want} 不符",
                    key=f"reduction_plot_{col}_mismatch",
                    file=file,
                    field=col,
                    feature=str(out.loc[bad.idxmax(), "plot_id"]),
                    hint="每个乡镇按年度分别提交本乡镇的地块",
                )
    out["township"] = str(township)
    out["year"] = np.int64(year)
    for col in ("plot_id", "plot_type", "ownership", "planned_use"):
        out[col] = out[col].astype(object).map(_text_id if col == "plot_id" else _text)
    return out


def plots_from_links(
    table: pd.DataFrame, layer: gpd.GeoDataFrame, id_field: str, *, file: str | None = None
) -> gpd.GeoDataFrame:
    """Build plots whose polygon is a stored layer's feature (``link_id`` = its ``id_field``).

    Raises
    ------
    InputError
        Ids not found in the layer (listed).
    """
    ids = table["link_id"].astype(object).map(lambda v: str(v).strip().removesuffix(".0"))
    keys = layer[id_field].astype(object).map(lambda v: str(v).strip().removesuffix(".0"))
    lookup = pd.Series(np.arange(len(layer)), index=keys)
    lookup = lookup[~lookup.index.duplicated()]
    missing = sorted(set(ids) - set(lookup.index))
    if missing:
        raise InputError(
            f"{len(missing)} 个关联要素在图层中不存在: {', '.join(missing[:10])}",
            key="reduction_link_missing",
            file=file,
            field="link_id",
            feature=missing[0],
            hint=f"要素编号须为关联图层 {id_field} 字段的值",
        )
    geoms = layer.geometry.values[lookup.loc[ids].to_numpy()]
    return gpd.GeoDataFrame(
        table.reset_index(drop=True),
        geometry=gpd.GeoSeries(geoms, crs=layer.crs).values,
        crs=layer.crs,
    )


def issues_from_qc(report: Any, ids: Sequence[object]) -> list[PlotIssue]:
    """Turn a :class:`yizhangtu.qc.QCReport` into plot issues (errors and warnings)."""
    out = []
    for f in report.findings:
        if f.severity == "info":
            continue
        feature = f.feature
        if (
            isinstance(feature, int | np.integer)
            and 0 <= int(feature) < len(ids)
            and feature not in set(ids)
        ):
            feature = ids[int(feature)]
        out.append(
            PlotIssue(
                None if feature is None else str(feature),
                f.check,
                f.severity,
                f.message,
                f.area_m2,
                None if f.other is None else str(f.other),
            )
        )
    return out


def check_plots(
    plots: gpd.GeoDataFrame,
    *,
    unit: gpd.GeoDataFrame,
    unit_label: str,
    existing: gpd.GeoDataFrame | None,
    survey: gpd.GeoDataFrame,
    survey_construction: np.ndarray,
    survey_label: str,
    pack: PolicyPack,
    at: date,
) -> list[PlotIssue]:
    """Submission checks of valid plots (002 (三(二)) 落图).

    Parameters
    ----------
    plots : GeoDataFrame
        Normalised plots (:func:`normalise_plots`), valid polygons.
    unit : GeoDataFrame
        The township polygon(s) the plots must lie in.
    existing : GeoDataFrame, optional
        Plots already in the ledger (other townships and years); ids must not repeat and
        polygons must not overlap.
    survey, survey_construction : GeoDataFrame, bool array
        The latest survey and which of its parcels are construction land.

    Returns
    -------
    list of PlotIssue
        Errors and warnings, by plot.
    """
    issues: list[PlotIssue] = []
    ids = plots["plot_id"].astype(str).tolist()
    if existing is not None and len(existing):
        taken = set(existing["plot_id"].astype(str))
        for pid in ids:
            if pid in taken:
                issues.append(
                    PlotIssue(pid, "duplicate_id", "error", f"地块编号 {pid} 已被已提交的地块使用")
                )
    plane = Plane.for_frames(plots, unit)
    P = plane.project(plots)
    area = np.asarray(shapely.area(P), dtype=float)
    U = plane.project(unit)
    inside = intersect(P, U)
    inside_m2 = fsum_by(inside.ia, inside.area)
    overlaps: dict[int, list[tuple[str, float]]] = {}
    if existing is not None and len(existing):
        E = plane.project(existing)
        ov = intersect(P, E)
        eids = existing["plot_id"].astype(str).to_numpy()
        for i, j, a in zip(ov.ia, ov.ib, ov.area, strict=True):
            overlaps.setdefault(int(i), []).append((str(eids[j]), float(a)))
    survey_construction = np.asarray(survey_construction, dtype=bool)
    if survey.crs is not None and survey.crs == plots.crs and len(survey):
        # only parcels near the plots are projected and cut
        _, near = survey.sindex.query(plots.geometry.values, predicate="intersects")
        near = np.unique(near)
        survey, survey_construction = survey.iloc[near], survey_construction[near]
    S = plane.project(survey)
    cover = intersect(P, S)
    cover_m2 = fsum_by(cover.ia, cover.area)
    cons = survey_construction[cover.ib] if len(cover.ib) else np.zeros(0, dtype=bool)
    cons_m2 = fsum_by(cover.ia[cons], cover.area[cons])
    for i, row in enumerate(plots.itertuples(index=False)):
        declared = getattr(row, "declared_area_m2", None)
        facts = SubmissionFacts(
            plot_id=ids[i],
            unit=unit_label,
            survey=survey_label,
            area_m2=float(area[i]),
            outside_m2=max(float(area[i]) - inside_m2.get(i, 0.0), 0.0),
            overlaps=tuple(overlaps.get(i, ())),
            construction_m2=cons_m2.get(i, 0.0),
            cover_m2=cover_m2.get(i, 0.0),
            plot_type=str(row.plot_type),
            ownership=str(row.ownership),
            planned_use=str(row.planned_use),
            declared_m2=None if declared is None or pd.isna(declared) else float(declared),
        )
        for f in evaluate(pack, "submission", facts, at, subject_id=ids[i]):
            m2 = (
                f.facts.get("outside_m2")
                or f.facts.get("overlap_m2")
                or f.facts.get("uncovered_m2")
            )
            issues.append(
                PlotIssue(
                    ids[i],
                    f.outcome,
                    f.severity,
                    f.message,
                    None if m2 is None else float(m2),
                    f.facts.get("other_id"),
                )
            )
    return issues
