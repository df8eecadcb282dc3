"""Tests of the QC module (成果质量控制) on tiny hand-made polygons of known geometry.

Most layers are in EPSG:4547 (CGCS2000 3-degree Gauss–Krüger, CM 114°E, near Dongguan), so
planar sizes are known exactly and areas are compared with ``ellipsoidal_area``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from shapely import LineString, MultiPolygon, Point, Polygon, box

from yizhangtu.cli.qc_render import render_qc_report
from yizhangtu.errors import InputError
from yizhangtu.geo.area import ellipsoidal_area, geodesic_area
from yizhangtu.qc import CHECKS, Finding, QCOptions, QCReport, repair, run_qc
from yizhangtu.qc.topology import coverage_flags, find_gaps, find_overlaps

GK = "EPSG:4547"
X0, Y0 = 400_000.0, 2_530_000.0
CODES = frozenset({"0101", "0102", "0201"})
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "boundaries"


def layer(geoms, crs=GK, **cols) -> gpd.GeoDataFrame:
    n = len(geoms)
    cols.setdefault("BSM", list(range(1, n + 1)))
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


def cell(i: int, j: int, size: float = 100.0) -> Polygon:
    return box(X0 + i * size, Y0 + j * size, X0 + (i + 1) * size, Y0 + (j + 1) * size)


def grid(nx: int = 3, ny: int = 3, size: float = 100.0) -> list[Polygon]:
    return [cell(i, j, size) for j in range(ny) for i in range(nx)]


def ellip(geom, crs=GK) -> float:
    return float(ellipsoidal_area(gpd.GeoSeries([geom], crs=crs))[0])


def of(report: QCReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


FULL = QCOptions(id_field="BSM", tiling=True, code_field="DLBM", valid_codes=CODES)


# --- clean layer ----------------------------------------------------------------------


def test_clean_grid_passes_every_check():
    gdf = layer(grid(), DLBM=["0101"] * 9)
    report = run_qc(gdf, FULL, file="clean.gpkg")
    assert report.ok
    assert report.findings == ()
    assert report.feature_count == 9
    assert report.file == "clean.gpkg"
    for check in ("invalid_geometry", "duplicate_id", "unknown_code", "overlap", "gap", "sliver"):
        assert check in report.checks_run
        assert report.counts[check] == 0
    assert set(report.checks_run) <= set(CHECKS)
    assert "multipart" not in report.checks_run  # expect_single not asked


# --- geometry presence, validity, dimensions -------------------------------------------


def test_missing_and_empty_geometry():
    gdf = layer([cell(0, 0), None, Polygon()])
    report = run_qc(gdf, QCOptions(id_field="BSM"))
    (missing,) = of(report, "missing_geometry")
    (empty,) = of(report, "empty_geometry")
    assert missing.feature == 2 and missing.severity == "error"
    assert missing.message == "要素 BSM=2 缺少几何"
    assert empty.feature == 3 and empty.message == "要素 BSM=3 几何为空"
    assert not report.ok
    assert run_qc(layer([cell(0, 0)])).counts["missing_geometry"] == 0


def test_invalid_geometry_reason_and_location():
    bowtie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = layer([cell(5, 5), bowtie], BSM=[122, 123])
    report = run_qc(gdf, QCOptions(id_field="BSM"))
    (f,) = of(report, "invalid_geometry")
    assert f.feature == 123
    assert f.reason.startswith("Self-intersection[")
    assert (f.x, f.y) == (X0 + 5, Y0 + 5)
    assert f.message == f"要素 BSM=123 几何无效: 自相交 ({X0 + 5:.0f}, {Y0 + 5:.0f})"
    assert f.geometry.equals(Point(X0 + 5, Y0 + 5))


def test_invalid_geometry_location_in_lonlat_message():
    bowtie = Polygon([(116.4, 39.9), (116.42, 39.94), (116.42, 39.9), (116.4, 39.94)])
    report = run_qc(layer([bowtie], crs="EPSG:4490"), QCOptions(id_field="BSM"))
    (f,) = of(report, "invalid_geometry")
    assert f.message == "要素 BSM=1 几何无效: 自相交 (116.41, 39.92)"


def test_z_or_m_is_a_warning():
    z = Polygon([(X0, Y0, 1), (X0 + 10, Y0, 1), (X0 + 10, Y0 + 10, 1), (X0, Y0 + 10, 1)])
    report = run_qc(layer([z, cell(1, 0)]))
    (f,) = of(report, "z_or_m")
    assert f.severity == "warning" and f.feature == 0
    assert "Z 坐标" in f.message
    assert report.ok  # warnings do not fail QC
    assert run_qc(layer([cell(1, 0)])).counts["z_or_m"] == 0


# --- types and parts --------------------------------------------------------------------


def test_mixed_geometry_flags_the_minority_type():
    line = LineString([(X0, Y0), (X0 + 50, Y0 + 50)])
    report = run_qc(layer([cell(0, 0), cell(1, 0), line]))
    (f,) = of(report, "mixed_geometry")
    assert f.feature == 2 and f.severity == "error"
    assert "线" in f.message and "面" in f.message
    assert run_qc(layer([cell(0, 0), cell(1, 0)])).counts["mixed_geometry"] == 0


def test_expected_geometry_flags_every_other_type():
    report = run_qc(layer([cell(0, 0), cell(1, 0)]), QCOptions(expected_geometry="point"))
    assert report.counts["mixed_geometry"] == 2
    collection = shapely.GeometryCollection([cell(0, 0), Point(X0, Y0)])
    report = run_qc(layer([collection, cell(1, 0)]), QCOptions(expected_geometry="polygon"))
    assert [f.feature for f in of(report, "mixed_geometry")] == [0]


def test_multipart_only_when_single_expected():
    two = MultiPolygon([cell(0, 0), cell(3, 0)])
    one = MultiPolygon([cell(5, 0)])
    gdf = layer([two, one, cell(7, 0)])
    report = run_qc(gdf, QCOptions(id_field="BSM", expect_single=True))
    (f,) = of(report, "multipart")
    assert f.feature == 1 and "2 个部件" in f.message
    assert "multipart" not in run_qc(gdf).checks_run


# --- attributes -------------------------------------------------------------------------


def test_duplicate_ids_name_every_row():
    gdf = layer(grid(2, 2), BSM=np.array([7, 8, 8, 9], dtype=np.int64))
    report = run_qc(gdf, QCOptions(id_field="BSM"))
    dups = of(report, "duplicate_id")
    assert [f.feature for f in dups] == [8, 8]
    assert all(f.field == "BSM" and f.severity == "error" for f in dups)
    assert dups[0].message == "要素 BSM=8 (#1) 标识重复: 共 2 个要素使用该值 (行 #1、#2)"
    assert isinstance(dups[0].feature, int)
    clean = run_qc(layer(grid(2, 2)), QCOptions(id_field="BSM"))
    assert clean.counts["duplicate_id"] == 0 and clean.ok


def test_missing_field_and_blank_values():
    gdf = layer(grid(2, 2), QSDWMC=["甲村", "", "  ", None], DLBM=["0101"] * 4)
    report = run_qc(gdf, QCOptions(id_field="BSM", required_fields=("QSDWMC", "ZLDWDM")))
    (absent,) = of(report, "missing_field")
    assert absent.field == "ZLDWDM" and absent.message == "缺少必填字段 ZLDWDM"
    blanks = of(report, "missing_value")
    assert [(f.feature, f.field) for f in blanks] == [(2, "QSDWMC"), (3, "QSDWMC"), (4, "QSDWMC")]
    assert blanks[0].message == "要素 BSM=2 必填字段 QSDWMC 为空"
    assert blanks[0].geometry.equals(cell(1, 0))
    clean = run_qc(gdf.iloc[:1], QCOptions(required_fields=("QSDWMC",)))
    assert clean.counts["missing_value"] == 0 and clean.counts["missing_field"] == 0


def test_null_id_is_a_missing_value():
    gdf = layer(grid(2, 1), BSM=["A1", None])
    report = run_qc(gdf, QCOptions(id_field="BSM"))
    (f,) = of(report, "missing_value")
    assert f.field == "BSM" and f.feature == 1  # falls back to the row label
    assert f.message == "要素 #1 必填字段 BSM 为空"


def test_unknown_codes_listed_with_counts():
    codes = ["0101", "0199", "0199", "XX", None, "0102 "]
    gdf = layer(grid(3, 2), DLBM=codes)
    report = run_qc(gdf, QCOptions(id_field="BSM", code_field="DLBM", valid_codes=CODES))
    unknown = of(report, "unknown_code")
    assert [(f.reason, f.detail["count"]) for f in unknown] == [("0199", 2), ("XX", 1)]
    assert unknown[0].message == "字段 DLBM 的编码 '0199' 不在代码表中: 2 个要素 (BSM=2、BSM=3)"
    assert unknown[0].feature == 2 and unknown[0].field == "DLBM"
    assert unknown[0].detail["features"] == [2, 3]
    (blank,) = of(report, "missing_value")
    assert blank.feature == 5 and blank.field == "DLBM"
    clean = layer(grid(2, 1), DLBM=["0101", "0201"])
    assert run_qc(clean, QCOptions(code_field="DLBM", valid_codes=CODES)).ok


def test_integral_float_codes_match_text_codes():
    gdf = layer(grid(2, 1), DLBM=[101.0, np.nan])
    report = run_qc(gdf, QCOptions(code_field="DLBM", valid_codes=frozenset({"101"})))
    assert report.counts["unknown_code"] == 0
    assert report.counts["missing_value"] == 1


# --- slivers ----------------------------------------------------------------------------


def test_sliver_by_area():
    tiny = box(X0 + 500, Y0, X0 + 500.5, Y0 + 0.5)
    report = run_qc(layer([cell(0, 0), tiny]), QCOptions(sliver_area_m2=1.0))
    (f,) = of(report, "sliver")
    assert f.feature == 1 and f.severity == "warning"
    assert f.area_m2 == pytest.approx(ellip(tiny), rel=1e-8)
    assert f.area_m2 == pytest.approx(0.25, rel=1e-3)
    assert "小于 1 ㎡" in f.message
    assert run_qc(layer([cell(0, 0)])).counts["sliver"] == 0


def test_sliver_by_thinness_projected_and_lonlat():
    thin = box(X0, Y0, X0 + 1000, Y0 + 1)  # Polsby-Popper 0.0031
    report = run_qc(layer([thin, cell(3, 3)]), QCOptions(sliver_thinness=0.05))
    (f,) = of(report, "sliver")
    assert f.feature == 0 and "紧凑度 0.003" in f.message
    # In lon/lat the test is made on the ground, not in degrees: a 0.01° × 0.0077° box at
    # 40°N is a square on the ground (compactness π/4 ≈ 0.785) though only 0.772 in degrees.
    square = box(116.40, 40.0, 116.41, 40.0 + 0.01 * np.cos(np.radians(40)) * 1.004)
    needle = box(116.42, 40.0, 116.43, 40.00001)
    report = run_qc(layer([square, needle], crs="EPSG:4490"), QCOptions(sliver_thinness=0.78))
    assert [f.feature for f in of(report, "sliver")] == [1]


# --- overlaps ---------------------------------------------------------------------------


def test_overlap_area_is_ellipsoidal_area_of_the_patch():
    a = box(X0, Y0, X0 + 100, Y0 + 100)
    b = box(X0 + 90, Y0, X0 + 190, Y0 + 100)
    report = run_qc(layer([a, b], BSM=[11, 12]), QCOptions(id_field="BSM", tiling=True))
    (f,) = of(report, "overlap")
    patch = box(X0 + 90, Y0, X0 + 100, Y0 + 100)
    assert (f.feature, f.other, f.severity) == (11, 12, "error")
    assert f.geometry.normalize().equals(MultiPolygon([patch]).normalize())
    assert f.area_m2 == pytest.approx(ellip(patch), rel=1e-9)
    assert f.area_m2 == pytest.approx(1000.0, rel=1e-3)  # GK scale near 114°E is ~1.0001
    assert patch.contains(Point(f.x, f.y))
    assert "要素 BSM=11 与要素 BSM=12 重叠 " in f.message and "㎡" in f.message
    assert report.counts["gap"] == 0


def test_contained_and_duplicated_polygons_overlap_fully():
    outer = box(X0, Y0, X0 + 100, Y0 + 100)
    inner = box(X0 + 20, Y0 + 20, X0 + 40, Y0 + 30)
    report = run_qc(layer([outer, inner, outer]), QCOptions(tiling=True))
    got = sorted((f.feature, f.other, round(f.area_m2, 6)) for f in of(report, "overlap"))
    assert got == sorted(
        [
            (0, 1, round(ellip(inner), 6)),
            (0, 2, round(ellip(outer), 6)),
            (1, 2, round(ellip(inner), 6)),
        ]
    )
    # Largest first.
    assert of(report, "overlap")[0].area_m2 == pytest.approx(ellip(outer))


def test_overlap_within_tolerance_is_info():
    a = box(X0, Y0, X0 + 100, Y0 + 100)
    b = box(X0 + 100 - 0.00005, Y0, X0 + 200, Y0 + 100)  # 0.005 m² strip
    report = run_qc(layer([a, b]), QCOptions(tiling=True, overlap_tolerance_m2=0.01))
    (f,) = of(report, "overlap")
    assert f.severity == "info" and f.area_m2 == pytest.approx(0.005, rel=1e-3)
    assert report.ok
    strict = run_qc(layer([a, b]), QCOptions(tiling=True, overlap_tolerance_m2=0.001))
    assert of(strict, "overlap")[0].severity == "error" and not strict.ok


def test_touching_polygons_do_not_overlap():
    report = run_qc(layer([cell(0, 0), cell(1, 0), cell(1, 1)]), QCOptions(check_overlap=True))
    assert report.counts["overlap"] == 0
    assert "gap" not in report.checks_run


def test_overlap_in_lonlat_matches_geodesic_area():
    a = box(116.40, 39.90, 116.41, 39.91)
    b = box(116.405, 39.90, 116.415, 39.91)
    report = run_qc(layer([a, b], crs="EPSG:4490"), QCOptions(tiling=True))
    (f,) = of(report, "overlap")
    patch = gpd.GeoSeries([box(116.405, 39.90, 116.41, 39.91)], crs="EPSG:4490")
    assert f.area_m2 == pytest.approx(geodesic_area(patch)[0], rel=1e-6)


def test_overlaps_only_checked_when_asked():
    gdf = layer([box(X0, Y0, X0 + 100, Y0 + 100), box(X0 + 50, Y0, X0 + 150, Y0 + 100)])
    report = run_qc(gdf)
    assert "overlap" not in report.checks_run and report.ok
    report = run_qc(gdf, QCOptions(check_overlap=True))
    assert report.counts["overlap"] == 1


# --- gaps -------------------------------------------------------------------------------


def test_missing_cell_is_one_gap_with_its_area():
    cells = grid()
    centre = cells.pop(4)
    report = run_qc(layer(cells, BSM=list(range(1, 9))), QCOptions(id_field="BSM", tiling=True))
    (f,) = of(report, "gap")
    assert f.severity == "error" and not report.ok
    assert f.area_m2 == pytest.approx(ellip(centre), rel=1e-9)
    assert f.geometry.normalize().equals(centre.normalize())
    assert sorted(f.detail["neighbours"]) == list(range(1, 9))
    assert "图层存在缝隙: 面积 " in f.message and "相邻要素" in f.message
    assert report.counts["overlap"] == 0


def test_gap_below_sliver_area_is_info():
    cells = grid()
    notch = box(X0 + 100, Y0 + 100, X0 + 100.5, Y0 + 100.5)
    cells[4] = cells[4].difference(notch)
    report = run_qc(layer(cells), QCOptions(tiling=True, sliver_area_m2=1.0))
    (f,) = of(report, "gap")
    assert f.severity == "info" and f.area_m2 == pytest.approx(ellip(notch), rel=1e-6)
    assert report.ok


def test_island_inside_a_hole_is_cut_out_of_the_gap():
    donut = box(X0, Y0, X0 + 300, Y0 + 300).difference(box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200))
    island = box(X0 + 140, Y0 + 140, X0 + 160, Y0 + 160)
    report = run_qc(layer([donut, island]), QCOptions(tiling=True))
    (f,) = of(report, "gap")
    expected = box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200).difference(island)
    assert f.area_m2 == pytest.approx(ellip(expected), rel=1e-9)
    assert f.detail["neighbours"] == [0, 1]


def test_outer_boundary_is_not_a_gap():
    report = run_qc(layer([cell(0, 0), cell(5, 5)]), QCOptions(tiling=True))
    assert report.counts["gap"] == 0


# --- no CRS, truncation, options --------------------------------------------------------


def test_missing_crs_skips_area_checks():
    gdf = gpd.GeoDataFrame({"BSM": [1, 1]}, geometry=[cell(0, 0), cell(0, 0)])
    report = run_qc(gdf, QCOptions(id_field="BSM", tiling=True))
    (f,) = of(report, "missing_crs")
    assert f.severity == "error"
    assert not {"sliver", "overlap", "gap"} & set(report.checks_run)
    assert report.counts["duplicate_id"] == 2


def test_counts_are_true_totals_when_findings_are_truncated():
    gdf = layer(grid(6, 5), NAME=[None] * 30)
    report = run_qc(gdf, QCOptions(required_fields=("NAME",), max_findings_per_check=5))
    assert report.counts["missing_value"] == 30
    assert len(of(report, "missing_value")) == 5
    assert report.truncated == {"missing_value": 25}
    assert report.severity_counts["error"] == 30


def test_merge_adds_counts_of_chunk_reports():
    gdf = layer(grid(6, 5), NAME=[None] * 10 + ["x"] * 20)
    opts = QCOptions(required_fields=("NAME",), max_findings_per_check=3)
    parts = [run_qc(gdf.iloc[:15], opts), run_qc(gdf.iloc[15:], opts)]
    merged = QCReport.merge(parts, file="chunks.shp")
    assert merged.file == "chunks.shp" and merged.feature_count == 30
    assert merged.counts["missing_value"] == 10
    assert merged.severity_counts["error"] == 10 and not merged.ok
    assert len(merged.findings) == 3  # the second chunk had none
    assert merged.checks_run == parts[0].checks_run


def test_severity_counts_derived_when_not_given():
    f = Finding("gap", "error", "图层存在缝隙")
    report = QCReport(None, 1, ("gap",), (f,), {"gap": 1})
    assert report.severity_counts == {"error": 1, "warning": 0, "info": 0}
    assert not report.ok


def test_errors_are_kept_before_info_when_truncated():
    cells = grid()
    cells[4] = cells[4].difference(box(X0 + 100, Y0 + 100, X0 + 100.5, Y0 + 100.5))  # info gap
    far = [shapely.affinity.translate(c, 2000, 0) for c in grid()]
    del far[4]  # a 100 m × 100 m error gap
    report = run_qc(layer(cells + far), QCOptions(tiling=True, max_findings_per_check=1))
    assert report.counts["gap"] == 2
    (kept,) = of(report, "gap")
    assert kept.severity == "error"
    assert not report.ok


def test_bad_options_are_input_errors():
    with pytest.raises(InputError):
        QCOptions(expected_geometry="polygons")
    with pytest.raises(InputError):
        QCOptions(required_fields="DLBM")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        run_qc(layer([cell(0, 0)]).drop(columns="geometry"))  # type: ignore[arg-type]


def test_rows_named_by_index_label_without_id_field():
    gdf = layer([cell(0, 0), None]).set_index(np.array([10, 11]))
    (f,) = of(run_qc(gdf), "missing_geometry")
    assert f.feature == 11 and f.message == "要素 #11 缺少几何"


# --- serialisation, layer output, rendering ---------------------------------------------


def _messy_report() -> tuple[gpd.GeoDataFrame, QCReport]:
    bowtie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    cells = grid()
    del cells[4]
    geoms = [*cells, bowtie, None, box(X0 + 50, Y0, X0 + 150, Y0 + 100)]
    gdf = layer(
        geoms,
        BSM=np.arange(1, 12, dtype=np.int64),
        DLBM=["0101"] * 8 + ["XX", None, "0102"],
    )
    return gdf, run_qc(gdf, FULL, file="messy.shp")


def test_to_dict_is_json_serialisable():
    _, report = _messy_report()
    d = json.loads(json.dumps(report.to_dict(), ensure_ascii=False, allow_nan=False))
    assert d["file"] == "messy.shp" and d["ok"] is False and d["feature_count"] == 11
    assert d["counts"] == dict(report.counts)
    assert len(d["findings"]) == len(report.findings)
    assert {"x", "y", "area_m2", "feature", "other", "message"} <= set(d["findings"][0])
    assert "geometry" not in d["findings"][0]
    checks = {f["check"] for f in d["findings"]}
    assert {"invalid_geometry", "missing_geometry", "overlap", "gap", "unknown_code"} <= checks


def test_to_geodataframe_writes_a_geopackage(tmp_path):
    gdf, report = _messy_report()
    flagged = report.to_geodataframe(gdf.crs)
    assert len(flagged) == len(report.findings)
    path = tmp_path / "qc.gpkg"
    pyogrio.write_dataframe(flagged, path, layer="qc_findings")
    back = pyogrio.read_dataframe(path, layer="qc_findings")
    assert len(back) == len(flagged)
    assert list(back["check"]) == [f.check for f in report.findings]
    assert back.crs.to_epsg() == 4547
    overlap_row = back[back["check"] == "overlap"].iloc[0]
    assert overlap_row["area_m2"] == pytest.approx(of(report, "overlap")[0].area_m2)
    assert back.geometry.isna().sum() == sum(f.geometry is None for f in report.findings)


def test_render_table_and_summary():
    _, report = _messy_report()
    console = Console(record=True, width=220)
    render_qc_report(report, console)
    text = console.export_text()
    for header in ("检查项", "级别", "要素", "字段", "说明", "位置", "面积(㎡)"):
        assert header in text
    assert "未通过" in text and "几何无效" in text and "缝隙" in text
    sc = report.severity_counts
    assert f"错误 {sc['error']} 条" in text

    console = Console(record=True, width=120)
    render_qc_report(run_qc(layer(grid())), console)
    assert "通过: 9 个要素" in console.export_text()


def test_render_mentions_truncation():
    report = run_qc(layer(grid(6, 5), NAME=[None] * 30), QCOptions(required_fields=("NAME",)))
    console = Console(record=True, width=200)
    render_qc_report(report, console, max_rows=3)
    text = console.export_text()
    assert "显示 3 / 30 条" in text


# --- repair -----------------------------------------------------------------------------


def test_repair_fixes_a_bowtie_and_reports_it():
    bowtie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = layer([cell(3, 3), bowtie], BSM=["A", "B"])
    fixed, findings = repair(gdf, id_field="BSM")
    (f,) = findings
    assert f.check == "repair" and f.severity == "warning" and f.feature == "B"
    assert f.reason.startswith("Self-intersection")
    assert f.detail["type_before"] == "Polygon" and f.detail["type_after"] == "MultiPolygon"
    expected = shapely.union_all(
        [
            Polygon([(X0, Y0), (X0 + 5, Y0 + 5), (X0, Y0 + 10)]),
            Polygon([(X0 + 10, Y0), (X0 + 5, Y0 + 5), (X0 + 10, Y0 + 10)]),
        ]
    )
    assert fixed.geometry.iloc[1].normalize().equals(expected.normalize())
    assert f.area_m2 == pytest.approx(ellip(expected), rel=1e-9)
    assert f.detail["area_before_m2"] == pytest.approx(ellip(bowtie), abs=1e-6)
    assert "已修复无效几何: 自相交" in f.message and "Polygon → MultiPolygon" in f.message
    assert fixed.geometry.iloc[0].equals(cell(3, 3))
    assert list(fixed["BSM"]) == ["A", "B"] and fixed.crs == gdf.crs
    assert run_qc(fixed).counts["invalid_geometry"] == 0
    assert gdf.geometry.iloc[1].equals(bowtie)  # input untouched


def test_repair_keeps_polygonal_parts_and_reports_collapse():
    # A polygon with a dangling spike: make_valid would add a line; the polygon layer keeps
    # only the polygon, typed Polygon as before.
    spike = Polygon(
        [
            (X0, Y0),
            (X0 + 10, Y0),
            (X0 + 10, Y0 + 5),
            (X0 + 20, Y0 + 5),
            (X0 + 10, Y0 + 5),
            (X0 + 10, Y0 + 10),
            (X0, Y0 + 10),
        ]
    )
    flat = Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 20, Y0)])
    gdf = layer([spike, flat, cell(5, 5)])
    fixed, findings = repair(gdf)
    assert [f.feature for f in findings] == [0, 1]
    assert fixed.geometry.iloc[0].geom_type == "Polygon"
    assert fixed.geometry.iloc[0].normalize().equals(box(X0, Y0, X0 + 10, Y0 + 10).normalize())
    assert findings[1].severity == "error" and fixed.geometry.iloc[1].is_empty
    assert "退化" in findings[1].message


def test_repair_of_a_valid_layer_changes_nothing():
    gdf = layer(grid(2, 2))
    fixed, findings = repair(gdf)
    assert findings == ()
    assert fixed.geometry.geom_equals(gdf.geometry).all()


def test_tiling_checks_use_repaired_geometry():
    # A bowtie-shaped cell: still one invalid_geometry error, but no phantom overlap/gap.
    cells = grid(2, 1)
    bow = Polygon([(X0 + 200, Y0), (X0 + 300, Y0 + 100), (X0 + 300, Y0), (X0 + 200, Y0 + 100)])
    report = run_qc(layer([*cells, bow]), QCOptions(tiling=True))
    assert report.counts["invalid_geometry"] == 1
    assert report.counts["overlap"] == 0


# --- properties -------------------------------------------------------------------------


@st.composite
def rectangle_grids(draw):
    nx = draw(st.integers(3, 6))
    ny = draw(st.integers(3, 6))
    size = st.floats(2.0, 300.0, allow_nan=False, allow_infinity=False)
    xs = X0 + np.r_[0.0, np.cumsum(draw(st.lists(size, min_size=nx, max_size=nx)))]
    ys = Y0 + np.r_[0.0, np.cumsum(draw(st.lists(size, min_size=ny, max_size=ny)))]
    cells = [box(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(ny) for i in range(nx)]
    hole = draw(st.integers(1, ny - 2)) * nx + draw(st.integers(1, nx - 2))
    return cells, hole


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rectangle_grids())
def test_property_grid_tiles_and_one_removed_cell_is_one_gap(data):
    cells, hole = data
    report = run_qc(layer(cells), QCOptions(tiling=True))
    assert report.counts["overlap"] == 0 and report.counts["gap"] == 0
    rest = cells[:hole] + cells[hole + 1 :]
    report = run_qc(layer(rest), QCOptions(tiling=True))
    assert report.counts["overlap"] == 0
    (gap,) = of(report, "gap")
    assert gap.area_m2 == pytest.approx(ellip(cells[hole]), rel=1e-9)
    assert gap.severity == ("error" if gap.area_m2 >= 1.0 else "info")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(1, 4), st.integers(1, 4)),
        min_size=2,
        max_size=14,
    )
)
def test_property_coverage_fast_path_equals_brute_force(rects):
    polys = np.array(
        [shapely.MultiPolygon([box(x, y, x + w, y + h)]) for x, y, w, h in rects], dtype=object
    )
    flags = coverage_flags(polys)
    fast, slow = find_overlaps(polys, flags), find_overlaps(polys, None)
    assert list(zip(fast.i, fast.j, strict=True)) == list(zip(slow.i, slow.j, strict=True))
    assert np.allclose(shapely.area(fast.patches), shapely.area(slow.patches))
    gaps_fast = sorted(shapely.area(find_gaps(polys, flags)))
    gaps_slow = sorted(shapely.area(find_gaps(polys, None)))
    assert np.allclose(gaps_fast, gaps_slow)


# --- performance (synthetic 合成数据 parcels) ------------------------------------------


def synthetic_parcels(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """合成数据: ``n`` Voronoi parcels clipped to the real outline of 朝阳区 (Beijing)."""
    src = SHARED / "beijing_chaoyang_subdistricts_wgs84.geojson"
    if not src.exists():
        pytest.skip(f"shared boundary data not found: {src}")
    outline = shapely.union_all(pyogrio.read_dataframe(src).geometry.values)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = outline.bounds
    pts = shapely.points(rng.uniform(minx, maxx, 3 * n), rng.uniform(miny, maxy, 3 * n))
    shapely.prepare(outline)
    pts = pts[shapely.contains(outline, pts)][:n]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=outline))
    edge = ~shapely.contains_properly(outline, cells)
    cells[edge] = shapely.intersection(cells[edge], outline)
    cells = cells[~shapely.is_empty(cells)]
    return gpd.GeoDataFrame(
        {
            "BSM": np.arange(1, len(cells) + 1),
            "DLBM": rng.choice(sorted(CODES), len(cells)),
            "synthetic": True,
        },
        geometry=cells,
        crs="EPSG:4490",
    )


@pytest.mark.slow
def test_perf_100k_voronoi_parcels_tiling():
    gdf = synthetic_parcels(100_000)
    assert len(gdf) == 100_000
    t0 = time.perf_counter()
    report = run_qc(gdf, FULL)
    elapsed = time.perf_counter() - t0
    print(f"\nrun_qc(tiling=True) on {len(gdf)} synthetic Voronoi parcels: {elapsed:.2f} s")
    assert report.counts["overlap"] == 0
    assert report.counts["invalid_geometry"] == 0
    # The real 朝阳 outline (union of its 43 subdistricts) has one ~60 m² interior gap
    # between subdistricts; the clipped parcels inherit it.
    assert report.counts["gap"] == 1
    assert elapsed < 30  # ~2.5 s measured on 2 cores

    # Defects: 50 parcels grown by ~2 m overlap their neighbours; 50 removed leave gaps.
    rng = np.random.default_rng(1)
    pick = rng.choice(len(gdf), 100, replace=False)
    geoms = gdf.geometry.values.copy()
    geoms[pick[:50]] = shapely.buffer(geoms[pick[:50]], 0.00002)
    damaged = gdf.set_geometry(gpd.GeoSeries(geoms, crs=gdf.crs)).drop(index=pick[50:])
    t0 = time.perf_counter()
    report = run_qc(damaged, FULL)
    elapsed = time.perf_counter() - t0
    print(f"run_qc(tiling=True) with 100 defects: {elapsed:.2f} s")
    assert report.counts["overlap"] >= 50
    assert report.counts["gap"] >= 2
    assert elapsed < 30
