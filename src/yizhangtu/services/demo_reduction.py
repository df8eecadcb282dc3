"""Demo steps of the reduction ledger (减量台账) on the synthetic Chaoyang survey (合成数据).

The ledger runs over :data:`LEDGER_YEARS` (2018–2021; the reduction work began with the 2017
master plan and seed 002, dated 2022-09, reports 35.5 of 71 km² done), so the computed progress
has the order of magnitude of the reported one. Order in
:func:`yizhangtu.services.demo.demo_steps`::

    boundaries → census → survey (base year, then per ledger year: demo_plots → evolve) → …
    → demo_step_reduction (last)

* :func:`survey_years` gives step_survey the base survey year and the ledger years.
* :func:`demo_plots` runs inside ``step_survey`` for each ledger year, after
  ``ctx.extras['survey_<year-1>']`` is set and before that year's survey is evolved. It draws the
  year's reduction plots of Chaoyang's 19 townships (乡/地区) on last year's construction
  parcels and sets ``ctx.extras['plots'][year]`` with the ``scenario`` column that step_survey
  passes to :func:`yizhangtu.demo.synthetic.evolve_survey`.
* :func:`demo_step_reduction` runs after the last ledger year's snapshot exists: targets
  (朝阳区 71 km² by 2035 from the policy pack, 002 (一(一)二); the township split and the
  yearly targets are synthetic), plot submission through the QC (one refused file shown),
  acceptance of each ledger year, a 2022 survey with one rebuilt plot, rebuild alerts, two quota
  transfers, progress with the seed's reported figures as a separate row, and the ledger
  workbook in ``ctx.out_dir/reports``. It imports the 2022 snapshot, which becomes the current
  survey: run it after every step that reads the current survey as 2021.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.errors import InputError, QCError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy import load_pack
from yizhangtu.reduction import Target, Transfer, construction_mask, targets_to_xlsx
from yizhangtu.reduction.rules import param

__all__ = ["LEDGER_YEARS", "demo_plots", "demo_step_reduction", "survey_years", "township_units"]

PACK = "beijing-reduction"
DISTRICT = "110105"
#: Synthetic demo choices (not policy): the ledger years (the base survey is the year before),
#: plot outcomes, how much more than its yearly target a township maps, and the two townships
#: that map too little in the last year so the progress table has lagging units to warn about.
LEDGER_YEARS = (2018, 2019, 2020, 2021)
_SCENARIO_WEIGHTS = {"reduced": 0.7, "partial": 0.15, "not_reduced": 0.15}
_OVERPLAN = 1.45
_LAGGING = {"overplan": 0.6, "count": 2}
_USES = {"绿地": 0.4, "林地": 0.3, "耕地": 0.15, "留白": 0.15}
_SYN = "合成数据 (SYNTHETIC): 演示用分解, 非真实任务"
#: Plots are drawn this far inside their parcel, as a township's digitised plot (落图) rarely
#: follows the survey's parcel edge exactly; the strip left outside stays construction land.
_PLOT_INSET_M = 1.0


def survey_years() -> tuple[int, tuple[int, ...]]:
    """Return the base year of the synthetic survey and the evolved (ledger) years."""
    return LEDGER_YEARS[0] - 1, LEDGER_YEARS


def township_units(streets: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Chaoyang's 19 townships (乡, officially 地区) of the boundary layer."""
    name = streets["name"].astype(str)
    nbs = streets["name_nbs2023"].astype(str) if "name_nbs2023" in streets.columns else name
    return streets[name.str.endswith("乡") | nbs.str.endswith("地区")].reset_index(drop=True)


