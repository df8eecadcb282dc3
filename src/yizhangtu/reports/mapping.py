"""Thematic maps for reports: choropleth with legend, north arrow and a true scale bar.

Maps are drawn in the CGCS2000 3-degree Gauss–Krüger zone of the data (EPSG 4534–4554), a
conformal projection whose scale factor stays within 2·10⁻⁴ of 1 inside a zone, so the scale
bar is true to that precision. The north arrow points to true north at the map centre (it is
rotated from grid north by the meridian convergence). Chinese text uses Noto Sans CJK SC with
fallbacks; figures are built with the object API (no pyplot state), so the module is safe to
use from a web worker.

Reusable by other reports: :func:`choropleth_png`, :func:`cjk_rc`, :func:`figure_png`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from pyproj import CRS, Transformer

from yizhangtu.errors import InputError
from yizhangtu.geo.area import to_geographic
from yizhangtu.indicators.coverage import gk_crs_for as gk_crs

__all__ = [
    "CJK_FONT_FAMILY",
    "choropleth_png",
    "cjk_context",
    "cjk_rc",
    "classify",
    "figure_png",
    "gk_crs",
    "nice_scale_length",
    "north_arrow",
    "scale_bar",
]

#: Font preference for Chinese text; the first installed one wins (CI installs fonts-noto-cjk).
CJK_FONT_FAMILY: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "DejaVu Sans",
)


def cjk_rc() -> dict[str, Any]:
    """Matplotlib rc settings for Chinese text (use with ``matplotlib.rc_context``)."""
    return {
        "font.family": "sans-serif",
        "font.sans-serif": list(CJK_FONT_FAMILY),
        "axes.unicode_minus": False,
        "svg.fonttype": "none",
        "pdf.fonttype": 42,
    }


@contextmanager
def cjk_context() -> Iterator[None]:
    """Context in which matplotlib draws Chinese text (:func:`cjk_rc` settings)."""
    with matplotlib.rc_context(cjk_rc()):  # type: ignore[arg-type]
        yield


def figure_png(fig: Figure, dpi: int = 150) -> bytes:
    """Render a Figure to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def nice_scale_length(width_m: float, fraction: float = 0.25) -> float:
    """Return a round scale-bar length (1, 2 or 5 × 10ⁿ m) near ``fraction`` of the map width."""
    if width_m <= 0:
        return 1.0
    raw = width_m * fraction
    exp = math.floor(math.log10(raw))
    for m in (5, 2, 1):
        if m * 10**exp <= raw:
            return float(m * 10**exp)
    return float(10**exp)


