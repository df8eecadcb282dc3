"""Reduction ledger (减量台账), pure functions on hand-made scenarios with known areas.

Polygons are drawn in CGCS2000 3° Gauss–Krüger (EPSG:4548, central meridian 117°E) at the
central meridian, where the scale factor is 1: a 100 m × 200 m rectangle has an ellipsoidal
area of 20 000 m² to ~1e-9 relative, so the expected figures below are exact rectangle areas.
"""

from __future__ import annotations

import io
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from openpyxl import load_workbook

from yizhangtu.errors import ValidationError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy import load_pack
from yizhangtu.reduction import (
    LEDGER_SHEETS,
    Target,
    Transfer,
    aggregate_ledger,
    balance,
    check_plots,
    check_transfer,
    construction_mask,
    detect_rebuild,
    evaluate_year,
    ledger_to_xlsx,
    normalise_plots,
    progress,
    reported_rows,
    targets_from_xlsx,
    targets_to_xlsx,
)
from yizhangtu.reduction.rules import RULES

X0, Y0 = 500_000.0, 4_400_000.0
CRS = 4548
REL = 1e-7  # ellipsoidal vs planar rectangle at the central meridian
EXACT = 1e-6  # m²: reconciliation is float rounding only


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def ring(*pts: tuple[float, float]) -> shapely.Polygon:
    """A polygon through the given corners (extra vertices on straight edges are kept)."""
    return shapely.Polygon([(X0 + x, Y0 + y) for x, y in pts])


def frame(rows: list[tuple], columns: list[str]) -> gpd.GeoDataFrame:
    *attrs, geoms = zip(*rows, strict=True)
    return gpd.GeoDataFrame(dict(zip(columns, attrs, strict=True)), geometry=list(geoms), crs=CRS)


@pytest.fixture(scope="module")
def pack():
    return load_pack("beijing-reduction")


@pytest.fixture(scope="module")
def units() -> gpd.GeoDataFrame:
    return frame(
        [
            ("T1", "甲乡", "D1", "甲区", box(0, 0, 1000, 1000)),
            ("T2", "乙乡", "D1", "甲区", box(1000, 0, 2000, 1000)),
        ],
        ["code", "name", "district_code", "district_name"],
    )


SURVEY_COLS = ["DLBM", "CZCSXM"]


@pytest.fixture(scope="module")
def s2020() -> gpd.GeoDataFrame:
    """Baseline: T1 has five 200 m × 100 m strips (a–d construction, e farmland); T2 half built."""
    return frame(
        [
            ("0702", "203", box(0, 0, 200, 100)),  # a: plot A, fully reduced
            (
                "0702",
                "203",
                ring((200, 0), (300, 0), (400, 0), (400, 100), (300, 100), (200, 100)),
            ),  # b: plot B, half reduced
            ("0702", "203", box(400, 0, 600, 100)),  # c: plot C, not reduced
            ("0702", "203", box(600, 0, 800, 100)),  # d: no plot, reduced anyway
            ("0103", "", box(800, 0, 1000, 100)),  # e: farmland, built in 2021
            ("0301", "", box(0, 100, 1000, 1000)),
            # T2 village, plot F lies here (flagged). The 2021 split vertices are on its outline:
            # a survey measured in another plane than the one it was cut in gains sub-mm slivers
            # at such T-junctions (see test_t_junctions_leave_a_tiny_residual)
            (
                "0702",
                "203",
                ring(
                    (1000, 0),
                    (1100, 0),
                    (2000, 0),
                    (2000, 100),
                    (2000, 500),
                    (1000, 500),
                    (1000, 100),
                ),
            ),
            ("0301", "", box(1000, 500, 2000, 1000)),
        ],
        SURVEY_COLS,
    )


