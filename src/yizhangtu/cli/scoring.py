"""CLI: site scoring (``yizhangtu score …``), reading and writing files.

``score run CONFIG.yaml`` reads the sites, layers, tables and indicators the config names
(paths relative to the config file), scores and ranks the sites, and optionally writes one
dossier (一站一档) per site as HTML or PDF. ``score demo`` writes the synthetic Chaoyang
micro-centre demo inputs and a ready config. ``score ahp`` checks a config's AHP matrix.

Workspace commands keep configurations and results in the workspace: ``save-config`` and
``configs``; ``run-ws KEY`` scores the sites of a workspace layer (criteria read workspace
layers and tables) and saves the result with its provenance; ``results`` lists runs;
``dossier RUN`` re-scores a run from the same snapshots and writes its dossiers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import typer
import yaml

from yizhangtu.errors import FileFormatError, InputError, NotFoundError
from yizhangtu.scoring import (
    ahp_weights,
    build_demo_sites,
    parse_scoring_config,
    render_dossier_html,
    render_dossier_pdf,
    score_sites,
)
from yizhangtu.scoring.ahp import ahp_matrix_from_pairs

__all__ = ["app", "score_app"]

score_app = typer.Typer(help="站点综合评价 (一站一策一档)", no_args_is_help=True)
app = score_app


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise InputError(f"文件不存在: {path}", key="file_not_found", file=str(path))
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FileFormatError(f"无法解析 YAML: {e}", key="yaml_invalid", file=str(path)) from None


def _resolve(base: Path, entry: Any, what: str) -> Path:
    p = entry.get("path") if isinstance(entry, dict) else entry
    if not p:
        raise InputError(f"配置中的{what}缺少 path", key="config_missing", field="path")
    path = Path(str(p))
    return path if path.is_absolute() else base / path


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"文件不存在: {path}", key="file_not_found", file=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in (".geojson", ".json", ".gpkg", ".shp", ".fgb"):
            import geopandas as gpd

            return gpd.read_file(path)
        if suffix == ".csv":
            return pd.read_csv(path, encoding="utf-8-sig")
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(path, engine="openpyxl")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise FileFormatError(f"无法读取文件: {e}", key="file_unreadable", file=str(path)) from None
    raise FileFormatError(
        f"不支持的文件格式: {suffix}",
        key="file_format_unknown",
        file=str(path),
        hint="支持 geojson/gpkg/shp/csv/xlsx",
    )


def _load_inputs(config_path: Path) -> tuple[Any, dict[str, Any]]:
    raw = _read_yaml(config_path)
    config = parse_scoring_config(raw, file=str(config_path))
    base = config_path.parent
    sites_entry = (raw or {}).get("sites")
    if not sites_entry or not (isinstance(sites_entry, dict) and sites_entry.get("path")):
        raise InputError(
            "评价配置缺少 sites.path (站点数据文件)",
            key="config_missing",
            file=str(config_path),
            field="sites",
        )
    inputs: dict[str, Any] = {"sites": _read_frame(_resolve(base, sites_entry, "站点数据"))}
    inputs["layers"] = {
        k: _read_frame(_resolve(base, v, f"图层 {k}")) for k, v in (raw.get("layers") or {}).items()
    }
    inputs["tables"] = {
        k: _read_frame(_resolve(base, v, f"表 {k}")) for k, v in (raw.get("tables") or {}).items()
    }
    inputs["indicators"] = (
        _read_frame(_resolve(base, raw["indicators"], "指标数据"))
        if raw.get("indicators")
        else None
    )
    inputs["boundaries"] = (
        _read_frame(_resolve(base, raw["boundaries"], "边界")) if raw.get("boundaries") else None
    )
    return config, inputs


@score_app.command("run")
def run(
    config: Path = typer.Argument(..., help="评价配置 YAML"),
    method: str | None = typer.Option(None, "--method", help="weighted (加权求和) | topsis"),
    normalisation: str | None = typer.Option(
        None, "--normalisation", help="minmax | zscore | rank"
    ),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
    dossier: Path | None = typer.Option(None, "--dossier", help="一站一档输出目录"),
    fmt: str = typer.Option("html", "--format", help="一站一档格式: html | pdf"),
    site: list[str] | None = typer.Option(None, "--site", help="只输出这些站点的档案 (可重复)"),
    no_map: bool = typer.Option(False, "--no-map", help="档案中不绘制区位图"),
) -> None:
    """Score and rank sites; optionally write a dossier per site."""
    if fmt not in ("html", "pdf"):
        raise InputError(f"未知的档案格式: {fmt}", key="format_unknown", hint="html 或 pdf")
    cfg, inp = _load_inputs(config)
    result = score_sites(
        inp["sites"],
        cfg,
        layers=inp["layers"],
        tables=inp["tables"],
        indicators=inp["indicators"],
        method=method,
        normalisation=normalisation,
    )
    written: list[str] = []
    if dossier is not None:
        dossier.mkdir(parents=True, exist_ok=True)
        ids = list(site) if site else list(result.table.index)
        unknown = [s for s in ids if s not in result.table.index]
        if unknown:
            raise NotFoundError(
                "评价结果中没有这些站点: " + "、".join(unknown), key="site_not_found"
            )
        ranks = result.table["rank"].to_dict()
        for sid in ids:
            rank = int(ranks[sid])
            stem = f"{rank:02d}_{sid}_一站一档"
            kwargs = {
                "sites": inp["sites"],
                "boundaries": inp["boundaries"],
                "layers": inp["layers"],
                "with_map": not no_map,
            }
            if fmt == "html":
                path = dossier / f"{stem}.html"
                path.write_text(render_dossier_html(result, [sid], **kwargs), encoding="utf-8")
            else:
                path = dossier / f"{stem}.pdf"
                pdf, _pages = render_dossier_pdf(result, [sid], **kwargs)
                path.write_bytes(pdf)
            written.append(str(path))
    if json_out:
        out = result.to_dict()
        out["dossiers"] = written
        _echo_json(out)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = cfg.title + (f" · {result.method}" if result.method else "")
    table = Table(title=title)
    for h in ("排名", "编号", "名称", "得分", "时序", "模式", "排名稳定"):
        table.add_column(h)
    for sid, r in result.table.iterrows():
        table.add_row(
            str(r["rank"]),
            str(sid),
            str(r["name"]),
            f"{r['score']:.4f}",
            str(r["phase"]),
            str(r["mode"]),
            "是" if r["rank_stable"] else "否",
        )
    console.print(table)
    w = "、".join(f"{c.label} {result.weights[c.name]:.3f}" for c in cfg.criteria)
    console.print(f"权重: {w}")
    if result.ahp:
        a = result.ahp
        console.print(
            f"AHP: λmax = {a.lambda_max:.4f}, CI = {a.ci:.4f}, RI = {a.ri:.2f}, "
            f"CR = {a.cr:.4f} (≤ {a.max_cr:.2f})"
        )
    for msg in result.warnings:
        console.print(f"[yellow]警告: {msg}[/yellow]")
    for p in written:
        console.print(f"已写出: {p}")


@score_app.command("ahp")
def ahp(
    config: Path = typer.Argument(..., help="评价配置 YAML (weights.ahp)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Check the AHP matrix of a config: weights, λmax, CI, CR (refuses CR > 0.1)."""
    cfg = parse_scoring_config(_read_yaml(config), file=str(config))
    labels = [c.label for c in cfg.criteria]
    if cfg.weights.ahp_matrix is None and cfg.weights.ahp_pairs is None:
        raise InputError(
            "该配置未使用 AHP 判断矩阵 (weights.ahp)", key="ahp_missing", file=str(config)
        )
    if cfg.weights.ahp_pairs is not None:
        alias = {c.name: c.label for c in cfg.criteria} | {c.label: c.label for c in cfg.criteria}
        matrix: Any = ahp_matrix_from_pairs(
            labels, [(alias.get(a, a), alias.get(b, b), v) for a, b, v in cfg.weights.ahp_pairs]
        )
    else:
        matrix = cfg.weights.ahp_matrix
    res = ahp_weights(matrix, labels)
    if json_out:
        _echo_json(res.to_dict())
        return
    for n, w in res.weights_dict().items():
        typer.echo(f"{n}\t{w:.4f}")
    typer.echo(
        f"λmax = {res.lambda_max:.4f}, CI = {res.ci:.4f}, RI = {res.ri:.2f}, "
        f"CR = {res.cr:.4f} (通过, ≤ {res.max_cr:.2f})"
    )