def _weights(survey: gpd.GeoDataFrame, cons: np.ndarray, towns: gpd.GeoDataFrame) -> pd.Series:
    """Share of each township in the district's task (synthetic split rule).

    The weight is its village construction land (203) plus a tenth of its town construction land.
    """
    area = ellipsoidal_area(survey.geometry)
    village = cons & (survey["CZCSXM"].astype(str) == "203").to_numpy()
    w = pd.Series(np.where(village, area, np.where(cons, 0.1 * area, 0.0)), index=survey.index)
    by = w.groupby(survey["ZLDWDM"].astype(str)).sum()
    by = by.reindex(towns["code"].astype(str)).fillna(0.0)
    return by / by.sum()


def _split(total_m2: float, weights: pd.Series, step_m2: float) -> dict[str, float]:
    """Split ``total_m2`` by ``weights``, rounded to ``step_m2``, summing exactly to the total."""
    raw = weights * total_m2
    out = (raw / step_m2).round() * step_m2
    fix = total_m2 - float(out.sum())
    out.iloc[int(np.argmax(raw.to_numpy()))] += fix
    return {str(k): float(v) for k, v in out.items()}


def _lagging(weights: pd.Series) -> set[str]:
    """Return the synthetic lagging townships: the largest shares after the first."""
    order = weights.sort_values(ascending=False).index.astype(str)
    return set(order[1 : 1 + int(_LAGGING["count"])])


def demo_plots(ctx: Any, year: int) -> None:
    """Draw ``year``'s reduction plots on last year's survey; sets ``ctx.extras['plots'][year]``.

    Needs the ``chaoyang_streets`` layer and ``ctx.extras['survey_<year-1>']``. Plots are
    construction parcels (drawn :data:`_PLOT_INSET_M` inside them; 集体 village land mostly)
    that no earlier plot touches, about 1.45 × each township's yearly target; 70 % are given the
    scenario ``reduced``, 15 % ``partial``, 15 % ``not_reduced`` (合成数据).
    """
    streets = ctx.store.read_layer("chaoyang_streets")
    key = f"survey_{year - 1}"
    if key not in ctx.extras:
        raise InputError(
            f"演示步骤顺序错误: 生成 {year} 年减量地块需要 {year - 1} 年合成调查"
            f" (ctx.extras[{key!r}])",
            key="demo_order",
            hint=f"在 step_survey 生成 {year - 1} 年调查之后、演变 {year} 年之前"
            f"调用 demo_plots(ctx, {year})",
        )
    survey: gpd.GeoDataFrame = ctx.extras[key]
    pack = load_pack(PACK)
    towns = township_units(streets)
    cons = construction_mask(survey, pack)
    weights = ctx.extras.get("reduction_weights")
    if weights is None:
        weights = ctx.extras["reduction_weights"] = _weights(survey, cons, towns)
    lagging = _lagging(weights) if year == LEDGER_YEARS[-1] else set()
    plan = _split(_annual_total(pack, year), weights, 1.0)
    area = ellipsoidal_area(survey.geometry)
    earlier = [g for y, g in ctx.extras.get("plots", {}).items() if y < year and len(g)]
    taken = np.zeros(len(survey), dtype=bool)
    if earlier:
        hit = survey.sindex.query(
            pd.concat([g.geometry for g in earlier]).to_numpy(), predicate="intersects"
        )[1]
        taken[np.unique(hit)] = True
    rng = np.random.default_rng(year)
    types = {"0601": "工业大院", "0508": "工业大院", "0702": "村庄腾退"}
    rows = []
    for _, t in towns.iterrows():
        code = str(t["code"])
        goal = plan[code] * (_LAGGING["overplan"] if code in lagging else _OVERPLAN)
        cand = np.flatnonzero(
            cons
            & ~taken
            & (survey["ZLDWDM"].astype(str) == code).to_numpy()
            & (area >= 2_000)
            & (area <= 60_000)
        )
        village = cand[(survey["CZCSXM"].astype(str).to_numpy()[cand] == "203")]
        pool = np.concatenate(
            [rng.permutation(village), rng.permutation(np.setdiff1d(cand, village))]
        )
        got, k = 0.0, 0
        for i in pool:
            if got >= goal:
                break
            k += 1
            got += float(area[i])
            czc = str(survey["CZCSXM"].iloc[i])
            dlbm = str(survey["DLBM"].iloc[i])
            rows.append(
                {
                    "plot_id": f"{code[6:9]}-{year}-{k:03d}",
                    "township": code,
                    "plot_type": types.get(dlbm, "拆违腾退" if rng.random() < 0.5 else "疏解腾退"),
                    "ownership": "集体" if czc == "203" else "国有",
                    "planned_use": str(rng.choice(list(_USES), p=list(_USES.values()))),
                    "scenario": str(
                        rng.choice(list(_SCENARIO_WEIGHTS), p=list(_SCENARIO_WEIGHTS.values()))
                    ),
                    "source_bsm": int(survey["BSM"].iloc[i]),
                    "geometry": survey.geometry.iloc[i],
                }
            )
    plots = gpd.GeoDataFrame(rows, geometry="geometry", crs=survey.crs)
    if _PLOT_INSET_M:
        plots["geometry"] = (
            plots.geometry.to_crs(4527)
            .buffer(-_PLOT_INSET_M, join_style="mitre")
            .to_crs(survey.crs)
        )
        plots = plots[
            ~plots.geometry.is_empty & plots.geometry.geom_type.eq("Polygon")
        ].reset_index(drop=True)
    ctx.extras.setdefault("plots", {})[year] = plots
    counts = plots["scenario"].value_counts().to_dict()
    ctx.note(
        f"减量地块 (拟 {year})",
        f"plots_{year}",
        len(plots),
        synthetic=True,
        detail=f"({float(ellipsoidal_area(plots.geometry).sum()) / 1e6:.2f} km², {len(towns)} 个乡;"
        f" 情景 {counts})",
    )