@pytest.fixture(scope="module")
def s2021() -> gpd.GeoDataFrame:
    return frame(
        [
            ("0301", "", box(0, 0, 200, 100)),
            ("0301", "", box(200, 0, 300, 100)),
            ("0702", "203", box(300, 0, 400, 100)),
            ("0702", "203", box(400, 0, 600, 100)),
            ("0103", "", box(600, 0, 800, 100)),
            ("0702", "203", box(800, 0, 1000, 100)),
            ("0301", "", box(0, 100, 1000, 1000)),
            ("0301", "", box(1000, 0, 1100, 100)),  # part of F reduced, but F is flagged
            ("0702", "203", box(1100, 0, 2000, 100)),
            ("0702", "203", ring((1000, 100), (1100, 100), (2000, 100), (2000, 500), (1000, 500))),
            ("0301", "", box(1000, 500, 2000, 1000)),
        ],
        SURVEY_COLS,
    )


@pytest.fixture(scope="module")
def plots() -> gpd.GeoDataFrame:
    return frame(
        [
            ("A", "T1", 2021, "村庄腾退", "集体", "绿地", "ok", "", box(0, 0, 200, 100)),
            (
                "B",
                "T1",
                2021,
                "拆违腾退",
                "集体",
                "林地",
                "ok",
                "",
                ring((200, 0), (300, 0), (400, 0), (400, 100), (300, 100), (200, 100)),
            ),
            ("C", "T1", 2021, "工业大院", "国有", "留白", "ok", "", box(400, 0, 600, 100)),
            (
                "F",
                "T2",
                2021,
                "村庄腾退",
                "集体",
                "耕地",
                "flagged",
                "与地块 X 重叠",
                box(1000, 0, 1200, 100),
            ),
            ("OLD", "T1", 2020, "村庄腾退", "集体", "绿地", "ok", "", box(0, 200, 100, 300)),
        ],
        [
            "plot_id",
            "township",
            "year",
            "plot_type",
            "ownership",
            "planned_use",
            "qc_status",
            "qc_reasons",
        ],
    )


@pytest.fixture(scope="module")
def year2021(units, s2020, s2021, plots, pack):
    return evaluate_year(
        units=units,
        baseline=s2020,
        baseline_construction=construction_mask(s2020, pack),
        survey=s2021,
        survey_construction=construction_mask(s2021, pack),
        plots=plots,
        year=2021,
        pack=pack,
    )


def test_pack_validates_against_schema_and_rules(pack):
    from yizhangtu.policy import validate_pack

    problems = validate_pack(pack.path)
    assert [p for p in problems if p.severity == "error"] == []
    # the only warning: the transfer ratio the seed leaves open ("按照一定比例")
    assert [p.where for p in problems] == ["parameters.transfer_ratio_default"]
    assert RULES.check_pack(pack) == []
    for name, p in pack.parameters.items():
        assert p.clause or p.local_choice, name
    assert pack.param("acceptance_share_min", unit="ratio") == 0.9
    assert pack.parameter("acceptance_share_min").local_choice
    assert pack.param("district_targets", unit="km2") == {"110105": 71}
    assert pack.parameter("district_targets").clause == "002 (一(一)二)"
    assert pack.param("reported_net_reduction", unit="km2") == {"110105": 35.5}


def test_construction_needs_code_and_czcsxm(pack):
    df = pd.DataFrame(
        {"DLBM": ["0702", "0702", "0301", "0601", "1003"], "CZCSXM": ["203", "", "", "201", "201"]}
    )
    assert construction_mask(df, pack).tolist() == [True, False, False, True, False]


