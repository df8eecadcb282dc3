"""Consent and signing ratios of any polygon or renewal unit, computed from the registry.

Counting method (pack ``rights-counting``, every choice a parameter):

1. A parcel is in the scope when its representative point lies in the scope polygon
   (``parcel_membership``); the whole parcel counts.
2. Its land area is the registered area, or the ellipsoidal area when none is registered
   (``area_basis``); parcels measured that way are listed.
3. A shared parcel's area is split among its holders by share (``shared_parcel_split``).
4. Each holder counts once by head however many parcels it holds (``head_count_basis``).
5. A holder agrees by area on the parcels its valid records cover, and by head only when
   it agrees for all its parcels in the scope (``head_agrees_when``). A signed agreement
   counts as consent (``signing_implies_consent``).
6. Special holders (境外, 下落不明, 权属不明, 无主) always stay in both denominators; their
   records count only when they name the procedure used (``special_needs_procedure``).
7. Records count on the evaluation date: dated on or before it, not void, not withdrawn
   by then, and not older than the start of the unit's current round.

:func:`apply_registry` puts the computed figures (``source='computed'``) into the units the
registry covers, so that the renewal rules (80 %, 004 (十); 95 %, 004 (十六)) read them;
other units keep their entered figures (``source='entered'``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS

from yizhangtu.errors import CRSError, PolicyError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy.pack import PolicyPack
from yizhangtu.policy.rules import Finding, jsonable
from yizhangtu.renewal.model import ConsentFigures, RenewalLibrary, RenewalUnit, Stage
from yizhangtu.rights.model import HolderStatus, RecordKind, Registry
from yizhangtu.rights.rules import PARAM_UNITS, RULES, HolderFacts, ScopeFacts

__all__ = [
    "HolderLine",
    "ScopeRatios",
    "apply_registry",
    "figure_sources",
    "round_start",
    "scope_ratios",
    "unit_ratios",
]

_CHOICES: dict[str, tuple[str, ...]] = {
    "parcel_membership": ("representative_point",),
    "area_basis": ("registered", "geometry"),
    "head_count_basis": ("distinct_holder",),
    "shared_parcel_split": ("by_share",),
    "head_agrees_when": ("all_parcels", "any_parcel"),
}


def _param(pack: PolicyPack, name: str, at: date) -> Any:
    value = pack.param(name, unit=PARAM_UNITS[name], at=at)
    allowed = _CHOICES.get(name)
    if allowed is not None and value not in allowed:
        raise PolicyError(
            f"政策包 {pack.id} 的参数 {name} 取值 {value!r} 不受支持",
            key="policy_param_value",
            field=name,
            hint="可选: " + ", ".join(allowed),
        )
    return value


@dataclass(frozen=True)
class HolderLine:
    """One holder in a scope: land, agreement by area and by head, special status."""

    holder_id: str
    name: str
    kind: str
    status: str
    id_masked: str | None
    parcels: tuple[str, ...]
    land_m2: float
    consented_m2: float
    signed_m2: float
    consented: bool
    signed: bool
    via_procedure: tuple[str, ...] = ()
    ignored_records: tuple[str, ...] = ()

    @property
    def special(self) -> bool:
        """True for special holders (004 (十六))."""
        return self.status != HolderStatus.NORMAL.value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (ID masked)."""
        return {
            "holder_id": self.holder_id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "id_masked": self.id_masked,
            "parcels": list(self.parcels),
            "land_m2": self.land_m2,
            "consented_m2": self.consented_m2,
            "signed_m2": self.signed_m2,
            "consented": self.consented,
            "signed": self.signed,
            "special": self.special,
            "via_procedure": list(self.via_procedure),
            "ignored_records": list(self.ignored_records),
        }


