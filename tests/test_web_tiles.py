"""Vector tiles on both backends: content, jurisdiction, cache, bad coordinates; the encoder."""

from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from yizhangtu.services.tiles import TileCache, encode_mvt, simplify_tolerance, tile_bounds
from yizhangtu.store import LayerSpec, open_store
from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace


def _tile_for(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_tiles_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = seed_workspace(uri, streets_path=chaoyang_path)
        app = make_app(uri, base / "reports", tile_max_zoom=22)
        try:
            yield {"app": app, "uri": uri, "backend": request.param, **seeded}
        finally:
            app.state.rt.close()


def test_tile_content_matches_the_layer(env):
    c = client(env["app"])
    lon, lat = env["streets"].geometry.iloc[0].representative_point().coords[0]
    z, x, y = _tile_for(lon, lat, 14)
    r = c.get(f"/tiles/streets/{z}/{x}/{y}.mvt")
    assert (
        r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    )
    layer = _decode(r.content)["streets"]
    assert layer["extent"] == 4096
    feats = layer["features"]
    # every street whose polygon touches the tile (with its buffer), and nothing else
    b = tile_bounds(z, x, y)
    import pyproj

    tr = pyproj.Transformer.from_crs(3857, 4326, always_xy=True)
    pad = (b[2] - b[0]) * 64 / 4096
    lo = tr.transform(b[0] - pad, b[1] - pad)
    hi = tr.transform(b[2] + pad, b[3] + pad)
    expected = set(np.nonzero(env["streets"].intersects(shapely.box(*lo, *hi)).to_numpy())[0] + 1)
    got = {f["id"] for f in feats}
    assert got <= expected and len(got) >= len(expected) - 1  # a sliver may vanish when quantised
    f = next(f for f in feats if f["id"] == 1) if 1 in got else feats[0]
    assert {"code", "name", "label_lon"} <= set(f["properties"])
    assert isinstance(f["properties"]["label_lon"], float) and f["properties"]["name"]
    geom = shape(f["geometry"])
    assert geom.is_valid and geom.area > 0
    # below z14 tiles carry only the catalogued id/code/jurisdiction fields
    low = c.get("/tiles/streets/{}/{}/{}.mvt".format(*_tile_for(lon, lat, 12)))
    feats12 = _decode(low.content)["streets"]["features"]
    assert feats12 and all(set(f["properties"]) == {"code"} for f in feats12)


def test_out_of_range_tiles_are_400(env):
    c = client(env["app"])
    for path in (
        "/tiles/streets/23/0/0.mvt",
        "/tiles/streets/3/8/0.mvt",
        "/tiles/streets/3/0/8.mvt",
        "/tiles/streets/3/-1/0.mvt",
        "/tiles/streets/-1/0/0.mvt",
    ):
        r = c.get(path)
        assert (
            r.status_code == 400
            and r.json()["error"] == "tile_out_of_range"
            and "超出" in r.json()["message"]
        ), path
    assert c.get("/tiles/streets/3/a/0.mvt").status_code == 400
    assert (
        c.get("/tiles/survey/12/3372/1552.mvt").status_code == 404
    )  # unpublished: not for anonymous users
    assert c.get("/tiles/nolayer/12/3372/1552.mvt").status_code == 404


def test_tiles_follow_the_jurisdiction(env):
    lon, lat = env["survey"].union_all().centroid.coords[0]
    z, x, y = _tile_for(lon, lat, 13)
    town = client(env["app"], "town1")
    district = client(env["app"], "district")
    t1 = _decode(town.get(f"/tiles/survey/{z}/{x}/{y}.mvt").content)
    td = _decode(district.get(f"/tiles/survey/{z}/{x}/{y}.mvt").content)
    zl_town = {f["properties"]["ZLDWDM"] for f in t1.get("survey", {}).get("features", [])}
    zl_dist = {f["properties"]["ZLDWDM"] for f in td["survey"]["features"]}
    assert zl_town <= {"110105001000"}
    assert len(zl_dist) > 1 and len(td["survey"]["features"]) > len(
        t1.get("survey", {}).get("features", [])
    )
    assert town.get(f"/tiles/survey/{z}/{x}/{y}.mvt").headers["cache-control"].startswith("private")


def test_cache_etag_snapshot_pinning_and_invalidation(env):
    admin = client(env["app"], "admin")
    lon, lat = env["survey"].union_all().centroid.coords[0]
    z, x, y = _tile_for(lon, lat, 12)
    url = f"/tiles/survey/{z}/{x}/{y}.mvt"
    r1 = admin.get(url)
    r2 = admin.get(url)
    assert r2.headers["x-tile-cache"] == "hit" and r1.content == r2.content
    assert admin.get(url, headers={"If-None-Match": r2.headers["etag"]}).status_code == 304
    old = {f["id"] for f in _decode(r1.content)["survey"]["features"]}
    pinned = admin.get(url, params={"snapshot": "2020"})
    assert "immutable" in pinned.headers["cache-control"]
    assert len(_decode(pinned.content)["survey"]["features"]) >= len(old)
    # a new snapshot lands: the current tile changes at once, old entries are evicted
    with open_store(env["uri"]) as st:
        spec = LayerSpec(
            name="survey",
            kind="survey",
            title="朝阳区三调图斑 (合成数据)",
            jurisdiction_field="ZLDWDM",
            synthetic=True,
            code_field="DLBM",
            id_field="BSM",
        )
        st.write_snapshot(spec, [env["survey_2021"].iloc[::2]], label="2022", actor="test")
    cache = env["app"].state.rt.tiles
    r3 = admin.get(url)
    assert r3.headers["x-tile-cache"] == "miss" and r3.headers["etag"] != r1.headers["etag"]
    new = {f["id"] for f in _decode(r3.content)["survey"]["features"]}
    assert new != old and len(new) < len(old)
    assert not [k for k in cache._data if k[0] == "survey" and k[1] == r1.headers.get("x-snapshot")]
    stale = [k for k in cache._data if k[0] == "survey" and k[2] == int(r1.headers["x-snapshot"])]
    assert not stale
    tj = admin.get("/tiles/survey.json").json()
    assert (
        tj["tiles"][0].endswith("/tiles/survey/{z}/{x}/{y}.mvt")
        and tj["vector_layers"][0]["fields"]["TBMJ"] == "Number"
    )


def test_numpy_encoder_agrees_with_st_asmvt(env):
    """On PostGIS, the same tile from ST_AsMVT and from the numpy encoder (used for GeoPackage)."""
    from yizhangtu.services.tiles import _storage_bbox, encode_from_rows, simplify_tolerance

    lon, lat = env["survey"].union_all().centroid.coords[0]
    with open_store(env["uri"]) as st:
        snap = st.resolve_snapshot("survey")
        for zoom in (12, 14, 16):
            tile = _tile_for(lon, lat, zoom)
            b = tile_bounds(*tile)
            pad = (b[2] - b[0]) * 64 / 4096
            bbox = _storage_bbox((b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad), snap.crs)
            tol = simplify_tolerance(zoom)
            ours = _decode(
                encode_from_rows(
                    st,
                    "survey",
                    snap.id,
                    tile,
                    bbox,
                    columns=None,
                    jurisdictions=None,
                    tolerance=tol,
                )
            )
            ours_f = {f["id"]: f for f in ours.get("survey", {}).get("features", [])}
            assert ours_f
            for f in ours_f.values():
                assert shape(f["geometry"]).is_valid and f["properties"]["BSM"] > 0
            db = st.render_mvt("survey", snapshot=snap.id, tile=tile, bbox=bbox, tolerance=tol)
            if db is None:
                assert env["backend"] == "gpkg"
                continue
            theirs = {f["id"]: f for f in _decode(db)["survey"]["features"]}
            common = set(ours_f) & set(theirs)
            # features that collapse below a pixel may be kept by one encoder and not the other
            assert len(common) >= 0.9 * max(len(ours_f), len(theirs))
            for i in common:
                assert ours_f[i]["properties"] == theirs[i]["properties"]
            # geometry: clipping at the buffer edge and simplification differ in detail only
            a = sum(shape(ours_f[i]["geometry"]).area for i in common)
            t = sum(shape(theirs[i]["geometry"]).area for i in common)
            assert a == pytest.approx(t, rel=0.03)


# -- the encoder ----------------------------------------------------------------------------


def test_encoder_winding_holes_lines_points_and_values():
    b = tile_bounds(10, 843, 388)
    w = b[2] - b[0]
    ox, oy = b[0] + w * 0.2, b[1] + w * 0.2
    outer = shapely.box(ox, oy, ox + w * 0.5, oy + w * 0.5)
    hole = shapely.box(ox + w * 0.1, oy + w * 0.1, ox + w * 0.2, oy + w * 0.2)
    donut = shapely.Polygon(
        outer.exterior.coords[::-1], [hole.exterior.coords]
    )  # wrong winding on purpose
    line = shapely.LineString(
        [(ox, oy), (ox + w * 0.3, oy + w * 0.1), (ox + w * 0.3, oy + w * 0.1)]
    )
    pts = shapely.MultiPoint([(ox, oy), (ox + w * 0.05, oy + w * 0.05)])
    far = shapely.box(b[2] + w, b[3] + w, b[2] + 2 * w, b[3] + 2 * w)  # outside the tile: dropped
    props = {
        "n": [1, -7, None, 3],
        "v": [1.5, float("nan"), 2.0, 0.0],
        "ok": [True, False, None, True],
        "s": ["甲", "乙", None, "丁"],
    }
    data = encode_mvt("t", [donut, line, pts, far], props, [10, 11, 12, 13], b)
    layer = _decode(data)["t"]
    feats = {f["id"]: f for f in layer["features"]}
    assert set(feats) == {10, 11, 12}
    poly = shape(feats[10]["geometry"])
    assert poly.is_valid and len(poly.interiors) == 1
    assert poly.area == pytest.approx((2048**2) - (409.6**2), rel=0.01)
    assert feats[10]["properties"] == {"n": 1, "v": 1.5, "ok": True, "s": "甲"}
    assert feats[11]["properties"] == {"n": -7, "ok": False, "s": "乙"}
    assert (
        feats[11]["geometry"]["type"] == "LineString"
        and len(feats[11]["geometry"]["coordinates"]) == 2
    )  # duplicate dropped
    assert feats[12]["geometry"]["type"] == "MultiPoint" and feats[12]["properties"] == {"v": 2.0}
    # winding as MVT requires: exterior positive area in tile coordinates (y down), holes negative
    raw = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True, "geojson": False})
    assert raw["t"]["features"]
    assert encode_mvt("t", [far], None, [1], b) == b""


