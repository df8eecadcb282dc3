"""Indicator catalogues, typed formulas, evaluation, seed figures (issue 7, pure core)."""

from __future__ import annotations

import csv
import math
import re
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from yizhangtu.errors import InputError, NotFoundError, ValidationError
from yizhangtu.indicators import (
    Claim,
    IndicatorInputs,
    census_population_table,
    check_claim,
    compute,
    evaluate,
    list_catalogues,
    load_catalogue,
    load_seed_figures,
    parse_catalogue,
    run_seed_figure,
)
from yizhangtu.indicators.build_tdt1063 import (
    DEFAULT_CSV,
    DEFAULT_FORMULAS,
    DEFAULT_OUT,
    build_catalogue,
    main,
    render_catalogue_yaml,
)
from yizhangtu.indicators.model import CoverageFormula, NotComputableFormula
from yizhangtu.indicators.units import parse_unit

DATA = Path(__file__).parent / "data"
SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
GK = 4548  # CGCS2000 3-degree GK zone 39 (CM 117E), no zone prefix
X0, Y0 = 450_000.0, 4_420_000.0  # a spot near Beijing in that zone


def census() -> pd.DataFrame:
    return pd.read_csv(DATA / "census2020_sample.csv", dtype={"adcode": str})


def vocabulary() -> dict:
    text = (
        resources.files("yizhangtu.indicators").joinpath("input_vocabulary.yaml").read_text("utf-8")
    )
    return yaml.safe_load(text)


def cat_yaml(indicators: str, *, period: str = "{start: 2015, end: 2035}", extra: str = "") -> str:
    return f"""
schema_version: 1
id: test_cat
title: 测试目录
version: "1"
period: {period}
{extra}
indicators:
{indicators}
"""


def squares_gdf(ids: list[str], size: float = 1000.0) -> gpd.GeoDataFrame:
    """Adjacent square units of ``size`` m in GK zone 39, returned in WGS84."""
    geoms = [
        shapely.box(X0 + i * size, Y0, X0 + (i + 1) * size, Y0 + size) for i in range(len(ids))
    ]
    return gpd.GeoDataFrame(
        {"unit_id": ids, "name": [f"单元{u}" for u in ids]}, geometry=geoms, crs=GK
    ).to_crs(4326)


def points_gdf(xy: list[tuple[float, float]], **cols: list) -> gpd.GeoDataFrame:
    geoms = [shapely.Point(X0 + x, Y0 + y) for x, y in xy]
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=GK).to_crs(4326)


# --------------------------------------------------------------------------- catalogues


def test_packaged_catalogues_load_and_validate() -> None:
    ids = list_catalogues()
    assert {
        "tdt1063_style",
        "mohurd_2023_partial",
        "chaoyang_local",
        "fangshan_urbanization_2016",
        "hunan_urbanization_2021",
    } <= set(ids)
    for cid in ids:
        cat = load_catalogue(cid)
        assert cat.id == cid
        assert len({i.id for i in cat}) == len(cat)
        for ind in cat:
            assert ind.name and ind.unit and ind.scope
            if ind.formula.kind != "not_computable" and ind.formula.kind != "from_table":
                assert ind.parsed_unit.known, (cid, ind.id, ind.unit)


def test_tdt_catalogue_covers_every_csv_row_and_is_generated() -> None:
    rows = list(csv.DictReader(DEFAULT_CSV.open(encoding="utf-8")))
    cat = load_catalogue("tdt1063_style")
    assert len(cat) == len(rows) == 122
    assert {i.ref for i in cat} == {f"node_bsm:{r['node_bsm']}" for r in rows}
    assert cat.dimension_order() == ("安全", "创新", "协调", "绿色", "开放", "共享")
    # the shipped YAML is exactly what the generator produces
    text = render_catalogue_yaml(
        build_catalogue(DEFAULT_CSV.read_text("utf-8"), DEFAULT_FORMULAS.read_text("utf-8"))
    )
    assert text == DEFAULT_OUT.read_text("utf-8")
    assert main(["--check"]) == 0
    # layer-, control-line-, facility- and census-computable indicators carry real formulas
    kinds = {i.id: i.formula.kind for i in cat}
    expected = {
        "cropland_area": "area",
        "basic_farmland_area": "area",
        "eco_redline_area": "area",
        "wetland_area": "area",
        "construction_in_eco_redline": "area",
        "construction_in_urban_boundary": "area",
        "urban_rural_construction_land_area": "area",
        "forest_coverage": "area_ratio",
        "water_surface_ratio": "area_ratio",
        "industrial_land_share": "area_ratio",
        "park_green_per_capita": "per_capita",
        "urban_construction_land_per_capita": "per_capita",
        "university_educated_per_100k": "per_capita",
        "community_health_15min_coverage": "coverage",
        "life_circle_15min_coverage": "coverage",
        "rail_station_800m_coverage": "coverage",
        "urbanization_rate": "ratio",
        "resident_population": "from_table",
        "housing_floor_area_per_capita": "from_table",
        "urban_population_density": "density",
        "universities": "count",
        "waterlogging_points": "count",
    }
    for iid, kind in expected.items():
        assert kinds[iid] == kind, iid
    nc = [i for i in cat if isinstance(i.formula, NotComputableFormula)]
    assert len(nc) > 50 and all(i.formula.missing for i in nc)
    rail = cat.get("rail_station_800m_coverage").formula
    assert isinstance(rail, CoverageFormula) and rail.radius_m == 800


