"""Indicator services on a demo-like workspace, on both backends.

The workspace holds the real Chaoyang streets (tests/data/chaoyang_streets.geojson), the district
outline dissolved from them (as ``bj_districts`` is in the demo), the census sample, the district
figures of seed 002 (``stat_*``), and SYNTHETIC layers: a 三调-like survey for 2020 and 2021, an
ecological red line polygon and rail stations (all flagged synthetic).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from yizhangtu.codes import classify
from yizhangtu.demo import evolve_survey, generate_survey
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.indicators import load_catalogue
from yizhangtu.services.demo import DemoContext
from yizhangtu.services.demo_indicators import write_seed_statistics
from yizhangtu.services.indicators import (
    EVALUATIONS_TABLE,
    area_groups,
    evaluate_workspace,
    export_run_xlsx,
    input_status,
    load_evaluations,
    render_run_report,
    workspace_inputs,
)
from yizhangtu.services.provenance import explain_chain
from yizhangtu.settings import get_settings
from yizhangtu.store import LayerSpec, Store, open_store

DATA = Path(__file__).parent / "data"
N_PARCELS = 900

# A small user catalogue for the report test: two street-level area indicators (formulas as in
# tdt1063_style) so the report has a thematic map; the real local catalogue is added beside it.
SMALL_CATALOGUE = """
schema_version: 1
id: test_streets
title: 街道用地结构(测试目录)
version: "t1"
period: {start: 2010, end: 2035}
dimensions: [协调]
indicators:
  - id: residential_land_share
    name: 城乡居住用地占城乡建设用地的比例
    dimension: 协调
    unit: "%"
    direction: neutral
    scope: 街道
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [urban_rural_residential]}
      denominator: {kind: area, groups: [urban_rural_construction]}
  - id: construction_land_area
    name: 建设用地总面积
    dimension: 协调
    unit: km2
    direction: neutral
    scope: 街道
    formula: {kind: area, groups: [construction]}
