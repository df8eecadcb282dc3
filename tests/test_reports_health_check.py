"""City health check report: HTML, PDF (WeasyPrint), Excel, thematic map.

The map and tables use the real Chaoyang subdistrict boundaries
(tests/data/chaoyang_streets.geojson) with SYNTHETIC per-street values (seeded RNG),
labelled 合成数据 in the catalogue and the report.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
from pyproj import Geod, Transformer

from yizhangtu.errors import InputError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.indicators import (
    IndicatorInputs,
    compute,
    evaluate,
    load_seed_figures,
    parse_catalogue,
    run_seed_figure,
)
from yizhangtu.indicators.catalogue import load_catalogue
from yizhangtu.reports.health_check import (
    EVALUATION_HEADERS_ZH,
    export_evaluation_xlsx,
    render_health_check,
    render_health_check_html,
)
from yizhangtu.reports.mapping import choropleth_png, gk_crs, nice_scale_length

DATA = Path(__file__).parent / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A user catalogue for the synthetic street data (synthetic: true → 合成数据 everywhere).
CATALOGUE = """
schema_version: 1
id: chaoyang_streets_synthetic
title: 朝阳区街道体检测试目录(合成数据)
version: "test"
jurisdiction: 北京市朝阳区
synthetic: true
period: {start: 2019, end: 2035}
dimensions: [安全, 协调, 绿色, 共享]
default_warning: {yellow_within_pct: 10, red_when_worsening: true}
indicators:
  - id: park_green_per_capita
    name: 人均公园绿地面积
    dimension: 共享
    category: 宜游
    unit: m2/人
    direction: higher_better
    scope: 街道
    formula:
      kind: per_capita
      numerator: {kind: area, groups: [park_green]}
      population: {kind: table, table: population, column: pop_total, unit: 人}
    targets: [{year: 2025, value: 12, kind: goal, clause: 测试}]
    department: 区园林绿化局
  - id: clinic_coverage
    name: 社区卫生服务设施步行15分钟覆盖率
    dimension: 共享
    category: 宜居
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: coverage
      facilities: [community_health]
      radius_m: 1000
      population: {kind: table, table: population, column: pop_total, unit: 人}
    targets: [{year: 2025, value: 85, kind: goal}]
    department: 区卫生健康委
  - id: resident_population
    name: 常住人口规模
    dimension: 协调
    unit: 万人
    direction: lower_better
    scope: 街道
    formula: {kind: from_table, table: population, column: pop_total, unit: 人, aggregate: sum}
    targets: [{year: 2035, value: 333.4, kind: limit, unit_id: "110105", clause: 002 一(一)二}]
  - id: density
    name: 常住人口密度
    dimension: 协调
    unit: 人/km2
    direction: neutral
    scope: 街道
    formula:
      kind: density
      numerator: {kind: table, table: population, column: pop_total, unit: 人}
  - id: forest_coverage
    name: 森林覆盖率
    dimension: 绿色
    unit: "%"
    direction: higher_better
    scope: 街道
    formula:
      kind: area_ratio
      numerator: {kind: area, groups: [forest]}
      denominator: {kind: unit_area}
    targets: [{year: 2025, value: 20, kind: goal}]
  - id: waterlogging
    name: 城市内涝积水点数量
    dimension: 安全
    unit: 个
    direction: lower_better
    scope: 街道
    formula: {kind: not_computable, missing: [内涝积水点监测台账]}
