"""Demo step: Chaoyang 2021 city health check by street, and Fangshan's 2020 targets.

Inputs are the demo workspace's real boundaries and census tables, the synthetic survey
(2020, 2021), the district figures reported in seed 002 (written here as ``stat_*`` tables, each
row citing its clause) and, when the task step ran first, the synthetic rectification items.
"""

from __future__ import annotations

import pandas as pd

from yizhangtu.services.demo import DemoContext

__all__ = ["STEPS", "demo_step_indicators", "write_seed_statistics"]


#: Indicators preferred for the street map of the demo report (first one computable).
_MAP_INDICATORS = ("residential_land_share", "construction_land_area")


def write_seed_statistics(ctx: DemoContext, *, unit_id: str = "110105") -> list[str]:
    """Write the figures seed 002 reports for a district as ``stat_<table>`` ledger tables.

    Only tables not already in the workspace are written. Each row carries ``source`` (the
    clause of the indicator it feeds) and ``synthetic = False`` (reported figures).
    """
    from yizhangtu.indicators import load_catalogue, load_seed_figures
    from yizhangtu.indicators.seed_figures import figure_tables

    frames: dict[str, list[pd.DataFrame]] = {}
    for fig in load_seed_figures():
        if fig.unit_id != unit_id or not fig.tables:
            continue
        cat = load_catalogue(fig.catalogue)
        clause = cat.get(fig.indicator).clause or fig.catalogue
        for name, df in figure_tables(fig, catalogue=cat).items():
            frames.setdefault(name, []).append(
                df.assign(
                    unit_id=df["unit_id"].astype(str),
                    source=f"{clause} ({fig.id})",
                    synthetic=False,
                )
            )
    existing = set(ctx.store.table_names())
    written = []
    for name, parts in sorted(frames.items()):
        tname = f"stat_{name}"
        if tname in existing:
            continue
        t = pd.concat(parts, ignore_index=True)
        t = t.groupby(["unit_id", "year"], as_index=False).first()
        ctx.store.write_table(tname, t, actor=ctx.settings.actor, action="table.import")
        ctx.note("统计表", f"{tname} (种子 002 报告数字)", len(t))
        written.append(tname)
    return written


def demo_step_indicators(ctx: DemoContext) -> None:
    """Evaluate Chaoyang 2021 by street; write the health check (HTML, PDF) and its xlsx."""
    from yizhangtu.services.indicators import (
        evaluate_workspace,
        export_run_xlsx,
        render_run_report,
    )

    write_seed_statistics(ctx)
    reports = ctx.out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    outputs = ctx.extras.setdefault("outputs", [])
    actor = ctx.settings.actor
    run = evaluate_workspace(ctx.store, year=2021, unit="朝阳区", level="street", actor=actor)
    s = run.summary()
    counts = ", ".join(f"{k} {v}" for k, v in s["status_counts"].items())
    ctx.note(
        "城市体检",
        f"朝阳区 2021 年 ({s['catalogue']})",
        f"{s['indicators']} 项指标 × {s['units']} 个单元",
        synthetic=bool(s["synthetic"]),
        detail=f"({counts}; 可计算指标 {s['computable_indicators']} 项; 溯源 {run.provenance_id})",
    )
    stem = "城市体检_朝阳区_2021"
    ids = set(run.evaluation.table.loc[run.evaluation.table["status"] != "无法计算", "indicator"])
    shown = next((i for i in _MAP_INDICATORS if i in ids), None)
    for fmt in ("html", "pdf"):
        p = render_run_report(
            ctx.store,
            run,
            reports / f"{stem}.{fmt}",
            format=fmt,
            map_indicator=shown,
        )
        outputs.append(str(p))
    outputs.append(str(export_run_xlsx(run, reports / f"{stem}.xlsx")))
    ctx.extras["indicator_run"] = run.summary()
    _fangshan_targets(ctx)


def _fangshan_targets(ctx: DemoContext) -> None:
    """Fangshan 2020 at district level (seed 000 targets) and the urbanisation actual."""
    from yizhangtu.errors import NotFoundError
    from yizhangtu.services.indicators import evaluate_workspace
    from yizhangtu.services.tasks import TARGETS, record_target_actual

    try:
        run = evaluate_workspace(
            ctx.store, year=2020, unit="房山区", level="district", actor=ctx.settings.actor
        )
    except NotFoundError:
        return
    t = run.evaluation.table
    row = t[(t["indicator"] == "urbanization_rate") & (t["unit_id"] == run.area_code)]
    if row.empty or not bool(pd.notna(row["value"].iloc[0])):
        return
    value = float(row["value"].iloc[0])
    ctx.note(
        "城市体检",
        "房山区 2020 年常住人口城镇化率 (七普)",
        f"{value:.2f}%",
        detail=(
            f"({row['status'].iloc[0]}: {row['status_reason'].iloc[0]}; 溯源 {run.provenance_id})"
        ),
    )
    try:
        rec = ctx.store.get_record(TARGETS, "FS-T2")
    except NotFoundError:
        return
    if any(a.get("provenance_id") == run.provenance_id for a in rec.data.get("actuals") or ()):
        return
    record_target_actual(
        ctx.store,
        "FS-T2",
        value=round(value, 2),
        on="2020-12-31",
        source="第七次全国人口普查 (census2020), 指标 urbanization_rate",
        provenance_id=run.provenance_id,
        expected_version=rec.version,
        actor=ctx.settings.actor,
    )


#: Steps this module contributes, in order.
STEPS = [("indicators", demo_step_indicators)]
