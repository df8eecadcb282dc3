"""Demo steps of the reduction ledger (减量台账) on the synthetic Chaoyang survey (合成数据).

Order in :func:`yizhangtu.services.demo.demo_steps`::

    boundaries → census → demo_plots → survey → … → demo_step_reduction (last)

* :func:`demo_plots` must run inside ``step_survey``, after ``ctx.extras['survey_2020']`` is set
  and before the 2021 survey is evolved (or split step_survey into a 2020 and a 2021 step and
  put it between them). It draws the 2021 reduction plots of Chaoyang's 19 townships (乡/地区)
  on construction parcels and sets ``ctx.extras['plots_2021']`` with the ``scenario`` column that
  step_survey passes to :func:`yizhangtu.demo.synthetic.evolve_survey` for the 2021 survey.
* :func:`demo_step_reduction` runs after the 2021 snapshot exists: targets (朝阳区 71 km² by
  2035 from the policy pack, 002 (一(一)二); the township split and the yearly targets are
  synthetic), plot submission through the QC (one refused file shown), acceptance 2021, a 2022
  survey with one rebuilt plot, acceptance 2022, rebuild alerts, two quota transfers, progress
  with the seed's reported figures as a separate row, and the ledger workbook in
  ``ctx.out_dir/reports``. It imports the 2022 snapshot, which becomes the current survey: run
  it after every step that reads the current survey as 2021.
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

__all__ = ["demo_plots", "demo_step_reduction", "township_units"]

PACK = "beijing-reduction"
DISTRICT = "110105"
SEED = 2021
#: Synthetic demo choices (not policy): plot outcomes and how much more than the yearly target
#: the townships map.
_SCENARIO_WEIGHTS = {"reduced": 0.7, "partial": 0.15, "not_reduced": 0.15}
_OVERPLAN = 1.3
_USES = {"绿地": 0.4, "林地": 0.3, "耕地": 0.15, "留白": 0.15}
_SYN = "合成数据 (SYNTHETIC): 演示用分解, 非真实任务"
#: Plots are drawn this far inside their parcel. evolve_survey leaves zero-area "split" slivers
#: when a plot edge coincides with a parcel edge and the scenario share is below 1 (reported to
#: the lead); with the inset the remaining 1 m strip stays construction land in 2021.
_PLOT_INSET_M = 1.0


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


def demo_plots(ctx: Any) -> None:
    """Draw the 2021 reduction plots on the 2020 survey; sets ``ctx.extras['plots_2021']``.

    Needs the ``chaoyang_streets`` layer and ``ctx.extras['survey_2020']``. Plots are construction
    parcels (drawn :data:`_PLOT_INSET_M` inside them; 集体 village land mostly), about 1.3 × each
    township's 2021 target;
    70 % are given the scenario ``reduced``, 15 % ``partial``, 15 % ``not_reduced`` (合成数据).
    """
    streets = ctx.store.read_layer("chaoyang_streets")
    if "survey_2020" not in ctx.extras:
        raise InputError(
            "演示步骤顺序错误: 生成减量地块需要 2020 年合成调查 (ctx.extras['survey_2020'])",
            key="demo_order",
            hint="在 step_survey 生成 2020 年调查之后、演变 2021 年之前调用 demo_plots(ctx)",
        )
    survey: gpd.GeoDataFrame = ctx.extras["survey_2020"]
    pack = load_pack(PACK)
    towns = township_units(streets)
    cons = construction_mask(survey, pack)
    weights = _weights(survey, cons, towns)
    annual = _annual_total(pack)
    plan = _split(annual * _OVERPLAN, weights, 1.0)
    area = ellipsoidal_area(survey.geometry)
    rng = np.random.default_rng(SEED)
    types = {"0601": "工业大院", "0508": "工业大院", "0702": "村庄腾退"}
    rows = []
    for _, t in towns.iterrows():
        code = str(t["code"])
        cand = np.flatnonzero(
            cons
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
            if got >= plan[code]:
                break
            k += 1
            got += float(area[i])
            czc = str(survey["CZCSXM"].iloc[i])
            dlbm = str(survey["DLBM"].iloc[i])
            rows.append(
                {
                    "plot_id": f"{code[6:9]}-2021-{k:03d}",
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
    ctx.extras["plots_2021"] = plots
    ctx.extras["reduction_weights"] = weights
    counts = plots["scenario"].value_counts().to_dict()
    ctx.note(
        "减量地块 (拟 2021)",
        "plots_2021",
        len(plots),
        synthetic=True,
        detail=f"({float(ellipsoidal_area(plots.geometry).sum()) / 1e6:.2f} km², {len(towns)} 个乡;"
        f" 情景 {counts})",
    )


def _annual_total(pack: Any) -> float:
    """Synthetic yearly district target: what is left after the reported figure, spread evenly."""
    target = float(dict(param(pack, "district_targets"))[DISTRICT]) * 1e6
    done = float(dict(param(pack, "reported_net_reduction"))[DISTRICT]) * 1e6
    horizon = param(pack, "horizon_date").year
    return (target - done) / (horizon - SEED + 1)


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


def _write_plot_file(ctx: Any, plots: gpd.GeoDataFrame, code: str, how: str) -> Any:
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
        path = ctx.sources / f"减量地块_{code}_2021.xlsx"
        df.to_excel(path, index=False)
    elif how == "link":
        df = pd.DataFrame(table[list(cols.values())])
        df["图层"] = "survey"
        df["要素编号"] = plots["source_bsm"].to_numpy()
        path = ctx.sources / f"减量地块_{code}_2021_关联图斑.xlsx"
        df.to_excel(path, index=False)
    else:
        path = ctx.sources / f"reduction_plots_{code}_2021.geojson"
        table[[*cols.values(), "geometry"]].to_file(path, driver="GeoJSON")
    return path


def demo_step_reduction(ctx: Any) -> None:
    """Run targets, submission, acceptance 2021/2022, rebuild, transfers, progress, ledger .xlsx."""
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
    plots: gpd.GeoDataFrame = ctx.extras["plots_2021"]
    weights = ctx.extras.get("reduction_weights")
    if weights is None:
        weights = _weights(
            ctx.extras["survey_2020"], construction_mask(ctx.extras["survey_2020"], pack), towns
        )

    # -- targets: district from the pack (real, 002), township split and yearly tasks synthetic
    district = svc.seed_targets_from_pack(st, pack, actor=actor, names=names)[0]
    horizon = district.year
    totals = _split(district.target_m2, weights, 10_000.0)
    annual = _annual_total(pack)
    targets = [
        Target(DISTRICT, "朝阳区", "district", "annual", y, annual, clause=_SYN, synthetic=True)
        for y in (2021, 2022)
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
    for y in (2021, 2022):
        for code, m2 in _split(annual, weights, 1_000.0).items():
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
        " 乡级分解与年度目标为合成)",
    )

    # -- plot submission (落图): one file per township; show a refused file first
    codes = list(towns["code"].astype(str))
    hows = {codes[0]: "wkt", codes[1]: "wkt", codes[2]: "link"}
    first = codes[3]
    bad = plots[plots["township"] == first].iloc[:2].copy()
    if len(bad) == 2:
        bad.loc[bad.index[1], "geometry"] = bad.geometry.iloc[0].buffer(
            0.0003
        )  # overlaps its neighbour, spills out
        try:
            svc.submit_plots(
                st,
                _write_plot_file(
                    ctx, bad.assign(plot_id=bad["plot_id"] + "x"), f"{first}_draft", "geojson"
                ),
                township=first,
                year=2021,
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
    submitted = flagged = 0
    for code in codes:
        mine = plots[plots["township"] == code]
        if mine.empty:
            continue
        res = svc.submit_plots(
            st,
            _write_plot_file(ctx, mine, code, hows.get(code, "geojson")),
            township=code,
            year=2021,
            settings=ctx.settings,
            pack=pack,
        )
        submitted += res.submitted
        flagged += res.flagged
    ctx.note(
        "减量地块落图",
        "reduction_plots",
        submitted,
        synthetic=True,
        detail=f"({len(codes)} 个乡各一次提交; 带标记 {flagged})",
    )

    # -- acceptance 2021
    acc21 = svc.accept_year(st, year=2021, survey="2021", settings=ctx.settings, pack=pack)
    verdicts = acc21.acceptance["verdict"].value_counts().to_dict()
    d21 = acc21.district.iloc[0]
    ctx.note(
        "年度验收",
        "2021",
        len(acc21.acceptance),
        synthetic=True,
        detail=f"{verdicts}; 朝阳区净减量 {d21.net_m2 / 1e6:.3f} km²"
        f" = 验收减量 {d21.accepted_m2 / 1e6:.3f} + 其他减少 {d21.other_removed_m2 / 1e6:.3f}"
        f" − 新增 {d21.added_m2 / 1e6:.3f} (核对差 {d21.residual_m2:.2e} m²)",
    )

    # -- 2022 survey: one accepted plot is built on again (复建)
    acc = acc21.acceptance
    reduced = acc[acc["verdict"] == "reduced"].sort_values("reduced_m2", ascending=False)
    rebuild_ids = set(reduced["plot_id"].iloc[:1])
    rb = plots[plots["plot_id"].isin(rebuild_ids)].assign(scenario="rebuild")
    s22, _ = evolve_survey(
        ctx.extras["survey_2021"], seed=2022, year=2022, profile="chaoyang", plots=rb
    )
    ctx.extras["survey_2022"] = s22
    res22 = _import_survey(ctx, s22, 2022)
    ctx.note(
        "三调图斑",
        "survey@2022",
        res22.snapshot.feature_count,
        synthetic=True,
        detail=f"(含复建地块 {', '.join(sorted(rebuild_ids))})",
    )
    acc22 = svc.accept_year(st, year=2022, survey="2022", settings=ctx.settings, pack=pack)
    alerts = [
        a for a in svc.check_rebuild(st, survey="2022", settings=ctx.settings, pack=pack) if a.alert
    ]
    ctx.note(
        "复建预警",
        "2022",
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
            f"ZBLD-2022-{k:02d}",
            str(src),
            str(dst),
            2022,
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
        "net_2021_km2": float(d21.net_m2) / 1e6,
        "net_2022_km2": float(acc22.district.iloc[0].net_m2) / 1e6,
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