def test_every_input_name_is_in_the_vocabulary() -> None:
    voc = vocabulary()
    for cid in list_catalogues():
        for ind in load_catalogue(cid):
            for op in ind.formula.operands():
                if op.kind == "area":
                    assert set(op.groups) <= set(voc["groups"]), (cid, ind.id, op.groups)
                if op.kind == "table":
                    assert op.table in voc["tables"], (cid, ind.id, op.table)
                    cols = voc["tables"][op.table]["columns"]
                    assert op.column in cols or op.table == "checkup_survey", (
                        cid,
                        ind.id,
                        op.column,
                    )
                if op.kind in ("facility_count", "facility_sum"):
                    assert op.facilities in voc["facilities"], (cid, ind.id, op.facilities)


def test_chaoyang_caps_are_seed_values_with_clauses() -> None:
    cat = load_catalogue("chaoyang_local")
    pop = cat.get("resident_population")
    assert [(t.year, t.value, t.kind, t.clause) for t in pop.targets] == [
        (2035, 333.4, "limit", "002 一(一)二")
    ]
    bld = cat.get("building_scale")
    assert bld.unit == "亿㎡" and bld.targets[0].value == 2.92 and bld.targets[0].kind == "limit"
    assert cat.get("land_supply_area").targets[0].value == 25
    assert all(i.clause and i.clause.startswith("002 ") for i in cat)


def _seed_text(prefix: str) -> str:
    files = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not files:
        pytest.skip("seed texts not available")
    return re.sub(r"\s+", "", files[0].read_text("utf-8"))


def test_catalogue_quotes_and_claims_are_verbatim_in_the_seeds() -> None:
    checked = 0
    for cid in list_catalogues():
        for ind in load_catalogue(cid):
            for t in ind.targets:
                if t.quote and t.clause and t.clause[:3] in ("000", "002", "003"):
                    text = _seed_text(t.clause[:3])
                    for frag in re.sub(r"\s+", "", t.quote).split("…"):
                        assert frag in text, (cid, ind.id, frag)
                        checked += 1
    for fig in load_seed_figures():
        if fig.claim and fig.claim.clause and fig.claim.clause[:3] in ("000", "002", "003"):
            assert re.sub(r"\s+", "", fig.claim.text or "") in _seed_text(fig.claim.clause[:3])
            checked += 1
    assert checked >= 10