def _annual_total(pack: Any, year: int) -> float:
    """Synthetic yearly district target.

    Over the ledger years: the reported figure (seed 002) spread evenly, so the synthetic
    series can be compared with it; afterwards: what is left, spread evenly to the horizon.
    """
    target = float(dict(param(pack, "district_targets"))[DISTRICT]) * 1e6
    done = float(dict(param(pack, "reported_net_reduction"))[DISTRICT]) * 1e6
    if year <= LEDGER_YEARS[-1]:
        return done / len(LEDGER_YEARS)
    horizon = param(pack, "horizon_date").year
    return (target - done) / (horizon - LEDGER_YEARS[-1])


def _spec_survey() -> Any:
    from yizhangtu.store import LayerSpec

    desc = "合成数据 (SYNTHETIC): 在真实街乡边界内生成的三调式图斑, 非真实调查成果"
    return LayerSpec(
        name="survey",
        kind="survey",
        title="朝阳区三调图斑 (合成数据)",
        description=desc,
        code_system="sandiao",
        code_field="DLBM",
        id_field="BSM",
        synthetic=True,
    )


def _import_survey(ctx: Any, gdf: gpd.GeoDataFrame, year: int) -> Any:
    """Deliver a synthetic survey year the way step_survey does (GBK Shapefile, EPSG:4527)."""
    import pyogrio

    from yizhangtu.geo.coverage import edge_match
    from yizhangtu.services.layers import ImportOptions, import_file

    # as step_survey does: shared edges get identical vertices before the GK round trip
    gdf = edge_match(gdf)
    gdf["TBMJ"] = ellipsoidal_area(gdf.geometry).round(2)
    shp = ctx.sources / f"DLTB_chaoyang_{year}_synthetic.shp"
    pyogrio.write_dataframe(gdf.to_crs(4527), shp, encoding="GBK")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    return import_file(
        ctx.store,
        shp,
        _spec_survey(),
        label=str(year),
        options=ImportOptions(
            code_field="DLBM", code_system="sandiao", id_field="BSM", offset_check=False
        ),
        settings=ctx.settings,
    )


