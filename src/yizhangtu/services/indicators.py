"""Indicator services: fill indicator inputs from the workspace, evaluate, persist, report.

:class:`~yizhangtu.indicators.IndicatorInputs` are read from the workspace; indicators are
computed and evaluated for a year and a unit level; evaluations are persisted with their
provenance, exported and rendered as the city health check (城市体检) report.

Where each input comes from
---------------------------
Reporting units
    ``level='district'``: the feature of a boundary layer (default ``bj_districts``, else any
    boundary layer) whose name or code is the requested unit (e.g. 朝阳区 / 110105).
    ``level='street'``: the streets and townships of that district: the boundary layer with a
    ``district_code`` field (default: the smallest such layer, e.g. ``chaoyang_streets``), or
    one whose codes start with the district code. The district itself is added as the
    aggregate row (``is_aggregate``), computed from its own boundary and statistics.
Area groups (地类面积)
    the survey layer (``survey``, kind ``survey``) snapshot of the year (label or observation
    date), tabulated once per unit by (DLBM, CZCSXM) with :func:`yizhangtu.accounting.tabulate`
    (ellipsoidal areas) and summed into the groups of ``indicators/input_vocabulary.yaml``:
    ``codes_group`` groups use :func:`yizhangtu.codes.classify` (default group set);
    ``land_use`` / ``attribute`` groups use the vocabulary's code lists, matching a code when it
    or one of its ancestors in the code table is listed. Units the survey covers by less than
    ``min_coverage`` get no area rows (their area indicators are not computable).
Control lines
    layers named ``eco_redline``, ``basic_farmland``, ``urban_boundary`` (or given in
    ``control_lines``); overlay groups intersect them with the urban-rural construction parcels.
Statistical tables
    ``population``: the census tables ``census2020`` / ``census2010`` (county level, keyed by
    ``adcode``), overridden row by row by a ledger table ``stat_population``; every other
    vocabulary table ``<name>`` from a ledger table ``stat_<name>`` (``unit_id``, ``year`` and
    value columns in the units the catalogues declare). ``rectification`` falls back to the
    rectification records of the task service (items carrying a ``unit_id``).
Facility layers
    a layer named after the vocabulary facility (``fire_station``, ``rail_station`` …) or
    ``poi_<name>``, or given in ``facilities``.

Nothing is silently zero: an input that is not in the workspace leaves the indicators that need
it "无法计算", and the reason names the input together with the workspace object that would
supply it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml

from yizhangtu.errors import InputError, NotFoundError, ValidationError
from yizhangtu.indicators import (
    Catalogue,
    Evaluation,
    IndicatorInputs,
    census_population_table,
    compute,
    evaluate,
    list_catalogues,
    load_catalogue,
)
from yizhangtu.provenance import InputRef
from yizhangtu.services.provenance import explain_chain, record_result, snapshot_ref, table_ref
from yizhangtu.store import LayerInfo, SnapshotInfo, Store

__all__ = [
    "EVALUATIONS_TABLE",
    "LEVELS",
    "GroupSource",
    "IndicatorRun",
    "WorkspaceInputs",
    "area_code",
    "area_groups",
    "catalogue_detail",
    "catalogue_overview",
    "check_evaluation",
    "combine_catalogues",
    "default_catalogues",
    "evaluate_job",
    "evaluate_workspace",
    "export_run_xlsx",
    "health_check_report_job",
    "indicator_definition",
    "indicator_requirements",
    "input_status",
    "inputs_overview",
    "list_runs",
    "load_evaluations",
    "packaged_catalogue",
    "provenance_rows",
    "query_evaluations",
    "render_run_report",
    "resolve_area",
    "run_provenance",
    "run_result",
    "workspace_inputs",
    "workspace_series",
    "workspace_values",
]

#: Unit levels a run can report on.
LEVELS: dict[str, str] = {"district": "区县", "street": "街道乡镇"}
#: Ledger table holding persisted evaluations (one row per indicator, unit and run).
EVALUATIONS_TABLE = "indicator_evaluations"

_ID_FIELDS = ("adcode", "code", "nbs_code", "XZQDM", "xzqdm", "unit_id")
_NAME_FIELDS = ("name", "XZQMC", "xzqmc", "name_nbs2023")
_CONTROL_LINES = ("eco_redline", "basic_farmland", "urban_boundary")
_SYSTEM_KEYS = {"sandiao": "sandiao", "gbt21010-2017": "sandiao", "landsea-2023": "landsea_2023"}
_CENSUS = {
    "census2020": (2020, "adcode", {}),
    "census2010": (
        2010,
        "adcode_2010",
        {
            "pop_total_2010": "pop_total",
            "pop_urban_2010": "pop_urban",
            "pop_rural_2010": "pop_rural",
        },
    ),
}


# ---------------------------------------------------------------------------
# vocabulary and catalogues
# ---------------------------------------------------------------------------


@cache
def _vocabulary() -> dict[str, Any]:
    text = (
        resources.files("yizhangtu.indicators").joinpath("input_vocabulary.yaml").read_text("utf-8")
    )
    return yaml.safe_load(text)


def default_catalogues(unit_name: str) -> list[str]:
    """Catalogues evaluated for a unit: its local packaged catalogues, then ``tdt1063_style``.

    A packaged catalogue is local when its jurisdiction names the unit
    (朝阳区 → ``chaoyang_local``).
    """
    local = []
    for cid in list_catalogues():
        cat = load_catalogue(cid)
        jur = cat.jurisdiction or ""
        if unit_name and jur and (unit_name in jur or jur.endswith(unit_name)):
            local.append(cid)
    return [*local, "tdt1063_style"]


def combine_catalogues(catalogues: Sequence[Catalogue]) -> tuple[Catalogue, list[str]]:
    """Merge catalogues into one (first definition of an indicator id wins).

    Returns the merged catalogue and notes on the indicators skipped as duplicates.
    """
    if not catalogues:
        raise InputError(
            "没有指定指标目录", key="no_catalogue", hint="如 --catalogue tdt1063_style"
        )
    if len(catalogues) == 1:
        return catalogues[0], []
    seen: dict[str, str] = {}
    inds = []
    notes: list[str] = []
    dims: list[str] = []
    for cat in catalogues:
        for d in cat.dimension_order():
            if d not in dims:
                dims.append(d)
        for ind in cat:
            if ind.id in seen:
                notes.append(
                    f"指标 {ind.id} 在 {seen[ind.id]} 与 {cat.id} 中均有定义, "
                    f"采用 {seen[ind.id]} 的定义"
                )
                continue
            seen[ind.id] = cat.id
            inds.append(ind)
    first = catalogues[0]
    merged = dataclasses.replace(
        first,
        id="+".join(c.id for c in catalogues),
        title=" + ".join(c.title for c in catalogues),
        version="+".join(c.version for c in catalogues),
        period_start=min(c.period_start for c in catalogues),
        period_end=max(c.period_end for c in catalogues),
        indicators=tuple(inds),
        dimensions=tuple(dims),
        synthetic=any(c.synthetic for c in catalogues),
        jurisdiction=next(
            (
                c.jurisdiction
                for c in catalogues
                if c.jurisdiction and not c.jurisdiction.startswith("通用")
            ),
            first.jurisdiction,
        ),
        origin="combined",
    )
    return merged, notes


def _catalogue(
    ids: Sequence[str] | None, unit_name: str
) -> tuple[Catalogue, list[str], list[Catalogue]]:
    names = list(ids) if ids else default_catalogues(unit_name)
    cats = [load_catalogue(n) for n in names]
    merged, notes = combine_catalogues(cats)
    return merged, notes, cats


# ---------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------


def _field(info: LayerInfo | None, cols: Iterable[str], candidates: Sequence[str]) -> str | None:
    cols = list(cols)
    if info is not None and info.id_field and info.id_field in cols and candidates is _ID_FIELDS:
        return info.id_field
    return next((c for c in candidates if c in cols), None)


def _short(h: Any) -> str:
    """Shorten a content hash for display (algorithm prefix dropped)."""
    text = str(h or "")
    return text.split(":", 1)[-1][:12]


def _norm_code(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


@dataclass(frozen=True)
class _Area:
    code: str
    name: str
    layer: str | None
    snapshot: SnapshotInfo | None
    feature: gpd.GeoDataFrame | None  # one row, unit_id + name + geometry


def resolve_area(
    store: Store, unit: str, *, layer: str | None = None
) -> tuple[str, str, str | None]:
    """Code, name and boundary layer of a named unit (朝阳区 or 110105).

    Searches ``layer`` or the workspace's boundary layers (district layers first), then the
    census tables (for units without a boundary).

    Raises
    ------
    NotFoundError
        When no boundary layer or census table names the unit.
    """
    a = _resolve_area(store, unit, layer=layer)
    return a.code, a.name, a.layer


def _boundary_layers(store: Store) -> list[LayerInfo]:
    infos = [
        li for li in store.layers() if li.kind == "boundary" and li.current_snapshot is not None
    ]
    # district layers (no district_code field) first, the conventional name before the others
    return sorted(infos, key=lambda li: (li.name != "bj_districts", li.name))


def _resolve_area(store: Store, unit: str, *, layer: str | None = None) -> _Area:
    text = str(unit).strip()
    candidates = [store.layer(layer)] if layer else _boundary_layers(store)
    for info in candidates:
        gdf = store.read_layer(info.name)
        idf = _field(info, gdf.columns, _ID_FIELDS)
        nmf = _field(None, gdf.columns, _NAME_FIELDS)
        if idf is None:
            continue
        if "district_code" in gdf.columns and layer is None:
            continue  # a street layer: its features are not districts
        codes = gdf[idf].map(_norm_code)
        hit = codes == text
        if nmf is not None:
            hit = hit | (gdf[nmf].astype(str).str.strip() == text)
        if hit.sum() == 1:
            row = gdf[hit.to_numpy()]
            code = str(codes[hit].iloc[0])
            name = str(row[nmf].iloc[0]) if nmf else text
            feat = gpd.GeoDataFrame(
                {"unit_id": [code], "name": [name]}, geometry=row.geometry.to_numpy(), crs=gdf.crs
            )
            return _Area(code, name, info.name, store.resolve_snapshot(info.name), feat)
    for tname, (_year, col, _ren) in _CENSUS.items():
        if tname not in store.table_names():
            continue
        t = store.read_table(tname)
        if col not in t.columns or "name" not in t.columns:
            continue
        codes = t[col].map(_norm_code)
        hit = (codes == text) | (t["name"].astype(str).str.strip() == text)
        if hit.any():
            return _Area(
                str(codes[hit].iloc[0]), str(t.loc[hit, "name"].iloc[0]).strip(), None, None, None
            )
    known = [li.name for li in candidates]
    raise NotFoundError(
        f"工作空间中找不到单元: {text}",
        key="unit_not_found",
        field="unit",
        hint=("按名称或代码查找边界图层 " + ", ".join(known) + " 与普查表")
        if known
        else "先导入行政区划边界图层",
    )


def _street_units(
    store: Store, area: _Area, layer: str | None
) -> tuple[gpd.GeoDataFrame, str | None, SnapshotInfo | None]:
    if layer:
        infos = [store.layer(layer)]
    else:
        infos = [
            li for li in store.layers() if li.kind == "boundary" and li.current_snapshot is not None
        ]
    found: list[tuple[int, gpd.GeoDataFrame, LayerInfo]] = []
    for info in infos:
        gdf = store.read_layer(info.name)
        idf = _field(info, gdf.columns, _ID_FIELDS)
        if idf is None:
            continue
        codes = gdf[idf].map(_norm_code)
        if "district_code" in gdf.columns:
            sel = gdf["district_code"].map(_norm_code) == area.code
        elif layer:
            sel = codes.str.startswith(area.code) & (codes != area.code)
        else:
            continue
        if sel.any():
            nmf = _field(None, gdf.columns, _NAME_FIELDS)
            sub = gdf[sel.to_numpy()]
            units = gpd.GeoDataFrame(
                {
                    "unit_id": codes[sel].to_numpy(),
                    "name": sub[nmf].astype(str).to_numpy() if nmf else codes[sel].to_numpy(),
                },
                geometry=sub.geometry.to_numpy(),
                crs=gdf.crs,
            )
            found.append((len(gdf), units, info))
    if not found:
        raise NotFoundError(
            f"工作空间中没有 {area.name} 的街道乡镇边界",
            key="street_units_not_found",
            field="level",
            hint="导入含 district_code 字段的街道乡镇边界图层, 或用 --units-layer 指定",
        )
    found.sort(key=lambda x: (x[0], x[2].name))
    _n, units, info = found[0]
    return units, info.name, store.resolve_snapshot(info.name)


# ---------------------------------------------------------------------------
# area groups
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSource:
    """How one vocabulary area group is obtained from the workspace (or why it cannot be)."""

    group: str
    name: str
    available: bool
    method: str
    gap: str | None = None

    def label(self) -> str:
        """Chinese label used in 'not computable' reasons."""
        return self.name if self.available else f"{self.name}[{self.gap}]"


def _code_chain(table: Any, code: str) -> tuple[str, ...]:
    return (code, *table.ancestors(code))


def area_groups(
    code_system: str | None, *, has_czcsxm: bool, control_layers: Mapping[str, str]
) -> dict[str, GroupSource]:
    """How each area group of the indicator vocabulary maps onto the workspace.

    Parameters
    ----------
    code_system : str or None
        Code system of the survey layer (``sandiao``, ``gbt21010-2017``, ``landsea-2023``).
    has_czcsxm : bool
        Whether the survey has the 城镇村属性码 field (CZCSXM).
    control_layers : Mapping
        Control-line group → workspace layer, for the lines present.
    """
    from yizhangtu.codes import load_groups

    vocab = _vocabulary()["groups"]
    key = _SYSTEM_KEYS.get(code_system or "")
    gset = load_groups("default")
    out: dict[str, GroupSource] = {}
    for gid, g in vocab.items():
        name = str(g.get("name", gid))
        kind = g.get("kind")

        def src(
            available: bool, method: str, gap: str | None = None, gid: str = gid, name: str = name
        ) -> GroupSource:
            return GroupSource(gid, name, available, method, gap)

        if kind == "control_line":
            lay = control_layers.get(gid)
            out[gid] = (
                src(True, f"控制线图层 {lay}")
                if lay
                else src(False, "", f"工作空间无控制线图层 {gid}")
            )
            continue
        if code_system is None:
            out[gid] = src(False, "", "工作空间无带地类代码的三调图层(survey)")
            continue
        if kind == "overlay":
            line = next(x for x in g["of"] if x in _CONTROL_LINES)
            base = next(x for x in g["of"] if x not in _CONTROL_LINES)
            lay = control_layers.get(line)
            if not lay:
                out[gid] = src(False, "", f"工作空间无控制线图层 {line}")
            elif base == "urban_rural_construction" and not has_czcsxm and key != "landsea_2023":
                out[gid] = src(False, "", "三调图层缺少城镇村属性码字段 CZCSXM")
            else:
                out[gid] = src(True, f"{base} 与控制线图层 {lay} 求交")
            continue
        if kind == "codes_group":
            try:
                rule = gset.rule(gid, code_system)
            except (NotFoundError, ValidationError, InputError):
                out[gid] = src(False, "", f"分组集 default 未定义 {code_system} 口径的 {gid}")
                continue
            if rule.czcsxm is not None and rule.czcsxm.required and not has_czcsxm:
                out[gid] = src(False, "", "三调图层缺少城镇村属性码字段 CZCSXM")
            else:
                out[gid] = src(True, f"codes 分组 default/{gid} ({code_system})")
            continue
        if kind == "land_use":
            codes = g.get(key) if key else None
            if not codes:
                out[gid] = src(False, "", f"{code_system} 代码体系无此地类(需用地用海分类数据)")
            else:
                out[gid] = src(True, f"{code_system} 地类 {'、'.join(codes)} 及其下级类")
            continue
        if kind == "attribute":
            if not has_czcsxm:
                out[gid] = src(False, "", "三调图层缺少城镇村属性码字段 CZCSXM")
                continue
            czc = "、".join(g.get("czcsxm") or [])
            if g.get("of"):
                inner = out.get(g["of"])
                if inner is None or not inner.available:
                    out[gid] = src(False, "", f"依赖的分组 {g['of']} 不可用")
                else:
                    out[gid] = src(True, f"{g['of']} 且 CZCSXM ∈ {{{czc}}}")
            else:
                codes = g.get(key) if key else None
                if not codes:
                    out[gid] = src(False, "", f"{code_system} 代码体系的口径未定义")
                else:
                    out[gid] = src(
                        True, f"{code_system} 地类 {'、'.join(codes)} 且 CZCSXM ∈ {{{czc}}}"
                    )
            continue
        out[gid] = src(False, "", f"未知的分组类型 {kind}")
    return out


def _memberships(
    pairs: pd.DataFrame, system: str, sources: Mapping[str, GroupSource]
) -> dict[str, np.ndarray]:
    """Boolean membership of each (dlbm, czcsxm) pair in each available code-based group."""
    from yizhangtu.codes import load_groups, load_table, normalize_codes

    vocab = _vocabulary()["groups"]
    key = _SYSTEM_KEYS[system]
    table = load_table(system)
    dl = normalize_codes(pairs["dlbm"].astype(object))
    unknown = sorted({str(c) for c in dl.dropna() if c not in table})
    if unknown or dl.isna().any():
        raise ValidationError(
            f"三调图层中有 {system} 代码表之外的地类代码: " + "、".join(unknown[:10] or ["(空)"]),
            key="unknown_codes",
            field="DLBM",
            hint="先用 yizhangtu check 质检, 修正地类代码后重新导入",
        )
    czc = pairs["czcsxm"].fillna("").astype(str).str.strip()
    chains = {c: set(_code_chain(table, c)) for c in pd.unique(dl)}
    gset = load_groups("default")
    out: dict[str, np.ndarray] = {}

    def codes_member(codes: Sequence[str]) -> np.ndarray:
        s = set(codes)
        return np.array([bool(chains[c] & s) for c in dl], dtype=bool)

    # codes groups first: attribute groups build on them
    for gid, g in vocab.items():
        s = sources.get(gid)
        if s is None or not s.available or g.get("kind") not in ("codes_group",):
            continue
        lab = gset.group(gid).label
        czs = czc.where(czc != "", None) if "czcsxm" in pairs else None
        res = gset.classify(dl, system=system, group=gid, czcsxm=czs)
        out[gid] = (res == lab).fillna(False).to_numpy(dtype=bool)
    for gid, g in vocab.items():
        s = sources.get(gid)
        if s is None or not s.available:
            continue
        kind = g.get("kind")
        if kind == "land_use":
            out[gid] = codes_member(g[key])
        elif kind == "attribute":
            base = out[g["of"]] if g.get("of") else codes_member(g[key])
            out[gid] = base & czc.isin([str(x) for x in g.get("czcsxm") or []]).to_numpy()
    return out


def _tabulate(layer: gpd.GeoDataFrame, units: gpd.GeoDataFrame, classify: Any) -> Any:
    from yizhangtu.accounting import tabulate

    if units.crs is not None and layer.crs is not None and not units.crs.equals(layer.crs):
        units = units.to_crs(layer.crs)
    workers = 1 if len(layer) < 100_000 else None
    return tabulate(
        layer,
        units[["unit_id", "geometry"]],
        class_field=layer.columns[0],
        unit_field="unit_id",
        classify=classify,
        workers=workers,
    )


def _polygonal(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    parts = shapely.get_parts(geoms)
    types = shapely.get_type_id(parts)
    keep = parts[(types == 3) & ~shapely.is_empty(parts)]
    return gpd.GeoDataFrame({"cls": ["x"] * len(keep)}, geometry=list(keep), crs=gdf.crs)


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WorkspaceInputs:
    """Indicator inputs read from the workspace for one year and one set of units.

    Attributes
    ----------
    inputs : IndicatorInputs
        What :func:`yizhangtu.indicators.compute` reads.
    units : GeoDataFrame
        Reporting units (``unit_id``, ``name``), the aggregate unit last when present.
    aggregate : str or None
        Unit id of the aggregate row (the district of a street-level run).
    refs : list of InputRef
        Snapshots and tables read (for provenance).
    sources : list of dict
        Human-readable list of the inputs (report appendix).
    groups : dict
        How each area group was obtained (:class:`GroupSource`).
    notes : list of str
        Findings (snapshot fallbacks, uncovered units, census substitutions).
    """

    year: int
    level: str
    area_code: str
    area_name: str
    inputs: IndicatorInputs
    units: gpd.GeoDataFrame
    aggregate: str | None
    refs: list[InputRef]
    sources: list[dict[str, Any]]
    groups: dict[str, GroupSource]
    facilities: dict[str, str]
    tables: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def unit_names(self) -> dict[str, str]:
        """unit_id → name."""
        return {
            str(k): str(v) for k, v in zip(self.units["unit_id"], self.units["name"], strict=True)
        }


def _survey_layer(store: Store, survey: str | None) -> LayerInfo | None:
    if survey:
        return store.layer(survey)
    infos = [li for li in store.layers() if li.current_snapshot is not None]
    named = [li for li in infos if li.name == "survey"]
    if named:
        return named[0]
    surveys = [li for li in infos if li.kind == "survey" and li.code_field]
    return surveys[0] if surveys else None


def _survey_snapshot(
    store: Store, info: LayerInfo, year: int, *, exact: bool
) -> tuple[SnapshotInfo | None, str | None]:
    snaps = store.snapshots(info.name)
    for s in snaps:
        if s.label == str(year):
            return s, None
    for s in reversed(snaps):
        if s.obs_date and s.obs_date[:4] == str(year):
            return s, None
    if exact:
        return None, None
    try:
        s = store.resolve_snapshot(info.name, as_of=f"{year}-12-31")
    except NotFoundError:
        return None, None
    return s, f"三调图层 {info.name} 无 {year} 年快照, 采用 {s.label} 快照(观测日期 {s.obs_date})"


def _table_exists(store: Store, name: str) -> bool:
    return name in store.table_names()


def _clean_codes(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """Census rows with a code, one per code (a province repeated as its urban row is kept once)."""
    df = df[df[col].notna() & (df[col].astype(str).str.strip() != "")]
    return df.drop_duplicates(subset=[col], keep="first")


def _population(
    store: Store, refs: list[InputRef], sources: list[dict[str, Any]]
) -> pd.DataFrame | None:
    frames = []
    for tname, (year, col, ren) in _CENSUS.items():
        if not _table_exists(store, tname):
            continue
        raw = store.read_table(tname)
        if col not in raw.columns:
            continue
        keep = [
            c
            for c in raw.columns
            if c
            in (
                col,
                "name",
                *ren,
                "pop_total",
                "pop_urban",
                "pop_rural",
                "housing_floor_area_per_capita_m2",
            )
        ]
        df = _clean_codes(raw[keep].rename(columns=dict(ren)), col)
        frames.append(census_population_table(df, year=year, code_column=col).drop(columns=[col]))
        refs.append(table_ref(store, tname))
        sources.append(
            {
                "name": "常住人口(人口普查)",
                "table": tname,
                "year": year,
                "content_hash": _short(store.table_hash(tname)),
            }
        )
    if _table_exists(store, "stat_population"):
        st = store.read_table("stat_population")
        st = st.assign(
            unit_id=st["unit_id"].map(_norm_code), year=pd.to_numeric(st["year"]).astype(int)
        )
        frames.append(st)
        refs.append(table_ref(store, "stat_population"))
        src = (
            "、".join(sorted({str(s) for s in st.get("source", pd.Series(dtype=object)).dropna()}))
            or None
        )
        sources.append(
            {
                "name": "常住人口(统计表)",
                "table": "stat_population",
                "source": src,
                "content_hash": _short(store.table_hash("stat_population")),
            }
        )
    if not frames:
        return None
    # later frames override earlier ones per (unit_id, year): stat_population wins over census
    allp = pd.concat(frames, ignore_index=True)
    allp["unit_id"] = allp["unit_id"].map(_norm_code)
    allp = allp.drop_duplicates(["unit_id", "year"], keep="last")
    return allp.reset_index(drop=True)


def _rectification_from_records(store: Store) -> pd.DataFrame | None:
    try:
        recs = store.list_records("rectifications")
    except NotFoundError:
        return None
    rows = [r.data for r in recs if r.data.get("unit_id")]
    if not rows:
        return None
    out = []
    years = sorted(
        {int(str(r["found_on"])[:4]) for r in rows}
        | {int(str(r["closed_on"])[:4]) for r in rows if r.get("closed_on")}
    )
    units = sorted({_norm_code(r["unit_id"]) for r in rows})
    last = max(years) if years else dt.date.today().year
    for u in units:
        mine = [r for r in rows if _norm_code(r["unit_id"]) == u]
        for y in range(min(years), max(last, dt.date.today().year) + 1):
            end = f"{y}-12-31"
            found = [r for r in mine if str(r["found_on"]) <= end]
            closed = [r for r in found if r.get("closed_on") and str(r["closed_on"]) <= end]
            if found:
                out.append(
                    {
                        "unit_id": u,
                        "year": y,
                        "issues_total": float(len(found)),
                        "issues_closed": float(len(closed)),
                    }
                )
    return pd.DataFrame(out) if out else None


def _read_geo(
    store: Store, name: str, year: int | None = None, notes: list[str] | None = None
) -> tuple[gpd.GeoDataFrame, SnapshotInfo]:
    """Read the snapshot of ``name`` in force at the end of ``year`` (else the current, noted)."""
    snap = None
    if year is not None:
        try:
            snap = store.resolve_snapshot(name, as_of=f"{year}-12-31")
        except NotFoundError:
            snap = None
    if snap is None:
        snap = store.resolve_snapshot(name)
        if year is not None and notes is not None:
            msg = (
                f"图层 {name} 无 {year} 年及以前的快照, "
                f"采用快照 {snap.label}(观测日期 {snap.obs_date})"
            )
            if msg not in notes:
                notes.append(msg)
    return store.read_layer(name, snapshot=snap.id), snap


def workspace_inputs(
    store: Store,
    *,
    year: int,
    unit: str,
    level: str = "street",
    survey: str | None = None,
    units_layer: str | None = None,
    district_layer: str | None = None,
    control_lines: Mapping[str, str] | None = None,
    facilities: Mapping[str, str] | None = None,
    min_coverage: float = 0.99,
    exact_year: bool = False,
) -> WorkspaceInputs:
    """Read everything the indicator formulas may need for ``year`` from the workspace.

    Parameters
    ----------
    store : Store
    year : int
        Year of the survey snapshot and of the statistics.
    unit : str
        Name or code of the evaluated area (e.g. ``朝阳区`` or ``110105``).
    level : {'district', 'street'}
        Reporting units: the area itself, or its streets and townships (plus the area as the
        aggregate row).
    survey : str, optional
        Survey layer (default ``survey`` or the first layer of kind ``survey``).
    units_layer, district_layer : str, optional
        Boundary layers for the streets and the district.
    control_lines, facilities : Mapping, optional
        Group or facility name → workspace layer, overriding the naming convention.
    min_coverage : float
        Share of a unit the survey must cover for its area groups to count (else the unit's
        area indicators are not computable).
    exact_year : bool
        Require a survey snapshot of exactly ``year`` (used for history years); otherwise the
        latest snapshot up to the year end is used, with a note.
    """
    if level not in LEVELS:
        raise InputError(
            f"未知的单元层级: {level}",
            key="bad_level",
            field="level",
            hint="可选: " + ", ".join(LEVELS),
        )
    area = _resolve_area(store, unit, layer=district_layer)
    refs: list[InputRef] = []
    sources: list[dict[str, Any]] = []
    notes: list[str] = []
    frames: list[gpd.GeoDataFrame] = []
    aggregate = None
    if level == "street":
        streets, _sl, ssnap = _street_units(store, area, units_layer)
        frames.append(streets)
        if ssnap is not None:
            refs.append(snapshot_ref(ssnap))
            sources.append(_snap_source("街道乡镇边界", ssnap))
        aggregate = area.code
    if area.feature is not None:
        frames.append(area.feature.to_crs(frames[0].crs) if frames else area.feature)
        assert area.snapshot is not None
        refs.append(snapshot_ref(area.snapshot))
        sources.append(_snap_source("区县边界", area.snapshot))
    if frames:
        units = gpd.GeoDataFrame(
            pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs
        )
    else:
        units = gpd.GeoDataFrame(
            {"unit_id": [area.code], "name": [area.name]}, geometry=[None], crs=4490
        )
        notes.append(f"工作空间没有 {area.name} 的边界, 面积与设施类指标无法计算")
    has_geom = area.feature is not None or level == "street"

    # ---- survey areas --------------------------------------------------------
    info = _survey_layer(store, survey)
    controls = dict(control_lines or {})
    for g in _CONTROL_LINES:
        if g not in controls:
            for cand in (g, f"cl_{g}"):
                try:
                    li = store.layer(cand)
                except NotFoundError:
                    continue
                if li.current_snapshot is not None:
                    controls[g] = cand
                    break
    areas = None
    code_system = info.code_system if info is not None else None
    has_czc = False
    if info is not None and has_geom:
        snap, note = _survey_snapshot(store, info, year, exact=exact_year)
        if snap is not None:
            if note:
                notes.append(note)
            layer = store.read_layer(info.name, snapshot=snap.id)
            code_field = info.code_field or "DLBM"
            if code_field not in layer.columns:
                raise ValidationError(
                    f"三调图层 {info.name} 缺少地类代码字段 {code_field}",
                    key="field_missing",
                    field=code_field,
                )
            has_czc = "CZCSXM" in layer.columns
            code_system = info.code_system or "sandiao"
            if code_system not in _SYSTEM_KEYS:
                notes.append(f"三调图层的代码体系 {code_system} 不在指标分组支持的范围内")
            groups = area_groups(code_system, has_czcsxm=has_czc, control_layers=controls)
            areas = _survey_areas(
                store,
                layer,
                code_field,
                code_system,
                units,
                groups,
                controls,
                min_coverage,
                notes,
                refs,
                sources,
                int(year),
            )
            if areas is None:
                gap = f"三调图层 {info.name} 未覆盖 {area.name}"
                groups = {
                    k: dataclasses.replace(v, available=False, gap=gap)
                    if _vocabulary()["groups"][k].get("kind") != "control_line"
                    else v
                    for k, v in groups.items()
                }
                areas = pd.DataFrame(columns=["unit_id", "group", "area_m2"])
            refs.append(snapshot_ref(snap))
            sources.append(
                _snap_source(
                    f"三调图斑 {snap.label}", snap, synthetic=store.layer(info.name).synthetic
                )
            )
        else:
            notes.append(f"三调图层 {info.name} 没有 {year} 年的快照")
            groups = {
                k: dataclasses.replace(
                    v, available=False, gap=f"三调图层 {info.name} 无 {year} 年快照"
                )
                for k, v in area_groups(
                    code_system, has_czcsxm=True, control_layers=controls
                ).items()
            }
    else:
        groups = area_groups(None, has_czcsxm=False, control_layers=controls)
    # ---- statistical tables --------------------------------------------------
    vocab = _vocabulary()
    tables: dict[str, pd.DataFrame] = {}
    table_src: dict[str, str] = {}
    pop = _population(store, refs, sources)
    if pop is not None:
        tables["population"] = pop
        table_src["population"] = "census2020/census2010" + (
            " + stat_population" if _table_exists(store, "stat_population") else ""
        )
    for tname in vocab["tables"]:
        if tname == "population":
            continue
        ws = f"stat_{tname}"
        if _table_exists(store, ws):
            t = store.read_table(ws)
            t = t.assign(
                unit_id=t["unit_id"].map(_norm_code), year=pd.to_numeric(t["year"]).astype(int)
            )
            tables[tname] = t
            table_src[tname] = ws
            refs.append(table_ref(store, ws))
            src = (
                "、".join(
                    sorted({str(s) for s in t.get("source", pd.Series(dtype=object)).dropna()})
                )
                or None
            )
            sources.append(
                {
                    "name": vocab["tables"][tname]["name"],
                    "table": ws,
                    "source": src,
                    "content_hash": _short(store.table_hash(ws)),
                }
            )
    if "rectification" not in tables:
        rect = _rectification_from_records(store)
        if rect is not None:
            tables["rectification"] = rect
            table_src["rectification"] = "records:rectifications"
            sources.append(
                {
                    "name": "问题整改台账(任务督办记录)",
                    "table": "records:rectifications",
                    "source": "整改事项记录(yz_records)",
                }
            )
    # ---- facilities ------------------------------------------------------------
    fac_layers: dict[str, gpd.GeoDataFrame] = {}
    fac_src: dict[str, str] = {}
    given = dict(facilities or {})
    for fname in vocab["facilities"]:
        for cand in [given[fname]] if fname in given else [fname, f"poi_{fname}"]:
            try:
                li = store.layer(cand)
            except NotFoundError:
                continue
            if li.current_snapshot is None:
                continue
            gdf, snap = _read_geo(store, cand, int(year), notes)
            fac_layers[fname] = gdf
            fac_src[fname] = cand
            refs.append(snapshot_ref(snap))
            sources.append(
                _snap_source(vocab["facilities"][fname]["name"], snap, synthetic=li.synthetic)
            )
            break
    # ---- labels: every missing input says what would supply it ---------------
    labels: dict[str, str] = {}
    for gid, s in groups.items():
        labels[gid] = s.label()
    for tname, t in vocab["tables"].items():
        if tname in tables:
            labels[tname] = f"{t['name']}<{table_src[tname]}>"
        elif tname == "population":
            labels[tname] = f"{t['name']}[工作空间无普查表 census2020 或统计表 stat_population]"
        else:
            labels[tname] = f"{t['name']}[工作空间无统计表 stat_{tname}]"
    for fname, f in vocab["facilities"].items():
        if fname not in fac_layers:
            labels[fname] = f"{f['name']}[工作空间无图层 {fname}]"
        else:
            labels[fname] = f"{f['name']}<{fac_src[fname]}>"
    synthetic = any(bool(s.get("synthetic")) for s in sources)
    inputs = IndicatorInputs(
        areas=areas,
        tables=tables,
        facilities=fac_layers,
        units=units if has_geom else None,
        unit_areas=None if has_geom else {},
        synthetic=synthetic,
        labels=labels,
    )
    return WorkspaceInputs(
        year=int(year),
        level=level,
        area_code=area.code,
        area_name=area.name,
        inputs=inputs,
        units=units,
        aggregate=aggregate,
        refs=_dedupe_refs(refs),
        sources=sources,
        groups=groups,
        facilities=fac_src,
        tables=table_src,
        notes=notes,
    )


def _dedupe_refs(refs: list[InputRef]) -> list[InputRef]:
    seen: dict[tuple[str, str, int | None], InputRef] = {}
    for r in refs:
        seen.setdefault((r.kind, r.name, r.snapshot_id), r)
    return list(seen.values())


def _snap_source(what: str, snap: SnapshotInfo, *, synthetic: bool = False) -> dict[str, Any]:
    return {
        "name": what,
        "layer": snap.layer,
        "snapshot": f"{snap.label} (#{snap.id})",
        "source": snap.source_file,
        "content_hash": _short(snap.content_hash),
        "date": snap.obs_date,
        "synthetic": "是" if synthetic else None,
    }


def _survey_areas(
    store: Store,
    layer: gpd.GeoDataFrame,
    code_field: str,
    system: str,
    units: gpd.GeoDataFrame,
    groups: dict[str, GroupSource],
    controls: Mapping[str, str],
    min_coverage: float,
    notes: list[str],
    refs: list[InputRef],
    sources: list[dict[str, Any]],
    year: int | None = None,
) -> pd.DataFrame | None:
    has_czc = "CZCSXM" in layer.columns
    lay = layer[[code_field, *(["CZCSXM"] if has_czc else []), "geometry"]].copy()
    lay[code_field] = lay[code_field].astype(str).str.strip()

    def cls(df: pd.DataFrame) -> pd.Series:
        czc = (
            df["CZCSXM"].fillna("").astype(str).str.strip()
            if has_czc
            else pd.Series("", index=df.index)
        )
        return df[code_field].astype(str).str.strip() + "|" + czc

    tab = _tabulate(lay, units, cls)
    cover = (tab.unit_totals / tab.unit_areas).reindex(units["unit_id"]).fillna(0.0)
    covered = [u for u in units["unit_id"] if cover.get(u, 0.0) >= min_coverage]
    low = [f"{u}({cover.get(u, 0.0):.0%})" for u in units["unit_id"] if u not in covered]
    if low:
        notes.append(
            f"三调图层对以下单元覆盖不足 {min_coverage:.0%}, 其面积类指标不计算: "
            + "、".join(low[:8])
            + ("…" if len(low) > 8 else "")
        )
    if not covered:
        return None
    rows = tab.rows.copy()
    pairs = rows["class"].astype(str).str.split("|", n=1, expand=True)
    rows["dlbm"] = pairs[0]
    rows["czcsxm"] = pairs[1] if pairs.shape[1] > 1 else ""
    uniq = rows[["dlbm", "czcsxm"]].drop_duplicates().reset_index(drop=True)
    member = _memberships(uniq, system, groups) if system in _SYSTEM_KEYS else {}
    key = uniq["dlbm"] + "|" + uniq["czcsxm"]
    out = []
    for gid, mask in member.items():
        inside = set(key[mask])
        sel = rows[rows["class"].isin(inside)]
        sums = sel.groupby("unit")["area_m2"].sum()
        for u in covered:
            out.append({"unit_id": u, "group": gid, "area_m2": float(sums.get(u, 0.0))})
    # control lines and their overlays with urban-rural construction land
    for gid, s in groups.items():
        if not s.available:
            continue
        g = _vocabulary()["groups"][gid]
        if g.get("kind") not in ("control_line", "overlay"):
            continue
        line_name = (
            gid if g["kind"] == "control_line" else next(x for x in g["of"] if x in _CONTROL_LINES)
        )
        lname = controls[line_name]
        line, snap = _read_geo(store, lname, year, notes)
        if line.crs is not None and not line.crs.equals(layer.crs):
            line = line.to_crs(layer.crs)
        refs.append(snapshot_ref(snap))
        sources.append(
            _snap_source(f"控制线 {line_name}", snap, synthetic=store.layer(lname).synthetic)
        )
        dissolved = shapely.union_all(np.asarray(line.geometry.values, dtype=object))
        if g["kind"] == "control_line":
            piece = _polygonal(gpd.GeoDataFrame(geometry=[dissolved], crs=layer.crs))
        else:
            base = next(x for x in g["of"] if x not in _CONTROL_LINES)
            if base not in member:
                continue
            inside = set(key[member[base]])
            sub = lay[cls(lay).isin(inside).to_numpy()]
            clipped = gpd.GeoDataFrame(
                geometry=sub.geometry.intersection(dissolved).to_numpy(), crs=layer.crs
            )
            piece = _polygonal(clipped)
        if len(piece) == 0:
            sums = pd.Series(dtype=float)
        else:
            t2 = _tabulate(piece, units, None)
            sums = t2.rows.groupby("unit")["area_m2"].sum()
        for u in covered:
            out.append({"unit_id": u, "group": gid, "area_m2": float(sums.get(u, 0.0))})
    return pd.DataFrame(out, columns=["unit_id", "group", "area_m2"])


def input_status(ws: WorkspaceInputs, catalogue: Catalogue) -> pd.DataFrame:
    """Every input the catalogue reads, whether the workspace supplies it, and from where."""
    rows = []
    need: dict[tuple[str, str], set[str]] = {}
    for ind in catalogue:
        f = ind.formula
        if not hasattr(f, "operands"):
            continue
        ops = list(f.operands())
        if f.kind == "coverage":
            for n in f.facilities:
                need.setdefault(("facility", n), set()).add(ind.id)
        for op in ops:
            if op.kind == "area":
                for g in op.groups:
                    need.setdefault(("group", g), set()).add(ind.id)
            elif op.kind == "table":
                need.setdefault(("table", f"{op.table}.{op.column}"), set()).add(ind.id)
            elif op.kind in ("facility_count", "facility_sum"):
                need.setdefault(("facility", str(op.facilities)), set()).add(ind.id)
            elif op.kind == "unit_area":
                need.setdefault(("unit_area", "units"), set()).add(ind.id)
    tabs = ws.inputs.tables
    for (kind, name), ids in sorted(need.items()):
        if kind == "group":
            s = ws.groups.get(name)
            ok = bool(s and s.available)
            rows.append(
                {
                    "kind": "地类分组",
                    "name": name,
                    "label": s.name if s else name,
                    "available": ok,
                    "from": s.method if ok and s else (s.gap if s else "未知分组"),
                    "indicators": len(ids),
                }
            )
        elif kind == "table":
            t, c = name.split(".", 1)
            ok = t in tabs and c in tabs[t].columns
            rows.append(
                {
                    "kind": "统计表",
                    "name": name,
                    "label": ws.inputs.labels.get(t, t),
                    "available": ok,
                    "from": ws.tables.get(t, f"stat_{t}")
                    if t in tabs
                    else f"缺少统计表 stat_{t}"
                    if t != "population"
                    else "缺少普查表",
                    "indicators": len(ids),
                }
            )
        elif kind == "facility":
            ok = name in ws.facilities
            rows.append(
                {
                    "kind": "设施图层",
                    "name": name,
                    "label": ws.inputs.labels.get(name, name),
                    "available": ok,
                    "from": ws.facilities.get(name, f"缺少图层 {name}"),
                    "indicators": len(ids),
                }
            )
        else:
            ok = ws.inputs.units is not None
            rows.append(
                {
                    "kind": "单元面积",
                    "name": "units",
                    "label": "单元边界",
                    "available": ok,
                    "from": "单元边界图层" if ok else "缺少单元边界",
                    "indicators": len(ids),
                }
            )
    return pd.DataFrame(rows, columns=["kind", "name", "label", "available", "from", "indicators"])


# ---------------------------------------------------------------------------
# compute, evaluate, persist
# ---------------------------------------------------------------------------


def _compute(cat: Catalogue, ws: WorkspaceInputs) -> pd.DataFrame:
    ids = [str(u) for u in ws.units["unit_id"]]
    vals = compute(cat, ws.inputs, year=ws.year, units=ids)
    if ws.aggregate is not None:
        vals["is_aggregate"] = vals["unit_id"] == ws.aggregate
    return vals


def workspace_values(
    store: Store,
    *,
    year: int,
    unit: str,
    level: str = "street",
    catalogues: Sequence[str] | None = None,
    actor: str = "unknown",
    **options: Any,
) -> tuple[pd.DataFrame, WorkspaceInputs, str]:
    """Compute indicator values for one year (no evaluation); records provenance.

    Returns
    -------
    (DataFrame, WorkspaceInputs, str)
        Values (columns of :data:`yizhangtu.indicators.RESULT_COLUMNS` plus ``unit_name`` and
        ``provenance_id``), the inputs read, and the provenance record id.
    """
    ws = workspace_inputs(store, year=year, unit=unit, level=level, **options)
    cat, notes, cats = _catalogue(catalogues, ws.area_name)
    vals = _compute(cat, ws)
    rec = record_result(
        store,
        "indicator_values",
        inputs=ws.refs,
        params=_params(ws, cats, [], options) | {"catalogue_notes": notes},
        result=_result_digest(vals),
        actor=actor,
    )
    vals = vals.assign(unit_name=vals["unit_id"].map(ws.unit_names()), provenance_id=rec.id)
    return vals, ws, rec.id


def workspace_series(
    store: Store,
    *,
    years: Sequence[int],
    unit: str,
    level: str = "street",
    catalogues: Sequence[str] | None = None,
    actor: str = "unknown",
    **options: Any,
) -> tuple[pd.DataFrame, list[str]]:
    """Compute indicator values for several years (a time series; no evaluation).

    Each year reads the survey snapshot of exactly that year (no fallback to an earlier one, so
    a year is never counted twice) and the statistics of that year; each year records its own
    provenance.

    Returns
    -------
    (DataFrame, list of str)
        Long values of all years (as :func:`workspace_values`) and the provenance ids by year.
    """
    frames, rids = [], []
    for y in sorted({int(y) for y in years}):
        v, _ws, rid = workspace_values(
            store,
            year=y,
            unit=unit,
            level=level,
            catalogues=catalogues,
            actor=actor,
            exact_year=True,
            **options,
        )
        frames.append(v)
        rids.append(rid)
    if not frames:
        raise InputError("没有指定年份", key="no_years", field="year")
    return pd.concat(frames, ignore_index=True), rids


def _params(
    ws: WorkspaceInputs,
    cats: Sequence[Catalogue],
    history: Sequence[int],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "year": ws.year,
        "level": ws.level,
        "area_code": ws.area_code,
        "area_name": ws.area_name,
        "catalogues": [{"id": c.id, "version": c.version} for c in cats],
        "history_years": list(history),
        "groups": {
            k: (v.method if v.available else f"unavailable: {v.gap}")
            for k, v in sorted(ws.groups.items())
        },
        "tables": dict(sorted(ws.tables.items())),
        "facilities": dict(sorted(ws.facilities.items())),
        "options": {k: v for k, v in sorted(options.items()) if v is not None},
        "notes": list(ws.notes),
    }


def _jnum(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _result_digest(vals: pd.DataFrame) -> list[list[Any]]:
    cols = ["indicator", "unit_id", "year", "value"] + (
        ["status"] if "status" in vals.columns else []
    )
    out = []
    for r in vals[cols].itertuples(index=False):
        row = list(r)
        row[3] = _jnum(row[3])
        row[2] = int(row[2])
        out.append(row)
    return out


@dataclass(frozen=True, eq=False)
class IndicatorRun:
    """One evaluation of a unit for a year: values, evaluation, inputs and provenance."""

    year: int
    level: str
    area_code: str
    area_name: str
    catalogue: Catalogue
    catalogues: tuple[str, ...]
    values: pd.DataFrame
    history: pd.DataFrame | None
    evaluation: Evaluation
    inputs: WorkspaceInputs
    provenance_id: str
    notes: tuple[str, ...] = ()

    def unit_names(self) -> dict[str, str]:
        """unit_id → name (the aggregate row under the area name)."""
        return self.inputs.unit_names()

    def missing_inputs(self) -> pd.DataFrame:
        """List the indicators not computable, one row per (indicator, reason)."""
        t = self.evaluation.table
        t = t[t["status"] == "无法计算"]
        return (
            t.groupby(["indicator", "name", "status_reason"], sort=False)
            .size()
            .rename("units")
            .reset_index()
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary."""
        ev = self.evaluation
        t = ev.table
        return {
            "year": self.year,
            "level": self.level,
            "unit": self.area_name,
            "unit_code": self.area_code,
            "catalogue": ev.catalogue_id,
            "catalogue_title": ev.catalogue_title,
            "indicators": int(t["indicator"].nunique()),
            "rows": len(t),
            "units": int(t["unit_id"].nunique()),
            "status_counts": ev.status_counts(),
            "computable_indicators": int(t.loc[t["status"] != "无法计算", "indicator"].nunique()),
            "synthetic": bool(ev.synthetic),
            "provenance_id": self.provenance_id,
            "history_years": sorted({int(y) for y in self.history["year"]})
            if self.history is not None
            else [],
            "notes": list(self.notes),
        }