"""


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    g = gpd.read_file(DATA / "chaoyang_streets.geojson")
    return g.rename(columns={"code": "unit_id"})[["unit_id", "name", "geometry"]]


@pytest.fixture(scope="module")
def evaluation(streets: gpd.GeoDataFrame):
    """Synthetic per-street inputs for 2020 and 2021 (合成数据), evaluated for 2021."""
    rng = np.random.default_rng(20210)
    ids = list(streets["unit_id"])
    area = ellipsoidal_area(streets.geometry)
    pop21 = rng.integers(30_000, 160_000, len(ids))
    pop = pd.DataFrame(
        {
            "unit_id": ids * 2,
            "year": [2021] * len(ids) + [2020] * len(ids),
            "pop_total": np.concatenate(
                [pop21, (pop21 * rng.uniform(0.95, 1.05, len(ids))).astype(int)]
            ),
        }
    )
    areas = pd.concat(
        [
            pd.DataFrame(
                {
                    "unit_id": ids,
                    "group": "park_green",
                    "area_m2": area * rng.uniform(0.01, 0.12, len(ids)),
                }
            ),
            pd.DataFrame(
                {
                    "unit_id": ids,
                    "group": "forest",
                    "area_m2": area * rng.uniform(0.0, 0.35, len(ids)),
                }
            ),
        ]
    )
    minx, miny, maxx, _ = streets.total_bounds
    n = 70
    clinics = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(rng.uniform(minx, maxx, n), rng.uniform(miny, 40.02, n)),
        crs=4326,
    )
    inputs = IndicatorInputs(
        areas=areas,
        tables={"population": pop},
        facilities={"community_health": clinics},
        units=streets,
        synthetic=True,
    )
    cat = parse_catalogue(CATALOGUE, origin="test")
    cur = compute(cat, inputs, year=2021, aggregate="110105")
    hist = compute(cat, inputs, year=2020, aggregate="110105")
    return evaluate(cur, cat, year=2021, history=hist)


PROVENANCE = [
    {
        "name": "朝阳区街道边界",
        "source": "thebamboogrove/bj-subdistricts @ 7d329de4 (Tianditu-based digitisation)",
        "synthetic": False,
    },
    {"name": "街道人口、绿地、设施", "source": "测试用随机数 (seed 20210)", "synthetic": True},
]


def test_evaluation_fixture_is_synthetic_and_varied(evaluation) -> None:
    assert evaluation.synthetic
    counts = evaluation.status_counts()
    assert counts["无法计算"] == 44  # the declared not-computable indicator, 43 streets + aggregate
    assert counts["达标"] + counts["预警"] + counts["未达标"] > 40
    agg = evaluation.table.set_index(["indicator", "unit_id"]).loc[
        ("resident_population", "110105")
    ]
    assert agg["target"] == 333.4


def test_render_html(evaluation, streets: gpd.GeoDataFrame, tmp_path: Path) -> None:
    land = next(f for f in load_seed_figures() if f.id == "chaoyang_land_supply_2022")
    check = run_seed_figure(land).claim_check
    out = render_health_check(
        evaluation,
        unit_name="朝阳区",
        year=2021,
        units_gdf=streets,
        provenance=PROVENANCE,
        out_path=tmp_path / "hc.html",
        consistency=[check],
    )
    html = out.read_text("utf-8")
    assert "朝阳区2021年城市体检评估报告" in html
    assert "合成数据" in html
    assert html.count("data:image/png;base64,") >= 3  # two charts + the map
    for dim in ("安全", "协调", "绿色", "共享"):
        assert f". {dim}</h3>" in html
    assert "预警清单" in html and "附录 A 数据来源与处理记录" in html
    assert "thebamboogrove/bj-subdistricts" in html
    assert "建外街道" in html
    assert "无法计算: 缺少 内涝积水点监测台账" in html
    assert "不一致" in html and "88.0%" in html
    assert 'font-family: "Noto Sans CJK SC"' in html  # CSS is not HTML-escaped


def test_render_pdf_with_chinese_text(
    evaluation, streets: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    for tool in ("pdftotext", "pdfinfo", "pdftoppm", "pdfimages"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (poppler-utils) not installed")
    out = render_health_check(
        evaluation,
        unit_name="朝阳区",
        year=2021,
        units_gdf=streets,
        provenance=PROVENANCE,
        out_path=tmp_path / "hc.pdf",
        format="pdf",
        map_indicator="clinic_coverage",
        max_units_per_indicator=6,
    )
    assert out.read_bytes()[:5] == b"%PDF-"
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert 3 <= pages <= 20
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    for phrase in (
        "城市体检评估报告",
        "总体情况",
        "分维度评估",
        "专题图",
        "预警清单",
        "合成数据",
        "附录",
        "建外街道",
    ):
        assert phrase in text, phrase
    images = subprocess.run(
        ["pdfimages", "-list", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert len([line for line in images.splitlines()[2:] if line.strip()]) >= 3
    fonts = subprocess.run(
        ["pdffonts", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "CJK" in fonts
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")],
        check=True,
    )
    png = next(tmp_path.glob("page*.png"))
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_export_xlsx_chinese_headers(evaluation, streets: gpd.GeoDataFrame, tmp_path: Path) -> None:
    names = dict(zip(streets["unit_id"], streets["name"], strict=True))
    path = export_evaluation_xlsx(evaluation, tmp_path / "hc.xlsx", unit_names=names)
    wb = openpyxl.load_workbook(path, read_only=True)
    assert wb.sheetnames == ["说明", "汇总", "评估结果", "预警清单"]
    rows = list(wb["评估结果"].iter_rows(values_only=True))
    header = rows[0]
    assert "指标名称" in header and "状态" in header and "单元名称" in header
    assert set(header) <= set(EVALUATION_HEADERS_ZH.values())
    assert len(rows) - 1 == len(evaluation.table)
    assert "建外街道" in {r[header.index("单元名称")] for r in rows[1:]}
    info = {r[0]: r[1] for r in wb["说明"].iter_rows(values_only=True)}
    assert info["合成数据"].startswith("是")
    warn = list(wb["预警清单"].iter_rows(values_only=True))
    assert {r[header.index("状态")] for r in warn[1:]} <= {"预警", "未达标"}


def test_map_helper_scale_is_true(streets: gpd.GeoDataFrame) -> None:
    crs = gk_crs(streets)
    assert crs.to_epsg() == 4548  # CGCS2000 3-degree GK, CM 117E (Chaoyang ~116.3–116.7E)
    # a scale bar drawn in GK metres is true: GK distance vs geodesic distance across the district
    minx, miny, maxx, maxy = streets.total_bounds
    fwd = Transformer.from_crs(4326, crs, always_xy=True)
    (x1, x2), (y1, y2) = fwd.transform([minx, maxx], [miny, maxy])
    gk = float(np.hypot(x2 - x1, y2 - y1))
    geo = Geod(ellps="GRS80").inv(minx, miny, maxx, maxy)[2]
    assert abs(gk / geo - 1) < 2e-4
    assert nice_scale_length(23_000) == 5000 and nice_scale_length(900) == 200
    g = streets.copy()
    g["v"] = np.linspace(0, 100, len(g))
    g.loc[g.index[:3], "v"] = np.nan
    png = choropleth_png(g, "v", title="测试专题图", legend_title="值", synthetic=True)
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    with pytest.raises(InputError):
        choropleth_png(g, "missing", title="x")


def test_report_input_errors(evaluation, streets: gpd.GeoDataFrame, tmp_path: Path) -> None:
    kw = {"unit_name": "朝阳区", "units_gdf": streets, "provenance": []}
    with pytest.raises(InputError) as err:
        render_health_check_html(evaluation, year=2020, **kw)
    assert err.value.key == "report_year"
    with pytest.raises(InputError) as err:
        render_health_check_html(evaluation, year=2021, map_indicator="waterlogging", **kw)
    assert err.value.key == "map_indicator"
    with pytest.raises(InputError) as err:
        render_health_check(evaluation, year=2021, out_path=tmp_path / "x.doc", format="doc", **kw)  # type: ignore[arg-type]
    assert err.value.key == "report_format"


def test_seed_caps_report_without_map(tmp_path: Path) -> None:
    """Seed 002 caps as a one-unit report: over the population cap, near the building cap."""
    cat = load_catalogue("chaoyang_local")
    tables = {
        "population": pd.DataFrame(
            {"unit_id": ["110105"], "year": [2021], "pop_total": [3_449_000]}
        ),
        "building": pd.DataFrame(
            {"unit_id": ["110105"], "year": [2021], "floor_area_m2": [2.90e8]}
        ),
    }
    v = compute(cat, IndicatorInputs(tables=tables), year=2021, units=["110105"])
    ev = evaluate(v, cat, year=2021)
    html = render_health_check_html(
        ev,
        unit_name="朝阳区",
        year=2021,
        units_gdf=None,
        provenance=[{"name": "种子 002", "source": "区政府报告"}],
    )
    assert "突破上限 333.4 万人" in html
    assert "距上限 2.92 亿㎡" in html
    assert "没有可按单元制图的指标" in html
    assert "合成数据:" not in html
