"""Conformance core: 界址点 parser, tolerance, control lines, conflicts, red lines, transmission.

Every layer is built from squares in the CGCS2000 Gauss–Krüger plane (zone 39, Fangshan) so the
expected areas are known; layers are then stored in EPSG:4490 as the store keeps them.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from yizhangtu.conformance import (
    COMPATIBLE,
    Elasticity,
    LineLayer,
    PlanLayer,
    Tolerances,
    check_redline,
    check_transmission,
    find_conflicts,
    hierarchy_from_mapping,
    jzd_to_frame,
    line_overlaps,
    load_hierarchy,
    load_matrix,
    matrix_from_mapping,
    measure_match,
    parse_jzd,
    split_slivers,
    summarise_by_unit,
    zone_shares,
)
from yizhangtu.conformance.jzd import declared_area_notes
from yizhangtu.conformance.tolerance import match_outcome
from yizhangtu.errors import CRSError, FileFormatError, PolicyError, ValidationError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy import load_pack, validate_pack

DATA = Path(__file__).resolve().parent / "data" / "conformance"
GK = "EPSG:4548"  # CGCS2000 3-degree zone 39, no prefix
E0, N0 = 426_600.0, 4_399_000.0
AT = date(2024, 6, 30)


@pytest.fixture(scope="module")
def packs():
    return [load_pack("conformance-national"), load_pack("conformance-beijing")]


@pytest.fixture(scope="module")
def tol(packs):
    return Tolerances.from_packs(packs)


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(E0 + x0, N0 + y0, E0 + x1, N0 + y1)


def layer(geoms, **cols) -> gpd.GeoDataFrame:
    """A layer from GK-plane geometries, stored in EPSG:4490."""
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=GK).to_crs(4490)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-9)


# ---------------------------------------------------------------------------------------- packs
def test_packs_validate_against_the_rule_registry():
    for name in ("conformance-national", "conformance-beijing"):
        pack = load_pack(name)
        problems = [p for p in validate_pack(pack.path) if p.severity == "error"]
        assert problems == [], problems
    nat = load_pack("conformance-national")
    # every tolerance cites 004 (十一) and is marked as a local choice (the clause gives no number)
    for name in (
        "redline_hausdorff_tolerance_m",
        "redline_shift_tolerance_m",
        "sliver_area_m2",
        "sliver_width_m",
    ):
        p = nat.parameter(name)
        assert p.clause == "004 (十一)" and p.local_choice
    assert load_pack("dongguan-2023").param(
        "transmission_elasticity", unit="ratio"
    ) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------- 界址点
def test_jzd_parses_parcels_rings_holes_and_crs():
    jzd = parse_jzd(
        (DATA / "redline_good.txt").read_text(encoding="utf-8"), file="redline_good.txt"
    )
    assert (
        jzd.crs_code == "EPSG:4527"
    )  # CGCS2000 3° zone 39 with prefix, from 带号 and the Y prefix
    assert [p.parcel_id for p in jzd.parcels] == ["HX-01", "HX-02"]
    assert [len(p.rings) for p in jzd.parcels] == [1, 2]
    gdf = jzd_to_frame(jzd)
    # X is the northing: parcel 1 is 120 m east-west by 100 m north-south
    minx, miny, maxx, maxy = gdf.geometry.iloc[0].bounds
    assert (maxx - minx, maxy - miny) == pytest.approx((120.0, 100.0))
    assert gdf["planar_area_m2"].tolist() == pytest.approx([12_000.0, 100 * 100 - 20 * 20])
    # ellipsoidal area differs from the GK-plane area by the zone's scale factor (< 0.02 % here)
    assert all(rel(a, p) < 2e-4 for a, p in zip(gdf["area_m2"], gdf["planar_area_m2"], strict=True))
    assert declared_area_notes(gdf) == []  # 1.2 ha and 0.96 ha match
    gbk = (DATA / "redline_good_gbk.txt").read_bytes().decode("gb18030")
    assert jzd_to_frame(parse_jzd(gbk))["name"].tolist() == ["合成项目一期", "合成项目二期"]


@pytest.mark.parametrize(
    ("fname", "exc", "key", "words"),
    [
        (
            "redline_unclosed.txt",
            FileFormatError,
            "jzd_ring_unclosed",
            ["HX-01", "未闭合", "J1", "J4"],
        ),
        ("redline_duplicate.txt", FileFormatError, "jzd_duplicate_point", ["HX-01", "J2", "重复"]),
        ("redline_swapped.txt", CRSError, "jzd_xy_swapped", ["X/Y", "颠倒", "北坐标"]),
        ("redline_xian80.txt", CRSError, "jzd_datum_without_parameters", ["西安80", "转换参数"]),
    ],
)
def test_jzd_bad_inputs_are_refused_with_chinese_messages(fname, exc, key, words):
    with pytest.raises(exc) as ei:
        parse_jzd((DATA / fname).read_text(encoding="utf-8"), file=fname)
    assert ei.value.key == key
    for w in words:
        assert w in str(ei.value)


def test_jzd_swapped_file_reads_when_order_is_declared():
    good = jzd_to_frame(parse_jzd((DATA / "redline_good.txt").read_text(encoding="utf-8")))
    swapped = jzd_to_frame(
        parse_jzd((DATA / "redline_swapped.txt").read_text(encoding="utf-8"), xy_order="en")
    )
    assert all(a.equals(b) for a, b in zip(good.geometry, swapped.geometry, strict=True))


def test_jzd_other_problems():
    text = (DATA / "redline_good.txt").read_text(encoding="utf-8")
    with pytest.raises(FileFormatError) as ei:
        parse_jzd(text.replace("5,1.2000,HX-01", "7,1.2000,HX-01"))
    assert ei.value.key == "jzd_point_count"
    # no zone prefix and no 带号: refused as ambiguous
    noprefix = re.sub(r",39(\d{6}\.\d+)$", r",\1", text, flags=re.MULTILINE).replace(
        "带号=39", "带号="
    )
    with pytest.raises(CRSError) as ei:
        parse_jzd(noprefix)
    assert ei.value.key == "crs_ambiguous"
    # ... read with 带号 as EPSG:4548 at the same place as the prefixed file
    j = parse_jzd(noprefix.replace("带号=", "带号=39"))
    assert j.crs_code == "EPSG:4548"
    a = jzd_to_frame(j).to_crs(4490).geometry.iloc[0]
    b = jzd_to_frame(parse_jzd(text)).to_crs(4490).geometry.iloc[0]
    assert a.symmetric_difference(b).area < 1e-14
    # 西安80 with seven parameters is transformed, with a note
    x80 = (
        (DATA / "redline_xian80.txt")
        .read_text(encoding="utf-8")
        .replace("转换参数=,,,,,,", "转换参数=-15.4,110.2,48.1,0,0,0,0")
    )
    j80 = parse_jzd(x80)
    assert any("西安80" in n and "转换参数" in n for n in j80.notes)
    # declared area in 公顷 that does not match is noted
    bad_area = jzd_to_frame(parse_jzd(text.replace("5,1.2000", "5,1.5000")))
    assert any("HX-01" in n for n in declared_area_notes(bad_area))
    with pytest.raises(FileFormatError) as ei:
        parse_jzd("只是一段文字\n没有坐标")
    assert ei.value.key == "jzd_no_coordinates"


# ---------------------------------------------------------------------------------------- tolerance
def _square_ring(dx: float = 0.0, dy: float = 0.0) -> gpd.GeoSeries:
    return layer([shapely.affinity.translate(box(0, 0, 120, 100), dx, dy)]).geometry


def test_tolerance_shift_of_03m_is_tolerated_and_5m_is_not(tol):
    reg = _square_ring()
    small = measure_match(_square_ring(0.3 * 0.6, 0.3 * 0.8), reg)  # 0.3 m to the north-east
    assert small.hausdorff_m == pytest.approx(0.3, abs=0.03)
    assert match_outcome(small, tol) == "within_tolerance"
    big = measure_match(_square_ring(3.0, 4.0), reg)  # 5 m
    assert big.hausdorff_m == pytest.approx(5.0, abs=0.03)
    assert big.shift_m == pytest.approx(5.0, abs=0.01) and big.residual_m < 0.05
    assert match_outcome(big, tol) == "changed"
    # a consistent 0.8 m shift (beyond the Hausdorff tolerance, within the shift tolerance)
    mid = measure_match(_square_ring(0.8, 0.0), reg)
    assert mid.dx_m == pytest.approx(0.8, abs=0.01) and mid.dy_m == pytest.approx(0.0, abs=0.01)
    assert match_outcome(mid, tol) == "shifted"
    # a reshaped parcel of the same centroid is a change, not a shift
    reshaped = layer([box(-0.8, 0, 120.8, 100)]).geometry
    assert match_outcome(measure_match(reshaped, reg), tol) == "changed"


def test_slivers_are_split_by_area_and_width(tol):
    patches = layer([box(0, 0, 100, 0.3), box(0, 0, 2, 2), box(0, 0, 30, 30)], id=[1, 2, 3])
    patches["area_m2"] = ellipsoidal_area(patches.geometry)
    kept, slivers = split_slivers(patches, tol)
    assert kept["id"].tolist() == [3]
    assert sorted(slivers["id"].tolist()) == [1, 2]  # a 0.3 m wide strip; a 4 m² crumb
    assert slivers.set_index("id").loc[1, "width_m"] == pytest.approx(0.3, rel=0.02)


# ---------------------------------------------------------------------------------------- lines
@pytest.fixture(scope="module")
def lines():
    return {
        "eco_redline": layer([box(0, 0, 1000, 1000)], name=["红线A"]),
        # 200 × 100 m overlap with the red line; a 0.3 m strip along the boundary elsewhere
        "basic_farmland": layer(
            [box(800, 900, 1000, 1200), box(1000 - 0.3, 0, 1300, 500)], name=["农田1", "农田2"]
        ),
        "urban_boundary": layer([box(1500, 0, 2500, 1000)], name=["城镇"]),
    }


def test_line_overlaps_reports_patches_areas_and_slivers(lines, packs, tol):
    res = line_overlaps(lines, tol=tol, packs=packs, at=AT)
    pair = {(p.line_a, p.line_b): p for p in res.pairs}
    ef = pair[("eco_redline", "basic_farmland")]
    assert ef.patch_count == 1 and rel(ef.overlap_m2, 200 * 100) < 3e-4
    assert ef.sliver_count == 1 and rel(ef.sliver_m2, 0.3 * 500) < 3e-3
    assert pair[("eco_redline", "urban_boundary")].patch_count == 0
    assert (
        len(res.patches) == 1
        and res.patches["a_name"].iloc[0] == "红线A"
        and res.patches["b_name"].iloc[0] == "农田1"
    )
    assert not res.ok
    msgs = {f.subject: f for f in res.findings}
    assert msgs["eco_redline×basic_farmland"].severity == "error"
    assert (
        "生态保护红线" in msgs["eco_redline×basic_farmland"].message
        and "永久基本农田" in msgs["eco_redline×basic_farmland"].message
    )
    assert msgs["eco_redline×urban_boundary"].outcome == "clear"


def test_zone_shares_against_the_beijing_target(packs):
    units = layer(
        [box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)],
        code=["u1", "u2"],
        name=["甲街道", "乙镇"],
    )
    # unit 1: 生态控制区 70 %; unit 2: 81 % → whole area 75.5 % (2035 target 75 % met)
    zones = layer(
        [
            box(0, 0, 1000, 700),
            box(0, 700, 1000, 1000),
            box(1000, 0, 2000, 810),
            box(1000, 810, 2000, 900),
            box(1000, 900, 2000, 1000),
        ],
        zone=["生态控制区", "集中建设区", "生态控制区", "限制建设区", "集中建设区"],
    )
    res = zone_shares(
        zones,
        units,
        zone_field="zone",
        unit_field="code",
        unit_name_field="name",
        packs=packs,
        at=AT,
        scope="示例区",
    )
    share = res.rows.set_index(["unit", "zone"])["share"]
    assert share[("u1", "生态控制区")] == pytest.approx(0.70, abs=2e-4)
    assert share[("u2", "限制建设区")] == pytest.approx(0.09, abs=2e-4)
    total = res.totals.set_index("zone")["share"]
    assert total["生态控制区"] == pytest.approx(0.755, abs=2e-4)
    assert res.coverage["unzoned_m2"].abs().max() < 1.0
    by = {f.subject: f for f in res.findings}
    assert by["示例区"].outcome == "met" and by["示例区"].facts["target_year"] == 2035
    assert by["甲街道"].outcome == "below" and "75%" in by["甲街道"].message
    assert by["乙镇"].outcome == "met"
    # in 2019 the next milestone is 2020 (73 %)
    early = zone_shares(
        zones,
        units,
        zone_field="zone",
        unit_field="code",
        packs=packs,
        at=date(2019, 1, 1),
        scope="示例区",
    )
    assert {f.subject: f for f in early.findings}["示例区"].facts["target"] == pytest.approx(0.73)


# ---------------------------------------------------------------------------------------- conflicts
def _representative(side, cls_id):
    """A code (or value) that the side classifies as ``cls_id``."""
    rule = next(c for c in side.classes if c.id == cls_id)
    if rule.values:
        return rule.values[0]
    from yizhangtu.codes import load_table

    table = load_table(side.system)
    for code in [c.code for c in table.codes()]:
        try:
            got = side.classify(pd.Series([code]), what="t").iloc[0]
        except ValidationError:  # level-1 codes split across classes (e.g. 三调 10)
            continue
        if got == cls_id:
            return code
    raise AssertionError(cls_id)


def _grid(matrix, *, cell=100.0):
    """Left columns × right rows: every class pair meets in one cell; uncovered classes are gaps."""
    L, R = matrix.left, matrix.right
    lgeo, lval, rgeo, rval, expect = [], [], [], [], {}
    nr = len(R.class_ids)
    for i, a in enumerate(L.class_ids):
        if not (L.uncovered and a == L.uncovered.id):
            lgeo.append(box(i * cell, 0, (i + 1) * cell, nr * cell))
            lval.append(_representative(L, a))
    for j, b in enumerate(R.class_ids):
        if not (R.uncovered and b == R.uncovered.id):
            rgeo.append(box(0, j * cell, len(L.class_ids) * cell, (j + 1) * cell))
            rval.append(_representative(R, b))
    for a in L.class_ids:
        for b in R.class_ids:
            if (L.uncovered and a == L.uncovered.id) and (R.uncovered and b == R.uncovered.id):
                continue  # land covered by neither layer does not exist
            expect[(a, b)] = matrix.lookup(a, b)
    left = layer(lgeo, **{L.field: lval})
    right = layer(rgeo, **{R.field: rval})
    return left, right, expect


@pytest.mark.parametrize("name", ["sandiao-vs-landsea", "urban-boundary-vs-construction"])
def test_conflict_matrix_hits_every_type(name, tol):
    m = load_matrix(name)
    left, right, expect = _grid(m)
    res = find_conflicts(left, right, m, tol=tol)
    hit = set(res.patches["conflict_type"])
    assert hit == set(m.types), f"missed {set(m.types) - hit}"
    # each conflict cell is one 100 m × 100 m patch, carrying both sides' attributes
    for (a, b), t in expect.items():
        sel = res.patches[(res.patches["left_class"] == a) & (res.patches["right_class"] == b)]
        if t == COMPATIBLE:
            assert len(sel) == 0
        else:
            assert len(sel) == 1, (a, b)
            assert rel(float(sel["area_m2"].iloc[0]), 10_000.0) < 3e-4
            assert sel["conflict_type"].iloc[0] == t
    assert {f"a_{m.left.field}", f"b_{m.right.field}"} <= set(res.patches.columns)
    bt = res.by_type.set_index("conflict_type")
    assert (bt["patches"] >= 1).all() and (bt["sliver_count"] == 0).all()
    assert bt["area_m2"].sum() == pytest.approx(res.patches["area_m2"].sum())


def test_conflicts_drop_slivers_and_summarise_by_unit(tol):
    m = load_matrix("sandiao-vs-landsea")
    # 三调 construction (0701) on a 200 × 100 block; plan farmland (0101) overlaps it by 50 m,
    # and plan forest (0301) overlaps it by a 0.4 m strip (misregistration)
    left = layer([box(0, 0, 200, 100)], DLBM=["0701"], BSM=["S1"])
    right = layer(
        [box(150, 0, 400, 100), box(-100, -50, 0.4, 100)],
        YDYHFLDM=["0101", "0301"],
        GHBH=["P1", "P2"],
    )
    res = find_conflicts(left, right, m, tol=tol)
    assert res.patches["conflict_type"].tolist() == ["T1"]
    assert rel(float(res.patches["area_m2"].iloc[0]), 50 * 100) < 3e-4
    assert res.patches["a_BSM"].iloc[0] == "S1" and res.patches["b_GHBH"].iloc[0] == "P1"
    assert res.slivers["conflict_type"].tolist() == ["T2"]
    t2 = res.by_type.set_index("conflict_type").loc["T2"]
    assert t2["patches"] == 0 and t2["sliver_count"] == 1
    units = layer(
        [box(-200, -200, 175, 300), box(175, -200, 600, 300)], code=["a", "b"], name=["甲", "乙"]
    )
    by_unit = summarise_by_unit(res, units, unit_field="code", unit_name_field="name")
    got = by_unit.set_index("unit")["area_m2"]
    assert rel(got["a"], 25 * 100) < 3e-4 and rel(got["b"], 25 * 100) < 3e-4
    assert set(by_unit["unit_name"]) == {"甲", "乙"}


def test_matrix_errors():
    doc = yaml.safe_load(_matrix_text("sandiao-vs-landsea"))
    broken = {**doc, "cells": {k: dict(v) for k, v in doc["cells"].items()}}
    del broken["cells"]["farmland"]["ecological"]
    with pytest.raises(PolicyError) as ei:
        matrix_from_mapping(broken, source="broken.yaml")
    assert (
        ei.value.key == "matrix_missing_class"
        and "farmland" in str(ei.value)
        and "ecological" in str(ei.value)
    )
    broken = {**doc, "cells": {k: dict(v) for k, v in doc["cells"].items()}}
    broken["cells"]["farmland"]["ecological"] = "T99"
    with pytest.raises(PolicyError) as ei:
        matrix_from_mapping(broken)
    assert ei.value.key == "matrix_unknown_type"
    m = matrix_from_mapping(doc)
    with pytest.raises(ValidationError) as ei:
        m.left.classify(pd.Series(["0101", "9999", None]))
    assert ei.value.key == "matrix_unclassified" and "9999" in str(ei.value)


def _matrix_text(name: str) -> str:
    from yizhangtu.conformance._common import data_text

    return data_text(f"matrices/{name}.yaml")


# ---------------------------------------------------------------------------------------- red line
@pytest.fixture(scope="module")
def redline_layers(lines):
    zones = layer(
        [box(-500, -500, 1000, 1500), box(1000, -500, 3000, 1500)],
        zone=["生态控制区", "集中建设区"],
    )
    plan = layer(
        [box(-500, -500, 1000, 1500), box(1000, -500, 3000, 1500)], YDYHFLDM=["0301", "1001"]
    )
    line_layers = [LineLayer(t, g) for t, g in lines.items()]
    line_layers.append(LineLayer("zone_eco_control", zones[zones["zone"] == "生态控制区"]))
    return line_layers, [
        PlanLayer("plan_landuse", "用地用海规划", plan, "YDYHFLDM", "landsea-2023")
    ]


def test_redline_check_areas_shares_and_verdict(redline_layers, packs, tol):
    line_layers, plans = redline_layers
    # parcel A overlaps the eco red line by 100 × 100 m; parcel B lies inside the urban boundary
    red = layer([box(900, 600, 1100, 700), box(1600, 200, 1700, 400)], parcel_id=["A", "B"])
    res = check_redline(
        red, lines=line_layers, plans=plans, id_field="parcel_id", packs=packs, tol=tol, at=AT
    )
    rows = res.line_rows.set_index(["parcel", "line_type"])
    assert rel(rows.loc[("A", "eco_redline"), "overlap_m2"], 100 * 100) < 3e-4
    assert rows.loc[("A", "eco_redline"), "share"] == pytest.approx(0.5, abs=1e-3)
    assert rows.loc[("B", "urban_boundary"), "outside_m2"] == 0.0
    assert rel(rows.loc[("A", "urban_boundary"), "outside_m2"], 200 * 100) < 3e-4
    verdicts = res.parcels.set_index("parcel")["verdict"]
    assert verdicts["A"] == "不通过" and verdicts["B"] == "通过"
    assert res.verdict == "不通过"
    errs = [f for f in res.findings if f.severity == "error"]
    assert (
        len(errs) == 1
        and errs[0].rule_id == "conformance.redline_forbidden_overlap"
        and "生态保护红线" in errs[0].message
    )
    # parcel A: 100 m on plan forest (0301) → non-construction warning; zone_eco_control warning
    plan_a = res.plan_rows[res.plan_rows["parcel"] == "A"].set_index("class")
    assert (
        rel(plan_a.loc["0301", "area_m2"], 100 * 100) < 3e-4
        and not plan_a.loc["0301", "construction"]
    )
    assert plan_a.loc["1001", "construction"]
    warn = {f.rule_id for f in res.findings if f.severity == "warning" and f.subject == "A"}
    assert {
        "conformance.redline_plan_use",
        "conformance.redline_restricted_overlap",
        "conformance.redline_containment",
    } <= warn


def test_redline_sliver_overlap_is_not_an_error(redline_layers, packs, tol):
    line_layers, _ = redline_layers
    # drawn along the red line's east edge (x = 1000) but shifted 0.3 m into it: a sliver
    red = layer([box(1000 - 0.3, 100, 1300, 300)], parcel_id=["S"])
    res = check_redline(red, lines=line_layers, packs=packs, tol=tol, at=AT, id_field="parcel_id")
    eco = [
        f
        for f in res.findings
        if f.rule_id == "conformance.redline_forbidden_overlap"
        and f.facts["line_type"] == "eco_redline"
    ]
    assert eco[0].outcome == "sliver_only" and eco[0].severity == "info"
    # 5 m into it is an overlap
    red5 = layer([box(1000 - 5, 100, 1300, 300)], parcel_id=["S5"])
    res5 = check_redline(red5, lines=line_layers, packs=packs, tol=tol, at=AT, id_field="parcel_id")
    eco5 = [
        f
        for f in res5.findings
        if f.rule_id == "conformance.redline_forbidden_overlap"
        and f.facts["line_type"] == "eco_redline"
    ]
    assert eco5[0].outcome == "overlap" and eco5[0].severity == "error"


def test_redline_registered_version_within_tolerance(packs, tol):
    registered = layer([box(1600, 200, 1700, 400), box(1800, 200, 1900, 400)], parcel_id=["B", "C"])
    red = layer(
        [
            shapely.affinity.translate(
                box(1600, 200, 1700, 400), 0.18, 0.24
            ),  # 0.3 m: same red line
            shapely.affinity.translate(box(1800, 200, 1900, 400), 3.0, 4.0),  # 5 m: a change
            box(2000, 200, 2100, 400),  # not registered
        ],
        parcel_id=["B", "C", "D"],
    )
    res = check_redline(
        red,
        registered=registered,
        registered_id_field="parcel_id",
        id_field="parcel_id",
        packs=packs,
        tol=tol,
        at=AT,
    )
    out = res.match_rows.set_index("parcel")["outcome"]
    assert out.to_dict() == {"B": "within_tolerance", "C": "changed", "D": "unregistered"}
    changed = next(f for f in res.findings if f.outcome == "changed")
    assert (
        changed.severity == "warning" and "5.00米" in changed.message and "0.5米" in changed.message
    )
    assert next(f for f in res.findings if f.outcome == "within_tolerance").severity == "info"
    # matched by overlap when the ids differ
    renamed = red.assign(parcel_id=["X", "Y", "Z"])
    res2 = check_redline(
        renamed,
        registered=registered,
        registered_id_field="parcel_id",
        id_field="parcel_id",
        packs=packs,
        tol=tol,
        at=AT,
    )
    assert res2.match_rows.set_index("parcel")["registered_id"].to_dict()["X"] == "B"


# ------------------------------------------------------------------------------ transmission
def _dongguan_tree(excess: float) -> dict:
    children = [300.0, 400.0, 300.0]
    factor = 1.0 + excess
    return {
        "id": "t",
        "title": "测试(合成数据)",
        "levels": ["大圈", "中圈"],
        "synthetic": True,
        "nodes": [
            {
                "id": "p",
                "name": "大圈",
                "level": "大圈",
                "parent": None,
                "values": {"building_scale": 1000.0, "far": 2.0, "construction_land": 1.0},
            },
            *[
                {
                    "id": f"c{i}",
                    "name": f"中圈{i}",
                    "level": "中圈",
                    "parent": "p",
                    "values": {
                        "building_scale": v * factor,
                        "far": 2.0 * factor,
                        "construction_land": v / 1000,
                    },
                }
                for i, v in enumerate(children)
            ],
        ],
    }


@pytest.mark.parametrize(
    ("excess", "outcome", "severity"),
    [(0.0, "within", "info"), (0.09, "elastic", "warning"), (0.11, "exceeds", "error")],
)
def test_transmission_elasticity_9_percent_allowed_11_refused(excess, outcome, severity, packs):
    h = hierarchy_from_mapping(_dongguan_tree(excess))
    e = Elasticity.from_pack(load_pack("dongguan-2023"))
    assert e.default == pytest.approx(0.1) and e.clause == "004 (四)"
    res = check_transmission(h, elasticity=e, packs=packs, at=AT)
    rows = res.rows.set_index("metric")
    assert rows.loc["building_scale", "children_total"] == pytest.approx(1000 * (1 + excess))
    assert rows.loc["far", "children_total"] == pytest.approx(
        2.0 * (1 + excess)
    )  # land-weighted mean
    for metric in ("building_scale", "far"):
        assert rows.loc[metric, "outcome"] == outcome and rows.loc[metric, "severity"] == severity
    assert rows.loc["building_scale", "elastic_headroom"] == pytest.approx(
        1100 - 1000 * (1 + excess)
    )
    assert res.ok == (severity != "error")
    if outcome == "exceeds":
        msg = next(f.message for f in res.findings if f.facts["metric"] == "building_scale")
        assert "超出10%弹性空间" in msg and "11.0%" in msg and "004 (四)" in msg


def test_transmission_rejects_cycles_orphans_and_second_roots():
    tree = _dongguan_tree(0.0)
    orphan = {
        **tree,
        "nodes": [
            *tree["nodes"],
            {"id": "x", "name": "无主", "level": "中圈", "parent": "nope", "values": {}},
        ],
    }
    with pytest.raises(ValidationError) as ei:
        hierarchy_from_mapping(orphan)
    assert ei.value.key == "hierarchy_orphan" and "nope" in str(ei.value)
    cyc = {
        **tree,
        "levels": ["大圈", "中圈", "小圈"],
        "nodes": [
            {"id": "a", "name": "A", "level": "中圈", "parent": "b"},
            {"id": "b", "name": "B", "level": "小圈", "parent": "a"},
            {"id": "r", "name": "R", "level": "大圈", "parent": None},
        ],
    }
    with pytest.raises(ValidationError) as ei:
        hierarchy_from_mapping(cyc)
    assert ei.value.key == "hierarchy_cycle"
    assert "a → b → a" in str(ei.value) or "b → a → b" in str(ei.value)
    two = {
        **tree,
        "nodes": [
            *tree["nodes"],
            {"id": "r2", "name": "另一个大圈", "level": "大圈", "parent": None},
        ],
    }
    with pytest.raises(ValidationError) as ei:
        hierarchy_from_mapping(two)
    assert ei.value.key == "hierarchy_orphan" and "另一个大圈" in str(ei.value)
    bad_metric = {**tree, "nodes": [{**tree["nodes"][0], "values": {"gdp": 1}}]}
    with pytest.raises(ValidationError) as ei:
        hierarchy_from_mapping(bad_metric)
    assert ei.value.key == "hierarchy_metric_unknown"


def test_seed_002_caps_are_the_demo_data(shared_dir, packs):
    seed = next((shared_dir / "seeds").glob("002_*.txt")).read_text(encoding="utf-8")
    assert "2035年我区常住人口需控制在333.4万人以内" in seed
    assert "2035年我区建筑规模需控制在2.92亿平方米" in seed
    assert "2035年我区需完成71平方公里的建设用地减量任务" in seed
    assert "2021年底我区常住人口为344.9万人" in seed and "已累计完成了35.5平方公里" in seed
    h = load_hierarchy("chaoyang-2035")
    root = h.nodes[h.root]
    assert root.values == {
        "population": 333.4,
        "building_scale": 29_200.0,
        "construction_land_reduction": 71.0,
    }
    assert (
        root.current["population"] == 344.9 and root.current["construction_land_reduction"] == 35.5
    )
    assert not root.synthetic and all(n.synthetic for n in h.nodes.values() if n.id != h.root)
    e = Elasticity.from_pack(load_pack("conformance-beijing"))
    assert e.default == 0.0 and e.clause == "002 (一(一)二)"
    res = check_transmission(h, elasticity=e, packs=packs, at=AT)
    assert res.ok
    cur = res.current.set_index("metric")
    assert cur.loc["population", "use_share"] == pytest.approx(344.9 / 333.4)
    assert cur.loc["population", "status"].startswith(
        "超出上限"
    )  # 2021 population above the 2035 cap
    assert cur.loc["construction_land_reduction", "use_share"] == pytest.approx(0.5)
    # a task (reduction) short by more than the elasticity is an error
    doc = yaml.safe_load(_hier_text("chaoyang-2035"))
    doc["nodes"][1]["values"]["construction_land_reduction"] = 10.0
    bad = check_transmission(hierarchy_from_mapping(doc), elasticity=e, packs=packs, at=AT)
    red = bad.rows.set_index("metric").loc["construction_land_reduction"]
    assert red["outcome"] == "floor_short" and red["children_total"] == pytest.approx(60.8)


def _hier_text(name: str) -> str:
    from yizhangtu.conformance._common import data_text

    return data_text(f"hierarchies/{name}.yaml")


def test_areas_are_ellipsoidal_not_planar():
    g = layer([box(0, 0, 1000, 1000)])
    assert rel(float(ellipsoidal_area(g.geometry)[0]), 1e6) < 3e-4
    assert np.isfinite(ellipsoidal_area(g.geometry)).all()


# ------------------------------------------------------------------------------ demo step
def test_demo_step_builds_labelled_layers_and_a_one_page_result(store, shared_dir, tmp_path):
    from yizhangtu.services.demo import DemoContext
    from yizhangtu.services.demo_conformance import demo_step_conformance
    from yizhangtu.settings import get_settings
    from yizhangtu.store import LayerSpec

    bdir = shared_dir / "data" / "boundaries"
    for fname, name in (
        ("beijing_chaoyang_subdistricts_wgs84.geojson", "chaoyang_streets"),
        ("beijing_fangshan_subdistricts_wgs84.geojson", "fangshan_streets"),
    ):
        gdf = gpd.read_file(bdir / fname).set_crs(4490, allow_override=True)
        store.write_snapshot(LayerSpec(name=name, kind="boundary"), [gdf], label="2023", actor="t")
    log: list[str] = []
    ctx = DemoContext(
        store=store,
        out_dir=tmp_path,
        shared=shared_dir,
        settings=get_settings(workspace="unused.gpkg"),
        log=log.append,
    )
    demo_step_conformance(ctx)
    layers = {li.name: li for li in store.layers()}
    for name in (
        "eco_redline",
        "basic_farmland",
        "urban_boundary",
        "eco_control_line",
        "bj_zones",
        "plan_landuse",
        "plan_zoning",
        "redlines",
    ):
        assert layers[name].synthetic and "合成数据" in (layers[name].title or "")
    assert (
        layers["plan_landuse"].code_system == "landsea-2023"
        and layers["eco_redline"].kind == "control_line"
    )
    # every synthetic line lies inside the real districts
    districts = shapely.union_all(
        np.asarray(
            pd.concat(
                [store.read_layer("chaoyang_streets"), store.read_layer("fangshan_streets")]
            ).geometry.values,
            dtype=object,
        )
    )
    for name in ("eco_redline", "basic_farmland", "urban_boundary"):
        g = store.read_layer(name)
        outside = ellipsoidal_area(gpd.GeoSeries(g.geometry.difference(districts), crs=4490)).sum()
        # edges straight in the GK plane and in lon/lat differ by millimetres over a district
        assert outside < 1e-6 * ellipsoidal_area(g.geometry).sum(), name
    # the deliberate overlaps are found; the red line fails on the eco red line and matches its
    # registration within the tolerance
    assert any("控制线重叠检查" in m and "4 处重叠" in m for m in log)
    pdf = (tmp_path / "reports" / "redline_check_fangshan.pdf").read_bytes()
    assert pdf[:4] == b"%PDF"
    html = (tmp_path / "reports" / "redline_check_fangshan.html").read_text(encoding="utf-8")
    assert "不通过" in html and "合成数据" in html and "容差内一致" in html
    if (
        store.backend == "gpkg"
    ):  # the result fits on one A4 page (layout does not depend on the backend)
        from weasyprint import HTML

        from yizhangtu.reports.redline import TEMPLATES

        assert len(HTML(string=html, base_url=str(TEMPLATES)).render().pages) == 1
    summary = json.loads(
        (tmp_path / "reports" / "conformance_summary.json").read_text(encoding="utf-8")
    )
    assert summary["redline"]["verdict"] == "不通过"
    assert {r["outcome"] for r in summary["redline"]["registered"]} == {"within_tolerance"}
    assert ctx.extras["conformance"]["verdict"] == "不通过"