def _history_years(store: Store, ws: WorkspaceInputs, survey: str | None) -> list[int]:
    years: set[int] = set()
    info = _survey_layer(store, survey)
    if info is not None:
        for s in store.snapshots(info.name):
            y = s.label[:4] if s.label[:4].isdigit() else (s.obs_date or "")[:4]
            if y.isdigit():
                years.add(int(y))
    for t in ws.inputs.tables.values():
        years.update(int(y) for y in t["year"])
    return sorted(y for y in years if y < ws.year)


def evaluate_workspace(
    store: Store,
    *,
    year: int,
    unit: str,
    level: str = "street",
    catalogues: Sequence[str] | None = None,
    history_years: Sequence[int] | None = None,
    persist: bool = True,
    actor: str = "unknown",
    survey: str | None = None,
    **options: Any,
) -> IndicatorRun:
    """Compute and evaluate indicators of ``unit`` for ``year`` (with trends), persist them.

    Parameters
    ----------
    store : Store
    year : int
        Evaluated year.
    unit : str
        Area name or code (朝阳区, 110105).
    level : {'district', 'street'}
        Reporting units (see :func:`workspace_inputs`).
    catalogues : sequence of str, optional
        Catalogue ids or paths; default :func:`default_catalogues` of the area.
    history_years : sequence of int, optional
        Earlier years computed for the trend; default: every earlier survey snapshot year and
        statistics year in the workspace.
    persist : bool
        Write the evaluation rows to the ledger table :data:`EVALUATIONS_TABLE`.
    actor : str
        Who runs it (audit, provenance).
    survey : str, optional
        Survey layer name.
    **options
        Passed to :func:`workspace_inputs` (``units_layer``, ``district_layer``,
        ``control_lines``, ``facilities``, ``min_coverage``).
    """
    ws = workspace_inputs(store, year=year, unit=unit, level=level, survey=survey, **options)
    cat, cat_notes, cats = _catalogue(catalogues, ws.area_name)
    values = _compute(cat, ws)
    years = list(history_years) if history_years is not None else _history_years(store, ws, survey)
    hist_frames = []
    hist_notes: list[str] = []
    refs = list(ws.refs)
    for y in years:
        hws = workspace_inputs(
            store, year=y, unit=unit, level=level, survey=survey, exact_year=True, **options
        )
        hv = _compute(cat, hws)
        hist_frames.append(hv)
        refs.extend(hws.refs)
        hist_notes.extend(f"(趋势 {y} 年) {n}" for n in hws.notes)
    history = pd.concat(hist_frames, ignore_index=True) if hist_frames else None
    ev = evaluate(values, cat, year=int(year), history=history)
    if ev.jurisdiction is None or str(ev.jurisdiction).startswith("通用"):
        ev = dataclasses.replace(ev, jurisdiction=ws.area_name)
    params = _params(ws, cats, years, {"survey": survey, **options}) | {
        "catalogue_notes": cat_notes
    }
    rec = record_result(
        store,
        "indicator_evaluation",
        inputs=_dedupe_refs(refs),
        params=params,
        result=_result_digest(ev.table),
        actor=actor,
    )
    run = IndicatorRun(
        year=int(year),
        level=level,
        area_code=ws.area_code,
        area_name=ws.area_name,
        catalogue=cat,
        catalogues=tuple(c.id for c in cats),
        values=values,
        history=history,
        evaluation=ev,
        inputs=ws,
        provenance_id=rec.id,
        notes=tuple([*ws.notes, *cat_notes, *hist_notes]),
    )
    if persist:
        _persist(store, run, actor)
    return run