def test_every_verdict_and_known_areas(year2021):
    acc = year2021.acceptance.set_index("plot_id")
    assert set(acc.index) == {"A", "B", "C", "F"}  # OLD belongs to 2020
    assert acc.loc["A", "verdict"] == "reduced"
    assert acc.loc["B", "verdict"] == "partial"
    assert acc.loc["C", "verdict"] == "not_reduced"
    assert acc.loc["F", "verdict"] == "flagged"
    assert acc.loc["A", "reduced_m2"] == pytest.approx(20_000, rel=REL)
    assert acc.loc["B", "reduced_m2"] == pytest.approx(10_000, rel=REL)
    assert acc.loc["B", "share"] == pytest.approx(0.5, rel=REL)
    assert acc.loc["C", "reduced_m2"] == 0.0
    assert acc.loc["F", "reduced_m2"] == pytest.approx(
        10_000, rel=REL
    )  # left construction, but not counted
    assert acc["counted"].to_dict() == {"A": True, "B": True, "C": False, "F": False}
    assert "部分减量" in acc.loc["B", "message"] and "90%" in acc.loc["B", "message"]
    assert "质检存疑" in acc.loc["F", "message"] and "重叠" in acc.loc["F", "message"]
    # per plot: base − remaining == reduced − new (F cuts parcels where they have no vertex:
    # such T-junctions cost ~1e-9 of the area, see test_t_junctions_leave_a_tiny_residual)
    for m in year2021.measures:
        tol = EXACT if m.plot_id != "F" else 1e-9 * m.area_m2
        assert m.base_m2 - m.remaining_m2 == pytest.approx(m.reduced_m2 - m.new_m2, abs=tol)


def test_ledger_reconciles_exactly(year2021):
    led = year2021.ledger.set_index("unit_code")
    t1, t2 = led.loc["T1"], led.loc["T2"]
    # T1: stock 80 000 → 50 000; removed a, b/2, d = 50 000; new e = 20 000;
    # accepted A + B/2 = 30 000
    assert t1.stock_prev_m2 == pytest.approx(80_000, rel=REL)
    assert t1.stock_m2 == pytest.approx(50_000, rel=REL)
    assert t1.net_m2 == pytest.approx(30_000, rel=REL)
    assert t1.removed_m2 == pytest.approx(50_000, rel=REL)
    assert t1.added_m2 == pytest.approx(20_000, rel=REL)
    assert t1.accepted_m2 == pytest.approx(30_000, rel=REL)
    assert t1.other_removed_m2 == pytest.approx(20_000, rel=REL)
    # T2: F's reduction is real (net 10 000) but not accepted (flagged)
    assert t2.net_m2 == pytest.approx(10_000, rel=REL)
    assert t2.accepted_m2 == 0.0
    assert t2.other_removed_m2 == pytest.approx(10_000, rel=REL)
    for r in (t1, t2):
        assert abs(r.net_m2 - (r.removed_m2 - r.added_m2)) < EXACT
        assert abs(r.net_m2 - (r.accepted_m2 + r.other_removed_m2 - r.added_m2)) < EXACT
        assert abs(r.residual_m2) < EXACT
        assert abs(r.coverage_change_m2) < EXACT
    # accepted in the ledger is exactly the sum of the counted plots of the unit
    acc = year2021.acceptance
    assert t1.accepted_m2 == math.fsum(acc.loc[acc.counted & (acc.township == "T1"), "reduced_m2"])
    assert (t1.plots, t1.plots_reduced, t1.plots_partial, t1.plots_not_reduced) == (3, 1, 1, 1)
    assert t2.plots_other == 1
    # independent check of the stocks: ellipsoidal areas of the construction parcels
    assert t1.stock_prev_m2 == pytest.approx(
        float(ellipsoidal_area(gpd.GeoSeries([box(0, 0, 800, 100)], crs=CRS))[0]), rel=REL
    )


def test_t_junctions_leave_a_tiny_residual(units, pack):
    """Split vertices missing from the parent's outline: the residual shows, and stays tiny."""
    s0 = frame([("0702", "203", box(0, 0, 1000, 1000))], SURVEY_COLS)
    s1 = frame(
        [
            ("0301", "", box(0, 0, 100, 100)),
            ("0702", "203", box(100, 0, 1000, 100)),
            ("0702", "203", box(0, 100, 1000, 1000)),
        ],
        SURVEY_COLS,
    )
    r = evaluate_year(
        units=units.iloc[:1],
        baseline=s0,
        baseline_construction=construction_mask(s0, pack),
        survey=s1,
        survey_construction=construction_mask(s1, pack),
        plots=None,
        year=2021,
        pack=pack,
    )
    row = r.ledger.iloc[0]
    assert row.net_m2 == pytest.approx(10_000, rel=1e-5)
    assert 0 < abs(row.residual_m2) < 1e-6 * row.stock_prev_m2


