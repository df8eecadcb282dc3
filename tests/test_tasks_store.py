"""Task supervision in the workspace, on both backends.

Seed 003's 22 work points and seed 000's targets are the packaged transcriptions; progress
reports, rectification items and projects used here are SYNTHETIC (flagged so).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from yizhangtu.errors import ConflictError, ValidationError
from yizhangtu.services.demo_tasks import (
    _CHAOYANG_DEPARTMENTS,
    BEHIND_TASK,
    OVERDUE_TASK,
    _rectification_items,
    synthetic_progress_plan,
)
from yizhangtu.services.tasks import (
    RECTIFICATIONS,
    TASKS,
    add_rectification,
    close_rectification_item,
    dispatch_report,
    export_ledger_xlsx,
    import_ledger,
    import_ledger_xlsx,
    import_projects,
    list_targets,
    load_seed_targets_into,
    load_seed_tasks_into,
    project_library,
    record_target_actual,
    report_progress,
    report_project_progress,
    task_ledger,
    task_records,
    write_dispatch,
    yearly_project_list,
)
from yizhangtu.store import Store, open_store
from yizhangtu.tasks import TaskLedger, library_from_mapping, registry_from_records

DATA = Path(__file__).parent / "data"


def _pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_seed_tasks_progress_and_dispatch_overdue_first(store, tmp_path):
    info = load_seed_tasks_into(store, actor="loader")
    assert (info.tasks, info.created, info.jurisdiction) == (22, 22, "43")
    recs = task_records(store)
    assert len(recs) == 22 and all(r.jurisdiction == "43" for r in recs)
    one = store.get_record(TASKS, "HN2021-02")
    assert one.data["department"] == "省公安厅" and "省教育厅" in one.data["departments"]
    assert [r.key for r in task_records(store, department="省文物局")] == [
        r.key for r in recs if "省文物局" in r.data["departments"]
    ]
    assert store.list_records(TASKS, jurisdictions=["110105"]) == []
    with pytest.raises(ConflictError):
        load_seed_tasks_into(store, actor="loader")  # already there, no --replace
    targets = load_seed_targets_into(store, actor="loader")
    assert {t.key for t in targets} == {"FS-T1", "FS-T2", "FS-T3", "FS-T4"} and targets[
        0
    ].jurisdiction == "110111"
    store.delete_record(TASKS, "HN2021-01", expected_version=1, actor="t")
    again = load_seed_tasks_into(store, actor="loader", replace=True)
    assert (again.created, again.updated) == (1, 21)
    _report_synthetic_progress(store)

    mid = dispatch_report(store, dt.date(2021, 9, 30), task_set="hunan_2021")
    states = {s.task.id: s.status for s in mid.states}
    assert states[BEHIND_TASK] == "behind" and mid.synthetic and "合成数据" in mid.title
    end = dispatch_report(store, dt.date(2022, 1, 10))
    assert end.states[0].task.id == OVERDUE_TASK and end.states[0].status == "overdue"
    assert end.counts() == {"overdue": 1, "behind": 0, "on_track": 0, "done": 21}
    assert end.alerts[0].level == "overdue" and OVERDUE_TASK in end.alerts[0].message
    html = Path(write_dispatch(end, tmp_path / "d.html", "html")["file"]).read_text("utf-8")
    ids = [m.start() for m in re.finditer(r"HN2021-\d\d", html)]
    first_row = html.index(f"{OVERDUE_TASK}")
    assert first_row == min(ids)
    xl = write_dispatch(end, tmp_path / "d.xlsx", "xlsx")
    ws = openpyxl.load_workbook(xl["file"], read_only=True)["调度总表"]
    row2 = next(ws.iter_rows(min_row=2, max_row=2, values_only=True))
    assert row2[1] == "逾期" and row2[3] == OVERDUE_TASK
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    res = write_dispatch(end, tmp_path / "d.pdf", "pdf")
    text = _pdf_text(Path(res["file"]))
    found = [m.group(0) for m in re.finditer(r"HN2021-\d\d", text)]
    assert res["pages"] >= 1 and found[0] == OVERDUE_TASK and "逾期" in text


def _report_synthetic_progress(store: Store) -> None:
    versions = {r.key: r.version for r in task_records(store)}
    for p in synthetic_progress_plan(sorted(versions)):
        rec = report_progress(
            store,
            p["task_id"],
            progress_pct=p["progress_pct"],
            reported_on=p["reported_on"],
            evidence=p["evidence"],
            note=p["note"],
            actor="reporter",
            expected_version=versions[p["task_id"]],
            synthetic=True,
        )
        versions[p["task_id"]] = rec.version


def test_progress_optimistic_lock_and_audit(store):
    load_seed_tasks_into(store, actor="loader")
    seen = store.get_record(TASKS, "HN2021-05").version  # two reporters read the same version
    a = report_progress(
        store,
        "HN2021-05",
        progress_pct=30,
        reported_on="2021-04-01",
        evidence=["a.pdf"],
        actor="alice",
        expected_version=seen,
    )
    assert a.version == seen + 1 and a.updated_by == "alice"
    with pytest.raises(ConflictError) as e:
        report_progress(
            store,
            "HN2021-05",
            progress_pct=35,
            reported_on="2021-04-02",
            evidence=["b.pdf"],
            actor="bob",
            expected_version=seen,
        )
    assert e.value.key == "version_conflict" and e.value.data["updated_by"] == "alice"
    cur = store.get_record(TASKS, "HN2021-05")
    assert cur.version == a.version and [p["progress_pct"] for p in cur.data["progress"]] == [30]
    for bad, key in (
        ({"progress_pct": 130}, "progress_above_100"),
        ({"progress_pct": 10, "reported_on": "2020-12-01"}, "report_before_start"),
        ({"progress_pct": 10, "actuals": {"NOPE": 1}}, "target_not_found"),
    ):
        kw = {"reported_on": "2021-05-01"} | bad
        with pytest.raises(ValidationError) as v:
            report_progress(store, "HN2021-05", actor="bob", expected_version=cur.version, **kw)
        assert v.value.key == key
    assert store.get_record(TASKS, "HN2021-05").version == cur.version
    b = report_progress(
        store,
        "HN2021-05",
        progress_pct=40,
        reported_on="2021-05-01",
        evidence=["c.pdf"],
        actor="bob",
        expected_version=cur.version,
        actuals={},
    )
    log = [x for x in store.audit_log(target="tasks:HN2021-05") if x.action == "task.progress"]
    assert [x.actor for x in log] == ["alice", "bob"] and log[-1].details["version"] == b.version
    assert store.audit_verify().ok


def test_rectification_targets_and_excel_round_trip(store, tmp_path):
    reg = registry_from_records(_CHAOYANG_DEPARTMENTS)
    import_ledger(
        store,
        TaskLedger(tasks=(), title="整改(合成)"),
        task_set="cy_rect",
        registry=reg,
        actor="t",
        jurisdiction="110105",
        synthetic=True,
    )
    for item in _rectification_items():
        add_rectification(
            store,
            item,
            task_set="cy_rect",
            actor="t",
            jurisdiction="110105",
            unit_id="110105",
        )
    led = task_ledger(store, task_set="cy_rect")
    assert len(led.rectifications) == 13 and sum(x.closed for x in led.rectifications) == 9
    rep = dispatch_report(store, dt.date(2022, 9, 22), task_set="cy_rect")
    assert (
        rep.rect_summary is not None
        and rep.rect_summary.found == 13
        and rep.rect_summary.closed == 9
    )
    assert rep.synthetic and rep.rect_summary.overdue == 1
    assert rep.alerts[0].level == "rectification_overdue" and rep.alerts[0].ref == "CY-ZG-10"
    open_item = next(x for x in led.rectifications if not x.closed)
    ver = store.get_record(RECTIFICATIONS, open_item.id).version
    with pytest.raises(ValidationError) as e:
        close_rectification_item(
            store, open_item.id, on="2022-10-01", evidence=[], actor="t", expected_version=ver
        )
    assert e.value.key == "rectification_no_evidence"
    closed = close_rectification_item(
        store,
        open_item.id,
        on="2022-10-01",
        evidence=["验收单.pdf"],
        actor="t",
        expected_version=ver,
    )
    assert closed.data["closed_on"] == "2022-10-01"
    with pytest.raises(ConflictError):
        close_rectification_item(
            store, open_item.id, on="2022-10-02", evidence=["x"], actor="t", expected_version=ver
        )
    # the indicator service counts the items of the unit per year
    from yizhangtu.services.indicators import _rectification_from_records

    t = _rectification_from_records(store).set_index("year")
    items = [x for x in task_ledger(store, task_set="cy_rect").rectifications]
    assert t.loc[2022, "issues_total"] == sum(x.found_on.year <= 2022 for x in items)
    assert t.loc[2022, "issues_closed"] == sum(
        bool(x.closed_on and x.closed_on.year <= 2022) for x in items
    )
    # targets: an actual needs evidence or a provenance id; met is computed from the target
    load_seed_targets_into(store, actor="t")
    with pytest.raises(ValidationError):
        record_target_actual(
            store, "FS-T2", value=78.1, on="2020-12-31", actor="t", expected_version=None
        )
    record_target_actual(
        store,
        "FS-T2",
        value=78.1,
        on="2020-12-31",
        evidence=["七普公报"],
        actor="t",
        expected_version=1,
    )
    fs = {x["id"]: x for x in list_targets(store)}
    assert fs["FS-T2"]["met"] is True and fs["FS-T1"]["actual"] is None
    # Excel out of the store and back in (replace) keeps the ledger
    load_seed_tasks_into(store, actor="t")
    report_progress(
        store,
        "HN2021-03",
        progress_pct=50,
        reported_on="2021-06-30",
        evidence=["e.pdf"],
        actor="t",
        expected_version=None,
    )
    data = export_ledger_xlsx(store, task_set="hunan_2021")
    before = task_ledger(store, task_set="hunan_2021")
    info = import_ledger_xlsx(
        store, data, task_set="hunan_2021", actor="t", jurisdiction="43", replace=True
    )
    after = task_ledger(store, task_set="hunan_2021")
    assert info.updated == 22 and info.progress == 1
    assert [t.id for t in after.tasks] == [t.id for t in before.tasks]
    assert [(r.task_id, r.progress_pct, r.evidence) for r in after.reports] == [
        (r.task_id, r.progress_pct, r.evidence) for r in before.reports
    ]


def test_projects_in_store(store):
    projects, progress = library_from_mapping(
        {
            "projects": [
                {
                    "id": "P1",
                    "name": "道路(合成)",
                    "level": "市级",
                    "category": "C3",
                    "status": "在建",
                    "synthetic": True,
                    "year_plans": [{"year": 2022, "planned_investment": 100}],
                    "geometry_wkt": "POINT (116.5 39.95)",
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
            "progress": [{"project_id": "P1", "reported_on": "2022-03-31", "progress_pct": 20}],
        }
    )
    assert import_projects(store, projects, progress, actor="t", jurisdiction="110105") == {
        "created": 2,
        "updated": 0,
    }
    back, prog = project_library(store)
    assert (
        [p.id for p in back] == ["P1", "P2"]
        and back[0].geometry.equals(projects[0].geometry)
        and len(prog) == 1
    )
    yl = yearly_project_list(store, 2022)
    assert list(yl.rows["id"]) == ["P1", "P2"] and yl.synthetic
    v = store.get_record("projects", "P1").version
    report_project_progress(
        store, "P1", progress_pct=50, reported_on="2022-06-30", actor="a", expected_version=v
    )
    with pytest.raises(ConflictError):
        report_project_progress(
            store, "P1", progress_pct=55, reported_on="2022-07-01", actor="b", expected_version=v
        )
    assert project_library(store, jurisdictions=["43"]) == ((), ())


def test_cli_tasks_and_projects_with_workspace(workspace_uri, tmp_path):
    from yizhangtu.cli.main import app

    runner = CliRunner()
    base = ["-w", workspace_uri]
    r = runner.invoke(app, [*base, "tasks", "load-seed", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tasks"] == 22 and json.loads(r.output)["targets"] == 4
    r = runner.invoke(
        app,
        [
            *base,
            "tasks",
            "progress",
            "HN2021-01",
            "--value",
            "30",
            "--date",
            "2021-03-31",
            "--evidence",
            "q1.pdf",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version"] == 2
    r = runner.invoke(
        app,
        [
            *base,
            "tasks",
            "progress",
            "HN2021-01",
            "--value",
            "40",
            "--date",
            "2021-04-30",
            "--expected-version",
            "1",
        ],
    )
    assert isinstance(r.exception, ConflictError) and r.exception.exit_code == 5
    r = runner.invoke(
        app, [*base, "tasks", "list", "--json"]
    )  # the workspace ledger, automatically
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == 22
    r = runner.invoke(app, [*base, "tasks", "status", "--at", "2022-01-10", "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)["tasks"]
    assert len(st) == 22 and {x["status"] for x in st} == {"overdue"}
    assert next(x for x in st if x["task_id"] == "HN2021-01")["progress_pct"] == 30
    out = tmp_path / "disp.html"
    r = runner.invoke(
        app,
        [
            *base,
            "tasks",
            "report",
            "--at",
            "2021-06-30",
            "--format",
            "html",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["file"] == str(out) and "HN2021-01" in out.read_text("utf-8")
    x = tmp_path / "ledger.xlsx"
    r = runner.invoke(app, [*base, "tasks", "export", "--out", str(x), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["source"] == "store" and x.exists()
    r = runner.invoke(
        app,
        [*base, "tasks", "import", str(x), "--store", "--set", "hunan_2021", "--replace", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["updated"] == 22
    r = runner.invoke(
        app,
        [
            *base,
            "tasks",
            "actual",
            "FS-T2",
            "--value",
            "78.1",
            "--date",
            "2020-12-31",
            "--evidence",
            "七普",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "tasks", "targets", "--store", "--json"])
    assert {t["id"]: t["met"] for t in json.loads(r.output)["targets"]}["FS-T2"] is True
    r = runner.invoke(
        app, [*base, "tasks", "list", "--no-store", "--json"]
    )  # packaged seed still works
    assert r.exit_code == 0 and len(json.loads(r.output)) == 22
    lib = tmp_path / "p.yaml"
    lib.write_text(
        yaml.safe_dump(
            {
                "projects": [
                    {
                        "id": "P1",
                        "name": "道路(合成)",
                        "level": "市级",
                        "category": "C3",
                        "status": "在建",
                        "year_plans": [{"year": 2022}],
                        "synthetic": True,
                    }
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    r = runner.invoke(
        app, [*base, "projects", "import", str(lib), "--jurisdiction", "110105", "--json"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "projects", "compile", "--year", "2022", "--json"])
    assert r.exit_code == 0, r.output
    assert [p["id"] for p in json.loads(r.output)["projects"]] == ["P1"]
    r = runner.invoke(
        app,
        [*base, "projects", "progress", "P1", "--value", "10", "--date", "2022-03-31", "--json"],
    )
    assert r.exit_code == 0 and json.loads(r.output)["version"] == 2
    with open_store(workspace_uri) as s:
        assert s.audit_verify().ok
        assert {a.action for a in s.audit_log()} >= {
            "task.progress",
            "task.import",
            "target.actual",
            "project.progress",
        }
