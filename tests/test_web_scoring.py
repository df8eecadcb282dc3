"""REST API of site scoring (/api/scoring) on both backends.

Sites, stops, the facility-gap table and the AHP judgements are the SYNTHETIC Chaoyang
micro-centre demo (made up, flagged synthetic) placed in the real street boundaries of
tests/data; the township sites are synthetic points inside 建外街道. Figures are checked
against the scoring service and library called directly on the same workspace.
"""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import unquote

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from yizhangtu.scoring import ahp_weights, build_demo_sites, sensitivity_analysis
from yizhangtu.services.scoring import RESULTS, save_config, score_workspace
from yizhangtu.store import LayerSpec, open_store
from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace

DISTRICT, TOWN1 = "110105", "110105001"
AHP = [[1, "1/2", "1/3"], [2, 1, "1/2"], [3, 2, 1]]  # the demo's synthetic judgements


def _mc_config(d) -> dict:
    m = {
        k: v
        for k, v in d.mapping.items()
        if k in ("title", "synthetic", "source", "criteria", "weights", "method", "normalisation")
    }
    m["sites"] = {"layer": "micro_centres", "id_field": "site_id", "name_field": "name"}
    m["layers"] = {"transit_stops": {"layer": "stops_ws"}}
    m["tables"] = {"facility_gap": {"table": "facility_gap"}}
    m["boundaries"] = {"layer": "streets"}
    return m


def _t1_config() -> dict:
    return {
        "title": "建外街道站点评价(合成数据)",
        "synthetic": True,
        "sites": {"layer": "sites_jianwai", "id_field": "site_id", "name_field": "name"},
        "criteria": [
            {
                "name": "transport",
                "label": "交通便捷性",
                "source": {"kind": "distance_to_nearest", "layer": "stops_ws"},
                "direction": "cost",
            },
            {
                "name": "feasibility",
                "label": "可实施性",
                "source": {"kind": "manual", "values": {"J1": 3, "J2": 8, "J3": 5}},
            },
        ],
        "weights": {"direct": {"transport": 0.6, "feasibility": 0.4}},
    }