def test_district_rows_are_exact_sums(year2021):
    town = year2021.ledger.assign(baseline_label="2020", survey_label="2021", provenance_id="x")
    dist = aggregate_ledger(town, names={"D1": "甲区"})
    assert len(dist) == 1
    d = dist.iloc[0]
    assert d.unit_name == "甲区" and d.level == "district"
    for c in ("net_m2", "removed_m2", "accepted_m2", "added_m2", "stock_prev_m2"):
        assert d[c] == math.fsum(town[c])
    assert d.plots == 4
    assert abs(d.net_m2 - (d.accepted_m2 + d.other_removed_m2 - d.added_m2)) < EXACT


def test_acceptance_threshold_is_inclusive_and_from_pack(units, s2020, pack):
    # plot G: 90 % of its construction area leaves → exactly the 0.9 share → reduced
    s0 = frame(
        [
            ("0702", "203", box(0, 0, 100, 100)),
            ("0301", "", box(100, 0, 1000, 1000)),
            ("0301", "", box(0, 100, 100, 1000)),
        ],
        SURVEY_COLS,
    )
    s1 = frame(
        [
            ("0301", "", box(0, 0, 90, 100)),
            ("0702", "203", box(90, 0, 100, 100)),
            ("0301", "", box(100, 0, 1000, 1000)),
            ("0301", "", box(0, 100, 100, 1000)),
        ],
        SURVEY_COLS,
    )
    pl = frame(
        [("G", "T1", 2021, "ok", box(0, 0, 100, 100))], ["plot_id", "township", "year", "qc_status"]
    )
    one = units.iloc[:1]

    def verdict(p):
        r = evaluate_year(
            units=one,
            baseline=s0,
            baseline_construction=construction_mask(s0, p),
            survey=s1,
            survey_construction=construction_mask(s1, p),
            plots=pl,
            year=2021,
            pack=p,
        )
        return r.acceptance.iloc[0]

    row = verdict(pack)
    assert row.share == pytest.approx(0.9, rel=REL)
    # "不低于" includes the number: a threshold equal to the measured share accepts the plot
    assert verdict(pack.with_values(acceptance_share_min=float(row.share))).verdict == "reduced"
    assert (
        verdict(pack.with_values(acceptance_share_min=float(row.share) + 1e-6)).verdict == "partial"
    )
    assert verdict(pack.with_values(acceptance_share_min=0.95)).verdict == "partial"
    # partial plots count only if the pack says so
    strict = verdict(pack.with_values(acceptance_share_min=0.95, count_partial=False))
    assert strict.verdict == "partial" and not strict.counted and strict.counted_m2 == 0.0


def test_survey_not_covering_plot(units, pack):
    s0 = frame([("0702", "203", box(0, 0, 1000, 1000))], SURVEY_COLS)
    s1 = frame(
        [("0301", "", box(0, 0, 1000, 900))], SURVEY_COLS
    )  # the 2021 survey misses the north strip
    pl = frame(
        [("H", "T1", 2021, "ok", box(0, 850, 100, 950))],
        ["plot_id", "township", "year", "qc_status"],
    )
    r = evaluate_year(
        units=units.iloc[:1],
        baseline=s0,
        baseline_construction=construction_mask(s0, pack),
        survey=s1,
        survey_construction=construction_mask(s1, pack),
        plots=pl,
        year=2021,
        pack=pack,
    )
    row = r.acceptance.iloc[0]
    assert row.verdict == "not_covered" and not row.counted
    assert "5000.0" in row.message  # 100 m × 50 m not covered
    led = r.ledger.iloc[0]
    # the gap shows as a coverage change of the unit, and the books still balance
    assert led.coverage_change_m2 == pytest.approx(100_000, rel=REL)
    assert abs(led.residual_m2) < EXACT