@score_app.command("demo")
def demo(
    boundaries: Path = typer.Option(
        ..., "--boundaries", help="朝阳区街道边界 (beijing_chaoyang_subdistricts_wgs84.geojson)"
    ),
    out: Path = typer.Option(..., "--out", help="输出目录"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Write the synthetic Chaoyang micro-centre demo (sites, stops, table, config.yaml)."""
    import geopandas as gpd

    streets = _read_frame(boundaries)
    if not isinstance(streets, gpd.GeoDataFrame):
        raise InputError(
            "街道边界必须是空间数据 (geojson/gpkg/shp)", key="not_spatial", file=str(boundaries)
        )
    d = build_demo_sites(streets)
    out.mkdir(parents=True, exist_ok=True)
    d.sites.to_file(out / "sites.geojson", driver="GeoJSON")
    d.layers["transit_stops"].to_file(out / "transit_stops.geojson", driver="GeoJSON")
    d.tables["facility_gap"].to_csv(out / "facility_gap.csv", index=False, encoding="utf-8")
    streets.to_file(out / "boundaries.geojson", driver="GeoJSON")
    cfg = {
        k: v
        for k, v in d.mapping.items()
        if k
        in (
            "id",
            "version",
            "title",
            "synthetic",
            "source",
            "criteria",
            "weights",
            "method",
            "normalisation",
        )
    }
    cfg["sites"] = {"path": "sites.geojson", "id_field": "site_id", "name_field": "name"}
    cfg["layers"] = {"transit_stops": {"path": "transit_stops.geojson", "synthetic": True}}
    cfg["tables"] = {"facility_gap": {"path": "facility_gap.csv", "synthetic": True}}
    cfg["boundaries"] = {"path": "boundaries.geojson"}
    header = "# 朝阳区轨道微中心评价示例配置 (合成数据; 准则名称取自 002 附件4)\n"
    (out / "config.yaml").write_text(
        header + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    files = [
        str(out / n)
        for n in (
            "config.yaml",
            "sites.geojson",
            "transit_stops.geojson",
            "facility_gap.csv",
            "boundaries.geojson",
        )
    ]
    if json_out:
        _echo_json({"synthetic": True, "files": files})
        return
    for f in files:
        typer.echo(f"已写出: {f}")


# ---------------------------------------------------------------------------
# workspace commands: configurations and results kept in the workspace
# ---------------------------------------------------------------------------


def _ws(ctx: typer.Context, *, create: bool = False) -> Any:
    from yizhangtu.cli._common import open_workspace

    return open_workspace(ctx, create=create)


def _actor(ctx: typer.Context) -> str:
    from yizhangtu.cli._common import settings_from

    return settings_from(ctx).actor


@score_app.command("save-config")
def save_config_cmd(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="配置编号, 如 chaoyang_micro_centres"),
    config: Path = typer.Argument(
        ..., help="评价配置 YAML (sites.layer 等指向工作空间图层与数据表)"
    ),
    jurisdiction: str | None = typer.Option(
        None, "--jurisdiction", help="所属辖区, 如 北京市朝阳区"
    ),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="修改已有配置时你看到的版本号 (乐观锁)"
    ),
    replace: bool = typer.Option(False, "--replace", help="覆盖已有配置 (基于当前版本)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Store a scoring configuration in the workspace (validated; versioned)."""
    from yizhangtu.services.scoring import save_config

    raw = _read_yaml(config)
    if not isinstance(raw, dict):
        raise FileFormatError("评价配置必须是 YAML 映射", key="yaml_invalid", file=str(config))
    with _ws(ctx, create=True) as st:
        rec = save_config(
            st,
            key,
            raw,
            actor=_actor(ctx),
            jurisdiction=jurisdiction,
            expected_version=expected_version,
            replace=replace,
        )
    if json_out:
        _echo_json({"key": rec.key, "version": rec.version, "jurisdiction": rec.jurisdiction})
        return
    typer.echo(f"已保存评价配置 {rec.key} (版本 {rec.version})")


@score_app.command("configs")
def configs_cmd(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="输出 JSON")
) -> None:
    """List the scoring configurations stored in the workspace."""
    from yizhangtu.services.scoring import CONFIGS

    with _ws(ctx) as st:
        recs = st.list_records(CONFIGS)
    rows = [
        {
            "key": r.key,
            "title": r.data.get("title"),
            "version": r.version,
            "jurisdiction": r.jurisdiction,
            "updated_by": r.updated_by,
            "updated_at": r.updated_at,
        }
        for r in recs
    ]
    if json_out:
        _echo_json({"configs": rows})
        return
    for r in rows:
        typer.echo(f"{r['key']}\t版本 {r['version']}\t{r['title']}\t{r['jurisdiction'] or ''}")


def _write_run_dossiers(
    run: Any, dossier: Path, fmt: str, site: list[str] | None, no_map: bool
) -> list[str]:
    from yizhangtu.services.scoring import write_dossiers

    return [
        str(p)
        for p in write_dossiers(
            run, dossier, format=fmt, site_ids=site or None, with_map=not no_map
        )
    ]


@score_app.command("run-ws")
def run_ws(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="工作空间中的评价配置编号"),
    sites_layer: str | None = typer.Option(
        None, "--sites-layer", help="站点图层 (覆盖配置中的 sites.layer)"
    ),
    method: str | None = typer.Option(None, "--method", help="weighted (加权求和) | topsis"),
    normalisation: str | None = typer.Option(
        None, "--normalisation", help="minmax | zscore | rank"
    ),
    dossier: Path | None = typer.Option(None, "--dossier", help="一站一档输出目录"),
    fmt: str = typer.Option("html", "--format", help="一站一档格式: html | pdf"),
    site: list[str] | None = typer.Option(None, "--site", help="只输出这些站点的档案 (可重复)"),
    no_map: bool = typer.Option(False, "--no-map", help="档案中不绘制区位图"),
    no_save: bool = typer.Option(False, "--no-save", help="不保存评价结果"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Score the sites of a workspace layer with a stored configuration; save the result."""
    from yizhangtu.services.scoring import score_workspace

    with _ws(ctx) as st:
        run = score_workspace(
            st,
            key,
            actor=_actor(ctx),
            sites_layer=sites_layer,
            method=method,
            normalisation=normalisation,
            persist=not no_save,
        )
    written = _write_run_dossiers(run, dossier, fmt, site, no_map) if dossier is not None else []
    if json_out:
        _echo_json(run.to_dict() | {"dossiers": written, "saved": not no_save})
        return
    for sid, r in run.result.table.iterrows():
        typer.echo(
            f"{int(r['rank'])}\t{sid}\t{r['name']}\t{r['score']:.4f}\t{r['phase']}\t{r['mode']}"
        )
    typer.echo(
        f"运行 {run.run_id}; 溯源记录 {run.provenance_id}" + ("; 合成数据" if run.synthetic else "")
    )
    for p in written:
        typer.echo(f"已写出: {p}")


@score_app.command("results")
def results_cmd(
    ctx: typer.Context,
    run_id: str | None = typer.Argument(None, help="运行编号 (缺省列出所有运行)"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """List stored scoring runs, or the sites of one run."""
    from yizhangtu.services.scoring import RESULTS

    with _ws(ctx) as st:
        if run_id is None:
            recs = st.list_records(RESULTS)
            rows = [
                {
                    "run_id": r.key,
                    "config": r.data.get("config"),
                    "title": r.data.get("title"),
                    "scored_at": r.data.get("scored_at"),
                    "sites": len(r.data.get("sites") or ()),
                    "provenance_id": r.data.get("provenance_id"),
                    "synthetic": r.data.get("synthetic"),
                    "jurisdiction": r.jurisdiction,
                }
                for r in recs
            ]
            if json_out:
                _echo_json({"runs": rows})
                return
            for r in rows:
                typer.echo(f"{r['run_id']}\t{r['title']}\t{r['sites']} 个站点\t{r['scored_at']}")
            return
        rec = st.get_record(RESULTS, run_id)
    if json_out:
        _echo_json(dict(rec.data) | {"version": rec.version, "jurisdiction": rec.jurisdiction})
        return
    for s in rec.data["sites"]:
        typer.echo(
            f"{s['rank']}\t{s['site_id']}\t{s['name']}\t{s['score']:.4f}\t{s['phase']}\t{s['mode']}"
        )


@score_app.command("dossier")
def dossier_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="运行编号 (score results 列出)"),
    out: Path = typer.Option(..., "--out", help="输出目录"),
    fmt: str = typer.Option("html", "--format", help="html | pdf"),
    site: list[str] | None = typer.Option(None, "--site", help="只输出这些站点 (可重复)"),
    no_map: bool = typer.Option(False, "--no-map", help="不绘制区位图"),
    json_out: bool = typer.Option(False, "--json", help="输出 JSON"),
) -> None:
    """Re-score a stored run from its snapshots and write its dossiers (一站一档)."""
    from yizhangtu.services.scoring import rerun

    with _ws(ctx) as st:
        run = rerun(st, run_id, actor=_actor(ctx))
    written = _write_run_dossiers(run, out, fmt, site, no_map)
    if json_out:
        _echo_json({"run_id": run_id, "provenance_id": run.provenance_id, "dossiers": written})
        return
    for p in written:
        typer.echo(f"已写出: {p}")
