"""Demo steps: micro-centre site scoring (一站一策一档) and task supervision (督查调度).

Scoring: 10 synthetic rail micro-centre sites placed in real Chaoyang streets (criteria names
from 002 附件4, every value synthetic), stored as workspace layers and a table, scored from the
workspace, with one dossier per site.

Tasks: seed 003's 22 work points and seed 000's targets loaded as records; synthetic quarterly
progress (one work point left unfinished, so it is overdue after the year end); a synthetic
Chaoyang rectification set with seed 002's counts (13 found, 9 closed); dispatch reports.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from yizhangtu.services.demo import DemoContext
from yizhangtu.store import LayerSpec

__all__ = ["STEPS", "demo_step_scoring", "demo_step_tasks", "synthetic_progress_plan"]

_CONFIG_KEY = "chaoyang_micro_centres"
_JUR_CHAOYANG = "110105"  # 北京市朝阳区
#: The work point left unfinished at the year end (synthetic scenario).
OVERDUE_TASK = "HN2021-14"
#: The work point reported behind the linear pace at the end of September.
BEHIND_TASK = "HN2021-07"
_QUARTERS = ("2021-03-31", "2021-06-30", "2021-09-30", "2021-12-20")


def demo_step_scoring(ctx: DemoContext) -> None:
    """Store the synthetic sites, stops and gap table; score from the workspace; write dossiers."""
    from yizhangtu.scoring import build_demo_sites
    from yizhangtu.services.scoring import save_config, score_workspace, write_dossiers

    st, actor = ctx.store, ctx.settings.actor
    streets = st.read_layer("chaoyang_streets")
    demo = build_demo_sites(streets)
    st.write_snapshot(
        LayerSpec(
            name="micro_centres",
            kind="project",
            title="轨道微中心站点(合成数据)",
            description="合成数据 (SYNTHETIC): 002 附件4 的 10 个微中心站点示意, 位置随机",
            id_field="site_id",
            synthetic=True,
        ),
        [demo.sites],
        label="2022",
        obs_date="2022-09-22",
        actor=actor,
        notes={"synthetic": True},
    )
    st.write_snapshot(
        LayerSpec(
            name="transit_stops",
            kind="other",
            title="公交与轨道站点(合成数据)",
            description="合成数据 (SYNTHETIC)",
            id_field="stop_id",
            synthetic=True,
        ),
        [demo.layers["transit_stops"]],
        label="2022",
        obs_date="2022-09-22",
        actor=actor,
        notes={"synthetic": True},
    )
    st.write_table("facility_gap", demo.tables["facility_gap"], actor=actor, action="table.import")
    mapping: dict[str, Any] = {
        k: v
        for k, v in demo.mapping.items()
        if k
        in (
            "id",
            "version",
            "title",
            "synthetic",
            "source",
            "criteria",
            "weights",
            "method",
            "normalisation",
        )
    }
    mapping["sites"] = {"layer": "micro_centres", "id_field": "site_id", "name_field": "name"}
    mapping["layers"] = {"transit_stops": {"layer": "transit_stops"}}
    mapping["tables"] = {"facility_gap": {"table": "facility_gap"}}
    mapping["boundaries"] = {"layer": "chaoyang_streets"}
    save_config(st, _CONFIG_KEY, mapping, actor=actor, jurisdiction=_JUR_CHAOYANG, replace=True)
    run = score_workspace(st, _CONFIG_KEY, actor=actor)
    top = run.result.table.iloc[0]
    ctx.note(
        "选址评分",
        f"{run.run_id}",
        len(run.result.table),
        synthetic=True,
        detail=f"(第 1 名 {top['name']} {top['score']:.3f}; 溯源 {run.provenance_id})",
    )
    out = ctx.out_dir / "reports" / "dossiers"
    outputs = ctx.extras.setdefault("outputs", [])
    outputs.extend(str(p) for p in write_dossiers(run, out, format="html"))
    outputs.extend(str(p) for p in write_dossiers(run, out, format="pdf", combined=True))
    ctx.extras["scoring_run"] = run.run_id


def synthetic_progress_plan(
    task_ids: list[str],
    seed: int = 2021,
    targets: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Quarterly synthetic progress for the work points (deterministic for a seed).

    Every work point reaches 100 % in its last report except :data:`OVERDUE_TASK` (stays below),
    and :data:`BEHIND_TASK` lags the linear pace until September. With ``targets`` (task id →
    target mappings), the last report also gives synthetic actuals: the target value (met), or
    70 % of it for the overdue work point (not met).
    """
    rng = np.random.default_rng(seed)
    plan = []
    for tid in task_ids:
        pace = np.array([0.25, 0.5, 0.75, 1.0])
        noise = rng.uniform(-0.08, 0.08, 4)
        vals = np.clip(np.round((pace + noise) * 100), 0, 100)
        vals = np.maximum.accumulate(vals)
        vals[-1] = 100
        if tid == BEHIND_TASK:
            vals = np.array([10.0, 20.0, 35.0, 100.0])
        if tid == OVERDUE_TASK:
            vals = np.array([15.0, 30.0, 45.0, 70.0])
        for day, v in zip(_QUARTERS, vals, strict=True):
            last = day == _QUARTERS[-1]
            actuals = {}
            if last:
                for g in (targets or {}).get(tid, []):
                    if g.get("comparator", ">=") == ">=":
                        share = 0.7 if tid == OVERDUE_TASK else 1.0
                        actuals[str(g["id"])] = round(float(g["value"]) * share, 2)
            plan.append(
                {
                    "task_id": tid,
                    "reported_on": day,
                    "progress_pct": float(v),
                    "evidence": [f"合成佐证_{tid}_{day}.pdf"],
                    "note": "合成数据: 季度进度报送"
                    + ("; 配套资金未到位" if tid == OVERDUE_TASK and last else ""),
                    "actuals": actuals,
                }
            )
    return plan


