"""Library views (pure): hierarchy checks, zone statistics, town linkage, due-date timeline.

Areas are ellipsoidal (CGCS2000) via :func:`yizhangtu.geo.area.ellipsoidal_area`. The
containment tolerance is a metric buffer applied in a CGCS2000 3-degree Gauss–Krüger zone
chosen from the centre of the data; the part outside is then measured on the ellipsoid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.errors import ValidationError
from yizhangtu.geo.area import convert_area, ellipsoidal_area, gk_zone_epsg, to_geographic
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding, jsonable
from yizhangtu.renewal.model import (
    RenewalLibrary,
    RenewalUnit,
    Stage,
    Zone,
    ZoneTier,
    parse_enum,
    unit_from_record,
    unit_to_record,
)
from yizhangtu.renewal.rules import (
    PARAM_UNITS,
    Placement,
    evaluate_library,
    evaluate_placements,
    evaluate_town,
    library_as_of,
    linkage_areas,
    prepare_pack,
    unit_deadlines,
    zone_deadlines,
)

__all__ = [
    "LibraryReport",
    "check_hierarchy",
    "findings_frame",
    "library_report",
    "placements",
    "timeline",
    "town_linkage",
    "units_from_frame",
    "units_to_frame",
    "zone_statistics",
    "zones_from_frame",
]

_ZONE_COLUMNS = ("zone_id", "tier")

#: Tiers a child may sit in (004 (三)): units in 中圈 or a 工改工 cluster, 中圈 in 大圈.
_EXPECTED_PARENT: dict[str, tuple[str, ...]] = {
    "unit": (ZoneTier.AREA.value, ZoneTier.INDUSTRIAL_CLUSTER.value),
    ZoneTier.AREA.value: (ZoneTier.PRIORITY_ZONE.value,),
    ZoneTier.INDUSTRIAL_CLUSTER.value: (ZoneTier.PRIORITY_ZONE.value,),
    ZoneTier.PRIORITY_ZONE.value: (),
}


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT or (
        hasattr(pd, "isna") and not isinstance(value, list | tuple | dict) and pd.isna(value)
    ):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, np.generic):
        return value.item()
    return value


def zones_from_frame(frame: gpd.GeoDataFrame) -> tuple[Zone, ...]:
    """Zones from a GeoDataFrame (``zone_id``, ``tier``, geometry, optional dates and scale).

    ``area_m2`` is the ellipsoidal area of each geometry.
    """
    missing = [c for c in _ZONE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"片区图层缺少字段: {', '.join(missing)}", key="missing_field", field=missing[0]
        )
    areas = ellipsoidal_area(frame.geometry)
    out = []
    seen: set[str] = set()
    for i, (_, row) in enumerate(frame.iterrows()):
        zid = str(row["zone_id"])
        if zid in seen:
            raise ValidationError(
                f"片区编号重复: {zid}", key="duplicate_zone_id", field="zone_id", feature=zid
            )
        seen.add(zid)
        get = lambda name, r=row: _cell(r[name]) if name in frame.columns else None  # noqa: E731
        out.append(
            Zone(
                zone_id=zid,
                tier=parse_enum(ZoneTier, row["tier"], "tier", zid),
                name=str(get("name") or zid),
                town=get("town"),
                parent_id=str(get("parent_id")) if get("parent_id") is not None else None,
                area_m2=float(areas[i]) if areas[i] > 0 else None,
                planned_scale_m2=get("planned_scale_m2"),
                started_on=get("started_on"),
                first_demolition_on=get("first_demolition_on"),
                completed_on=get("completed_on"),
                synthetic=bool(get("synthetic") or False),
            )
        )
    return tuple(out)


def units_from_frame(frame: pd.DataFrame) -> tuple[RenewalUnit, ...]:
    """Read units from a (Geo)DataFrame of flat records (see ``unit_to_record``)."""
    cols = [
        c
        for c in frame.columns
        if c != "geometry"
        and not (isinstance(frame, gpd.GeoDataFrame) and c == frame.geometry.name)
    ]
    out = []
    for _, row in frame[cols].iterrows():
        out.append(unit_from_record({c: _cell(row[c]) for c in cols}))
    return tuple(out)


def units_to_frame(
    units: Iterable[RenewalUnit], geometries: dict[str, Any] | None = None, crs: Any = None
) -> pd.DataFrame:
    """Flat records of units; a GeoDataFrame when ``geometries`` (unit_id → geometry) is given."""
    records = [unit_to_record(u) for u in units]
    df = pd.DataFrame.from_records(records)
    if geometries is None:
        return df
    geoms = [geometries.get(r["unit_id"]) for r in records]
    return gpd.GeoDataFrame(df, geometry=geoms, crs=crs)


def _metric_crs(frames: Iterable[gpd.GeoDataFrame]) -> CRS:
    bounds = np.array([f.total_bounds for f in frames if len(f)])
    lon = float((bounds[:, 0].min() + bounds[:, 2].max()) / 2)
    return CRS.from_epsg(int(gk_zone_epsg(lon)))


def placements(
    zones: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame | None,
    pack: PolicyPack,
    at: date,
) -> list[Placement]:
    """Containment facts: each 中圈/cluster in its 大圈 and each unit in its 中圈/cluster.

    The parent is buffered by the pack's ``hierarchy_tolerance`` (metres, 004 (十一)); the
    part of the child outside it is measured on the ellipsoid.
    """
    tol = float(pack.param("hierarchy_tolerance", unit=PARAM_UNITS["hierarchy_tolerance"], at=at))
    zg = to_geographic(zones.geometry)
    frames = [gpd.GeoDataFrame(geometry=zg)]
    ug = None
    if units is not None and len(units):
        ug = to_geographic(units.geometry)
        frames.append(gpd.GeoDataFrame(geometry=ug))
    metric = _metric_crs(frames)
    zm = zg.to_crs(metric)
    zone_geom = {str(z): g for z, g in zip(zones["zone_id"], zm.values, strict=True)}
    zone_tier = {
        str(z): parse_enum(ZoneTier, t, "tier", str(z)).value
        for z, t in zip(zones["zone_id"], zones["tier"], strict=True)
    }
    zone_parent = {
        str(z): (str(p) if _cell(p) is not None else None)
        for z, p in zip(
            zones["zone_id"],
            zones["parent_id"] if "parent_id" in zones else [None] * len(zones),
            strict=True,
        )
    }
    pairs: list[tuple[str, str, str, str | None, Any]] = []
    for zid, geom in zone_geom.items():
        pairs.append((zid, "zone", zone_tier[zid], zone_parent[zid], geom))
    if ug is not None and units is not None:
        um = ug.to_crs(metric)
        area_ids = units["area_id"] if "area_id" in units else [None] * len(units)
        for uid, aid, geom in zip(units["unit_id"], area_ids, um.values, strict=True):
            pairs.append(
                (str(uid), "unit", "unit", str(aid) if _cell(aid) is not None else None, geom)
            )
    diffs: list[Any] = []
    idx: list[int] = []
    out_raw: list[dict[str, Any]] = []
    for child_id, kind, tier, parent_id, geom in pairs:
        expected = _EXPECTED_PARENT[tier]
        found = parent_id in zone_geom if parent_id is not None else False
        rec = {
            "child_id": child_id,
            "child_kind": kind,
            "child_tier": "单元" if kind == "unit" else tier,
            "parent_id": parent_id,
            "parent_tier": zone_tier.get(parent_id) if parent_id is not None else None,
            "parent_found": found,
            "expected_tiers": expected,
            "outside_area_m2": None,
            "child_area_m2": None,
            "tolerance_m": tol,
        }
        if found and geom is not None and not shapely.is_empty(geom):
            parent = zone_geom[parent_id]  # type: ignore[index]
            diffs.append(shapely.difference(geom, shapely.buffer(parent, tol)))
            diffs.append(geom)
            idx.append(len(out_raw))
        out_raw.append(rec)
    if diffs:
        areas = ellipsoidal_area(gpd.GeoSeries(diffs, crs=metric))
        for k, i in enumerate(idx):
            out_raw[i]["outside_area_m2"] = float(areas[2 * k])
            out_raw[i]["child_area_m2"] = float(areas[2 * k + 1])
    return [Placement(**r) for r in out_raw if r["expected_tiers"] or r["parent_id"] is not None]


def check_hierarchy(
    zones: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None, at: date, pack: PolicyPack
) -> list[Finding]:
    """Check the hierarchy: unit inside its 中圈, 中圈 inside its 大圈 (004 (三)(十一))."""
    prepare_pack(pack, at)
    return evaluate_placements(placements(zones, units, pack, at), at, pack)


def zone_statistics(zones: gpd.GeoDataFrame, library: RenewalLibrary | None = None) -> pd.DataFrame:
    """One row per zone: tier, ellipsoidal area (m², km², 亩), child zones and units in it."""
    zs = zones_from_frame(zones)
    rows = []
    for z in zs:
        units = library.units_in_zone(z.zone_id) if library is not None else []
        active = [u for u in units if u.stage not in (Stage.WITHDRAWN, Stage.BARRED)]
        unit_m2 = float(sum(u.land_area_m2 for u in active))
        rows.append(
            {
                "zone_id": z.zone_id,
                "tier": z.tier.value,
                "name": z.name,
                "town": z.town,
                "parent_id": z.parent_id,
                "area_m2": z.area_m2,
                "area_km2": float(convert_area(z.area_m2, "km2")) if z.area_m2 else None,
                "area_mu": float(convert_area(z.area_m2, "mu")) if z.area_m2 else None,
                "child_zones": sum(1 for c in zs if c.parent_id == z.zone_id),
                "unit_count": len(active),
                "unit_land_m2": unit_m2,
                "unit_land_mu": float(convert_area(unit_m2, "mu")),
                "planned_scale_m2": z.planned_scale_m2,
                "synthetic": z.synthetic,
            }
        )
    return pd.DataFrame(rows)


def town_linkage(library: RenewalLibrary, at: date, pack: PolicyPack) -> pd.DataFrame:
    """Each town's 工改工 linkage ratio with the pack's verdict (004 (十四))."""
    prepare_pack(pack, at)
    lib = library_as_of(library, at)

    def get(name: str) -> Any:
        return pack.param(name, unit=PARAM_UNITS[name], at=at)

    ind_types, res_types = get("linkage_industrial_types"), get("linkage_rescom_types")
    exclude, minimum = get("linkage_exclude_old_village"), get("linkage_share_min")
    rows = []
    for town in lib.town_names():
        ind, res, excl = linkage_areas(lib.units_in_town(town), ind_types, res_types, exclude)
        found = [
            f for f in evaluate_town(town, at, pack, library) if f.rule_id == "renewal.linkage"
        ]
        f = found[0] if found else None
        rows.append(
            {
                "town": town,
                "industrial_mu": float(convert_area(ind, "mu")),
                "rescom_mu": float(convert_area(res, "mu")),
                "excluded_old_village_mu": float(convert_area(excl, "mu")),
                "share": ind / (ind + res) if ind + res > 0 else None,
                "min_share": minimum,
                "outcome": f.outcome if f else None,
                "severity": f.severity if f else None,
                "message": f.message if f else None,
                "clause": pack.parameter("linkage_share_min").clause,
            }
        )
    return pd.DataFrame(rows)


def timeline(
    library: RenewalLibrary, at: date, pack: PolicyPack, days: int | None = None
) -> pd.DataFrame:
    """List deadlines due within ``days`` of ``at`` (pack ``timeline_horizon``) and overdue ones."""
    prepare_pack(pack, at)
    horizon = days if days is not None else pack.param("timeline_horizon", unit="day", at=at)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0:
        raise ValidationError(
            f"时间窗须为非负整数天数: {horizon!r}", key="bad_horizon", field="days"
        )
    end = at + timedelta(days=horizon)
    rows = []
    lib = library_as_of(library, at)
    for u in lib.units:
        if u.working_stage is None:
            continue
        for dl in unit_deadlines(u, pack, at):
            rows.append(_timeline_row(dl, at, u.town, u.stage.value, u.deadline_exemption))
    for z in lib.zones:
        for dl in zone_deadlines(z, pack, at):
            rows.append(_timeline_row(dl, at, z.town, z.tier.value, None))
    cols = [
        "subject",
        "town",
        "stage",
        "deadline",
        "label",
        "start",
        "due",
        "days_left",
        "status",
        "exemption",
        "clause",
    ]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    keep = df["status"].isin(["overdue", "due_today"]) | (
        (df["status"] == "pending") & (df["due"] <= end)
    )
    return df[keep].sort_values(["due", "subject"]).reset_index(drop=True)


def _timeline_row(
    dl: Any, at: date, town: str | None, stage: str, exemption: str | None
) -> dict[str, Any]:
    return {
        "subject": dl.subject,
        "town": town,
        "stage": stage,
        "deadline": dl.kind,
        "label": dl.label,
        "start": dl.start,
        "due": dl.due,
        "days_left": dl.days_left(at),
        "status": dl.status(at),
        "exemption": exemption,
        "clause": dl.clause,
    }


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """Return findings as a table (facts as JSON-ready dicts)."""
    rows = [f.to_dict() for f in findings]
    cols = [
        "rule_id",
        "outcome",
        "severity",
        "severity_label",
        "message",
        "clause",
        "subject",
        "facts",
    ]
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class LibraryReport:
    """Everything the library says on one date."""

    at: date
    pack: dict[str, str]
    findings: tuple[Finding, ...]
    zone_stats: pd.DataFrame
    linkage: pd.DataFrame
    timeline: pd.DataFrame
    synthetic: bool

    def counts(self) -> dict[str, int]:
        """Count findings by severity."""
        out = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "at": self.at.isoformat(),
            "pack": dict(self.pack),
            "synthetic": self.synthetic,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "zone_stats": jsonable(self.zone_stats.to_dict(orient="records")),
            "linkage": jsonable(self.linkage.to_dict(orient="records")),
            "timeline": jsonable(self.timeline.to_dict(orient="records")),
        }


def library_report(
    library: RenewalLibrary,
    at: date,
    pack: PolicyPack,
    zones: gpd.GeoDataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    days: int | None = None,
) -> LibraryReport:
    """Gather findings, zone statistics, linkage and timeline for the library on ``at``."""
    prepare_pack(pack, at)
    places = placements(zones, units, pack, at) if zones is not None else []
    findings = evaluate_library(library, at, pack, places)
    return LibraryReport(
        at=at,
        pack=pack.ref(),
        findings=tuple(findings),
        zone_stats=zone_statistics(zones, library) if zones is not None else pd.DataFrame(),
        linkage=town_linkage(library, at, pack),
        timeline=timeline(library, at, pack, days),
        synthetic=any(u.synthetic for u in library.units)
        or any(z.synthetic for z in library.zones),
    )