"""


@pytest.fixture(scope="module")
def survey_frames() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    streets = gpd.read_file(DATA / "chaoyang_streets.geojson").to_crs(4490)
    s20 = generate_survey(streets, unit_field="code", seed=2020, n_parcels=N_PARCELS)
    s21, _log = evolve_survey(s20, seed=2021, year=2021)
    return streets, s20, s21


def build_workspace(store: Store, frames: tuple[gpd.GeoDataFrame, ...], tmp_path: Path) -> None:
    """A demo-like workspace (see module docstring)."""
    streets, s20, s21 = frames
    store.write_snapshot(
        LayerSpec(
            name="chaoyang_streets", kind="boundary", title="朝阳区街道乡镇界", id_field="code"
        ),
        [streets],
        label="2023",
        actor="test",
    )
    outline = shapely.union_all(np.asarray(streets.geometry.values, dtype=object))
    district = gpd.GeoDataFrame(
        {"adcode": ["110105"], "name": ["朝阳区"]}, geometry=[outline], crs=4490
    )
    store.write_snapshot(
        LayerSpec(name="bj_districts", kind="boundary", title="区县界"),
        [district],
        label="2023",
        actor="test",
    )
    census = pd.read_csv(DATA / "census2020_sample.csv", dtype={"adcode": str})
    store.write_table("census2020", census, actor="test")
    spec = LayerSpec(
        name="survey",
        kind="survey",
        title="三调图斑(合成数据)",
        code_system="sandiao",
        code_field="DLBM",
        id_field="BSM",
        synthetic=True,
    )
    for year, g in ((2020, s20), (2021, s21)):
        store.write_snapshot(spec, [g], label=str(year), obs_date=f"{year}-12-31", actor="test")
    # synthetic ecological red line: a disc in the north-east of the district
    c = outline.centroid
    red = gpd.GeoDataFrame(
        {"name": ["生态保护红线(合成)"]},
        geometry=[shapely.Point(c.x + 0.05, c.y + 0.04).buffer(0.03)],
        crs=4490,
    )
    store.write_snapshot(
        LayerSpec(
            name="eco_redline", kind="control_line", title="生态保护红线(合成)", synthetic=True
        ),
        [red],
        label="2021",
        actor="test",
    )
    # synthetic rail stations
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = outline.bounds
    pts = [
        shapely.Point(x, y)
        for x, y in zip(rng.uniform(minx, maxx, 60), rng.uniform(miny, maxy, 60), strict=True)
    ]
    pts = [p for p in pts if outline.contains(p)]
    stations = gpd.GeoDataFrame({"sid": [f"R{i}" for i in range(len(pts))]}, geometry=pts, crs=4490)
    store.write_snapshot(
        LayerSpec(name="rail_station", kind="other", title="轨道站点(合成)", synthetic=True),
        [stations],
        label="2021",
        actor="test",
    )
    ctx = DemoContext(
        store=store,
        out_dir=tmp_path,
        shared=tmp_path,
        settings=get_settings(actor="test"),
        log=lambda _m: None,
    )
    write_seed_statistics(ctx)


def test_area_groups_map_vocabulary_to_codes():
    g = area_groups("sandiao", has_czcsxm=True, control_layers={"eco_redline": "eco_redline"})
    assert g["construction"].available and "codes 分组" in g["construction"].method
    assert g["urban_construction"].available and "201" in g["urban_construction"].method
    assert g["eco_redline"].available
    assert not g["basic_farmland"].available and "basic_farmland" in str(g["basic_farmland"].gap)
    assert not g["funeral"].available and "sandiao" in str(g["funeral"].gap)
    no_czc = area_groups("sandiao", has_czcsxm=False, control_layers={})
    assert not no_czc["urban_rural_construction"].available
    assert "CZCSXM" in str(no_czc["urban_rural_construction"].gap)
    assert no_czc["cropland"].available


def test_street_evaluation_computes_or_names_missing_input(store, survey_frames, tmp_path):
    build_workspace(store, survey_frames, tmp_path)
    streets, _s20, s21 = survey_frames
    run = evaluate_workspace(store, year=2021, unit="朝阳区", level="street", actor="tester")
    t = run.evaluation.table
    assert run.catalogues == ("chaoyang_local", "tdt1063_style")
    assert t["unit_id"].nunique() == 44 and run.inputs.aggregate == "110105"
    assert t.loc[t["unit_id"] == "110105", "is_aggregate"].all()
    # every indicator either computes somewhere or names exactly what is missing
    cat = run.catalogue
    for r in t[t["status"] == "无法计算"].itertuples():
        kind = cat.get(r.indicator).formula.kind
        assert r.status_reason.startswith("无法计算: 缺少 "), r.status_reason
        if kind != "not_computable":
            assert re.search(r"\[(工作空间无|sandiao)|<[^>]+>|单元 \d+", r.status_reason), (
                r.status_reason
            )
    by = {(r.indicator, r.unit_id): r for r in t.itertuples()}
    u = str(streets["code"].iloc[0])
    assert "工作空间无控制线图层 basic_farmland" in by[("basic_farmland_area", u)].status_reason
    assert "殡葬用地" in by[("funeral_land_area", u)].status_reason
    assert "fire_station" in by[("fire_rescue_5min_coverage", u)].status_reason
    assert "stat_public_service" in by[("culture_floor_area_per_capita", "110105")].status_reason
    assert f"单元 {u} 2021 年的 pop_total" in by[("park_green_per_capita", u)].status_reason
    # computed: area groups per street equal the parcels' own ellipsoidal areas
    codes = s21["DLBM"].astype(str)
    czc = s21["CZCSXM"].astype(str).where(s21["CZCSXM"].astype(str) != "", None)
    cons = classify(codes, system="sandiao", group="construction") == "建设用地"
    urc = (
        classify(codes, system="sandiao", group="urban_rural_construction", czcsxm=czc)
        == "城乡建设用地"
    )
    area = ellipsoidal_area(s21.geometry)
    for grp, mask, ind in (
        (None, cons, "construction_land_area"),
        (None, urc, "urban_rural_construction_land_area"),
    ):
        expected = (
            pd.Series(area[mask.to_numpy()], index=s21.loc[mask.to_numpy(), "ZLDWDM"])
            .groupby(level=0)
            .sum()
            / 1e6
        )
        got = t[(t["indicator"] == ind) & ~t["is_aggregate"]].set_index("unit_id")["value"]
        assert np.allclose(
            got.reindex(expected.index).to_numpy(), expected.to_numpy(), rtol=1e-4
        ), grp
        agg = float(t[(t["indicator"] == ind) & t["is_aggregate"]]["value"].iloc[0])
        assert agg == pytest.approx(expected.sum(), rel=1e-3)
    # control line and facility layers feed their indicators
    red = store.read_layer("eco_redline")
    inside = float(
        ellipsoidal_area(
            red.intersection(shapely.union_all(np.asarray(streets.geometry.values, dtype=object)))
        )[0]
    )
    eco = t[(t["indicator"] == "eco_redline_area") & ~t["is_aggregate"]]["value"]
    assert eco.notna().all() and eco.sum() * 1e6 == pytest.approx(inside, rel=1e-3)
    cov = t[(t["indicator"] == "rail_station_800m_coverage") & ~t["is_aggregate"]]["value"]
    assert cov.notna().all() and cov.between(0, 100).all() and cov.max() > 0
    # seed 002 figures: population over the cap, building scale in the warning band
    assert by[("resident_population", "110105")].status == "未达标"
    assert by[("building_scale", "110105")].status == "预警"
    # trend over the 2020 and 2021 snapshots
    assert (
        t.loc[(t["indicator"] == "construction_land_area") & ~t["is_aggregate"], "trend_years"] == 2
    ).all()
    # persisted with the provenance id; the chain resolves to the snapshots and tables read
    led = load_evaluations(store, year=2021, unit="朝阳区")
    assert len(led) == len(t) and set(led["provenance_id"]) == {run.provenance_id}
    chain = explain_chain(store, run.provenance_id)
    assert all(i["present"] for i in chain["inputs"])
    names = {(i["name"], i.get("label")) for i in chain["inputs"]}
    assert {
        ("survey", "2020"),
        ("survey", "2021"),
        ("eco_redline", "2021"),
        ("rail_station", "2021"),
    } <= names
    assert {"census2020", "stat_population", "stat_building"} <= {
        i["name"] for i in chain["inputs"] if i["kind"] == "table"
    }
    assert chain["record"]["params"]["groups"]["funeral"].startswith("unavailable")
    # evaluating again replaces the rows of the same run instead of duplicating them
    evaluate_workspace(
        store, year=2021, unit="110105", level="street", actor="tester", history_years=[]
    )
    assert len(store.read_table(EVALUATIONS_TABLE)) == len(t)
    status = input_status(run.inputs, load_catalogue("tdt1063_style"))
    assert not status.loc[status["name"] == "basic_farmland", "available"].iloc[0]
    assert status.loc[status["name"] == "rail_station", "available"].iloc[0]


def test_district_level_census_and_report(store, survey_frames, tmp_path):
    build_workspace(store, survey_frames, tmp_path)
    run = evaluate_workspace(
        store,
        year=2020,
        unit="朝阳区",
        level="district",
        catalogues=["tdt1063_style"],
        actor="tester",
    )
    t = run.evaluation.table.set_index("indicator")
    assert list(run.inputs.units["unit_id"]) == ["110105"]
    assert t.loc["urbanization_rate", "value"] == pytest.approx(100.0)
    assert t.loc["resident_population", "value"] == pytest.approx(345.246)
    assert t.loc["housing_floor_area_per_capita", "value"] == pytest.approx(35.93)
    # a year without a survey snapshot names the gap
    ws = workspace_inputs(store, year=2019, unit="朝阳区", level="district")
    assert "无 2019 年快照" in str(ws.groups["cropland"].gap)

    cat = tmp_path / "small.yaml"
    cat.write_text(SMALL_CATALOGUE, encoding="utf-8")
    run = evaluate_workspace(
        store, year=2021, unit="朝阳区", catalogues=["chaoyang_local", str(cat)], actor="tester"
    )
    html = render_run_report(store, run, tmp_path / "hc.html")
    text = html.read_text("utf-8")
    assert "朝阳区2021年城市体检评估报告" in text and "合成数据" in text
    assert run.provenance_id in text and "data:image/png;base64" in text
    xl = export_run_xlsx(run, tmp_path / "hc.xlsx")
    wb = openpyxl.load_workbook(xl, read_only=True)
    assert {"说明", "汇总", "评估结果", "预警清单"} <= set(wb.sheetnames)
    assert wb["评估结果"].max_row == len(run.evaluation.table) + 1
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    pdf = render_run_report(store, run, tmp_path / "hc.pdf", format="pdf")
    out = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = re.sub(r"\s+", "", out)
    for phrase in (
        "朝阳区2021年城市体检评估报告",
        "常住人口规模",
        "未达标",
        "数据来源与处理记录",
        "合成数据",
        run.provenance_id,
    ):
        assert phrase in flat, phrase
    snap = store.resolve_snapshot("survey", "2021")
    assert f"2021(#{snap.id})" in flat  # the survey snapshot of the provenance record


def test_cli_indicators_and_report(workspace_uri, survey_frames, tmp_path):
    from yizhangtu.cli.main import app

    with open_store(workspace_uri) as st:
        build_workspace(st, survey_frames, tmp_path)
    runner = CliRunner()
    base = ["-w", workspace_uri]
    r = runner.invoke(app, [*base, "indicators", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert "chaoyang_local" in {c["id"] for c in json.loads(r.output)["catalogues"]}
    xl = tmp_path / "ev.xlsx"
    r = runner.invoke(
        app,
        [
            *base,
            "indicators",
            "evaluate",
            "-y",
            "2021",
            "-u",
            "朝阳区",
            "--level",
            "district",
            "-c",
            "chaoyang_local",
            "--xlsx",
            str(xl),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["saved"] and xl.exists() and d["status_counts"]["未达标"] >= 1
    rows = {x["indicator"]: x for x in d["rows"]}
    assert rows["resident_population"]["value"] == pytest.approx(344.9)
    r = runner.invoke(
        app, [*base, "indicators", "show", "resident_population", "-u", "朝阳区", "--json"]
    )
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["stored"][0]["provenance_id"] == d["provenance_id"]
    r = runner.invoke(
        app,
        [
            *base,
            "indicators",
            "inputs",
            "-y",
            "2021",
            "-u",
            "朝阳区",
            "-c",
            "tdt1063_style",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    avail = {x["name"]: x["available"] for x in json.loads(r.output)["inputs"]}
    assert avail["construction"] and avail["eco_redline"] and not avail["basic_farmland"]
    r = runner.invoke(
        app,
        [
            *base,
            "indicators",
            "compute",
            "-y",
            "2020",
            "-y",
            "2021",
            "-u",
            "朝阳区",
            "--level",
            "district",
            "-c",
            "tdt1063_style",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    series = json.loads(r.output)
    assert len(series["provenance_ids"]) == 2 and series["years"] == [2020, 2021]
    cons = {
        v["year"]: v["value"]
        for v in series["values"]
        if v["indicator"] == "construction_land_area"
    }
    assert set(cons) == {2020, 2021} and all(x > 0 for x in cons.values())
    pop = {
        v["year"]: v["value"] for v in series["values"] if v["indicator"] == "resident_population"
    }
    assert pop == {2020: pytest.approx(345.246), 2021: pytest.approx(344.9)}  # census, then 002
    out = tmp_path / "report.html"
    r = runner.invoke(
        app,
        [
            *base,
            "report",
            "health-check",
            "-y",
            "2021",
            "-u",
            "朝阳区",
            "-c",
            "chaoyang_local",
            "--level",
            "district",
            "-f",
            "html",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert Path(rep["file"]) == out and rep["provenance_id"] in out.read_text("utf-8")
