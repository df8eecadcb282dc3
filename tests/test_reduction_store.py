"""Reduction ledger on the store and the CLI, on GeoPackage and PostGIS (fixtures ``store``,
``workspace_uri``): submission with QC, acceptance with provenance, rebuild, transfers,
progress and the .xlsx ledger.

The scenario is the hand-made one of test_reduction.py (rectangles at 117°E in EPSG:4548,
stored in CGCS2000 lon/lat), plus a third township T3 that the survey covers only in part.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from openpyxl import Workbook, load_workbook
from typer.testing import CliRunner

from yizhangtu.errors import ConflictError, InputError, NotFoundError, QCError, ValidationError
from yizhangtu.reduction import Target, Transfer
from yizhangtu.services import reduction as svc
from yizhangtu.services.provenance import explain_chain
from yizhangtu.settings import get_settings
from yizhangtu.store import LayerSpec, Store, open_store

X0, Y0 = 500_000.0, 4_400_000.0
REL = 1e-7


def box(x0, y0, x1, y1):
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def ring(*pts):
    return shapely.Polygon([(X0 + x, Y0 + y) for x, y in pts])


def gk(rows, cols) -> gpd.GeoDataFrame:
    *attrs, geoms = zip(*rows, strict=True)
    return gpd.GeoDataFrame(
        dict(zip(cols, attrs, strict=True)), geometry=list(geoms), crs=4548
    ).to_crs(4490)


B_RING = ring((200, 0), (300, 0), (400, 0), (400, 100), (300, 100), (200, 100))
SCOLS = ["BSM", "DLBM", "CZCSXM"]


def _survey(year: int) -> gpd.GeoDataFrame:
    base = [
        (1, "0702", "203", box(0, 0, 200, 100)),
        (2, "0702", "203", B_RING),
        (3, "0702", "203", box(400, 0, 600, 100)),
        (4, "0702", "203", box(600, 0, 800, 100)),
        (5, "0103", "", box(800, 0, 1000, 100)),
        (6, "0301", "", box(0, 100, 1000, 1000)),
        (7, "0702", "203", box(1000, 0, 2000, 500)),
        (8, "0301", "", box(1000, 500, 2000, 1000)),
        (9, "0702", "203", box(2000, 0, 3000, 500)),  # T3: the survey stops at y = 500
    ]
    if year == 2020:
        return gk(base, SCOLS)
    y21 = [
        (10, "0301", "", box(0, 0, 200, 100)),
        (11, "0301", "", box(200, 0, 300, 100)),
        (12, "0702", "203", box(300, 0, 400, 100)),
        (3, "0702", "203", box(400, 0, 600, 100)),
        (13, "0103", "", box(600, 0, 800, 100)),
        (14, "0702", "203", box(800, 0, 1000, 100)),
        *base[5:],
    ]
    if year == 2021:
        return gk(y21, SCOLS)
    # 2022: construction back on 60 × 100 m of plot A (rebuild)
    y22 = [
        (15, "0702", "203", box(0, 0, 60, 100)),
        (16, "0301", "", box(60, 0, 200, 100)),
        *y21[1:],
    ]
    return gk(y22, SCOLS)


UNITS = gk(
    [
        ("T1", "甲乡", "D1", "甲区", box(0, 0, 1000, 1000)),
        ("T2", "乙乡", "D1", "甲区", box(1000, 0, 2000, 1000)),
        ("T3", "丙乡", "D1", "甲区", box(2000, 0, 3000, 1000)),
    ],
    ["code", "name", "district_code", "district_name"],
)
PLOT_COLS = ["地块编号", "地块类型", "权属", "减量后用途"]


def _plots(rows) -> gpd.GeoDataFrame:
    return gk(rows, PLOT_COLS)


@pytest.fixture
def settings(tmp_path):
    return get_settings(workspace=str(tmp_path / "unused.gpkg"), actor="tester")


def _setup(st: Store, *, years=(2020, 2021)) -> None:
    st.write_snapshot(
        LayerSpec(name="units", kind="boundary", title="乡镇界"), [UNITS], label="2023", actor="t"
    )
    for y in years:
        st.write_snapshot(
            LayerSpec(
                name="survey", kind="survey", code_field="DLBM", id_field="BSM", synthetic=True
            ),
            [_survey(y)],
            label=str(y),
            obs_date=f"{y}-12-31",
            actor="t",
        )
    svc.set_config(st, actor="t", units_layer="units")


def _write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    gdf.to_file(path, driver="GeoJSON")
    return path


GOOD_T1 = [
    ("A", "村庄腾退", "集体", "绿地", box(0, 0, 200, 100)),
    ("B", "拆违腾退", "集体", "林地", B_RING),
    ("C", "工业大院", "国有", "留白", box(400, 0, 600, 100)),
]


def test_full_year_cycle(store: Store, tmp_path: Path, settings):
    _setup(store)
    pack = svc.reduction_pack(store)
    svc.seed_targets_from_pack(store, pack, actor="t", names={"110105": "朝阳区"})
    for t in (
        Target("D1", "甲区", "district", "total", 2035, 0.5e6),
        Target("T1", "甲乡", "township", "total", 2035, 0.3e6, parent_code="D1"),
        Target("T2", "乙乡", "township", "total", 2035, 0.2e6, parent_code="D1"),
        Target("T2", "乙乡", "township", "annual", 2021, 0.05e6, parent_code="D1"),
    ):
        svc.set_target(store, t, actor="t")
    rep = svc.targets_report(store)
    assert {c["unit_code"]: c["ok"] for c in rep["split_checks"]} == {"D1": True}
    assert any(t["unit_code"] == "110105" and t["target_km2"] == 71 for t in rep["targets"])

    audit_before = len(store.audit_log())
    dry = svc.submit_plots(
        store,
        _write(_plots(GOOD_T1), tmp_path / "t1.geojson"),
        township="T1",
        year=2021,
        settings=settings,
        dry_run=True,
    )
    assert dry.snapshot is None and dry.submitted == 3 and dry.to_dict()["dry_run"] is True
    assert list(dry.plots["qc_status"]) == ["ok"] * 3
    assert dry.area_m2 == pytest.approx(float(dry.plots["area_m2"].sum()))
    assert len(store.audit_log()) == audit_before and len(svc.list_plots(store)) == 0
    res = svc.submit_plots(
        store,
        tmp_path / "t1.geojson",
        township="T1",
        year=2021,
        settings=settings,
    )
    assert res.submitted == 3 and res.flagged == 0 and res.snapshot.label == "2021-T1-1"
    bad_use = _plots([("F", "村庄腾退", "集体", "商业", box(1000, 0, 1200, 100))])
    with pytest.raises(QCError) as e:
        svc.submit_plots(
            store,
            _write(bad_use, tmp_path / "t2.geojson"),
            township="T2",
            year=2021,
            settings=settings,
        )
    assert [i["check"] for i in e.value.data["issues"]] == ["bad_planned_use"]
    flagged = svc.submit_plots(
        store, tmp_path / "t2.geojson", township="T2", year=2021, settings=settings, flag=True
    )
    assert flagged.flagged == 1
    plots = svc.list_plots(store)
    assert len(plots) == 4 and store.layer("reduction_plots").kind == "plot"
    assert plots.set_index("plot_id").loc["F", "qc_status"] == "flagged"
    assert plots.set_index("plot_id").loc["A", "area_m2"] == pytest.approx(20_000, rel=REL)

    acc = svc.accept_year(store, year=2021, survey="2021", settings=settings)
    assert acc.baseline.label == "2020"
    v = acc.acceptance.set_index("plot_id")
    assert v["verdict"].to_dict() == {
        "A": "reduced",
        "B": "partial",
        "C": "not_reduced",
        "F": "flagged",
    }
    # every acceptance row names the plot snapshot, both surveys and the policy, with provenance
    row = v.loc["A"]
    assert row.survey_label == "2021" and row.baseline_label == "2020"
    assert row.survey_hash == store.resolve_snapshot("survey", "2021").content_hash
    assert int(row.plot_snapshot) == store.resolve_snapshot("reduction_plots").id
    assert (row.policy_id, row.policy_version, row.policy_hash) == (
        pack.id,
        pack.version,
        pack.hash,
    )
    chain = explain_chain(store, row.provenance_id)
    assert {i["name"] for i in chain["inputs"]} == {"survey", "units", "reduction_plots"} and all(
        i["present"] for i in chain["inputs"]
    )
    assert chain["record"]["policy"]["id"] == "beijing-reduction"
    # the stored tables read back the same on both backends
    led = svc.read_ledger(store)
    t1 = led[(led.level == "township") & (led.unit_code == "T1")].iloc[0]
    assert (t1.net_m2, t1.removed_m2, t1.accepted_m2, t1.added_m2) == pytest.approx(
        (30_000, 50_000, 30_000, 20_000), rel=REL
    )
    assert abs(t1.net_m2 - (t1.accepted_m2 + t1.other_removed_m2 - t1.added_m2)) < 1e-6
    d1 = led[(led.level == "district")].iloc[0]
    assert d1.unit_name == "甲区" and d1.net_m2 == pytest.approx(
        30_000, rel=REL
    )  # T2, T3 unchanged
    assert len(svc.read_acceptance(store)) == 4
    # replacing accepted plots is refused
    with pytest.raises(ConflictError):
        svc.submit_plots(
            store,
            tmp_path / "t1.geojson",
            township="T1",
            year=2021,
            settings=settings,
            replace_existing=True,
        )

    # 2022: rebuild on A, ledger of 2022, transfers, progress, export
    store.write_snapshot(
        LayerSpec(name="survey", kind="survey", code_field="DLBM", id_field="BSM", synthetic=True),
        [_survey(2022)],
        label="2022",
        obs_date="2022-12-31",
        actor="t",
    )
    alerts = {a.plot_id: a for a in svc.check_rebuild(store, survey="2022", settings=settings)}
    assert set(alerts) == {"A", "B"}  # the counted plots
    assert (
        alerts["A"].alert
        and alerts["A"].rebuilt_m2 == pytest.approx(6_000, rel=REL)
        and alerts["A"].survey_year == 2022
    )
    assert not alerts["B"].alert
    assert store.get_provenance(alerts["A"].provenance_id).kind == "reduction.rebuild"
    svc.accept_year(store, year=2022, survey="2022", settings=settings)
    led = svc.read_ledger(store)
    assert sorted(led.year.unique()) == [2021, 2022]
    assert led[(led.year == 2022) & (led.unit_code == "T1")].iloc[0].added_m2 == pytest.approx(
        6_000, rel=REL
    )

    svc.add_transfer(
        store,
        Transfer(
            "L1", "T1", "T2", 2022, 5_000, 0.8, population_credit=120, compensation=("人口承接",)
        ),
        actor="t",
    )
    with pytest.raises(ValidationError) as e:
        svc.add_transfer(
            store, Transfer("L2", "T1", "T2", 2022, 5_000, 1.5, terms="产值分计"), actor="t"
        )
    assert e.value.key == "reduction_transfer_ratio_too_high"
    with pytest.raises(ValidationError):
        svc.add_transfer(
            store, Transfer("L3", "T1", "NOPE", 2022, 5_000, 0.5, terms="x"), actor="t"
        )
    assert [t.transfer_id for t in svc.list_transfers(store)] == ["L1"]
    bal = {b.unit_code: b for b in svc.balance_report(store)}
    assert bal["T1"].sent_m2 == 5_000 and bal["T2"].received_m2 == 4_000
    # T1 built 20 000 + 6 000, accepted 30 000, sent 5 000 → 25 000 allowed: over by ~1 000
    assert bal["T1"].status == "over"

    prog = svc.progress_report(store, by="township")
    rows = {r.unit_code: r for r in prog["rows"]}
    assert (
        rows["T2"].status == "behind" and rows["T2"].annual_target_m2 is None
    )  # annual target was for 2021
    assert rows["T1"].years_counted == 2 and rows["T1"].years_left == 13
    j = svc.progress_json(svc.progress_report(store, by="district"))
    dist = {r["unit_code"]: r for r in j["rows"]}
    assert dist["D1"]["target_km2"] == 0.5 and dist["D1"]["status"] in ("behind", "on_track")
    assert j["reported"][0]["net_km2"] == 35.5 and j["reported"][0][
        "percent_complete"
    ] == pytest.approx(50.0)

    out = svc.export_ledger(store, tmp_path / "台账.xlsx")
    wb = load_workbook(out["path"])
    assert wb.sheetnames == [
        "说明",
        "进度",
        "区级台账",
        "乡镇台账",
        "地块验收",
        "复建预警",
        "指标联动",
        "增减挂钩",
    ]
    assert [c.value for c in wb["区级台账"][1]][:4] == ["单位代码", "单位名称", "上级代码", "年度"]
    assert any(
        r[0] == "A" and r[7] == "是" for r in wb["复建预警"].iter_rows(min_row=2, values_only=True)
    )
    assert "合成数据" in wb["说明"]["B2"].value


def test_bad_submissions_are_refused_with_findings(store: Store, tmp_path: Path, settings):
    _setup(store)
    svc.submit_plots(
        store,
        _write(_plots(GOOD_T1[:1]), tmp_path / "ok.geojson"),
        township="T1",
        year=2021,
        settings=settings,
    )
    n_snap = len(store.snapshots("reduction_plots"))

    def refused(rows, township="T1", name="bad.geojson") -> dict[str, set[str]]:
        path = _write(_plots(rows), tmp_path / name)
        with pytest.raises(QCError) as e:
            svc.submit_plots(store, path, township=township, year=2021, settings=settings)
        assert e.value.key == "reduction_plots_refused"
        out: dict[str, set[str]] = {}
        for i in e.value.data["issues"]:
            out.setdefault(i["plot_id"], set()).add(i["check"])
        return out

    ok = ("村庄腾退", "集体", "绿地")
    assert refused([("P1", *ok, box(950, 200, 1050, 300))])["P1"] >= {"outside_unit"}
    assert refused([("P2", *ok, box(100, 0, 300, 100))])["P2"] == {
        "overlap"
    }  # overlaps stored plot A
    assert refused([("P3", *ok, box(100, 500, 200, 600))])["P3"] == {"not_construction"}
    assert refused([("A", *ok, box(400, 0, 600, 100))])["A"] == {"duplicate_id"}
    assert refused([("P4", *ok, box(400, 0, 500, 100)), ("P4", *ok, box(500, 0, 600, 100))])[
        "P4"
    ] == {"duplicate_id"}
    bowtie = shapely.Polygon(
        [(X0 + 400, Y0), (X0 + 600, Y0 + 100), (X0 + 600, Y0), (X0 + 400, Y0 + 100)]
    )
    assert "invalid_geometry" in refused([("P5", *ok, bowtie)])["P5"]
    assert refused([("P6", *ok, box(2100, 400, 2200, 600))], township="T3")["P6"] == {
        "not_covered",
        "not_construction",
    }
    assert len(store.snapshots("reduction_plots")) == n_snap  # nothing written
    assert len(svc.list_plots(store)) == 1
    with pytest.raises(NotFoundError) as e:
        svc.submit_plots(
            store, tmp_path / "ok.geojson", township="T9", year=2021, settings=settings
        )
    assert e.value.key == "reduction_unit_not_found"


def _xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_bureau_spreadsheets(store: Store, tmp_path: Path, settings):
    _setup(store)
    # WKT polygons (CGCS2000 lon/lat), with a declared area in 亩
    geo = gk([("A", box(0, 0, 200, 100)), ("C", box(400, 0, 600, 100))], ["id"])
    wkt = _xlsx(
        tmp_path / "wkt.xlsx",
        ["地块编号", "地块类型", "权属", "减量后用途", "申报面积(亩)", "WKT"],
        [
            ["A", "村庄腾退", "集体", "绿地", 30, geo.geometry[0].wkt],
            ["C", "工业大院", "国有", "留白", 10, geo.geometry[1].wkt],
        ],
    )
    res = svc.submit_plots(store, wkt, township="T1", year=2021, settings=settings)
    assert res.submitted == 2
    assert [w for w in res.warnings if "申报面积" in w] and len(
        res.warnings
    ) == 1  # C declared 10 亩 ≠ 3 亩
    # a link to a stored layer: survey parcel BSM 4
    link = _xlsx(
        tmp_path / "link.xlsx",
        ["地块编号", "地块类型", "权属", "减量后用途", "图层", "要素编号"],
        [["D", "拆违腾退", "集体", "耕地", "survey", 4]],
    )
    assert svc.submit_plots(
        store, link, township="T1", year=2021, settings=settings
    ).area_m2 == pytest.approx(20_000, rel=REL)
    # x/y points cannot be plots
    pts = _xlsx(
        tmp_path / "pts.xlsx",
        ["地块编号", "地块类型", "权属", "减量后用途", "经度", "纬度"],
        [["E", "拆违腾退", "集体", "耕地", 117.0001, 39.7341]],
    )
    with pytest.raises(InputError) as e:
        svc.submit_plots(store, pts, township="T1", year=2021, settings=settings)
    assert e.value.key == "reduction_plot_no_polygon"
    # targets from a bureau workbook
    tgt = _xlsx(
        tmp_path / "targets.xlsx",
        ["单位代码", "单位名称", "层级", "上级代码", "目标类型", "年份", "目标面积(公顷)"],
        [
            ["D1", "甲区", "区", None, "总目标", 2035, 50],
            ["T1", "甲乡", "乡镇", "D1", "总目标", 2035, 30],
            ["T2", "乙乡", "乡镇", "D1", "总目标", 2035, 10],
        ],
    )
    svc.import_targets(store, tgt, actor="t")
    checks = svc.targets_report(store)["split_checks"]
    assert checks[0]["ok"] is False and checks[0]["unallocated_m2"] == pytest.approx(100_000)


def _cli(uri: str, *args: str):
    from yizhangtu.cli.main import app

    return CliRunner().invoke(app, ["--workspace", uri, "reduction", *args], catch_exceptions=False)


def test_cli(workspace_uri: str, tmp_path: Path):
    with open_store(workspace_uri) as st:
        _setup(st)
    assert _cli(workspace_uri, "config", "--json").exit_code == 0
    r = _cli(
        workspace_uri,
        "targets",
        "set",
        "--unit",
        "T1",
        "--name",
        "甲乡",
        "--parent",
        "D1",
        "--year",
        "2035",
        "--ha",
        "60",
        "--json",
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["target_km2"] == pytest.approx(0.6)
    _cli(
        workspace_uri,
        "targets",
        "set",
        "--unit",
        "D1",
        "--name",
        "甲区",
        "--level",
        "district",
        "--year",
        "2035",
        "--km2",
        "0.6",
    )
    r = _cli(workspace_uri, "targets", "show")
    assert "减量目标" in r.stdout and "已全部分解" in r.stdout
    bad = _write(
        _plots([("Q", "村庄腾退", "集体", "绿地", box(100, 500, 200, 600))]), tmp_path / "b.geojson"
    )
    args = ["plots", "submit", str(bad), "--township", "T1", "--year", "2021"]
    from yizhangtu.cli.main import app

    r = CliRunner().invoke(app, ["--workspace", workspace_uri, "reduction", *args])
    assert isinstance(r.exception, QCError)
    assert "落图质检问题" in r.stdout and "not_construction" in r.stdout
    path = _write(_plots(GOOD_T1), tmp_path / "t1.geojson")
    r = _cli(
        workspace_uri, "plots", "submit", str(path), "--township", "T1", "--year", "2021", "--json"
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["submitted"] == 3
    r = _cli(workspace_uri, "accept", "--year", "2021", "--survey", "2021", "--json")
    body = json.loads(r.stdout)
    assert body["verdicts"] == {"reduced": 1, "partial": 1, "not_reduced": 1}
    assert all(p["provenance_id"] for p in body["plots"])
    r = _cli(workspace_uri, "accept", "--year", "2021", "--survey", "2021")
    assert "区级台账" in r.stdout and "净减量" in r.stdout
    r = _cli(
        workspace_uri,
        "transfer",
        "add",
        "--id",
        "L1",
        "--from",
        "T1",
        "--to",
        "T2",
        "--year",
        "2021",
        "--quota-ha",
        "1",
        "--ratio",
        "0.5",
        "--population",
        "100",
    )
    assert r.exit_code == 0 and "已登记" in r.stdout
    r = _cli(workspace_uri, "transfer", "list", "--json")
    assert json.loads(r.stdout)["transfers"][0]["received_m2"] == pytest.approx(5_000)
    r = _cli(workspace_uri, "progress", "--by", "township", "--json")
    rows = json.loads(r.stdout)["rows"]
    t1 = rows[0]
    assert {"target_km2", "accepted_km2", "net_km2", "percent_complete", "status"} <= set(t1)
    # 0.03 km² net in one year against 0.6 km² by 2035: 5 %, and (0.6 − 0.03) / 14 years needed
    assert t1["target_km2"] == pytest.approx(0.6) and t1["percent_complete"] == pytest.approx(
        5.0, rel=1e-6
    )
    assert t1["required_pace_km2"] == pytest.approx(0.57 / 14, rel=1e-6) and t1["years_left"] == 14
    assert t1["status"] == "behind" and t1["behind"] is True
    r = _cli(workspace_uri, "progress")
    assert "减量进度" in r.stdout and "进度滞后" in r.stdout
    rep = json.loads(_cli(workspace_uri, "progress", "--by", "district", "--json").stdout)[
        "reported"
    ][0]
    assert (rep["label"], rep["target_km2"], rep["net_km2"], rep["percent_complete"]) == (
        "报告数 (种子 002)",
        71,
        35.5,
        50.0,
    )
    out = tmp_path / "台账.xlsx"
    r = _cli(workspace_uri, "progress", "--format", "xlsx", "-o", str(out))
    assert r.exit_code == 0
    wb = load_workbook(io.BytesIO(out.read_bytes()))
    assert [c.value for c in wb["地块验收"][1]][:3] == ["年度", "地块编号", "乡镇"]
    assert pd.DataFrame(wb["乡镇台账"].values).iloc[0, 0] == "单位代码"
