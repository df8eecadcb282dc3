"""Tests of task supervision, rectification, the project library and their CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook, load_workbook
from typer.testing import CliRunner

from yizhangtu.errors import ValidationError
from yizhangtu.tasks import (
    TaskLedger,
    build_dispatch_report,
    chaoyang_facts,
    close_rectification,
    compile_yearly_list,
    dispatch_html,
    dispatch_pdf,
    dispatch_xlsx,
    evaluate_task,
    expected_progress,
    ledger_from_mapping,
    ledger_from_xlsx,
    ledger_to_mapping,
    ledger_to_xlsx,
    library_summary,
    load_departments,
    load_seed_targets,
    load_seed_tasks,
    progress_from_mapping,
    project_from_mapping,
    project_progress_from_mapping,
    project_progress_table,
    project_vocabulary,
    projects_from_records,
    projects_to_geodataframe,
    rectification_from_mapping,
    summarise_rectifications,
    supervision_policy,
    task_alerts,
    task_from_mapping,
    yearly_list_html,
    yearly_list_xlsx,
)
from yizhangtu.tasks.status import evaluate_tasks

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
CN = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]


def _cn(n: int) -> str:
    if n <= 10:
        return CN[n - 1]
    if n < 20:
        return "十" + CN[n - 11]
    return "二十" + (CN[n - 21] if n > 20 else "")


def _seed(prefix: str) -> str:
    files = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not files:
        pytest.skip("../shared/seeds is not available")
    return files[0].read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Seed 003: the 22 work points load with departments and targets, quotes verbatim.
# --------------------------------------------------------------------------------------------
def test_seed_003_has_22_tasks_with_departments():
    led = load_seed_tasks("hunan_2021")
    reg = load_departments("hunan")
    assert len(led.tasks) == 22
    assert [t.clause for t in led.tasks] == [f"003 ({_cn(i)})" for i in range(1, 23)]
    for t in led.tasks:
        assert t.lead in reg.names()
        assert all(c in reg.names() for c in t.co)
        assert t.start == dt.date(2021, 1, 1) and t.deadline == dt.date(2021, 12, 31)
    by_id = {t.id: t for t in led.tasks}
    assert by_id["HN2021-15"].lead == "省住房城乡建设厅"
    assert by_id["HN2021-02"].departments == (
        "省公安厅",
        "省教育厅",
        "省人社厅",
        "省卫健委",
        "省住房城乡建设厅",
        "省发改委",
        "各市州政府",
    )
    # Seed spellings 省卫建委 / 省住建厅 are read as the same bodies.
    assert "省卫健委" in by_id["HN2021-06"].co and "省住房城乡建设厅" in by_id["HN2021-11"].co
    assert by_id["HN2021-22"].lead == "各市州政府"
    # 20 of 22 points end with "…等部门及各市州政府负责".
    assert sum("各市州政府" in t.co for t in led.tasks) == 20


def test_seed_003_quotes_are_verbatim():
    text = _seed("003")
    led = load_seed_tasks("hunan_2021")
    for t in led.tasks:
        assert t.departments_quote in text, t.id
        for g in t.targets:
            assert g.quote in text, g.id
            assert g.clause == t.clause


def test_seed_003_departments_match_parentheticals():
    # For (一)—(二十) the bodies are the seed's closing parenthesis, split on 、, with
    # "等部门及各市州政府负责" → 各市州政府; aliases resolve to the canonical names.
    reg = load_departments()
    for t in load_seed_tasks().tasks[:20]:
        q = t.departments_quote
        assert q.startswith("(") and q.endswith("等部门及各市州政府负责)"), t.id
        names = [reg.resolve(n) for n in q[1 : -len("等部门及各市州政府负责)")].split("、")]
        assert t.departments == (*names, "各市州政府"), t.id


def test_seed_003_quantitative_targets():
    led = load_seed_tasks("hunan_2021")
    targets = {g.id: g for t in led.tasks for g in t.targets}
    assert targets["HN2021-15-T1"].value == 1500 and targets["HN2021-15-T1"].unit == "个"
    assert targets["HN2021-02-T2"].value == 43_500 and targets["HN2021-02-T2"].scope == "长沙市"
    assert targets["HN2021-02-T1"].value == 100 and targets["HN2021-02-T1"].unit == "%"
    assert targets["HN2021-19-T1"].value == 5 and targets["HN2021-19-T1"].comparator == ">="
    assert targets["HN2021-08-T1"].value == 15
    assert targets["HN2021-16-T1"].derived  # "全面完成" read as 100 %
    assert "4.35万套" in targets["HN2021-02-T2"].quote


def test_seed_000_targets():
    text = _seed("000")
    ts = load_seed_targets("fangshan")
    got = {(g.name, g.due.year if g.due else None): g.value for g in ts.targets}
    assert got[("常住人口城镇化率", 2017)] == 72
    assert got[("常住人口城镇化率", 2020)] == 75
    assert got[("森林覆盖率", 2020)] == 45
    assert got[("引进、培育基金管理机构及相关产业链实体", 2020)] == 1500
    for g in ts.targets:
        assert g.clause == "000 (一)"
        for piece in g.quote.split("……"):
            assert piece in text, g.id
    assert ts.baseline["year"] == 2014 and ts.baseline["quote"] in text


def test_chaoyang_facts_cited():
    f = chaoyang_facts()
    text = _seed("002")
    assert f["project_library"]["projects"] == 399 and f["project_library"]["categories"] == 8
    assert (f["rectification"]["found"], f["rectification"]["closed"]) == (13, 9)
    for v in f.values():
        assert v["quote"].split("……")[0] in text


# --------------------------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------------------------
def _task(**kw):
    d = {
        "id": "T1",
        "title": "测试任务",
        "lead": "省发改委",
        "start": "2021-01-01",
        "deadline": "2021-12-31",
    }
    d.update(kw)
    return task_from_mapping(d, load_departments())


def test_unknown_department_refused_with_suggestion():
    with pytest.raises(ValidationError) as ei:
        _task(lead="省住建委")
    e = ei.value
    assert e.key == "unknown_department" and "省住建委" in e.message and e.detail.feature == "T1"
    assert "省住建厅" in (e.hint or "") or "省住房城乡建设厅" in (e.hint or "")
    with pytest.raises(ValidationError, match="不在单位名录中"):
        _task(co=["省教育厅", "省外星局"])


def test_deadline_before_start_refused():
    with pytest.raises(ValidationError) as ei:
        _task(start="2021-06-30", deadline="2021-03-01")
    assert ei.value.key == "deadline_before_start"
    assert "早于开始日期" in ei.value.message


def test_progress_above_100_refused():
    with pytest.raises(ValidationError) as ei:
        progress_from_mapping({"task_id": "T1", "reported_on": "2021-05-01", "progress_pct": 120})
    assert ei.value.key == "progress_above_100" and "超过 100%" in ei.value.message
    with pytest.raises(ValidationError, match="不能为负"):
        progress_from_mapping({"task_id": "T1", "reported_on": "2021-05-01", "progress_pct": -5})


def test_report_on_unknown_task_refused():
    with pytest.raises(ValidationError, match="不存在的任务编号"):
        ledger_from_mapping(
            {
                "tasks": [
                    {
                        "id": "T1",
                        "title": "a",
                        "lead": "省发改委",
                        "start": "2021-01-01",
                        "deadline": "2021-12-31",
                    }
                ],
                "progress": [{"task_id": "T9", "reported_on": "2021-02-01", "progress_pct": 10}],
            }
        )


# --------------------------------------------------------------------------------------------
# Status at a date. Task 2021-01-01 … 2021-12-31 (364 days); tolerance 10 points (data).
# At 2021-07-02 (182 days) the linear pace is 50 %: progress 40 is on track (40 ≥ 50 − 10),
# 39 is behind. After the deadline anything below 100 is overdue; 100 is done.
# --------------------------------------------------------------------------------------------
def test_status_rules():
    pol = supervision_policy()
    assert pol.behind_tolerance_pct == 10
    t = _task()
    at = dt.date(2021, 7, 2)
    assert expected_progress(t, at) == pytest.approx(50.0)

    def rep(p, on="2021-06-30"):
        return [progress_from_mapping({"task_id": "T1", "reported_on": on, "progress_pct": p})]

    assert evaluate_task(t, rep(40), at).status == "on_track"
    assert evaluate_task(t, rep(39), at).status == "behind"
    assert evaluate_task(t, rep(39), at).gap_pct == pytest.approx(11.0)
    assert evaluate_task(t, [], dt.date(2021, 1, 20)).status == "on_track"  # 5 % pace, 0 reported
    late = evaluate_task(t, rep(80), dt.date(2022, 1, 5))
    assert late.status == "overdue" and late.days_overdue == 5
    done = evaluate_task(t, rep(100, "2021-12-20"), dt.date(2022, 1, 5))
    assert done.status == "done" and not done.done_late
    # Reports after the evaluation date are ignored: nothing reported by 2021-07-02 → behind.
    ignored = evaluate_task(t, rep(100, "2021-08-01"), at)
    assert ignored.status == "behind" and ignored.progress_pct == 0 and ignored.last_report is None
    # Stale: last report older than the 30-day cycle.
    assert evaluate_task(t, rep(45, "2021-05-01"), at).stale


def test_target_check_from_actuals():
    led = load_seed_tasks()
    t = led.task("HN2021-15")
    r = progress_from_mapping(
        {
            "task_id": "HN2021-15",
            "reported_on": "2021-12-31",
            "progress_pct": 100,
            "actuals": {"HN2021-15-T1": 1620},
        }
    )
    s = evaluate_task(t, [r], dt.date(2022, 1, 1))
    assert s.targets[0].actual == 1620 and s.targets[0].met is True


def _scenario() -> TaskLedger:
    """Four synthetic tasks at 2021-09-30: one overdue, one behind, one on track, one done."""
    reg = load_departments()
    base = {"start": "2021-01-01"}
    tasks = [
        task_from_mapping(
            {
                **base,
                "id": "A-ONTRACK",
                "title": "正常推进的任务",
                "lead": "省发改委",
                "deadline": "2021-12-31",
            },
            reg,
        ),
        task_from_mapping(
            {
                **base,
                "id": "B-DONE",
                "title": "已完成的任务",
                "lead": "省教育厅",
                "deadline": "2021-06-30",
            },
            reg,
        ),
        task_from_mapping(
            {
                **base,
                "id": "C-BEHIND",
                "title": "滞后的任务",
                "lead": "省民政厅",
                "deadline": "2021-12-31",
            },
            reg,
        ),
        task_from_mapping(
            {
                **base,
                "id": "Z-OVERDUE",
                "title": "逾期的任务",
                "lead": "省住建厅",
                "deadline": "2021-08-31",
            },
            reg,
        ),
    ]
    reports = [
        progress_from_mapping(
            {
                "task_id": "A-ONTRACK",
                "reported_on": "2021-09-25",
                "progress_pct": 70,
                "evidence": "调度会纪要(合成)",
            }
        ),
        progress_from_mapping(
            {
                "task_id": "B-DONE",
                "reported_on": "2021-06-28",
                "progress_pct": 100,
                "evidence": ["验收文件(合成)"],
            }
        ),
        progress_from_mapping(
            {"task_id": "C-BEHIND", "reported_on": "2021-09-20", "progress_pct": 30}
        ),
        progress_from_mapping(
            {
                "task_id": "Z-OVERDUE",
                "reported_on": "2021-09-15",
                "progress_pct": 60,
                "note": "征拆受阻(合成)",
            }
        ),
    ]
    rect = [
        rectification_from_mapping(
            {
                "id": f"R{i:02d}",
                "title": f"违法建设问题{i}(合成)",
                "responsible": "各市州政府",
                "found_on": "2021-03-01",
                "deadline": "2021-08-31",
                "synthetic": True,
                **(
                    {"closed_on": "2021-07-15", "evidence": f"整改销号材料{i}(合成)"}
                    if i <= 9
                    else {}
                ),
            },
            reg,
        )
        for i in range(1, 14)
    ]
    return TaskLedger(
        tasks=tuple(tasks), reports=tuple(reports), rectifications=tuple(rect), title="测试任务"
    )


AT = dt.date(2021, 9, 30)


def test_dispatch_order_overdue_first():
    states = evaluate_tasks(_scenario().tasks, _scenario().reports, AT)
    assert [s.status for s in states] == ["overdue", "behind", "on_track", "done"]
    assert states[0].task.id == "Z-OVERDUE" and states[0].days_overdue == 30
    alerts = task_alerts(states)
    assert alerts[0].level == "overdue" and "Z-OVERDUE" in alerts[0].message


def test_dispatch_html_lists_overdue_first():
    rep = build_dispatch_report(_scenario(), AT, synthetic=True)
    html = dispatch_html(rep)
    table = html[html.index("任务调度表") :]
    pos = {k: table.index(k) for k in ("Z-OVERDUE", "C-BEHIND", "A-ONTRACK", "B-DONE")}
    assert pos["Z-OVERDUE"] < pos["C-BEHIND"] < pos["A-ONTRACK"] < pos["B-DONE"]
    assert "合成数据" in html and "逾期" in html and "30 天" in html
    assert "【逾期】Z-OVERDUE" in html
    assert html.index("【逾期】") < html.index("【整改超期】")
    assert "共发现问题 13 项, 已整改到位 9 项" in html


def test_dispatch_pdf_renders():
    rep = build_dispatch_report(_scenario(), AT, synthetic=True)
    pdf, pages = dispatch_pdf(rep)
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    try:
        from pypdf import PdfReader
    except ImportError:
        assert pages >= 1
    else:
        assert len(PdfReader(io.BytesIO(pdf)).pages) >= 1


def test_dispatch_xlsx_overdue_first():
    rep = build_dispatch_report(_scenario(), AT)
    wb = load_workbook(io.BytesIO(dispatch_xlsx(rep)))
    ws = wb["调度总表"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["序号", "状态", "逾期天数", "编号", "任务"]
    assert [ws.cell(row=r, column=4).value for r in range(2, 6)] == [
        "Z-OVERDUE",
        "C-BEHIND",
        "A-ONTRACK",
        "B-DONE",
    ]
    assert ws.cell(row=2, column=2).value == "逾期" and ws.cell(row=2, column=3).value == 30
    assert {"预警提醒", "整改事项", "说明"} <= set(wb.sheetnames)


# --------------------------------------------------------------------------------------------
# Rectification: tracked until closed; 13 found / 9 closed as reported in 002 (一(三)三).
# --------------------------------------------------------------------------------------------
def test_rectification_summary_matches_reported_figures():
    led = _scenario()
    s = summarise_rectifications(led.rectifications, AT)
    facts = chaoyang_facts()["rectification"]
    assert (s.found, s.closed, s.open + s.overdue) == (
        facts["found"],
        facts["closed"],
        facts["open"],
    )
    assert s.overdue == 4  # deadline 2021-08-31 passed
    before = summarise_rectifications(led.rectifications, dt.date(2021, 7, 1))
    assert before.closed == 0 and before.open == 13


def test_closing_rectification_requires_evidence():
    item = _scenario().rectifications[-1]
    assert not item.closed
    with pytest.raises(ValidationError) as ei:
        close_rectification(item, dt.date(2021, 10, 1))
    assert ei.value.key == "rectification_no_evidence"
    closed = close_rectification(item, dt.date(2021, 10, 1), ["复核意见(合成)"])
    assert closed.closed and closed.evidence == ("复核意见(合成)",)
    with pytest.raises(ValidationError, match="早于发现日期"):
        close_rectification(item, dt.date(2020, 1, 1), ["x"])


# --------------------------------------------------------------------------------------------
# Excel import / export with Chinese headers.
# --------------------------------------------------------------------------------------------
def test_excel_round_trip():
    led = replace(load_seed_tasks(), reports=_scenario().reports[:0])
    led = replace(
        led,
        reports=(
            progress_from_mapping(
                {
                    "task_id": "HN2021-15",
                    "reported_on": "2021-06-30",
                    "progress_pct": 40,
                    "evidence": "月报(合成)、照片(合成)",
                    "actuals": {"HN2021-15-T1": 600},
                }
            ),
        ),
        rectifications=_scenario().rectifications[:2],
    )
    data = ledger_to_xlsx(led, load_departments())
    wb = load_workbook(io.BytesIO(data))
    assert [c.value for c in wb["任务"][1]][:8] == [
        "编号",
        "任务名称",
        "条款",
        "所属部分",
        "牵头单位",
        "配合单位",
        "开始日期",
        "截止日期",
    ]
    back = ledger_from_xlsx(data)
    assert [replace(t, figures=()) for t in back.tasks] == [
        replace(t, figures=()) for t in led.tasks
    ]
    assert back.reports == led.reports and back.rectifications == led.rectifications


def _workbook(rows_tasks, rows_progress=()):
    wb = Workbook()
    ws = wb.active
    ws.title = "任务"
    ws.append(["编号", "任务名称", "牵头单位", "配合单位", "开始日期", "截止日期"])
    for r in rows_tasks:
        ws.append(r)
    if rows_progress:
        wp = wb.create_sheet("进度报送")
        wp.append(["任务编号", "报送日期", "进度(%)", "进展情况", "佐证材料"])
        for r in rows_progress:
            wp.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_excel_import_locates_bad_rows():
    ok = [
        "T1",
        "任务一",
        "省发改委",
        "省教育厅、省财政厅",
        dt.date(2021, 1, 1),
        dt.date(2021, 12, 31),
    ]
    led = ledger_from_xlsx(_workbook([ok]))
    assert led.tasks[0].co == ("省教育厅", "省财政厅")
    with pytest.raises(ValidationError) as ei:
        ledger_from_xlsx(
            _workbook([ok, ["T2", "任务二", "某某局", "", "2021-01-01", "2021-12-31"]]),
            file="台账.xlsx",
        )
    assert (
        "第 3 行" in ei.value.message
        and ei.value.detail.file == "台账.xlsx"
        and ei.value.key == "unknown_department"
    )
    with pytest.raises(ValidationError) as ei:
        ledger_from_xlsx(_workbook([["T3", "任务三", "省发改委", "", "2021-12-31", "2021-01-01"]]))
    assert ei.value.key == "deadline_before_start" and "第 2 行" in ei.value.message
    with pytest.raises(ValidationError) as ei:
        ledger_from_xlsx(_workbook([ok], [["T1", dt.date(2021, 5, 1), 150, "", ""]]))
    assert ei.value.key == "progress_above_100" and "进度报送" in ei.value.message


# --------------------------------------------------------------------------------------------
# Project library: 2 levels × 8 (example) categories; yearly comprehensive list; progress.
# --------------------------------------------------------------------------------------------
def _projects():
    recs = [
        {
            "id": "P1",
            "name": "某道路工程(合成)",
            "level": "市级",
            "category": "C3",
            "status": "在建",
            "total_investment": 50000,
            "year_plans": [{"year": 2022, "planned_investment": 20000, "milestone": "主线贯通"}],
            "synthetic": True,
            "geometry_wkt": "LINESTRING (116.50 39.85, 116.55 39.86)",
        },
        {
            "id": "P2",
            "name": "某学校(合成)",
            "level": "district",
            "category": "公共服务设施",
            "status": "前期推进",
            "total_investment": 12000,
            "year_plans": [
                {"year": 2022, "planned_investment": 3000},
                {"year": 2023, "planned_investment": 9000},
            ],
            "synthetic": True,
        },
        {
            "id": "P3",
            "name": "某公园(合成)",
            "level": "区级",
            "category": "C7",
            "status": "在建",
            "total_investment": 8000,
            "start_year": 2021,
            "end_year": 2023,
            "synthetic": True,
        },
        {
            "id": "P4",
            "name": "某安置房(合成)",
            "level": "市级",
            "category": "C8",
            "status": "已竣工",
            "total_investment": 90000,
            "start_year": 2019,
            "end_year": 2021,
            "synthetic": True,
        },
    ]
    return projects_from_records(recs)


def test_project_vocabulary_and_summary():
    v = project_vocabulary()
    assert [n for _, n in v.levels] == ["市级", "区级"]
    assert len(v.categories) == 8 and v.categories_example
    ps = _projects()
    s = library_summary(ps)
    assert s.loc["合计", "合计"] == 4 and s.loc["市级", "合计"] == 2
    assert s.loc["区级", "公共服务设施"] == 1
    gdf = projects_to_geodataframe(ps)
    assert list(gdf["id"]) == ["P1"] and gdf.crs.to_epsg() == 4490


def test_yearly_list_and_progress():
    ps = _projects()
    yl = compile_yearly_list(ps, 2022)
    assert list(yl.rows["id"]) == ["P1", "P2", "P3"]  # 市级 first; P4 completed in 2021
    assert list(yl.rows["basis"]) == ["年度计划", "年度计划", "建设周期"]
    assert yl.by_level_category["planned_investment"].sum() == 23000
    assert yl.synthetic
    assert "2022年重点项目综合清单(合成数据)" in yearly_list_html(yl)
    wb = load_workbook(io.BytesIO(yearly_list_xlsx(yl)))
    assert wb.sheetnames[0] == "2022年综合清单"
    reps = [
        project_progress_from_mapping(
            {
                "project_id": "P1",
                "reported_on": "2022-06-30",
                "progress_pct": 45,
                "invested_to_date": 25000,
            }
        )
    ]
    tab = project_progress_table(ps, reps, dt.date(2022, 7, 1)).set_index("id")
    assert tab.loc["P1", "progress_pct"] == 45 and tab.loc[
        "P1", "investment_share"
    ] == pytest.approx(0.5)
    assert tab.loc["P2", "progress_pct"] == 0
    with pytest.raises(ValidationError, match="超过 100%"):
        project_progress_from_mapping(
            {"project_id": "P1", "reported_on": "2022-06-30", "progress_pct": 101}
        )


def test_project_bad_input():
    with pytest.raises(ValidationError) as ei:
        project_from_mapping({"id": "X", "name": "x", "level": "省级", "category": "C1"})
    assert ei.value.key == "project_level_unknown" and "市级" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="类别"):
        project_from_mapping({"id": "X", "name": "x", "level": "市级", "category": "C9"})
    with pytest.raises(ValidationError, match="编号重复"):
        projects_from_records([{"id": "X", "name": "x", "level": "市级", "category": "C1"}] * 2)


# --------------------------------------------------------------------------------------------
# CLI (files).
# --------------------------------------------------------------------------------------------
def test_cli_tasks(tmp_path):
    from yizhangtu.cli.tasks import tasks_app

    runner = CliRunner()
    r = runner.invoke(tasks_app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == 22
    led = _scenario()
    tfile = tmp_path / "tasks.yaml"
    m = ledger_to_mapping(led, load_departments())
    progress = m.pop("progress")
    tfile.write_text(yaml.safe_dump(m, allow_unicode=True), encoding="utf-8")
    pfile = tmp_path / "progress.yaml"
    pfile.write_text(yaml.safe_dump({"progress": progress}, allow_unicode=True), encoding="utf-8")
    r = runner.invoke(
        tasks_app,
        ["status", "--at", "2021-09-30", "--tasks", str(tfile), "--progress", str(pfile), "--json"],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["tasks"][0]["task_id"] == "Z-OVERDUE" and d["tasks"][0]["status"] == "overdue"
    for fmt in ("html", "xlsx"):
        out = tmp_path / f"dispatch.{fmt}"
        r = runner.invoke(
            tasks_app,
            [
                "report",
                "--at",
                "2021-09-30",
                "--tasks",
                str(tfile),
                "--progress",
                str(pfile),
                "--format",
                fmt,
                "--out",
                str(out),
                "--json",
            ],
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["counts"]["overdue"] == 1 and out.stat().st_size > 1000
    x = tmp_path / "ledger.xlsx"
    r = runner.invoke(
        tasks_app, ["export", "--out", str(x), "--tasks", str(tfile), "--progress", str(pfile)]
    )
    assert r.exit_code == 0, r.output
    y = tmp_path / "back.yaml"
    r = runner.invoke(tasks_app, ["import", str(x), "--out", str(y), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"file": str(y), "tasks": 4, "progress": 4, "rectifications": 13}
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "progress": [
                    {"task_id": "A-ONTRACK", "reported_on": "2021-09-01", "progress_pct": 130}
                ]
            }
        ),
        encoding="utf-8",
    )
    r = runner.invoke(tasks_app, ["status", "--tasks", str(tfile), "--progress", str(bad)])
    assert isinstance(r.exception, ValidationError) and r.exception.key == "progress_above_100"
    r = runner.invoke(tasks_app, ["targets", "--json"])
    assert r.exit_code == 0 and len(json.loads(r.output)["targets"]) == 4


def test_cli_projects(tmp_path):
    from yizhangtu.cli.tasks import projects_app

    f = tmp_path / "projects.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "projects": [
                    {
                        "id": "P1",
                        "name": "道路(合成)",
                        "level": "市级",
                        "category": "C3",
                        "status": "在建",
                        "year_plans": [{"year": 2022, "planned_investment": 100}],
                    },
                    {
                        "id": "P2",
                        "name": "学校(合成)",
                        "level": "区级",
                        "category": "C5",
                        "status": "在建",
                        "year_plans": [{"year": 2023, "planned_investment": 50}],
                    },
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    r = runner.invoke(projects_app, ["compile", "--year", "2022", "--file", str(f)])
    assert r.exit_code == 0, r.output
    assert [p["id"] for p in json.loads(r.output)["projects"]] == ["P1"]
    out = tmp_path / "list.xlsx"
    r = runner.invoke(
        projects_app,
        ["compile", "--year", "2023", "--file", str(f), "--format", "xlsx", "--out", str(out)],
    )
    assert r.exit_code == 0 and out.exists()
    r = runner.invoke(projects_app, ["list", "--file", str(f), "--level", "区级", "--json"])
    assert r.exit_code == 0 and [p["id"] for p in json.loads(r.output)["projects"]] == ["P2"]