def _write_plot_file(ctx: Any, plots: gpd.GeoDataFrame, code: str, how: str, year: int) -> Any:
    cols = {
        "plot_id": "地块编号",
        "plot_type": "地块类型",
        "ownership": "权属",
        "planned_use": "减量后用途",
    }
    table = plots.rename(columns=cols)
    if how == "wkt":
        df = pd.DataFrame(table[list(cols.values())])
        df["申报面积(亩)"] = np.round(ellipsoidal_area(plots.geometry) / (10_000 / 15), 2)
        df["WKT"] = plots.geometry.to_wkt()
        path = ctx.sources / f"减量地块_{code}_{year}.xlsx"
        df.to_excel(path, index=False)
    elif how == "link":
        df = pd.DataFrame(table[list(cols.values())])
        df["图层"] = f"survey@{year - 1}"
        df["要素编号"] = plots["source_bsm"].to_numpy()
        path = ctx.sources / f"减量地块_{code}_{year}_关联图斑.xlsx"
        df.to_excel(path, index=False)
    else:
        path = ctx.sources / f"reduction_plots_{code}_{year}.geojson"
        table[[*cols.values(), "geometry"]].to_file(path, driver="GeoJSON")
    return path


def demo_step_reduction(ctx: Any) -> None:
    """Run targets, yearly submission and acceptance, rebuild, transfers, progress, ledger."""
    from yizhangtu.demo.synthetic import evolve_survey
    from yizhangtu.services import reduction as svc

    st = ctx.store
    actor = ctx.settings.actor
    pack = load_pack(PACK)
    svc.set_config(
        st,
        actor=actor,
        units_layer="chaoyang_streets",
        unit_field="code",
        name_field="name",
        parent_field="district_code",
        parent_name_field="district_name",
        survey_layer="survey",
        pack=PACK,
    )
    streets = st.read_layer("chaoyang_streets")
    towns = township_units(streets)
    names = dict(zip(streets["code"].astype(str), streets["name"].astype(str), strict=True)) | {
        DISTRICT: "朝阳区"
    }
    all_plots: dict[int, gpd.GeoDataFrame] = ctx.extras["plots"]
    last = LEDGER_YEARS[-1]
    base = f"survey_{LEDGER_YEARS[0] - 1}"
    weights = ctx.extras.get("reduction_weights")
    if weights is None:
        weights = _weights(ctx.extras[base], construction_mask(ctx.extras[base], pack), towns)

    # -- targets: district from the pack (real, 002), township split and yearly tasks synthetic
    district = svc.seed_targets_from_pack(st, pack, actor=actor, names=names)[0]
    horizon = district.year
    totals = _split(district.target_m2, weights, 10_000.0)
    targets = [
        Target(
            DISTRICT,
            "朝阳区",
            "district",
            "annual",
            y,
            _annual_total(pack, y),
            clause=_SYN,
            synthetic=True,
        )
        for y in LEDGER_YEARS
    ]
    for code, m2 in totals.items():
        targets.append(
            Target(
                code,
                names[code],
                "township",
                "total",
                horizon,
                m2,
                parent_code=DISTRICT,
                clause=_SYN,
                synthetic=True,
            )
        )
    for y in LEDGER_YEARS:
        for code, m2 in _split(_annual_total(pack, y), weights, 1_000.0).items():
            targets.append(
                Target(
                    code,
                    names[code],
                    "township",
                    "annual",
                    y,
                    m2,
                    parent_code=DISTRICT,
                    clause=_SYN,
                    synthetic=True,
                )
            )
    tpath = ctx.sources / "减量目标_朝阳区_合成分解.xlsx"
    tpath.write_bytes(targets_to_xlsx(targets))
    svc.import_targets(st, tpath, actor=actor)
    ctx.note(
        "减量目标",
        "reduction_targets",
        len(targets) + 1,
        synthetic=True,
        detail=f"(朝阳区 {district.target_m2 / 1e6:.1f} km² 至 {horizon} 年, 002 (一(一)二);"
        f" 乡级分解与 {LEDGER_YEARS[0]}–{last} 年度目标为合成)",
    )

    # -- plot submission (落图): one file per township and year; show a refused file first
    codes = list(towns["code"].astype(str))
    hows = {codes[0]: "wkt", codes[1]: "wkt", codes[2]: "link"}
    first = codes[3]
    plots = all_plots[last]
    bad = plots[plots["township"] == first].iloc[:2].copy()
    if len(bad) == 2:
        bad.loc[bad.index[1], "geometry"] = bad.geometry.iloc[0].buffer(
            0.0003
        )  # overlaps its neighbour, spills out
        try:
            svc.submit_plots(
                st,
                _write_plot_file(
                    ctx, bad.assign(plot_id=bad["plot_id"] + "x"), f"{first}_draft", "geojson", last
                ),
                township=first,
                year=last,
                settings=ctx.settings,
                pack=pack,
            )
        except QCError as exc:
            checks = sorted({i["check"] for i in exc.data["issues"]})
            ctx.note(
                "落图质检 (拒收示例)",
                names[first],
                len(exc.data["issues"]),
                synthetic=True,
                detail=f"拒收: {', '.join(checks)}",
            )
    accepted: dict[int, Any] = {}
    for year in LEDGER_YEARS:
        submitted = flagged = 0
        for code in codes:
            mine = all_plots[year][all_plots[year]["township"] == code]
            if mine.empty:
                continue
            res = svc.submit_plots(
                st,
                _write_plot_file(ctx, mine, code, hows.get(code, "geojson"), year),
                township=code,
                year=year,
                settings=ctx.settings,
                pack=pack,
            )
            submitted += res.submitted
            flagged += res.flagged
        ctx.note(
            f"减量地块落图 {year}",
            "reduction_plots",
            submitted,
            synthetic=True,
            detail=f"({len(codes)} 个乡各一次提交; 带标记 {flagged})",
        )
        # -- year-end acceptance against that year's change survey
        acc_y = svc.accept_year(st, year=year, survey=str(year), settings=ctx.settings, pack=pack)
        accepted[year] = acc_y
        verdicts = acc_y.acceptance["verdict"].value_counts().to_dict()
        dy = acc_y.district.iloc[0]
        ctx.note(
            "年度验收",
            str(year),
            len(acc_y.acceptance),
            synthetic=True,
            detail=f"{verdicts}; 朝阳区净减量 {dy.net_m2 / 1e6:.3f} km²"
            f" = 验收减量 {dy.accepted_m2 / 1e6:.3f} + 其他减少 {dy.other_removed_m2 / 1e6:.3f}"
            f" − 新增 {dy.added_m2 / 1e6:.3f} (核对差 {dy.residual_m2:.2e} m²)",
        )
    acc21 = accepted[last]

    # -- the next survey: one accepted plot is built on again (复建); its year is not accepted
    # (seed 002 reports as of 2022-09, before that year's change survey closes)
    later = last + 1
    acc = acc21.acceptance
    reduced = acc[acc["verdict"] == "reduced"].sort_values("reduced_m2", ascending=False)
    rebuild_ids = set(reduced["plot_id"].iloc[:1])
    rb = plots[plots["plot_id"].isin(rebuild_ids)].assign(scenario="rebuild")
    s_later, _ = evolve_survey(
        ctx.extras[f"survey_{last}"],
        seed=later,
        year=later,
        profile="chaoyang",
        plots=rb,
        protect=pd.concat([g.geometry for g in all_plots.values()]),
    )
    ctx.extras[f"survey_{later}"] = s_later
    res_later = _import_survey(ctx, s_later, later)
    ctx.note(
        "三调图斑",
        f"survey@{later}",
        res_later.snapshot.feature_count,
        synthetic=True,
        detail=f"(含复建地块 {', '.join(sorted(rebuild_ids))})",
    )
    alerts = [
        a
        for a in svc.check_rebuild(st, survey=str(later), settings=ctx.settings, pack=pack)
        if a.alert
    ]
    ctx.note(
        "复建预警",
        str(later),
        len(alerts),
        synthetic=True,
        detail="; ".join(a.message for a in alerts[:3]),
    )

    # -- quota transfers (指标联动): from the townships with most accepted reduction
    by_town = (
        acc[acc["counted"]].groupby("township")["counted_m2"].sum().sort_values(ascending=False)
    )
    receivers = [c for c in codes if c not in by_town.index[:2]]
    transfers = []
    for k, (src, dst) in enumerate(zip(by_town.index[:2], receivers[-2:], strict=False), start=1):
        t = Transfer(
            f"ZBLD-{later}-{k:02d}",
            str(src),
            str(dst),
            later,
            quota_m2=round(float(by_town[src]) * 0.3, -2),
            ratio=0.8,
            population_credit=500.0 * k,
            output_credit_wan_yuan=1200.0 * k,
            compensation=tuple(param(pack, "transfer_compensation_kinds")),
            terms="合成数据: 承接地按人口承接与产值分计对转出地补偿 (001)",
        )
        svc.add_transfer(st, t, actor=actor, pack=pack)
        transfers.append(t)
    bal = svc.balance_report(st, pack=pack)
    ctx.note(
        "指标联动",
        "reduction_transfer",
        len(transfers),
        synthetic=True,
        detail=f"增减挂钩不平衡单位 {sum(b.status != 'balanced' for b in bal)} 个",
    )

    # -- progress and the ledger workbook
    reports = ctx.out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    prog_d = svc.progress_report(st, by="district", pack=pack)
    prog_t = svc.progress_report(st, by="township", pack=pack)
    (reports / "reduction_progress.json").write_text(
        json.dumps(
            {"district": svc.progress_json(prog_d), "township": svc.progress_json(prog_t)},
            ensure_ascii=False,
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    xlsx = svc.export_ledger(st, reports / "减量台账_朝阳区_合成数据.xlsx", pack=pack)
    comp = next(r for r in prog_d["rows"] if r.unit_code == DISTRICT)
    rep = next(r for r in prog_d["reported"] if r.unit_code == DISTRICT)
    behind = [r.unit_name for r in prog_t["rows"] if r.behind]
    figures = {
        "target_km2": comp.target_m2 / 1e6 if comp.target_m2 else None,
        "computed": {
            "accepted_km2": comp.accepted_m2 / 1e6,
            "net_km2": comp.net_m2 / 1e6,
            "percent": comp.percent_complete,
            "status": comp.status,
            "required_pace_km2": (comp.required_pace_m2 or 0) / 1e6,
            "achieved_pace_km2": (comp.achieved_pace_m2 or 0) / 1e6,
        },
        "reported_seed_002": {
            "net_km2": rep.net_m2 / 1e6,
            "percent": rep.percent_complete,
            "status": rep.status,
            "as_of": rep.year,
        },
        "net_by_year_km2": {y: float(r.district.iloc[0].net_m2) / 1e6 for y, r in accepted.items()},
        "townships_behind": len(behind),
        "rebuild_alerts": len(alerts),
        "xlsx": xlsx["path"],
    }
    ctx.extras["reduction"] = figures
    ctx.note(
        "减量进度",
        "朝阳区",
        f"{comp.percent_complete:.1f}%",
        synthetic=True,
        detail=f"计算: 净减量 {comp.net_m2 / 1e6:.2f} / 目标 {comp.target_m2 / 1e6:.0f} km²"
        f" ({comp.status}); 报告数 (种子 002): {rep.net_m2 / 1e6:.1f} km²"
        f" = {rep.percent_complete:.0f}%; 滞后乡 {len(behind)} 个",
    )
    ctx.note(
        "减量台账",
        xlsx["path"],
        len(xlsx["sheets"]),
        synthetic=True,
        detail="工作表: " + "、".join(xlsx["sheets"]),
    )
