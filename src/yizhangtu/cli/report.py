"""CLI: reports (``yizhangtu report …``).

``report health-check`` evaluates the unit for the year from the workspace (and saves the
evaluation), then writes the city health check report (城市体检评估报告) with the provenance
appendix taken from the stored provenance record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from
from yizhangtu.errors import InputError

__all__ = ["app"]

app = typer.Typer(help="报告", no_args_is_help=True)


@app.command("health-check", help="生成城市体检评估报告 (HTML 或 PDF), 附数据来源与溯源记录。")
def health_check(
    ctx: typer.Context,
    year: int = typer.Option(..., "--year", "-y", help="评估年份"),
    unit: str = typer.Option(..., "--unit", "-u", help="评估单元名称或代码, 如 朝阳区"),
    fmt: str = typer.Option("html", "--format", "-f", help="html | pdf"),
    out: Path = typer.Option(
        None, "--output", "-o", help="输出文件 (缺省 城市体检_<单元>_<年份>.<格式>)"
    ),
    level: str = typer.Option("street", "--level", help="单元层级: district | street"),
    catalogue: list[str] = typer.Option(
        None, "--catalogue", "-c", help="指标目录, 可重复; 缺省为本地目录 + tdt1063_style"
    ),
    units_layer: str = typer.Option(None, "--units-layer", help="街道乡镇边界图层"),
    survey: str = typer.Option(None, "--survey", help="三调图层 (缺省 survey)"),
    map_indicator: str = typer.Option(None, "--map-indicator", help="专题图指标 (缺省自动选择)"),
    xlsx: Path = typer.Option(None, "--xlsx", help="同时导出评估结果 Excel"),
    json_out: bool = JSON_OPT,
) -> None:
    """Write the city health check report with its provenance appendix."""
    from yizhangtu.services.indicators import evaluate_workspace, export_run_xlsx, render_run_report

    if fmt not in ("html", "pdf"):
        raise InputError(f"不支持的报告格式: {fmt}", key="report_format", hint="可选 html 或 pdf")
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        run = evaluate_workspace(
            st,
            year=year,
            unit=unit,
            level=level,
            catalogues=catalogue,
            actor=settings.actor,
            survey=survey,
            units_layer=units_layer,
        )
        path = out or Path(f"城市体检_{run.area_name}_{year}.{fmt}")
        written = render_run_report(
            st, run, path, format=cast(Literal["html", "pdf"], fmt), map_indicator=map_indicator
        )
    if xlsx is not None:
        export_run_xlsx(run, xlsx)
    res = {"file": str(written), "format": fmt, "xlsx": str(xlsx) if xlsx else None} | run.summary()
    if json_out:
        emit_json(res)
        return
    counts = "  ".join(f"{k} {v}" for k, v in res["status_counts"].items())
    console.print(
        f"[green]已写出[/] {written} "
        f"({run.area_name} {year} 年, {res['indicators']} 项指标; {counts})"
    )
    console.print(f"溯源记录: {run.provenance_id}")