def test_submission_checks(units, s2020, pack):
    from datetime import date

    existing = frame([("E1", box(850, 0, 950, 100))], ["plot_id"])
    new = frame(
        [
            ("P1", "村庄腾退", "集体", "绿地", np.nan, box(0, 0, 200, 100)),  # fine
            ("P2", "村庄腾退", "集体", "绿地", np.nan, box(950, 0, 1050, 100)),  # 50 m outside T1
            (
                "P3",
                "村庄腾退",
                "集体",
                "绿地",
                np.nan,
                box(800, 50, 900, 100),
            ),  # farmland, overlaps E1
            (
                "E1",
                "拆迁",
                "私有",
                "商业",
                30_000.0,
                box(200, 0, 400, 100),
            ),  # duplicate id, bad values, declared area
        ],
        ["plot_id", "plot_type", "ownership", "planned_use", "declared_area_m2"],
    )
    issues = check_plots(
        new,
        unit=units.iloc[:1],
        unit_label="甲乡(T1)",
        existing=existing,
        survey=s2020,
        survey_construction=construction_mask(s2020, pack),
        survey_label="survey@2020",
        pack=pack,
        at=date(2021, 12, 31),
    )
    by = {(i.plot_id, i.check) for i in issues}
    assert ("P1", "outside_unit") not in by and not [i for i in issues if i.plot_id == "P1"]
    assert ("P2", "outside_unit") in by
    out = next(i for i in issues if i.plot_id == "P2" and i.check == "outside_unit")
    assert out.area_m2 == pytest.approx(5_000, rel=REL)
    assert ("P2", "not_covered") not in by  # the survey covers T2 too
    assert ("P3", "overlap") in by and ("P3", "not_construction") in by
    assert next(i for i in issues if i.check == "overlap").other == "E1"
    assert {
        ("E1", "duplicate_id"),
        ("E1", "bad_plot_type"),
        ("E1", "bad_ownership"),
        ("E1", "bad_planned_use"),
        ("E1", "declared_area_mismatch"),
    } <= by
    assert next(i for i in issues if i.check == "declared_area_mismatch").severity == "warning"


def test_normalise_bureau_headers():
    gdf = gpd.GeoDataFrame(
        {
            "地块编号": [1, 2],
            "地块类型": ["拆违腾退", "村庄腾退"],
            "权属": ["集体", "国有"],
            "减量后用途": ["绿地", "留白"],
            "申报面积（亩）": [15, 30],
            "乡镇": ["T1", "T1"],
        },
        geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100)],
        crs=CRS,
    )
    out = normalise_plots(gdf, township="T1", year=2021)
    assert out["plot_id"].tolist() == ["1", "2"]
    assert out["declared_area_m2"].tolist() == pytest.approx([10_000, 20_000])
    with pytest.raises(ValidationError) as e:
        normalise_plots(gdf, township="T2", year=2021)
    assert e.value.key == "reduction_plot_township_mismatch"


def test_rebuild_alert(units, s2021, pack):
    # plot A was accepted against 2021; in 2022 60 × 100 m of it is built again, 5 × 10 m on B
    s22 = frame(
        [
            ("0702", "203", box(0, 0, 60, 100)),
            ("0301", "", box(60, 0, 200, 100)),
            ("0702", "203", box(200, 0, 205, 10)),
            ("0301", "", box(205, 0, 300, 100)),
            ("0301", "", box(200, 10, 205, 100)),
        ],
        SURVEY_COLS,
    )
    pl = frame(
        [("A", "T1", 2021, box(0, 0, 200, 100)), ("B", "T1", 2021, box(200, 0, 300, 100))],
        ["plot_id", "township", "accepted_year"],
    )
    alerts = detect_rebuild(
        pl,
        accepted_survey=s2021,
        accepted_construction=construction_mask(s2021, pack),
        later_survey=s22,
        later_construction=construction_mask(s22, pack),
        survey_year=2022,
        survey_label="2022",
        pack=pack,
    )
    a, b = alerts
    assert a.alert and a.rebuilt_m2 == pytest.approx(6_000, rel=REL)
    assert (
        "复建预警" in a.message
        and "A" in a.message
        and "2022" in a.message
        and "6000.0" in a.message
    )
    assert not b.alert and b.rebuilt_m2 == pytest.approx(50, rel=1e-6)  # under the 100 m² tolerance
    assert detect_rebuild(
        pl,
        accepted_survey=s2021,
        accepted_construction=construction_mask(s2021, pack),
        later_survey=s22,
        later_construction=construction_mask(s22, pack),
        survey_year=2022,
        survey_label="2022",
        pack=pack.with_values(rebuild_tolerance_m2=10),
    )[1].alert