def _ledger_rows(run: IndicatorRun) -> pd.DataFrame:
    t = run.evaluation.table.copy()
    names = run.unit_names()
    t.insert(list(t.columns).index("unit_id") + 1, "unit_name", t["unit_id"].map(names))
    t["target_year"] = pd.array(
        [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
            for v in t["target_year"]
        ],
        dtype="Int64",
    )
    t["trend_years"] = t["trend_years"].astype("int64")
    for c in ("is_aggregate", "target_interpolated", "target_passed", "synthetic"):
        t[c] = t[c].astype(bool)
    t["level"] = run.level
    t["area_code"] = run.area_code
    t["area_name"] = run.area_name
    t["catalogue_id"] = run.evaluation.catalogue_id
    t["provenance_id"] = run.provenance_id
    t["evaluated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return t


def _persist(store: Store, run: IndicatorRun, actor: str) -> None:
    new = _ledger_rows(run)
    if _table_exists(store, EVALUATIONS_TABLE):
        old = store.read_table(EVALUATIONS_TABLE)
        if set(old.columns) == set(new.columns):
            same = (
                (old["area_code"].astype(str) == run.area_code)
                & (old["level"].astype(str) == run.level)
                & (pd.to_numeric(old["year"]).astype(int) == run.year)
                & (old["catalogue_id"].astype(str) == run.evaluation.catalogue_id)
            )
            old = old[~same.to_numpy()]
            new = pd.concat([old[list(new.columns)], new], ignore_index=True) if len(old) else new
    store.write_table(
        EVALUATIONS_TABLE, new.reset_index(drop=True), actor=actor, action="indicators.evaluate"
    )


def load_evaluations(
    store: Store,
    *,
    year: int | None = None,
    unit: str | None = None,
    level: str | None = None,
    indicator: str | None = None,
) -> pd.DataFrame:
    """Read persisted evaluation rows, filtered (unit by area name or code)."""
    if not _table_exists(store, EVALUATIONS_TABLE):
        return pd.DataFrame()
    t = store.read_table(EVALUATIONS_TABLE)
    if year is not None:
        t = t[pd.to_numeric(t["year"]).astype(int) == int(year)]
    if unit is not None:
        t = t[(t["area_name"].astype(str) == unit) | (t["area_code"].astype(str) == unit)]
    if level is not None:
        t = t[t["level"].astype(str) == level]
    if indicator is not None:
        t = t[t["indicator"].astype(str) == indicator]
    return t.reset_index(drop=True)


def export_run_xlsx(run: IndicatorRun, path: str | Path) -> Path:
    """Write the evaluation of a run to Excel (Chinese headers, unit names)."""
    from yizhangtu.reports.health_check import export_evaluation_xlsx

    return export_evaluation_xlsx(run.evaluation, path, unit_names=run.unit_names())


def provenance_rows(store: Store, rid: str) -> list[dict[str, Any]]:
    """Appendix rows of a provenance record: each input with its snapshot or table facts.

    Built from :func:`yizhangtu.services.provenance.explain_chain`, so every row is the stored
    record, not a restatement.
    """
    chain = explain_chain(store, rid)
    rec = chain["record"]
    rows: list[dict[str, Any]] = []
    for item in chain["inputs"]:
        if item["kind"] == "snapshot":
            try:
                info = store.layer(item["name"])
                title = info.title or item["name"]
                synth = info.synthetic
            except NotFoundError:
                title, synth = item["name"], False
            rows.append(
                {
                    "name": title,
                    "layer": item["name"],
                    "snapshot": f"{item.get('label')} (#{item.get('snapshot_id')})",
                    "source": item.get("source_file") or "",
                    "content_hash": _short(item["content_hash"]),
                    "date": (item.get("imported_at") or "")[:10],
                    "synthetic": "是" if synth else "",
                    "note": "一致" if item.get("present") else "快照已变化或不存在",
                }
            )
        else:
            rows.append(
                {
                    "name": item["name"],
                    "layer": f"数据表 {item['name']}",
                    "snapshot": "",
                    "source": "",
                    "content_hash": _short(item["content_hash"]),
                    "date": "",
                    "synthetic": "",
                    "note": "一致" if item.get("present") else "数据表已变化",
                }
            )
    cats = "; ".join(f"{c['id']} v{c['version']}" for c in rec["params"].get("catalogues", []))
    rows.append(
        {
            "name": "溯源记录",
            "layer": f"{rec['kind']} {rec['id']}",
            "snapshot": "",
            "source": f"指标目录 {cats}",
            "content_hash": _short(rec.get("result_hash")),
            "date": str(rec["created_at"])[:10],
            "synthetic": "",
            "note": f"yizhangtu {rec['package_version']}, 执行人 {rec['created_by']}",
        }
    )
    return rows


def _consistency(store: Store, run: IndicatorRun) -> list[Any]:
    """Claimed-vs-computed checks of the packaged seed figures about this area."""
    from yizhangtu.indicators import load_seed_figures, run_seed_figure

    files: dict[str, pd.DataFrame] = {}
    if _table_exists(store, "census2020"):
        files["census2020"] = _clean_codes(store.read_table("census2020"), "adcode")
    out = []
    for fig in load_seed_figures():
        if fig.unit_id != run.area_code or fig.catalogue not in run.catalogues:
            continue
        if any(k not in files for k in fig.files.values()):
            continue
        res = run_seed_figure(fig, files)
        if res.claim_check is not None:
            out.append(res.claim_check)
    return out


def _report_evaluation(ev: Evaluation) -> Evaluation:
    """Prepare the evaluation for the report: a unit's own id in a reason reads "该单元".

    Reasons that differ only by the unit they name then read the same, so the report lists an
    indicator no unit can compute on one line; the ledger and the Excel keep the full text.
    """
    t = ev.table.copy()
    for col in ("status_reason", "reason"):
        t[col] = [
            r.replace(f"单元 {u} ", "该单元 ") if isinstance(r, str) else r
            for r, u in zip(t[col], t["unit_id"].astype(str), strict=True)
        ]
    return dataclasses.replace(ev, table=t)


def render_run_report(
    store: Store,
    run: IndicatorRun,
    out_path: str | Path,
    *,
    format: Literal["html", "pdf"] = "html",
    map_indicator: str | None = None,
    max_units_per_indicator: int | None = None,
) -> Path:
    """Render the health check report of a run; the appendix lists its provenance record.

    ``max_units_per_indicator`` caps the unit rows listed per indicator (default 12 for a
    district, 6 for streets; all rows are in the Excel export).
    """
    from yizhangtu.reports.health_check import render_health_check

    units = run.inputs.units
    agg = run.inputs.aggregate
    level_units = units[units["unit_id"] != agg] if agg else units
    geo = level_units if run.inputs.inputs.units is not None else None
    cap = max_units_per_indicator or (6 if run.level == "street" else 12)
    return render_health_check(
        _report_evaluation(run.evaluation),
        unit_name=run.area_name,
        year=run.year,
        units_gdf=geo,
        provenance=provenance_rows(store, run.provenance_id),
        out_path=out_path,
        format=format,
        map_indicator=map_indicator,
        consistency=_consistency(store, run),
        unit_names=run.unit_names(),
        max_units_per_indicator=cap,
    )


# ---------------------------------------------------------------------------
# API helpers: catalogue listings, input readiness, stored runs, background jobs
# ---------------------------------------------------------------------------

#: Ledger columns that describe the whole run (listed once in a run summary, not per row).
_RUN_COLUMNS = ("level", "area_code", "area_name", "catalogue_id", "provenance_id", "evaluated_at")


def packaged_catalogue(name: str) -> Catalogue:
    """Return a catalogue shipped with the package, by id (never a path).

    Raises
    ------
    NotFoundError
        When ``name`` is not a packaged catalogue id.
    """
    ids = list_catalogues()
    if name not in ids:
        raise NotFoundError(
            f"没有内置指标目录: {name}",
            key="catalogue_not_found",
            field="catalogue",
            hint="内置目录: " + ", ".join(ids),
        )
    return load_catalogue(name)


def _catalogue_row(cat: Catalogue) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for ind in cat:
        kinds[ind.formula.kind] = kinds.get(ind.formula.kind, 0) + 1
    return {
        "id": cat.id,
        "title": cat.title,
        "version": cat.version,
        "jurisdiction": cat.jurisdiction,
        "source": cat.source,
        "description": cat.description,
        "period": [cat.period_start, cat.period_end],
        "dimensions": list(cat.dimension_order()),
        "indicators": len(cat),
        "computable": len(cat.computable_ids()),
        "with_targets": sum(1 for i in cat if i.targets),
        "formula_kinds": dict(sorted(kinds.items())),
        "synthetic": bool(cat.synthetic),
    }


def catalogue_overview() -> list[dict[str, Any]]:
    """List the packaged catalogues with their indicator counts (JSON-ready)."""
    return [_catalogue_row(packaged_catalogue(cid)) for cid in list_catalogues()]


def indicator_definition(ind: Any) -> dict[str, Any]:
    """One indicator as JSON: formula (typed, as declared), unit, targets, warning rule, clause."""
    return {
        "id": ind.id,
        "name": ind.name,
        "dimension": ind.dimension,
        "category": ind.category,
        "scope": ind.scope,
        "unit": ind.unit,
        "direction": ind.direction,
        "department": ind.department,
        "source_level": ind.source_level,
        "computable": ind.computable,
        "formula": dataclasses.asdict(ind.formula),
        "requires": list(ind.required_inputs()),
        "targets": [dataclasses.asdict(t) for t in ind.targets],
        "warning": dataclasses.asdict(ind.warning),
        "clause": ind.clause,
        "note": ind.note,
        "source": ind.source,
        "ref": ind.ref,
    }


def catalogue_detail(name: str, *, dimension: str | None = None) -> dict[str, Any]:
    """Describe a packaged catalogue and its indicators (optionally of one dimension)."""
    cat = packaged_catalogue(name)
    inds = [indicator_definition(i) for i in cat if dimension is None or i.dimension == dimension]
    return {"catalogue": _catalogue_row(cat), "indicators": inds}


def indicator_requirements(ws: WorkspaceInputs, catalogue: Catalogue) -> list[dict[str, Any]]:
    """For each indicator: the inputs its formula reads, whether the workspace has each, readiness.

    Inputs are those of :func:`input_status` (one call per indicator); a composite is ready when
    all its components are; a ``not_computable`` formula never is (``missing`` says why).
    """
    from yizhangtu.indicators.model import CompositeFormula, NotComputableFormula

    rows: dict[str, dict[str, Any]] = {}
    composites: dict[str, tuple[str, ...]] = {}
    for ind in catalogue:
        base = {
            "indicator": ind.id,
            "name": ind.name,
            "dimension": ind.dimension,
            "formula": ind.formula.kind,
        }
        f = ind.formula
        if isinstance(f, NotComputableFormula):
            rows[ind.id] = base | {"inputs": [], "ready": False, "missing": list(f.missing)}
            continue
        if isinstance(f, CompositeFormula):
            composites[ind.id] = tuple(c.indicator for c in f.components)
            rows[ind.id] = base | {"inputs": [], "ready": False, "missing": []}
            continue
        st = input_status(ws, dataclasses.replace(catalogue, indicators=(ind,)))
        inputs = [
            {
                "kind": r["kind"],
                "name": r["name"],
                "label": r["label"],
                "available": bool(r["available"]),
                "from": r["from"],
            }
            for r in st.to_dict(orient="records")
        ]
        rows[ind.id] = base | {
            "inputs": inputs,
            "ready": all(i["available"] for i in inputs),
            "missing": [f"{i['label']}: {i['from']}" for i in inputs if not i["available"]],
        }

    def ready(iid: str, seen: frozenset[str]) -> bool:
        if iid not in composites:
            return bool(rows.get(iid, {}).get("ready", False))
        if iid in seen:
            return False
        return all(ready(c, seen | {iid}) for c in composites[iid])

    for iid, comps in composites.items():
        inputs = [
            {
                "kind": "指标",
                "name": c,
                "label": rows[c]["name"] if c in rows else c,
                "available": ready(c, frozenset({iid})),
                "from": "组合指标的分项",
            }
            for c in comps
        ]
        rows[iid] |= {
            "inputs": inputs,
            "ready": all(i["available"] for i in inputs),
            "missing": [i["label"] for i in inputs if not i["available"]],
        }
    return list(rows.values())


def _catalogue_ids(ids: Sequence[str] | None) -> list[str] | None:
    """Check catalogue ids from a request are packaged ids (paths are refused)."""
    if not ids:
        return None
    for cid in ids:
        packaged_catalogue(cid)
    return list(dict.fromkeys(ids))


def inputs_overview(
    store: Store,
    *,
    year: int,
    unit: str,
    level: str = "street",
    catalogues: Sequence[str] | None = None,
    survey: str | None = None,
    units_layer: str | None = None,
    district_layer: str | None = None,
    min_coverage: float | None = None,
) -> dict[str, Any]:
    """Report what the workspace supplies to evaluate ``unit`` in ``year``, by input and indicator.

    ``catalogues`` are packaged ids (default :func:`default_catalogues`). Reads the inputs the
    way :func:`evaluate_workspace` does (the survey is tabulated once over the units).
    """
    opts: dict[str, Any] = {
        k: v
        for k, v in {
            "units_layer": units_layer,
            "district_layer": district_layer,
            "min_coverage": min_coverage,
        }.items()
        if v is not None
    }
    ids = _catalogue_ids(catalogues)
    ws = workspace_inputs(store, year=year, unit=unit, level=level, survey=survey, **opts)
    cat, cat_notes, cats = _catalogue(ids, ws.area_name)
    status = input_status(ws, cat)
    req = indicator_requirements(ws, cat)
    return {
        "unit": ws.area_name,
        "unit_code": ws.area_code,
        "year": int(year),
        "level": level,
        "catalogues": [c.id for c in cats],
        "units": len(ws.units),
        "counts": {
            "indicators": len(cat),
            "with_formula": len(cat.computable_ids()),
            "ready": sum(1 for r in req if r["ready"]),
            "inputs": len(status),
            "inputs_available": int(status["available"].sum()) if len(status) else 0,
        },
        "inputs": [
            {k: (bool(v) if k == "available" else v) for k, v in r.items()}
            for r in status.to_dict(orient="records")
        ],
        "indicators": req,
        "sources": ws.sources,
        "notes": [*ws.notes, *cat_notes],
    }


def query_evaluations(
    store: Store, *, jurisdictions: Sequence[str] | None, run_id: str | None = None
) -> pd.DataFrame:
    """Read the persisted evaluation rows of units inside ``jurisdictions`` (code prefixes).

    The jurisdiction filter runs in the store's SQL on ``unit_id`` (``None``: every row, ``()``:
    none); ``run_id`` (the provenance id of a run) then selects one run.
    """
    if not _table_exists(store, EVALUATIONS_TABLE):
        return pd.DataFrame()
    t, _n = store.query_table(
        EVALUATIONS_TABLE,
        jurisdiction_field="unit_id" if jurisdictions is not None else None,
        jurisdictions=list(jurisdictions) if jurisdictions is not None else None,
    )
    if run_id is not None and len(t):
        t = t[t["provenance_id"].astype(str) == str(run_id)]
    return t.reset_index(drop=True)


def _status_counts(t: pd.DataFrame) -> dict[str, int]:
    from yizhangtu.indicators import STATUSES

    counts = t["status"].astype(str).value_counts().to_dict()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    out.update({str(k): int(v) for k, v in counts.items() if k not in out})
    return out


def _run_summary(t: pd.DataFrame) -> dict[str, Any]:
    first = t.iloc[0]
    agg = t["is_aggregate"].astype(bool)
    rid = str(first["provenance_id"])
    return {
        "run_id": rid,
        "year": int(first["year"]),
        "level": str(first["level"]),
        "level_label": LEVELS.get(str(first["level"]), str(first["level"])),
        "area_code": str(first["area_code"]),
        "area_name": str(first["area_name"]),
        "catalogue_id": str(first["catalogue_id"]),
        "evaluated_at": str(first["evaluated_at"]),
        "synthetic": bool(t["synthetic"].astype(bool).any()),
        "units": int(t["unit_id"].nunique()),
        "includes_aggregate": bool(agg.any()),
        "indicators": int(t["indicator"].nunique()),
        "computable_indicators": int(t.loc[t["status"] != "无法计算", "indicator"].nunique()),
        "rows": len(t),
        "status_counts": _status_counts(t),
        "url": f"/api/indicators/runs/{rid}",
    }


def list_runs(
    store: Store,
    *,
    jurisdictions: Sequence[str] | None,
    year: int | None = None,
    level: str | None = None,
    area: str | None = None,
) -> list[dict[str, Any]]:
    """List the stored runs with at least one unit inside ``jurisdictions``, newest first.

    Counts (units, rows, statuses) are of the rows inside the jurisdictions. A run evaluated
    again for the same area, level, year and catalogue replaces the earlier one.
    """
    t = query_evaluations(store, jurisdictions=jurisdictions)
    if t.empty:
        return []
    if year is not None:
        t = t[pd.to_numeric(t["year"]).astype(int) == int(year)]
    if level is not None:
        t = t[t["level"].astype(str) == level]
    if area is not None:
        t = t[(t["area_name"].astype(str) == area) | (t["area_code"].astype(str) == area)]
    runs = [_run_summary(g) for _rid, g in t.groupby("provenance_id", sort=False)]
    return sorted(runs, key=lambda r: (r["evaluated_at"], r["run_id"]), reverse=True)


def _visible_run(store: Store, run_id: str, jurisdictions: Sequence[str] | None) -> pd.DataFrame:
    t = query_evaluations(store, jurisdictions=jurisdictions, run_id=run_id)
    if t.empty:
        raise NotFoundError(
            f"评估结果不存在或没有你辖区内的单元: {run_id}",
            key="run_not_found",
            field="run_id",
            hint="GET /api/indicators/runs 列出可见的评估; 同一单元、层级、年份与目录重新评估后, "
            "旧结果被替换",
        )
    return t


def run_result(
    store: Store,
    run_id: str,
    *,
    jurisdictions: Sequence[str] | None,
    indicator: str | None = None,
    unit_id: str | None = None,
    status: str | None = None,
    dimension: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Return the rows of a stored run inside ``jurisdictions`` (value, target, status).

    Raises
    ------
    NotFoundError
        When the run does not exist or has no unit inside the jurisdictions.
    """
    t = _visible_run(store, run_id, jurisdictions)
    summary = _run_summary(t)
    if indicator is not None:
        t = t[t["indicator"].astype(str) == indicator]
    if unit_id is not None:
        t = t[t["unit_id"].astype(str) == unit_id]
    if status is not None:
        t = t[(t["status"].astype(str) == status) | (t["status_key"].astype(str) == status)]
    if dimension is not None:
        t = t[t["dimension"].astype(str) == dimension]
    total = len(t)
    page = t.iloc[offset : (offset + limit) if limit is not None else None]
    cols = [c for c in page.columns if c not in _RUN_COLUMNS]
    records = page[cols].astype(object).where(page[cols].notna(), None).to_dict(orient="records")
    return {
        "run": summary,
        "total": total,
        "offset": offset,
        "limit": limit,
        "rows": records,
    }


def run_provenance(
    store: Store, run_id: str, *, jurisdictions: Sequence[str] | None
) -> dict[str, Any]:
    """Return the provenance chain of a visible stored run, with the report-appendix rows."""
    t = _visible_run(store, run_id, jurisdictions)
    chain = explain_chain(store, run_id)
    return {
        "run": _run_summary(t),
        "record": chain["record"],
        "inputs": chain["inputs"],
        "appendix": provenance_rows(store, run_id),
    }


def area_code(store: Store, unit: str, *, layer: str | None = None) -> tuple[str, str]:
    """Return the code and name of a named unit (as :func:`resolve_area`, GDAL reads retried)."""
    code, name, _layer = resolve_area(store, unit, layer=layer)
    return code, name


def check_evaluation(store: Store, scope: Any, params: Mapping[str, Any]) -> tuple[str, str]:
    """Validate an evaluation request and the caller's right to write it; returns (code, name).

    The evaluated area must lie inside the caller's jurisdiction (``scope.require_covers``):
    its rows (the area and its streets) are written to the ledger. Catalogues must be
    packaged ids; named layers must exist.
    """
    return _check_evaluation(store, scope, params)


def _check_evaluation(store: Store, scope: Any, params: Mapping[str, Any]) -> tuple[str, str]:
    level = str(params.get("level") or "street")
    if level not in LEVELS:
        raise InputError(
            f"未知的单元层级: {level}",
            key="bad_level",
            field="level",
            hint="可选: " + ", ".join(LEVELS),
        )
    _catalogue_ids(params.get("catalogues"))
    for key in ("survey", "units_layer", "district_layer"):
        if params.get(key):
            store.layer(str(params[key]))
    area = _resolve_area(store, str(params["unit"]), layer=params.get("district_layer") or None)
    code, name = area.code, area.name
    scope.require_covers(code, "评估单元")
    if level == "street":  # the streets must be there before a job is queued
        _street_units(store, area, params.get("units_layer") or None)
    pick = params.get("map_indicator")
    if pick:
        cat, _notes, _cats = _catalogue(_catalogue_ids(params.get("catalogues")), name)
        if str(pick) not in {i.id for i in cat}:
            raise InputError(
                f"专题图指标 {pick} 不在所选指标目录中",
                key="indicator_not_found",
                field="map_indicator",
                hint="用 GET /api/indicators/catalogues/{目录} 查看指标编码",
            )
    return code, name


def _evaluate_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "year": int(params["year"]),
        "unit": str(params["unit"]),
        "level": str(params.get("level") or "street"),
        "catalogues": _catalogue_ids(params.get("catalogues")),
        "history_years": params.get("history_years"),
        "survey": params.get("survey"),
    }
    for key in ("units_layer", "district_layer", "min_coverage"):
        if params.get(key) is not None:
            kw[key] = params[key]
    return kw


def _evaluation_lock(uri: str) -> Any:
    """Return the lock serialising evaluations (and GeoPackage writers) of a workspace.

    On a GeoPackage it is the workspace write lock; on PostGIS a lock of the evaluation
    ledger, so two jobs never interleave their read-modify-write of the ledger table.
    """
    from yizhangtu.services.jobs import write_lock

    if uri.startswith(("postgresql://", "postgres://")):
        return write_lock(f"{uri}#{EVALUATIONS_TABLE}")
    return write_lock(uri)


def _run_json(run: IndicatorRun, saved: bool) -> dict[str, Any]:
    out = run.summary() | {"run_id": run.provenance_id, "saved": saved}
    if saved:
        out["run_url"] = f"/api/indicators/runs/{run.provenance_id}"
    out["provenance_url"] = f"/api/provenance/{run.provenance_id}"
    return out


def evaluate_job(
    uri: str, scope: Any, params: Mapping[str, Any]
) -> Callable[[Callable[[float, str], None]], dict[str, Any]]:
    """Make a job running :func:`evaluate_workspace` (persisted, with provenance) for ``scope``.

    The job opens its own workspace connection, re-checks :func:`check_evaluation` and holds
    :func:`_evaluation_lock` while it evaluates and writes.
    """
    params = dict(params)

    def run(progress: Callable[[float, str], None]) -> dict[str, Any]:
        from yizhangtu.services.jobs import open_worker_store

        progress(0.02, "等待其他评估或导入完成")
        with _evaluation_lock(uri):
            store = open_worker_store(uri)
            try:
                progress(0.05, "检查评估单元")
                check_evaluation(store, scope, params)
                progress(0.1, "读取指标输入, 计算并评估")
                res = evaluate_workspace(
                    store, actor=str(scope.username), persist=True, **_evaluate_kwargs(params)
                )
            finally:
                store.close()
        progress(0.99, "已保存评估结果")
        out = _run_json(res, True)
        return out | {"url": out["run_url"]}

    return run


def health_check_report_job(
    uri: str, scope: Any, reports_dir: Path, params: Mapping[str, Any]
) -> Callable[[Callable[[float, str], None]], dict[str, Any]]:
    """Make a job writing the city health check report of ``params`` into ``reports_dir``.

    Evaluates as :func:`evaluate_job` (saved unless ``params['save']`` is false), then writes
    the report (``format``: html, pdf or xlsx; ``xlsx=True`` adds the Excel table beside an
    html/pdf report). Each file is written under a hidden temporary name, its sidecar written
    with :func:`yizhangtu.services.jobs.write_report_meta` (creator and jurisdiction of
    ``scope``), then renamed into place.
    """
    import uuid

    params = dict(params)
    fmt = str(params.get("format") or "html")
    if fmt not in ("html", "pdf", "xlsx"):
        raise InputError(
            f"不支持的报告格式: {fmt}",
            key="report_format",
            field="format",
            hint="html、pdf 或 xlsx",
        )
    save = bool(params.get("save", True))

    def run(progress: Callable[[float, str], None]) -> dict[str, Any]:
        from yizhangtu.services.jobs import open_worker_store, write_report_meta

        progress(0.02, "等待其他评估或导入完成")
        store = open_worker_store(uri)
        try:
            with _evaluation_lock(uri):
                progress(0.05, "检查评估单元")
                check_evaluation(store, scope, params)
                progress(0.1, "读取指标输入, 计算并评估")
                res = evaluate_workspace(
                    store, actor=str(scope.username), persist=save, **_evaluate_kwargs(params)
                )
            synthetic = bool(res.evaluation.synthetic)
            title = f"{res.area_name}{res.year}年城市体检评估报告" + (
                " (合成数据)" if synthetic else ""
            )
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            stem = f"health_check_{res.area_code}_{res.year}_{stamp}_{uuid.uuid4().hex[:6]}"
            reports_dir.mkdir(parents=True, exist_ok=True)
            wanted = [fmt] + (["xlsx"] if params.get("xlsx") and fmt != "xlsx" else [])
            files = []
            for i, ext in enumerate(wanted):
                final = reports_dir / f"{stem}.{ext}"
                tmp = final.with_name(f".{final.name}.tmp.{ext}")
                progress(0.6 + 0.3 * i / len(wanted), f"写出报告 ({ext})")
                try:
                    if ext == "xlsx":
                        export_run_xlsx(res, tmp)
                    else:
                        render_run_report(
                            store,
                            res,
                            tmp,
                            format="pdf" if ext == "pdf" else "html",
                            map_indicator=params.get("map_indicator"),
                        )
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                write_report_meta(
                    final,
                    kind="health_check",
                    title=title if ext == fmt else f"{title} (评估结果表)",
                    scope=scope,
                    synthetic=synthetic,
                    extra={
                        "provenance_id": res.provenance_id,
                        "unit_code": res.area_code,
                        "year": res.year,
                        "level": res.level,
                        "format": ext,
                    },
                )
                tmp.replace(final)
                files.append(
                    {
                        "report": final.name,
                        "url": f"/api/reports/{final.name}",
                        "bytes": final.stat().st_size,
                        "format": ext,
                    }
                )
        finally:
            store.close()
        return files[0] | {"title": title, "files": files} | _run_json(res, save)

    return run
