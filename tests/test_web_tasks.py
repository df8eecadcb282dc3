"""REST API of task supervision (/api/tasks) on both backends.

Seed 003's work points are the packaged transcription; assigning them to two Chaoyang
townships, the progress reports, rectification items, target jurisdictions and projects are
SYNTHETIC (flagged so). Figures are checked against the task service called directly.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

import openpyxl
import pytest

from yizhangtu.services import tasks as svc
from yizhangtu.store import open_store
from yizhangtu.tasks import (
    TaskLedger,
    compile_yearly_list,
    library_from_mapping,
    load_departments,
    load_seed_tasks,
)
from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace

T1, T2 = "110105001", "110105002"
MID, END = "2021-09-30", "2022-01-10"


def _rect(i: int, **kw) -> dict:
    return {
        "id": f"ZG-{i:02d}",
        "title": f"整改事项 {i}(合成)",
        "responsible": "省自然资源厅",
        "found_on": "2021-03-01",
        "synthetic": True,
    } | kw


def _build(uri: str) -> dict:
    led = load_seed_tasks("hunan_2021")
    reg = load_departments("hunan")
    sets = {"hn_t1": (led.tasks[:8], T1), "hn_t2": (led.tasks[8:16], T2)}
    with open_store(uri) as st:
        for name, (tasks, jur) in sets.items():
            svc.import_ledger(
                st,
                TaskLedger(tasks=tasks, title="2021年重点任务(合成分配)", source=led.source),
                task_set=name,
                registry=reg,
                actor="seed",
                jurisdiction=jur,
                synthetic=True,
            )
        for tid, pct, day in (
            ("HN2021-01", 100, "2021-06-30"),
            ("HN2021-02", 80, "2021-09-15"),
            ("HN2021-09", 100, "2021-08-31"),
        ):
            svc.report_progress(
                st,
                tid,
                progress_pct=pct,
                reported_on=day,
                evidence=[f"合成佐证_{tid}.pdf"],
                actor="seed",
                expected_version=None,
                synthetic=True,
            )
        for item, jur, s in (
            (_rect(1, deadline="2021-06-30"), T1, "hn_t1"),  # overdue, open
            (
                _rect(2, deadline="2021-12-31", closed_on="2021-05-01", evidence=["验收.pdf"]),
                T1,
                "hn_t1",
            ),
            (_rect(3, deadline="2022-06-30"), T1, "hn_t1"),
            (_rect(4, deadline="2021-12-31"), T2, "hn_t2"),
        ):
            svc.add_rectification(st, item, task_set=s, actor="seed", jurisdiction=jur)
        # seed 000's targets carry a place name as jurisdiction; assign them to the townships
        for i, rec in enumerate(svc.load_seed_targets_into(st, actor="seed")):
            st.put_record(
                svc.TARGETS,
                rec.key,
                rec.data,
                expected_version=rec.version,
                actor="seed",
                jurisdiction=T1 if i < 2 else T2,
            )
        projects, progress = library_from_mapping(
            {
                "projects": [
                    {
                        "id": "P1",
                        "name": "道路(合成)",
                        "level": "市级",
                        "category": "C3",
                        "status": "在建",
                        "total_investment": 200,
                        "synthetic": True,
                        "year_plans": [{"year": 2022, "planned_investment": 100}],
                    },
                    {
                        "id": "P2",
                        "name": "学校(合成)",
                        "level": "区级",
                        "category": "C5",
                        "status": "前期推进",
                        "start_year": 2021,
                        "end_year": 2023,
                        "synthetic": True,
                    },
                ],
                "progress": [
                    {
                        "project_id": "P1",
                        "reported_on": "2022-03-31",
                        "progress_pct": 20,
                        "invested_to_date": 50,
                    }
                ],
            }
        )
        svc.import_projects(st, projects, progress, actor="seed", jurisdiction=T1)
        other, _ = library_from_mapping(
            {
                "projects": [
                    {
                        "id": "P3",
                        "name": "公园(合成)",
                        "level": "区级",
                        "category": "C3",
                        "status": "在建",
                        "synthetic": True,
                        "year_plans": [{"year": 2022}],
                    }
                ]
            }
        )
        svc.import_projects(st, other, actor="seed", jurisdiction=T2)
    return {
        "t1": [t.id for t in led.tasks[:8]],
        "t2": [t.id for t in led.tasks[8:16]],
        "projects": projects,
    }


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_tasks_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seed_workspace(uri, streets_path=chaoyang_path, parcels=40)
        built = _build(uri)
        app = make_app(uri, base / "reports")
        users = ("admin", "district", "town1", "town2", "dept", "citizen")
        c = {"anon": client(app)} | {u: client(app, u) for u in users}
        try:
            yield {"app": app, "uri": uri, "c": c, **built}
        finally:
            app.state.rt.close()


def _states(env, day: str, jur: list[str]) -> list:
    with open_store(env["uri"]) as st:
        return svc.task_states(st, dt.date.fromisoformat(day), jurisdictions=jur)


def test_task_ledger_by_jurisdiction_overdue_first(env):
    c = env["c"]
    r = c["town1"].get("/api/tasks/tasks", params={"at": MID})
    assert r.status_code == 200, r.text
    got = r.json()
    want = _states(env, MID, [T1])
    assert [t["task_id"] for t in got["tasks"]] == [s.task.id for s in want]
    assert sorted(t["task_id"] for t in got["tasks"]) == sorted(env["t1"])
    assert [t["status"] for t in got["tasks"]] == [s.status for s in want]
    assert [t["progress_pct"] for t in got["tasks"]] == [s.progress_pct for s in want]
    assert got["counts"] == {"overdue": 0, "behind": 6, "on_track": 1, "done": 1}
    assert all(t["jurisdiction"] == T1 and t["version"] >= 1 for t in got["tasks"])
    end = c["town1"].get("/api/tasks/tasks", params={"at": END}).json()["tasks"]
    assert [t["status"] for t in end[:7]] == ["overdue"] * 7 and end[-1]["status"] == "done"
    assert end[-1]["task_id"] == "HN2021-01"
    # the district sees both townships; a township only its own
    both = c["district"].get("/api/tasks/tasks", params={"at": MID}).json()["tasks"]
    assert sorted(t["task_id"] for t in both) == sorted(env["t1"] + env["t2"])
    t2 = c["town2"].get("/api/tasks/tasks", params={"at": MID}).json()["tasks"]
    assert sorted(t["task_id"] for t in t2) == sorted(env["t2"])
    # filters
    done = c["district"].get("/api/tasks/tasks", params={"at": MID, "status": "done"}).json()
    assert sorted(t["task_id"] for t in done["tasks"]) == ["HN2021-01", "HN2021-09"]
    lead = c["town1"].get("/api/tasks/tasks", params={"department": "省公安厅"}).json()["tasks"]
    assert {t["task_id"] for t in lead} == {"HN2021-01", "HN2021-02"}
    r = c["town1"].get("/api/tasks/tasks", params={"task_set": "hn_t2"})
    assert r.status_code == 404
    assert c["admin"].get("/api/tasks/tasks", params={"task_set": "hn_t2"}).status_code == 200
    # a user whose jurisdiction holds no tasks gets an empty ledger, not an error
    assert c["admin"].get("/api/tasks/tasks").json()["available"] is True
    for bad in ({"at": "2021-02-30"}, {"at": "yesterday"}, {"status": "late"}):
        r = c["town1"].get("/api/tasks/tasks", params=bad)
        assert r.status_code == 400 and r.json()["message"].startswith("请求参数有误")
    assert c["anon"].get("/api/tasks/tasks").status_code == 401
    assert c["citizen"].get("/api/tasks/tasks").status_code == 403


def test_task_detail_and_state_counts(env):
    c = env["c"]
    r = c["town1"].get("/api/tasks/tasks/HN2021-02", params={"at": MID})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["state"]["status"] == "on_track" and d["state"]["progress_pct"] == 80
    assert [p["progress_pct"] for p in d["record"]["data"]["progress"]] == [80]
    assert d["record"]["data"]["progress"][0]["evidence"] == ["合成佐证_HN2021-02.pdf"]
    assert d["version"] == d["record"]["version"] and d["jurisdiction"] == T1
    assert c["town2"].get("/api/tasks/tasks/HN2021-02").status_code == 404
    assert c["district"].get("/api/tasks/tasks/HN2021-02").status_code == 200
    # the seeded record of the same collection is no supervised task (no task set)
    assert c["town1"].get(f"/api/tasks/tasks/task-{T1}").status_code == 404
    assert c["town1"].get("/api/tasks/tasks/NOPE").status_code == 404
    r = c["district"].get("/api/tasks/states", params={"at": MID})
    assert r.status_code == 200
    s = r.json()
    want = Counter(x.status for x in _states(env, MID, [T1, T2]))
    assert s["counts"] == {k: want.get(k, 0) for k in ("overdue", "behind", "on_track", "done")}
    assert s["total"] == 16 and s["labels"]["behind"] == "滞后"
    assert s["rectifications"]["found"] == 4 and s["rectifications"]["closed"] == 1
    t1 = c["town1"].get("/api/tasks/states", params={"at": END}).json()
    assert t1["counts"] == {"overdue": 7, "behind": 0, "on_track": 0, "done": 1}
    assert {a["ref"] for a in t1["alerts"] if a["level"] == "overdue"} == set(env["t1"]) - {
        "HN2021-01"
    }
    assert c["admin"].get("/api/tasks/states").status_code == 200
    assert c["citizen"].get("/api/tasks/states").status_code == 403


def test_progress_report_in_jurisdiction_with_optimistic_lock(env):
    c = env["c"]
    v = c["town1"].get("/api/tasks/tasks/HN2021-05").json()["version"]
    body = {"progress_pct": 40, "reported_on": "2021-05-31", "note": "合成进度", "version": v}
    r = c["town1"].post("/api/tasks/tasks/HN2021-05/progress", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == v + 1 and r.json()["updated_by"] == "town1"
    assert r.json()["data"]["progress"][-1]["progress_pct"] == 40
    # another reporter from the version they saw: 409 with the other user's change
    r = c["district"].post("/api/tasks/tasks/HN2021-05/progress", json=body | {"progress_pct": 45})
    assert r.status_code == 409 and r.json()["data"]["updated_by"] == "town1"
    assert r.json()["data"]["current"]["progress"][-1]["progress_pct"] == 40
    r = c["district"].post(
        "/api/tasks/tasks/HN2021-05/progress",
        json=body | {"progress_pct": 45, "reported_on": "2021-06-30", "version": v + 1},
    )
    assert r.status_code == 200 and r.json()["version"] == v + 2
    # outside the jurisdiction: not found, nothing written
    r = c["town2"].post("/api/tasks/tasks/HN2021-05/progress", json=body | {"version": v + 2})
    assert r.status_code == 404
    with open_store(env["uri"]) as st:
        rec = st.get_record(svc.TASKS, "HN2021-05")
        log = [
            a.actor for a in st.audit_log(target="tasks:HN2021-05") if a.action == "task.progress"
        ]
    assert rec.version == v + 2 and log == ["town1", "district"]
    # bad input: Chinese 4xx
    r = c["town1"].post("/api/tasks/tasks/HN2021-05/progress", json=body | {"progress_pct": 130})
    assert r.status_code == 400 and "应不大于 100" in r.json()["message"]
    r = c["town1"].post(
        "/api/tasks/tasks/HN2021-05/progress",
        json=body | {"reported_on": "2020-12-01", "version": v + 2},
    )
    assert r.status_code == 422 and r.json()["error"] == "report_before_start"
    r = c["town1"].post(
        "/api/tasks/tasks/HN2021-05/progress",
        json=body | {"actuals": {"NOPE": 1}, "version": v + 2},
    )
    assert r.status_code == 422 and "NOPE" in r.json()["message"]
    r = c["town1"].post("/api/tasks/tasks/HN2021-05/progress", json={"progress_pct": 10})
    assert r.status_code == 400 and "version" in r.json()["message"]
    assert c["citizen"].post("/api/tasks/tasks/HN2021-05/progress", json=body).status_code == 403


def test_targets_and_actuals(env):
    c = env["c"]
    t1 = {t["id"]: t for t in c["town1"].get("/api/tasks/targets").json()["targets"]}
    t2 = {t["id"] for t in c["town2"].get("/api/tasks/targets").json()["targets"]}
    assert set(t1) == {"FS-T1", "FS-T2"} and t2 == {"FS-T3", "FS-T4"}
    assert t1["FS-T2"]["actual"] is None and t1["FS-T2"]["clause"]
    v = t1["FS-T2"]["version"]
    body = {"value": 78.1, "on": "2020-12-31", "evidence": ["七普公报"], "version": v}
    r = c["town1"].post("/api/tasks/targets/FS-T2/actual", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == v + 1 and r.json()["data"]["actuals"][-1]["by"] == "town1"
    with open_store(env["uri"]) as st:
        want = {t["id"]: t for t in svc.list_targets(st, jurisdictions=[T1])}
    t1 = {t["id"]: t for t in c["town1"].get("/api/tasks/targets").json()["targets"]}
    assert t1["FS-T2"]["actual"] == 78.1 and t1["FS-T2"]["met"] == want["FS-T2"]["met"]
    early = c["town1"].get("/api/tasks/targets", params={"at": "2020-01-01"}).json()["targets"]
    assert {t["id"]: t["actual"] for t in early}["FS-T2"] is None
    assert c["town1"].post("/api/tasks/targets/FS-T2/actual", json=body).status_code == 409
    r = c["town1"].post(
        "/api/tasks/targets/FS-T1/actual",
        json=body | {"evidence": [], "version": t1["FS-T1"]["version"]},
    )
    assert r.status_code == 422 and "佐证" in r.json()["message"]
    assert c["town2"].post("/api/tasks/targets/FS-T1/actual", json=body).status_code == 404
    r = c["town1"].post("/api/tasks/targets/FS-T1/actual", json=body | {"on": "2020-13-01"})
    assert r.status_code == 422 and "日期" in r.json()["message"]
    assert c["anon"].get("/api/tasks/targets").status_code == 401


def test_projects_and_rectifications_by_jurisdiction(env):
    c = env["c"]
    r = c["town1"].get("/api/tasks/projects", params={"year": 2022, "at": "2022-06-30"})
    assert r.status_code == 200, r.text
    p = r.json()
    assert [x["id"] for x in p["projects"]] == ["P1", "P2"] and p["synthetic"]
    p1 = next(x for x in p["projects"] if x["id"] == "P1")
    assert p1["progress_pct"] == 20 and p1["investment_share"] == pytest.approx(0.25)
    want = compile_yearly_list(env["projects"], 2022)
    assert [x["id"] for x in p["yearly"]["projects"]] == list(want.rows["id"])
    total = next(x for x in p["summary"] if x["级别"] == "合计")
    assert total["合计"] == 2
    assert [x["id"] for x in c["town2"].get("/api/tasks/projects").json()["projects"]] == ["P3"]
    assert c["town1"].get("/api/tasks/projects", params={"year": 3000}).status_code == 400
    r = c["town1"].get("/api/tasks/rectifications", params={"at": "2021-09-30"})
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(x["id"], x["state"]) for x in items] == [
        ("ZG-01", "overdue"),
        ("ZG-03", "open"),
        ("ZG-02", "closed"),
    ]
    assert r.json()["summary"]["found"] == 3 and "已整改到位 1 项" in r.json()["summary"]["text"]
    assert [x["id"] for x in c["town2"].get("/api/tasks/rectifications").json()["items"]] == [
        "ZG-04"
    ]
    assert c["citizen"].get("/api/tasks/rectifications").status_code == 403


def test_dispatch_report_job(env):
    c, app = env["c"], env["app"]
    r = c["town1"].post("/api/tasks/dispatch-report", json={"at": END, "format": "xlsx"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    assert r.headers["location"] == f"/api/jobs/{job_id}"
    assert app.state.rt.jobs.wait(job_id, 120)
    j = c["town1"].get(f"/api/jobs/{job_id}").json()
    assert j["status"] == "succeeded", j
    res = j["result"]
    assert res["counts"] == {"overdue": 7, "behind": 0, "on_track": 0, "done": 1}
    assert res["synthetic"]
    listed = {x["name"]: x for x in c["town1"].get("/api/reports").json()["reports"]}
    assert (
        listed[res["report"]]["kind"] == "dispatch" and "合成数据" in listed[res["report"]]["title"]
    )
    data = c["town1"].get(res["url"])
    assert data.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(data.content), read_only=True)["调度总表"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert rows[0][1] == "逾期" and {r[3] for r in rows if r[3]} >= set(env["t1"])
    assert not {r[3] for r in rows if r[3]} & set(env["t2"])
    assert c["town2"].get(res["url"]).status_code == 404
    assert c["district"].get(res["url"]).status_code == 200
    # html of the district: both townships, overdue first
    r = c["district"].post("/api/tasks/dispatch-report", json={"at": END, "format": "html"})
    assert app.state.rt.jobs.wait(r.json()["job"]["id"], 120)
    res2 = c["district"].get(f"/api/jobs/{r.json()['job']['id']}").json()["result"]
    html = c["district"].get(res2["url"]).text
    first = min(html.index(t) for t in env["t1"] + env["t2"] if t in html)
    overdue = [s.task.id for s in _states(env, END, [T1, T2]) if s.status == "overdue"]
    assert html[first : first + 9] in overdue
    # refused synchronously
    r = c["town1"].post("/api/tasks/dispatch-report", json={"task_set": "hn_t2"})
    assert r.status_code == 404
    r = c["town1"].post("/api/tasks/dispatch-report", json={"format": "docx"})
    assert r.status_code == 400 and "请求参数有误" in r.json()["message"]
    assert c["citizen"].post("/api/tasks/dispatch-report", json={}).status_code == 403
    assert c["anon"].post("/api/tasks/dispatch-report", json={}).status_code == 401
