"""Demo step: a synthetic rights registry and certificate backlog (合成数据).

A registry for four Dongguan demo units, and a backlog of the order of seed 002 一(二)六
(66 projects, 10.8万 homes).

Runs after :func:`~yizhangtu.services.demo_renewal.demo_step_renewal`. The registries put the
computed shares exactly around the pack thresholds: consent just below and at
``consent_share_min`` (79 % and 80 %), signing just below and at
``expropriation_signing_share_min`` (94.9 % and 95 %). The renewal library is then checked
again (the rules now read the computed figures of these units) and its report rewritten.

Personal numbers are encrypted with ``YIZHANGTU_SECRET_KEY``; when it is not set the demo
generates a temporary key into ``<out>/demo-secret.key`` and warns.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import geopandas as gpd

from yizhangtu.errors import NotFoundError
from yizhangtu.policy.rules import jsonable
from yizhangtu.renewal.demo import DEMO_DATE
from yizhangtu.rights.backlog import backlog_to_workbook
from yizhangtu.rights.demo import DemoTarget, demo_backlog, demo_registry
from yizhangtu.services.demo import DemoContext
from yizhangtu.services.renewal import evaluate, list_units, resolve_pack, write_report
from yizhangtu.services.rights import (
    backlog_from_store,
    cipher_for,
    export_holders_xlsx,
    ratios_for_unit,
    resolve_rights_pack,
    save_backlog,
    save_registry,
)

__all__ = ["DEMO_UNITS", "STEPS", "demo_step_rights", "demo_targets"]

#: Demo units given a registry: two in 前期工作 (consent), two applying for expropriation.
DEMO_UNITS = ("DEMO-A05", "DEMO-C10", "DEMO-B04", "DEMO-B03")


def demo_targets(consent_min: float, signing_min: float, heads: int = 20) -> list[DemoTarget]:
    """Targets just below and exactly at the thresholds (by area; heads at the threshold)."""
    c_heads = math.ceil(consent_min * heads - 1e-9)
    s_heads = math.ceil(signing_min * heads - 1e-9)
    a05, c10, b04, b03 = DEMO_UNITS
    return [
        DemoTarget(a05, "consent", round(consent_min - 0.01, 6), c_heads, heads),
        DemoTarget(c10, "consent", consent_min, c_heads, heads),
        DemoTarget(b03, "signing", round(signing_min - 0.001, 6), s_heads, heads),
        DemoTarget(b04, "signing", signing_min, s_heads, heads),
    ]


def _ensure_key(ctx: DemoContext) -> None:
    if ctx.settings.secret_key:
        return
    path = ctx.out_dir / "demo-secret.key"
    key = path.read_text(encoding="utf-8").strip() if path.is_file() else secrets.token_urlsafe(32)
    path.write_text(key + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    ctx.settings = ctx.settings.model_copy(update={"secret_key": key})
    ctx.extras["secret_key_file"] = str(path)
    ctx.log(
        f"[警告] 未设置 YIZHANGTU_SECRET_KEY: 演示生成临时密钥 {path}(仅供演示, 勿用于真实数据); "
        f"查看原值前请 export YIZHANGTU_SECRET_KEY=$(cat {path})"
    )


def demo_step_rights(ctx: DemoContext) -> None:
    """Store the synthetic registry and backlog, compute ratios, re-check the library."""
    _ensure_key(ctx)
    actor = ctx.settings.actor
    pack = resolve_pack()
    rpack = resolve_rights_pack()
    stored = [
        s for s in list_units(ctx.store) if s.unit.unit_id in DEMO_UNITS and s.geometry is not None
    ]
    units = gpd.GeoDataFrame(
        {
            "unit_id": [s.unit.unit_id for s in stored],
            "town": [s.unit.town for s in stored],
            "land_area_m2": [s.unit.land_area_m2 for s in stored],
        },
        geometry=[s.geometry for s in stored],
        crs=stored[0].crs if stored else "EPSG:4490",
    )
    targets = demo_targets(
        pack.param("consent_share_min", unit="ratio", at=DEMO_DATE),
        pack.param("expropriation_signing_share_min", unit="ratio", at=DEMO_DATE),
    )
    registry, _people = demo_registry(
        units,
        targets,
        cipher_for(ctx.settings),
        DEMO_DATE,
        procedure_abroad=rpack.param("procedure_abroad", unit="text", at=DEMO_DATE),
    )
    res = save_registry(ctx.store, registry, actor=actor, source="合成数据: yizhangtu.rights.demo")
    reports = Path(ctx.out_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    ratios = {
        t.unit_id: ratios_for_unit(ctx.store, t.unit_id, DEMO_DATE, rpack, actor=actor)
        for t in targets
    }
    (reports / "rights_ratios.json").write_text(
        json.dumps(
            jsonable({k: v.to_dict() for k, v in ratios.items()}), ensure_ascii=False, indent=2
        ),
        encoding="utf-8",
    )
    export_holders_xlsx(ctx.store, reports / "rights_holders.xlsx")
    summary = "; ".join(
        f"{t.unit_id} {('意愿' if t.kind == 'consent' else '签约')}"
        f"{getattr(ratios[t.unit_id], t.kind).area_share:.1%}/"
        f"{getattr(ratios[t.unit_id], t.kind).head_share:.0%}"
        for t in targets
    )
    ctx.note(
        "权益登记",
        "rights_parcels",
        res.counts["parcels"],
        synthetic=True,
        detail=f"({res.counts['holders']} 名权益人; {summary})",
    )

    streets: list[str] = []
    try:
        frame = ctx.store.read_layer("chaoyang_streets")
        if "name" in frame.columns:
            streets = sorted(str(n) for n in frame["name"].dropna())
    except NotFoundError:  # the Chaoyang layer is optional for this step
        streets = []
    projects, homes = demo_backlog(streets or ["朝阳区"], seed=2021)
    save_backlog(ctx.store, projects, homes, actor=actor)
    progress = backlog_from_store(ctx.store)
    backlog_to_workbook(progress).save(reports / "cert_backlog.xlsx")
    t = progress.totals
    ctx.note(
        "办证台账",
        "cert_projects",
        t["projects"],
        synthetic=True,
        detail=f"({t['homes']} 套, 已发证 {t['issued_share']:.1%}, 受阻 {t['blocked']} 套)",
    )

    ev = evaluate(ctx.store, DEMO_DATE, pack, actor=actor, rights_pack=rpack)
    formats = tuple(ctx.extras.get("report_formats", ("html", "pdf")))
    write_report(
        ctx.store,
        DEMO_DATE,
        pack,
        reports,
        actor=actor,
        evaluation=ev,
        rights_pack=rpack,
        formats=formats,
    )
    ctx.extras["rights"] = {
        "ratios": {
            k: v.to_dict()["consent"] | {"signing": v.to_dict()["signing"]}
            for k, v in ratios.items()
        },
        "backlog": t,
        "provenance_id": ev.provenance_id,
    }
    computed = sum(1 for r in ev.ratios.values() if r.covered)
    ctx.note(
        "更新评估(名册)",
        DEMO_DATE.isoformat(),
        computed,
        synthetic=True,
        detail="个单元按权益登记库计算意愿/签约",
    )


STEPS: list[tuple[str, Any]] = [("rights", demo_step_rights)]
