"""One-map store commands: init, import, check, layers, info, export, diff, audit, explain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table
from yizhangtu.errors import InputError
from yizhangtu.store import LAYER_KINDS, LayerSpec, open_store

__all__ = ["register"]


def _parse_mapping(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(
                f"字段映射格式应为 源字段=目标字段: {item}", key="bad_field_map", field="--map"
            )
        a, b = item.split("=", 1)
        out[a.strip()] = b.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add the store commands to ``app``."""

    # Chinese help goes in help= (shown verbatim, full stop included); docstrings stay English.
    @app.command("init", help="创建工作空间。")
    def init(
        ctx: typer.Context,
        path: str = typer.Argument(None, help="工作空间路径 (.gpkg) 或 postgresql:// 连接串"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Create the workspace."""
        uri = path or settings_from(ctx).workspace
        with open_store(uri, create=True) as st:
            res = {"workspace": st.uri, "backend": st.backend, "layers": len(st.layers())}
        if json_out:
            emit_json(res)
        else:
            console.print(
                f"[green]工作空间已就绪[/] {res['workspace']} "
                f"({res['backend']}, {res['layers']} 个图层)"
            )

    @app.command(
        "import", help="导入文件为图层的新快照 (读取、质检、规范化、入库, 全部成功才生效)。"
    )
    def import_(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="要导入的文件 (shp/zip/gpkg/geojson/kml/csv/xlsx …)"),
        layer: str = typer.Option(..., "--layer", "-l", help="图层名 (小写英文, 如 survey)"),
        kind: str = typer.Option("other", "--kind", help="图层类型: " + "/".join(LAYER_KINDS)),
        snapshot: str = typer.Option(
            None, "--snapshot", "-s", help="快照标签, 如 2020; 默认今天的日期"
        ),
        title: str = typer.Option(None, "--title", help="中文名称"),
        description: str = typer.Option(None, "--description", help="说明"),
        sublayer: str = typer.Option(None, "--sublayer", help="多图层文件中的子图层"),
        encoding: str = typer.Option(None, "--encoding", help="属性编码, 覆盖自动识别 (如 GBK)"),
        crs: str = typer.Option(None, "--crs", help="源坐标系, 覆盖文件声明或推断 (如 EPSG:4527)"),
        code_field: str = typer.Option(None, "--code-field", help="地类代码字段, 如 DLBM"),
        code_system: str = typer.Option(
            None, "--code-system", help="代码体系: sandiao / gbt21010-2017 / landsea-2023"
        ),
        id_field: str = typer.Option(None, "--id-field", help="要素唯一标识字段, 如 BSM"),
        x_field: str = typer.Option(None, "--x-field"),
        y_field: str = typer.Option(None, "--y-field"),
        wkt_field: str = typer.Option(None, "--wkt-field"),
        field_map: list[str] = typer.Option(None, "--map", help="字段映射 源=目标, 可多次"),
        from_gcj02: bool = typer.Option(
            False, "--from-gcj02", help="源数据为 GCJ-02 (火星坐标), 转换为 CGCS2000"
        ),
        from_bd09: bool = typer.Option(
            False, "--from-bd09", help="源数据为 BD-09 (百度坐标), 转换为 CGCS2000"
        ),
        no_offset_check: bool = typer.Option(
            False, "--no-offset-check", help="跳过 GCJ-02/BD-09 偏移检测"
        ),
        repair: bool = typer.Option(False, "--repair", help="用 make_valid 修复无效几何并逐条报告"),
        allow_qc_errors: bool = typer.Option(
            False, "--allow-qc-errors", help="质检有错误仍导入 (记录在快照说明中)"
        ),
        synthetic: bool = typer.Option(False, "--synthetic", help="标记为合成数据"),
        qc_out: Path = typer.Option(None, "--qc-out", help="把质检问题要素写入此 GeoPackage"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Import a file as a new snapshot of a layer."""
        from datetime import date

        from yizhangtu.services.layers import ImportOptions, import_file

        settings = settings_from(ctx)
        spec = LayerSpec(
            name=layer,
            kind=kind,
            title=title,
            description=description,
            code_system=code_system,
            code_field=code_field,
            id_field=id_field,
            field_mapping=_parse_mapping(field_map),
            synthetic=synthetic,
        )
        opts = ImportOptions(
            sublayer=sublayer,
            encoding=encoding,
            crs=crs,
            x_field=x_field,
            y_field=y_field,
            wkt_field=wkt_field,
            from_gcj02=from_gcj02,
            from_bd09=from_bd09,
            offset_check=not no_offset_check,
            repair=repair,
            allow_qc_errors=allow_qc_errors,
            code_field=code_field,
            code_system=code_system,
            id_field=id_field,
            field_mapping=_parse_mapping(field_map),
        )
        label = snapshot or date.today().isoformat()
        with open_store(settings.workspace, create=True) as st:
            if json_out:
                res = import_file(
                    st, file, spec, label=label, options=opts, settings=settings, qc_output=qc_out
                )
            else:
                with Progress(
                    TextColumn("[bold]导入 {task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total} 要素"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                ) as prog:
                    task = prog.add_task(file.name, total=None)

                    def _p(n: int, total: int) -> None:
                        prog.update(task, completed=n, total=total)

                    res = import_file(
                        st,
                        file,
                        spec,
                        label=label,
                        options=opts,
                        settings=settings,
                        progress=_p,
                        qc_output=qc_out,
                    )
        if json_out:
            emit_json(res.to_dict())
            return
        r = res.read_report
        console.print(
            f"[green]已导入[/] {file.name} → 图层 [bold]{layer}[/] "
            f"快照 [bold]{res.snapshot.label}[/] (#{res.snapshot.id}), "
            f"{res.snapshot.feature_count} 个要素"
        )
        console.print(
            f"  编码: {r.encoding or '-'} ({r.encoding_source}); "
            f"源坐标系: {r.crs} ({r.crs_source}); 存储坐标系: {res.snapshot.crs}"
        )
        console.print(f"  内容哈希: {res.snapshot.content_hash}")
        for w in res.warnings:
            console.print(f"  [yellow]提示[/] {w}")
        for rp in res.repairs:
            console.print(f"  [yellow]修复[/] {rp.message}")
        if res.qc_report is not None and res.qc_report.findings:
            from yizhangtu.cli.qc_render import render_qc_report

            render_qc_report(res.qc_report, console)

    @app.command("check", help="质检文件 (不导入)。发现错误时退出码为 2。")
    def check(
        ctx: typer.Context,
        file: Path = typer.Argument(...),
        kind: str = typer.Option("other", "--kind"),
        sublayer: str = typer.Option(None, "--sublayer"),
        encoding: str = typer.Option(None, "--encoding"),
        crs: str = typer.Option(None, "--crs"),
        code_field: str = typer.Option(None, "--code-field"),
        code_system: str = typer.Option(None, "--code-system"),
        id_field: str = typer.Option(None, "--id-field"),
        from_gcj02: bool = typer.Option(False, "--from-gcj02"),
        from_bd09: bool = typer.Option(False, "--from-bd09"),
        qc_out: Path = typer.Option(None, "--qc-out", help="把问题要素写入此 GeoPackage"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Quality-check a file without importing it; exit 2 on errors."""
        from yizhangtu.services.layers import ImportOptions, _write_qc_layer, check_file

        opts = ImportOptions(
            sublayer=sublayer,
            encoding=encoding,
            crs=crs,
            code_field=code_field,
            code_system=code_system,
            id_field=id_field,
            from_gcj02=from_gcj02,
            from_bd09=from_bd09,
        )
        report, qc = check_file(file, kind=kind, options=opts, settings=settings_from(ctx))
        if qc_out is not None:
            _write_qc_layer(qc, report.crs, qc_out)
        if json_out:
            emit_json({"read": report.to_dict(), "qc": qc.to_dict()})
        else:
            console.print(
                f"{file.name}: {report.feature_count} 个要素, "
                f"编码 {report.encoding or '-'} ({report.encoding_source}), "
                f"坐标系 {report.crs} ({report.crs_source})"
            )
            for w in report.warnings:
                console.print(f"  [yellow]提示[/] {w}")
            from yizhangtu.cli.qc_render import render_qc_report

            render_qc_report(qc, console)
        if not qc.ok:
            raise typer.Exit(2)

    @app.command("layers", help="列出图层。")
    def layers(ctx: typer.Context, json_out: bool = JSON_OPT) -> None:
        """List the layers."""
        from yizhangtu.services.layers import layer_summary

        with open_workspace(ctx) as st:
            summary = layer_summary(st)
        if json_out:
            emit_json(summary)
            return
        rows = [
            [
                li["name"],
                li["title"] or "",
                li["kind"],
                li["crs"],
                li["feature_count"],
                li["current_snapshot"],
                len(li["snapshots"]),
                "是" if li["synthetic"] else "",
            ]
            for li in summary["layers"]
        ]
        console.print(
            table(
                f"图层 — {summary['workspace']}",
                ["图层", "名称", "类型", "坐标系", "要素数", "当前快照", "快照数", "合成数据"],
                rows,
            )
        )

    @app.command("info", help="图层详情与快照。")
    def info(
        ctx: typer.Context, layer: str = typer.Argument(...), json_out: bool = JSON_OPT
    ) -> None:
        """Show a layer's details and snapshots."""
        with open_workspace(ctx) as st:
            li = st.layer(layer)
            snaps = st.snapshots(layer)
        if json_out:
            emit_json({"layer": li.to_dict(), "snapshots": [s.to_dict() for s in snaps]})
            return
        console.print(
            f"[bold]{li.name}[/] {li.title or ''} 类型 {li.kind} 坐标系 {li.crs} "
            f"代码体系 {li.code_system or '-'}{' [合成数据]' if li.synthetic else ''}"
        )
        if li.description:
            console.print(li.description)
        rows = [
            [
                s.id,
                s.label,
                s.obs_date,
                s.feature_count,
                s.source_file,
                (s.source_hash or "")[:12],
                s.content_hash[:19],
                s.created_by,
                s.created_at,
            ]
            for s in snaps
        ]
        console.print(
            table(
                "快照",
                [
                    "#",
                    "标签",
                    "观测日期",
                    "要素数",
                    "源文件",
                    "源文件哈希",
                    "内容哈希",
                    "导入人",
                    "时间",
                ],
                rows,
            )
        )

    @app.command("export", help="导出图层快照。Shapefile 以 GBK 编码并写 .cpg。")
    def export(
        ctx: typer.Context,
        layer: str = typer.Argument(...),
        fmt: str = typer.Option("gpkg", "--format", "-f", help="gpkg|geojson|shp|parquet|csv"),
        output: Path = typer.Option(..., "-o", "--output"),
        as_of: str = typer.Option(None, "--as-of", help="读取此日期时的快照"),
        snapshot: str = typer.Option(None, "--snapshot"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Export a layer snapshot."""
        from yizhangtu.services.layers import export_layer

        with open_workspace(ctx) as st:
            res = export_layer(st, layer, output, fmt=fmt, as_of=as_of, snapshot=snapshot)
        if json_out:
            emit_json(res)
        else:
            console.print(f"[green]已导出[/] {res['features']} 个要素 → {res['path']}")
            for a, b in res.get("renamed_fields", {}).items():
                console.print(f"  [yellow]字段改名[/] {a} → {b} (Shapefile 字段名限 10 字节)")

    @app.command("diff", help="比较两个快照: 新增、删除、变化图斑及面积。")
    def diff(
        ctx: typer.Context,
        layer: str = typer.Argument(...),
        from_ref: str = typer.Argument(..., metavar="FROM"),
        to_ref: str = typer.Argument(..., metavar="TO"),
        unit: str = typer.Option("ha", "--unit", help="m2|ha|km2|mu"),
        output: Path = typer.Option(None, "-o", "--output", help="把变化图斑写入 GeoPackage"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Compare two snapshots of a layer."""
        import pyogrio

        from yizhangtu.services.layers import diff_layer

        with open_workspace(ctx) as st:
            summary, feats = diff_layer(st, layer, from_ref, to_ref, unit=unit)
        if output is not None and len(feats):
            pyogrio.write_dataframe(feats, output, layer=f"{layer}_diff", driver="GPKG")
            summary["output"] = str(output)
        if json_out:
            emit_json(summary)
            return
        names = {
            "added": "新增",
            "removed": "删除",
            "geometry": "几何变化",
            "attributes": "属性变化",
            "geometry+attributes": "几何及属性变化",
        }
        rows = [[names[k], summary["counts"][k], f"{summary['areas'][k]:.4f}"] for k in names]
        console.print(
            table(
                f"{layer}: {summary['from']['label']} → {summary['to']['label']} "
                f"(按 {summary['match_on']} 匹配, 面积单位 {unit}, 椭球面积)",
                ["变化", "图斑数", "面积"],
                rows,
            )
        )
        console.print(f"未变化 {summary['unchanged']} 个")

    audit_app = typer.Typer(help="审计留痕 (全过程留痕)")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("log", help="显示审计记录。")
    def audit_log(
        ctx: typer.Context,
        limit: int = typer.Option(50, "--limit"),
        target: str = typer.Option(None, "--target"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Show the audit records."""
        with open_workspace(ctx) as st:
            recs = st.audit_log(limit=limit, target=target)
        if json_out:
            emit_json({"records": [r.to_dict() for r in recs]})
            return
        console.print(
            table(
                "审计记录",
                ["#", "时间", "操作人", "操作", "对象", "详情", "哈希"],
                [
                    [
                        r.seq,
                        r.ts,
                        r.actor,
                        r.action,
                        r.target,
                        str(dict(r.details))[:60],
                        r.hash[:12],
                    ]
                    for r in recs
                ],
            )
        )

    @audit_app.command("verify", help="校验审计哈希链; 发现篡改或缺失时退出码为 1。")
    def audit_verify(ctx: typer.Context, json_out: bool = JSON_OPT) -> None:
        """Verify the audit hash chain; exit 1 on problems."""
        with open_workspace(ctx) as st:
            v = st.audit_verify()
        if json_out:
            emit_json({"ok": v.ok, "count": v.count, "head": v.head, "problems": list(v.problems)})
        elif v.ok:
            console.print(f"[green]审计链完整[/]: {v.count} 条记录, 末端哈希 {v.head[:16]}")
        else:
            console.print(f"[red]审计链异常[/]: {v.count} 条记录")
            for p in v.problems:
                console.print(f"  [red]•[/] {p}")
        if not v.ok:
            raise typer.Exit(1)

    @app.command("explain", help="显示结果的溯源链: 输入快照 → 源文件, 政策包, 参数, 软件版本。")
    def explain(
        ctx: typer.Context,
        rid: str = typer.Argument(..., metavar="ID", help="结果的溯源记录号"),
        json_out: bool = JSON_OPT,
    ) -> None:
        """Show the provenance chain of a result."""
        from yizhangtu.services.provenance import explain_chain

        with open_workspace(ctx) as st:
            chain = explain_chain(st, rid)
        if json_out:
            emit_json(chain)
            return
        rec = chain["record"]
        console.print(
            f"[bold]溯源记录 {rec['id']}[/] 类型 {rec['kind']} 生成于 {rec['created_at']} "
            f"由 {rec['created_by']}, yizhangtu {rec['package_version']}"
        )
        if rec.get("policy"):
            p = rec["policy"]
            console.print(f"政策包: {p['id']} 版本 {p['version']} 哈希 {p['hash'][:16]}")
        if rec.get("params"):
            console.print(f"参数: {rec['params']}")
        rows: list[list[Any]] = []
        for i in chain["inputs"]:
            rows.append(
                [
                    i["kind"],
                    i["name"],
                    i.get("label") or "",
                    (i.get("content_hash") or "")[:23],
                    i.get("source_file") or "",
                    (i.get("source_hash") or "")[:16],
                    i.get("imported_by") or "",
                    i.get("imported_at") or "",
                    "✓" if i.get("present") else "缺失",
                ]
            )
        console.print(
            table(
                "输入",
                [
                    "类型",
                    "名称",
                    "快照",
                    "内容哈希",
                    "源文件",
                    "源文件哈希",
                    "导入人",
                    "导入时间",
                    "仍在库",
                ],
                rows,
            )
        )
