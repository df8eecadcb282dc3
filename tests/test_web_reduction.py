"""The reduction ledger REST API (/api/reduction) on both backends.

The workspace: the seeded web workspace (real Chaoyang streets as the units layer, one user
per role: district 110105, townships 110105001 and 110105002) plus a synthetic survey
(合成数据) of two streets with 2020, 2021 and 2022 snapshots. Three construction parcels of
each street become plots; the 2021 survey turns two of T1's and one of T2's into forest land
(reduced), the 2022 survey puts construction back on one of T1's (rebuild). Figures are checked
against ellipsoidal areas computed here from the files and survey parcels, and against the
service functions called directly on the store.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from openpyxl import load_workbook

from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy import load_pack
from yizhangtu.reduction import construction_mask
from yizhangtu.reduction.rules import param
from yizhangtu.services import reduction as red
from yizhangtu.store import LayerSpec, open_store
from yizhangtu.web.testing import USERS, client, make_app, seed_workspace, temp_workspace

T1, T2 = "110105001000", "110105002000"
REL = 1e-6
#: Ledger stocks are measured on one equal-area plane per job (see evaluate_year), not on the
#: ellipsoid: they agree with ellipsoidal areas to a few parts per million.
REL_PLANE = 1e-5
PLOT_COLS = {
    "plot_id": "地块编号",
    "plot_type": "地块类型",
    "ownership": "权属",
    "planned_use": "减量后用途",
}


def _plot_bytes(plots: gpd.GeoDataFrame) -> bytes:
    out = plots.rename(columns=PLOT_COLS)[[*PLOT_COLS.values(), "geometry"]]
    return out.to_json(ensure_ascii=False).encode("utf-8")


def _build(uri: str, streets_path: Path) -> dict[str, Any]:
    """Survey snapshots (合成数据), the reduction config and the plot files of T1 and T2."""
    from yizhangtu.demo.synthetic import generate_survey

    pack = load_pack("beijing-reduction")
    streets = gpd.read_file(streets_path).set_crs(4490, allow_override=True)
    s20 = generate_survey(
        streets[streets["code"].isin([T1, T2])], unit_field="code", seed=11, n_parcels=160
    )
    cons = construction_mask(s20, pack)
    area = ellipsoidal_area(s20.geometry)
    plots, parcels = {}, {}
    for code, prefix in ((T1, "P"), (T2, "Q")):
        ok = cons & s20["ZLDWDM"].eq(code).to_numpy() & (area > 2_000) & (area < 80_000)
        pick = s20[ok].sort_values("BSM").iloc[:4]
        assert len(pick) == 4
        plots[code] = gpd.GeoDataFrame(
            {
                "plot_id": [f"{prefix}{k}" for k in range(1, 5)],
                "plot_type": ["工业大院", "村庄腾退", "拆违腾退", "疏解腾退"],
                "ownership": np.where(pick["CZCSXM"].astype(str).eq("203"), "集体", "国有"),
                "planned_use": ["绿地", "林地", "留白", "绿地"],
            },
            # 1 m inside the parcel: inside the street, never touching a neighbour
            geometry=pick.geometry.to_crs(4527)
            .buffer(-1.0, join_style="mitre")
            .to_crs(4490)
            .to_numpy(),
            crs=4490,
        )
        parcels[code] = pick.index
    reduced = {T1: list(parcels[T1][:2]), T2: list(parcels[T2][:1])}
    s21 = s20.copy()
    s21.loc[reduced[T1] + reduced[T2], "DLBM"] = "0301"
    s22 = s21.copy()
    s22.loc[parcels[T1][0], "DLBM"] = "0702"  # construction back on P1
    with open_store(uri) as st:
        spec = LayerSpec(
            name="rsurvey",
            kind="survey",
            title="减量测试调查 (合成数据)",
            description="合成数据 (SYNTHETIC)",
            code_field="DLBM",
            id_field="BSM",
            jurisdiction_field="ZLDWDM",
            synthetic=True,
        )
        for y, s in ((2020, s20), (2021, s21), (2022, s22)):
            st.write_snapshot(spec, [s], label=str(y), obs_date=f"{y}-12-31", actor="seed")
        red.set_config(st, actor="seed", units_layer="streets", survey_layer="rsurvey")
    return {
        "pack": pack,
        "plots": plots,
        "net": {c: float(ellipsoidal_area(s20.loc[reduced[c]].geometry).sum()) for c in (T1, T2)},
    }


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_reduction_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seed_workspace(uri, streets_path=chaoyang_path, parcels=60)
        built = _build(uri, chaoyang_path)
        app = make_app(uri, base / "reports", upload_max_bytes=2_000_000)
        clients = {"anon": client(app)} | {u: client(app, u) for u in USERS}
        try:
            yield {"app": app, "uri": uri, "c": clients, **built}
        finally:
            app.state.rt.close()


def _upload(c, plots: gpd.GeoDataFrame, township: str, *, name="plots.geojson", **form):
    data = {"township": township, "year": "2021"} | {k: str(v).lower() for k, v in form.items()}
    files = {"file": (name, _plot_bytes(plots), "application/geo+json")}
    return c.post("/api/reduction/plots", files=files, data=data)


def _job(env, c, r) -> dict:
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    assert r.headers["Location"] == f"/api/jobs/{job_id}"
    assert env["app"].state.rt.jobs.wait(job_id, 120)
    j = c.get(f"/api/jobs/{job_id}").json()
    assert j["status"] == "succeeded", j
    return j["result"]


def _areas(gdf: gpd.GeoDataFrame) -> dict[str, float]:
    return dict(zip(gdf["plot_id"], ellipsoidal_area(gdf.geometry), strict=True))


# -- the year's cycle through the API ------------------------------------------------------------


def test_year_cycle(env):
    c = env["c"]
    p1, p2 = env["plots"][T1], env["plots"][T2]
    area = _areas(p1) | _areas(p2)

    # targets: the city sets the district's, the district splits it to its townships
    r = c["admin"].put(
        "/api/reduction/targets",
        json={
            "unit_code": "110105",
            "unit_name": "朝阳区",
            "level": "district",
            "year": 2035,
            "target_m2": 71e6,
            "clause": "002 (一(一)二)",
        },
    )
    assert r.status_code == 200, r.text
    for code, name, m2 in ((T1, "建外街道", 500_000.0), (T2, "朝外街道", 300_000.0)):
        r = c["district"].put(
            "/api/reduction/targets",
            json={
                "unit_code": code,
                "unit_name": name,
                "level": "township",
                "year": 2035,
                "target_m2": m2,
                "parent_code": "110105",
                "synthetic": True,
            },
        )
        assert r.status_code == 200, r.text
    check = r.json()["split_checks"][0]
    assert check["unit_code"] == "110105" and check["ok"] is False
    assert check["allocated_m2"] == pytest.approx(800_000.0)
    assert check["unallocated_m2"] == pytest.approx(71e6 - 800_000.0)
    seen = {t["unit_code"] for t in c["town1"].get("/api/reduction/targets").json()["targets"]}
    assert seen == {T1}
    whole = c["district"].get("/api/reduction/targets").json()
    assert {t["unit_code"] for t in whole["targets"]} == {"110105", T1, T2}
    assert [x["unit_code"] for x in whole["split_checks"]] == ["110105"]

    # plots: each township submits its own (a dry run first writes nothing)
    with open_store(env["uri"]) as st:
        n_snap = (
            len(st.snapshots("reduction_plots"))
            if "reduction_plots" in {i.name for i in st.layers()}
            else 0
        )
    r = _upload(c["town1"], p1.iloc[:3], T1, dry_run=True)
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["dry_run"] is True and dry["snapshot"] is None and dry["submitted"] == 3
    assert {p["plot_id"]: p["qc_status"] for p in dry["plots"]} == {
        "P1": "ok",
        "P2": "ok",
        "P3": "ok",
    }
    assert dry["area_m2"] == pytest.approx(sum(area[k] for k in ("P1", "P2", "P3")), rel=REL)
    with open_store(env["uri"]) as st:
        after = (
            len(st.snapshots("reduction_plots"))
            if "reduction_plots" in {i.name for i in st.layers()}
            else 0
        )
    assert after == n_snap
    r = _upload(c["town1"], p1.iloc[:3], T1, name="减量地块_建外.geojson")
    assert r.status_code == 201, r.text
    assert r.json()["snapshot"]["label"] == f"2021-{T1}-1" and r.json()["flagged"] == 0
    assert _upload(c["town1"], p2.iloc[:3], T2).status_code == 403  # not town1's street
    r = _upload(c["town2"], p2.iloc[:3], T2)
    assert r.status_code == 201, r.text

    def plots_of(who, **q) -> dict[str, dict]:
        r = c[who].get("/api/reduction/plots", params=q)
        assert r.status_code == 200, r.text
        fc = r.json()
        assert fc["type"] == "FeatureCollection"
        return {f["properties"]["plot_id"]: f for f in fc["features"]}

    mine = plots_of("town1")
    assert set(mine) == {"P1", "P2", "P3"}
    assert set(plots_of("town2")) == {"Q1", "Q2", "Q3"}
    assert (
        set(plots_of("district")) == set(plots_of("dept")) == {"P1", "P2", "P3", "Q1", "Q2", "Q3"}
    )
    assert set(plots_of("admin", township=T2)) == {"Q1", "Q2", "Q3"}
    assert plots_of("town1", township=T2) == {}
    for pid, f in mine.items():
        assert f["properties"]["area_m2"] == pytest.approx(area[pid], rel=REL)
        assert f["properties"]["source_file"] == "减量地块_建外.geojson"
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    page = c["district"].get("/api/reduction/plots", params={"limit": 4}).json()
    rest = c["district"].get("/api/reduction/plots", params={"after": page["next"]}).json()
    assert page["numberReturned"] == 4 and rest["numberReturned"] == 2 and rest["next"] is None

    # acceptance: a district-wide job; townships and departments may not run it
    body = {"year": 2021, "survey": "2021"}
    assert c["town1"].post("/api/reduction/acceptance", json=body).status_code == 403
    assert c["dept"].post("/api/reduction/acceptance", json=body).status_code == 403
    res = _job(env, c["district"], c["district"].post("/api/reduction/acceptance", json=body))
    assert res["baseline"]["label"] == "2020" and res["survey"]["label"] == "2021"
    assert res["verdicts"] == {"reduced": 3, "not_reduced": 3} and res["plots_count"] == 6
    acc = c["town1"].get("/api/reduction/acceptance", params={"year": 2021}).json()
    verdicts = {p["plot_id"]: p["verdict"] for p in acc["plots"]}
    assert verdicts == {"P1": "reduced", "P2": "reduced", "P3": "not_reduced"}
    reduced = {p["plot_id"]: p["reduced_m2"] for p in acc["plots"]}
    assert reduced["P1"] == pytest.approx(area["P1"], rel=REL) and reduced["P3"] == 0
    assert [r_["unit_code"] for r_ in acc["ledger"]] == [T1]  # no other street, no district row
    t1 = acc["ledger"][0]
    assert t1["accepted_m2"] == pytest.approx(area["P1"] + area["P2"], rel=REL)
    assert t1["net_m2"] == pytest.approx(env["net"][T1], rel=REL_PLANE)
    full = c["district"].get("/api/reduction/acceptance").json()
    assert len(full["plots"]) == 6 and full["years"] == [2021]
    dist = next(x for x in full["ledger"] if x["unit_code"] == "110105")
    assert dist["level"] == "district"
    assert dist["accepted_m2"] == pytest.approx(area["P1"] + area["P2"] + area["Q1"], rel=REL)
    with open_store(env["uri"]) as st:
        stored = red.read_acceptance(st)
    assert sorted(stored["provenance_id"]) == sorted(p["provenance_id"] for p in full["plots"])

    # rebuild: construction back on P1 in the 2022 survey
    assert c["town1"].post("/api/reduction/rebuild", json={"survey": "2022"}).status_code == 403
    res = _job(env, c["admin"], c["admin"].post("/api/reduction/rebuild", json={"survey": "2022"}))
    assert res["checked"] == 3 and res["alerts"] == 1
    alerts = c["town1"].get("/api/reduction/rebuild", params={"alerts_only": True}).json()
    assert [a["plot_id"] for a in alerts["rows"]] == ["P1"]
    assert alerts["rows"][0]["rebuilt_m2"] == pytest.approx(area["P1"], rel=REL)
    rows2 = c["town2"].get("/api/reduction/rebuild").json()["rows"]
    assert [(a["plot_id"], a["alert"]) for a in rows2] == [("Q1", False)]

    # transfers: from a relieving street inside one's jurisdiction only
    ratio = float(param(env["pack"], "transfer_ratio_max")) / 2
    tr = {
        "transfer_id": "L-2021-01",
        "from_unit": T1,
        "to_unit": T2,
        "year": 2021,
        "quota_m2": 10_000.0,
        "ratio": ratio,
        "population_credit": 120,
        "compensation": ["人口承接"],
    }
    assert c["town2"].post("/api/reduction/transfers", json=tr).status_code == 403
    r = c["town1"].post("/api/reduction/transfers", json=tr)
    assert r.status_code == 201, r.text
    assert r.json()["transfer"]["received_m2"] == pytest.approx(10_000.0 * ratio)
    assert c["town1"].post("/api/reduction/transfers", json=tr).status_code == 409
    assert [
        t["transfer_id"] for t in c["town1"].get("/api/reduction/transfers").json()["transfers"]
    ] == ["L-2021-01"]
    assert c["town2"].get("/api/reduction/transfers").json()["transfers"] == []  # by relieving unit

    # balance: the township's own rows, as the service computes them for the whole ledger
    with open_store(env["uri"]) as st:
        direct = {b.unit_code: b.to_dict() for b in red.balance_report(st)}
    b1 = c["town1"].get("/api/reduction/balance").json()["rows"]
    assert [b["unit_code"] for b in b1] == [T1]
    assert b1[0] == pytest.approx(direct[T1])
    assert b1[0]["sent_m2"] == 10_000.0 and b1[0]["own_m2"] == pytest.approx(t1["accepted_m2"])
    b2 = c["town2"].get("/api/reduction/balance").json()["rows"]
    assert b2[0]["received_m2"] == pytest.approx(10_000.0 * ratio) and b2[0] == pytest.approx(
        direct[T2]
    )
    bd = c["district"].get("/api/reduction/balance", params={"level": "district"}).json()["rows"]
    assert [b["unit_code"] for b in bd] == ["110105"]

    # progress: T1's net reduction against its target
    prog = c["town1"].get("/api/reduction/progress").json()
    assert [p["unit_code"] for p in prog["rows"]] == [T1] and prog["year"] == 2021
    row = prog["rows"][0]
    assert row["target_m2"] == 500_000.0 and row["net_m2"] == pytest.approx(
        env["net"][T1], rel=REL_PLANE
    )
    assert row["percent_complete"] == pytest.approx(env["net"][T1] / 500_000.0 * 100, rel=REL_PLANE)
    assert prog["synthetic_survey"] is True
    with open_store(env["uri"]) as st:
        direct_p = {r_.unit_code: r_ for r_ in red.progress_report(st, by="township")["rows"]}
    assert row["status"] == direct_p[T1].status and row["years_left"] == direct_p[T1].years_left
    pd_ = c["district"].get("/api/reduction/progress", params={"by": "district"}).json()
    assert [p["unit_code"] for p in pd_["rows"]] == ["110105"]
    assert pd_["rows"][0]["target_km2"] == 71.0 and pd_["reported"][0]["net_km2"] == 35.5
    none = c["town1"].get("/api/reduction/progress", params={"by": "district"}).json()
    assert none["rows"] == [] and none["reported"] == []

    # the ledger workbook: a report job; the file is served to the district and above only
    assert c["town1"].post("/api/reduction/ledger-exports", json={}).status_code == 403
    res = _job(
        env, c["district"], c["district"].post("/api/reduction/ledger-exports", json={"year": 2021})
    )
    assert res["year"] == 2021 and res["synthetic"] is True
    name = res["report"]
    listed = {x["name"]: x for x in c["district"].get("/api/reports").json()["reports"]}
    assert name in listed and "合成数据" in listed[name]["title"]
    assert name in {x["name"] for x in c["admin"].get("/api/reports").json()["reports"]}
    assert name not in {x["name"] for x in c["town1"].get("/api/reports").json()["reports"]}
    assert c["town1"].get(res["url"]).status_code == 404
    got = c["district"].get(res["url"])
    assert got.status_code == 200
    wb = load_workbook(io.BytesIO(got.content))
    assert wb.sheetnames == res["sheets"]
    about = {r_[0]: r_[1] for r_ in wb["说明"].iter_rows(min_row=2, values_only=True)}
    assert (
        about["工作空间"].startswith(("GeoPackage ws_", "PostGIS")) and "@" not in about["工作空间"]
    )
    head = [x.value for x in wb["乡镇台账"][1]]
    t1_row = next(r_ for r_ in wb["乡镇台账"].iter_rows(min_row=2, values_only=True) if r_[0] == T1)
    net_col = next(i for i, h in enumerate(head) if str(h).startswith("净减量"))
    assert t1_row[net_col] == pytest.approx(env["net"][T1] / 1e4, abs=1e-4)
    alerts_sheet = list(wb["复建预警"].iter_rows(min_row=2, values_only=True))
    assert any(r_[0] == "P1" and r_[7] == "是" for r_ in alerts_sheet)


# -- jurisdiction and bad input ------------------------------------------------------------------


ROUTES = [
    ("GET", "/api/reduction/targets", None),
    ("PUT", "/api/reduction/targets", {"json": {}}),
    ("GET", "/api/reduction/plots", None),
    ("POST", "/api/reduction/plots", None),
    ("GET", "/api/reduction/acceptance", None),
    ("POST", "/api/reduction/acceptance", {"json": {"year": 2021, "survey": "2021"}}),
    ("GET", "/api/reduction/rebuild", None),
    ("POST", "/api/reduction/rebuild", {"json": {"survey": "2022"}}),
    ("GET", "/api/reduction/transfers", None),
    ("POST", "/api/reduction/transfers", {"json": {}}),
    ("GET", "/api/reduction/balance", None),
    ("GET", "/api/reduction/progress", None),
    ("POST", "/api/reduction/ledger-exports", {"json": {}}),
]


@pytest.mark.parametrize("method,url,kw", ROUTES, ids=[f"{m} {u}" for m, u, _ in ROUTES])
def test_outsiders_are_refused(env, method, url, kw):
    assert env["c"]["anon"].request(method, url, **(kw or {})).status_code == 401
    r = env["c"]["citizen"].request(method, url, **(kw or {}))
    assert r.status_code == 403 and r.json()["message"]


def test_writes_outside_the_jurisdiction_are_refused(env):
    c = env["c"]
    target = {
        "unit_code": T1,
        "unit_name": "建外街道",
        "level": "township",
        "year": 2035,
        "target_m2": 1.0,
    }
    r = c["town1"].put("/api/reduction/targets", json=target)
    assert r.status_code == 403 and "区级" in r.json()["message"]
    r = c["district"].put("/api/reduction/targets", json=target | {"unit_code": "110106001000"})
    assert r.status_code == 403 and "辖区" in r.json()["message"]
    r = c["district"].put(
        "/api/reduction/targets",
        json=target | {"unit_code": "110105", "unit_name": "朝阳区", "level": "district"},
    )
    assert r.status_code == 403 and "市级" in r.json()["message"]
    r = c["town2"].post(
        "/api/reduction/transfers",
        json={
            "transfer_id": "X1",
            "from_unit": T1,
            "to_unit": T2,
            "year": 2021,
            "quota_m2": 1,
            "ratio": 0.5,
        },
    )
    assert r.status_code == 403
    r = _upload(c["town2"], env["plots"][T1].iloc[3:], T1)
    assert r.status_code == 403 and "乡镇不在你的辖区内" in r.json()["message"]


def test_bad_input_gets_a_chinese_4xx(env):
    c = env["c"]
    target = {
        "unit_code": T1,
        "unit_name": "建外街道",
        "level": "township",
        "year": 1800,
        "target_m2": 1.0,
    }
    r = c["district"].put("/api/reduction/targets", json=target)
    assert r.status_code == 400 and "应不小于 2000" in r.json()["message"]
    r = c["district"].put("/api/reduction/targets", json=target | {"year": 2035, "target_m2": -5})
    assert r.status_code == 400 and "应不小于 0" in r.json()["message"]
    r = c["district"].put("/api/reduction/targets", json=target | {"year": 2035, "unit_code": "T1"})
    assert r.status_code == 400 and "格式不符" in r.json()["message"]
    assert c["town1"].get("/api/reduction/progress", params={"by": "city"}).status_code == 400
    assert c["town1"].get("/api/reduction/plots", params={"limit": 0}).status_code == 400

    # uploads: wrong type, wrong content, a plot outside the street (QC refuses, lists issues)
    files = {"file": ("plots.txt", b"not a plot file", "text/plain")}
    r = c["town1"].post("/api/reduction/plots", files=files, data={"township": T1, "year": "2021"})
    assert r.status_code == 415 and "不支持的文件类型" in r.json()["message"]
    files = {"file": ("plots.geojson", b"\x00\x01garbage", "application/geo+json")}
    r = c["town1"].post("/api/reduction/plots", files=files, data={"township": T1, "year": "2021"})
    assert r.status_code == 415
    r = c["town1"].post("/api/reduction/plots", data={"township": T1, "year": "2021"})
    assert r.status_code == 400 and "缺少必填项" in r.json()["message"]
    stray = env["plots"][T2].iloc[3:].assign(plot_id="P9")
    r = _upload(c["town1"], stray, T1, dry_run=True)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "reduction_plots_refused" and "未写入" in body["message"]
    assert {i["check"] for i in body["data"]["issues"]} >= {"outside_unit"}

    # jobs are checked before they are queued
    r = c["district"].post("/api/reduction/acceptance", json={"year": 2021, "survey": "1999"})
    assert r.status_code == 404 and r.json()["message"]
    r = c["district"].post("/api/reduction/acceptance", json={"year": 2022, "survey": "2021"})
    assert r.status_code == 422 and "不符" in r.json()["message"]
    r = c["district"].post("/api/reduction/acceptance", json={"year": 2021, "survey": "a\x01b"})
    assert r.status_code == 400
    r = c["admin"].post("/api/reduction/rebuild", json={"survey": "nope"})
    assert r.status_code == 404

    # transfers: the pack's ratio cap, an unknown receiving unit
    cap = float(param(env["pack"], "transfer_ratio_max"))
    tr = {"transfer_id": "B1", "from_unit": T1, "to_unit": T2, "year": 2021, "quota_m2": 100.0}
    r = c["town1"].post("/api/reduction/transfers", json=tr | {"ratio": cap * 1.5})
    assert r.status_code == 422 and "超过上限" in r.json()["message"]
    r = c["town1"].post(
        "/api/reduction/transfers", json=tr | {"ratio": cap, "to_unit": "110105999000"}
    )
    assert r.status_code == 422 and "不是已知单位" in r.json()["message"]
    r = c["town1"].post("/api/reduction/transfers", json=tr | {"ratio": 0.5, "compensation": [""]})
    assert r.status_code == 400
    assert json.dumps(c["town1"].get("/api/reduction/transfers").json()).count('"B1"') == 0


def test_malformed_transfer_record_is_a_4xx(env):
    """The generic records API cannot write transfers; one written around it is a 4xx, not a 500."""
    c = env["c"]
    r = c["town1"].post(
        "/api/records/reduction_transfer",
        json={"key": "junk", "data": {"from_unit": T1}, "jurisdiction": T1},
    )
    assert r.status_code == 404, r.text
    with open_store(env["uri"]) as st:
        st.put_record(
            "reduction_transfer",
            "junk",
            {"from_unit": T1},
            expected_version=None,
            actor="t",
            jurisdiction=T1,
        )
    try:
        for url in ("/api/reduction/transfers", "/api/reduction/balance"):
            got = c["town1"].get(url)
            if url.endswith("balance") and got.status_code == 200:
                assert got.json()["rows"] == []  # no ledger yet: nothing to balance
                continue
            assert got.status_code == 422 and "格式有误" in got.json()["message"], got.text
    finally:
        with open_store(env["uri"]) as st:
            st.delete_record("reduction_transfer", "junk", expected_version=1, actor="t")
    assert c["town1"].get("/api/reduction/transfers").status_code == 200
