"""Conformance REST API (管控线与多规合一) on both backends: jobs, red-line upload, transmission.

The control lines, zones, plan, survey, units and registered red lines are the small synthetic
layers of tests/test_conformance_store.py (CGCS2000 zone 39 around easting 426 600 m, northing
4 399 000 m; no jurisdiction field, so every staff user sees them whole), added to the seeded
web workspace (yizhangtu.web.testing.seed_workspace), whose ``survey`` layer carries a
jurisdiction field over four Chaoyang streets (110105001–004).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from yizhangtu.services.conformance import (
    check_redline_file,
    conflicts_report,
    lines_report,
    load_packs,
    transmission_report,
)
from yizhangtu.store import LayerSpec, Store, open_store
from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace

DATA = Path(__file__).resolve().parent / "data" / "conformance"
GOOD = DATA / "redline_good.txt"
GK = "EPSG:4548"
E0, N0 = 426_600.0, 4_399_000.0
AT = date(2024, 6, 30)
API = "/api/conformance"


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(E0 + x0, N0 + y0, E0 + x1, N0 + y1)


def frame(geoms, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        cols, geometry=[shapely.MultiPolygon([g]) for g in geoms], crs=GK
    ).to_crs(4490)


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _put(st: Store, name: str, kind: str, gdf: gpd.GeoDataFrame, **kw) -> None:
    st.write_snapshot(
        LayerSpec(name=name, kind=kind, title=kw.pop("title", name), synthetic=True, **kw),
        [gdf],
        label="2024",
        actor="tester",
        geometry_type="MultiPolygon",
    )


def populate(st: Store) -> None:
    """Control lines, zones, a plan, a survey, units and registered red lines (合成数据)."""
    _put(st, "eco_redline", "control_line", frame([box(-100, -100, 60, 150)], name=["红线"]))
    # farmland overlaps the red line by 40 × 50 m (a conflict of the control lines)
    _put(st, "basic_farmland", "control_line", frame([box(20, -300, 400, -50)], name=["农田"]))
    _put(
        st,
        "urban_boundary",
        "control_line",
        frame(
            [box(-50, 150, 600, 600), box(600, 150, 900, 600)],
            zone=["城镇集中建设区", "特别用途区"],
        ),
    )
    _put(
        st,
        "bj_zones",
        "control_line",
        frame(
            [box(-400, -400, 60, 800), box(60, -400, 1000, 800)], zone=["生态控制区", "集中建设区"]
        ),
    )
    _put(
        st,
        "plan_landuse",
        "plan",
        frame([box(-400, -400, 60, 800), box(60, -400, 1000, 800)], YDYHFLDM=["0301", "1001"]),
        code_system="landsea-2023",
        code_field="YDYHFLDM",
    )
    # survey: construction (0601 industry) west of x = 30, farmland (0103) east of it
    _put(
        st,
        "cf_survey",
        "survey",
        frame(
            [box(-400, -400, 30, 800), box(30, -400, 1000, 800)],
            DLBM=["0601", "0103"],
            BSM=["S1", "S2"],
        ),
        code_system="sandiao",
        code_field="DLBM",
        id_field="BSM",
    )
    _put(
        st,
        "units",
        "boundary",
        frame(
            [box(-400, -400, 300, 800), box(300, -400, 1000, 800)],
            code=["u1", "u2"],
            name=["甲街道", "乙镇"],
        ),
    )
    hx02 = shapely.Polygon(
        box(0, 200, 100, 300).exterior.coords, [box(40, 240, 60, 260).exterior.coords]
    )
    reg = frame(
        [box(0, 0, 120, 100), shapely.affinity.translate(hx02, 3.0, 4.0)],
        parcel_id=["HX-01", "HX-02"],
    )
    _put(st, "redlines", "project", reg, id_field="parcel_id")


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_conformance_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = seed_workspace(uri, streets_path=chaoyang_path, parcels=120)
        with open_store(uri) as st:
            populate(st)
        app = make_app(uri, base / "reports")
        users = ("admin", "district", "town1", "town2", "citizen")
        clients = {"anon": client(app)} | {u: client(app, u, bearer=True) for u in users}
        try:
            yield {"app": app, "uri": uri, "c": clients, "tmp": base, **seeded}
        finally:
            app.state.rt.close()


def _job(env, who: str, path: str, body: dict) -> dict:
    """Submit a job as ``who``, wait for it and return the finished job."""
    c = env["c"][who]
    r = c.post(f"{API}/{path}", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/jobs/{r.json()['job']['id']}"
    jid = r.json()["job"]["id"]
    assert env["app"].state.rt.jobs.wait(jid, 60)
    deadline = time.monotonic() + 10
    while True:  # the final state is written before wait() returns; poll briefly anyway
        j = c.get(f"/api/jobs/{jid}").json()
        if j["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return j
        time.sleep(0.05)


def _download(env, who: str, name: str, dest: Path) -> Path:
    r = env["c"][who].get(f"/api/reports/{name}")
    assert r.status_code == 200, r.text
    dest.write_bytes(r.content)
    return dest


# -- catalogue ------------------------------------------------------------------------------


def test_catalogue_routes(env):
    c = env["c"]["town1"]
    packs = c.get(f"{API}/packs").json()
    by_id = {p["id"]: p for p in packs["packs"]}
    assert packs["default"] == ["conformance-national", "conformance-beijing"]
    assert by_id["conformance-national"]["roles"] == ["rules"]
    assert "elasticity" in by_id["dongguan-2023"]["roles"]
    assert "rules" not in by_id["dongguan-2023"]["roles"]
    assert "beijing-reduction" not in by_id  # another module's pack
    tol = {p["name"]: p for p in by_id["conformance-national"]["parameters"]}
    assert tol["redline_hausdorff_tolerance_m"]["clause"] == "004 (十一)"
    assert "path" not in by_id["conformance-national"]  # no server paths leak
    mats = {m["id"] for m in c.get(f"{API}/matrices").json()["matrices"]}
    assert mats == {"sandiao-vs-landsea", "urban-boundary-vs-construction"}
    hs = {h["id"]: h for h in c.get(f"{API}/hierarchies").json()["hierarchies"]}
    assert hs["dongguan-demo"]["elasticity_pack"] == "dongguan-2023"
    assert hs["dongguan-demo"]["levels"] == ["大圈", "中圈", "小圈"]
    types = {t["id"]: t for t in c.get(f"{API}/line-types").json()["line_types"]}
    assert types["eco_redline"]["national"] and types["zone_eco_control"]["layer"] == "bj_zones"


def test_outsiders_are_refused(env):
    for method, path, kw in (
        ("GET", "packs", {}),
        ("GET", "matrices", {}),
        ("GET", "hierarchies", {}),
        ("GET", "line-types", {}),
        ("POST", "lines", {"json": {}}),
        ("POST", "conflicts", {"json": {}}),
        ("POST", "check-redline", {"files": {"file": ("r.txt", GOOD.read_bytes())}}),
        ("POST", "transmission", {"json": {"hierarchy": "dongguan-demo"}}),
    ):
        anon = env["c"]["anon"].request(method, f"{API}/{path}", **kw)
        assert anon.status_code == 401 and anon.json()["message"] == "请先登录", path
        pub = env["c"]["citizen"].request(method, f"{API}/{path}", **kw)
        assert pub.status_code == 403 and "无此权限" in pub.json()["message"], path


# -- control lines (job) ----------------------------------------------------------------------


def test_lines_job_end_to_end_and_report_stays_in_jurisdiction(env, tmp_path):
    body = {"units_layer": "units", "scope_name": "示例区", "at": AT.isoformat()}
    job = _job(env, "town1", "lines", body)
    assert job["status"] == "succeeded", job
    res = job["result"]
    with open_store(env["uri"]) as st:
        direct = lines_report(
            st, units_layer="units", scope="示例区", packs=load_packs(), at=AT, actor="t"
        ).to_dict("ha")
    got = {(p["line_a"], p["line_b"]): p for p in res["result"]["overlaps"]}
    want = {(p["line_a"], p["line_b"]): p for p in direct["overlaps"]}
    assert got.keys() == want.keys()
    for k, p in want.items():
        assert got[k]["patch_count"] == p["patch_count"]
        assert got[k]["overlap_area"] == pytest.approx(p["overlap_area"], rel=1e-9)
    # eco red line × farmland: 40 × 50 m = 0.2 ha
    ef = got[("eco_redline", "basic_farmland")]
    assert ef["patch_count"] == 1 and rel(ef["overlap_area"], 0.2) < 3e-4
    assert res["result"]["ok"] is False and res["synthetic"] is True
    shares = {(r["unit"], r["zone"]): r["share"] for r in res["result"]["zones"]["rows"]}
    assert shares[("u1", "生态控制区")] == pytest.approx(460 / 700, abs=1e-3)
    assert env["app"].state.rt.jobs  # the runtime stays up
    # the GeoPackage report: listed for its author and the district above, not the other town
    name = res["report"]
    mine = {r["name"]: r for r in env["c"]["town1"].get("/api/reports").json()["reports"]}
    assert mine[name]["kind"] == "conformance_lines" and "合成数据" in mine[name]["title"]
    assert mine[name]["jurisdiction"] == "110105001" and mine[name]["synthetic"] is True
    assert name in {r["name"] for r in env["c"]["district"].get("/api/reports").json()["reports"]}
    assert name not in {r["name"] for r in env["c"]["town2"].get("/api/reports").json()["reports"]}
    assert env["c"]["town2"].get(f"/api/reports/{name}").status_code == 404
    assert env["c"]["town2"].get(f"/api/jobs/{job['id']}").status_code == 404
    gpkg = _download(env, "town1", name, tmp_path / "lines.gpkg")
    layers = set(pyogrio.list_layers(gpkg)[:, 0])
    assert {"line_overlap_pairs", "line_overlaps", "zone_shares"} <= layers
    patches = pyogrio.read_dataframe(gpkg, layer="line_overlaps")
    assert len(patches) == sum(p["patch_count"] for p in direct["overlaps"])


def test_lines_refusals(env):
    c = env["c"]["admin"]
    r = c.post(f"{API}/lines", json={"units_layer": "units", "zone_field": "nope"})
    assert r.status_code == 400 and r.json()["error"] == "field_missing"
    assert "没有分区字段 nope" in r.json()["message"]
    r = c.post(f"{API}/lines", json={"lines": {"eco_redline": "streets"}})
    assert r.status_code == 404 and r.json()["error"] == "control_lines_missing"
    r = c.post(f"{API}/lines", json={"lines": {"no_such_type": "eco_redline"}})
    assert r.status_code == 404 and "未知的管控线类型" in r.json()["message"]
    r = c.post(f"{API}/lines", json={"packs": ["../../etc/passwd"]})
    assert r.status_code == 400 and "请求参数有误" in r.json()["message"]
    r = c.post(f"{API}/lines", json={"packs": ["dongguan-2023"]})
    assert r.status_code == 400 and r.json()["error"] == "policy_not_allowed"
    r = c.post(f"{API}/lines", json={"area_unit": "acre", "colour": 1})
    assert r.status_code == 400 and "请求参数有误" in r.json()["message"]
    # a jurisdiction-bound layer holding other townships' features: refused for a township
    r = env["c"]["town1"].post(
        f"{API}/lines",
        json={"lines": {"eco_redline": "survey", "basic_farmland": "basic_farmland"}},
    )
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"


# -- conflicts (job) ----------------------------------------------------------------------------


def test_conflicts_job_matches_service(env, tmp_path):
    body = {
        "left_layer": "cf_survey",
        "right_layer": "plan_landuse",
        "matrix": "sandiao-vs-landsea",
        "units_layer": "units",
        "area_unit": "m2",
    }
    job = _job(env, "district", "conflicts", body)
    assert job["status"] == "succeeded", job
    res = job["result"]["result"]
    with open_store(env["uri"]) as st:
        direct = conflicts_report(
            st, "cf_survey", "plan_landuse", matrix="sandiao-vs-landsea", units_layer="units"
        ).to_dict("m2")
    got = {t["type"]: t for t in res["by_type"]}
    assert got == {t["type"]: t for t in direct["by_type"]}
    assert rel(got["T4"]["area"], 940 * 1200) < 3e-4 and rel(got["T2"]["area"], 430 * 1200) < 3e-4
    assert got["T5"]["patches"] == 0
    by_unit = {(u["unit"], u["type"]): u["area"] for u in res["by_unit"]}
    assert rel(by_unit[("u2", "T4")], 700 * 1200) < 3e-4
    assert res["left_layer"] == "cf_survey" and res["provenance_id"]
    gpkg = _download(env, "district", job["result"]["report"], tmp_path / "c.gpkg")
    back = pyogrio.read_dataframe(gpkg, layer="conflicts")
    assert set(back["conflict_type"]) == {"T2", "T4", "T7"}
    assert "conflicts_by_unit" in set(pyogrio.list_layers(gpkg)[:, 0])


def test_conflicts_whole_layer_rule(env):
    """A layer with features in several townships: the district may, a township may not."""
    body = {
        "left_layer": "urban_boundary",
        "right_layer": "survey",
        "matrix": "urban-boundary-vs-construction",
    }
    r = env["c"]["town1"].post(f"{API}/conflicts", json=body)
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"
    assert "survey" in r.json()["message"]
    job = _job(env, "district", "conflicts", body | {"area_unit": "m2"})
    assert job["status"] == "succeeded", job
    res = job["result"]["result"]
    survey = env["survey_2021"]
    # the Chaoyang survey lies outside the (Fangshan) boundary: its urban construction is U1
    assert res["by_type"][0]["type"] == "U1" and res["by_type"][0]["patches"] > 0
    assert len(survey) > 0 and job["result"]["synthetic"] is True
    # bad requests
    c = env["c"]["admin"]
    r = c.post(f"{API}/conflicts", json=body | {"matrix": "no-such-matrix"})
    assert r.status_code == 404 and "冲突矩阵" in r.json()["message"]
    r = c.post(f"{API}/conflicts", json=body | {"right_field": "无此字段"})
    assert r.status_code == 400 and r.json()["field"] == "right_field"
    r = c.post(f"{API}/conflicts", json=body | {"right_layer": "no_layer"})
    assert r.status_code == 404
    r = c.post(f"{API}/conflicts", json=body | {"left_layer": "Bad Name"})
    assert r.status_code == 400 and "格式不符" in r.json()["message"]


# -- red line (sync) -----------------------------------------------------------------------------


def test_check_redline_upload_with_report(env, tmp_path):
    files = {"file": ("redline_good.txt", GOOD.read_bytes(), "text/plain")}
    form = {"at": AT.isoformat(), "report": "html"}
    r = env["c"]["town1"].post(f"{API}/check-redline", files=files, data=form)
    assert r.status_code == 200, r.text
    d = r.json()
    with open_store(env["uri"]) as st:
        direct = check_redline_file(st, GOOD, packs=load_packs(), at=AT).to_dict("m2")
    assert d["verdict"] == direct["verdict"] == "不通过"
    assert d["format"] == "jzd" and d["source_crs"] == "EPSG:4527"
    assert d["layers"]["registered"] == "redlines" and "plan_landuse" in d["layers"]["plans"]
    assert {"redlines", "eco_redline"} <= set(d["synthetic_inputs"])
    assert [f["message"] for f in d["findings"]] == [f["message"] for f in direct["findings"]]
    assert d["source_hash"] == direct["source_hash"]
    rep = d["report"]
    assert rep["report"].endswith(".html") and rep["url"] == f"/api/reports/{rep['report']}"
    html = env["c"]["town1"].get(rep["url"])
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert "不通过" in html.text and "合成数据" in html.text and "004 (十一)" in html.text
    assert env["c"]["town2"].get(rep["url"]).status_code == 404
    # a PDF one-pager, in hectares, with an explicit plan layer
    files = {"file": ("hx.txt", GOOD.read_bytes(), "text/plain")}
    r = env["c"]["town2"].post(
        f"{API}/check-redline",
        files=files,
        data={
            "at": AT.isoformat(),
            "area_unit": "ha",
            "plan": "plan_landuse:YDYHFLDM",
            "report": "pdf",
        },
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["layers"]["plans"] == ["plan_landuse"] and d["area_unit"] == "ha"
    eco = next(x for x in d["lines"] if x["parcel"] == "HX-01" and x["line_type"] == "eco_redline")
    assert rel(eco["overlap"], 0.6) < 3e-4  # 60 × 100 m of HX-01 in the red line
    pdf = env["c"]["town2"].get(d["report"]["url"])
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    # without a report nothing is written
    files = {"file": ("hx.txt", GOOD.read_bytes(), "text/plain")}
    r = env["c"]["town2"].post(f"{API}/check-redline", files=files, data={"at": AT.isoformat()})
    assert r.status_code == 200 and r.json()["report"] is None


def test_check_redline_refusals(env):
    c = env["c"]["town1"]
    good = {"file": ("r.txt", GOOD.read_bytes(), "text/plain")}
    # a plan layer with other townships' features
    r = c.post(f"{API}/check-redline", files=good, data={"plan": "survey:DLBM"})
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"
    r = c.post(f"{API}/check-redline", json={"file": "x"})
    assert r.status_code == 415 and "multipart" in r.json()["message"]
    r = c.post(f"{API}/check-redline", data={"at": "2024-01-01"}, files={"x": ("a.txt", b"1")})
    assert r.status_code == 400 and r.json()["error"] == "missing_file"
    r = c.post(f"{API}/check-redline", files={"file": ("a.exe", b"MZ\x90\x00")})
    assert r.status_code == 415 and "不支持" in r.json()["message"]
    r = c.post(f"{API}/check-redline", files={"file": ("a.txt", b"\x00\x01\x02")})
    assert r.status_code == 415
    r = c.post(f"{API}/check-redline", files={"file": ("a.geojson", b"not json at all")})
    assert r.status_code == 415
    unclosed = (DATA / "redline_unclosed.txt").read_bytes()
    r = c.post(f"{API}/check-redline", files={"file": ("u.txt", unclosed)})
    assert 400 <= r.status_code < 500 and "未闭合" in r.json()["message"]
    r = c.post(f"{API}/check-redline", files=good, data={"crs": "+proj=longlat"})
    assert r.status_code == 400 and r.json()["field"] == "crs"
    r = c.post(f"{API}/check-redline", files=good, data={"pack": "../x.yaml"})
    assert r.status_code == 400 and r.json()["field"] == "pack"
    r = c.post(f"{API}/check-redline", files=good, data={"at": "2024-02-30"})
    assert r.status_code == 400 and "日期" in r.json()["message"]
    r = c.post(f"{API}/check-redline", files=good, data={"report": "docx"})
    assert r.status_code == 400 and r.json()["field"] == "report"
    r = c.post(f"{API}/check-redline", files=good, data={"line": "eco_redline=no_layer"})
    assert r.status_code == 404 and "no_layer" in r.json()["message"]


# -- transmission (sync) ---------------------------------------------------------------------------


def test_transmission_shipped_and_inline(env):
    c = env["c"]["town2"]
    r = c.post(f"{API}/transmission", json={"hierarchy": "dongguan-demo", "at": AT.isoformat()})
    assert r.status_code == 200, r.text
    d = r.json()
    direct = transmission_report("dongguan-demo", at=AT).to_dict()
    assert d["ok"] is True and d["elasticity"]["default"] == pytest.approx(0.1)
    assert d["rows"] == direct["rows"] and d["hierarchy"]["hash"] == direct["hierarchy"]["hash"]
    prov = c.get(f"/api/provenance/{d['provenance_id']}").json()
    assert prov["record"]["kind"] == "conformance.transmission"
    assert prov["record"]["created_by"] == "town2"
    # a parent and two children over the 10 % elasticity (1000 → 1110 > 1100)
    plan = {
        "title": "测试传导 (合成数据)",
        "levels": ["中圈", "小圈"],
        "elasticity_pack": "dongguan-2023",
        "synthetic": True,
        "nodes": [
            {"id": "p", "name": "中圈", "level": "中圈", "values": {"renewal_scale": 1000}},
            {"id": "a", "level": "小圈", "parent": "p", "values": {"renewal_scale": 600}},
            {"id": "b", "level": "小圈", "parent": "p", "values": {"renewal_scale": 510}},
        ],
    }
    r = c.post(f"{API}/transmission", json={"plan": plan, "at": AT.isoformat()})
    assert r.status_code == 200, r.text
    d = r.json()
    row = d["rows"][0]
    assert (
        d["ok"] is False and row["children_total"] == 1110 and row["limit"] == pytest.approx(1100)
    )
    assert any("超出10%弹性空间" in f["message"] for f in d["findings"])
    # Beijing's elasticity (0) makes the same pair fail without any margin
    r = c.post(
        f"{API}/transmission",
        json={"plan": plan | {"elasticity_pack": None}, "elasticity_pack": "conformance-beijing"},
    )
    assert r.status_code == 200 and r.json()["rows"][0]["limit"] == pytest.approx(1000)
    # refusals
    for body, status, key in (
        ({}, 400, "hierarchy_choice"),
        ({"hierarchy": "dongguan-demo", "plan": plan}, 400, "hierarchy_choice"),
        ({"hierarchy": "no-such"}, 404, "hierarchy_not_found"),
        (
            {"hierarchy": "dongguan-demo", "elasticity_pack": "beijing-reduction"},
            400,
            "policy_not_allowed",
        ),
        (
            {
                "plan": plan
                | {"nodes": [*plan["nodes"], {"id": "c", "level": "小圈", "parent": "zz"}]}
            },
            422,
            "hierarchy_orphan",
        ),
    ):
        r = c.post(f"{API}/transmission", json=body)
        assert r.status_code == status and r.json()["error"] == key, (body, r.text)
    bad = plan | {"nodes": [{"id": "p", "level": "中圈", "values": {"renewal_scale": -1}}] * 2}
    r = c.post(f"{API}/transmission", json={"plan": bad})
    assert r.status_code == 400 and "应大于 0" in r.json()["message"]