def classify(values: np.ndarray, k: int = 5) -> np.ndarray:
    """Quantile class breaks (upper bounds, ascending, unique) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([])
    qs = np.quantile(v, np.linspace(0, 1, k + 1)[1:])
    return np.unique(qs)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def north_arrow(ax: Any, crs: CRS, bounds: Sequence[float]) -> None:
    """Draw an arrow to true north at the centre of ``bounds`` (in ``crs``), top right."""
    minx, miny, maxx, maxy = bounds
    w, h = maxx - minx, maxy - miny
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    inv = Transformer.from_crs(crs, CRS.from_epsg(4490), always_xy=True)
    fwd = Transformer.from_crs(CRS.from_epsg(4490), crs, always_xy=True)
    lon, lat = inv.transform(cx, cy)
    x2, y2 = fwd.transform(lon, lat + 0.01)
    ang = math.atan2(x2 - cx, y2 - cy)  # true north relative to grid north (radians, clockwise)
    length = 0.09 * h
    bx, by = maxx - 0.07 * w, maxy - 0.16 * h
    dx, dy = length * math.sin(ang), length * math.cos(ang)
    ax.annotate(
        "",
        xy=(bx + dx, by + dy),
        xytext=(bx, by),
        arrowprops={
            "facecolor": "black",
            "edgecolor": "black",
            "width": 3,
            "headwidth": 11,
            "headlength": 12,
        },
        zorder=10,
    )
    ax.text(
        bx + dx,
        by + dy + 0.01 * h,
        "北 N",
        ha="center",
        va="bottom",
        fontsize=9,
        fontweight="bold",
        zorder=10,
    )


def scale_bar(ax: Any, bounds: Sequence[float]) -> float:
    """Draw a four-segment scale bar at the bottom left; return its length in metres."""
    minx, miny, maxx, maxy = bounds
    w, h = maxx - minx, maxy - miny
    length = nice_scale_length(w)
    x0, y0 = minx + 0.04 * w, miny + 0.04 * h
    bar_h = 0.012 * h
    n = 4
    seg = length / n
    for i in range(n):
        ax.add_patch(
            Rectangle(
                (x0 + i * seg, y0),
                seg,
                bar_h,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.8,
                zorder=10,
            )
        )
    km = length >= 1000
    for i in (0, n // 2, n):
        d = i * seg
        label = f"{d / 1000:g}" if km else f"{d:g}"
        ax.text(x0 + d, y0 + bar_h * 1.6, label, ha="center", va="bottom", fontsize=7, zorder=10)
    ax.text(
        x0 + length + 0.01 * w,
        y0,
        "千米" if km else "米",
        ha="left",
        va="bottom",
        fontsize=7,
        zorder=10,
    )
    return length


def choropleth_png(
    gdf: gpd.GeoDataFrame,
    column: str,
    *,
    title: str,
    legend_title: str = "",
    label_column: str | None = None,
    cmap: str = "YlOrRd",
    classes: int = 5,
    synthetic: bool = False,
    note: str | None = None,
    figsize: tuple[float, float] = (7.0, 7.5),
    dpi: int = 150,
) -> bytes:
    """Draw a choropleth map of ``column`` and return it as PNG bytes.

    Parameters
    ----------
    gdf : GeoDataFrame
        Polygons with a CRS and the value column (NaN = 无数据, hatched grey).
    column : str
        Numeric column to map (quantile classes).
    title : str
        Map title; ``（合成数据）`` is appended when ``synthetic``.
    legend_title : str
        Legend heading (indicator name and unit).
    label_column : str, optional
        Column with feature labels (e.g. street names), drawn small at representative points.
    cmap : str
        Matplotlib colormap name.
    classes : int
        Number of quantile classes.
    synthetic : bool
        Label the map as synthetic data.
    note : str, optional
        Footnote (data source).
    """
    if gdf.crs is None:
        from yizhangtu.errors import CRSError

        raise CRSError("制图数据没有坐标参考系", key="crs_missing", hint="为单元图层设置 CRS")
    if column not in gdf.columns:
        raise InputError(f"制图字段不存在: {column}", key="map_column", field=column)
    crs = gk_crs(gdf)
    g = gdf.set_geometry(to_geographic(gdf.geometry)).to_crs(crs)
    vals = np.asarray(g[column], dtype=float)
    breaks = classify(vals, classes)
    colormap = matplotlib.colormaps[cmap].resampled(max(len(breaks), 1))
    with cjk_context():
        fig = Figure(figsize=figsize)
        ax = fig.add_axes((0.03, 0.08, 0.94, 0.82))
        handles: list[Patch] = []
        lower = np.nanmin(vals) if np.isfinite(vals).any() else 0.0
        cls = np.full(len(vals), -1)
        for i, ub in enumerate(breaks):
            sel = np.isfinite(vals) & (cls < 0) & (vals <= ub + 1e-12 * max(1.0, abs(ub)))
            cls[sel] = i
        for i, ub in enumerate(breaks):
            sub = g[cls == i]
            color = colormap(i)
            if len(sub):
                sub.plot(ax=ax, color=color, edgecolor="#555555", linewidth=0.4)
            lo = lower if i == 0 else breaks[i - 1]
            handles.append(
                Patch(facecolor=color, edgecolor="#555555", label=f"{_fmt(lo)} – {_fmt(ub)}")
            )
        nodata = g[~np.isfinite(vals)]
        if len(nodata):
            nodata.plot(ax=ax, color="#e0e0e0", edgecolor="#888888", hatch="///", linewidth=0.4)
            handles.append(
                Patch(facecolor="#e0e0e0", edgecolor="#888888", hatch="///", label="无数据")
            )
        if label_column is not None and label_column in g.columns:
            pts = g.geometry.representative_point()
            for p, text in zip(pts, g[label_column], strict=False):
                ax.text(
                    p.x,
                    p.y,
                    str(text),
                    fontsize=4.5,
                    ha="center",
                    va="center",
                    color="#111111",
                    zorder=5,
                    path_effects=[patheffects.withStroke(linewidth=1.5, foreground="white")],
                )
        minx, miny, maxx, maxy = g.total_bounds
        padx, pady = (maxx - minx) * 0.05, (maxy - miny) * 0.05
        bounds = (minx - padx, miny - pady * 2.5, maxx + padx, maxy + pady * 2.5)
        ax.set_xlim(bounds[0], bounds[2])
        ax.set_ylim(bounds[1], bounds[3])
        ax.set_aspect("equal")
        ax.set_axis_off()
        north_arrow(ax, crs, bounds)
        scale_bar(ax, bounds)
        ax.legend(
            handles=handles,
            title=legend_title or None,
            loc="lower right",
            fontsize=7,
            title_fontsize=8,
            frameon=True,
            framealpha=0.9,
        )
        full_title = title + ("(合成数据)" if synthetic and "合成数据" not in title else "")
        fig.suptitle(full_title, fontsize=12, y=0.97)
        foot = f"坐标系: CGCS2000 / 3度带高斯-克吕格投影 (EPSG:{crs.to_epsg()}), 比例尺按该投影量测"
        if note:
            foot = note + "\n" + foot
        fig.text(0.03, 0.02, foot, fontsize=6.5, color="#444444", ha="left", va="bottom")
        return figure_png(fig, dpi=dpi)
