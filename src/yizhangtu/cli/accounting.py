"""``yizhangtu area`` and ``yizhangtu overlay``."""

from __future__ import annotations

from pathlib import Path

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the accounting commands to ``app``."""

    # Chinese help goes in help= (shown verbatim, full stop included); docstrings stay English.
    @app.command("area", help="按地类 × 统计单元计算椭球面积, 校核单元面积, 记录溯源。")
    def area(
        ctx: typer.Context,
        layer: str = typer.Argument(..., help="被统计图层, 如 survey"),
        by: str = typer.Option(..., "--by", help="统计单元图层, 如 chaoyang_streets"),
        unit_field: str = typer.Option(None, "--unit-field", help="单元名称字段 (默认 name/code)"),
        as_of: str = typer.Option(None, "--as-of", help="被统计图层的时点 (如 2021)"),
        snapshot: str = typer.Option(None, "--snapshot"),
        by_as_of: str = typer.Option(None, "--by-as-of"),
        group: str = typer.Option(
            "level1",
            "--group",
            help=(
                "level1|level2|code|construction|urban_rural_construction|agricultural|unused"
                "|ecological"
            ),
        ),
        unit: str = typer.Option("km2", "--unit", help="km2|ha|mu|m2"),
        fmt: str = typer.Option("table", "--format", "-f", help="table|csv|xlsx|json"),
        output: Path = typer.Option(None, "-o", "--output"),
        engine: str = typer.Option("local", "--engine", help="local|dask|postgis"),
        scheduler: str = typer.Option(None, "--scheduler", help="Dask 调度器地址"),
        workers: int = typer.Option(None, "--workers"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Tabulate ellipsoidal areas by land class and unit, with provenance."""
        from yizhangtu.services.accounting import area_table, write_area_table

        settings = settings_from(ctx)
        with open_workspace(ctx) as st:
            res = area_table(
                st,
                layer,
                by=by,
                unit_field=unit_field,
                snapshot=snapshot,
                as_of=as_of,
                by_as_of=by_as_of,
                group=group,
                unit=unit,
                engine=engine,
                scheduler=scheduler,
                workers=workers,
                settings=settings,
            )
        if json_out or fmt == "json":
            if output is not None:
                write_area_table(res, output, "json")
            emit_json({k: v for k, v in res.items() if not k.startswith("_")})
            return
        if fmt in ("csv", "xlsx"):
            out = output or Path(f"area_{layer}_by_{by}.{fmt}")
            write_area_table(res, out, fmt)
            console.print(f"[green]已写出[/] {out} (溯源记录 {res['provenance_id']})")
            return
        t = res["_table"]
        pivot = t.rows.pivot_table(
            index="unit", columns="class", values="area", aggfunc="sum", fill_value=0.0
        )
        cols = [str(c) for c in pivot.columns]
        rows = [
            [
                u,
                *[f"{v:.4f}" for v in r],
                f"{sum(r):.4f}",
                f"{res['totals']['units'][i]['residual']:.6f}",
            ]
            for i, (u, r) in enumerate(zip(pivot.index, pivot.to_numpy().tolist(), strict=True))
        ]
        title = (
            f"{layer}@{res['snapshot']['label']} 按 {by} ({res['unit_field']}) 统计, "
            f"单位 {unit}, 椭球面积{' [合成数据]' if res['synthetic'] else ''}"
        )
        console.print(table(title, ["单元", *cols, "合计", "差值"], rows))
        tot = res["totals"]
        console.print(
            f"图层面积 {tot['layer_area']:.4f}, 已分类 {tot['tabulated_area']:.4f}, "
            f"单元外 {tot['uncovered_area']:.4f}, 单元重叠 {tot['double_counted_area']:.4f} {unit}"
        )
        for w in tot["warnings"]:
            console.print(f"[yellow]提示[/] {w}")
        console.print(
            f"溯源记录: {res['provenance_id']} (yizhangtu explain {res['provenance_id']})"
        )

    @app.command(
        "overlay", help="两图层叠加分析 (交、差、并、标识), 结果保留双方属性并带椭球面积。"
    )
    def overlay_cmd(
        ctx: typer.Context,
        left: str = typer.Argument(...),
        right: str = typer.Argument(...),
        how: str = typer.Option(
            "intersection",
            "--how",
            help="intersection|difference|union|identity|symmetric_difference",
        ),
        output: Path = typer.Option(None, "-o", "--output", help="结果写入 GeoPackage"),
        save_as: str = typer.Option(None, "--save-as", help="结果存为工作空间新图层"),
        engine: str = typer.Option("local", "--engine", help="local|dask"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Overlay two layers."""
        import pyogrio

        from yizhangtu.services.accounting import overlay_layers

        settings = settings_from(ctx)
        with open_workspace(ctx, create=bool(save_as)) as st:
            pieces, meta = overlay_layers(
                st, left, right, how=how, settings=settings, engine=engine, save_as=save_as
            )
        if output is not None:
            pyogrio.write_dataframe(pieces, output, layer=f"{left}_{how}_{right}", driver="GPKG")
            meta["output"] = str(output)
        if json_out:
            emit_json(meta)
        else:
            console.print(
                f"[green]{how}[/] {left} × {right}: {meta['pieces']} 个图斑, "
                f"面积 {meta['area_m2'] / 1e6:.4f} km² (溯源 {meta['provenance_id']})"
            )
