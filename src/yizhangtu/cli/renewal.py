"""``yizhangtu renewal``: the Dongguan "三旧" renewal library (城市更新单元库).

Commands: import, add, show, advance, check, deadlines, report, export, stats. Every command
accepts ``--json``; ``--pack`` names the policy pack (id or YAML path) and ``--set name=value``
supplies parameters the pack leaves to the user (e.g. ``--set unit_area_max=...``, the 小圈 cap
whose digit is illegible in seed 004).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table
from yizhangtu.errors import InputError
from yizhangtu.policy.rules import SEVERITY_LABELS, jsonable
from yizhangtu.renewal.model import (
    ConsentFigures,
    Mode,
    RenewalUnit,
    Stage,
    StageDates,
    UnitType,
    parse_enum,
)
from yizhangtu.services import renewal as svc

__all__ = ["app"]

app = typer.Typer(help='城市更新单元库("三旧"改造)', no_args_is_help=True)

PACK_OPT = typer.Option(None, "--pack", help="政策包编号或 YAML 路径 (默认 dongguan-2023)")
SET_OPT = typer.Option(None, "--set", help="设定政策包参数 名称=值, 可多次 (如 unit_area_max=...)")
RIGHTS_PACK_OPT = typer.Option(None, "--rights-pack", help="权益计数规则包 (默认 rights-counting)")
AT_OPT = typer.Option(None, "--at", help="评价日期 YYYY-MM-DD (默认今天)")
TOWN_OPT = typer.Option(None, "--town", help="只看这些镇街 (名称), 可多次")


def _date(value: str | None, name: str = "--at") -> dt.date:
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"日期格式应为 YYYY-MM-DD: {value}", key="bad_date", field=name) from None


def _pack(pack: str | None, sets: list[str] | None) -> Any:
    return svc.resolve_pack(pack, svc.parse_set_options(sets))


def _rights_pack(name: str | None) -> Any:
    if name is None:
        return None
    from yizhangtu.services.rights import resolve_rights_pack

    return resolve_rights_pack(name)


def _jurisdictions(st: Any, towns: list[str] | None) -> list[str] | None:
    if not towns:
        return None
    index = svc.town_index(st)
    return [index.code(t) for t in towns]


def _shares(text: str | None, name: str) -> tuple[float, float] | None:
    if not text:
        return None
    parts = [p.strip() for p in text.replace("，", ",").split(",")]
    try:
        vals = [float(p[:-1]) / 100 if p.endswith("%") else float(p) for p in parts]
    except ValueError:
        raise InputError(
            f"{name} 应为 面积占比,人数占比 (如 0.85,0.82): {text}", key="bad_share", field=name
        ) from None
    if len(vals) != 2:
        raise InputError(f"{name} 须给出面积和人数两个占比: {text}", key="bad_share", field=name)
    return vals[0], vals[1]


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(
        None, help="单元清单: Excel (改造单元/权益人名册) 或矢量文件 (平面记录 + 红线)"
    ),
    geometry: Path = typer.Option(
        None, "--geometry", help="单元红线矢量文件 (含 unit_id), 配合 Excel 清单"
    ),
    zones: Path = typer.Option(
        None, "--zones", help="大圈/中圈/连片工改工片区矢量文件 (zone_id, tier, parent_id …)"
    ),
    update: bool = typer.Option(
        False, "--update", help="覆盖已有同编号单元 (按当前版本写入并记审计)"
    ),
    towns_layer: str = typer.Option(
        svc.DEFAULT_TOWNS_LAYER, "--towns-layer", help="镇街边界图层 (镇街代码)"
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """导入改造单元清单和片区 (全部校验通过才写入)."""
    if file is None and zones is None:
        raise InputError("请给出单元清单文件或 --zones 片区文件", key="nothing_to_import")
    settings = settings_from(ctx)
    out: dict[str, Any] = {}
    with open_workspace(ctx, create=True) as st:
        if zones is not None:
            frame = svc.read_vector(zones)
            snap = svc.save_zones(st, frame, actor=settings.actor)
            out["zones"] = snap.to_dict()
        if file is not None:
            res = svc.import_units_file(
                st,
                file,
                actor=settings.actor,
                geometry_path=geometry,
                update=update,
                towns_layer=towns_layer,
            )
            out["units"] = res.to_dict()
    if json_out:
        emit_json(out)
        return
    if "zones" in out:
        console.print(
            f"[green]已导入片区[/] {out['zones']['feature_count']} 个 → 图层 {svc.ZONES_LAYER}"
        )
    if "units" in out:
        u = out["units"]
        console.print(
            f"[green]已导入单元[/] 新增 {len(u['created'])}、更新 {len(u['updated'])}、"
            f"未变 {len(u['unchanged'])}" + (" (合成数据)" if u["synthetic"] else "")
        )


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    unit_id: str = typer.Option(..., "--id", help="单元编号"),
    name: str = typer.Option(None, "--name", help="单元名称"),
    town: str = typer.Option(..., "--town", help="镇街 (与边界图层一致)"),
    unit_type: str = typer.Option(
        ..., "--type", help="改造类型: 工改工/工改居商/旧村改造/城镇社区/产城融合/整村统筹"
    ),
    mode: str = typer.Option(
        ..., "--mode", help="改造模式: 政府主导/公开招引实施主体/权利人自行改造"
    ),
    area_mu: float = typer.Option(None, "--area-mu", help="用地面积 (亩)"),
    area_m2: float = typer.Option(None, "--area-m2", help="用地面积 (平方米)"),
    stage: str = typer.Option("前期工作", "--stage", help="阶段"),
    area_id: str = typer.Option(None, "--area-id", help="所属中圈/连片工改工片区编号"),
    declared_on: str = typer.Option(None, "--declared-on", help="申报日期"),
    consent: str = typer.Option(
        None, "--consent", help="填报的改造意愿 面积占比,人数占比 (如 0.85,0.82)"
    ),
    signing: str = typer.Option(None, "--signing", help="填报的签约 面积占比,人数占比"),
    wkt: str = typer.Option(None, "--geometry-wkt", help="单元红线 WKT"),
    crs: str = typer.Option("EPSG:4490", "--crs", help="WKT 的坐标系"),
    json_out: bool = JSON_OPT,
) -> None:
    """新增一个改造单元."""
    import shapely

    from yizhangtu.geo.area import AREA_UNITS

    if (area_mu is None) == (area_m2 is None):
        raise InputError(
            "请给出 --area-mu 或 --area-m2 之一", key="area_required", field="--area-mu"
        )
    land = area_m2 if area_m2 is not None else area_mu * AREA_UNITS["mu"]
    c, s = _shares(consent, "--consent"), _shares(signing, "--signing")
    unit = RenewalUnit(
        unit_id=unit_id,
        name=name or unit_id,
        town=town,
        unit_type=parse_enum(UnitType, unit_type, "unit_type", unit_id),
        mode=parse_enum(Mode, mode, "mode", unit_id),
        land_area_m2=land,
        stage=parse_enum(Stage, stage, "stage", unit_id),
        area_id=area_id,
        consent=ConsentFigures(c[0], c[1], source="entered") if c else None,
        signing=ConsentFigures(s[0], s[1], source="entered", kind="signing") if s else None,
        dates=StageDates(declared_on=_date(declared_on, "--declared-on") if declared_on else None),
    )
    try:
        geom = shapely.from_wkt(wkt) if wkt else None
    except shapely.errors.GEOSException:
        raise InputError(
            "--geometry-wkt 不是有效的 WKT", key="bad_wkt", field="--geometry-wkt"
        ) from None
    with open_workspace(ctx, create=True) as st:
        stored = svc.add_unit(
            st, unit, actor=settings_from(ctx).actor, geometry=geom, crs=crs if geom else None
        )
    if json_out:
        emit_json(stored.to_dict() | {"version": stored.unit.version})
        return
    console.print(f"[green]已新增单元[/] {unit_id} ({town}, 版本 {stored.unit.version})")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    unit_id: str = typer.Argument(..., help="单元编号"),
    at: str = AT_OPT,
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    rights_pack: str = RIGHTS_PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """查看单元: 记录、当前问题、可转入的阶段、意愿数据来源."""
    when = _date(at)
    with open_workspace(ctx) as st:
        out = svc.show_unit(
            st, unit_id, when, _pack(pack, sets), rights_pack=_rights_pack(rights_pack)
        )
    if json_out:
        emit_json(out)
        return
    console.print(
        f"[bold]{out['unit_id']}[/] {out['name']} · {out['town']} · {out['unit_type']} · "
        f"{out['mode']} · "
        f"阶段 {out['stage']} · 版本 {out['version']}"
        + (" · 合成数据" if out.get("synthetic") else "")
    )
    src = out.get("figure_source") or {}
    if src.get("source"):
        console.print(
            f"意愿/签约数据来源: {'权益登记库计算' if src['source'] == 'computed' else '人工填报'}"
        )
    status = out["status"]
    console.print("可转入: " + ("、".join(status["allowed_next"]) or "无"))
    rows = [
        [f["severity_label"], f["rule_id"], f["message"], f["clause"]] for f in status["findings"]
    ]
    console.print(table(f"{unit_id} 于 {when} 的检查结果", ["级别", "规则", "说明", "依据"], rows))


@app.command("advance")
def advance_cmd(
    ctx: typer.Context,
    unit_id: str = typer.Argument(..., help="单元编号"),
    stage: str = typer.Argument(
        ..., help="目标阶段: 确认主体/实施方案/开发监管/暂停/退出/禁止重启/前期工作"
    ),
    at: str = AT_OPT,
    version: int = typer.Option(
        None, "--version", help="读取时的版本号 (乐观锁; 与当前版本不符则拒绝)"
    ),
    note: str = typer.Option(None, "--note", help="说明"),
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    rights_pack: str = RIGHTS_PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """推进单元阶段 (规则校验; 写入与审计在同一事务)."""
    when = _date(at)
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        res = svc.advance_unit(
            st,
            unit_id,
            stage,
            when,
            _pack(pack, sets),
            actor=settings.actor,
            expected_version=version,
            note=note,
            rights_pack=_rights_pack(rights_pack),
        )
    if json_out:
        emit_json(res.to_dict())
        return
    console.print(
        f"[green]已推进[/] {unit_id}: {res.from_stage.value} → {res.to_stage.value} "
        f"(版本 {res.stored.unit.version}, 审计 #{res.audit_seq})"
    )


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    at: str = AT_OPT,
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    rights_pack: str = RIGHTS_PACK_OPT,
    towns: list[str] = TOWN_OPT,
    days: int = typer.Option(
        None, "--days", help="期限提醒时间窗 (天, 默认政策包 timeline_horizon)"
    ),
    all_findings: bool = typer.Option(False, "--all", help="也列出提示级结果"),
    json_out: bool = JSON_OPT,
) -> None:
    """按政策包检查单元库: 列出每条结果的规则、级别、条款和事实."""
    when = _date(at)
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        ev = svc.evaluate(
            st,
            when,
            _pack(pack, sets),
            actor=settings.actor,
            rights_pack=_rights_pack(rights_pack),
            jurisdictions=_jurisdictions(st, towns),
            days=days,
        )
    if json_out:
        emit_json(
            {
                "at": when.isoformat(),
                "pack": dict(ev.pack),
                "rights_pack": dict(ev.rights_pack) if ev.rights_pack else None,
                "synthetic": ev.synthetic,
                "counts": ev.counts(),
                "provenance_id": ev.provenance_id,
                "findings": [f.to_dict() for f in ev.findings],
                "figure_sources": jsonable(list(ev.sources)),
            }
        )
        return
    shown = [f for f in ev.findings if all_findings or f.severity != "info"]
    c = ev.counts()
    rows = [
        [f.subject or "全市", SEVERITY_LABELS[f.severity], f.rule_id, f.message, f.clause]
        for f in shown
    ]
    title = f"单元库检查 {when} (错误 {c['error']}, 警告 {c['warning']}, 提示 {c['info']})" + (
        " · 合成数据" if ev.synthetic else ""
    )
    console.print(table(title, ["对象", "级别", "规则", "说明", "依据"], rows))
    console.print(f"溯源记录: {ev.provenance_id}")


@app.command("deadlines")
def deadlines_cmd(
    ctx: typer.Context,
    at: str = AT_OPT,
    days: int = typer.Option(None, "--days", help="时间窗 (天, 默认政策包 timeline_horizon = 90)"),
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    towns: list[str] = TOWN_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """列出时间窗内到期和已逾期的期限 (004 (六)(十二))."""
    when = _date(at)
    with open_workspace(ctx) as st:
        df = svc.deadlines(
            st, when, _pack(pack, sets), days=days, jurisdictions=_jurisdictions(st, towns)
        )
    rows = jsonable(df.to_dict(orient="records"))
    if json_out:
        emit_json({"at": when.isoformat(), "days": days, "deadlines": rows})
        return
    status_zh = {"pending": "未到期", "due_today": "今日到期", "overdue": "已逾期"}
    console.print(
        table(
            f"期限提醒 {when}",
            ["对象", "镇街", "阶段", "事项", "到期日", "剩余天数", "状态", "依据"],
            [
                [
                    r["subject"],
                    r["town"],
                    r["stage"],
                    r["label"],
                    r["due"],
                    r["days_left"],
                    status_zh.get(r["status"], r["status"]),
                    r["clause"],
                ]
                for r in rows
            ],
        )
    )


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    at: str = AT_OPT,
    out: Path = typer.Option(Path("reports"), "--out", help="输出目录"),
    formats: str = typer.Option("html,pdf", "--format", help="html、pdf 或 html,pdf"),
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    rights_pack: str = RIGHTS_PACK_OPT,
    towns: list[str] = TOWN_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """生成单元库评估报告 (中文 HTML/PDF: 问题清单、推进情况、期限、片区、联动)."""
    when = _date(at)
    settings = settings_from(ctx)
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    with open_workspace(ctx) as st:
        res = svc.write_report(
            st,
            when,
            _pack(pack, sets),
            out,
            actor=settings.actor,
            formats=fmts,
            rights_pack=_rights_pack(rights_pack),
            jurisdictions=_jurisdictions(st, towns),
        )
    if json_out:
        emit_json(res.to_dict())
        return
    for p in res.paths:
        console.print(f"[green]已生成[/] {p}")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="输出 Excel 文件 (.xlsx)"),
    towns: list[str] = TOWN_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """导出单元清单为 Excel (中文表头)."""
    with open_workspace(ctx) as st:
        p = svc.export_units_xlsx(st, file, jurisdictions=_jurisdictions(st, towns))
    if json_out:
        emit_json({"path": str(p)})
        return
    console.print(f"[green]已导出[/] {p}")


@app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    at: str = AT_OPT,
    pack: str = PACK_OPT,
    sets: list[str] = SET_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """片区统计 (面积、下级片区、单元) 和镇街工改工联动比例."""
    when = _date(at)
    with open_workspace(ctx) as st:
        ev = svc.evaluate(st, when, _pack(pack, sets), actor=settings_from(ctx).actor, record=False)
    zs = jsonable(ev.report.zone_stats.to_dict(orient="records"))
    lk = jsonable(ev.report.linkage.to_dict(orient="records"))
    if json_out:
        emit_json(
            {
                "at": when.isoformat(),
                "zone_stats": zs,
                "linkage": lk,
                "pipeline": jsonable(ev.pipeline().to_dict(orient="records")),
            }
        )
        return
    console.print(
        table(
            "片区统计",
            ["编号", "层级", "镇街", "上级", "面积(km²)", "单元数", "单元用地(亩)"],
            [
                [
                    z["zone_id"],
                    z["tier"],
                    z["town"],
                    z["parent_id"],
                    f"{z['area_km2']:.3f}" if z["area_km2"] else "-",
                    z["unit_count"],
                    f"{z['unit_land_mu']:.1f}",
                ]
                for z in zs
            ],
        )
    )
    console.print(
        table(
            "镇街工改工联动",
            ["镇街", "工改工(亩)", "工改居商(亩)", "占比", "结论"],
            [
                [
                    r["town"],
                    f"{r['industrial_mu']:.1f}",
                    f"{r['rescom_mu']:.1f}",
                    f"{r['share']:.1%}" if r["share"] is not None else "-",
                    r["message"],
                ]
                for r in lk
            ],
        )
    )
