"""Overlay tabulation and general overlay: areas, reconciliation, engines, bad input.

Real data: Beijing Chaoyang street boundaries (../shared/data, Tianditu-based, MIT). The land
layer tiling them is synthetic (合成数据): Voronoi cells generated here with a fixed seed.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yizhangtu.accounting import AreaTable, overlay, postgis_tabulate, tabulate
from yizhangtu.errors import CRSError, GeometryError, InputError, ValidationError
from yizhangtu.geo.area import convert_area, ellipsoidal_area

GK = "EPSG:4548"  # CGCS2000 / 3-degree Gauss-Kruger CM 117E (Beijing)
X0, Y0 = 450_000.0, 4_420_000.0
REL = 1e-6


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def ell(*geoms: shapely.Geometry) -> float:
    """Reference: ellipsoidal area of hand-made expected pieces (GK coordinates)."""
    return float(ellipsoidal_area(gpd.GeoSeries(list(geoms), crs=GK)).sum())


@pytest.fixture(scope="module")
def squares() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    units = gpd.GeoDataFrame(
        {"name": ["A", "B"]}, geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], crs=GK
    )
    layer = gpd.GeoDataFrame(
        {"dlbm": ["0101", "0201", "0101", "0301", "0101"]},
        geometry=[
            box(100, 100, 400, 400),  # inside A
            box(900, 100, 1100, 300),  # across A|B
            box(1500, 500, 1700, 700),  # inside B
            box(1900, 800, 2100, 900),  # half in B, half outside
            box(3000, 3000, 3100, 3100),  # outside every unit
        ],
        index=pd.Index([11, 12, 13, 14, 15], name="fid"),
        crs=GK,
    )
    return layer, units


def area_of(table: AreaTable, unit: str, cls: str) -> float:
    hit = table.rows[(table.rows["unit"] == unit) & (table.rows["class"] == cls)]
    assert len(hit) == 1, (unit, cls, table.rows)
    return float(hit["area_m2"].iloc[0])


# --------------------------------------------------------------------------------------------
# hand-made squares with known pieces


def test_squares_known_pieces(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    t = tabulate(layer, units, class_field="dlbm", unit_field="name")
    assert t.engine == "local"
    expected = {
        ("A", "0101"): ell(box(100, 100, 400, 400)),
        ("A", "0201"): ell(box(900, 100, 1000, 300)),
        ("B", "0201"): ell(box(1000, 100, 1100, 300)),
        ("B", "0101"): ell(box(1500, 500, 1700, 700)),
        ("B", "0301"): ell(box(1900, 800, 2000, 900)),
    }
    assert len(t.rows) == len(expected)
    for (unit, cls), want in expected.items():
        assert area_of(t, unit, cls) == pytest.approx(want, rel=REL)
    # GK planar area differs from the ellipsoidal one (scale factor near 116.4°E)
    assert expected[("A", "0101")] != pytest.approx(90_000.0, rel=1e-5)
    assert t.unit_areas["A"] == pytest.approx(ell(box(0, 0, 1000, 1000)), rel=REL)
    assert t.uncovered_m2 == pytest.approx(
        ell(box(2000, 800, 2100, 900), box(3000, 3000, 3100, 3100)), rel=REL
    )
    assert t.double_counted_m2 == 0.0
    assert t.layer_area_m2 == pytest.approx(ell(*layer.geometry), rel=REL)
    # reconciliation: pieces + residual = unit area; pieces + uncovered = layer
    assert (t.unit_totals + t.residual_m2 - t.unit_areas).abs().max() < 1e-6
    assert t.rows["area_m2"].sum() + t.uncovered_m2 == pytest.approx(t.layer_area_m2, rel=1e-12)
    assert t.residual_m2["A"] == pytest.approx(
        ell(box(0, 0, 1000, 1000)) - expected[("A", "0101")] - expected[("A", "0201")], rel=REL
    )
    assert any("位于所有统计单元之外" in w for w in t.warnings)
    assert any("未被图层完全覆盖" in w for w in t.warnings)
    # fast path: the two parcels wholly inside a unit are never intersected
    assert t.stats["fast_path"] == 2
    assert t.stats["features"] == 5


def test_area_units_and_records(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    t = tabulate(layer, units, class_field="dlbm", unit_field="name")
    mu = t.in_unit("mu")
    assert mu.area_unit == "mu"
    assert np.allclose(mu.rows["area"], t.rows["area_m2"] * 15 / 10_000)
    assert np.allclose(mu.rows["area_m2"], t.rows["area_m2"])  # the m² fields stay m²
    recs = t.to_records("ha")
    assert recs[0].keys() == {"unit", "class", "area", "area_unit"}
    assert {r["area_unit"] for r in recs} == {"ha"}
    first = t.rows.iloc[0]
    assert recs[0]["area"] == pytest.approx(convert_area(first["area_m2"], "ha"))
    assert mu.to_records()[0]["area_unit"] == "mu"
    summary = t.summary("km2")
    assert summary["uncovered_area"] == pytest.approx(t.uncovered_m2 / 1e6)
    assert {u["unit"] for u in summary["units"]} == {"A", "B"}
    with pytest.raises(InputError) as err:
        t.in_unit("acre")
    assert err.value.key == "unknown_area_unit"


def test_classifier_and_valid_set(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    mapping = {"0101": "耕地", "0201": "园地", "0301": "林地"}
    t = tabulate(
        layer,
        units,
        class_field="dlbm",
        unit_field="name",
        classify=lambda df: df["dlbm"].map(mapping),
        valid_classes=set(mapping.values()),
    )
    assert set(t.rows["class"]) == {"耕地", "园地", "林地"}
    assert area_of(t, "A", "耕地") == pytest.approx(ell(box(100, 100, 400, 400)), rel=REL)


# --------------------------------------------------------------------------------------------
# general overlay against geopandas, areas against the reference


@pytest.mark.parametrize(
    "how", ["intersection", "difference", "union", "identity", "symmetric_difference"]
)
def test_overlay_matches_geopandas(
    how: str, squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
) -> None:
    layer, units = squares
    layer = layer.reset_index()
    ours = overlay(layer, units, how)
    ref = gpd.overlay(layer, units, how=how)
    assert len(ours) == len(ref)
    assert list(ours.columns) == [*ref.columns.drop("geometry"), "area_m2", "geometry"]
    key = [c for c in ("fid", "name") if c in ref.columns]
    a = ours.assign(_a=ours["area_m2"]).sort_values(key, na_position="last")
    r = ref.assign(_a=ellipsoidal_area(ref.geometry)).sort_values(key, na_position="last")
    assert a["fid"].fillna(-1).tolist() == r["fid"].fillna(-1).tolist()
    if "name" in key:
        assert a["name"].fillna("").tolist() == r["name"].fillna("").tolist()
    assert np.allclose(a["_a"].to_numpy(), r["_a"].to_numpy(), rtol=REL)
    # pieces cover the same ground as geopandas' pieces (ours cut in the equal-area plane,
    # where the units' 1 km edges are not exactly the straight GK lines geopandas cuts along)
    ours_u, ref_u = shapely.union_all(a.geometry), shapely.union_all(r.geometry)
    assert shapely.symmetric_difference(ours_u, ref_u).area < REL * ref_u.area
    assert ours.crs == layer.crs


def test_overlay_attributes_suffixes_and_fast_path() -> None:
    left = gpd.GeoDataFrame(
        {"code": ["L1", "L2"], "kind": [1, 2]},
        geometry=[box(0, 0, 100, 100), box(50, 50, 300, 300)],
        crs=GK,
    )
    right = gpd.GeoDataFrame(
        {"code": ["R1"], "zone": ["z"]}, geometry=[box(-10, -10, 200, 200)], crs=GK
    )
    out = overlay(left, right, "intersection")
    assert list(out.columns) == ["code_1", "kind", "code_2", "zone", "area_m2", "geometry"]
    assert out["code_1"].tolist() == ["L1", "L2"]
    # L1 lies wholly inside R1: taken whole, geometry identical to the input
    assert out.geometry.iloc[0].equals_exact(left.geometry.iloc[0], tolerance=0)
    assert out["area_m2"].iloc[0] == pytest.approx(ell(box(0, 0, 100, 100)), rel=REL)
    assert out["area_m2"].iloc[1] == pytest.approx(ell(box(50, 50, 200, 200)), rel=REL)
    # touching-only pairs give lines, kept only when asked
    touching = gpd.GeoDataFrame({"t": [1]}, geometry=[box(200, -10, 250, 50)], crs=GK)
    assert len(overlay(touching, right, "intersection")) == 0
    lines = overlay(touching, right, "intersection", keep_geom_type=False)
    # a shared GK edge is straight to within float noise in the equal-area plane: the contact
    # comes out as a line, a point or a crumb of ~1e-9 m², never as area
    assert len(lines) == 1
    assert lines["area_m2"].iloc[0] < 1e-6


# --------------------------------------------------------------------------------------------
# real streets tiled by synthetic parcels


def voronoi_tiling(region: shapely.Geometry, n: int, seed: int) -> np.ndarray:
    """合成数据: a Voronoi tiling of ``region`` from ``n`` random seeds."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = region.bounds
    shapely.prepare(region)
    pts: list[np.ndarray] = []
    while sum(len(p) for p in pts) < n:
        cand = shapely.points(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n))
        pts.append(cand[shapely.contains(region, cand)])
    seeds = np.concatenate(pts)[:n]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=shapely.box(x0, y0, x1, y1))
    )
    cut = shapely.intersection(cells, region)
    parts = shapely.get_parts(cut)
    return parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)]


