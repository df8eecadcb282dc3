"""CLI: indicators and the city health check (``yizhangtu indicators …``).

``list`` and ``show`` read the packaged catalogues (and, for ``show``, the stored evaluations);
``inputs``, ``compute`` and ``evaluate`` read the workspace. ``evaluate`` persists its rows in the
ledger table ``indicator_evaluations`` with the provenance record id.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table

__all__ = ["app"]

app = typer.Typer(help="指标与城市体检", no_args_is_help=True)

_YEAR = typer.Option(..., "--year", "-y", help="评估年份, 如 2021")
_UNIT = typer.Option(..., "--unit", "-u", help="评估单元名称或代码, 如 朝阳区 或 110105")
_LEVEL = typer.Option(
    "street", "--level", help="单元层级: district (区县) | street (街道乡镇, 含区县汇总行)"
)
_CAT = typer.Option(
    None,
    "--catalogue",
    "-c",
    help="指标目录 id 或 YAML 路径, 可重复; 缺省为该地区的本地目录 + tdt1063_style",
)
_UNITS_LAYER = typer.Option(
    None, "--units-layer", help="街道乡镇边界图层 (缺省自动查找含 district_code 的边界图层)"
)
_SURVEY = typer.Option(None, "--survey", help="三调图层 (缺省 survey)")


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in df.to_dict(orient="records"):
        out.append(
            {
                str(k): (_num(v) if isinstance(v, float) else (None if v is pd.NA else v))
                for k, v in r.items()
            }
        )
    return out


def _fmt(v: Any) -> str:
    x = _num(v)
    if x is None:
        return "—"
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


@app.command("list", help="列出内置指标目录, 或某个目录的指标。")
def list_(
    catalogue: str = typer.Option(
        None, "--catalogue", "-c", help="列出该目录的指标; 缺省列出所有内置目录"
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """List the packaged catalogues, or the indicators of one."""
    from yizhangtu.indicators import list_catalogues, load_catalogue

    rows: list[dict[str, Any]] = []
    if catalogue is None:
        for cid in list_catalogues():
            cat = load_catalogue(cid)
            rows.append(
                {
                    "id": cid,
                    "title": cat.title,
                    "version": cat.version,
                    "jurisdiction": cat.jurisdiction,
                    "indicators": len(cat),
                    "computable": len(cat.computable_ids()),
                    "period": [cat.period_start, cat.period_end],
                }
            )
        if json_out:
            emit_json({"catalogues": rows})
            return
        console.print(
            table(
                "指标目录",
                ["编码", "名称", "版本", "地区", "指标数", "有公式"],
                [
                    [
                        r["id"],
                        r["title"],
                        r["version"],
                        r["jurisdiction"],
                        r["indicators"],
                        r["computable"],
                    ]
                    for r in rows
                ],
            )
        )
        return
    cat = load_catalogue(catalogue)
    rows = [
        {
            "id": i.id,
            "name": i.name,
            "dimension": i.dimension,
            "category": i.category,
            "unit": i.unit,
            "direction": i.direction,
            "formula": i.formula.kind,
            "targets": [
                {"year": t.year, "value": t.value, "kind": t.kind, "clause": t.clause}
                for t in i.targets
            ],
            "department": i.department,
        }
        for i in cat
    ]
    if json_out:
        emit_json({"catalogue": cat.id, "title": cat.title, "indicators": rows})
        return
    console.print(
        table(
            f"{cat.title} ({cat.id})",
            ["编码", "名称", "维度", "单位", "公式", "目标"],
            [
                [
                    r["id"],
                    r["name"],
                    r["dimension"],
                    r["unit"],
                    r["formula"],
                    "; ".join(f"{t['year']}: {t['value']:g}" for t in r["targets"]),
                ]
                for r in rows
            ],
        )
    )


@app.command(
    "show", help="显示一个指标的定义 (公式输入、目标、条款), 以及工作空间中已保存的评估值。"
)
def show(
    ctx: typer.Context,
    indicator: str = typer.Argument(..., help="指标编码, 如 construction_land_area"),
    catalogue: str = typer.Option(
        None, "--catalogue", "-c", help="指标目录 (缺省在所有内置目录中查找)"
    ),
    unit: str = typer.Option(None, "--unit", "-u", help="同时列出工作空间中该单元已保存的评估结果"),
    json_out: bool = JSON_OPT,
) -> None:
    """Show an indicator definition and its stored evaluations."""
    from yizhangtu.errors import NotFoundError
    from yizhangtu.indicators import list_catalogues, load_catalogue

    cats = [catalogue] if catalogue else list_catalogues()
    found = []
    for cid in cats:
        cat = load_catalogue(cid)
        try:
            found.append((cat, cat.get(indicator)))
        except NotFoundError:
            continue
    if not found:
        raise NotFoundError(
            f"指标目录中没有指标 {indicator}",
            key="indicator_not_found",
            hint="用 yizhangtu indicators list -c 目录 查看",
        )
    defs: list[dict[str, Any]] = [
        {
            "catalogue": cat.id,
            "id": i.id,
            "name": i.name,
            "dimension": i.dimension,
            "category": i.category,
            "unit": i.unit,
            "direction": i.direction,
            "scope": i.scope,
            "formula": i.formula.kind,
            "requires": list(i.required_inputs()),
            "targets": [
                {
                    "year": t.year,
                    "value": t.value,
                    "kind": t.kind,
                    "clause": t.clause,
                    "quote": t.quote,
                }
                for t in i.targets
            ],
            "clause": i.clause,
            "department": i.department,
            "note": i.note,
        }
        for cat, i in found
    ]
    stored: list[dict[str, Any]] = []
    if unit is not None:
        from yizhangtu.services.indicators import load_evaluations

        with open_workspace(ctx) as st:
            t = load_evaluations(st, unit=unit, indicator=indicator)
        if len(t):
            stored = _records(
                t[
                    [
                        "year",
                        "level",
                        "area_name",
                        "unit_id",
                        "unit_name",
                        "value",
                        "value_unit",
                        "status",
                        "status_reason",
                        "provenance_id",
                    ]
                ]
            )
    if json_out:
        emit_json({"definitions": defs, "stored": stored})
        return
    for d in defs:
        console.print(
            f"[bold]{d['name']}[/] ({d['id']}, 目录 {d['catalogue']})  "
            f"维度 {d['dimension']} · 单位 {d['unit']} · {d['direction']}"
        )
        console.print(f"  公式 {d['formula']}; 需要: " + "; ".join(d["requires"]))
        for g in d["targets"]:
            console.print(f"  目标 {g['year']}: {g['value']:g} ({g['kind']}, {g['clause'] or ''})")
        if d["clause"]:
            console.print(f"  依据 {d['clause']}")
    if stored:
        console.print(
            table(
                "已保存的评估结果",
                ["年份", "单元", "现状值", "状态", "说明", "溯源"],
                [
                    [
                        r["year"],
                        r["unit_name"] or r["unit_id"],
                        _fmt(r["value"]),
                        r["status"],
                        r["status_reason"],
                        r["provenance_id"],
                    ]
                    for r in stored[:60]
                ],
            )
        )


@app.command("inputs", help="检查工作空间能提供哪些指标输入 (地类分组、统计表、设施图层), 缺什么。")
def inputs(
    ctx: typer.Context,
    year: int = _YEAR,
    unit: str = _UNIT,
    level: str = _LEVEL,
    catalogue: list[str] = _CAT,
    units_layer: str = _UNITS_LAYER,
    survey: str = _SURVEY,
    json_out: bool = JSON_OPT,
) -> None:
    """List the inputs the workspace supplies and those it lacks."""
    from yizhangtu.services.indicators import _catalogue, input_status, workspace_inputs

    with open_workspace(ctx) as st:
        ws = workspace_inputs(
            st, year=year, unit=unit, level=level, survey=survey, units_layer=units_layer
        )
        cat, _notes, _cats = _catalogue(catalogue, ws.area_name)
        t = input_status(ws, cat)
    if json_out:
        emit_json(
            {
                "unit": ws.area_name,
                "unit_code": ws.area_code,
                "year": year,
                "level": level,
                "inputs": _records(t),
                "notes": ws.notes,
            }
        )
        return
    rows = [
        [
            "✓" if r["available"] else "✗",
            r["kind"],
            r["name"],
            r["label"],
            r["from"],
            r["indicators"],
        ]
        for r in t.to_dict(orient="records")
    ]
    console.print(
        table(
            f"{ws.area_name} {year} 年指标输入 ({cat.id})",
            ["可用", "类别", "名称", "说明", "来源/缺失", "指标数"],
            rows,
        )
    )
    for n in ws.notes:
        console.print(f"  [yellow]提示[/] {n}")


@app.command("compute", help="计算指标值 (不评估、不保存; 记录溯源); 多个 --year 给出时间序列。")
def compute_(
    ctx: typer.Context,
    year: list[int] = typer.Option(..., "--year", "-y", help="年份, 可重复 (时间序列)"),
    unit: str = _UNIT,
    level: str = _LEVEL,
    catalogue: list[str] = _CAT,
    units_layer: str = _UNITS_LAYER,
    survey: str = _SURVEY,
    xlsx: Path = typer.Option(None, "--xlsx", help="把指标值写入 Excel"),
    json_out: bool = JSON_OPT,
) -> None:
    """Compute indicator values (no evaluation, not saved; provenance recorded)."""
    from yizhangtu.services.indicators import workspace_series, workspace_values

    settings = settings_from(ctx)
    kw: dict[str, Any] = {
        "unit": unit,
        "level": level,
        "catalogues": catalogue,
        "actor": settings.actor,
    }
    with open_workspace(ctx) as st:
        if len(year) == 1:
            vals, ws, rid = workspace_values(
                st, year=year[0], survey=survey, units_layer=units_layer, **kw
            )
            rids, notes, name, code = [rid], ws.notes, ws.area_name, ws.area_code
        else:
            vals, rids = workspace_series(
                st, years=year, survey=survey, units_layer=units_layer, **kw
            )
            notes, name, code = [], str(unit), None
    if xlsx is not None:
        xlsx.parent.mkdir(parents=True, exist_ok=True)
        vals.to_excel(xlsx, index=False, sheet_name="指标值")
    if json_out:
        emit_json(
            {
                "unit": name,
                "unit_code": code,
                "years": sorted(set(year)),
                "level": level,
                "provenance_id": rids[-1],
                "provenance_ids": rids,
                "notes": notes,
                "values": _records(vals),
                "xlsx": str(xlsx) if xlsx else None,
            }
        )
        return
    ok = vals[vals["computable"]]
    years = "、".join(str(y) for y in sorted(set(year)))
    console.print(
        table(
            f"{name} {years} 年指标值 "
            f"(可计算 {ok['indicator'].nunique()} / {vals['indicator'].nunique()} 项)",
            ["年份", "指标", "单元", "值", "单位"],
            [
                [r["year"], r["name"], r["unit_name"], _fmt(r["value"]), r["value_unit"]]
                for r in ok.head(200).to_dict(orient="records")
            ],
        )
    )
    console.print("溯源记录: " + ", ".join(rids))


@app.command(
    "evaluate", help="计算并评估指标 (目标、趋势、预警), 写入评估台账 indicator_evaluations。"
)
def evaluate_(
    ctx: typer.Context,
    year: int = _YEAR,
    unit: str = _UNIT,
    level: str = _LEVEL,
    catalogue: list[str] = _CAT,
    units_layer: str = _UNITS_LAYER,
    survey: str = _SURVEY,
    xlsx: Path = typer.Option(None, "--xlsx", help="把评估结果导出为 Excel"),
    no_save: bool = typer.Option(False, "--no-save", help="不写入评估台账"),
    json_out: bool = JSON_OPT,
) -> None:
    """Compute, evaluate and save indicators."""
    from yizhangtu.services.indicators import evaluate_workspace, export_run_xlsx

    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        run = evaluate_workspace(
            st,
            year=year,
            unit=unit,
            level=level,
            catalogues=catalogue,
            actor=settings.actor,
            persist=not no_save,
            survey=survey,
            units_layer=units_layer,
        )
    if xlsx is not None:
        export_run_xlsx(run, xlsx)
    if json_out:
        t = run.evaluation.table.assign(unit_name=lambda d: d["unit_id"].map(run.unit_names()))
        emit_json(
            run.summary()
            | {"xlsx": str(xlsx) if xlsx else None, "saved": not no_save, "rows": _records(t)}
        )
        return
    s = run.summary()
    console.print(
        f"[bold]{run.area_name} {year} 年城市体检评估[/] ({s['catalogue']}) "
        f"{s['indicators']} 项指标 × {s['units']} 个单元"
    )
    console.print("  " + "  ".join(f"{k} {v}" for k, v in s["status_counts"].items()))
    warn = run.evaluation.warnings()
    if len(warn):
        names = run.unit_names()
        console.print(
            table(
                "预警与未达标",
                ["状态", "指标", "单元", "现状值", "说明"],
                [
                    [
                        r["status"],
                        r["name"],
                        names.get(str(r["unit_id"]), r["unit_id"]),
                        _fmt(r["value"]),
                        r["status_reason"],
                    ]
                    for r in warn.head(40).to_dict(orient="records")
                ],
            )
        )
    for n in run.notes:
        console.print(f"  [yellow]提示[/] {n}")
    console.print(f"溯源记录: {run.provenance_id}" + (f"; Excel: {xlsx}" if xlsx else ""))
