"""Site dossiers (一站一档): HTML (jinja2) and PDF (WeasyPrint), with a static map.

Rendering returns strings and bytes; writing files is the caller's business. The map is a
matplotlib PNG embedded as a data URI, drawn in the sites' CGCS2000 Gauss–Krüger zone
(metres): an overview of the district outline with all sites, and a close-up of the site with
its street, its neighbours and the features of the spatial criteria.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from yizhangtu.errors import NotFoundError
from yizhangtu.geo.area import to_geographic
from yizhangtu.reports.pdf import html_to_pdf
from yizhangtu.scoring._data import packaged_text
from yizhangtu.scoring.ahp import ahp_constants
from yizhangtu.scoring.criteria import DIRECTIONS, METHODS, NORMALISATIONS
from yizhangtu.scoring.methods import ScoringResult
from yizhangtu.scoring.values import metric_epsg_for

__all__ = [
    "FONT_FAMILY",
    "dossier_context",
    "html_to_pdf",
    "render_dossier_html",
    "render_dossier_pdf",
    "site_map_png",
]

#: Chinese font for maps and PDFs (Debian package fonts-noto-cjk).
FONT_FAMILY = "Noto Sans CJK SC"


def _site_index(result: ScoringResult, site_id: str) -> None:
    if site_id not in result.table.index:
        raise NotFoundError(f"评价结果中没有站点 {site_id}", key="site_not_found")


def site_map_png(
    result: ScoringResult,
    site_id: str,
    sites: gpd.GeoDataFrame,
    *,
    boundaries: gpd.GeoDataFrame | None = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    dpi: int = 110,
) -> bytes:
    """PNG map of one site: district overview and a close-up with neighbours."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    _site_index(result, site_id)
    epsg = result.metric_epsg or metric_epsg_for(sites)
    ids = [str(v) for v in sites[result.config.id_field]]
    sgeo = to_geographic(sites.geometry).to_crs(epsg=epsg)
    pos = ids.index(site_id)
    here = sgeo.iloc[pos]
    centre = here.centroid if here.geom_type != "Point" else here
    radius = max(
        [
            c.source.radius_m or 0.0
            for c in result.config.criteria
            if c.source.kind == "count_within"
        ]
        + [0.0]
    )
    half = max(1500.0, radius * 1.8)
    from yizhangtu.reports.mapping import cjk_rc

    with matplotlib.rc_context(cjk_rc()):
        fig = Figure(figsize=(9.0, 3.5), dpi=dpi)
        ax1, ax2 = fig.subplots(1, 2)
        bproj = None
        if boundaries is not None and len(boundaries):
            bproj = to_geographic(boundaries.geometry).to_crs(epsg=epsg)
            outline = shapely.union_all(np.asarray(bproj.values, dtype=object))
            gpd.GeoSeries([outline]).boundary.plot(ax=ax1, color="#333", linewidth=1.0)
            bproj.boundary.plot(ax=ax1, color="#bbb", linewidth=0.4)
            containing = bproj[bproj.contains(centre)]
            if len(containing):
                containing.plot(ax=ax1, color="#ffe8a8", edgecolor="#d49a00", linewidth=0.8)
                containing.plot(ax=ax2, color="#fff6dc", edgecolor="#d49a00", linewidth=1.0)
            bproj.boundary.plot(ax=ax2, color="#bbb", linewidth=0.6)
        others = sgeo.drop(sgeo.index[pos])
        if len(others):
            others.plot(ax=ax1, color="#777", markersize=10)
        gpd.GeoSeries([centre]).plot(ax=ax1, color="#d00", marker="*", markersize=120)
        ax1.set_title("区位总览" + ("(区界与街道)" if bproj is not None else ""), fontsize=10)
        # Close-up.
        for c in result.config.criteria:
            if (
                c.source.kind in ("count_within", "distance_to_nearest")
                and layers
                and c.source.layer is not None
                and c.source.layer in layers
            ):
                lyr = to_geographic(layers[c.source.layer].geometry).to_crs(epsg=epsg)
                win = shapely.box(
                    centre.x - half, centre.y - half, centre.x + half, centre.y + half
                )
                sub = lyr[lyr.intersects(win)]
                if len(sub):
                    sub.plot(ax=ax2, color="#1f77b4", markersize=8, label=f"{c.source.layer}")
        if radius > 0:
            gpd.GeoSeries([centre.buffer(radius)]).boundary.plot(
                ax=ax2, color="#1f77b4", linestyle="--", linewidth=0.8
            )
        near = others[others.distance(centre) <= half * 1.4]
        if len(near):
            near.plot(ax=ax2, color="#555", markersize=30, marker="^")
        names = result.table["name"].to_dict()
        for sid, g in zip(ids, sgeo.values, strict=True):
            if sid == site_id:
                continue
            p = g.centroid
            if abs(p.x - centre.x) <= half and abs(p.y - centre.y) <= half:
                ax2.annotate(
                    str(names.get(sid, sid)),
                    (p.x, p.y),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        gpd.GeoSeries([centre]).plot(ax=ax2, color="#d00", marker="*", markersize=220)
        ax2.annotate(
            str(names.get(site_id, site_id)),
            (centre.x, centre.y),
            fontsize=9,
            xytext=(6, -12),
            textcoords="offset points",
            color="#900",
        )
        ax2.set_xlim(centre.x - half, centre.x + half)
        ax2.set_ylim(centre.y - half, centre.y + half)
        title2 = "站点周边"
        if radius > 0:
            title2 += f"(虚线: {radius:g} 米范围)"
        ax2.set_title(title2, fontsize=10)
        # Scale bar: 500 m.
        x0, y0 = centre.x - half * 0.9, centre.y - half * 0.9
        ax2.plot([x0, x0 + 500], [y0, y0], color="k", linewidth=2)
        ax2.text(x0 + 250, y0 + half * 0.03, "500 米", ha="center", fontsize=7)
        for ax in (ax1, ax2):
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel("")
        if result.config.synthetic:
            fig.suptitle("合成数据 · 仅供演示", fontsize=9, color="#b07000")
        fig.text(0.99, 0.01, f"EPSG:{epsg}", ha="right", fontsize=6, color="#888")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _num(x: Any) -> float:
    return float(x)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt_raw(x: float) -> str:
    if np.isnan(x):
        return "—"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def dossier_context(
    result: ScoringResult,
    site_ids: Iterable[str] | None = None,
    *,
    sites: gpd.GeoDataFrame | None = None,
    boundaries: gpd.GeoDataFrame | None = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    with_map: bool = True,
) -> dict[str, Any]:
    """Template context for the dossiers of ``site_ids`` (default: all, by rank)."""
    ids = list(site_ids) if site_ids is not None else list(result.table.index)
    for s in ids:
        _site_index(result, s)
    step = ahp_constants().sensitivity_step
    labels = {c.name: c.label for c in result.config.criteria}
    street = {}
    if sites is not None and "street_name" in sites.columns:
        street = dict(
            zip((str(v) for v in sites[result.config.id_field]), sites["street_name"], strict=True)
        )
    dossiers = []
    for sid in ids:
        row: Any = result.table.loc[sid]
        sens = result.sensitivity
        ch = sens[(sens["site_id"] == sid) & ~sens["rank_kept"]]
        crits = [
            {
                "label": c.label,
                "direction": DIRECTIONS[c.direction],
                "source": c.source.describe(),
                "raw": _fmt_raw(_num(result.raw.at[sid, c.name])),
                "unit": c.unit,
                "normalised": _num(result.normalised.at[sid, c.name]),
                "weight": float(result.weights[c.name]),
                "contribution": _num(result.contributions.at[sid, c.name]),
            }
            for c in result.config.criteria
        ]
        png = None
        if (
            with_map
            and sites is not None
            and isinstance(sites, gpd.GeoDataFrame)
            and sites.crs is not None
        ):
            png = _data_uri(site_map_png(result, sid, sites, boundaries=boundaries, layers=layers))
        dossiers.append(
            {
                "site": {
                    "site_id": sid,
                    "name": row["name"],
                    "score": float(row["score"]),
                    "rank": int(row["rank"]),
                    "phase": row["phase"],
                    "period": row["period"],
                    "mode": row["mode"],
                    "mode_text": row["mode_text"],
                    "rank_stable": bool(row["rank_stable"]),
                    "street_name": street.get(sid, ""),
                },
                "changes": [
                    {
                        "label": labels[str(r.criterion)],
                        "change": r.change,
                        "new_rank": int(_num(r.new_rank)),
                    }
                    for r in ch.itertuples()
                ],
                "criteria": crits,
                "map": png,
            }
        )
    return {
        "title": result.config.title,
        "synthetic": result.config.synthetic,
        "method_label": METHODS[result.method],
        "normalisation_label": NORMALISATIONS[result.normalisation]
        + ("; TOPSIS 另按向量标准化计算贴近度" if result.method == "topsis" else ""),
        "contrib_label": "加权贡献" if result.method == "weighted" else "加权规范化值",
        "n_sites": len(result.table),
        "step_pct": f"{step * 100:g}%",
        "ahp": result.ahp,
        "metric_crs": f"EPSG:{result.metric_epsg}" if result.metric_epsg else "",
        "rules_source": result.rules.source or "默认规则",
        "rules_example": result.rules.example,
        "dossiers": dossiers,
    }


def render_dossier_html(
    result: ScoringResult,
    site_ids: Iterable[str] | None = None,
    *,
    sites: gpd.GeoDataFrame | None = None,
    boundaries: gpd.GeoDataFrame | None = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    with_map: bool = True,
) -> str:
    """HTML dossier(s): one section per site (page break between sites in print)."""
    import jinja2

    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True)
    )
    tpl = env.from_string(packaged_text("templates/dossier.html.j2"))
    ctx = dossier_context(
        result, site_ids, sites=sites, boundaries=boundaries, layers=layers, with_map=with_map
    )
    return tpl.render(**ctx)


def render_dossier_pdf(
    result: ScoringResult,
    site_ids: Iterable[str] | None = None,
    *,
    sites: gpd.GeoDataFrame | None = None,
    boundaries: gpd.GeoDataFrame | None = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    with_map: bool = True,
) -> tuple[bytes, int]:
    """PDF dossier(s) and page count."""
    html = render_dossier_html(
        result, site_ids, sites=sites, boundaries=boundaries, layers=layers, with_map=with_map
    )
    return html_to_pdf(html)
