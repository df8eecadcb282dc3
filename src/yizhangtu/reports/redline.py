"""One-page result of a red-line compliance check (红线合规性审查结果单), HTML or PDF.

The page holds the verdict, the parcels, the intersection with each control line, zone and plan
(area and share), the coordinate-tolerance match, the findings with their clauses, a map (with
north arrow and a true scale bar, from :mod:`yizhangtu.reports.mapping`) and the provenance
(input snapshots and hashes, policy packs). Synthetic inputs are flagged on the page.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape

from yizhangtu.errors import InputError
from yizhangtu.geo.area import convert_area, to_geographic

__all__ = [
    "build_context",
    "map_layers",
    "redline_map_png",
    "render_redline",
    "render_redline_html",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Map styles of line types (fill, edge); anything else is grey.
_STYLE: dict[str, tuple[str, str]] = {
    "eco_redline": ("#2e7d32", "#1b5e20"),
    "basic_farmland": ("#f9a825", "#c17900"),
    "urban_boundary": ("#90a4ae", "#455a64"),
    "eco_control_line": ("#66bb6a", "#2e7d32"),
    "zone_eco_control": ("#a5d6a7", "#388e3c"),
    "zone_restricted": ("#ffe082", "#ff8f00"),
    "zone_concentrated": ("#cfd8dc", "#607d8b"),
}
_SEV_CLASS = {"error": "bad", "warning": "warn", "info": "ok"}
_SEV_LABEL = {"error": "错误", "warning": "警告", "info": "提示"}
_VERDICT_CLASS = {"不通过": "bad", "需审查": "warn", "通过": "ok"}


def _ns(df: Any) -> list[Any]:
    """Rows of a DataFrame as attribute namespaces (typed Any for display code)."""
    from types import SimpleNamespace

    return [SimpleNamespace(**{str(k): v for k, v in r.items()}) for r in df.to_dict("records")]


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _bounds(geoms: gpd.GeoSeries, margin: float) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = geoms.total_bounds
    size = max(maxx - minx, maxy - miny, 50.0)
    pad = size * margin
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half = size / 2 + pad
    return (cx - half, cy - half, cx + half, cy + half)


def _draw_panel(
    ax: Any,
    crs: Any,
    bounds: tuple[float, float, float, float],
    layers: Sequence[tuple[str, gpd.GeoDataFrame]],
    rl: gpd.GeoDataFrame,
    patches: gpd.GeoDataFrame | None,
    *,
    legend: bool,
    styles: Sequence[tuple[str, str]],
    north: bool = True,
    background: bool = False,
) -> None:
    import shapely
    from matplotlib.patches import Patch, Rectangle

    from yizhangtu.reports.mapping import north_arrow, scale_bar

    frame = shapely.box(*bounds)
    handles: list[Any] = []
    for (type_id, g), (_, ltitle) in zip(layers, styles, strict=True):
        sub = g[g.intersects(frame)]
        if len(sub) == 0:
            continue
        sub = sub.set_geometry(sub.geometry.intersection(frame))
        face, edge = _STYLE.get(type_id, ("#bdbdbd", "#757575"))
        sub.plot(ax=ax, color=face, alpha=0.45, edgecolor=edge, linewidth=0.8)
        handles.append(Patch(facecolor=face, edgecolor=edge, alpha=0.6, label=ltitle))
    if background:
        ax.add_patch(
            Rectangle(
                (bounds[0], bounds[1]),
                bounds[2] - bounds[0],
                bounds[3] - bounds[1],
                facecolor="white",
                edgecolor="none",
                zorder=0,
            )
        )
    if patches is not None and len(patches):
        sev = patches["severity"] if "severity" in patches.columns else None
        for level, color, label in (
            ("warning", "#ef6c00", "须审查的占用"),
            ("error", "#b71c1c", "禁止占用的部分"),
        ):
            sub = patches[(sev == level).to_numpy()] if sev is not None else patches.iloc[:0]
            sub = sub[sub.intersects(frame)]
            if len(sub):
                sub.plot(
                    ax=ax, facecolor="none", edgecolor=color, hatch="////", linewidth=0.6, zorder=3
                )
                handles.append(Patch(facecolor="none", edgecolor=color, hatch="////", label=label))
    rl.boundary.plot(ax=ax, color="#d50000", linewidth=1.6)
    handles.append(Patch(facecolor="none", edgecolor="#d50000", linewidth=1.6, label="项目红线"))
    for _, r in rl.iterrows():
        p = r.geometry.representative_point()
        if frame.contains(p):
            ax.annotate(
                str(r.get("parcel", "")),
                (p.x, p.y),
                xytext=(0, 7),
                textcoords="offset points",
                fontsize=6.5,
                ha="center",
                color="#b71c1c",
            )
    ax.set_xlim(bounds[0], bounds[2])
    ax.set_ylim(bounds[1], bounds[3])
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.add_patch(
        Rectangle(
            (bounds[0], bounds[1]),
            bounds[2] - bounds[0],
            bounds[3] - bounds[1],
            fill=False,
            edgecolor="#333333",
            linewidth=0.8,
        )
    )
    if north:
        north_arrow(ax, crs, bounds)
        scale_bar(ax, bounds)
    else:
        _simple_scale(ax, bounds)
    if legend:
        ax.legend(handles=handles, loc="upper left", fontsize=6, frameon=True, framealpha=0.9)


def _simple_scale(ax: Any, bounds: tuple[float, float, float, float]) -> None:
    """Draw a one-segment scale bar with its length written above (for small insets)."""
    from matplotlib.patches import Rectangle

    from yizhangtu.reports.mapping import nice_scale_length

    w, h = bounds[2] - bounds[0], bounds[3] - bounds[1]
    length = nice_scale_length(w, 0.3)
    x0, y0 = bounds[0] + 0.05 * w, bounds[1] + 0.05 * h
    ax.add_patch(
        Rectangle((x0, y0), length, 0.015 * h, facecolor="black", edgecolor="black", zorder=10)
    )
    text = f"{length / 1000:g} 千米" if length >= 1000 else f"{length:g} 米"
    ax.text(x0 + length / 2, y0 + 0.03 * h, text, ha="center", va="bottom", fontsize=6, zorder=10)


def redline_map_png(
    redline: gpd.GeoDataFrame,
    layers: Sequence[tuple[str, str, gpd.GeoDataFrame]],
    *,
    patches: gpd.GeoDataFrame | None = None,
    focus: str | None = None,
    title: str = "项目红线位置",
    synthetic: bool = False,
    margin: float = 0.6,
    dpi: int = 150,
) -> bytes:
    """Map of a red line over control lines: ``layers`` are (type id, title, frame).

    The overview covers all parcels (grown by ``margin`` × their extent), with a north arrow and a
    true scale bar (:mod:`yizhangtu.reports.mapping`). When the parcels are small in it, an inset
    zooms on the parcel ``focus`` (default the first), with its own scale bar.
    """
    from matplotlib.figure import Figure

    from yizhangtu.reports.mapping import cjk_context, figure_png, gk_crs

    if redline.crs is None:
        raise InputError("红线没有坐标系, 无法制图", key="crs_missing")
    crs = gk_crs(redline)
    rl = redline.set_geometry(to_geographic(redline.geometry)).to_crs(crs)
    overview = _bounds(rl.geometry, margin)
    sizes = rl.geometry.bounds.apply(lambda b: max(b.maxx - b.minx, b.maxy - b.miny), axis=1)
    zoom = len(rl) > 1 and float(sizes.max()) * 8 < overview[2] - overview[0]
    # clip the layers in lon/lat to (a margin around) the map before projecting: control lines
    # can be district-sized polygons with many vertices
    import shapely
    from pyproj import Transformer

    inv = Transformer.from_crs(crs, 4490, always_xy=True)
    w = overview[2] - overview[0]
    lon0, lat0, lon1, lat1 = inv.transform_bounds(
        overview[0] - w, overview[1] - w, overview[2] + w, overview[3] + w
    )
    clip_box = shapely.box(lon0, lat0, lon1, lat1)
    layer_frames = []
    styles = []
    for type_id, ltitle, gdf in layers:
        if gdf is None or len(gdf) == 0:
            continue
        geo = gdf.set_geometry(to_geographic(gdf.geometry))
        geo = geo[geo.intersects(clip_box)]
        geo = geo.set_geometry(geo.geometry.intersection(clip_box))
        geo = geo[~geo.geometry.is_empty]
        layer_frames.append((type_id, geo.to_crs(crs)))
        styles.append((type_id, ltitle))
    pg = (
        patches.set_geometry(to_geographic(patches.geometry)).to_crs(crs)
        if patches is not None and len(patches)
        else None
    )
    with cjk_context():
        fig = Figure(figsize=(5.0, 5.0))
        ax = fig.add_axes((0.02, 0.03, 0.96, 0.88))
        _draw_panel(ax, crs, overview, layer_frames, rl, pg, legend=True, styles=styles)
        if zoom:
            # inset (lower right): the parcel in focus, with its own scale bar
            sel = (
                rl[rl["parcel"] == focus]
                if focus is not None and "parcel" in rl.columns
                else rl.iloc[:0]
            )
            if len(sel) == 0:
                sel = rl.iloc[:1]
            inset = fig.add_axes((0.56, 0.05, 0.40, 0.40))
            inset.set_facecolor("white")
            zb = _bounds(sel.geometry, 1.0)
            _draw_panel(
                inset,
                crs,
                zb,
                layer_frames,
                rl,
                pg,
                legend=False,
                styles=styles,
                north=False,
                background=True,
            )
            inset.set_title(
                f"局部放大: {sel['parcel'].iloc[0] if 'parcel' in sel.columns else ''}",
                fontsize=6.5,
                pad=2,
            )
            from matplotlib.patches import Rectangle

            ax.add_patch(
                Rectangle(
                    (zb[0], zb[1]),
                    zb[2] - zb[0],
                    zb[3] - zb[1],
                    fill=False,
                    edgecolor="#d50000",
                    linewidth=0.8,
                    linestyle="--",
                )
            )
        fig.suptitle(
            title + ("(合成数据)" if synthetic and "合成数据" not in title else ""),
            fontsize=10,
            y=0.995,
        )
        fig.text(
            0.02,
            0.0,
            f"CGCS2000 / 3度带高斯-克吕格投影 (EPSG:{crs.to_epsg()}), 比例尺按该投影量测",
            fontsize=5.5,
            color="#555555",
        )
        return figure_png(fig, dpi=dpi)


def _fmt_area(m2: float, unit: str) -> str:
    v = float(convert_area(float(m2), unit))
    return f"{v:,.2f}" if unit != "m2" else f"{v:,.1f}"


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{float(v):.2%}"


def build_context(
    outcome: Any,
    *,
    layers_for_map: Sequence[tuple[str, str, gpd.GeoDataFrame]] = (),
    unit: str = "m2",
    title: str | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """Template context from a :class:`yizhangtu.services.conformance.RedlineOutcome`."""
    from yizhangtu import __version__

    chk = outcome.check
    unit_label = {"m2": "㎡", "ha": "公顷", "km2": "平方公里", "mu": "亩"}[unit]
    synthetic = bool(outcome.synthetic_inputs)
    parcels = [
        {
            "parcel": r.parcel,
            "name": r.name or "",
            "area": _fmt_area(r.area_m2, unit),
            "verdict": r.verdict,
            "cls": _VERDICT_CLASS.get(r.verdict, ""),
        }
        for r in _ns(chk.parcels)
    ]
    pids = [p["parcel"] for p in parcels]
    pivot = len(pids) <= 4
    lines: list[dict[str, Any]] = []
    for (_, ltitle), g in chk.line_rows.groupby(["line_type", "line_title"], sort=False):
        by = {r.parcel: r for r in _ns(g)}
        hit = bool((g["overlap_m2"] > 0).any())
        slivers = int(g["sliver_count"].sum())
        if pivot:
            cells = [
                f"{_fmt_area(by[p].overlap_m2, unit)} ({_pct(by[p].share)})"
                if p in by and by[p].overlap_m2 > 0
                else "-"
                for p in pids
            ]
            lines.append(
                {
                    "title": ltitle,
                    "cells": cells,
                    "hit": hit,
                    "slivers": f"{slivers} 处" if slivers else "-",
                }
            )
        else:
            for r in _ns(g):
                if r.overlap_m2 > 0:
                    lines.append(
                        {
                            "title": ltitle,
                            "cells": [r.parcel, _fmt_area(r.overlap_m2, unit), _pct(r.share)],
                            "hit": True,
                            "slivers": f"{int(r.sliver_count)} 处" if r.sliver_count else "-",
                        }
                    )
    plans = [
        {
            "parcel": r["parcel"],
            "plan": r["plan_title"],
            "cls": f"{r['class']} {r['class_label']}"
            if r["class_label"] != r["class"]
            else str(r["class"]),
            "construction": "-"
            if r["construction"] is None
            else ("建设用地" if r["construction"] else "非建设用地"),
            "area": _fmt_area(r["area_m2"], unit),
            "share": _pct(r["share"]),
        }
        for r in chk.plan_rows.to_dict("records")
    ]
    matches = []
    if len(chk.match_rows):
        for r in chk.match_rows.to_dict("records"):
            matches.append(
                {
                    "parcel": r["parcel"],
                    "registered": r.get("registered_id") or "-",
                    "outcome": {
                        "identical": "一致",
                        "within_tolerance": "容差内一致",
                        "shifted": "一致平移(坐标转换)",
                        "changed": "有变化",
                        "unregistered": "未登记",
                    }.get(r.get("outcome"), r.get("outcome")),
                    "hausdorff": f"{r['hausdorff_m']:.2f}"
                    if r.get("hausdorff_m") == r.get("hausdorff_m")
                    and r.get("hausdorff_m") is not None
                    else "-",
                    "shift": f"{r['shift_m']:.2f}"
                    if r.get("shift_m") == r.get("shift_m") and r.get("shift_m") is not None
                    else "-",
                }
            )
    order = {"error": 0, "warning": 1, "info": 2}
    findings = [
        {
            "sev": _SEV_LABEL[f.severity],
            "cls": _SEV_CLASS[f.severity],
            "message": f.message,
            "clause": f.clause or "",
        }
        for f in sorted(chk.findings, key=lambda f: (order[f.severity], f.subject or ""))
        if f.severity != "info"
        or f.outcome in ("within_tolerance", "shifted", "sliver_only", "identical")
    ]
    n_info = sum(1 for f in chk.findings if f.severity == "info")
    map_png = None
    if not layers_for_map and getattr(outcome, "frames", None):
        layers_for_map = map_layers(outcome.frames)
    focus = next(
        (p["parcel"] for p in parcels if p["verdict"] == "不通过"),
        next((p["parcel"] for p in parcels if p["verdict"] == "需审查"), None),
    )
    if chk.redline is not None:
        map_png = _png_uri(
            redline_map_png(
                chk.redline, layers_for_map, patches=chk.patches, focus=focus, synthetic=synthetic
            )
        )
    tol = chk.tolerances
    prov = [
        {
            "name": outcome.input.file,
            "kind": "红线文件",
            "hash": outcome.input.source_hash[:16],
            "note": f"{outcome.input.format}, 源坐标系 {outcome.input.source_crs}",
        }
    ]
    return {
        "title": title or "项目红线合规性审查结果",
        "subtitle": project or "、".join(p["name"] or p["parcel"] for p in parcels),
        "synthetic": synthetic,
        "synthetic_inputs": list(outcome.synthetic_inputs),
        "generated_at": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "verdict": chk.verdict,
        "verdict_cls": _VERDICT_CLASS.get(chk.verdict, ""),
        "unit_label": unit_label,
        "parcels": parcels,
        "total_area": _fmt_area(float(chk.parcels["area_m2"].sum()), unit),
        "lines": lines,
        "pivot": pivot,
        "parcel_ids": pids,
        "plans": plans[:12],
        "plans_more": max(0, len(plans) - 12),
        "matches": matches,
        "findings": findings,
        "n_info": n_info,
        "map_png": map_png,
        "notes": list(outcome.input.notes),
        "tolerance": (
            f"容差(004 (十一), 本地设定): 与登记红线偏差 ≤ {tol.hausdorff_m:g} 米, "
            f"或一致平移 ≤ {tol.shift_m:g} 米(残差 ≤ {tol.shift_residual_m:g} 米) 视为同一红线; "
            f"面积 < {tol.sliver_area_m2:g}㎡ 或平均宽度 < {tol.sliver_width_m:g} 米的重叠"
            "视为细碎图斑, 不计为占用。"
        ),
        "packs": [f"{p['id']} v{p['version']} ({p['hash'][:12]})" for p in outcome.packs],
        "provenance": prov,
        "layers": {
            "lines": dict(outcome.lines),
            "plans": list(outcome.plans),
            "registered": outcome.registered_layer,
        },
        "line_layers": list(dict.fromkeys(outcome.lines.values())),
        "provenance_id": outcome.provenance_id,
    }


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_redline_html(outcome: Any, **kwargs: Any) -> str:
    """Render the one-page result to HTML (keyword arguments of :func:`build_context`)."""
    ctx = build_context(outcome, **kwargs)
    ctx["base_css"] = (TEMPLATES / "report_base.css").read_text(encoding="utf-8")
    return _env().get_template("redline.html").render(**ctx)


def render_redline(
    outcome: Any,
    out_path: str | Path | Sequence[str | Path],
    *,
    format: Literal["html", "pdf"] | None = None,
    layers_for_map: Sequence[tuple[str, str, gpd.GeoDataFrame]] = (),
    unit: str = "m2",
    title: str | None = None,
    project: str | None = None,
) -> Path:
    """Write the one-page result as HTML and/or PDF (by ``format`` or the file suffix).

    Parameters
    ----------
    outcome : RedlineOutcome
        From :func:`yizhangtu.services.conformance.check_redline_file`.
    out_path : str or Path, or a sequence of them
        Output file(s) (``.html`` or ``.pdf``); the page is built once for all of them.
    layers_for_map : sequence of (type id, title, GeoDataFrame)
        Control lines and zones to draw under the red line.
    unit : str
        Area unit of the tables (m2, ha, mu, km2).
    """
    paths = [Path(out_path)] if isinstance(out_path, str | Path) else [Path(p) for p in out_path]
    fmts = []
    for out in paths:
        suffix = out.suffix.lower()
        fmt = format or (
            "pdf" if suffix == ".pdf" else "html" if suffix in (".html", ".htm") else None
        )
        if fmt not in ("html", "pdf"):
            raise InputError(
                f"不支持的报告格式: {out.suffix or format}",
                key="report_format",
                hint="报告文件名以 .html 或 .pdf 结尾",
            )
        fmts.append(fmt)
    html = render_redline_html(
        outcome, layers_for_map=layers_for_map, unit=unit, title=title, project=project
    )
    for out, fmt in zip(paths, fmts, strict=True):
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "html":
            out.write_text(html, encoding="utf-8")
        else:
            from weasyprint import HTML

            HTML(string=html, base_url=str(TEMPLATES)).write_pdf(str(out))
    return paths[0]


def map_layers(frames: Mapping[str, gpd.GeoDataFrame]) -> list[tuple[str, str, gpd.GeoDataFrame]]:
    """(type id, title, frame) triples for :func:`redline_map_png` from line type → frame."""
    from yizhangtu.conformance import line_types

    types = line_types()
    order = [
        "zone_concentrated",
        "zone_restricted",
        "zone_eco_control",
        "urban_boundary",
        "eco_control_line",
        "basic_farmland",
        "eco_redline",
    ]
    keys = sorted(frames, key=lambda k: order.index(k) if k in order else -1)
    return [(k, types[k].title if k in types else k, frames[k]) for k in keys]
