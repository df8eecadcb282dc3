"""Synthetic 三调-like survey generator (合成数据) on four real Chaoyang units.

tests/data/chaoyang_sample.geojson holds 团结湖街道, 香河园街道, 垡头街道 (3 parts) and 太阳宫乡,
copied unchanged from ../shared/data/boundaries/beijing_chaoyang_subdistricts_wgs84.geojson
(thebamboogrove/bj-subdistricts, MIT, Tianditu-based digitisation).
"""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from yizhangtu.demo import (
    CHANGE_LOG_COLUMNS,
    SURVEY_COLUMNS,
    construction_mask,
    default_shared_dir,
    evolve_survey,
    generate_benchmark,
    generate_survey,
    load_profile,
)
from yizhangtu.errors import InputError, NotFoundError
from yizhangtu.geo.area import ellipsoidal_area

DATA = Path(__file__).parent / "data" / "chaoyang_sample.geojson"
CZCSXM_VALUES = {"", "201", "202", "203", "204", "205"}


@pytest.fixture(scope="module")
def units() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA)


@pytest.fixture(scope="module")
def survey(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return generate_survey(units, unit_field="code", seed=2020)


@pytest.fixture(scope="module")
def code_table() -> dict[str, str]:
    path = default_shared_dir() / "reference" / "sandiao_working_classification.csv"
    with path.open(encoding="utf-8") as fh:
        return {r["code"]: r["name"] for r in csv.DictReader(fh) if r["level"] in ("1", "2")}


def _areas(geoms) -> np.ndarray:
    return ellipsoidal_area(gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=4490))


def _local_m2(geoms) -> np.ndarray:
    """Area of lon/lat geometries in m² by a local scale: for overlap/gap slivers only.

    ellipsoidal_area takes each edge as a chord in its projection, so a zero-width sliver with
    a 500 m east–west edge at 40°N gets about 1 m²; slivers are measured in lon/lat instead.
    """
    geoms = np.asarray(geoms, dtype=object)
    lat = np.radians(shapely.bounds(geoms)[:, 1])
    lat = np.where(np.isnan(lat), 0.0, lat)
    return shapely.area(geoms) * 111_320.0 * np.cos(lat) * 110_574.0


def _max_overlap_m2(geoms: np.ndarray) -> float:
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    if not keep.any():
        return 0.0
    return float(_local_m2(shapely.intersection(geoms[i[keep]], geoms[j[keep]])).max())


