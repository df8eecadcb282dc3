"""Tests for yizhangtu.geo.offsets (GCJ-02 / BD-09) on the real Chaoyang street boundaries."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from yizhangtu.errors import CRSError
from yizhangtu.geo.offsets import (
    OffsetFinding,
    bd09_to_gcj02,
    bd09_to_gcj02_xy,
    bd09_to_wgs84,
    detect_offset,
    gcj02_to_bd09,
    gcj02_to_bd09_xy,
    gcj02_to_wgs84,
    gcj02_to_wgs84_xy,
    in_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
    wgs84_to_gcj02_xy,
)

DATA = (
    Path(__file__).parent
    / "data"
    / "bad"
    / "_source"
    / "beijing_chaoyang_subdistricts_wgs84.geojson"
)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "boundaries"


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA)


def _shift(gdf: gpd.GeoDataFrame, fn) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out["geometry"] = fn(out.geometry)
    return out


def test_offset_size_in_beijing() -> None:
    # shared/data/README.md measured the Amap (GCJ-02) offset in Beijing as ≈ (+0.006°, +0.0013°).
    lon, lat = wgs84_to_gcj02_xy(np.array([116.45]), np.array([39.93]))
    assert 0.005 < lon[0] - 116.45 < 0.007
    assert 0.0010 < lat[0] - 39.93 < 0.0016
    blon, blat = gcj02_to_bd09_xy(lon, lat)
    assert 0.006 < blon[0] - lon[0] < 0.007 and 0.0055 < blat[0] - lat[0] < 0.0065


def test_inverses_are_exact_across_china() -> None:
    lon, lat = np.meshgrid(np.linspace(74, 134.5, 61), np.linspace(4.5, 53, 49))
    lon, lat = lon.ravel(), lat.ravel()
    glon, glat = wgs84_to_gcj02_xy(lon, lat)
    wlon, wlat = gcj02_to_wgs84_xy(glon, glat)
    assert max(np.abs(wlon - lon).max(), np.abs(wlat - lat).max()) < 1e-7
    blon, blat = gcj02_to_bd09_xy(glon, glat)
    g2lon, g2lat = bd09_to_gcj02_xy(blon, blat)
    assert max(np.abs(g2lon - glon).max(), np.abs(g2lat - glat).max()) < 1e-7
    # the shift is real everywhere in the grid (no silent identity inside China)
    assert (np.hypot(glon - lon, glat - lat) > 1e-4).all()


def test_identity_outside_china() -> None:
    # The envelope is the customary rectangle (lon 73.66–135.05, lat 3.86–53.55): Tokyo and
    # Singapore fall outside it; Bangkok or Seoul would fall inside (documented limitation).
    lon = np.array([2.35, -74.0, 139.7, 103.85])  # Paris, New York, Tokyo, Singapore
    lat = np.array([48.85, 40.7, 35.7, 1.29])
    assert not in_china(lon, lat).any()
    for fn in (wgs84_to_gcj02_xy, gcj02_to_wgs84_xy, gcj02_to_bd09_xy, bd09_to_gcj02_xy):
        x, y = fn(lon, lat)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)


def test_geometry_inputs(streets: gpd.GeoDataFrame) -> None:
    g = streets.geometry.iloc[:5]
    g.index = [10, 11, 12, 13, 14]
    out = wgs84_to_gcj02(g)
    assert (
        isinstance(out, gpd.GeoSeries)
        and list(out.index) == [10, 11, 12, 13, 14]
        and out.crs == g.crs
    )
    arr = wgs84_to_gcj02(np.asarray(g.values))
    assert isinstance(arr, np.ndarray) and shapely.equals_exact(arr, out.values, 0).all()
    one = gcj02_to_wgs84(out.iloc[0])
    assert shapely.equals_exact(one, g.iloc[0], 1e-7)
    back = bd09_to_wgs84(wgs84_to_bd09(g))
    assert (
        np.abs(shapely.get_coordinates(back.values) - shapely.get_coordinates(g.values)).max()
        < 1e-7
    )
    assert shapely.equals_exact(bd09_to_gcj02(gcj02_to_bd09(out)).values, out.values, 1e-7).all()
    z = shapely.force_3d(g.iloc[0], 12.5)
    z_out = wgs84_to_gcj02(z)
    assert shapely.has_z(z_out) and set(shapely.get_coordinates(z_out, include_z=True)[:, 2]) == {
        12.5
    }
    with pytest.raises(CRSError) as exc:
        wgs84_to_gcj02(g.to_crs(4527))
    assert exc.value.key == "offset_needs_lonlat"


@pytest.mark.parametrize("rows", [slice(0, 43), slice(0, 8), slice(20, 26), [3], [19]], ids=str)
def test_detect_offset_on_chaoyang(streets: gpd.GeoDataFrame, rows: object) -> None:
    sub = streets.iloc[rows]  # type: ignore[index]
    none = detect_offset(sub, streets)
    gcj = detect_offset(_shift(sub, wgs84_to_gcj02), streets)
    bd = detect_offset(_shift(sub, wgs84_to_bd09), streets)
    assert isinstance(none, OffsetFinding)
    assert none.kind == "none" and none.overlap_raw > 0.95 and "未发现" in none.message_zh
    assert (
        gcj.kind == "gcj02"
        and gcj.overlap_if_gcj02 > 0.95 > gcj.overlap_raw
        and "--from-gcj02" in gcj.message_zh
    )
    assert (
        bd.kind == "bd09"
        and bd.overlap_if_bd09 > 0.95 > bd.overlap_raw
        and "--from-bd09" in bd.message_zh
    )
    assert gcj.overlap_if_gcj02 > gcj.overlap_if_bd09


def test_detect_offset_reference_in_other_crs(streets: gpd.GeoDataFrame) -> None:
    shifted = _shift(streets.iloc[5:15], wgs84_to_gcj02)
    found = detect_offset(shifted, streets.to_crs(4527))
    assert found.kind == "gcj02"
    assert found.to_dict()["kind"] == "gcj02"


def test_detect_offset_cannot_judge_small_plots(streets: gpd.GeoDataFrame) -> None:
    gk = streets.to_crs(4527)
    plots = gpd.GeoDataFrame(
        geometry=gk.geometry.representative_point().buffer(60, cap_style="square"), crs=4527
    )
    found = detect_offset(plots.to_crs(4326), streets)
    assert found.kind == "none" and "无法判断" in found.message_zh


@pytest.mark.skipif(
    not (SHARED / "beijing_districts_amap_wgs84.geojson").exists(), reason="shared data absent"
)
def test_independent_amap_outline(streets: gpd.GeoDataFrame) -> None:
    # The Amap district outline (GCJ-02 at source, converted to WGS84 with the public formula by
    # the data curators) against the independent Tianditu-based streets: as converted it fits;
    # shifted back to GCJ-02 it is detected as such.
    amap = gpd.read_file(SHARED / "beijing_districts_amap_wgs84.geojson")
    chaoyang = amap[amap["name"] == "朝阳区"]
    assert len(chaoyang) == 1
    assert detect_offset(chaoyang, streets).kind == "none"
    found = detect_offset(_shift(chaoyang, wgs84_to_gcj02), streets)
    assert found.kind == "gcj02" and found.overlap_if_gcj02 > 0.95
