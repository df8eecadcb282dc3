"""Compliance check of a project red line (项目红线合规性审查).

For every parcel of the red line: its overlap with each control line and zone (area and share),
its land-use classes in each plan layer, and its match with the registered version (coordinate
tolerance, 004 (十一)). Verdicts come from the packs' rules (e.g. any overlap with 生态保护红线
is an error in conformance-national); slivers below the pack's tolerance never count as overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.accounting import overlay
from yizhangtu.codes import load_groups, load_table, normalize_codes
from yizhangtu.conformance._common import explode_patches, pack_param, require_crs
from yizhangtu.conformance.lines import line_types, pair_patches
from yizhangtu.conformance.rules import LineHit, MatchSubject, PlanHit, evaluate
from yizhangtu.conformance.tolerance import Tolerances, measure_match, split_slivers
from yizhangtu.errors import CRSError, InputError
from yizhangtu.geo.area import convert_area, ellipsoidal_area
from yizhangtu.policy import PolicyPack
from yizhangtu.policy.rules import Finding

__all__ = ["VERDICTS", "LineLayer", "PlanLayer", "RedlineCheck", "check_redline", "parcel_ids"]

#: Overall verdict by worst finding severity.
VERDICTS = {"error": "不通过", "warning": "需审查", "info": "通过"}


@dataclass(frozen=True)
class LineLayer:
    """A control line or zone to check against (``type_id`` from the line catalogue)."""

    type_id: str
    gdf: gpd.GeoDataFrame
    title: str | None = None
    layer: str | None = None


@dataclass(frozen=True)
class PlanLayer:
    """A plan layer: land-use codes (``code_system``) or plain zone values in ``class_field``."""

    name: str
    title: str
    gdf: gpd.GeoDataFrame
    class_field: str
    code_system: str | None = None


@dataclass(frozen=True)
class RedlineCheck:
    """Result of :func:`check_redline`.

    Attributes
    ----------
    parcels : DataFrame
        ``parcel``, ``name``, ``area_m2`` (ellipsoidal), ``verdict``.
    line_rows : DataFrame
        ``parcel``, ``line_type``, ``line_title``, ``overlap_m2``, ``share``, ``sliver_m2``,
        ``sliver_count``, ``outside_m2``.
    plan_rows : DataFrame
        ``parcel``, ``plan``, ``plan_title``, ``class``, ``class_label``, ``construction``,
        ``area_m2``, ``share``.
    match_rows : DataFrame
        ``parcel``, ``registered_id``, ``outcome``, ``hausdorff_m``, ``dx_m``, ``dy_m``,
        ``shift_m``, ``residual_m``, ``area_diff_m2``.
    patches : GeoDataFrame
        Overlap patches (slivers excluded) of lines and non-construction plan land, for maps and
        export: ``parcel``, ``kind`` (line/plan), ``what``, ``title``, ``severity`` (of the
        overlap finding: error, warning, info or None), ``area_m2``.
    findings : list of Finding
    verdict : str
        不通过 / 需审查 / 通过.
    """

    parcels: pd.DataFrame
    line_rows: pd.DataFrame
    plan_rows: pd.DataFrame
    match_rows: pd.DataFrame
    patches: gpd.GeoDataFrame
    findings: list[Finding]
    verdict: str
    tolerances: Tolerances
    redline: gpd.GeoDataFrame | None = field(repr=False, default=None)

    def to_dict(self, unit: str = "m2") -> dict[str, Any]:
        """JSON-ready dict, areas in ``unit``."""

        def recs(df: pd.DataFrame) -> list[dict[str, Any]]:
            d = df.copy()
            for c in [c for c in d.columns if c.endswith("_m2")]:
                d[c[:-3]] = convert_area(d[c].to_numpy(dtype=float), unit)
                d = d.drop(columns=c)
            return [
                {
                    str(k): (
                        None
                        if isinstance(v, float) and v != v
                        else (v.item() if hasattr(v, "item") else v)
                    )
                    for k, v in r.items()
                }
                for r in d.to_dict("records")
            ]

        return {
            "verdict": self.verdict,
            "area_unit": unit,
            "parcels": recs(self.parcels),
            "lines": recs(self.line_rows),
            "plans": recs(self.plan_rows),
            "registered": recs(self.match_rows),
            "findings": [f.to_dict() for f in self.findings],
            "tolerances": self.tolerances.to_dict(),
        }


def parcel_ids(redline: gpd.GeoDataFrame, id_field: str | None) -> list[str]:
    """Parcel labels: ``id_field`` values, else 地块1, 地块2 …; duplicates get a suffix."""
    if id_field and id_field in redline.columns:
        raw = ["" if pd.isna(v) else str(v) for v in redline[id_field]]
    else:
        raw = [""] * len(redline)
    out: list[str] = []
    for i, v in enumerate(raw, start=1):
        label = v or f"地块{i}"
        if label in out:
            label = f"{label}#{i}"
        out.append(label)
    return out


def _worst_severity(findings: Sequence[Finding]) -> str | None:
    sev = {f.severity for f in findings}
    return next((s for s in ("error", "warning", "info") if s in sev), None)


def _worst(findings: Sequence[Finding]) -> str:
    sev = {f.severity for f in findings}
    return (
        VERDICTS["error"]
        if "error" in sev
        else VERDICTS["warning"]
        if "warning" in sev
        else VERDICTS["info"]
    )


def _classify_plan(
    plan: PlanLayer, construction_group: str
) -> tuple[pd.Series, pd.Series, pd.Series]:
    values = plan.gdf[plan.class_field]
    if plan.code_system:
        codes = normalize_codes(values)
        table = load_table(plan.code_system)
        members = frozenset(load_groups("default").members(construction_group, plan.code_system))
        labels = codes.map(
            lambda c: table.get(c).name if c is not None and c in table else "(未知代码)"
        )
        constr = codes.map(lambda c: c in members if c is not None else False).astype(object)
        return codes.astype(object), labels.astype(object), constr
    vals = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
    return vals, vals, pd.Series([None] * len(vals), index=vals.index, dtype=object)


def check_redline(
    redline: gpd.GeoDataFrame,
    *,
    lines: Sequence[LineLayer] = (),
    plans: Sequence[PlanLayer] = (),
    registered: gpd.GeoDataFrame | None = None,
    registered_id_field: str | None = None,
    id_field: str | None = None,
    name_field: str | None = None,
    packs: Sequence[PolicyPack],
    tol: Tolerances,
    at: date,
    workers: int | None = 1,
) -> RedlineCheck:
    """Check a project red line against control lines, zones, plans and its registered version.

    Parameters
    ----------
    redline : GeoDataFrame
        One row per parcel (polygons), in the same CRS as the other layers.
    lines : sequence of LineLayer
        Control lines and zones (type ids of :func:`yizhangtu.conformance.lines.line_types`).
    plans : sequence of PlanLayer
        Plan layers whose classes are reported (and, with a code system, checked against the
        pack's construction group).
    registered : GeoDataFrame, optional
        Registered red lines; matched by ``registered_id_field`` = parcel id, else by overlap.
    id_field, name_field : str, optional
        Parcel id and name fields of ``redline``.
    packs : sequence of PolicyPack
        Conformance packs (verdict rules, e.g. conformance-national).
    tol : Tolerances
        Sliver thresholds (and the tolerances the registered match uses).
    at : date
        Evaluation date.
    """
    if len(redline) == 0:
        raise InputError("红线文件中没有地块", key="redline_empty")
    crs = require_crs(redline, "红线")
    for ll in lines:
        if not require_crs(ll.gdf, f"管控线 {ll.type_id} ").equals(crs):
            raise CRSError(
                f"管控线 {ll.type_id} 与红线坐标系不同",
                key="crs_mixed",
                hint="先把红线转换到工作空间的存储坐标系",
            )
    for pl in plans:
        if not require_crs(pl.gdf, f"规划图层 {pl.name} ").equals(crs):
            raise CRSError(f"规划图层 {pl.name} 与红线坐标系不同", key="crs_mixed")
    types = line_types()
    ids = parcel_ids(redline, id_field)
    rl = gpd.GeoDataFrame({"parcel": ids}, geometry=redline.geometry.values, crs=redline.crs)
    rl["area_m2"] = ellipsoidal_area(rl.geometry)
    names = [
        str(v) if name_field and name_field in redline.columns and not pd.isna(v) else ""
        for v in (
            redline[name_field]
            if name_field and name_field in redline.columns
            else [None] * len(redline)
        )
    ]
    findings: list[Finding] = []
    sev_of: dict[tuple[str, str], str | None] = {}
    patch_frames: list[gpd.GeoDataFrame] = []
    line_rows: list[dict[str, Any]] = []
    area_of = dict(zip(rl["parcel"], rl["area_m2"], strict=True))

    # -- control lines and zones
    for ll in lines:
        title = ll.title or (types[ll.type_id].title if ll.type_id in types else ll.type_id)
        inter = pair_patches(
            rl[["parcel", "geometry"]], ll.gdf[[ll.gdf.geometry.name]], workers=workers
        )
        kept, slivers = split_slivers(inter, tol)
        outside_by: dict[str, float] = {}
        if len(ll.gdf):
            diff = overlay(
                rl[["parcel", "geometry"]],
                ll.gdf[[ll.gdf.geometry.name]],
                how="difference",
                workers=workers,
            )
            dk, _ = split_slivers(explode_patches(diff), tol)
            outside_by = dk.groupby("parcel")["area_m2"].sum().to_dict() if len(dk) else {}
        else:
            outside_by = dict(area_of)
        for pid in ids:
            k = kept[kept["a_parcel"] == pid] if len(kept) else kept
            s = slivers[slivers["a_parcel"] == pid] if len(slivers) else slivers
            hit = LineHit(
                parcel=pid,
                line_type=ll.type_id,
                line_title=title,
                redline_m2=float(area_of[pid]),
                overlap_m2=float(k["area_m2"].sum()) if len(k) else 0.0,
                sliver_m2=float(s["area_m2"].sum()) if len(s) else 0.0,
                sliver_count=len(s),
                outside_m2=float(outside_by.get(pid, 0.0)),
            )
            line_rows.append(
                {
                    "parcel": pid,
                    "line_type": ll.type_id,
                    "line_title": title,
                    "layer": ll.layer,
                    "overlap_m2": hit.overlap_m2,
                    "share": hit.share,
                    "sliver_m2": hit.sliver_m2,
                    "sliver_count": hit.sliver_count,
                    "outside_m2": hit.outside_m2,
                }
            )
            fs = evaluate(packs, "redline_line", hit, at, subject_id=pid)
            findings.extend(fs)
            sev_of[(pid, ll.type_id)] = _worst_severity([f for f in fs if f.outcome == "overlap"])
        if len(kept):
            patch_frames.append(
                gpd.GeoDataFrame(
                    {
                        "parcel": kept["a_parcel"].to_numpy(),
                        "kind": "line",
                        "what": ll.type_id,
                        "title": title,
                        "severity": [sev_of.get((p, ll.type_id)) for p in kept["a_parcel"]],
                        "area_m2": kept["area_m2"].to_numpy(),
                    },
                    geometry=kept.geometry.values,
                    crs=crs,
                )
            )

    # -- plans
    plan_rows: list[dict[str, Any]] = []
    group = pack_param(packs, "plan_construction_group", "text")[0] if plans else "construction"
    for pl in plans:
        if pl.class_field not in pl.gdf.columns:
            raise InputError(
                f"规划图层 {pl.name} 缺少字段 {pl.class_field}",
                key="plan_field_missing",
                field=pl.class_field,
                hint="导入时设置 --code-field, 或用 --plan 图层:字段 指定",
            )
        cls, labels, constr = _classify_plan(pl, group)
        P = gpd.GeoDataFrame(
            {"cls": cls.to_numpy(), "label": labels.to_numpy(), "constr": constr.to_numpy()},
            geometry=pl.gdf.geometry.values,
            crs=pl.gdf.crs,
        )
        inter = (
            pair_patches(rl[["parcel", "geometry"]], P, workers=workers)
            if len(P)
            else pair_patches(rl[["parcel", "geometry"]], P.iloc[:0])
        )
        kept, _sl = split_slivers(inter, tol)
        for pid in ids:
            k = kept[kept["a_parcel"] == pid] if len(kept) else kept
            covered = float(inter[inter["a_parcel"] == pid]["area_m2"].sum()) if len(inter) else 0.0
            uncovered = max(0.0, float(area_of[pid]) - covered)
            if uncovered < tol.sliver_area_m2:
                uncovered = 0.0
            grouped = (
                k.groupby(["b_cls", "b_label"], dropna=False)
                .agg(area_m2=("area_m2", "sum"), constr=("b_constr", "first"))
                .reset_index()
                if len(k)
                else pd.DataFrame(columns=["b_cls", "b_label", "area_m2", "constr"])
            )
            for r in grouped.to_dict("records"):
                constr = r["constr"]
                plan_rows.append(
                    {
                        "parcel": pid,
                        "plan": pl.name,
                        "plan_title": pl.title,
                        "class": r["b_cls"],
                        "class_label": r["b_label"],
                        "construction": None
                        if constr is None or (isinstance(constr, float) and np.isnan(constr))
                        else bool(constr),
                        "area_m2": float(r["area_m2"]),
                        "share": float(r["area_m2"]) / float(area_of[pid]) if area_of[pid] else 0.0,
                    }
                )
            if pl.code_system:
                non = grouped[grouped["constr"] == False]  # noqa: E712 - object column of bools
                phit = PlanHit(
                    parcel=pid,
                    plan=pl.name,
                    plan_title=pl.title,
                    redline_m2=float(area_of[pid]),
                    nonconstruction_m2=float(non["area_m2"].sum()) if len(non) else 0.0,
                    uncovered_m2=uncovered,
                    classes="、".join(
                        f"{c} {lab}" for c, lab in zip(non["b_cls"], non["b_label"], strict=True)
                    )
                    if len(non)
                    else "",
                )
                fs = evaluate(packs, "redline_plan", phit, at, subject_id=pid)
                findings.extend(fs)
                sev_of[(pid, pl.name)] = _worst_severity(
                    [f for f in fs if f.outcome == "nonconstruction"]
                )
        if pl.code_system and len(kept):
            nk = kept[kept["b_constr"] == False]  # noqa: E712
            if len(nk):
                patch_frames.append(
                    gpd.GeoDataFrame(
                        {
                            "parcel": nk["a_parcel"].to_numpy(),
                            "kind": "plan",
                            "what": pl.name,
                            "title": [
                                f"{pl.title}: {c} {lab}"
                                for c, lab in zip(nk["b_cls"], nk["b_label"], strict=True)
                            ],
                            "severity": [sev_of.get((p, pl.name)) for p in nk["a_parcel"]],
                            "area_m2": nk["area_m2"].to_numpy(),
                        },
                        geometry=nk.geometry.values,
                        crs=crs,
                    )
                )

    # -- registered versions
    match_rows: list[dict[str, Any]] = []
    if registered is not None:
        if not require_crs(registered, "登记红线").equals(crs):
            raise CRSError("登记红线与红线坐标系不同", key="crs_mixed")
        reg_ids = (
            [str(v) for v in registered[registered_id_field]]
            if registered_id_field and registered_id_field in registered.columns
            else [str(i) for i in registered.index]
        )
        for i, pid in enumerate(ids):
            geom = rl.geometry.iloc[[i]]
            idx = [j for j, r in enumerate(reg_ids) if r == pid]
            if not idx and len(registered):
                # no id match: the registered feature overlapping most (IoU ≥ 0.5)
                inter = ellipsoidal_area(registered.geometry.intersection(geom.iloc[0]))
                union = ellipsoidal_area(registered.geometry.union(geom.iloc[0]))
                with np.errstate(divide="ignore", invalid="ignore"):
                    iou = np.where(union > 0, inter / union, 0.0)
                if iou.size and np.nanmax(iou) >= 0.5:
                    idx = [int(np.nanargmax(iou))]
            if not idx:
                subj = MatchSubject(parcel=pid, registered_id=None)
                match_rows.append({"parcel": pid, "registered_id": None, "outcome": "unregistered"})
            else:
                m = measure_match(geom, registered.geometry.iloc[idx])
                subj = MatchSubject(parcel=pid, registered_id=reg_ids[idx[0]], measure=m)
                match_rows.append({"parcel": pid, "registered_id": reg_ids[idx[0]], **m.to_dict()})
            fs = evaluate(packs, "redline_match", subj, at, subject_id=pid)
            if fs:
                match_rows[-1]["outcome"] = fs[0].outcome
            findings.extend(fs)

    by_parcel = {pid: _worst([f for f in findings if f.subject == pid]) for pid in ids}
    parcels = pd.DataFrame(
        {
            "parcel": ids,
            "name": names,
            "area_m2": rl["area_m2"].to_numpy(),
            "verdict": [by_parcel[p] for p in ids],
        }
    )
    patches = (
        gpd.GeoDataFrame(pd.concat(patch_frames, ignore_index=True), crs=crs)
        if patch_frames
        else gpd.GeoDataFrame(
            {"parcel": [], "kind": [], "what": [], "title": [], "severity": [], "area_m2": []},
            geometry=gpd.GeoSeries([], crs=crs),
        )
    )
    return RedlineCheck(
        parcels=parcels,
        line_rows=pd.DataFrame(
            line_rows,
            columns=[
                "parcel",
                "line_type",
                "line_title",
                "layer",
                "overlap_m2",
                "share",
                "sliver_m2",
                "sliver_count",
                "outside_m2",
            ],
        ),
        plan_rows=pd.DataFrame(
            plan_rows,
            columns=[
                "parcel",
                "plan",
                "plan_title",
                "class",
                "class_label",
                "construction",
                "area_m2",
                "share",
            ],
        ),
        match_rows=pd.DataFrame(match_rows),
        patches=patches,
        findings=findings,
        verdict=_worst(findings),
        tolerances=tol,
        redline=rl,
    )