def _jianwai_sites(streets: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    poly = streets.loc[streets["code"] == "110105001000"].geometry.iloc[0]
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = poly.bounds
    pts: list = []
    while len(pts) < 3:
        p = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if poly.contains(p):
            pts.append(p)
    return gpd.GeoDataFrame(
        {
            "site_id": ["J1", "J2", "J3"],
            "name": ["建外一号站(合成)", "建外二号站(合成)", "建外三号站(合成)"],
            "street_code": "110105001000",
            "synthetic": True,
        },
        geometry=pts,
        crs=4490,
    )


def _wait(app, c, job_id: str) -> dict:
    assert app.state.rt.jobs.wait(job_id, 120)
    j = c.get(f"/api/jobs/{job_id}").json()
    assert j["status"] == "succeeded", j
    return j


def _start(app, c, body: dict) -> dict:
    r = c.post("/api/scoring/runs", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/jobs/{r.json()['job']['id']}"
    return _wait(app, c, r.json()["job"]["id"])


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_scoring_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seed_workspace(uri, streets_path=chaoyang_path, parcels=40)
        streets = gpd.read_file(chaoyang_path).set_crs(4490, allow_override=True)
        d = build_demo_sites(streets)
        with open_store(uri) as st:
            st.write_snapshot(
                LayerSpec(
                    name="micro_centres",
                    kind="project",
                    title="微中心站点(合成数据)",
                    id_field="site_id",
                    jurisdiction_field="street_code",
                    synthetic=True,
                ),
                [d.sites],
                label="2022",
                actor="seed",
            )
            st.write_snapshot(
                LayerSpec(name="sites_jianwai", kind="project", jurisdiction_field="street_code"),
                [_jianwai_sites(streets)],
                label="2022",
                actor="seed",
            )
            st.write_snapshot(
                LayerSpec(name="stops_ws", kind="other", title="站点(合成数据)", synthetic=True),
                [d.layers["transit_stops"]],
                label="2022",
                actor="seed",
            )
            st.write_table("facility_gap", d.tables["facility_gap"], actor="seed")
            save_config(st, "mc", _mc_config(d), actor="seed", jurisdiction=DISTRICT)
            save_config(st, "cw", _mc_config(d) | {"title": "全市通用(合成)"}, actor="seed")
            save_config(st, "t1", _t1_config(), actor="seed", jurisdiction=TOWN1)
        app = make_app(uri, base / "reports")
        users = ("admin", "district", "town1", "town2", "citizen")
        c = {"anon": client(app)} | {u: client(app, u) for u in users}
        try:
            job = _start(app, c["district"], {"config": "mc"})
            yield {"app": app, "uri": uri, "c": c, "demo": d, "job": job, "base": base}
        finally:
            app.state.rt.close()


def _direct(env, **kw):
    with open_store(env["uri"]) as st:
        return score_workspace(st, "mc", actor="check", persist=False, **kw)


def test_configs_listed_by_jurisdiction_with_ahp_figures(env):
    c = env["c"]
    keys = {
        u: {x["key"] for x in c[u].get("/api/scoring/configs").json()["configs"]}
        for u in c
        if u not in ("anon", "citizen")
    }
    assert keys == {
        "admin": {"mc", "cw", "t1"},
        "district": {"mc", "cw", "t1"},
        "town1": {"cw", "t1"},
        "town2": {"cw"},
    }
    r = c["district"].get("/api/scoring/configs/mc")
    assert r.status_code == 200, r.text
    body = r.json()
    s = body["summary"]
    labels = ["交通便捷性", "公共设施改善需求", "可实施性"]
    expect = ahp_weights(AHP, labels)
    assert s["valid"] and s["weight_mode"] == "ahp_matrix" and s["method_label"] == "加权求和"
    assert s["cr"] == pytest.approx(expect.cr) and s["ahp"]["cr"] <= s["ahp"]["max_cr"] == 0.10
    assert s["ahp"]["lambda_max"] == pytest.approx(expect.lambda_max)
    assert s["ahp"]["matrix"][0] == pytest.approx([1, 0.5, 1 / 3])
    assert s["ahp"]["given"][0] == [1, "1/2", "1/3"]
    assert [s["weights"][n] for n in ("transport", "facility_need", "feasibility")] == (
        pytest.approx(list(expect.weights))
    )
    assert [x["label"] for x in s["criteria"]] == labels
    assert body["version"] == 1 and body["jurisdiction"] == DISTRICT
    assert c["town1"].get("/api/scoring/configs/mc").status_code == 404
    assert c["town1"].get("/api/scoring/configs/cw").status_code == 200
    assert c["anon"].get("/api/scoring/configs").status_code == 401
    assert c["citizen"].get("/api/scoring/configs/mc").status_code == 403
    r = c["district"].get("/api/scoring/configs/bad key")
    assert r.status_code == 400 and "路径参数" in r.json()["message"]


def test_put_config_validates_locks_and_stays_in_jurisdiction(env):
    c, d = env["c"], env["demo"]
    cfg = _mc_config(d)
    r = c["district"].put("/api/scoring/configs/mc_new", json={"config": cfg})
    assert r.status_code == 200, r.text
    assert r.json()["created"] and r.json()["version"] == 1 and r.json()["jurisdiction"] == DISTRICT
    upd = cfg | {"title": "改名(合成)"}
    r = c["district"].put("/api/scoring/configs/mc_new", json={"config": upd, "version": 1})
    assert r.status_code == 200 and r.json()["version"] == 2 and not r.json()["created"]
    assert r.json()["config"]["title"] == "改名(合成)"
    r = c["admin"].put("/api/scoring/configs/mc_new", json={"config": cfg, "version": 1})
    assert r.status_code == 409 and r.json()["data"]["version"] == 2
    r = c["district"].put("/api/scoring/configs/mc_new", json={"config": cfg})
    assert r.status_code == 409 and "版本号" in r.json()["message"]
    # an inconsistent AHP matrix is refused with its CR and the worst judgements
    bad = cfg | {"weights": {"ahp": {"matrix": [[1, 9, "1/9"], ["1/9", 1, 9], [9, "1/9", 1]]}}}
    r = c["district"].put("/api/scoring/configs/mc_bad", json={"config": bad})
    assert r.status_code == 422 and r.json()["error"] == "ahp_inconsistent"
    assert "CR = " in r.json()["message"] and "> 0.10" in r.json()["message"]
    assert r.json()["data"]["cr"] > 0.1
    for garbage in ({"criteria": [1], "weights": {}}, {"criteria": "x"}, {"weights": 5}):
        r = c["district"].put("/api/scoring/configs/mc_bad", json={"config": garbage})
        assert r.status_code == 422, r.text
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["message"])
    assert c["district"].get("/api/scoring/configs/mc_bad").status_code == 404
    r = c["district"].put("/api/scoring/configs/mc_bad", json={"config": cfg, "version": 0})
    assert r.status_code == 400 and "应不小于 1" in r.json()["message"]
    # jurisdiction: townships cannot see the district's configs nor write elsewhere
    r = c["town1"].put("/api/scoring/configs/mc_new", json={"config": cfg, "version": 2})
    assert r.status_code == 404
    r = c["town1"].put(
        "/api/scoring/configs/t2cfg", json={"config": cfg, "jurisdiction": "110105002"}
    )
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"
    # city-wide configs: readable by all staff, changed only by a city administrator
    r = c["district"].put("/api/scoring/configs/cw", json={"config": cfg, "version": 1})
    assert r.status_code == 403 and "市级管理员" in r.json()["message"]
    assert c["citizen"].put("/api/scoring/configs/x", json={"config": cfg}).status_code == 403
    assert c["anon"].put("/api/scoring/configs/x", json={"config": cfg}).status_code == 401


def test_run_job_persists_ranking_with_per_criterion_scores(env):
    c, job = env["c"], env["job"]
    res = job["result"]
    direct = _direct(env)
    assert res["run_id"] == direct.run_id and res["provenance_id"] == direct.provenance_id
    assert [x["site_id"] for x in res["ranking"]] == list(direct.result.table.index)
    r = c["district"].get(f"/api/scoring/runs/{res['run_id']}")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["method"] == "weighted" and run["method_label"] == "加权求和"
    assert run["jurisdiction"] == DISTRICT and run["synthetic"] and not run["config_changed"]
    assert run["ahp_cr"] == pytest.approx(direct.result.ahp.cr) and run["weight_method"] == "ahp"
    t = direct.result.table
    assert [s["site_id"] for s in run["sites"]] == list(t.index)
    assert [s["rank"] for s in run["sites"]] == list(t["rank"])
    assert np.allclose([s["score"] for s in run["sites"]], t["score"])
    for s in run["sites"]:
        for name, v in s["criteria"].items():
            assert v["raw"] == pytest.approx(direct.result.raw.at[s["site_id"], name])
            assert v["normalised"] == pytest.approx(direct.result.normalised.at[s["site_id"], name])
            assert v["contribution"] == pytest.approx(
                direct.result.contributions.at[s["site_id"], name]
            )
            assert v["weight"] == pytest.approx(direct.result.weights[name])
    assert {x["label"] for x in run["criteria"]} == {"交通便捷性", "公共设施改善需求", "可实施性"}
    with open_store(env["uri"]) as st:
        assert st.get_record(RESULTS, res["run_id"]).data["provenance_id"] == res["provenance_id"]
        assert st.get_provenance(res["provenance_id"]).kind == "scoring"
    # visible to the district and above, not to townships
    assert c["admin"].get(f"/api/scoring/runs/{res['run_id']}").status_code == 200
    assert c["town1"].get(f"/api/scoring/runs/{res['run_id']}").status_code == 404
    listed = c["district"].get("/api/scoring/runs").json()["runs"]
    assert res["run_id"] in {x["run_id"] for x in listed}
    assert c["town1"].get("/api/scoring/runs").json()["runs"] == []
    # TOPSIS, as asked for in the request
    top = _start(env["app"], c["district"], {"config": "mc", "method": "topsis"})["result"]
    direct_t = _direct(env, method="topsis")
    run_t = c["district"].get(f"/api/scoring/runs/{top['run_id']}").json()
    assert run_t["method"] == "topsis" and "TOPSIS" in run_t["method_label"]
    assert np.allclose([s["score"] for s in run_t["sites"]], direct_t.result.table["score"])


def test_runs_refused_outside_jurisdiction_and_township_runs_own_sites(env):
    c, app = env["c"], env["app"]
    r = c["town1"].post("/api/scoring/runs", json={"config": "mc"})
    assert r.status_code == 404
    # the city-wide config reads micro_centres, whose sites lie in other streets
    r = c["town1"].post("/api/scoring/runs", json={"config": "cw"})
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"
    assert "micro_centres" in r.json()["message"]
    r = c["town1"].post("/api/scoring/runs", json={"config": "t1", "sites_layer": "micro_centres"})
    assert r.status_code == 403
    for body in ({"config": "t1", "method": "best"}, {"config": "../x"}, {}):
        r = c["town1"].post("/api/scoring/runs", json=body)
        assert r.status_code == 400 and r.json()["message"].startswith("请求参数有误")
    assert c["anon"].post("/api/scoring/runs", json={"config": "t1"}).status_code == 401
    assert c["citizen"].post("/api/scoring/runs", json={"config": "t1"}).status_code == 403
    res = _start(app, c["town1"], {"config": "t1"})["result"]
    with open_store(env["uri"]) as st:
        direct = score_workspace(st, "t1", actor="check", persist=False)
    assert [x["site_id"] for x in res["ranking"]] == list(direct.result.table.index)
    assert np.allclose([x["score"] for x in res["ranking"]], direct.result.table["score"])
    assert c["district"].get(f"/api/scoring/runs/{res['run_id']}").json()["jurisdiction"] == TOWN1
    assert c["town2"].get(f"/api/scoring/runs/{res['run_id']}").status_code == 404
    # a configuration changed since the run: dossiers cannot be reproduced (409)
    cfg = c["town1"].get("/api/scoring/configs/t1").json()
    new = cfg["config"] | {"title": "建外街道站点评价 修订(合成数据)"}
    r = c["town1"].put("/api/scoring/configs/t1", json={"config": new, "version": cfg["version"]})
    assert r.status_code == 200
    r = c["town1"].post(f"/api/scoring/runs/{res['run_id']}/dossiers", json={})
    assert r.status_code == 409 and r.json()["error"] == "config_changed"


def test_sensitivity_matches_the_library(env):
    c = env["c"]
    run_id = env["job"]["result"]["run_id"]
    direct = _direct(env).result
    r = c["district"].post(f"/api/scoring/runs/{run_id}/sensitivity")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["step"] == pytest.approx(0.10) and s["method"] == "weighted"
    cols = ["criterion", "change", "site_id", "base_rank", "new_rank", "rank_kept"]
    got = pd.DataFrame(s["rows"]).sort_values(cols[:3], ignore_index=True)
    want = direct.sensitivity.sort_values(cols[:3], ignore_index=True)
    assert got[cols].to_dict("records") == want[cols].astype(object).to_dict("records")
    assert np.allclose(got["weight"], want["weight"])
    assert [x["name"] for x in s["criteria"]] == ["transport", "facility_need", "feasibility"]
    assert s["stable"] == {str(k): bool(v) for k, v in direct.table["rank_stable"].items()}
    assert {x["change"] for x in s["changes"]} == {"+10%", "-10%"}
    directions = {c_.name: c_.direction for c_ in direct.config.criteria}
    want3 = sensitivity_analysis(
        "weighted", direct.raw, direct.normalised, direct.weights, directions, step=0.3
    )
    r = c["district"].post(f"/api/scoring/runs/{run_id}/sensitivity", json={"step": 0.3})
    got3 = pd.DataFrame(r.json()["rows"]).sort_values(cols[:3], ignore_index=True)
    want3 = want3.sort_values(cols[:3], ignore_index=True)
    assert list(got3["new_rank"]) == list(want3["new_rank"]) and "+30%" in set(got3["change"])
    r = c["district"].post(f"/api/scoring/runs/{run_id}/sensitivity", json={"step": 0.9})
    assert r.status_code == 400 and "应不大于 0.5" in r.json()["message"]
    assert c["town1"].post(f"/api/scoring/runs/{run_id}/sensitivity").status_code == 404
    assert c["anon"].post(f"/api/scoring/runs/{run_id}/sensitivity").status_code == 401


def test_dossier_job_writes_listed_reports(env):
    c, app = env["c"], env["app"]
    run_id = env["job"]["result"]["run_id"]
    top = [x["site_id"] for x in env["job"]["result"]["ranking"][:2]]
    names = {x["site_id"]: x["name"] for x in env["job"]["result"]["ranking"]}
    r = c["district"].post(f"/api/scoring/runs/{run_id}/dossiers", json={"site_ids": top})
    assert r.status_code == 202, r.text
    res = _wait(app, c["district"], r.json()["job"]["id"])["result"]
    assert len(res["reports"]) == 2 and res["synthetic"]
    listed = {x["name"]: x for x in c["district"].get("/api/reports").json()["reports"]}
    for rep, sid in zip(res["reports"], top, strict=True):
        assert rep["report"] in listed and listed[rep["report"]]["kind"] == "scoring_dossier"
        assert listed[rep["report"]]["synthetic"] and "合成数据" in listed[rep["report"]]["title"]
        d = c["district"].get(rep["url"])
        assert d.status_code == 200 and names[sid] in d.text and "合成数据" in d.text
        assert "data:image/png;base64" in d.text  # the site map
        assert unquote(rep["url"]).endswith(f"_{sid}_一站一档.html")
        assert c["town1"].get(rep["url"]).status_code == 404
    assert c["admin"].get(res["reports"][0]["url"]).status_code == 200
    # one combined PDF without maps
    r = c["district"].post(
        f"/api/scoring/runs/{run_id}/dossiers",
        json={"format": "pdf", "site_ids": top[:1], "combined": True, "with_map": False},
    )
    pdf = _wait(app, c["district"], r.json()["job"]["id"])["result"]["reports"]
    assert len(pdf) == 1
    data = c["district"].get(pdf[0]["url"]).content
    assert data[:5] == b"%PDF-"
    if shutil.which("pdftotext"):
        path = env["base"] / "reports" / pdf[0]["report"]
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert names[top[0]] in text.replace("\n", "")
    # refused before any job: unknown site, bad format, outsiders
    r = c["district"].post(f"/api/scoring/runs/{run_id}/dossiers", json={"site_ids": ["NOPE"]})
    assert r.status_code == 404 and "NOPE" in r.json()["message"]
    r = c["district"].post(f"/api/scoring/runs/{run_id}/dossiers", json={"format": "doc"})
    assert r.status_code == 400
    assert c["town1"].post(f"/api/scoring/runs/{run_id}/dossiers").status_code == 404
    assert c["citizen"].post(f"/api/scoring/runs/{run_id}/dossiers").status_code == 403