@pytest.fixture(scope="module")
def chaoyang(shared_dir: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    path = shared_dir / "data" / "boundaries" / "beijing_chaoyang_subdistricts_wgs84.geojson"
    streets = gpd.read_file(path)
    streets = streets.sort_values("code").reset_index(drop=True)
    # a few adjacent streets around the first one
    first = streets.geometry.iloc[0]
    near = streets[streets.geometry.intersects(first.buffer(0.02))].head(6)
    units = near[["code", "name", "geometry"]].to_crs(GK).reset_index(drop=True)
    region = shapely.union_all(units.geometry.values)
    cells = voronoi_tiling(region, 3000, seed=20240601)
    rng = np.random.default_rng(7)
    layer = gpd.GeoDataFrame(
        {
            "dlbm": rng.choice(["0101", "0201", "0301", "0701", "1001"], len(cells)),
            "synthetic": True,
        },
        geometry=cells,
        crs=GK,
    )
    return layer, units


def test_chaoyang_reconciles(chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = chaoyang
    t = tabulate(layer, units, class_field="dlbm", unit_field="code")
    # the tiling covers every street: no residual beyond the edges' bulge (the tiling's cut
    # vertices lie on GK-straight edges, which are slightly bent in the equal-area plane)
    assert (t.residual_m2.abs() <= t.edge_bulge_m2).all()
    assert (t.residual_m2.abs() / t.unit_areas).max() < 1e-7
    assert not any("未被图层完全覆盖" in w or "超出单元面积" in w for w in t.warnings)
    assert t.uncovered_m2 < 1e-7 * t.layer_area_m2
    twice = float(t.overlaps["layer_area_m2"].sum())
    assert t.rows["area_m2"].sum() - twice == pytest.approx(t.layer_area_m2, rel=1e-7)
    # real boundaries overlap a little: reported, with the layer area counted twice
    assert t.double_counted_m2 == pytest.approx(float(t.overlaps["area_m2"].sum()))
    assert twice == pytest.approx(t.double_counted_m2, rel=1e-9)
    # the reference: street areas by the ellipsoidal definition
    want = pd.Series(ellipsoidal_area(units.geometry), index=units["code"]).sort_index()
    assert np.allclose(t.unit_areas.sort_index().to_numpy(), want.to_numpy(), rtol=REL)
    # the fast path does most of the work: only pairs whose boundaries cross are cut
    assert t.stats["fast_path"] > 0.8 * len(layer)
    assert 0 < t.stats["crossing_pairs"] < 0.2 * t.stats["candidate_pairs"]


def test_complex_units_clipped_same_pieces(
    chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    layer, units = chaoyang
    dense = units.assign(geometry=shapely.segmentize(units.geometry.values, 5.0))
    assert shapely.get_num_coordinates(dense.geometry.values).min() > 1000
    t = tabulate(layer, dense, class_field="dlbm", unit_field="code")
    assert t.stats["clipped"] == t.stats["intersections"] > 0
    ref = gpd.overlay(layer[["dlbm", "geometry"]], dense[["code", "geometry"]])
    ref_rows = ref.assign(a=ellipsoidal_area(ref.geometry)).groupby(["code", "dlbm"])["a"].sum()
    ours = t.rows.set_index(["unit", "class"])["area_m2"]
    assert np.allclose(ours.to_numpy(), ref_rows.reindex(ours.index).to_numpy(), rtol=REL)
    # the general overlay clips complex features too, with the same pieces as geopandas
    sub = layer.iloc[::10]
    ours_id = overlay(sub, dense[["code", "geometry"]], "identity")
    assert ours_id.attrs.get("stats", {}).get("clipped", 1) > 0
    ref_id = gpd.overlay(sub, dense[["code", "geometry"]], how="identity")
    ref_a = ellipsoidal_area(ref_id.geometry)
    # the same pieces, crumbs of numerical noise (< 1e-3 m², e.g. a zero-area polygon) aside
    assert (ours_id["area_m2"] > 1e-3).sum() == (ref_a > 1e-3).sum()
    assert ours_id["area_m2"].sum() == pytest.approx(ref_a.sum(), rel=1e-9)
    # 5 m edges: pieces add up to each unit, with an edge bulge of almost nothing
    assert (t.edge_bulge_m2 < 1e-3).all()
    assert (t.residual_m2.abs() <= t.edge_bulge_m2 + 1e-6 * t.unit_areas).all()


def test_engines_agree(chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    import dask_geopandas

    layer, units = chaoyang
    kw = {"class_field": "dlbm", "unit_field": "code"}
    base = tabulate(layer, units, workers=1, **kw)
    variants = {
        "pool": tabulate(layer, units, workers=2, chunk_size=700, **kw),
        "dask": tabulate(layer, units, engine="dask", chunk_size=800, **kw),
        "dask-sync": tabulate(layer, units, engine="dask", scheduler="sync", **kw),
        "dask-frame": tabulate(
            dask_geopandas.from_geopandas(layer, npartitions=3), units, engine="dask", **kw
        ),
    }
    for name, other in variants.items():
        assert other.engine == ("dask" if name.startswith("dask") else "local")
        assert_same_table(base, other)


def assert_same_table(a: AreaTable, b: AreaTable) -> None:
    m = a.rows.merge(b.rows, on=["unit", "class"], how="outer", indicator=True)
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"]
    assert np.allclose(m["area_m2_x"], m["area_m2_y"], rtol=REL, atol=0)
    assert np.allclose(a.unit_areas.sort_index(), b.unit_areas.sort_index(), rtol=REL)
    # uncovered is a difference of large sums: compare it against the layer's area
    assert abs(a.uncovered_m2 - b.uncovered_m2) <= REL * a.layer_area_m2
    assert a.double_counted_m2 == pytest.approx(b.double_counted_m2, rel=REL, abs=1e-6)
    assert a.layer_area_m2 == pytest.approx(b.layer_area_m2, rel=REL)


def test_distributed_scheduler_address(chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    from distributed import LocalCluster

    layer, units = chaoyang
    base = tabulate(layer, units, class_field="dlbm", unit_field="code", workers=1)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as c:
        t = tabulate(
            layer, units, class_field="dlbm", unit_field="code", engine="dask",
            scheduler=c.scheduler_address, chunk_size=1000,
        )  # fmt: skip
    assert_same_table(base, t)


def test_overlay_groupby_equals_tabulation(
    chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    layer, units = chaoyang
    t = tabulate(layer, units, class_field="dlbm", unit_field="code")
    pieces = overlay(layer, units[["code", "geometry"]], "intersection", workers=2, chunk_size=1000)
    by = pieces.groupby(["code", "dlbm"])["area_m2"].sum()
    rows = t.rows.set_index(["unit", "class"])["area_m2"]
    assert np.allclose(by.reindex(rows.index).to_numpy(), rows.to_numpy(), rtol=1e-9)
    dask_pieces = overlay(layer, units[["code", "geometry"]], "identity", engine="dask")
    local_pieces = overlay(layer, units[["code", "geometry"]], "identity")
    assert len(dask_pieces) == len(local_pieces)
    assert np.allclose(dask_pieces["area_m2"], local_pieces["area_m2"], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# bad input


def test_overlapping_units_reported(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, _ = squares
    units = gpd.GeoDataFrame(
        {"name": ["A", "B"]}, geometry=[box(0, 0, 1000, 1000), box(800, 0, 2000, 1000)], crs=GK
    )
    t = tabulate(layer, units, class_field="dlbm", unit_field="name")
    assert t.double_counted_m2 == pytest.approx(ell(box(800, 0, 1000, 1000)), rel=REL)
    assert t.overlaps[["unit_a", "unit_b"]].values.tolist() == [["A", "B"]]
    # parcel 12 (900..1100) lies partly in the overlap: counted in both units
    twice = ell(box(900, 100, 1000, 300))
    assert t.overlaps["layer_area_m2"].iloc[0] == pytest.approx(twice, rel=REL)
    assert area_of(t, "A", "0201") + area_of(t, "B", "0201") == pytest.approx(
        ell(box(900, 100, 1100, 300)) + twice, rel=REL
    )
    assert t.uncovered_m2 == pytest.approx(
        ell(box(2000, 800, 2100, 900), box(3000, 3000, 3100, 3100)), rel=REL
    )
    assert any("重叠" in w and "重复计入" in w for w in t.warnings)


def test_mixed_and_missing_crs(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    with pytest.raises(CRSError) as err:
        tabulate(layer.to_crs(4490), units, class_field="dlbm", unit_field="name")
    assert err.value.key == "crs_mismatch"
    with pytest.raises(CRSError) as err:
        tabulate(
            layer.set_crs(None, allow_override=True), units, class_field="dlbm", unit_field="name"
        )
    assert err.value.key == "crs_missing"
    with pytest.raises(CRSError):
        overlay(layer.to_crs(4326), units)


def test_unknown_class_codes(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    bad = layer.assign(dlbm=["0101", "9999", "0101", "XX", "9999"])
    with pytest.raises(ValidationError) as err:
        tabulate(bad, units, class_field="dlbm", unit_field="name", valid_classes={"0101", "0201"})
    assert err.value.key == "unknown_class"
    assert err.value.data["codes"] == [{"code": "9999", "count": 2}, {"code": "XX", "count": 1}]
    assert "9999" in err.value.message and "XX" in err.value.message
    with pytest.raises(ValidationError) as err:  # a classifier that cannot map a code
        tabulate(
            bad, units, class_field="dlbm", unit_field="name",
            classify=lambda df: df["dlbm"].map({"0101": "耕地"}),
        )  # fmt: skip
    assert {c["code"] for c in err.value.data["codes"]} == {"9999", "XX"}
    with pytest.raises(ValidationError) as err:  # dask frame: every partition reports
        import dask_geopandas

        tabulate(
            dask_geopandas.from_geopandas(bad, npartitions=2), units, class_field="dlbm",
            unit_field="name", engine="dask", valid_classes={"0101"},
        )  # fmt: skip
    assert {c["code"] for c in err.value.data["codes"]} == {"9999", "XX"}
    with pytest.raises(ValidationError) as err:
        tabulate(layer, units, class_field="nope", unit_field="name")
    assert err.value.key == "missing_field"


def test_empty_layer(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    with pytest.raises(InputError) as err:
        tabulate(layer.iloc[:0], units, class_field="dlbm", unit_field="name")
    assert err.value.key == "empty_layer"
    with pytest.raises(InputError) as err:
        tabulate(layer, units.iloc[:0], class_field="dlbm", unit_field="name")
    assert err.value.key == "empty_layer"
    with pytest.raises(InputError) as err:
        overlay(layer.iloc[:0], units)
    assert err.value.key == "empty_layer"


def test_invalid_geometry_refused_not_repaired(
    squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    layer, units = squares
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    bad = layer.copy()
    bad.loc[12, "geometry"] = bowtie
    bad.loc[14, "geometry"] = shapely.LineString([(X0, Y0), (X0 + 5, Y0 + 5)])
    before = bad.geometry.copy()
    for kwargs in ({}, {"workers": 2, "chunk_size": 2}, {"engine": "dask"}):
        with pytest.raises(GeometryError) as err:
            tabulate(bad, units, class_field="dlbm", unit_field="name", **kwargs)
        assert err.value.key == "invalid_geometry"
        listed = {(d["feature"], d["reason"].split(":")[0]) for d in err.value.data["invalid"]}
        assert listed == {(12, "几何无效"), (14, "不是面要素 (1")}
        assert err.value.data["count"] == 2
    assert bad.geometry.equals(before)  # nothing was repaired in place
    with pytest.raises(GeometryError) as err:
        overlay(bad, units)
    assert {d["feature"] for d in err.value.data["invalid"]} == {12, 14}
    bad_units = units.copy()
    bad_units.loc[1, "geometry"] = bowtie
    with pytest.raises(GeometryError) as err:
        tabulate(layer, bad_units, class_field="dlbm", unit_field="name")
    assert err.value.data["invalid"][0]["layer"] == "units"


def test_unknown_engine(squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    layer, units = squares
    with pytest.raises(InputError) as err:
        tabulate(layer, units, class_field="dlbm", unit_field="name", engine="spark")
    assert err.value.key == "unknown_engine"
    with pytest.raises(InputError):
        tabulate(
            layer, units, class_field="dlbm", unit_field="name", engine="dask", scheduler="gpu"
        )


# --------------------------------------------------------------------------------------------
# property: tabulated area = layer area inside the units


def _grid(xs: list[float], ys: list[float]) -> list[shapely.Polygon]:
    return [
        box(x0, y0, x1, y1)
        for x0, x1 in itertools.pairwise(xs)
        for y0, y1 in itertools.pairwise(ys)
    ]


def _cuts(draw: st.DrawFn, lo: float, hi: float) -> list[float]:
    """Cut positions at least 1 m apart (no degenerate cells)."""
    inner = draw(st.lists(st.integers(1, int(hi - lo) - 1), max_size=4, unique=True))
    return [lo, *(lo + k for k in sorted(inner)), hi]


@st.composite
def layer_and_units(draw: st.DrawFn) -> tuple[list[shapely.Polygon], list[shapely.Polygon]]:
    """A 300 m x 200 m grid of parcels and a grid of units over part of it (or beyond)."""
    layer = _grid(_cuts(draw, 0, 300), _cuts(draw, 0, 200))
    ux0 = draw(st.integers(-50, 200))
    uy0 = draw(st.integers(-50, 150))
    w = draw(st.integers(10, 250))
    h = draw(st.integers(10, 200))
    units = _grid(_cuts(draw, ux0, ux0 + w), _cuts(draw, uy0, uy0 + h))
    return layer, units


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_and_units())
def test_property_tabulation_sums_to_layer_inside_units(
    data: tuple[list[shapely.Polygon], list[shapely.Polygon]],
) -> None:
    parcels, cells = data
    layer = gpd.GeoDataFrame({"c": ["a", "b"] * (len(parcels) // 2) + ["a"] * (len(parcels) % 2)},
                             geometry=parcels, crs=GK)  # fmt: skip
    units = gpd.GeoDataFrame({"u": range(len(cells))}, geometry=cells, crs=GK)
    t = tabulate(layer, units, class_field="c", unit_field="u")

    def measure(g: shapely.Geometry) -> float:  # in the job's plane, like the engine
        return float(gpd.GeoSeries([g], crs=GK).to_crs(t.equal_area_crs).area.sum())

    # brute force: union everything, intersect once (GK, where the edges are straight). A cut
    # adds vertices on GK-straight edges, which bend slightly (~1e-9/m) in the equal-area
    # plane, so the same ground cut into other pieces differs by O(curvature x edge³): ~1e-3 m²
    # for 1 m strips along 3 km edges, ~1e-6 m² along the 300 m edges here.
    cells_u = shapely.union_all(cells)
    total = ell(*parcels)
    inside = measure(shapely.intersection(shapely.union_all(parcels), cells_u))
    assert t.rows["area_m2"].sum() == pytest.approx(inside, rel=REL, abs=1e-5)
    assert t.uncovered_m2 == pytest.approx(total - inside, rel=REL, abs=1e-5)
    assert t.layer_area_m2 == pytest.approx(total, rel=1e-9)
    for cls in ("a", "b"):
        mine = [p for p, c in zip(parcels, layer["c"], strict=True) if c == cls]
        want = measure(shapely.intersection(shapely.union_all(mine), cells_u))
        got = float(t.rows.loc[t.rows["class"] == cls, "area_m2"].sum())
        assert got == pytest.approx(want, rel=REL, abs=1e-5)
        # and the reference ellipsoidal area of the expected pieces
        pieces = gpd.GeoSeries([p.intersection(cells_u) for p in mine], crs=GK)
        assert got == pytest.approx(float(ellipsoidal_area(pieces).sum()), rel=REL, abs=1e-5)
    assert (t.residual_m2 >= -REL * t.unit_areas).all()  # no unit gets more than it holds


# --------------------------------------------------------------------------------------------
# PostGIS push-down (``pg_dsn`` from tests/conftest.py: YIZHANGTU_TEST_PG_DSN)


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[tuple[object, str]]:
    import psycopg

    dsn = pg_dsn
    schema = f"yz_acc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield conn, schema
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def load_table(conn: object, table: str, frame: gpd.GeoDataFrame, srid: int) -> None:
    cols = [c for c in frame.columns if c != frame.geometry.name]
    defs = ", ".join(f'"{c}" text' for c in cols)
    conn.execute(  # type: ignore[attr-defined]
        f"CREATE TABLE {table} (fid bigserial PRIMARY KEY, {defs}, geom geometry(Geometry, {srid}))"
    )
    wkb = shapely.to_wkb(
        shapely.set_srid(np.asarray(frame.geometry.values), srid), hex=True, include_srid=True
    )
    names = ", ".join(f'"{c}"' for c in cols)
    with conn.cursor().copy(f"COPY {table} ({names}, geom) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in zip(*[frame[c].astype(str) for c in cols], wkb, strict=True):
            copy.write_row(row)
    conn.execute(f"CREATE INDEX ON {table} USING gist (geom)")  # type: ignore[attr-defined]
    conn.execute(f"ANALYZE {table}")  # type: ignore[attr-defined]


@pytest.mark.postgis
def test_postgis_agrees_with_local(
    pg: tuple[object, str], chaoyang: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
) -> None:
    conn, schema = pg
    layer, units = chaoyang
    layer4490, units4490 = layer.to_crs(4490), units.to_crs(4490)
    load_table(conn, f"{schema}.survey", layer4490[["dlbm", "geometry"]], 4490)
    load_table(conn, f"{schema}.units", units4490[["code", "geometry"]], 4490)
    local = tabulate(layer4490, units4490, class_field="dlbm", unit_field="code")
    db = postgis_tabulate(
        conn, f"{schema}.survey", f"{schema}.units", unit_field="code", class_field="dlbm"
    )
    assert db.engine == "postgis"
    assert db.equal_area_crs == local.equal_area_crs
    assert_same_table(local, db)
    assert db.stats["fast_path"] > 0
    geog = postgis_tabulate(
        conn, f"{schema}.survey", f"{schema}.units", unit_field="code", class_field="dlbm",
        area_method="geography",
    )  # fmt: skip
    m = local.rows.merge(geog.rows, on=["unit", "class"])
    assert len(m) == len(local.rows)
    assert np.allclose(m["area_m2_x"], m["area_m2_y"], rtol=REL)
    mapped = postgis_tabulate(
        conn, f"{schema}.survey", f"{schema}.units", unit_field="code", class_field="dlbm",
        class_map={"0101": "耕地", "0201": "园地", "0301": "林地", "0701": "住宅", "1001": "交通"},
    )  # fmt: skip
    assert set(mapped.rows["class"]) == {"耕地", "园地", "林地", "住宅", "交通"}
    assert mapped.rows["area_m2"].sum() == pytest.approx(db.rows["area_m2"].sum(), rel=1e-12)


@pytest.mark.postgis
def test_postgis_bad_input(
    pg: tuple[object, str], squares: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]
) -> None:
    conn, schema = pg
    layer, units = squares
    s = schema
    load_table(conn, f"{s}.units", units, 4548)
    load_table(conn, f"{s}.survey", layer, 4548)
    t = postgis_tabulate(conn, f"{s}.survey", f"{s}.units", unit_field="name", class_field="dlbm")
    assert_same_table(tabulate(layer, units, class_field="dlbm", unit_field="name"), t)
    with pytest.raises(ValidationError) as err:
        postgis_tabulate(
            conn, f"{s}.survey", f"{s}.units", unit_field="name", class_field="dlbm",
            class_map={"0101": "耕地"},
        )  # fmt: skip
    assert {c["code"] for c in err.value.data["codes"]} == {"0201", "0301"}
    load_table(conn, f"{s}.empty", layer.iloc[:0], 4548)
    with pytest.raises(InputError) as err:
        postgis_tabulate(conn, f"{s}.empty", f"{s}.units", unit_field="name", class_field="dlbm")
    assert err.value.key == "empty_layer"
    load_table(conn, f"{s}.other", layer.to_crs(4490), 4490)
    with pytest.raises(CRSError):
        postgis_tabulate(conn, f"{s}.other", f"{s}.units", unit_field="name", class_field="dlbm")
    bad = layer.copy()
    bad.loc[12, "geometry"] = shapely.Polygon(
        [(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)]
    )
    load_table(conn, f"{s}.bad", bad.reset_index().rename(columns={"fid": "src_id"}), 4548)
    with pytest.raises(GeometryError) as err:
        postgis_tabulate(
            conn, f"{s}.bad", f"{s}.units", unit_field="name", class_field="dlbm", id_field="src_id"
        )
    assert [d["feature"] for d in err.value.data["invalid"]] == ["12"]