def test_transfer_checks_and_balance(pack):
    ok = Transfer(
        "Z1",
        "T1",
        "T2",
        2021,
        quota_m2=10_000,
        ratio=0.8,
        population_credit=300,
        compensation=("人口承接",),
    )
    assert ok.received_m2 == 8_000
    assert [f.outcome for f in check_transfer(ok, pack, known_units={"T1", "T2"})] == ["ok"]
    bad = Transfer("Z2", "T1", "T1", 2021, quota_m2=10_000, ratio=1.2)
    assert {f.outcome for f in check_transfer(bad, pack)} == {
        "same_unit",
        "ratio_too_high",
        "no_compensation",
    }
    with pytest.raises(ValidationError):
        check_transfer(ok, pack, known_units={"T1"})
    with pytest.raises(ValidationError):
        Transfer("Z3", "T1", "T2", 2021, quota_m2=-1, ratio=0.5)
    led = pd.DataFrame(
        {
            "level": "township",
            "unit_code": ["T1", "T2", "T3"],
            "unit_name": ["甲乡", "乙乡", "丙乡"],
            "year": 2021,
            "added_m2": [5_000.0, 9_500.0, 2_000.0],
            "accepted_m2": [20_000.0, 0.0, 1_000.0],
            "removed_m2": [25_000.0, 0.0, 1_000.0],
        }
    )
    rows = {
        b.unit_code: b
        for b in balance(
            led,
            [ok, Transfer("Z4", "T3", "T2", 2021, 2_000, 0.5, terms="产值分计")],
            pack,
            year=2021,
        )
    }
    assert rows["T1"].status == "balanced" and rows["T1"].allowance_m2 == 10_000  # 20 000 − 10 000
    assert rows["T2"].allowance_m2 == 9_000  # received 8 000 + 1 000
    assert rows["T2"].status == "over" and "增减挂钩不平衡" in rows["T2"].message
    assert rows["T3"].status == "overdrawn"  # sent 2 000 of 1 000 reduced
    assert rows["T3"].sent_m2 == 2_000 and rows["T2"].received_m2 == 9_000


