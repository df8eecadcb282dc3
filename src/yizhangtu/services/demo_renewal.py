"""Demo step: the Dongguan renewal library (合成数据) inside the real town boundaries.

Needs the boundary layer ``dongguan_towns`` (demo step ``boundaries``). Builds the synthetic
zones and about 30 units of :func:`yizhangtu.renewal.demo.demo_library`, stores them
(records with town codes, unit and zone layers, town accounts), checks them on the demo
date and writes the report to ``<out>/reports/renewal_report.{html,pdf}`` and the unit list
to ``<out>/reports/renewal_units.xlsx``. ``ctx.extras["report_formats"]`` may limit the report
formats (default html and pdf).
"""

from __future__ import annotations

from typing import Any

from yizhangtu.renewal.demo import demo_library
from yizhangtu.services.demo import DemoContext
from yizhangtu.services.renewal import (
    DEFAULT_TOWNS_LAYER,
    evaluate,
    export_units_xlsx,
    import_units,
    resolve_pack,
    save_town_accounts,
    save_zones,
    write_report,
)

__all__ = ["STEPS", "demo_step_renewal"]


def demo_step_renewal(ctx: DemoContext) -> None:
    """Store and check the synthetic renewal library; write its report."""
    towns = ctx.store.read_layer(DEFAULT_TOWNS_LAYER)
    pack = resolve_pack()
    demo = demo_library(towns, seed=0, pack=pack)
    actor = ctx.settings.actor
    zsnap = save_zones(ctx.store, demo.zones, actor=actor, synthetic=True)
    units = demo.units
    ids = units["unit_id"].astype(str)
    res = import_units(
        ctx.store,
        demo.library.units,
        actor=actor,
        geometries=dict(zip(ids, units.geometry.values, strict=True)),
        crs=units.crs,
        scenarios=dict(zip(ids, units["scenario"], strict=True)),
        update=True,
        source="合成数据: yizhangtu.renewal.demo",
    )
    save_town_accounts(ctx.store, demo.library.towns, actor=actor)
    reports = ctx.out_dir / "reports"
    ev = evaluate(ctx.store, demo.at, pack, actor=actor)
    formats = tuple(ctx.extras.get("report_formats", ("html", "pdf")))
    out = write_report(
        ctx.store, demo.at, pack, reports, actor=actor, evaluation=ev, formats=formats
    )
    xlsx = export_units_xlsx(ctx.store, reports / "renewal_units.xlsx")
    counts = ev.counts()
    ctx.extras["renewal"] = {
        "at": demo.at,
        "towns": dict(demo.towns),
        "units": len(res.created) + len(res.updated) + len(res.unchanged),
        "provenance_id": ev.provenance_id,
        "reports": [str(p) for p in (*out.paths, xlsx)],
    }
    towns_used = "、".join(sorted(set(demo.towns.values())))
    ctx.note(
        "更新片区",
        "renewal_zones",
        zsnap.feature_count,
        synthetic=True,
        detail=f"(大圈/中圈/连片工改工, {towns_used})",
    )
    ctx.note(
        "改造单元",
        "renewal_units",
        ctx.extras["renewal"]["units"],
        synthetic=True,
        detail="(记录 + 图层, 含镇街代码)",
    )
    ctx.note(
        "更新评估",
        f"{demo.at.isoformat()}",
        len(ev.findings),
        synthetic=True,
        detail=f"(错误 {counts['error']}, 警告 {counts['warning']}; "
        f"报告 {', '.join(p.name for p in out.paths)})",
    )


STEPS: list[tuple[str, Any]] = [("renewal", demo_step_renewal)]