@dataclass(frozen=True)
class ScopeRatios:
    """Ratios of one scope on one date, with the holders behind them."""

    scope_id: str
    at: date
    parcels: tuple[str, ...]
    area_total_m2: float
    heads_total: int
    coverage: float | None
    covered: bool
    consent: ConsentFigures | None
    signing: ConsentFigures | None
    holders: tuple[HolderLine, ...]
    area_from_geometry: tuple[str, ...] = ()
    unassigned: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    pack: Mapping[str, str] = field(default_factory=dict)
    synthetic: bool = False
    provenance_id: str | None = None

    def land_by_holder(self) -> dict[str, float]:
        """Holder id → land area in the scope (m²)."""
        return {h.holder_id: h.land_m2 for h in self.holders}

    def missing(self, kind: Literal["consent", "signing"]) -> list[HolderLine]:
        """Holders who have not (fully) consented or signed."""
        flag = "consented" if kind == "consent" else "signed"
        return [h for h in self.holders if not getattr(h, flag)]

    def special(self) -> list[HolderLine]:
        """Return the special holders in the scope."""
        return [h for h in self.holders if h.special]

    def holders_frame(self) -> pd.DataFrame:
        """Holders as a table (masked IDs)."""
        cols = list(HolderLine.__dataclass_fields__)
        rows = [h.to_dict() for h in self.holders]
        return pd.DataFrame(rows, columns=[*cols, "special"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""

        def fig(f: ConsentFigures | None) -> dict[str, Any] | None:
            if f is None:
                return None
            return {
                "area_share": f.area_share,
                "head_share": f.head_share,
                "source": f.source,
                "as_of": f.as_of,
                "area_total_m2": f.area_total_m2,
                "heads_total": f.heads_total,
            }

        return jsonable(
            {
                "scope_id": self.scope_id,
                "at": self.at,
                "synthetic": self.synthetic,
                "parcels": list(self.parcels),
                "area_total_m2": self.area_total_m2,
                "heads_total": self.heads_total,
                "coverage": self.coverage,
                "covered": self.covered,
                "consent": fig(self.consent),
                "signing": fig(self.signing),
                "land_by_holder": self.land_by_holder(),
                "missing_consent": [h.holder_id for h in self.missing("consent")],
                "missing_signing": [h.holder_id for h in self.missing("signing")],
                "special": [h.to_dict() for h in self.special()],
                "holders": [h.to_dict() for h in self.holders],
                "area_from_geometry": list(self.area_from_geometry),
                "unassigned_parcels": list(self.unassigned),
                "findings": [f.to_dict() for f in self.findings],
                "pack": dict(self.pack),
                "provenance_id": self.provenance_id,
            }
        )


def _scope_geometry(scope: Any, crs: CRS | None) -> Any:
    if isinstance(scope, gpd.GeoDataFrame):
        scope = scope.geometry
    if isinstance(scope, gpd.GeoSeries):
        if crs is not None and scope.crs is not None and CRS.from_user_input(scope.crs) != crs:
            scope = scope.to_crs(crs)
        return shapely.union_all(scope.values)
    return scope


def scope_ratios(
    registry: Registry,
    scope: Any,
    at: date,
    pack: PolicyPack,
    *,
    scope_id: str | None = None,
    unit_id: str | None = None,
    since: date | None = None,
) -> ScopeRatios:
    """Compute consent and signing ratios of a polygon from the registry on ``at``.

    Parameters
    ----------
    registry : Registry
        Parcels (with geometries in ``registry.crs``), holders, shares and records.
    scope : shapely geometry, GeoSeries or GeoDataFrame
        The polygon (a renewal unit's demolition scope); a bare geometry is in
        ``registry.crs``, a GeoSeries is reprojected.
    at : date
        Evaluation date: later records and withdrawals are ignored.
    pack : PolicyPack
        A ``rights`` pack (e.g. ``rights-counting``).
    scope_id : str, optional
        Label of the scope in results (default: ``unit_id`` or ``范围``).
    unit_id : str, optional
        Count only records made for this renewal unit; None counts records of any unit.
    since : date, optional
        Ignore records dated before this day (start of the unit's current round).
    """
    pack.ensure_valid_at(at)
    RULES.ensure_pack(pack)
    membership = _param(pack, "parcel_membership", at)
    basis = _param(pack, "area_basis", at)
    _param(pack, "head_count_basis", at)
    _param(pack, "shared_parcel_split", at)
    head_rule = _param(pack, "head_agrees_when", at)
    implies = _param(pack, "signing_implies_consent", at)
    needs_procedure = _param(pack, "special_needs_procedure", at)
    cov_min = _param(pack, "registry_coverage_min", at)
    sid = scope_id or unit_id or "范围"
    del membership  # one method supported, checked above

    crs = CRS.from_user_input(registry.crs) if registry.crs is not None else None
    placed = [
        p for p in registry.parcels if p.geometry is not None and not shapely.is_empty(p.geometry)
    ]
    if placed and crs is None:
        raise CRSError("权益登记库的宗地图形没有坐标参考系", key="crs_missing", field="crs")
    geom = _scope_geometry(scope, crs)
    inside: list[Any] = []
    if placed and geom is not None and not shapely.is_empty(geom):
        points = shapely.point_on_surface([p.geometry for p in placed])
        hits = shapely.covers(geom, points)
        inside = [p for p, hit in zip(placed, hits, strict=True) if hit]

    # ---- areas
    coverage: float | None = None
    area_of: dict[str, float] = {}
    from_geometry: list[str] = []
    if inside:
        geoms = [p.geometry for p in inside]
        union = shapely.union_all(geoms)
        series = gpd.GeoSeries([*geoms, shapely.intersection(union, geom), geom], crs=crs)
        areas = ellipsoidal_area(series)
        n = len(inside)
        coverage = float(areas[n] / areas[n + 1]) if areas[n + 1] > 0 else None
        for i, p in enumerate(inside):
            if basis == "registered" and p.registered_area_m2 is not None:
                area_of[p.parcel_code] = p.registered_area_m2
            else:
                area_of[p.parcel_code] = float(areas[i])
                if basis == "registered":
                    from_geometry.append(p.parcel_code)

    # ---- holder-parcel pieces
    by_parcel = registry.shares_by_parcel()
    holders = registry.holder_map()
    pieces: dict[str, dict[str, float]] = defaultdict(dict)  # holder → parcel → m²
    for p in inside:
        for s in by_parcel.get(p.parcel_code, []):
            pieces[s.holder_id][p.parcel_code] = area_of[p.parcel_code] * s.share

    # ---- records in force
    records = [
        r
        for r in registry.records
        if r.holder_id in pieces
        and (unit_id is None or r.unit_id == unit_id)
        and r.counts_on(at, since)
    ]
    lines: list[HolderLine] = []
    for hid in sorted(pieces):
        h = holders.get(hid)
        status = h.status.value if h else HolderStatus.UNKNOWN.value
        special = status != HolderStatus.NORMAL.value
        mine = [r for r in records if r.holder_id == hid]
        counted, ignored, via = [], [], []
        for r in mine:
            if special and needs_procedure and not r.via_procedure:
                ignored.append(r.record_id)
            else:
                counted.append(r)
                if r.via_procedure:
                    via.append(r.via_procedure)
        consent_p: dict[str, bool] = {}
        sign_p: dict[str, bool] = {}
        for code in pieces[hid]:
            signed = any(r.kind is RecordKind.SIGNING and r.covers(code) for r in counted)
            agreed = any(r.kind is RecordKind.CONSENT and r.covers(code) for r in counted)
            sign_p[code] = signed
            consent_p[code] = agreed or (implies and signed)
        agg = all if head_rule == "all_parcels" else any
        land = pieces[hid]
        lines.append(
            HolderLine(
                holder_id=hid,
                name=h.name if h else hid,
                kind=h.kind.value if h else "",
                status=status,
                id_masked=h.id_masked if h else None,
                parcels=tuple(sorted(land)),
                land_m2=float(sum(land.values())),
                consented_m2=float(sum(a for c, a in land.items() if consent_p[c])),
                signed_m2=float(sum(a for c, a in land.items() if sign_p[c])),
                consented=agg(consent_p.values()),
                signed=agg(sign_p.values()),
                via_procedure=tuple(sorted(set(via))),
                ignored_records=tuple(sorted(ignored)),
            )
        )

    area_total = float(sum(area_of.values()))
    heads = len(lines)
    parcels_n = len(inside)
    covered = bool(
        heads and area_total > 0 and coverage is not None and coverage >= cov_min - 1e-12
    )
    note = f"权益登记库计算: {parcels_n}宗地、{heads}名权益人"

    def figures(kind: Literal["consent", "signing"]) -> ConsentFigures | None:
        if heads == 0 or area_total <= 0:
            return None
        yes_m2 = sum(ln.consented_m2 if kind == "consent" else ln.signed_m2 for ln in lines)
        yes_heads = sum(1 for ln in lines if (ln.consented if kind == "consent" else ln.signed))
        return ConsentFigures(
            area_share=min(1.0, max(0.0, yes_m2 / area_total)),
            head_share=yes_heads / heads,
            source="computed",
            as_of=at,
            area_total_m2=area_total,
            heads_total=heads,
            note=note,
            kind=kind,
        )

    consent, signing = figures("consent"), figures("signing")
    held = {code for per in pieces.values() for code in per}
    unassigned = tuple(p.parcel_code for p in inside if p.parcel_code not in held)
    facts = ScopeFacts(
        scope_id=sid,
        parcels=parcels_n,
        heads_total=heads,
        area_total_m2=area_total,
        coverage=coverage,
        missing_consent=tuple(ln.holder_id for ln in lines if not ln.consented),
        missing_consent_m2=float(sum(ln.land_m2 - ln.consented_m2 for ln in lines)),
        missing_signing=tuple(ln.holder_id for ln in lines if not ln.signed),
        missing_signing_m2=float(sum(ln.land_m2 - ln.signed_m2 for ln in lines)),
        signing_started=any(ln.signed_m2 > 0 for ln in lines),
        unassigned=unassigned,
        unassigned_m2=float(sum(area_of[c] for c in unassigned)),
    )
    found = RULES.evaluate(pack, "scope", facts, at, subject_id=sid)
    for ln in lines:
        if ln.special:
            found += RULES.evaluate(
                pack,
                "holder",
                HolderFacts(
                    scope_id=sid,
                    holder_id=ln.holder_id,
                    name=ln.name,
                    status=ln.status,
                    land_m2=ln.land_m2,
                    consented=ln.consented_m2 > 0,
                    signed=ln.signed_m2 > 0,
                    via_procedure=ln.via_procedure,
                    ignored_records=ln.ignored_records,
                ),
                at,
                subject_id=sid,
            )
    return ScopeRatios(
        scope_id=sid,
        at=at,
        parcels=tuple(p.parcel_code for p in inside),
        area_total_m2=area_total,
        heads_total=heads,
        coverage=coverage,
        covered=covered,
        consent=consent,
        signing=signing,
        holders=tuple(lines),
        area_from_geometry=tuple(from_geometry),
        unassigned=unassigned,
        findings=tuple(found),
        pack=pack.ref(),
        synthetic=any(p.synthetic for p in inside)
        or any(holders[ln.holder_id].synthetic for ln in lines if ln.holder_id in holders),
    )


def round_start(unit: RenewalUnit) -> date | None:
    """Start of the unit's current round: the last restart from 退出 or 禁止重启, else None.

    Consent and signing collected before a restart do not count again (the workflow
    clears the entered figures on restart, 004 (十二)).
    """
    restarts = [
        e.at
        for e in unit.history
        if e.to_stage is Stage.PRELIMINARY and e.from_stage in (Stage.WITHDRAWN, Stage.BARRED)
    ]
    return max(restarts) if restarts else None


def unit_ratios(
    units: Iterable[RenewalUnit],
    geometries: Mapping[str, Any],
    registry: Registry,
    at: date,
    pack: PolicyPack,
) -> dict[str, ScopeRatios]:
    """Compute the ratios of every unit that has a geometry.

    ``geometries`` maps unit id → geometry in the registry's CRS, or a one-row GeoSeries.
    """
    out: dict[str, ScopeRatios] = {}
    for u in units:
        g = geometries.get(u.unit_id)
        if g is None:
            continue
        out[u.unit_id] = scope_ratios(
            registry, g, at, pack, scope_id=u.unit_id, unit_id=u.unit_id, since=round_start(u)
        )
    return out


def apply_registry(library: RenewalLibrary, ratios: Mapping[str, ScopeRatios]) -> RenewalLibrary:
    """Return the library with computed figures in every unit the registry covers.

    Covered units get ``consent`` and ``signing`` with ``source='computed'`` (their own
    holder roster is set aside so that the registry is the single source); the others
    keep their entered figures.
    """
    units = []
    for u in library.units:
        r = ratios.get(u.unit_id)
        if r is not None and r.covered:
            u = replace(u, consent=r.consent, signing=r.signing, holders=())
        units.append(u)
    return RenewalLibrary(units=tuple(units), zones=library.zones, towns=library.towns)


def figure_sources(
    library: RenewalLibrary, ratios: Mapping[str, ScopeRatios]
) -> list[dict[str, Any]]:
    """Per unit: which figures the rules read (computed or entered) and both values."""
    rows = []
    for u in library.units:
        r = ratios.get(u.unit_id)
        covered = r is not None and r.covered
        row: dict[str, Any] = {
            "unit_id": u.unit_id,
            "town": u.town,
            "source": None,
            "coverage": r.coverage if r is not None else None,
            "registry_heads": r.heads_total if r is not None else None,
        }
        for kind in ("consent", "signing"):
            entered = getattr(u, kind)
            holders_fig = u.computed_figures(kind) if u.holders else None
            used = getattr(r, kind) if covered else (holders_fig or entered)
            row[f"{kind}_used"] = (
                {
                    "area_share": used.area_share,
                    "head_share": used.head_share,
                    "source": used.source,
                }
                if used is not None
                else None
            )
            row[f"{kind}_entered"] = (
                {"area_share": entered.area_share, "head_share": entered.head_share}
                if entered is not None and entered.source == "entered"
                else None
            )
        used_sources = {
            row[f"{k}_used"]["source"] for k in ("consent", "signing") if row[f"{k}_used"]
        }
        row["source"] = (
            "computed"
            if covered or "computed" in used_sources
            else ("entered" if used_sources else None)
        )
        rows.append(row)
    return rows