def _rectification_items() -> list[dict[str, Any]]:
    """13 synthetic rectification items, 9 closed by 2022-09-22 (counts of 002 (一(三)三)).

    Of the 4 open items one is past its deadline on 2022-09-22 (整改超期).
    """
    items = []
    for i in range(13):
        found = dt.date(2021, 3, 1) + dt.timedelta(days=45 * i)
        deadline = found + dt.timedelta(days=90 if i == 9 else 180)  # one open item overdue
        closed = found + dt.timedelta(days=60 + 7 * i) if i < 9 else None
        items.append(
            {
                "id": f"CY-ZG-{i + 1:02d}",
                "title": f"规自领域巡视巡察反馈违法建设问题 {i + 1}(合成)",
                "responsible": "区规划和自然资源分局" if i % 2 == 0 else "区城管执法局",
                "found_on": found.isoformat(),
                "deadline": deadline.isoformat(),
                "closed_on": closed.isoformat() if closed else None,
                "evidence": [f"合成整改佐证_CY-ZG-{i + 1:02d}.pdf"] if closed else [],
                "category": "违法建设",
                "source": "002 (一(三)三) 数量; 事项内容为合成数据",
                "synthetic": True,
            }
        )
    return items


_CHAOYANG_DEPARTMENTS = [
    {
        "name": "区规划和自然资源分局",
        "full_name": "北京市规划和自然资源委员会朝阳分局",
        "kind": "district_department",
    },
    {
        "name": "区城管执法局",
        "full_name": "北京市朝阳区城市管理综合行政执法局",
        "kind": "district_department",
    },
]


def demo_step_tasks(ctx: DemoContext) -> None:
    """Load seed 003 tasks and seed 000 targets, add synthetic progress, write dispatch reports."""
    from yizhangtu.services.tasks import (
        add_rectification,
        dispatch_report,
        import_ledger,
        load_seed_targets_into,
        load_seed_tasks_into,
        report_progress,
        task_records,
        write_dispatch,
    )
    from yizhangtu.tasks import TaskLedger, registry_from_records

    st, actor = ctx.store, ctx.settings.actor
    info = load_seed_tasks_into(st, "hunan_2021", actor=actor, replace=True)
    targets = load_seed_targets_into(st, "fangshan", actor=actor, replace=True)
    ctx.note(
        "任务督办",
        "hunan_2021 (种子 003 工作要点)",
        info.tasks,
        detail=f"(辖区 {info.jurisdiction})",
    )
    ctx.note("目标", "fangshan (种子 000 总体目标)", len(targets))
    recs = task_records(st, task_set="hunan_2021")
    versions = {r.key: r.version for r in recs}
    plan = synthetic_progress_plan(
        sorted(versions), targets={r.key: list(r.data.get("targets") or ()) for r in recs}
    )
    for p in plan:
        rec = report_progress(
            st,
            p["task_id"],
            progress_pct=p["progress_pct"],
            reported_on=p["reported_on"],
            evidence=p["evidence"],
            note=p["note"],
            reporter="演示(合成)",
            actuals=p["actuals"],
            actor=actor,
            expected_version=versions[p["task_id"]],
            synthetic=True,
        )
        versions[p["task_id"]] = rec.version
    ctx.note(
        "进度报送",
        "hunan_2021",
        len(plan),
        synthetic=True,
        detail=f"(季度报送; {OVERDUE_TASK} 年末未完成)",
    )
    reg = registry_from_records(_CHAOYANG_DEPARTMENTS, source="演示名录(合成)")
    import_ledger(
        st,
        TaskLedger(tasks=(), title="朝阳区规自领域问题整改(合成数据)", source="002 (一(三)三)"),
        task_set="chaoyang_rectification",
        registry=reg,
        actor=actor,
        jurisdiction=_JUR_CHAOYANG,
        replace=True,
        synthetic=True,
    )
    for item in _rectification_items():
        add_rectification(
            st,
            item,
            task_set="chaoyang_rectification",
            actor=actor,
            jurisdiction=_JUR_CHAOYANG,
            unit_id="110105",
        )
    ctx.note(
        "整改事项",
        "chaoyang_rectification",
        13,
        synthetic=True,
        detail="(已销号 9 项, 数量同 002 一(三)三)",
    )
    reports = ctx.out_dir / "reports"
    outputs = ctx.extras.setdefault("outputs", [])
    mid = dispatch_report(st, dt.date(2021, 9, 30), task_set="hunan_2021")
    outputs.append(
        write_dispatch(mid, reports / "调度报告_湖南2021_2021-09-30.html", "html")["file"]
    )
    end = dispatch_report(st, dt.date(2022, 1, 10), task_set="hunan_2021")
    for fmt in ("html", "pdf", "xlsx"):
        outputs.append(
            write_dispatch(end, reports / f"调度报告_湖南2021_2022-01-10.{fmt}", fmt)["file"]
        )
    rect = dispatch_report(st, dt.date(2022, 9, 22), task_set="chaoyang_rectification")
    outputs.append(write_dispatch(rect, reports / "整改调度_朝阳_2022-09-22.html", "html")["file"])
    first = end.states[0]
    ctx.note(
        "调度报告",
        "2022-01-10",
        len(end.states),
        synthetic=True,
        detail=f"(首项 {first.task.id} {first.status_label}; 计数 {end.counts()})",
    )


#: Steps this module contributes, in order (tasks first: the indicator step reads the
#: rectification items and records the Fangshan target actual).
STEPS = [("tasks", demo_step_tasks), ("scoring", demo_step_scoring)]
