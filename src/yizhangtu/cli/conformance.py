"""``yizhangtu conformance``: control lines, plan conflicts, red-line checks, plan transmission."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table
from yizhangtu.errors import InputError

__all__ = ["app"]

app = typer.Typer(
    help="管控线与多规合一: 控制线重叠、规划冲突、红线合规审查、规划传导", no_args_is_help=True
)

_UNITS = {"m2": "㎡", "ha": "公顷", "km2": "平方公里", "mu": "亩"}
_SEV = {"error": "[red]错误[/]", "warning": "[yellow]警告[/]", "info": "提示"}

PACK_OPT = typer.Option(
    None,
    "--pack",
    help="政策包编号或文件, 可多次 (默认 conformance-national 与 conformance-beijing)",
)
AT_OPT = typer.Option(None, "--at", help="评价日期 YYYY-MM-DD (默认今天)")
UNIT_OPT = typer.Option("ha", "--area-unit", help="面积单位: m2 / ha / km2 / mu")
OUT_OPT = typer.Option(None, "-o", "--output", help="把结果图斑写入此 GeoPackage")
LINE_OPT = typer.Option(
    None, "--line", help="管控线类型=图层, 可多次, 如 eco_redline=stx_2023 (默认按约定图层名查找)"
)


def _na(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _ns(df: Any) -> list[Any]:
    """Rows of a DataFrame as attribute namespaces (typed Any for display code)."""
    from types import SimpleNamespace

    return [SimpleNamespace(**{str(k): v for k, v in r.items()}) for r in df.to_dict("records")]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(
                f"{what} 格式应为 类型=图层: {item}", key="bad_line_option", field=what
            )
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _at(text: str | None) -> date:
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"日期格式应为 YYYY-MM-DD: {text}", key="bad_date", field="--at") from None


def _packs(names: list[str] | None) -> Any:
    from yizhangtu.services.conformance import load_packs

    return load_packs(names or None)


def _unit(u: str) -> str:
    if u not in _UNITS:
        raise InputError(
            f"未知的面积单位: {u}", key="unknown_area_unit", hint="可选: " + ", ".join(_UNITS)
        )
    return u


def _findings(findings: list[Any], *, show_info: bool = False) -> None:
    for f in findings:
        if f.severity == "info" and not show_info:
            continue
        console.print(f"  {_SEV[f.severity]} {f.message} [dim][{f.clause}][/]", highlight=False)


@app.command("lines")
def lines_cmd(
    ctx: typer.Context,
    line: list[str] = LINE_OPT,
    zones: str = typer.Option(None, "--zones", help="两线三区分区图层 (默认 bj_zones)"),
    zone_field: str = typer.Option("zone", "--zone-field", help="分区字段"),
    units: str = typer.Option(None, "--units", help="统计分区占比的辖区图层, 如 fangshan_streets"),
    unit_field: str = typer.Option("code", "--unit-field"),
    unit_name_field: str = typer.Option("name", "--unit-name-field"),
    scope: str = typer.Option("合计", "--scope", help="辖区合计的名称, 如 房山区"),
    pack: list[str] = PACK_OPT,
    at: str = AT_OPT,
    area_unit: str = UNIT_OPT,
    output: Path = OUT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """三条控制线相互重叠检查, 及两线三区各分区占辖区面积的比例 (control lines)."""
    from yizhangtu.services.conformance import lines_report, write_gpkg

    settings = settings_from(ctx)
    unit = _unit(area_unit)
    with open_workspace(ctx) as st:
        res = lines_report(
            st,
            lines=_pairs(line, "--line"),
            zones_layer=zones,
            zone_field=zone_field,
            units_layer=units,
            unit_field=unit_field,
            unit_name_field=unit_name_field,
            scope=scope,
            packs=_packs(pack),
            at=_at(at),
            actor=settings.actor,
            workers=settings.workers or 1,
        )
    if output is not None:
        import pandas as pd

        layers: dict[str, Any] = {
            "line_overlap_pairs": pd.DataFrame(res.overlaps.summary("m2")),
            "line_overlaps": res.overlaps.patches,
            "line_overlap_slivers": res.overlaps.slivers,
        }
        if res.zones is not None:
            layers["zone_shares"] = res.zones.rows
        write_gpkg(output, layers)
    if json_out:
        d = res.to_dict(unit)
        d["output"] = str(output) if output else None
        emit_json(d)
        return
    rows = [
        [
            p["title_a"],
            p["title_b"],
            p["patch_count"],
            f"{p['overlap_area']:,.4f}",
            p["sliver_count"],
            f"{p['sliver_area']:,.4f}",
        ]
        for p in res.overlaps.summary(unit)
    ]
    console.print(
        table(
            f"管控线相互重叠 (面积单位: {_UNITS[unit]})",
            ["管控线", "管控线", "重叠图斑", "重叠面积", "细碎图斑", "细碎面积"],
            rows,
        )
    )
    _findings(res.overlaps.findings)
    if res.zones is not None:
        z = res.zones
        trows = [
            [z.scope, r.zone, f"{r.area_m2 / 1e6:,.3f}", f"{r.share:.2%}"] for r in _ns(z.totals)
        ]
        trows += [
            [r.unit_name, r.zone, f"{r.area_m2 / 1e6:,.3f}", f"{r.share:.2%}"] for r in _ns(z.rows)
        ]
        console.print(
            table("分区占辖区面积比例 (平方公里)", ["辖区", "分区", "面积", "占比"], trows)
        )
        _findings(z.findings, show_info=True)
    console.print(
        f"[dim]溯源记录 {res.provenance_id[:16]}…{f'; 结果已写入 {output}' if output else ''}[/]"
    )


@app.command("matrices")
def matrices_cmd(
    show: str = typer.Option(None, "--show", help="显示某个矩阵的全部单元 (编号或文件)"),
    json_out: bool = JSON_OPT,
) -> None:
    """列出内置冲突矩阵, 或显示一个矩阵 (matrices)."""
    from yizhangtu.conformance import list_matrices, load_matrix

    if show:
        m = load_matrix(show)
        if json_out:
            emit_json(m.to_dict())
            return
        console.print(
            f"[bold]{m.title}[/] ({m.id} v{m.version}) 左: {m.left.name} 右: {m.right.name}"
        )
        rows = [
            [f"{a} {m.left.label(a)}"] + [m.lookup(a, b) for b in m.right.class_ids]
            for a in m.left.class_ids
        ]
        console.print(
            table(
                "冲突矩阵 (- 表示相容)",
                ["左 \\ 右"] + [m.right.label(b) for b in m.right.class_ids],
                rows,
            )
        )
        console.print(
            table(
                "冲突类型",
                ["类型", "名称", "级别", "说明"],
                [[k, t.label, t.severity, t.note] for k, t in m.types.items()],
            )
        )
        return
    items = list_matrices()
    if json_out:
        emit_json(items)
        return
    console.print(
        table(
            "冲突矩阵",
            ["编号", "名称", "左", "右", "冲突类型数"],
            [[i["id"], i["title"], i["left"], i["right"], i["types"]] for i in items],
        )
    )


@app.command("conflicts")
def conflicts_cmd(
    ctx: typer.Context,
    left: str = typer.Argument(..., help="左图层 (矩阵左侧, 如三调 survey)"),
    right: str = typer.Argument(..., help="右图层 (矩阵右侧, 如规划 plan_landuse)"),
    matrix: str = typer.Option(
        ..., "--matrix", "-m", help="冲突矩阵编号或 YAML 文件 (见 conformance matrices)"
    ),
    left_field: str = typer.Option(
        None, "--left-field", help="左图层分类字段 (默认矩阵或图层登记的字段)"
    ),
    right_field: str = typer.Option(None, "--right-field", help="右图层分类字段"),
    units: str = typer.Option(None, "--units", help="按此单元图层汇总, 如 chaoyang_streets"),
    unit_field: str = typer.Option("code", "--unit-field"),
    unit_name_field: str = typer.Option("name", "--unit-name-field"),
    pack: list[str] = PACK_OPT,
    area_unit: str = UNIT_OPT,
    output: Path = OUT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """按冲突矩阵叠加两个规划图层, 输出冲突图斑与按单元汇总 (conflicts)."""
    from yizhangtu.services.conformance import conflicts_report, write_gpkg

    settings = settings_from(ctx)
    unit = _unit(area_unit)
    with open_workspace(ctx) as st:
        res = conflicts_report(
            st,
            left,
            right,
            matrix=matrix,
            left_field=left_field,
            right_field=right_field,
            units_layer=units,
            unit_field=unit_field,
            unit_name_field=unit_name_field,
            packs=_packs(pack),
            actor=settings.actor,
            workers=settings.workers or 1,
        )
    if output is not None:
        layers: dict[str, Any] = {
            "conflicts": res.result.patches,
            "conflict_slivers": res.result.slivers,
            "conflicts_by_type": res.result.by_type,
        }
        if res.by_unit is not None:
            layers["conflicts_by_unit"] = res.by_unit
        write_gpkg(output, layers)
    d = res.to_dict(unit)
    if json_out:
        d["output"] = str(output) if output else None
        emit_json(d)
        return
    rows = [
        [
            t["type"],
            t["label"],
            _SEV[t["severity"]],
            t["patches"],
            f"{t['area']:,.4f}",
            t["sliver_count"],
            f"{t['sliver_area']:,.4f}",
        ]
        for t in d["by_type"]
    ]
    console.print(
        table(
            f"{res.result.matrix.title}: {left} × {right} (面积单位: {_UNITS[unit]})",
            ["类型", "冲突", "级别", "图斑", "面积", "细碎图斑", "细碎面积"],
            rows,
        )
    )
    if res.by_unit is not None and len(res.by_unit):
        urows = [
            [r["unit_name"], r["type"], r["label"], f"{r['area']:,.4f}", f"{r['share']:.2%}"]
            for r in d["by_unit"]
        ]
        console.print(table("按单元汇总", ["单元", "类型", "冲突", "面积", "占单元面积"], urows))
    console.print(
        f"[dim]溯源记录 {res.provenance_id[:16]}…{f'; 结果已写入 {output}' if output else ''}[/]"
    )


@app.command("check-redline")
def check_redline_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="红线文件: 界址点坐标 TXT、面图层文件 (shp/gpkg/geojson) 或 zip 压缩的 shapefile"
    ),
    line: list[str] = LINE_OPT,
    zones: str = typer.Option(None, "--zones", help="两线三区分区图层 (默认 bj_zones)"),
    zone_field: str = typer.Option("zone", "--zone-field"),
    plan: list[str] = typer.Option(
        None, "--plan", help="规划图层[:地类字段], 可多次 (默认全部登记了地类字段的 plan 图层)"
    ),
    registered: str = typer.Option(None, "--registered", help="登记红线图层 (默认 redlines)"),
    registered_id_field: str = typer.Option(None, "--registered-id-field"),
    crs: str = typer.Option(None, "--crs", help="红线坐标系, 覆盖文件声明 (如 EPSG:4527)"),
    xy_order: str = typer.Option(
        "ne", "--xy-order", help="界址点坐标顺序: ne (X北Y东, 默认) 或 en"
    ),
    encoding: str = typer.Option(None, "--encoding", help="文件编码 (默认自动: UTF-8 或 GBK)"),
    id_field: str = typer.Option(None, "--id-field", help="红线地块编号字段"),
    pack: list[str] = PACK_OPT,
    at: str = AT_OPT,
    area_unit: str = typer.Option("m2", "--area-unit", help="面积单位: m2 / ha / km2 / mu"),
    report: Path = typer.Option(None, "--report", help="写出一页审查结果 (.html 或 .pdf)"),
    output: Path = OUT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """项目红线合规性审查, 按政策包判定; 结论为不通过时退出码为 1 (check a red line).

    报告红线与管控线、分区和规划的交叉面积与占比, 以及与登记红线的比对 (坐标容差)。
    """
    from yizhangtu.services.conformance import check_redline_file, write_gpkg

    settings = settings_from(ctx)
    unit = _unit(area_unit)
    if xy_order not in ("ne", "en"):
        raise InputError(f"未知的坐标顺序: {xy_order}", key="jzd_xy_order", hint="可选 ne 或 en")
    with open_workspace(ctx) as st:
        res = check_redline_file(
            st,
            file,
            lines=_pairs(line, "--line"),
            zones_layer=zones,
            zone_field=zone_field,
            plans=plan or None,
            registered_layer=registered,
            registered_id_field=registered_id_field,
            crs=crs,
            xy_order=xy_order,  # type: ignore[arg-type]
            encoding=encoding,
            id_field=id_field,
            packs=_packs(pack),
            at=_at(at),
            target_crs=settings.storage_crs,
            actor=settings.actor,
            workers=settings.workers or 1,
        )
    if report is not None:
        from yizhangtu.reports.redline import render_redline

        render_redline(res, report, unit=unit)
    if output is not None:
        write_gpkg(output, {"redline": res.check.redline, "redline_overlaps": res.check.patches})
    if json_out:
        d = res.to_dict(unit)
        d["report"] = str(report) if report else None
        d["output"] = str(output) if output else None
        emit_json(d)
    else:
        color = {"不通过": "red", "需审查": "yellow", "通过": "green"}[res.check.verdict]
        console.print(
            f"[bold {color}]审查结论: {res.check.verdict}[/] ({res.input.file}, "
            f"{res.input.format}, 源坐标系 {res.input.source_crs})"
        )
        for n in res.input.notes:
            console.print(f"  [yellow]说明[/] {n}")
        rows = [
            [
                r.parcel,
                r.line_title,
                f"{r.overlap_m2 / {'m2': 1, 'ha': 1e4, 'km2': 1e6, 'mu': 1e4 / 15}[unit]:,.2f}",
                f"{r.share:.2%}",
                r.sliver_count,
            ]
            for r in _ns(res.check.line_rows)
        ]
        console.print(
            table(
                f"管控线交叉 (面积单位: {_UNITS[unit]})",
                ["地块", "管控线/分区", "占用面积", "占红线", "细碎重叠"],
                rows,
            )
        )
        _findings(res.check.findings)
        tail = (f"; 报告 {report}" if report else "") + (f"; 图斑 {output}" if output else "")
        console.print(f"[dim]溯源记录 {res.provenance_id[:16]}…{tail}[/]")
    if res.check.verdict == "不通过":
        raise typer.Exit(1)


@app.command("transmission")
def transmission_cmd(
    ctx: typer.Context,
    hierarchy: str = typer.Argument(
        ..., help="规划层级: 内置编号 (chaoyang-2035, dongguan-demo) 或 YAML 文件"
    ),
    elasticity_pack: str = typer.Option(
        None, "--elasticity-pack", help="弹性所在政策包 (默认层级文件指定, 如 dongguan-2023)"
    ),
    pack: list[str] = typer.Option(
        None, "--pack", help="提示语所在政策包 (默认 conformance-national)"
    ),
    at: str = AT_OPT,
    record: bool = typer.Option(False, "--record", help="在工作空间记录溯源"),
    json_out: bool = JSON_OPT,
) -> None:
    """规划传导检查, 有错误时退出码为 1 (plan transmission).

    下级合计不得超过上级上限 (允许政策包规定的每级弹性), 并报告余量。
    """
    from yizhangtu.services.conformance import load_packs, transmission_report

    settings = settings_from(ctx)
    packs = load_packs(pack or ["conformance-national"])
    if record:
        with open_workspace(ctx) as st:
            res = transmission_report(
                hierarchy,
                elasticity_pack=elasticity_pack,
                packs=packs,
                at=_at(at),
                store=st,
                actor=settings.actor,
            )
    else:
        res = transmission_report(
            hierarchy, elasticity_pack=elasticity_pack, packs=packs, at=_at(at)
        )
    r = res.result
    if json_out:
        emit_json(res.to_dict())
    else:
        h = r.hierarchy
        console.print(
            f"[bold]{h.title}[/] 弹性 {r.elasticity.default:.0%} (依据 {r.elasticity.clause}, "
            f"政策包 {r.elasticity.pack.get('id')})" + (" [合成数据]" if h.synthetic else "")
        )
        rows = [
            [
                x.parent_name,
                x.metric_label,
                f"{x.parent_value:,.2f}",
                "-" if _na(x.children_total) else f"{x.children_total:,.2f}",
                x.unit,
                "-" if _na(x.headroom) else f"{x.headroom:,.2f}",
                "-" if _na(x.elastic_headroom) else f"{x.elastic_headroom:,.2f}",
                _SEV[x.severity],
            ]
            for x in _ns(r.rows)
        ]
        console.print(
            table(
                "上级与下级合计",
                ["上级", "指标", "上级值", "下级合计", "单位", "余量", "含弹性余量", "结果"],
                rows,
            )
        )
        if len(r.current):
            crow = [
                [
                    c.node_name,
                    c.metric_label,
                    f"{c.value:,.2f}" if not _na(c.value) else "-",
                    f"{c.current:,.2f}",
                    c.unit,
                    c.status,
                ]
                for c in _ns(r.current)
            ]
            console.print(
                table("现状对照规划", ["节点", "指标", "规划值", "现状", "单位", "状态"], crow)
            )
        _findings(r.findings)
    if not r.ok:
        raise typer.Exit(1)