def test_progress_warns_behind_pace_and_reports_seed_figures(pack):
    led = pd.DataFrame(
        {
            "level": "township",
            "unit_code": ["T1", "T1", "T2", "T2"],
            "unit_name": ["甲乡", "甲乡", "乙乡", "乙乡"],
            "parent_code": "D1",
            "year": [2021, 2022, 2021, 2022],
            "net_m2": [3e6, 3e6, 0.2e6, 0.1e6],
            "accepted_m2": [2.5e6, 2.8e6, 0.2e6, 0.0],
            "removed_m2": [3.5e6, 3.2e6, 0.3e6, 0.1e6],
            "added_m2": [0.5e6, 0.2e6, 0.1e6, 0.0],
        }
    )
    targets = [
        Target("T1", "甲乡", "township", "total", 2035, 40e6, parent_code="D1"),
        Target("T2", "乙乡", "township", "total", 2035, 20e6, parent_code="D1"),
        Target("T2", "乙乡", "township", "annual", 2022, 1.5e6, parent_code="D1"),
        Target("T3", "丙乡", "township", "total", 2035, 1e6, parent_code="D1"),
    ]
    rows = {r.unit_code: r for r in progress(targets, led, pack, level="township")}
    t1, t2, t3 = rows["T1"], rows["T2"], rows["T3"]
    assert t1.year == 2022 and t1.years_left == 13 and t1.years_counted == 2
    assert t1.net_m2 == 6e6 and t1.accepted_m2 == pytest.approx(5.3e6)
    assert t1.percent_complete == pytest.approx(15.0)
    assert t1.required_pace_m2 == pytest.approx(34e6 / 13)
    assert t1.achieved_pace_m2 == pytest.approx(3e6)
    assert t1.status == "on_track" and not t1.behind
    assert (
        t2.status == "behind"
        and t2.behind
        and "进度滞后" in t2.message
        and "年度目标" in t2.message
    )
    assert t3.status == "no_data"
    d = t2.to_dict()
    assert d["target_km2"] == 20 and d["status_label"] == "滞后" and d["behind"] is True
    # a unit that reaches its target is done
    done = progress(
        [Target("T1", "甲乡", "township", "total", 2035, 5e6)], led, pack, level="township"
    )[0]
    assert done.status == "done"
    rep = reported_rows(pack, names={"110105": "朝阳区"})[0]
    assert rep.source == "reported" and rep.unit_name == "朝阳区"
    assert (
        rep.target_m2 == 71e6
        and rep.net_m2 == 35.5e6
        and rep.percent_complete == pytest.approx(50.0)
    )
    assert rep.year == 2022 and rep.years_left == 13 and rep.status == "on_track"
    assert "002" in rep.note


def test_targets_xlsx_roundtrip():
    ts = [
        Target("110105", "朝阳区", "district", "total", 2035, 71e6, clause="002 (一(一)二)"),
        Target(
            "110105021000",
            "南磨房乡",
            "township",
            "annual",
            2021,
            0.25e6,
            parent_code="110105",
            synthetic=True,
        ),
    ]
    back = targets_from_xlsx(targets_to_xlsx(ts))
    assert back == ts
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["单位代码", "单位名称", "层级", "目标类型", "年份", "目标面积(公顷)"])
    ws.append(["110105021000", "南磨房乡", "乡镇", "总目标", 2035, 150])
    ws.append(["110105022000", "高碑店乡", "区县?", "总目标", 2035, 1])
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(ValidationError) as e:
        targets_from_xlsx(buf.getvalue())
    assert e.value.detail.feature == 3


def test_ledger_workbook_has_chinese_headers(year2021, pack):
    town = year2021.ledger.assign(baseline_label="2020", survey_label="2021", provenance_id="p1")
    acc = year2021.acceptance.assign(
        policy_id=pack.id, policy_version=pack.version, provenance_id="p2"
    )
    data = ledger_to_xlsx(
        district=aggregate_ledger(town),
        township=town,
        acceptance=acc,
        progress=reported_rows(pack),
        meta={"标题": "测试"},
    )
    wb = load_workbook(io.BytesIO(data))
    assert tuple(wb.sheetnames) == LEDGER_SHEETS
    heads = [c.value for c in wb["乡镇台账"][1]]
    assert heads[:7] == [
        "单位代码",
        "单位名称",
        "上级代码",
        "年度",
        "上年城乡建设用地(公顷)",
        "本年城乡建设用地(公顷)",
        "净减量(公顷)",
    ]
    t1 = next(r for r in wb["乡镇台账"].iter_rows(min_row=2, values_only=True) if r[0] == "T1")
    assert t1[6] == pytest.approx(3.0, rel=REL)  # 30 000 m² net = 3 ha
    verdicts = {r[1]: r[12] for r in wb["地块验收"].iter_rows(min_row=2, values_only=True)}
    assert verdicts == {"A": "已减量", "B": "部分减量", "C": "未减量", "F": "质检存疑"}
    prog = list(wb["进度"].iter_rows(min_row=2, values_only=True))
    assert (
        prog[0][0] == "报告数 (种子 002)"
        and prog[0][5] == 71
        and prog[0][8] == 35.5
        and prog[0][9] == 50.0
    )
