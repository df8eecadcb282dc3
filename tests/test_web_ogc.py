"""OGC API Features Parts 1–3 on both backends, read by httpx and by GDAL's OAPIF driver."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from yizhangtu.services import cql2
from yizhangtu.services import features as fsvc
from yizhangtu.services.auth import Scope
from yizhangtu.store import open_store
from yizhangtu.web.testing import LiveServer, client, make_app, seed_workspace, temp_workspace

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
ADMIN = Scope("admin", "city_admin", "11")


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_ogc_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = seed_workspace(uri, streets_path=chaoyang_path)
        app = make_app(uri, base / "reports", ogc_max_limit=200, count_estimate_threshold=100)
        try:
            yield {"app": app, "uri": uri, "base": base, "backend": request.param, **seeded}
        finally:
            app.state.rt.close()


def _all_pages(c, url: str, params: dict | None = None) -> tuple[list[dict], list[dict]]:
    feats, pages = [], []
    r = c.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        feats += body["features"]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            return feats, pages
        r = c.get(nxt[0])


def test_landing_conformance_collections(env):
    c = client(env["app"])
    land = c.get("/ogc").json()
    rels = {link["rel"]: link for link in land["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert c.get(rels["service-desc"]["href"]).status_code == 200
    conf = c.get("/ogc/conformance").json()["conformsTo"]
    for cls in (
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-1/1.0/conf/geojson",
        "ogcapi-features-2/1.0/conf/crs",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/features-filter",
        "cql2/1.0/conf/cql2-text",
    ):
        assert any(cls in x for x in conf)
    cols = c.get("/ogc/collections").json()["collections"]
    assert [x["id"] for x in cols] == ["streets"]  # anonymous: published layers only
    col = c.get("/ogc/collections/streets").json()
    assert col["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/4490" and CRS84 in col["crs"]
    assert "http://www.opengis.net/def/crs/EPSG/0/4527" in col["crs"]
    bbox = col["extent"]["spatial"]["bbox"][0]
    lo = env["streets"].total_bounds
    # the extent contains every feature (GeoPackage R-trees round outwards to float32)
    assert bbox[0] <= lo[0] and bbox[1] <= lo[1] and bbox[2] >= lo[2] and bbox[3] >= lo[3]
    np.testing.assert_allclose(bbox, lo, atol=1e-4)
    assert col["extent"]["temporal"]["interval"][0][0].startswith("2023-12-31")
    q = c.get("/ogc/collections/streets/queryables")
    assert q.headers["content-type"].startswith("application/schema+json")
    props = q.json()["properties"]
    assert (
        props["name"]["type"] == "string"
        and props["label_lon"]["type"] == "number"
        and props["geometry"]["format"] == "geometry-polygon"
    )
    staff = client(env["app"], "town1")
    assert {x["id"] for x in staff.get("/ogc/collections").json()["collections"]} == {
        "streets",
        "survey",
    }
    sq = staff.get("/ogc/collections/survey/queryables").json()["properties"]
    assert sq["BSM"]["type"] == "integer" and sq["SYNTHETIC"]["type"] == "boolean"
    assert "合成数据" in staff.get("/ogc/collections/survey").json()["title"]


def test_items_paging_keyset_and_counts(env):
    c = client(env["app"])
    feats, pages = _all_pages(c, "/ogc/collections/streets/items", {"limit": 7})
    assert len(feats) == 43 and len({f["id"] for f in feats}) == 43
    assert all(p["numberMatched"] == 43 for p in pages) and [
        p["numberReturned"] for p in pages
    ] == [7] * 6 + [1]
    assert "after=" in next(link["href"] for link in pages[0]["links"] if link["rel"] == "next")
    assert sorted(f["properties"]["code"] for f in feats) == sorted(env["streets"]["code"])
    r = c.get("/ogc/collections/streets/items", params={"limit": 100000})
    assert (
        r.status_code == 200 and r.json()["numberReturned"] == 43
    )  # capped at the maximum, never refused
    assert (
        r.headers["content-type"].startswith("application/geo+json")
        and r.headers["content-crs"] == f"<{CRS84}>"
    )
    one = c.get(f"/ogc/collections/streets/items/{feats[0]['id']}")
    assert one.status_code == 200 and one.json()["properties"] == feats[0]["properties"]
    assert c.get("/ogc/collections/streets/items/999999").status_code == 404
    assert c.get("/ogc/collections/streets/items/abc").status_code == 404
    assert c.get("/ogc/collections/streets/items", params={"limit": 0}).status_code == 400
    # geometry round trip: what the service returns is what the store holds
    g = shapely.from_geojson(json.dumps(one.json()["geometry"]))
    with open_store(env["uri"]) as st:
        stored = st.query_features(
            "streets", where_sql=f'"fid" = {st.ph}', params=[feats[0]["id"]]
        )[0].geometry.iloc[0]
    assert g.equals_exact(stored, 1e-9)


_SURVEY_FILTERS = [
    ("DLBM = '0701'", lambda d: d["DLBM"] == "0701"),
    ("DLBM <> '0701' AND TBMJ > 20000", lambda d: (d["DLBM"] != "0701") & (d["TBMJ"] > 20000)),
    (
        "TBMJ >= 50000 OR DLBM LIKE '08%'",
        lambda d: (d["TBMJ"] >= 50000) | d["DLBM"].str.startswith("08"),
    ),
    ("NOT (DLBM IN ('0701', '1004', '05H1'))", lambda d: ~d["DLBM"].isin(["0701", "1004", "05H1"])),
    ("DLBM NOT IN ('0701')", lambda d: d["DLBM"] != "0701"),
    ("NOTE IS NULL", lambda d: d["NOTE"].isna()),
    (
        "NOTE IS NOT NULL AND NOTE LIKE '核查_'",
        lambda d: d["NOTE"].notna() & d["NOTE"].fillna("").str.match(r"^核查.$"),
    ),
    ("TBMJ BETWEEN 10000 AND 20000", lambda d: d["TBMJ"].between(10000, 20000)),
    ("TBMJ NOT BETWEEN 10000 AND 20000", lambda d: ~d["TBMJ"].between(10000, 20000)),
    ("DLMC LIKE '%用地'", lambda d: d["DLMC"].str.endswith("用地")),
    ("ZLDWMC like '建外%'", lambda d: d["ZLDWMC"].str.startswith("建外")),
    ("CASEI(DLBM) = CASEI('05h1')", lambda d: d["DLBM"].str.lower() == "05h1"),
    ("DLBM LIKE '05H_'", lambda d: d["DLBM"].str.match(r"^05H.$")),
    ("DLBM LIKE '05h%'", lambda d: d["DLBM"].str.startswith("05h")),
    ("SYNTHETIC = TRUE AND BSM < 50", lambda d: d["SYNTHETIC"] & (d["BSM"] < 50)),
    ('"BSM" > 100 AND NOT NOTE IS NULL', lambda d: (d["BSM"] > 100) & d["NOTE"].notna()),
    ("S_INTERSECTS(geometry, BBOX(116.43, 39.90, 116.46, 39.92))", "bbox"),
    (
        "S_INTERSECTS(geometry, POLYGON((116.43 39.90, 116.46 39.90, 116.46 39.92, 116.43 39.90)))",
        "triangle",
    ),
    (
        "NOT S_INTERSECTS(geometry, BBOX(116.43, 39.90, 116.46, 39.92)) AND DLBM LIKE '0%'",
        "not_bbox",
    ),
    ("S_INTERSECTS(geometry, BBOX(116.43, 39.90, 116.46, 39.92)) OR TBMJ > 100000", "bbox_or"),
]


def _truth(df: gpd.GeoDataFrame, rule) -> set[int]:
    box = shapely.box(116.43, 39.90, 116.46, 39.92)
    tri = shapely.Polygon([(116.43, 39.90), (116.46, 39.90), (116.46, 39.92)])
    if rule == "bbox":
        mask = df.intersects(box)
    elif rule == "triangle":
        mask = df.intersects(tri)
    elif rule == "not_bbox":
        mask = ~df.intersects(box) & df["DLBM"].str.startswith("0")
    elif rule == "bbox_or":
        mask = df.intersects(box) | (df["TBMJ"] > 100000)
    else:
        mask = rule(df)
    return set(df.loc[np.asarray(mask, dtype=bool), "BSM"].astype(int))


@pytest.mark.parametrize("text,rule", _SURVEY_FILTERS, ids=[f[0][:40] for f in _SURVEY_FILTERS])
def test_cql2_filters_match_ground_truth(env, text, rule):
    survey = env["survey_2021"]
    mine = survey[survey["ZLDWDM"].str.startswith("110105")]
    c = client(env["app"], "district")
    feats, pages = _all_pages(
        c,
        "/ogc/collections/survey/items",
        {"filter": text, "filter-lang": "cql2-text", "limit": 200},
    )
    got = {f["properties"]["BSM"] for f in feats}
    want = _truth(mine, rule)
    assert want or "05h%" in text, "the filter should select something"
    assert got == want  # LIKE is case-sensitive on both backends
    if "numberMatched" in pages[0]:
        assert pages[0]["numberMatched"] == len(want) or pages[0].get("numberMatchedEstimated")


def test_filters_are_pushed_down_into_sql(env):
    with open_store(env["uri"]) as st:
        plan = fsvc.plan_features(st, ADMIN, "survey", filter_="DLBM LIKE '07%' AND TBMJ > 1000")
        assert (
            plan.exact
            and "TBMJ" in plan.where_sql
            and ("LIKE" in plan.where_sql or "GLOB" in plan.where_sql)
        )
        rows = st.query_feature_rows(
            "survey", where_sql=plan.where_sql, params=plan.params, jurisdictions=plan.jurisdictions
        )
        assert (
            len(rows)
            == int(
                (
                    env["survey_2021"]["DLBM"].str.startswith("07")
                    & (env["survey_2021"]["TBMJ"] > 1000)
                ).sum()
            )
            > 0
        )
        assert all(r[rows.columns.index("DLBM")].startswith("07") for r in rows.rows)
        plan = fsvc.plan_features(
            st,
            ADMIN,
            "survey",
            filter_="S_INTERSECTS(geometry, BBOX(116.43, 39.90, 116.46, 39.92))",
        )
        if env["backend"] == "postgis":
            assert plan.exact and "ST_Intersects" in plan.where_sql
        else:  # R-tree candidates in SQLite, refined in memory
            assert not plan.exact and "rtree_survey__s" in plan.where_sql
        # a spatial test under NOT cannot use the R-tree superset
        plan = fsvc.plan_features(
            st,
            ADMIN,
            "survey",
            filter_="NOT S_INTERSECTS(geometry, BBOX(116.43, 39.90, 116.46, 39.92))",
        )
        assert env["backend"] == "postgis" or "rtree" not in plan.where_sql


@pytest.mark.parametrize(
    "flt,msg",
    [
        ("DLBM = ", "CQL2"),
        ("DLBM == '0101'", "CQL2"),
        ("(DLBM = '0101'", "')'"),
        ("NOSUCH = 1", "属性不存在"),
        ("DLBM = 101", "类型不匹配"),
        ("TBMJ LIKE '1%'", "文本"),
        ("S_INTERSECTS(geometry, POLYGON((1 2, 3)))", "WKT"),
        ("S_TOUCHES(geometry, BBOX(1,2,3,4))", "暂不支持"),
        ("DLBM = 'x' AND", "CQL2"),
        ("TBMJ + 1 > 2", "CQL2"),
        ("DATE('2020-13-45') > SJNF", "日期"),
        ("'" * 3, "CQL2"),
    ],
)
def test_malformed_cql2_is_400_in_chinese(env, flt, msg):
    r = client(env["app"], "admin").get("/ogc/collections/survey/items", params={"filter": flt})
    assert r.status_code == 400, r.text
    assert msg in r.json()["message"] or msg in r.json().get("hint", "")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["message"])


def test_bad_parameters_are_400(env):
    c = client(env["app"])
    for params, key in [
        ({"bbox": "200,0,201,1"}, "bbox_out_of_range"),
        ({"bbox": "116,40,117,39"}, "bbox_out_of_range"),
        ({"bbox": "1,2,3"}, "bad_bbox"),
        ({"bbox": "a,b,c,d"}, "bad_bbox"),
        ({"bbox": "0,0,nan,1"}, "bad_bbox"),
        ({"bbox": "116,39,117,40", "bbox-crs": "EPSG:2000"}, "unsupported_crs"),
        ({"crs": "EPSG:99999"}, "unsupported_crs"),
        ({"filter": "code = '1'", "filter-lang": "cql2-json"}, "bad_filter_lang"),
        ({"datetime": "yesterday"}, "bad_datetime"),
        ({"datetime": "2021-01-01/2020-01-01"}, "bad_datetime"),
        ({"nosuchparam": "1"}, "unknown_parameter"),
        ({"f": "html"}, "bad_format"),
    ]:
        r = c.get("/ogc/collections/streets/items", params=params)
        assert r.status_code == 400 and r.json()["error"] == key, (params, r.text)


def test_crs_and_axis_order(env):
    c = client(env["app"])
    base = c.get("/ogc/collections/streets/items", params={"limit": 1}).json()["features"][0]
    lon, lat = base["geometry"]["coordinates"][0][0][0]
    assert 116 < lon < 117 and 39 < lat < 41
    for code in ("4490", "4326"):
        r = c.get(
            "/ogc/collections/streets/items",
            params={"limit": 1, "crs": f"http://www.opengis.net/def/crs/EPSG/0/{code}"},
        )
        assert r.headers["content-crs"] == f"<http://www.opengis.net/def/crs/EPSG/0/{code}>"
        a, b = r.json()["features"][0]["geometry"]["coordinates"][0][0][0]
        assert (a, b) == pytest.approx((lat, lon), abs=1e-6)  # EPSG axis order: latitude first
    r = c.get(
        "/ogc/collections/streets/items", params={"limit": 1, "crs": "EPSG:4527"}
    )  # CGCS2000 GK zone 39
    north, east = r.json()["features"][0]["geometry"]["coordinates"][0][0][0]
    from pyproj import Transformer

    e2, n2 = Transformer.from_crs(4490, 4527, always_xy=True).transform(lon, lat)
    assert (north, east) == pytest.approx((n2, e2), abs=1e-3) and 39_000_000 < east < 40_000_000
    # bbox in EPSG:4326 is latitude-first and selects the same features as in CRS84
    a = {
        f["id"]
        for f in _all_pages(
            c, "/ogc/collections/streets/items", {"bbox": "116.43,39.90,116.46,39.92", "limit": 50}
        )[0]
    }
    b = {
        f["id"]
        for f in _all_pages(
            c,
            "/ogc/collections/streets/items",
            {"bbox": "39.90,116.43,39.92,116.46", "bbox-crs": "EPSG:4326", "limit": 50},
        )[0]
    }
    truth = set(
        env["streets"].index[env["streets"].intersects(shapely.box(116.43, 39.90, 116.46, 39.92))]
        + 1
    )
    assert a == b == truth


def test_datetime_selects_snapshots_by_observation_date(env):
    c = client(env["app"], "admin")
    n20, n21 = len(env["survey"]), len(env["survey_2021"])
    for dt, want in [
        ("2021-06-30", n20),
        ("2020-12-31", n20),
        ("2022-01-01T00:00:00Z", n21),
        ("../2020-12-31", n20),
        ("2021-01-01/..", n21),
        ("2019-01-01", 0),
    ]:
        feats, pages = _all_pages(
            c, "/ogc/collections/survey/items", {"datetime": dt, "limit": 200}
        )
        assert len(feats) == want, dt
        if want:
            assert pages[0]["snapshot"]["label"] == ("2020" if want == n20 else "2021")
    feats, _ = _all_pages(c, "/ogc/collections/survey/items", {"snapshot": "2020", "limit": 200})
    assert len(feats) == n20
    assert (
        c.get(
            "/ogc/collections/survey/items", params={"snapshot": "2020", "datetime": "2021-01-01"}
        ).status_code
        == 400
    )


def test_jurisdiction_applies_to_items_and_single_features(env):
    town = client(env["app"], "town1")
    feats, _ = _all_pages(town, "/ogc/collections/survey/items", {"limit": 200})
    assert feats and {f["properties"]["ZLDWDM"] for f in feats} == {"110105001000"}
    other = env["survey_2021"].reset_index(drop=True)
    with open_store(env["uri"]) as st:
        rows = st.query_feature_rows(
            "survey", where_sql=f'"ZLDWDM" = {st.ph}', params=["110105002000"], limit=1
        )
    assert town.get(f"/ogc/collections/survey/items/{rows.fids[0]}").status_code == 404
    assert (
        client(env["app"], "district")
        .get(f"/ogc/collections/survey/items/{rows.fids[0]}")
        .status_code
        == 200
    )
    r = town.get("/ogc/collections/survey/items", params={"ZLDWDM": "110105002000"})
    assert (
        r.status_code == 200 and r.json()["numberReturned"] == 0
    )  # direct queryable, still inside the jurisdiction
    r = town.get("/ogc/collections/survey/items", params={"ZLDWDM": "110105001000", "limit": 200})
    assert r.json()["numberReturned"] == len(feats)
    assert len(other) > 0


def test_estimated_counts_on_large_layers(env):
    # survey (360 features) is above this module's threshold (100); any filter, even the
    # jurisdiction's, makes its count an estimate (PostGIS planner) or omits it (SQLite)
    c = client(env["app"], "admin")
    body = c.get("/ogc/collections/survey/items", params={"limit": 1, "filter": "TBMJ > 0"}).json()
    if env["backend"] == "postgis":
        assert body["numberMatchedEstimated"] is True and body["numberMatched"] > 0
    else:
        assert "numberMatched" not in body
    assert body["numberReturned"] == 1 and any(link["rel"] == "next" for link in body["links"])
    # unfiltered: the snapshot's recorded count, exact and free
    r = client(env["app"]).get("/ogc/collections/streets/items", params={"limit": 1}).json()
    assert r["numberMatched"] == 43 and "numberMatchedEstimated" not in r
    # small layers are counted exactly even when filtered
    r = (
        client(env["app"])
        .get("/ogc/collections/streets/items", params={"filter": "code LIKE '110105%'", "limit": 1})
        .json()
    )
    assert r["numberMatched"] == 43 and "numberMatchedEstimated" not in r


def test_cql2_parser_units():
    node = cql2.parse(
        "a = 1 AND (b LIKE 'x%' OR NOT c IS NULL) AND S_DISJOINT(geometry, BBOX(0,0,1,1))"
    )
    assert (
        isinstance(node, cql2.And)
        and cql2.properties(node) == {"a", "b", "c"}
        and cql2.has_spatial(node)
    )
    c = cql2.compile_sql(
        cql2.parse("\"名称\" LIKE '朝阳%' AND n IN (1, 2.5)"),
        schema={"名称": "str", "n": "float"},
        ph="%s",
        dialect="postgresql",
    )
    assert c.sql == '(("名称" LIKE %s) AND ("n" IN (%s, %s)))' and c.params == ("朝阳%", 1.0, 2.5)
    c = cql2.compile_sql(
        cql2.parse("name LIKE 'a_b\\%*'"), schema={"name": "str"}, ph="?", dialect="sqlite"
    )
    assert "GLOB" in c.sql and c.params == ("a?b%[*]",)
    with pytest.raises(Exception) as e:
        cql2.parse("(" * 100 + "a = 1" + ")" * 100)
    assert "嵌套" in str(e.value)


# -- a real client: GDAL's OAPIF driver ------------------------------------------------------------

needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin not installed")


def _gdal_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["GDAL_HTTP_TIMEOUT"] = "30"
    return env


@needs_gdal
def test_gdal_ogrinfo_lists_and_ogr2ogr_copies(env, tmp_path):
    with LiveServer(env["app"]) as srv:
        url = f"OAPIF:{srv.url}/ogc"
        out = subprocess.run(
            ["ogrinfo", "-ro", "-q", url],
            capture_output=True,
            text=True,
            env=_gdal_env(),
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert (
            "streets" in out.stdout and "survey" not in out.stdout
        )  # anonymous: published layers only
        dst = tmp_path / "copy.gpkg"
        out = subprocess.run(
            ["ogr2ogr", "-f", "GPKG", str(dst), url, "streets"],
            capture_output=True,
            text=True,
            env=_gdal_env(),
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        # a bearer token opens the unpublished layer, inside the user's jurisdiction
        tok = (
            client(env["app"])
            .post("/api/auth/token", json={"username": "town1", "password": "test-password-123"})
            .json()["access_token"]
        )
        genv = _gdal_env() | {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {tok}"}
        dst2 = tmp_path / "survey.gpkg"
        out = subprocess.run(
            ["ogr2ogr", "-f", "GPKG", str(dst2), url, "survey"],
            capture_output=True,
            text=True,
            env=genv,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    got = pyogrio.read_dataframe(dst)
    src = env["streets"]
    assert len(got) == len(src) == 43
    cols = [c for c in src.columns if c != "geometry"]
    assert set(cols) <= set(got.columns)
    a = got.sort_values("code").reset_index(drop=True)
    b = src.sort_values("code").reset_index(drop=True)
    for col in cols:
        if b[col].dtype.kind == "f":
            np.testing.assert_allclose(a[col].astype(float), b[col].astype(float))
        else:
            assert list(a[col].astype(str)) == list(b[col].astype(str)), col
    assert all(x.equals_exact(y, 1e-9) for x, y in zip(a.geometry, b.geometry, strict=True))
    sv = pyogrio.read_dataframe(dst2)
    want = env["survey_2021"]
    assert len(sv) == int(want["ZLDWDM"].str.startswith("110105001").sum()) and set(
        sv["ZLDWDM"]
    ) == {"110105001000"}