def test_user_catalogue_from_yaml_without_code(tmp_path: Path) -> None:
    text = cat_yaml(
        """  - id: green_share
    name: 绿地占比
    dimension: 绿色
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [park_green]}
      denominator: {kind: unit_area}
    targets: [{year: 2025, value: 30, kind: goal}]"""
    )
    path = tmp_path / "mine.yaml"
    path.write_text(text, "utf-8")
    cat = load_catalogue(path)
    areas = pd.DataFrame({"unit_id": ["a"], "group": ["park_green"], "area_m2": [250.0]})
    v = compute(cat, IndicatorInputs(areas=areas, unit_areas={"a": 1000.0}), year=2021)
    assert v.loc[0, "value"] == pytest.approx(25.0)
    with pytest.raises(NotFoundError):
        load_catalogue(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- bad catalogues


@pytest.mark.parametrize(
    ("indicator", "key"),
    [
        (  # unknown input kind
            """  - id: x
    name: 坏输入
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula: {kind: ratio, numerator: {kind: satellite_image}, denominator: {kind: unit_area}}""",
            "unknown_input_kind",
        ),
        (  # an area ratio declared in m2
            """  - id: x
    name: 单位不符
    dimension: 安全
    unit: m2
    direction: higher_better
    scope: 市域
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [a]}
      denominator: {kind: unit_area}""",
            "unit_mismatch",
        ),
        (  # per-capita area declared as %
            """  - id: x
    name: 人均不符
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula:
      kind: per_capita
      numerator: {kind: area, groups: [a]}
      population: {kind: table, table: population, column: pop_total, unit: 人}""",
            "unit_mismatch",
        ),
        (  # population given in m2
            """  - id: x
    name: 人口单位不符
    dimension: 安全
    unit: m2/人
    direction: higher_better
    scope: 市域
    formula:
      kind: per_capita
      numerator: {kind: area, groups: [a]}
      population: {kind: table, table: population, column: pop_total, unit: m2}""",
            "unit_mismatch",
        ),
        (  # target year outside the plan period
            """  - id: x
    name: 目标年越界
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [a]}
      denominator: {kind: unit_area}
    targets: [{year: 2050, value: 10, kind: goal}]""",
            "target_year_outside_period",
        ),
        (  # unknown formula kind
            """  - id: x
    name: 坏公式
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula: {kind: eval, expression: "a / b"}""",
            "unknown_formula_kind",
        ),
        (  # unparseable unit on a computed indicator
            """  - id: x
    name: 怪单位
    dimension: 安全
    unit: 吨标准煤
    direction: higher_better
    scope: 市域
    formula: {kind: area, groups: [a]}""",
            "unknown_unit",
        ),
        (  # composite cycle
            """  - id: x
    name: 合成甲
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula: {kind: composite, components: [{indicator: y, weight: 1}]}
  - id: y
    name: 合成乙
    dimension: 安全
    unit: "%"
    direction: higher_better
    scope: 市域
    formula: {kind: composite, components: [{indicator: x, weight: 1}]}""",
            "composite_cycle",
        ),
    ],
)
def test_bad_catalogue_entries_are_rejected(indicator: str, key: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_catalogue(cat_yaml(indicator), origin="bad.yaml")
    assert err.value.key == key
    assert err.value.detail.file == "bad.yaml"
    assert re.search(r"[\u4e00-\u9fff]", err.value.message)


def test_duplicate_ids_and_undeclared_dimension() -> None:
    ind = """  - id: x
    name: 甲
    dimension: 安全
    unit: km2
    direction: higher_better
    scope: 市域
    formula: {kind: area, groups: [a]}"""
    with pytest.raises(ValidationError) as err:
        parse_catalogue(cat_yaml(ind + "\n" + ind))
    assert err.value.key == "duplicate_indicator"
    with pytest.raises(ValidationError) as err:
        parse_catalogue(cat_yaml(ind, extra="dimensions: [绿色]"))
    assert err.value.key == "unknown_dimension"


# --------------------------------------------------------------------------- units


def test_units_parse_and_convert() -> None:
    assert parse_unit("%").factor == 0.01 and parse_unit("%").dimensionless
    assert parse_unit("亿㎡").factor == 1e8 and parse_unit("亿㎡").dims == (("L", 2),)
    assert parse_unit("万亩").factor == pytest.approx(1e4 * 10_000 / 15)
    assert parse_unit("张/千人").factor == pytest.approx(1e-3)
    assert parse_unit("人/10万人").dimensionless and parse_unit(
        "人/10万人"
    ).factor == pytest.approx(1e-5)
    assert parse_unit("人/km2").dims == (("L", -2), ("P", 1))
    assert not parse_unit("吨标准煤/万元").known


# --------------------------------------------------------------------------- formula kinds

FORMULAS = """
  - id: green_area
    name: 绿地面积
    dimension: 绿色
    unit: ha
    direction: higher_better
    scope: 街道
    formula: {kind: area, groups: [park_green, forest]}
  - id: green_share
    name: 绿地占比
    dimension: 绿色
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [park_green]}
      denominator: {kind: unit_area}
  - id: green_of_built
    name: 绿地与建设用地之比
    dimension: 绿色
    unit: "1"
    direction: neutral
    scope: 街道
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [park_green]}
      denominator: {kind: area, groups: [construction]}
  - id: green_pc
    name: 人均绿地
    dimension: 共享
    unit: m2/人
    direction: higher_better
    scope: 街道
    formula:
      kind: per_capita
      numerator: {kind: area, groups: [park_green]}
      population: {kind: table, table: population, column: pop_total, unit: 人}
  - id: clinics_per_10k
    name: 每万人诊所数
    dimension: 共享
    unit: 个/万人
    direction: higher_better
    scope: 街道
    formula:
      kind: per_capita
      numerator: {kind: facility_count, facilities: clinic}
      population: {kind: table, table: population, column: pop_total, unit: 人}
  - id: beds_per_1000
    name: 每千人床位
    dimension: 共享
    unit: 张/千人
    direction: higher_better
    scope: 街道
    formula:
      kind: per_capita
      numerator: {kind: facility_sum, facilities: clinic, column: beds, unit: 张}
      population: {kind: table, table: population, column: pop_total, unit: 人}
  - id: density
    name: 人口密度
    dimension: 协调
    unit: 人/km2
    direction: neutral
    scope: 街道
    formula:
      kind: density
      numerator: {kind: table, table: population, column: pop_total, unit: 人}
  - id: clinics
    name: 诊所数量
    dimension: 共享
    unit: 个
    direction: higher_better
    scope: 街道
    formula: {kind: count, facilities: clinic}
  - id: pop
    name: 常住人口
    dimension: 协调
    unit: 万人
    direction: neutral
    scope: 街道
    formula: {kind: from_table, table: population, column: pop_total, unit: 人, aggregate: sum}
  - id: urbanization
    name: 城镇化率
    dimension: 协调
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: ratio
      numerator: {kind: table, table: population, column: pop_urban, unit: 人}
      denominator: {kind: table, table: population, column: pop_total, unit: 人}
  - id: clinic_cover
    name: 诊所300米覆盖率
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: coverage
      facilities: [clinic]
      radius_m: 300
      population: {kind: table, table: population, column: pop_total, unit: 人}
  - id: clinic_cover_area
    name: 诊所300米覆盖率(面积加权)
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula: {kind: coverage, facilities: [clinic], radius_m: 300, weight: area}
  - id: both_cover
    name: 诊所与学校同时覆盖率
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula: {kind: coverage, facilities: [clinic, school], radius_m: 300, combine: all}
  - id: livability
    name: 宜居综合指数
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: composite
      normalize: achievement
      cap_achievement_pct: 100
      components: [{indicator: green_share, weight: 1}, {indicator: clinic_cover, weight: 3}]
    targets: [{year: 2030, value: 80, kind: goal}]
  - id: share_mean
    name: 两项占比平均
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: composite
      components: [{indicator: green_share, weight: 1}, {indicator: urbanization, weight: 1}]
  - id: water_use
    name: 人均用水
    dimension: 安全
    unit: m3/人
    direction: lower_better
    scope: 街道
    formula: {kind: not_computable, missing: [水资源公报]}
"""


def _formula_cat():
    text = cat_yaml(FORMULAS).replace("  - id: livability", "  - id: livability")
    cat = parse_catalogue(text)
    # give component targets so that the achievement composite is defined
    data = yaml.safe_load(text)
    for d in data["indicators"]:
        if d["id"] == "green_share":
            d["targets"] = [{"year": 2030, "value": 40, "kind": "goal"}]
        if d["id"] == "clinic_cover":
            d["targets"] = [{"year": 2030, "value": 50, "kind": "goal"}]
    from yizhangtu.indicators import catalogue_from_dict

    return cat, catalogue_from_dict(data)


@pytest.fixture(scope="module")
def squares_inputs() -> IndicatorInputs:
    units = squares_gdf(["A", "B"])
    clinics = points_gdf([(500, 500), (1500, 200), (1800, 900)], beds=[10, 20, 5])
    schools = points_gdf([(800, 500)])
    areas = pd.DataFrame(
        {
            "unit_id": ["A", "A", "A", "B", "B"],
            "group": ["park_green", "forest", "construction", "park_green", "construction"],
            "area_m2": [200_000.0, 50_000.0, 500_000.0, 100_000.0, 400_000.0],
        }
    )
    pop = pd.DataFrame(
        {
            "unit_id": ["A", "B"],
            "year": [2021, 2021],
            "pop_total": [1000, 3000],
            "pop_urban": [900, 1500],
        }
    )
    return IndicatorInputs(
        areas=areas,
        tables={"population": pop},
        facilities={"clinic": clinics, "school": schools},
        units=units,
        labels={"population": "常住人口表"},
    )


def test_each_formula_kind_on_hand_made_inputs(squares_inputs: IndicatorInputs) -> None:
    _, cat = _formula_cat()
    v = compute(cat, squares_inputs, year=2021, aggregate="ALL")
    val = v.set_index(["indicator", "unit_id"])["value"]
    ua = squares_inputs.unit_area_series()
    assert ua["A"] == pytest.approx(1e6, rel=2e-3)  # GK square, ellipsoidal area
    assert val["green_area", "A"] == pytest.approx(25.0)  # (200k + 50k) m² = 25 ha
    assert val["green_area", "ALL"] == pytest.approx(35.0)
    assert val["green_share", "A"] == pytest.approx(200_000 / ua["A"] * 100)
    # aggregate = ratio of sums, not the mean of ratios
    assert val["green_share", "ALL"] == pytest.approx(300_000 / (ua["A"] + ua["B"]) * 100)
    assert val["green_of_built", "B"] == pytest.approx(0.25)
    assert val["green_pc", "A"] == pytest.approx(200.0)  # 200 000 m² / 1000 人
    assert val["green_pc", "ALL"] == pytest.approx(300_000 / 4000)
    assert val["clinics", "A"] == 1 and val["clinics", "B"] == 2 and val["clinics", "ALL"] == 3
    assert val["clinics_per_10k", "B"] == pytest.approx(2 / 3000 * 1e4)
    assert val["beds_per_1000", "B"] == pytest.approx(25 / 3000 * 1000)
    assert val["density", "A"] == pytest.approx(1000 / (ua["A"] / 1e6))
    assert val["pop", "B"] == pytest.approx(0.3) and val["pop", "ALL"] == pytest.approx(0.4)
    assert val["urbanization", "B"] == pytest.approx(50.0)
    assert val["urbanization", "ALL"] == pytest.approx(2400 / 4000 * 100)
    # coverage: a 300 m disc inside A (64-gon buffer: 0.16% below π r²)
    disc = math.pi * 300**2 / 1e6 * 100
    assert val["clinic_cover", "A"] == pytest.approx(disc, rel=3e-3)
    b_cover = val["clinic_cover", "B"]
    assert 0 < b_cover < 2 * disc
    # population-weighted vs area-weighted aggregate (equal unit areas)
    assert val["clinic_cover", "ALL"] == pytest.approx(
        (val["clinic_cover", "A"] * 1000 + b_cover * 3000) / 4000
    )
    assert val["clinic_cover_area", "ALL"] == pytest.approx(
        (val["clinic_cover_area", "A"] + b_cover) / 2, rel=1e-6
    )
    # combine=all: lens of two 300 m discs 300 m apart
    lens = 2 * 300**2 * math.acos(0.5) - 150 * math.sqrt(4 * 300**2 - 300**2)
    assert val["both_cover", "A"] == pytest.approx(lens / 1e6 * 100, rel=5e-3)
    assert val["both_cover", "B"] == 0.0
    # composite of achievements, capped at 100, weights 1:3
    exp = (
        min(val["green_share", "A"] / 40 * 100, 100)
        + 3 * min(val["clinic_cover", "A"] / 50 * 100, 100)
    ) / 4
    assert val["livability", "A"] == pytest.approx(exp)
    assert val["share_mean", "B"] == pytest.approx((val["green_share", "B"] + 50.0) / 2)
    assert v["synthetic"].eq(False).all()


def test_not_computable_reasons_never_zero(squares_inputs: IndicatorInputs) -> None:
    cat, _ = _formula_cat()
    bare = IndicatorInputs(unit_areas={"A": 1e6})
    v = compute(cat, bare, year=2021, units=["A"]).set_index("indicator")
    assert v["value"].loc[["green_share", "green_pc", "clinics", "pop", "water_use"]].isna().all()
    assert not v.loc["green_pc", "computable"]
    assert v.loc["green_share", "reason"] == "无法计算: 缺少 地类面积表(areas)"
    assert v.loc["pop", "reason"] == "无法计算: 缺少 统计表 population"
    assert v.loc["pop", "reason_en"] == "not computable: needs statistical table population"
    assert v.loc["clinics", "reason"] == "无法计算: 缺少 设施图层 clinic"
    assert v.loc["water_use", "reason"] == "无法计算: 缺少 水资源公报"
    assert v.loc["water_use", "reason_key"] == "declared_not_computable"
    # composites say which component is missing; achievement composites without targets too
    assert "组成指标" in v.loc["share_mean", "reason"]
    assert "组成指标" in v.loc["livability", "reason"]
    # a group absent from the area table, a column absent from a table, a year without rows
    v2 = compute(cat, squares_inputs, year=2019, units=["A"]).set_index("indicator")
    assert (
        v2.loc["pop", "reason"]
        == "无法计算: 缺少 统计表 常住人口表(population) 中单元 A 2019 年的 pop_total"
    )
    areas = squares_inputs.areas[squares_inputs.areas["group"] != "construction"]
    v3 = compute(cat, IndicatorInputs(areas=areas, unit_areas={"A": 1e6}), year=2021, units=["A"])
    assert (
        v3.set_index("indicator").loc["green_of_built", "reason"]
        == "无法计算: 缺少 地类面积表中的分组 construction"
    )


def test_division_by_zero_is_a_reason_not_inf(squares_inputs: IndicatorInputs) -> None:
    cat, _ = _formula_cat()
    pop = pd.DataFrame(
        {"unit_id": ["A", "B"], "year": [2021, 2021], "pop_total": [0, 3000], "pop_urban": [0, 10]}
    )
    inp = IndicatorInputs(
        areas=squares_inputs.areas, tables={"population": pop}, units=squares_inputs.units
    )
    v = compute(cat, inp, year=2021, units=["A", "B"], aggregate="ALL").set_index(
        ["indicator", "unit_id"]
    )
    row = v.loc[("green_pc", "A")]
    assert not row["computable"] and math.isnan(row["value"])
    assert row["reason"] == "无法计算: 分母 统计表 population.pop_total 为 0"
    assert row["reason_key"] == "zero_denominator"
    assert v.loc[("urbanization", "A"), "reason_key"] == "zero_denominator"
    assert v.loc[("green_pc", "B"), "computable"]
    # pooled over both units the ratio is defined again: Σ area / Σ population
    assert v.loc[("green_pc", "ALL"), "value"] == pytest.approx(300_000 / 3000)
    assert np.isfinite(v["value"].dropna()).all()


def test_inputs_are_validated() -> None:
    with pytest.raises(InputError) as err:
        IndicatorInputs(
            tables={"population": pd.DataFrame({"unit_id": ["a", "a"], "year": [1, 1]})}
        )
    assert err.value.key == "duplicate_table_rows"
    with pytest.raises(InputError) as err:
        IndicatorInputs(areas=pd.DataFrame({"unit_id": ["a"], "area_m2": [1.0]}))
    assert err.value.key == "areas_columns"
    with pytest.raises(InputError):
        IndicatorInputs(areas=pd.DataFrame({"unit_id": ["a"], "group": ["g"], "area_m2": [-1.0]}))


# --------------------------------------------------------------------------- evaluation

EVAL_CAT = """
  - id: goal_pct
    name: 目标类
    dimension: 共享
    unit: "%"
    direction: higher_better
    scope: 街道
    formula: {kind: from_table, table: t, column: a, unit: "%"}
    targets:
      - {year: 2025, value: 80, kind: goal}
      - {year: 2030, value: 90, kind: goal, unit_id: s3}
    warning: {yellow_within_pct: 5, red_when_worsening: true}
  - id: cap
    name: 上限类
    dimension: 协调
    unit: 万人
    direction: lower_better
    scope: 街道
    formula: {kind: from_table, table: t, column: b, unit: 万人}
    targets: [{year: 2035, value: 100, kind: limit}]
    warning: {yellow_within_pct: 5, yellow_when_worsening: true}
  - id: floor
    name: 下限类
    dimension: 安全
    unit: km2
    direction: higher_better
    scope: 街道
    formula: {kind: from_table, table: t, column: c, unit: km2}
    targets: [{year: 2035, value: 50, kind: limit}]
    warning: {yellow_within_pct: 10, red_threshold: 30}
  - id: path
    name: 进度类
    dimension: 协调
    unit: km2
    direction: higher_better
    scope: 街道
    formula: {kind: from_table, table: t, column: d, unit: km2}
    targets: [{year: 2035, value: 70, kind: goal, baseline_year: 2015, baseline_value: 0}]
  - id: none
    name: 无目标类
    dimension: 协调
    unit: km2
    direction: neutral
    scope: 街道
    formula: {kind: from_table, table: t, column: c, unit: km2}
"""


def _eval_inputs(rows: list[dict]) -> IndicatorInputs:
    return IndicatorInputs(tables={"t": pd.DataFrame(rows)})


def test_status_rules_targets_and_trend() -> None:
    cat = parse_catalogue(cat_yaml(EVAL_CAT))
    rows = [
        {"unit_id": "s1", "year": 2021, "a": 85.0, "b": 120.0, "c": 60.0, "d": 30.0},
        {"unit_id": "s2", "year": 2021, "a": 77.0, "b": 97.0, "c": 52.0, "d": 10.0},
        {"unit_id": "s3", "year": 2021, "a": 85.0, "b": 50.0, "c": 20.0, "d": 25.0},
        {"unit_id": "s4", "year": 2021, "a": 70.0, "b": 80.0, "c": 60.0, "d": 24.0},
        {"unit_id": "s2", "year": 2019, "a": 79.0, "b": 97.0, "c": 50.0, "d": 6.0},
        {"unit_id": "s2", "year": 2020, "a": 78.0, "b": 97.0, "c": 51.0, "d": 8.0},
        {"unit_id": "s4", "year": 2020, "a": 72.0, "b": 70.0, "c": 60.0, "d": 20.0},
        {"unit_id": "s4", "year": 2019, "a": 74.0, "b": 60.0, "c": 60.0, "d": 16.0},
    ]
    inp = _eval_inputs(rows)
    ids = ["s1", "s2", "s3", "s4"]
    cur = compute(cat, inp, year=2021, units=ids)
    hist = pd.concat([compute(cat, inp, year=y, units=ids) for y in (2019, 2020)])
    ev = evaluate(cur, cat, year=2021, history=hist)
    st = ev.table.set_index(["indicator", "unit_id"])
    # goal 80 (2025): met / within 5% but worsening → red / unit-specific 90 short by 5.6% / far
    assert st.loc[("goal_pct", "s1"), "status"] == "达标"
    assert st.loc[("goal_pct", "s2"), "trend_direction"] == "变差"
    assert st.loc[("goal_pct", "s2"), "trend_slope"] == pytest.approx(-1.0)
    assert st.loc[("goal_pct", "s2"), "status"] == "未达标"
    assert "趋势偏离" in st.loc[("goal_pct", "s2"), "status_reason"]
    assert (
        st.loc[("goal_pct", "s3"), "target"] == 90
        and st.loc[("goal_pct", "s3"), "status"] == "未达标"
    )
    assert st.loc[("goal_pct", "s4"), "status"] == "未达标"
    assert st.loc[("goal_pct", "s1"), "gap"] == pytest.approx(5.0)
    assert st.loc[("goal_pct", "s1"), "achievement_pct"] == pytest.approx(85 / 80 * 100)
    # cap 100: breached / within 5% / well below / below but worsening (yellow_when_worsening)
    assert st.loc[("cap", "s1"), "status"] == "未达标"
    assert st.loc[("cap", "s2"), "status"] == "预警"
    assert st.loc[("cap", "s3"), "status"] == "达标"
    assert (
        st.loc[("cap", "s4"), "status"] == "预警"
        and st.loc[("cap", "s4"), "trend_direction"] == "变差"
    )
    assert st.loc[("cap", "s1"), "achievement_pct"] == pytest.approx(100 / 120 * 100)
    # floor 50 with red threshold 30: 60 ok, 52 within 10%, 20 below the red threshold
    assert st.loc[("floor", "s1"), "status"] == "达标"
    assert st.loc[("floor", "s2"), "status"] == "预警"
    assert (
        st.loc[("floor", "s3"), "status"] == "未达标"
        and "红线阈值" in st.loc[("floor", "s3"), "status_reason"]
    )
    # linear path: 70 × (2021−2015)/(2035−2015) = 21
    assert st.loc[("path", "s1"), "target"] == pytest.approx(21.0)
    assert bool(st.loc[("path", "s1"), "target_interpolated"])
    assert st.loc[("path", "s4"), "status"] == "达标"
    assert st.loc[("path", "s2"), "status"] == "未达标"
    assert st.loc[("path", "s4"), "trend_slope"] == pytest.approx(4.0)
    assert st.loc[("none", "s1"), "status"] == "无目标"
    assert ev.status_counts()["达标"] >= 4
    assert set(ev.warnings()["status"]) == {"未达标", "预警"}
    assert list(ev.summary().columns) == ["达标", "预警", "未达标", "无目标", "无法计算"]


def test_evaluate_rejects_a_year_without_values() -> None:
    cat = parse_catalogue(cat_yaml(EVAL_CAT))
    inp = _eval_inputs([{"unit_id": "s1", "year": 2021, "a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}])
    v = compute(cat, inp, year=2021)
    with pytest.raises(InputError) as err:
        evaluate(v, cat, year=2030)
    assert err.value.key == "year_not_in_values"


# ----------------------------------------------------------------- claims and seed figures


def test_check_claim() -> None:
    assert check_claim(Claim("≈", "68.9", "%"), 71.4 / 103.6 * 100).consistent
    assert check_claim(Claim("≈", "68.9", "%"), 68.85).consistent  # half-up
    assert not check_claim(Claim("≈", "68.9", "%"), 68.84).consistent
    c = check_claim(Claim(">", "92", "%", clause="002 一(二)一"), 22 / 25 * 100)
    assert not c.consistent and "88.0%" in c.message and "不一致" in c.message
    assert check_claim(Claim(">=", "88", "%"), 88.0).consistent
    assert not check_claim(Claim("<", "1", ""), float("nan")).consistent
    with pytest.raises(ValidationError):
        check_claim(Claim("≈", "abc", "%"), 1.0)


@pytest.mark.parametrize("figure", load_seed_figures(), ids=lambda f: f.id)
def test_seed_figures(figure) -> None:
    if figure.unverifiable:
        assert figure.claim is None and figure.expected_status is None
        return
    res = run_seed_figure(figure, {"census2020": census()})
    assert res.value is not None
    if res.claim_check is not None:
        assert res.claim_as_expected, res.claim_check.message
    if figure.expected_status is not None:
        assert res.status_as_expected, (res.status, res.status_reason)


def test_seed_figure_values_and_discrepancy() -> None:
    figs = {f.id: f for f in load_seed_figures()}
    raw = census()
    bj = run_seed_figure(figs["beijing_urbanization_2020"], {"census2020": raw})
    assert bj.value == pytest.approx(19_166_433 / 21_893_095 * 100)
    assert round(bj.value, 2) == 87.55
    fs = run_seed_figure(figs["fangshan_urbanization_2020"], {"census2020": raw})
    assert round(fs.value, 2) == 78.10 and fs.target == 75
    cy = run_seed_figure(figs["chaoyang_urbanization_2020"], {"census2020": raw})
    assert cy.value == 100.0
    f14 = run_seed_figure(figs["fangshan_urbanization_2014"])
    assert f14.value == pytest.approx(71.4 / 103.6 * 100) and f14.target == 72
    pop = run_seed_figure(figs["chaoyang_population_cap_2021"])
    assert pop.value == pytest.approx(344.9) and pop.status == "未达标"
    bld = run_seed_figure(figs["chaoyang_building_cap_2021"])
    assert bld.value == pytest.approx(2.90) and bld.status == "预警"
    assert (2.92 - bld.value) / 2.92 < 0.007
    land = run_seed_figure(figs["chaoyang_land_supply_2022"])
    assert land.value == pytest.approx(88.0)
    assert land.claim_check is not None and not land.claim_check.consistent
    with pytest.raises(InputError):
        run_seed_figure(figs["beijing_urbanization_2020"])  # census file not supplied


def test_census_table_helper() -> None:
    t = census_population_table(census(), year=2020)
    assert set(t["unit_id"]) >= {"110000", "110105", "110111"}
    assert (t["year"] == 2020).all()
    cat = load_catalogue("tdt1063_style")
    v = compute(
        cat,
        IndicatorInputs(tables={"population": t}),
        year=2020,
        units=["110105"],
        indicators=["resident_population", "housing_floor_area_per_capita"],
    )
    val = v.set_index("indicator")["value"]
    assert val["resident_population"] == pytest.approx(345.246)
    assert val["housing_floor_area_per_capita"] == pytest.approx(35.93)
