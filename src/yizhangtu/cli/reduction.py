"""``yizhangtu reduction``: the construction-land reduction ledger (减量台账)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table
from yizhangtu.errors import InputError, QCError
from yizhangtu.geo.area import AREA_UNITS

__all__ = ["app"]

app = typer.Typer(
    help="减量台账: 目标分解、地块落图、年度验收、复建监测、指标联动、进度", no_args_is_help=True
)
targets_app = typer.Typer(help="减量目标 (市—区—乡镇)", no_args_is_help=True)
plots_app = typer.Typer(help="减量地块落图", no_args_is_help=True)
transfer_app = typer.Typer(help="指标联动 (疏解地 → 承接地) 与增减挂钩平衡", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
app.add_typer(plots_app, name="plots")
app.add_typer(transfer_app, name="transfer")

PACK_OPT = typer.Option(
    None, "--pack", help="政策包 id 或路径 (默认 reduction config 中的, 即 beijing-reduction)"
)


def _km2(v: float | None, nd: int = 4) -> str:
    return "" if v is None else f"{v / 1e6:.{nd}f}"


def _ha(v: float | None, nd: int = 4) -> str:
    return "" if v is None else f"{v / 1e4:.{nd}f}"


def _area_m2(km2: float | None, ha: float | None, mu: float | None, m2: float | None) -> float:
    given = [(v, u) for v, u in ((km2, "km2"), (ha, "ha"), (mu, "mu"), (m2, "m2")) if v is not None]
    if len(given) != 1:
        raise InputError(
            "面积须且只能用 --km2、--ha、--mu、--m2 之一给出", key="reduction_area_option"
        )
    v, u = given[0]
    return float(v) * AREA_UNITS[u]


# ------------------------------------------------------------------------------------- config
@app.command("config")
def config_cmd(
    ctx: typer.Context,
    units_layer: str = typer.Option(
        None, "--units-layer", help="核算单元图层 (乡镇/街道界), 如 chaoyang_streets"
    ),
    unit_field: str = typer.Option(None, "--unit-field", help="单元代码字段 (默认 code)"),
    name_field: str = typer.Option(None, "--name-field", help="单元名称字段 (默认 name)"),
    parent_field: str = typer.Option(
        None, "--parent-field", help="上级 (区) 代码字段 (默认 district_code)"
    ),
    parent_name_field: str = typer.Option(
        None, "--parent-name-field", help="上级名称字段 (默认 district_name)"
    ),
    survey_layer: str = typer.Option(None, "--survey-layer", help="变更调查图层 (默认 survey)"),
    code_field: str = typer.Option(None, "--code-field", help="地类代码字段 (默认 DLBM)"),
    czcsxm_field: str = typer.Option(None, "--czcsxm-field", help="城镇村属性码字段 (默认 CZCSXM)"),
    pack: str = typer.Option(None, "--pack", help="默认政策包"),
    json_out: bool = JSON_OPT,
) -> None:
    """查看或设定减量台账使用的图层与字段."""
    from dataclasses import asdict

    from yizhangtu.services.reduction import get_config, set_config

    changes = dict(
        units_layer=units_layer,
        unit_field=unit_field,
        name_field=name_field,
        parent_field=parent_field,
        parent_name_field=parent_name_field,
        survey_layer=survey_layer,
        code_field=code_field,
        czcsxm_field=czcsxm_field,
        pack=pack,
    )
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        cfg = (
            set_config(st, actor=settings.actor, **changes)
            if any(v is not None for v in changes.values())
            else get_config(st)
        )
    if json_out:
        emit_json(asdict(cfg))
        return
    console.print(table("减量台账配置", ["项目", "值"], [[k, v] for k, v in asdict(cfg).items()]))


# ------------------------------------------------------------------------------------- targets
@targets_app.command("set")
def targets_set(
    ctx: typer.Context,
    unit: str = typer.Option(..., "--unit", help="单位代码"),
    name: str = typer.Option(None, "--name", help="单位名称"),
    level: str = typer.Option(
        "township", "--level", help="层级: city/district/township (市/区/乡镇)"
    ),
    parent: str = typer.Option(None, "--parent", help="上级单位代码"),
    kind: str = typer.Option("total", "--kind", help="total (总目标, 至期限) 或 annual (年度目标)"),
    year: int = typer.Option(..., "--year", help="期限年 (总目标) 或目标年度 (年度目标)"),
    km2: float = typer.Option(None, "--km2", help="目标净减量 (平方公里)"),
    ha: float = typer.Option(None, "--ha", help="目标净减量 (公顷)"),
    mu: float = typer.Option(None, "--mu", help="目标净减量 (亩)"),
    clause: str = typer.Option(None, "--clause", help='依据, 如 "002 (一(一)二)"'),
    synthetic: bool = typer.Option(False, "--synthetic", help="演示用的合成目标"),
    json_out: bool = JSON_OPT,
) -> None:
    """设定一个单位的减量目标 (同单位、类型、年份的目标被替换)."""
    from yizhangtu.reduction import Target
    from yizhangtu.services.reduction import set_target

    t = Target(
        unit_code=unit,
        unit_name=name or unit,
        level=level,
        kind=kind,
        year=year,
        target_m2=_area_m2(km2, ha, mu, None),
        parent_code=parent,
        clause=clause,
        synthetic=synthetic,
    )
    with open_workspace(ctx) as st:
        set_target(st, t, actor=settings_from(ctx).actor)
    if json_out:
        emit_json(t.to_row() | {"target_km2": t.target_m2 / 1e6})
    else:
        console.print(
            f"[green]已设定[/] {t.unit_name}({t.unit_code}) {t.year} 年"
            f"{'总' if t.kind == 'total' else '年度'}目标 {t.target_m2 / 1e6:.4f} 平方公里"
        )


@targets_app.command("import")
def targets_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="目标表 .xlsx (表头见 yizhangtu.reduction.excel)"),
    json_out: bool = JSON_OPT,
) -> None:
    """从 Excel 导入目标 (表头见 yizhangtu.reduction.excel)."""
    from yizhangtu.services.reduction import import_targets

    with open_workspace(ctx) as st:
        ts = import_targets(st, file, actor=settings_from(ctx).actor)
    if json_out:
        emit_json({"imported": len(ts), "targets": [t.to_row() for t in ts]})
    else:
        console.print(f"[green]已导入[/] {len(ts)} 条目标 ← {file.name}")


@targets_app.command("show")
def targets_show(ctx: typer.Context, json_out: bool = JSON_OPT) -> None:
    """列出目标及分解核对 (下级合计是否等于上级目标)."""
    from yizhangtu.reduction.model import LEVEL_LABELS, TARGET_KIND_LABELS
    from yizhangtu.services.reduction import targets_report

    with open_workspace(ctx) as st:
        rep = targets_report(st)
    if json_out:
        emit_json(rep)
        return
    rows = [
        [
            LEVEL_LABELS[t["level"]],
            t["unit_code"],
            t["unit_name"],
            t["parent_code"] or "",
            TARGET_KIND_LABELS[t["kind"]],
            t["year"],
            f"{t['target_km2']:.4f}",
            t["clause"] or "",
            "是" if t["synthetic"] else "",
        ]
        for t in rep["targets"]
    ]
    console.print(
        table(
            "减量目标",
            ["层级", "代码", "名称", "上级", "类型", "年份", "目标(平方公里)", "依据", "合成"],
            rows,
        )
    )
    for c in rep["split_checks"]:
        console.print(("[green]✓[/] " if c["ok"] else "[yellow]![/] ") + c["message"])


# ------------------------------------------------------------------------------------- plots
@plots_app.command("submit")
def plots_submit(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="地块文件: shp/gpkg/geojson, 或 xlsx/csv (WKT 面, 或 图层+要素编号)"
    ),
    township: str = typer.Option(..., "--township", help="乡镇代码"),
    year: int = typer.Option(..., "--year", help="减量年度"),
    flag: bool = typer.Option(False, "--flag", help="空间/属性问题不拒收, 带标记入库 (不计入验收)"),
    replace_existing: bool = typer.Option(
        False, "--replace", help="替换本乡镇本年度尚未验收的地块"
    ),
    crs: str = typer.Option(None, "--crs", help="源坐标系 (覆盖文件声明或推断)"),
    wkt_field: str = typer.Option(None, "--wkt-field", help="表格中的 WKT 列"),
    dry_run: bool = typer.Option(False, "--dry-run", help="只质检, 不入库"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """提交乡镇年度减量地块 (落图): 质检通过才入库; 有错误时整批拒收并列出原因."""
    from yizhangtu.services.reduction import reduction_pack, submit_plots

    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        try:
            res = submit_plots(
                st,
                file,
                township=township,
                year=year,
                settings=settings,
                pack=reduction_pack(st, pack),
                flag=flag,
                replace_existing=replace_existing,
                crs=crs,
                wkt_field=wkt_field,
                dry_run=dry_run,
            )
        except QCError as exc:
            if not json_out:
                _print_issues(exc.data.get("issues", []))
            raise
    if json_out:
        emit_json(res.to_dict())
        return
    console.print(
        (
            f"[green]质检通过 (未入库, --dry-run)[/] {res.submitted} 个地块"
            if dry_run
            else f"[green]已入库[/] {res.submitted} 个地块"
        )
        + f" ({_ha(res.area_m2)} 公顷)"
        f" → 快照 {res.snapshot.label if res.snapshot else '-'}"
        + (f", 其中 [yellow]{res.flagged} 个带质检标记[/]" if res.flagged else "")
    )
    for i in res.issues:
        console.print(
            f"  [{'red' if i.severity == 'error' else 'yellow'}]{i.plot_id or '-'}[/] {i.message}"
        )


def _print_issues(issues: list[dict[str, Any]]) -> None:
    rows = [
        [
            i.get("plot_id") or "-",
            "错误" if i["severity"] == "error" else "警告",
            i["check"],
            i["message"],
        ]
        for i in issues
    ]
    console.print(table("落图质检问题", ["地块", "级别", "检查", "说明"], rows))


@plots_app.command("list")
def plots_list(
    ctx: typer.Context,
    township: str = typer.Option(None, "--township"),
    year: int = typer.Option(None, "--year"),
    json_out: bool = JSON_OPT,
) -> None:
    """列出已提交的减量地块."""
    from yizhangtu.services.reduction import list_plots

    with open_workspace(ctx) as st:
        gdf = list_plots(st, township=township, year=year)
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    if json_out:
        emit_json(
            {
                "plots": [
                    {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                    for r in gdf[cols].to_dict("records")
                ]
            }
        )
        return
    rows = [
        [
            r["plot_id"],
            r["township"],
            r["year"],
            r["plot_type"],
            r["ownership"],
            r["planned_use"],
            _ha(r["area_m2"]),
            "质检存疑" if r["qc_status"] == "flagged" else "通过",
        ]
        for r in gdf[cols].to_dict("records")
    ]
    console.print(
        table(
            "减量地块",
            ["编号", "乡镇", "年度", "类型", "权属", "减量后用途", "面积(公顷)", "质检"],
            rows,
        )
    )


# ------------------------------------------------------------------------------------- accept
@app.command("accept")
def accept_cmd(
    ctx: typer.Context,
    year: int = typer.Option(..., "--year", help="验收年度"),
    survey: str = typer.Option(..., "--survey", help="当年变更调查快照标签, 如 2021"),
    baseline: str = typer.Option(None, "--baseline", help="上年调查快照 (默认: 前一个快照)"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """年末验收: 用当年变更调查核验各地块, 并生成净减量/验收减量/新增的台账."""
    from yizhangtu.reduction.model import VERDICT_LABELS
    from yizhangtu.services.reduction import accept_year, reduction_pack

    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        res = accept_year(
            st,
            year=year,
            survey=survey,
            baseline=baseline,
            settings=settings,
            pack=reduction_pack(st, pack),
        )
    if json_out:
        emit_json(res.to_dict())
        return
    d = res.to_dict()
    console.print(
        f"[bold]{year} 年验收[/]: 调查 {res.baseline.label} → {res.survey.label};"
        f" 溯源号 {res.provenance_id}"
    )
    console.print(
        "  " + ", ".join(f"{VERDICT_LABELS.get(k, k)} {v}" for k, v in d["verdicts"].items())
        if d["verdicts"]
        else "  本年没有提交地块"
    )
    _print_ledger(res.district, f"{year} 年区级台账 (公顷)")


def _print_ledger(df: Any, title: str) -> None:
    rows = [
        [
            r.unit_name,
            _ha(r.stock_prev_m2),
            _ha(r.stock_m2),
            _ha(r.net_m2),
            _ha(r.removed_m2),
            _ha(r.accepted_m2),
            _ha(r.other_removed_m2),
            _ha(r.added_m2),
            f"{r.residual_m2:.6f}",
        ]
        for r in df.itertuples(index=False)
    ]
    console.print(
        table(
            title,
            [
                "单位",
                "上年存量",
                "本年存量",
                "净减量",
                "退出",
                "验收减量",
                "其他减少",
                "新增",
                "核对差(㎡)",
            ],
            rows,
        )
    )


# ------------------------------------------------------------------------------------- rebuild
@app.command("rebuild")
def rebuild_cmd(
    ctx: typer.Context,
    survey: str = typer.Option(..., "--survey", help="用于复建监测的调查快照标签"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """复建监测: 用后续调查检查已验收地块; 城乡建设用地重现超过容差时预警."""
    from yizhangtu.services.reduction import check_rebuild, reduction_pack

    with open_workspace(ctx) as st:
        alerts = check_rebuild(
            st, survey=survey, settings=settings_from(ctx), pack=reduction_pack(st, pack)
        )
    if json_out:
        emit_json(
            {
                "survey": survey,
                "checked": len(alerts),
                "alerts": [a.to_dict() for a in alerts if a.alert],
                "all": [a.to_dict() for a in alerts],
            }
        )
        return
    hits = [a for a in alerts if a.alert]
    console.print(
        f"检查已验收地块 {len(alerts)} 个, [{'red' if hits else 'green'}]复建预警 {len(hits)} 个[/]"
    )
    if hits:
        console.print(
            table(
                "复建预警",
                ["地块", "乡镇", "验收年度", "调查年度", "复建面积(㎡)", "说明"],
                [
                    [
                        a.plot_id,
                        a.township,
                        a.accepted_year,
                        a.survey_year,
                        f"{a.rebuilt_m2:.1f}",
                        a.message,
                    ]
                    for a in hits
                ],
            )
        )


# ------------------------------------------------------------------------------------- transfer
@transfer_app.command("add")
def transfer_add(
    ctx: typer.Context,
    transfer_id: str = typer.Option(..., "--id", help="联动编号"),
    from_unit: str = typer.Option(..., "--from", help="疏解地 (转出) 单位代码"),
    to_unit: str = typer.Option(..., "--to", help="承接地单位代码"),
    year: int = typer.Option(..., "--year"),
    quota_km2: float = typer.Option(None, "--quota-km2", help="转出指标 (平方公里)"),
    quota_ha: float = typer.Option(None, "--quota-ha", help="转出指标 (公顷)"),
    quota_mu: float = typer.Option(None, "--quota-mu", help="转出指标 (亩)"),
    ratio: float = typer.Option(
        None,
        "--ratio",
        help="转移比例 (承接量 = 转出量 × 比例); 默认取政策包 transfer_ratio_default",
    ),
    population: float = typer.Option(None, "--population", help="人口承接 (人)"),
    output: float = typer.Option(None, "--output", help="产值分计 (万元)"),
    compensation: list[str] = typer.Option(
        None, "--compensation", help="补偿方式, 可多次 (人口承接、产值分计 …)"
    ),
    terms: str = typer.Option(None, "--terms", help="补偿条款"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """登记一笔指标联动 (比例不得超过上限, 须记录补偿)."""
    from yizhangtu.reduction import Transfer
    from yizhangtu.reduction.rules import param
    from yizhangtu.services.reduction import add_transfer, reduction_pack

    with open_workspace(ctx) as st:
        pk = reduction_pack(st, pack)
        r = float(param(pk, "transfer_ratio_default")) if ratio is None else ratio  # type: ignore[arg-type]
        t = Transfer(
            transfer_id,
            from_unit,
            to_unit,
            year,
            _area_m2(quota_km2, quota_ha, quota_mu, None),
            r,
            population,
            output,
            tuple(compensation or ()),
            terms,
        )
        _, findings = add_transfer(st, t, actor=settings_from(ctx).actor, pack=pk)
    if json_out:
        emit_json(t.to_dict() | {"findings": findings})
        return
    for f in findings:
        console.print(
            ("[green]已登记[/] " if f["severity"] == "info" else "[yellow]提示[/] ") + f["message"]
        )


@transfer_app.command("list")
def transfer_list(
    ctx: typer.Context,
    year: int = typer.Option(None, "--year", help="增减挂钩平衡截至年度 (默认最新台账年度)"),
    level: str = typer.Option("township", "--level", help="平衡核算层级: township/district"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """列出指标联动与各单位增减挂钩平衡."""
    from yizhangtu.services.reduction import balance_report, list_transfers, reduction_pack

    with open_workspace(ctx) as st:
        ts = list_transfers(st)
        bal = balance_report(st, year=year, level=level, pack=reduction_pack(st, pack))
    if json_out:
        emit_json({"transfers": [t.to_dict() for t in ts], "balance": [b.to_dict() for b in bal]})
        return
    console.print(
        table(
            "指标联动",
            [
                "编号",
                "转出地",
                "承接地",
                "年度",
                "转出(公顷)",
                "比例",
                "承接(公顷)",
                "人口承接",
                "产值分计(万元)",
                "补偿条款",
            ],
            [
                [
                    t.transfer_id,
                    t.from_unit,
                    t.to_unit,
                    t.year,
                    _ha(t.quota_m2),
                    t.ratio,
                    _ha(t.received_m2),
                    t.population_credit,
                    t.output_credit_wan_yuan,
                    t.terms,
                ]
                for t in ts
            ],
        )
    )
    shown = [b for b in bal if b.sent_m2 or b.received_m2 or b.status != "balanced"]
    console.print(
        table(
            "增减挂钩平衡 (仅列有联动或不平衡的单位)",
            ["单位", "新增(公顷)", "自身减量", "转出", "承接", "可用", "结论"],
            [
                [
                    b.unit_name,
                    _ha(b.added_m2),
                    _ha(b.own_m2),
                    _ha(b.sent_m2),
                    _ha(b.received_m2),
                    _ha(b.allowance_m2),
                    {"balanced": "平衡", "over": "[red]超出[/]", "overdrawn": "[red]指标透支[/]"}[
                        b.status
                    ],
                ]
                for b in shown
            ],
        )
    )


# ------------------------------------------------------------------------------------- progress
@app.command("progress")
def progress_cmd(
    ctx: typer.Context,
    by: str = typer.Option("district", "--by", help="district 或 township"),
    year: int = typer.Option(None, "--year", help="截至年度 (默认最新台账年度)"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | xlsx | json"),
    output: Path = typer.Option(None, "-o", "--output", help="xlsx 输出路径 (默认 减量台账.xlsx)"),
    pack: str = PACK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """减量进度: 目标、验收减量、净减量、完成率、剩余年数、所需年均进度; 滞后预警."""
    from yizhangtu.services.reduction import (
        export_ledger,
        progress_json,
        progress_report,
        reduction_pack,
    )

    fmt = "json" if json_out else fmt
    if fmt not in ("table", "xlsx", "json"):
        raise InputError(f"未知的输出格式: {fmt}", key="bad_format", hint="可选: table, xlsx, json")
    with open_workspace(ctx) as st:
        pk = reduction_pack(st, pack)
        if fmt == "xlsx":
            res = export_ledger(st, output or Path("减量台账.xlsx"), pack=pk, year=year)
            console.print(
                f"[green]已导出台账[/] {res['path']} (截至 {res['year']} 年;"
                f" 工作表: {'、'.join(res['sheets'])})"
            )
            return
        rep = progress_report(st, by=by, year=year, pack=pk)
    if fmt == "json":
        emit_json(progress_json(rep))
        return
    title = f"减量进度 (截至 {rep['year']} 年, {'区' if by == 'district' else '乡镇'})" + (
        " — 调查为合成数据" if rep["synthetic_survey"] else ""
    )
    rows = []
    for r in [*rep["reported"], *rep["rows"]]:
        status = {
            "behind": "[yellow]滞后[/]",
            "overdue": "[red]逾期[/]",
            "done": "[green]已完成[/]",
            "on_track": "正常",
        }.get(r.status, r.to_dict()["status_label"])
        rows.append(
            [
                "报告数 (种子 002)" if r.source == "reported" else "计算",
                r.unit_name,
                _km2(r.target_m2, 2),
                _km2(r.accepted_m2, 3),
                _km2(r.net_m2, 3),
                "" if r.percent_complete is None else f"{r.percent_complete:.1f}%",
                r.years_left,
                _km2(r.required_pace_m2, 3),
                _km2(r.achieved_pace_m2, 3),
                status,
            ]
        )
    console.print(
        table(
            title,
            [
                "来源",
                "单位",
                "目标(km²)",
                "验收减量",
                "净减量",
                "完成率",
                "剩余年数",
                "所需年均",
                "实际年均",
                "状态",
            ],
            rows,
        )
    )
    for w in rep["warnings"]:
        console.print(f"[yellow]预警[/] {w}")
