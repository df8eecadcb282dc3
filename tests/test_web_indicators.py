"""The indicators / city health check API (/api/indicators) on both backends.

The workspace is the web test workspace (yizhangtu.web.testing.seed_workspace: the 43 real
Chaoyang streets, a SYNTHETIC survey over the first four streets with 2020 and 2021 snapshots,
one user per role) plus what an evaluation of Chaoyang needs: the district outline dissolved
from the streets (and a shifted copy standing for 丰台区, synthetic, so a district user has a
district outside its jurisdiction), the census sample and the district figures of seed 002
(``stat_*``). The survey covers about 90 % of its four streets, so runs use
``min_coverage=0.8``.

Figures are checked against an independent computation (ellipsoidal areas of the survey
parcels classified with yizhangtu.codes) and against the services called directly.
"""

from __future__ import annotations

import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from shapely import affinity

from yizhangtu.codes import classify
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.indicators import list_catalogues, load_catalogue
from yizhangtu.services.demo import DemoContext
from yizhangtu.services.demo_indicators import write_seed_statistics
from yizhangtu.services.indicators import (
    input_status,
    load_evaluations,
    workspace_inputs,
)
from yizhangtu.services.provenance import explain_chain
from yizhangtu.settings import get_settings
from yizhangtu.store import LayerSpec, open_store
from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace

API = "/api/indicators"
STREET_RUN = {"unit": "朝阳区", "year": 2021, "level": "street", "min_coverage": 0.8}
DISTRICT_RUN = {
    "unit": "110105",
    "year": 2021,
    "level": "district",
    "catalogues": ["chaoyang_local"],
}
TOWN1 = "110105001000"  # the street of user town1 (jurisdiction 110105001)


def _finish(app, c, job_id: str) -> dict:
    assert app.state.rt.jobs.wait(job_id, 120), "job did not finish"
    j = c.get(f"/api/jobs/{job_id}").json()
    assert j["status"] == "succeeded", j
    return j