def test_simplification_by_zoom():
    z14 = (14, 13490, 6208)
    b14 = tile_bounds(*z14)
    circle = shapely.Point((b14[0] + b14[2]) / 2, (b14[1] + b14[3]) / 2).buffer(1000, quad_segs=256)
    counts = []
    for z, x, y in ((10, 13490 >> 4, 6208 >> 4), z14):
        data = encode_mvt(
            "c", [circle], None, [1], tile_bounds(z, x, y), tolerance=simplify_tolerance(z)
        )
        g = _decode(data)["c"]["features"][0]["geometry"]
        assert g["type"] == "Polygon"
        counts.append(len(g["coordinates"][0]))
    assert simplify_tolerance(10) == pytest.approx(simplify_tolerance(14) * 16)
    assert counts[0] < counts[1] / 4, counts


def test_cache_is_bounded_and_evicts_old_snapshots():
    cache = TileCache(max_bytes=1000)
    for i in range(20):
        cache.put(("a", "h1", i), b"x" * 100)
    assert cache.size_bytes <= 1000 and len(cache) == 10
    cache.note_current("a", "h1")
    cache.put(("b", "h9", 0), b"y" * 10)
    cache.note_current("a", "h2")
    assert all(k[0] != "a" for k in cache._data) and ("b", "h9", 0) in cache._data