def _check_tiling(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> None:
    assert survey.is_valid.all()
    assert set(survey.geom_type) == {"Polygon"}
    unit_geom = dict(zip(units["code"], units.geometry.values, strict=True))
    for code, part in survey.groupby("ZLDWDM"):
        ug = unit_geom[code]
        geoms = part.geometry.to_numpy()
        assert _max_overlap_m2(geoms) <= 0.01, code
        # No gaps and nothing outside: the union is the unit.
        sym = shapely.symmetric_difference(shapely.union_all(geoms), ug)
        assert _local_m2([sym])[0] <= 0.01, code
        total = part["TBMJ"].sum()
        unit_area = _areas([ug])[0]
        assert abs(total - unit_area) / unit_area < 1e-5, code
        # Against the unit with its long edges densified (edges straight in lon/lat, the
        # interpretation under which areas add up over a subdivision) the match is tighter.
        dense = _areas([shapely.segmentize(ug, 0.0002)])[0]
        assert abs(total - dense) / dense < 1e-6, code


def test_schema_and_labels(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> None:
    assert list(survey.columns) == list(SURVEY_COLUMNS)
    assert survey.crs.to_epsg() == 4490
    assert survey["SYNTHETIC"].dtype == bool and survey["SYNTHETIC"].all()
    assert survey["BSM"].is_unique and (survey["BSM"] > 0).all()
    assert (survey["SJNF"] == 2020).all()
    assert set(survey["ZLDWDM"]) == set(units["code"])
    names = dict(zip(units["code"], units["name"], strict=True))
    assert (survey["ZLDWMC"] == survey["ZLDWDM"].map(names)).all()
    assert not survey.duplicated(["ZLDWDM", "TBBH"]).any()
    assert set(survey["CZCSXM"]) <= CZCSXM_VALUES
    # Four units of 1.2–5.7 km² at Chaoyang density: hundreds of parcels, not a handful.
    assert 300 < len(survey) < 3000


def test_tbmj_is_rounded_ellipsoidal_area(survey: gpd.GeoDataFrame) -> None:
    expected = np.round(ellipsoidal_area(survey.geometry), 2)
    assert np.allclose(survey["TBMJ"].to_numpy(), expected, atol=0.011)


def test_parcels_tile_each_unit(survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> None:
    _check_tiling(survey, units)


def test_multipart_unit_parts_all_covered(
    survey: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> None:
    fatou = units.loc[units["name"] == "垡头街道"].geometry.iloc[0]
    assert shapely.get_num_geometries(fatou) == 3
    parcels = survey.loc[survey["ZLDWMC"] == "垡头街道"].geometry.to_numpy()
    for part in shapely.get_parts(fatou):
        missing = shapely.difference(part, shapely.union_all(parcels))
        assert _local_m2([missing])[0] < 0.01


def test_codes_exist_in_sandiao_classification(
    survey: gpd.GeoDataFrame, code_table: dict[str, str]
) -> None:
    assert set(survey["DLBM"]) <= set(code_table)
    assert (survey["DLMC"] == survey["DLBM"].map(code_table)).all()
    prof = load_profile("chaoyang")
    assert prof["code_table"]["names"] == {k: code_table[k] for k in prof["code_table"]["names"]}
    for t in prof["types"].values():
        for z in t["zones"]:
            assert set(map(str, z["classes"])) <= set(code_table)


def test_class_mix_and_czcsxm(survey: gpd.GeoDataFrame) -> None:
    cons = construction_mask(survey["DLBM"])
    street = survey["ZLDWMC"].str.endswith("街道").to_numpy()
    area = survey["TBMJ"].to_numpy()
    street_share = area[street & cons].sum() / area[street].sum()
    fringe_share = area[~street & cons].sum() / area[~street].sum()
    assert street_share > 0.85
    assert 0.3 < fringe_share < 0.9
    assert fringe_share < street_share
    # Streets are urban: their construction carries 201 (城市), never 203 (村庄).
    assert "203" not in set(survey.loc[street, "CZCSXM"])
    assert "203" in set(survey.loc[~street, "CZCSXM"])
    # 城镇村属性码 only on construction-type codes; farmland/forest/water never carry one.
    tagged = survey["CZCSXM"] != ""
    assert construction_mask(survey.loc[tagged, "DLBM"]).all()
    assert (survey.loc[survey["DLBM"].str[:2].isin(["01", "03", "11"]), "CZCSXM"] == "").all()


def test_deterministic(units: gpd.GeoDataFrame, survey: gpd.GeoDataFrame) -> None:
    again = generate_survey(units, unit_field="code", seed=2020)
    assert list(shapely.to_wkb(again.geometry.values)) == list(
        shapely.to_wkb(survey.geometry.values)
    )
    pd.testing.assert_frame_equal(
        again.drop(columns="geometry").reset_index(drop=True),
        survey.drop(columns="geometry").reset_index(drop=True),
    )
    other = generate_survey(units, unit_field="code", seed=2021)
    assert list(shapely.to_wkb(other.geometry.values)) != list(
        shapely.to_wkb(survey.geometry.values)
    )


def test_density_controls(units: gpd.GeoDataFrame) -> None:
    few = generate_survey(units, unit_field="code", seed=3, n_parcels=200)
    assert 180 <= len(few) <= 230
    big = generate_survey(units, unit_field="code", seed=3, mean_parcel_m2=40_000)
    assert 30_000 < big["TBMJ"].mean() < 50_000
    _check_tiling(few, units)
    with pytest.raises(InputError):
        generate_survey(units, unit_field="code", n_parcels=10, mean_parcel_m2=1.0)
    with pytest.raises(InputError):
        generate_survey(units, unit_field="no_such_field")


def test_parcel_sizes_have_a_tail(survey: gpd.GeoDataFrame) -> None:
    street = survey.loc[survey["ZLDWMC"].str.endswith("街道"), "TBMJ"]
    assert 5_000 < street.mean() < 30_000  # about 1–3 ha
    assert street.quantile(0.99) > 3 * street.median()
    assert survey["TBMJ"].min() >= 50  # clip slivers are merged into a neighbour


# ------------------------------------------------------------------------------------------
# evolve_survey
# ------------------------------------------------------------------------------------------


def _plots(survey: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Disjoint plots, one or two per scenario, drawn from the survey itself."""
    cons = construction_mask(survey["DLBM"])
    fringe = ~survey["ZLDWMC"].str.endswith("街道").to_numpy()
    village = survey[cons & fringe & (survey["CZCSXM"] == "203").to_numpy()]
    village = village.sort_values("TBMJ", ascending=False).geometry.to_list()
    street = survey[~fringe].geometry.to_list()
    nonc = survey[~cons & fringe].sort_values("TBMJ", ascending=False).geometry.to_list()
    wanted = [
        ("reduced", village, None),  # a whole parcel: plot edge = parcel edges
        ("reduced", village, 0.0012),  # a disc across several parcels
        ("partial", street[len(street) // 2 :], 0.0015),
        ("not_reduced", village, 0.0010),
        ("rebuild", nonc, None),
    ]
    chosen: list[tuple[object, str]] = []
    for scen, pool, radius in wanted:
        for g in pool:
            plot = g if radius is None else g.centroid.buffer(radius)
            if all(shapely.distance(plot, other) > 0 for other, _ in chosen):
                chosen.append((plot, scen))
                break
    assert len(chosen) == len(wanted)
    return gpd.GeoDataFrame(
        {"scenario": [s for _, s in chosen]}, geometry=[g for g, _ in chosen], crs=4490
    ).set_index(pd.Index([f"P{i}" for i in range(len(chosen))]))


def _class_area_under(survey: gpd.GeoDataFrame, plot, construction: bool) -> float:
    m = construction_mask(survey["DLBM"]) == construction
    pieces = shapely.intersection(survey.geometry.to_numpy()[m], plot)
    return float(_areas(pieces).sum())


@pytest.fixture(scope="module")
def evolved(survey: gpd.GeoDataFrame):
    plots = _plots(survey)
    new, log = evolve_survey(survey, seed=11, year=2021, plots=plots)
    return plots, new, log


def test_evolve_keeps_tiling(evolved, units: gpd.GeoDataFrame, survey) -> None:
    _, new, _ = evolved
    _check_tiling(new, units)
    before = survey.groupby("ZLDWDM")["TBMJ"].sum()
    after = new.groupby("ZLDWDM")["TBMJ"].sum()
    # Not to the cent: splitting a parcel edge adds a vertex, and ellipsoidal_area takes edges as
    # chords in its projection (a 300 m east–west edge carries about 0.3 m² of chord effect).
    assert np.allclose(after[before.index].to_numpy(), before.to_numpy(), rtol=1e-6)


def test_evolve_plot_scenarios(evolved, survey: gpd.GeoDataFrame) -> None:
    plots, new, log = evolved
    shares = load_profile("chaoyang")["evolve"]["plots"]["converted_share"]
    for ref, plot, scen in zip(plots.index, plots.geometry, plots["scenario"], strict=True):
        if scen == "rebuild":
            before = _class_area_under(survey, plot, construction=False)
            after = _class_area_under(new, plot, construction=False)
        else:
            before = _class_area_under(survey, plot, construction=True)
            after = _class_area_under(new, plot, construction=True)
        assert before > 100, ref
        converted = (before - after) / before
        assert converted == pytest.approx(float(shares[scen]), abs=0.02), (ref, scen)
        if scen == "reduced":
            assert converted >= 0.95
        rows = log[log["plot_ref"] == ref]
        if scen == "not_reduced":
            assert rows.empty
            under = survey.geometry.intersects(plot).to_numpy()
            assert set(survey.loc[under, "BSM"]) <= set(new["BSM"])
        else:
            kind = "rebuild" if scen == "rebuild" else "reduction"
            assert (rows["change_type"] == kind).any()
            assert set(rows["change_type"]) <= {kind, "split"}
    # A plot drawn on one parcel splits only that parcel (neighbours sharing its edges are not
    # cut into slivers): one converted piece plus the unconverted remainder of the cut.
    whole = log[log["plot_ref"] == "P0"]
    assert whole["OLD_BSM"].nunique() == 1
    assert sorted(whole["change_type"]) == ["reduction", "split"]


def test_evolve_ids_and_change_log(evolved, survey: gpd.GeoDataFrame) -> None:
    _, new, log = evolved
    assert list(new.columns) == list(SURVEY_COLUMNS)
    assert list(log.columns) == list(CHANGE_LOG_COLUMNS)
    assert new["BSM"].is_unique and not new.duplicated(["ZLDWDM", "TBBH"]).any()
    assert (new["SJNF"] == 2021).all() and new["SYNTHETIC"].all() and log["SYNTHETIC"].all()
    old_bsm = set(survey["BSM"])
    fresh = new.loc[~new["BSM"].isin(old_bsm)]
    assert set(fresh["BSM"]) == set(log["BSM"])
    assert fresh["BSM"].min() > max(old_bsm)
    assert set(log["OLD_BSM"]) <= old_bsm
    assert set(log["change_type"]) <= {
        "reduction",
        "new_construction",
        "rebuild",
        "correction",
        "split",
    }
    # Background change (synthetic rates) happens too, on parcels away from the plots.
    assert (log["scenario"] == "").any()
    # Unchanged parcels keep BSM, geometry and attributes.
    kept = new.loc[new["BSM"].isin(old_bsm)].set_index("BSM")
    prev = survey.set_index("BSM").loc[kept.index]
    assert shapely.equals_exact(kept.geometry.values, prev.geometry.values, 0).all()
    for col in ("DLBM", "CZCSXM", "TBBH", "TBMJ", "ZLDWDM"):
        assert (kept[col] == prev[col]).all(), col
    # Logged codes and areas agree with the new survey.
    joined = log.merge(new[["BSM", "DLBM", "CZCSXM", "TBMJ"]], on="BSM")
    assert (joined["new_DLBM"] == joined["DLBM"]).all()
    assert (joined["new_CZCSXM"] == joined["CZCSXM"]).all()
    assert np.allclose(joined["area_m2"], joined["TBMJ"])
    cons_old = construction_mask(log["old_DLBM"])
    cons_new = construction_mask(log["new_DLBM"])
    red = (log["change_type"] == "reduction").to_numpy()
    assert (cons_old[red] & ~cons_new[red]).all()
    grow = log["change_type"].isin(["new_construction", "rebuild"]).to_numpy()
    assert (~cons_old[grow] & cons_new[grow]).all()


def test_evolve_deterministic_and_background_only(survey: gpd.GeoDataFrame, units) -> None:
    a, la = evolve_survey(survey, seed=5, year=2021)
    b, lb = evolve_survey(survey, seed=5, year=2021)
    assert list(shapely.to_wkb(a.geometry.values)) == list(shapely.to_wkb(b.geometry.values))
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    pd.testing.assert_frame_equal(la, lb)
    assert len(la) > 0
    # Without plots only attributes change: every new parcel has its old parcel's geometry.
    old_geom = survey.set_index("BSM").geometry
    new_geom = a.set_index("BSM").geometry
    assert shapely.equals_exact(
        new_geom.loc[la["BSM"]].values, old_geom.loc[la["OLD_BSM"]].values, 0
    ).all()
    assert len(a) == len(survey)
    # A second year chains on the first.
    c, lc = evolve_survey(a, seed=6, year=2022)
    assert (c["SJNF"] == 2022).all() and lc["BSM"].min() > a["BSM"].max()
    _check_tiling(c, units)


def test_evolve_rejects_bad_plots(survey: gpd.GeoDataFrame) -> None:
    plots = gpd.GeoDataFrame(
        {"scenario": ["demolished"]}, geometry=[survey.geometry.iloc[0]], crs=4490
    )
    with pytest.raises(InputError):
        evolve_survey(survey, seed=1, year=2021, plots=plots)
    with pytest.raises(InputError):
        evolve_survey(survey.drop(columns="DLBM"), seed=1, year=2021)


# ------------------------------------------------------------------------------------------
# Benchmarks helper
# ------------------------------------------------------------------------------------------


def test_generate_benchmark_with_units(units: gpd.GeoDataFrame) -> None:
    s, u = generate_benchmark(1_500, seed=2, units=units)
    assert 1_350 <= len(s) <= 1_700
    assert u.crs.to_epsg() == 4490 and len(u) == len(units)
    assert s["SYNTHETIC"].all()
    _check_tiling(s, units)


def test_generate_benchmark_default_beijing_units() -> None:
    s, u = generate_benchmark(10_000, seed=1)
    assert len(u) == 343
    assert 9_500 <= len(s) <= 10_600
    assert s["ZLDWDM"].nunique() == 343
    assert s["BSM"].is_unique
    # Exact tiling of every Beijing unit, in an additive measure (lon/lat planar area) …
    planar = pd.Series(shapely.area(s.geometry.to_numpy())).groupby(s["ZLDWDM"].to_numpy()).sum()
    unit_planar = shapely.area(u.geometry.to_numpy())
    assert np.allclose(planar.loc[u["code"]].to_numpy(), unit_planar, rtol=1e-9, atol=0)
    # … and TBMJ sums against the units' ellipsoidal areas. 10k parcels over 16,400 km² are
    # ~1.6 km² each with km-long boundary edges, where ellipsoidal_area's chord treatment of
    # edges differs between the unit and its pieces by up to ~1e-5 (see _check_tiling).
    sums = s.groupby("ZLDWDM")["TBMJ"].sum()
    rel = np.abs(sums.loc[u["code"]].to_numpy() / _areas(u.geometry.to_numpy()) - 1)
    assert rel.max() < 1e-4
    share = s.loc[construction_mask(s["DLBM"]), "TBMJ"].sum() / s["TBMJ"].sum()
    assert 0.1 < share < 0.4  # Beijing is mostly mountain forest and plain farmland


def test_default_shared_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YIZHANGTU_SHARED_DIR", str(tmp_path))
    assert default_shared_dir() == tmp_path
    monkeypatch.setenv("YIZHANGTU_SHARED_DIR", str(tmp_path / "missing"))
    with pytest.raises(NotFoundError):
        default_shared_dir()


def test_evolve_protect_exempts_parcels_from_background_change(
    survey: gpd.GeoDataFrame,
) -> None:
    _, log = evolve_survey(survey, seed=5, year=2021)
    changed = survey.set_index("BSM").loc[log["OLD_BSM"].unique()]
    assert len(changed) > 5
    # protect the first five parcels that changed without protection, plus one untouched one
    guard = changed.geometry.iloc[:5].buffer(-1e-6)
    _, log2 = evolve_survey(survey, seed=5, year=2021, protect=guard)
    again = set(log2["OLD_BSM"])
    assert not again & set(changed.index[:5])
    # the rest of the background change is unchanged: protection only removes parcels
    assert set(log["OLD_BSM"]) - set(changed.index[:5]) == again


def test_evolve_rebuild_on_last_years_plot_leaves_no_slivers(survey, units) -> None:
    # a plot drawn 1 m inside its parcel is reduced, then rebuilt the next year with the same
    # outline: the cut runs along the edges of last year's pieces, which used to leave
    # zero-area "split" parcels that no survey import accepts
    cons = construction_mask(survey["DLBM"])
    big = survey[cons].sort_values("TBMJ", ascending=False).iloc[:60:3]
    inset = big.geometry.to_crs(4527).buffer(-1.0, join_style="mitre").to_crs(4490)
    plots = gpd.GeoDataFrame(
        {"scenario": ["reduced"] * len(inset)}, geometry=inset.to_numpy(), crs=4490
    )
    plots = plots[
        [all(not a.intersects(b) for b in plots.geometry[:i]) for i, a in enumerate(plots.geometry)]
    ]
    y1, _ = evolve_survey(survey, seed=3, year=2021, plots=plots)
    y2, log = evolve_survey(y1, seed=4, year=2022, plots=plots.assign(scenario="rebuild"))
    assert (log["change_type"] == "rebuild").sum() >= len(plots)
    for new in (y1, y2):
        assert _areas(new.geometry.to_numpy()).min() >= 1.0
        assert (new["TBMJ"] > 0).all()
    _check_tiling(y2, units)