def _submit(app, c, path: str, body: dict) -> tuple[dict, dict]:
    r = c.post(path, json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    assert r.headers["location"] == f"/api/jobs/{job_id}"
    return r.json(), _finish(app, c, job_id)


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_ind_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = seed_workspace(uri, streets_path=chaoyang_path)
        streets = seeded["streets"]
        with open_store(uri) as st:
            outline = shapely.union_all(np.asarray(streets.geometry.values, dtype=object))
            districts = gpd.GeoDataFrame(
                {"adcode": ["110105", "110106"], "name": ["朝阳区", "丰台区"]},
                geometry=[outline, affinity.translate(outline, -0.25, -0.12)],
                crs=4490,
            )
            st.write_snapshot(
                LayerSpec(
                    name="bj_districts",
                    kind="boundary",
                    title="区县界 (丰台区为合成)",
                    synthetic=True,
                ),
                [districts],
                label="2023",
                actor="test",
            )
            census = pd.read_csv(
                Path(__file__).parent / "data" / "census2020_sample.csv", dtype={"adcode": str}
            )
            st.write_table("census2020", census, actor="test")
            write_seed_statistics(
                DemoContext(
                    store=st,
                    out_dir=base,
                    shared=base,
                    settings=get_settings(actor="test"),
                    log=lambda _m: None,
                )
            )
        app = make_app(uri, base / "reports")
        c = {u: client(app, u) for u in ("admin", "district", "town1", "town2", "citizen")}
        c["anon"] = client(app)
        try:
            street_202, street_job = _submit(app, c["district"], f"{API}/runs", STREET_RUN)
            _, district_job = _submit(app, c["admin"], f"{API}/runs", DISTRICT_RUN)
            yield {
                "app": app,
                "uri": uri,
                "c": c,
                "base": base,
                "street_202": street_202,
                "street_job": street_job,
                "street_id": street_job["result"]["run_id"],
                "district_id": district_job["result"]["run_id"],
                **seeded,
            }
        finally:
            app.state.rt.close()


def _outsiders(env, method: str, url: str, **kw) -> None:
    assert env["c"]["anon"].request(method, url, **kw).status_code == 401
    r = env["c"]["citizen"].request(method, url, **kw)
    assert r.status_code == 403 and "无此权限" in r.json()["message"]


# -- catalogues ------------------------------------------------------------------------------


def test_catalogues_list_and_detail(env):
    c = env["c"]["town1"]
    rows = {r["id"]: r for r in c.get(f"{API}/catalogues").json()["catalogues"]}
    assert set(rows) == set(list_catalogues())
    for cid, r in rows.items():
        cat = load_catalogue(cid)
        assert r["indicators"] == len(cat) and r["computable"] == len(cat.computable_ids())
        assert r["with_targets"] == sum(1 for i in cat if i.targets)
        assert sum(r["formula_kinds"].values()) == len(cat)
    tdt = load_catalogue("tdt1063_style")
    assert rows["tdt1063_style"]["dimensions"] == list(tdt.dimension_order())

    d = c.get(f"{API}/catalogues/chaoyang_local").json()
    local = load_catalogue("chaoyang_local")
    assert d["catalogue"]["title"] == local.title
    assert [i["id"] for i in d["indicators"]] == [i.id for i in local]
    pop = next(i for i in d["indicators"] if i["id"] == "resident_population")
    assert pop["unit"] == "万人" and pop["direction"] == "lower_better"
    assert pop["formula"]["kind"] == "from_table"
    assert pop["formula"]["value"] == {
        "kind": "table",
        "groups": [],
        "table": "population",
        "column": "pop_total",
        "facilities": None,
        "unit": "人",
        "label": None,
    }
    (target,) = pop["targets"]
    assert (target["year"], target["value"], target["kind"]) == (2035, 333.4, "limit")
    assert target["clause"] == pop["clause"] == "002 一(一)二"
    assert (
        pop["warning"]["yellow_within_pct"]
        == local.get("resident_population").warning.yellow_within_pct
    )
    # one dimension only
    dim = local.indicators[0].dimension
    only = c.get(f"{API}/catalogues/chaoyang_local", params={"dimension": dim}).json()
    assert {i["dimension"] for i in only["indicators"]} == {dim}
    assert len(only["indicators"]) == sum(1 for i in local if i.dimension == dim)
    # packaged ids only: no paths, no unknown names
    r = c.get(f"{API}/catalogues/nope")
    assert r.status_code == 404 and "没有内置指标目录" in r.json()["message"]
    assert c.get(f"{API}/catalogues/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    r = c.get(f"{API}/catalogues/Bad.Name")
    assert r.status_code == 400 and "格式不符" in r.json()["message"]
    _outsiders(env, "GET", f"{API}/catalogues")
    _outsiders(env, "GET", f"{API}/catalogues/chaoyang_local")


# -- inputs ----------------------------------------------------------------------------------


def test_inputs_match_the_service_and_name_what_is_missing(env):
    params = {"unit": "朝阳区", "year": 2021, "catalogue": "tdt1063_style", "min_coverage": 0.8}
    r = env["c"]["district"].get(f"{API}/inputs", params=params)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["unit"], d["unit_code"], d["level"]) == ("朝阳区", "110105", "street")
    assert d["units"] == 44 and d["catalogues"] == ["tdt1063_style"]
    with open_store(env["uri"]) as st:
        ws = workspace_inputs(st, year=2021, unit="朝阳区", level="street", min_coverage=0.8)
        want = input_status(ws, load_catalogue("tdt1063_style"))
    got = pd.DataFrame(d["inputs"])
    assert got[["kind", "name", "available", "from", "indicators"]].to_dict("records") == (
        want[["kind", "name", "available", "from", "indicators"]].to_dict("records")
    )
    avail = dict(zip(got["name"], got["available"], strict=True))
    assert avail["construction"] and not avail["basic_farmland"]
    assert avail["population.pop_total"]  # census2020 + stat_population
    by = {i["indicator"]: i for i in d["indicators"]}
    assert len(by) == len(load_catalogue("tdt1063_style"))
    assert by["construction_land_area"]["ready"]
    assert by["construction_land_area"]["inputs"][0]["name"] == "construction"
    farm = by["basic_farmland_area"]
    assert not farm["ready"] and any("basic_farmland" in m for m in farm["missing"])
    assert d["counts"]["ready"] == sum(1 for i in d["indicators"] if i["ready"])
    assert 0 < d["counts"]["ready"] < d["counts"]["with_formula"]
    assert any("覆盖不足" in n for n in d["notes"])
    # a township may check its district's inputs, without notes naming other streets
    t = env["c"]["town1"].get(f"{API}/inputs", params=params).json()
    assert t["inputs"] == d["inputs"] and t["notes"] == [] and t["notes_hidden"]
    assert d["notes_hidden"] is False
    # … but not another district's; unknown units and bad parameters are Chinese 4xx
    r = env["c"]["district"].get(f"{API}/inputs", params=params | {"unit": "丰台区"})
    assert r.status_code == 403 and "不在你的辖区" in r.json()["message"]
    r = env["c"]["district"].get(f"{API}/inputs", params=params | {"unit": "不存在区"})
    assert r.status_code == 404 and "找不到单元" in r.json()["message"]
    r = env["c"]["district"].get(f"{API}/inputs", params=params | {"catalogue": "../x.yaml"})
    assert r.status_code == 400 and "请求参数有误" in r.json()["message"]
    r = env["c"]["district"].get(f"{API}/inputs", params=params | {"level": "city"})
    assert r.status_code == 400 and "格式不符" in r.json()["message"]
    r = env["c"]["district"].get(f"{API}/inputs", params={"unit": "朝阳区"})
    assert r.status_code == 400 and "缺少必填项" in r.json()["message"]
    _outsiders(env, "GET", f"{API}/inputs?unit=朝阳区&year=2021")


# -- evaluation job and stored runs ----------------------------------------------------------


def _town1_construction_km2(env) -> float:
    """Construction land of town1's street in the 2021 survey, computed from the parcels."""
    s = env["survey_2021"]
    s = s[s["ZLDWDM"].astype(str) == TOWN1]
    cons = classify(s["DLBM"].astype(str), system="sandiao", group="construction") == "建设用地"
    return float(ellipsoidal_area(s.geometry)[cons.to_numpy()].sum() / 1e6)


def test_evaluation_job_stores_a_run_with_the_right_figures(env):
    job = env["street_job"]
    assert env["street_202"]["url"] == f"/api/jobs/{job['id']}"
    assert job["kind"] == "indicators_evaluate" and job["owner"] == "district"
    res = job["result"]
    rid = env["street_id"]
    assert res["url"] == f"/api/indicators/runs/{rid}" and res["provenance_id"] == rid
    assert (res["unit"], res["unit_code"], res["level"], res["year"]) == (
        "朝阳区",
        "110105",
        "street",
        2021,
    )
    assert res["units"] == 44 and res["synthetic"] and res["history_years"] == [2020]

    d = env["c"]["district"].get(f"{API}/runs/{rid}", params={"limit": 10000}).json()
    run = d["run"]
    assert run["units"] == 44 and run["includes_aggregate"] and run["area_name"] == "朝阳区"
    assert run["catalogue_id"] == "chaoyang_local+tdt1063_style"
    assert d["total"] == run["rows"] == len(d["rows"]) == res["rows"]
    assert run["status_counts"] == res["status_counts"]
    # the rows are the ledger's, and the figures are right
    with open_store(env["uri"]) as st:
        led = load_evaluations(st, year=2021, unit="朝阳区", level="street")
    led = led[led["provenance_id"] == rid]
    got = pd.DataFrame(d["rows"])
    assert len(got) == len(led)
    mg = got.merge(led, on=["indicator", "unit_id"], suffixes=("", "_led"))
    assert len(mg) == len(led)
    assert (mg["status"] == mg["status_led"]).all()
    both = mg["value"].notna()
    assert (both == mg["value_led"].notna()).all()
    assert np.allclose(mg.loc[both, "value"].astype(float), mg.loc[both, "value_led"].astype(float))
    rows = {(r["indicator"], r["unit_id"]): r for r in d["rows"]}
    cons = rows[("construction_land_area", TOWN1)]
    assert cons["value"] == pytest.approx(_town1_construction_km2(env), rel=1e-4)
    assert cons["value_unit"] == "km2" and cons["unit_name"] == "建外街道"
    pop = rows[("resident_population", "110105")]
    assert pop["is_aggregate"] and pop["value"] == pytest.approx(344.9)
    assert (pop["target"], pop["status"], pop["target_clause"]) == (333.4, "未达标", "002 一(一)二")
    assert rows[("construction_land_area", "110105002000")]["value"] > 0
    # a street the survey does not cover says why
    far = rows[("construction_land_area", "110105030000")]
    assert far["value"] is None and far["status"] == "无法计算" and far["status_reason"]
    # filters and paging
    f = (
        env["c"]["district"]
        .get(f"{API}/runs/{rid}", params={"indicator": "construction_land_area", "limit": 5})
        .json()
    )
    assert f["total"] == 44 and len(f["rows"]) == 5 and f["limit"] == 5
    f = (
        env["c"]["district"]
        .get(f"{API}/runs/{rid}", params={"status": "not_met", "unit_id": "110105"})
        .json()
    )
    assert {r["indicator"] for r in f["rows"]} >= {"resident_population"}
    assert all(r["status"] == "未达标" for r in f["rows"])


def test_run_list_and_rows_stay_inside_the_jurisdiction(env):
    rid, did = env["street_id"], env["district_id"]
    with open_store(env["uri"]) as st:
        led = load_evaluations(st)
    for user, prefix in (("admin", "11"), ("district", "110105"), ("town1", "110105001")):
        mine = led[led["unit_id"].astype(str).str.startswith(prefix)]
        listed = env["c"][user].get(f"{API}/runs").json()
        assert {r["run_id"] for r in listed["runs"]} == set(mine["provenance_id"]), user
        for r in listed["runs"]:
            sub = mine[mine["provenance_id"] == r["run_id"]]
            assert r["rows"] == len(sub) and r["units"] == sub["unit_id"].nunique()
    # a township sees its own street's rows of the street run: no aggregate, no other street
    t1 = env["c"]["town1"].get(f"{API}/runs/{rid}").json()
    assert {r["unit_id"] for r in t1["rows"]} == {TOWN1}
    assert t1["run"]["units"] == 1 and not t1["run"]["includes_aggregate"]
    assert (
        t1["total"]
        == len(load_catalogue("chaoyang_local")) + len(load_catalogue("tdt1063_style")) - 1
    )  # resident_population is in both; the local definition wins
    t1c = next(r for r in t1["rows"] if r["indicator"] == "construction_land_area")
    assert t1c["value"] == pytest.approx(_town1_construction_km2(env), rel=1e-4)
    t2 = env["c"]["town2"].get(f"{API}/runs/{rid}").json()
    assert {r["unit_id"] for r in t2["rows"]} == {"110105002000"}
    assert (
        env["c"]["town1"]
        .get(f"{API}/runs/{rid}", params={"unit_id": "110105002000"})
        .json()["rows"]
        == []
    )
    # the district-level run has only the district row: invisible to townships
    assert {r["run_id"] for r in env["c"]["town1"].get(f"{API}/runs").json()["runs"]} == {rid}
    r = env["c"]["town1"].get(f"{API}/runs/{did}")
    assert r.status_code == 404 and "不存在或没有你辖区内的单元" in r.json()["message"]
    assert env["c"]["town1"].get(f"{API}/runs/{did}/provenance").status_code == 404
    dd = env["c"]["district"].get(f"{API}/runs/{did}").json()
    assert [r["unit_id"] for r in dd["rows"]] == ["110105"] * len(load_catalogue("chaoyang_local"))
    # list filters
    lst = env["c"]["admin"].get(f"{API}/runs", params={"level": "district"}).json()["runs"]
    assert did in {r["run_id"] for r in lst} and rid not in {r["run_id"] for r in lst}
    assert env["c"]["admin"].get(f"{API}/runs", params={"year": 2020}).json()["runs"] == []
    lst = env["c"]["admin"].get(f"{API}/runs", params={"area": "朝阳区", "limit": 1}).json()
    assert lst["total"] >= 2 and len(lst["runs"]) == 1
    _outsiders(env, "GET", f"{API}/runs")
    _outsiders(env, "GET", f"{API}/runs/{rid}")
    _outsiders(env, "GET", f"{API}/runs/{rid}/provenance")


def test_writes_stay_inside_the_jurisdiction(env):
    c = env["c"]
    r = c["town1"].post(f"{API}/runs", json=STREET_RUN)
    assert r.status_code == 403 and "不在你的辖区内" in r.json()["message"]
    r = c["district"].post(f"{API}/runs", json=STREET_RUN | {"unit": "丰台区"})
    assert r.status_code == 403 and r.json()["error"] == "outside_jurisdiction"
    r = c["town2"].post(f"{API}/health-check-reports", json=DISTRICT_RUN)
    assert r.status_code == 403
    _outsiders(env, "POST", f"{API}/runs", json=STREET_RUN)
    _outsiders(env, "POST", f"{API}/health-check-reports", json=DISTRICT_RUN)
    # nothing was queued for the refused requests
    kinds = [j["title"] for j in c["town1"].get("/api/jobs").json()["jobs"]]
    assert not any("指标评估" in k for k in kinds)


def test_bad_input_is_a_chinese_4xx(env):
    c = env["c"]["district"]
    cases = [
        (STREET_RUN | {"year": "abc"}, 400, "应为整数"),
        (STREET_RUN | {"year": 1800}, 400, "应不小于"),
        (STREET_RUN | {"level": "city"}, 400, "格式不符"),
        (STREET_RUN | {"catalogues": ["../../etc/passwd"]}, 400, "格式不符"),
        (STREET_RUN | {"catalogues": ["nope"]}, 404, "没有内置指标目录"),
        (STREET_RUN | {"unit": "不存在区"}, 404, "找不到单元"),
        (STREET_RUN | {"survey": "no_such_layer"}, 404, "no_such_layer"),
        (STREET_RUN | {"units_layer": "bj_districts"}, 404, "街道乡镇边界"),
        (STREET_RUN | {"min_coverage": 2}, 400, "应不大于"),
        ({"year": 2021}, 400, "缺少必填项"),
    ]
    for body, status, text in cases:
        r = c.post(f"{API}/runs", json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.json()["message"], (body, r.json())
    r = c.post(f"{API}/health-check-reports", json=DISTRICT_RUN | {"format": "docx"})
    assert r.status_code == 400 and "格式不符" in r.json()["message"]
    r = c.post(f"{API}/health-check-reports", json=DISTRICT_RUN | {"map_indicator": "nope"})
    assert r.status_code == 400 and "专题图指标" in r.json()["message"]
    r = c.post(f"{API}/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    r = c.get(f"{API}/runs/abcdef0123456789")
    assert r.status_code == 404 and "评估结果不存在" in r.json()["message"]
    assert c.get(f"{API}/runs/bad id!").status_code == 400
    assert c.get(f"{API}/runs", params={"limit": 0}).status_code == 400
    assert c.get(f"{API}/runs/{env['street_id']}", params={"limit": 10**6}).status_code == 400


def test_provenance_of_a_run(env):
    rid = env["street_id"]
    d = env["c"]["town1"].get(f"{API}/runs/{rid}/provenance").json()
    with open_store(env["uri"]) as st:
        chain = explain_chain(st, rid)
        snaps = {s.label: s.id for s in st.snapshots("survey")}
    assert d["record"]["id"] == rid and d["record"]["kind"] == "indicator_evaluation"
    assert d["record"]["result_hash"] == chain["record"]["result_hash"]
    assert d["record"]["created_by"] == "district"
    assert d["record"]["params"]["options"]["min_coverage"] == 0.8
    assert len(d["inputs"]) == len(chain["inputs"]) and all(i["present"] for i in d["inputs"])
    used = {(i["name"], i.get("snapshot_id")) for i in d["inputs"] if i["kind"] == "snapshot"}
    assert {("survey", snaps["2020"]), ("survey", snaps["2021"])} <= used
    tables = {i["name"] for i in d["inputs"] if i["kind"] == "table"}
    assert {"census2020", "stat_population"} <= tables
    assert d["appendix"][-1]["layer"] == f"indicator_evaluation {rid}"
    assert d["run"]["units"] == 1  # counted within town1's jurisdiction


def test_health_check_report_job_writes_listed_reports(env):
    app, c = env["app"], env["c"]["district"]
    both = ["chaoyang_local", "tdt1063_style"]
    body = DISTRICT_RUN | {"catalogues": both, "format": "html", "xlsx": True, "save": False}
    _, job = _submit(app, c, f"{API}/health-check-reports", body)
    res = job["result"]
    assert job["kind"] == "health_check_report" and res["saved"] is False
    assert "run_url" not in res  # not saved to the ledger
    assert res["provenance_id"] not in {r["run_id"] for r in c.get(f"{API}/runs").json()["runs"]}
    html, xlsx = res["files"]
    assert (html["format"], xlsx["format"]) == ("html", "xlsx") and res["report"] == html["report"]
    listed = {r["name"]: r for r in c.get("/api/reports").json()["reports"]}
    for f in (html, xlsx):
        assert listed[f["report"]]["kind"] == "health_check"
        assert listed[f["report"]]["jurisdiction"] == "110105" and listed[f["report"]]["synthetic"]
        assert "朝阳区2021年城市体检评估报告" in listed[f["report"]]["title"]
    page = c.get(html["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "朝阳区2021年城市体检评估报告" in text and "合成数据" in text
    assert res["provenance_id"] in text
    wb = openpyxl.load_workbook(io.BytesIO(c.get(xlsx["url"]).content), read_only=True)
    assert {"说明", "汇总", "评估结果", "预警清单"} <= set(wb.sheetnames)
    assert wb["评估结果"].max_row == res["rows"] + 1 == 129 + 1
    # the report's provenance is stored even though the run was not saved to the ledger
    prov = c.get(f"/api/provenance/{res['provenance_id']}").json()
    assert prov["record"]["kind"] == "indicator_evaluation"
    # another township does not see the district's reports
    t2 = env["c"]["town2"]
    assert not {html["report"], xlsx["report"]} & {
        r["name"] for r in t2.get("/api/reports").json()["reports"]
    }
    assert t2.get(html["url"]).status_code == 404

    # an Excel-only report of a saved district-level run
    body = DISTRICT_RUN | {"catalogues": ["tdt1063_style"], "format": "xlsx"}
    _, job = _submit(app, env["c"]["admin"], f"{API}/health-check-reports", body)
    res = job["result"]
    assert [f["format"] for f in res["files"]] == ["xlsx"] and res["saved"]
    run = env["c"]["admin"].get(res["run_url"]).json()
    assert run["run"]["level"] == "district" and run["run"]["catalogue_id"] == "tdt1063_style"
    rows = {r["indicator"]: r for r in run["rows"]}
    assert rows["resident_population"]["value"] == pytest.approx(344.9)
    wb = openpyxl.load_workbook(
        io.BytesIO(env["c"]["admin"].get(res["url"]).content), read_only=True
    )
    assert wb["评估结果"].max_row == len(load_catalogue("tdt1063_style")) + 1


def test_dashboard_summary_shows_only_units_inside_the_jurisdiction(env):
    # runs after the evaluation tests above, which persisted street-level results
    d = env["c"]["district"].get("/api/ui/indicators/summary", params={"level": "street"}).json()
    t = env["c"]["town1"].get("/api/ui/indicators/summary", params={"level": "street"}).json()
    assert d["available"] and {v["unit_id"] for v in d["map"]["values"]} - {TOWN1}
    assert t["available"] and {v["unit_id"] for v in t["map"]["values"]} == {TOWN1}
