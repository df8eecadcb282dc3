"""City health check report (城市体检评估报告): HTML or PDF, plus an Excel export.

The report has a summary (status counts per dimension, charts), one table per dimension, a
thematic map of one indicator by unit (choropleth with legend, north arrow and a true scale
bar, see :mod:`yizhangtu.reports.mapping`), the list of warnings, the optional claimed-vs-
computed consistency checks, and a provenance appendix. Text is Chinese; PDF via WeasyPrint
(needs a CJK font such as fonts-noto-cjk, otherwise Chinese renders as boxes).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from yizhangtu import __version__
from yizhangtu.errors import InputError
from yizhangtu.indicators.consistency import ClaimCheck
from yizhangtu.indicators.evaluate import EVALUATION_COLUMNS, Evaluation
from yizhangtu.indicators.model import STATUS_COLORS, STATUSES
from yizhangtu.reports.mapping import choropleth_png, cjk_context, figure_png

__all__ = [
    "EVALUATION_HEADERS_ZH",
    "build_context",
    "export_evaluation_xlsx",
    "render_health_check",
    "render_health_check_html",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Chinese column headers of the Excel export.
EVALUATION_HEADERS_ZH: dict[str, str] = {
    "indicator": "指标编码",
    "name": "指标名称",
    "dimension": "维度",
    "category": "类别",
    "scope": "统计范围",
    "unit_id": "单元编码",
    "unit_name": "单元名称",
    "is_aggregate": "是否汇总",
    "year": "年份",
    "value": "现状值",
    "value_unit": "单位",
    "direction": "指标方向",
    "target": "目标值",
    "target_year": "目标年份",
    "target_kind": "目标类型",
    "target_interpolated": "按进度插值",
    "target_passed": "目标年已过",
    "target_clause": "目标依据",
    "gap": "差距(现状−目标)",
    "achievement_pct": "完成度(%)",
    "trend_slope": "年均变化",
    "trend_direction": "趋势",
    "trend_years": "趋势年数",
    "status": "状态",
    "status_key": "状态编码",
    "status_reason": "状态说明",
    "reason": "无法计算原因",
    "clause": "条款依据",
    "department": "责任部门",
    "synthetic": "合成数据",
}
_DIRECTION_ZH = {"higher_better": "越高越好", "lower_better": "越低越好", "neutral": "适度"}
_TARGET_KIND_ZH = {"goal": "目标值", "limit": "底线/上限"}
_PROV_ZH = {
    "name": "名称",
    "layer": "图层",
    "table": "数据表",
    "source": "来源",
    "snapshot": "快照",
    "hash": "内容哈希",
    "content_hash": "内容哈希",
    "version": "版本",
    "date": "日期",
    "year": "年份",
    "license": "许可",
    "synthetic": "合成数据",
    "note": "说明",
    "policy": "政策包",
    "catalogue": "指标目录",
}


def _num(v: Any) -> str:
    if v is None:
        return "—"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "—"
    ax = abs(x)
    d = 0 if ax >= 1e4 else 1 if ax >= 100 else 2 if ax >= 1 else 4
    text = f"{x:,.{d}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _names(units_gdf: gpd.GeoDataFrame | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if units_gdf is not None and "unit_id" in units_gdf.columns and "name" in units_gdf.columns:
        out.update(
            {str(k): str(v) for k, v in zip(units_gdf["unit_id"], units_gdf["name"], strict=False)}
        )
    if extra:
        out.update({str(k): str(v) for k, v in extra.items()})
    return out


def _status_chart(ev: Evaluation) -> bytes | None:
    summ = ev.summary()
    if summ.empty:
        return None
    with cjk_context():
        fig = Figure(figsize=(7.5, 0.45 * len(summ) + 1.4))
        ax = fig.add_subplot(1, 1, 1)
        left = np.zeros(len(summ))
        ylabels = list(summ.index)
        for s in STATUSES:
            vals = summ[s].to_numpy(dtype=float)
            ax.barh(ylabels, vals, left=left, color=STATUS_COLORS[s], label=s, edgecolor="white")
            left += vals
        ax.invert_yaxis()
        ax.set_xlabel("记录数(指标 × 单元)")
        ax.legend(
            ncol=len(STATUSES),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.25 if len(summ) > 2 else -0.45),
            fontsize=8,
            frameon=False,
        )
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title("各维度指标状态分布", fontsize=11)
        return figure_png(fig)


def _achievement_rows(ev: Evaluation) -> pd.DataFrame:
    t = ev.table[np.isfinite(ev.table["achievement_pct"].astype(float))]
    if t.empty:
        return t
    agg = t[t["is_aggregate"]]
    single = t.groupby("indicator")["unit_id"].transform("count") == 1
    pick = pd.concat([agg, t[single & ~t["is_aggregate"]]]).drop_duplicates(
        ["indicator", "unit_id"]
    )
    if pick.empty:
        pick = t
    return pick.sort_values("achievement_pct").head(25)


def _achievement_chart(ev: Evaluation, names: Mapping[str, str]) -> bytes | None:
    rows = _achievement_rows(ev)
    if rows.empty:
        return None
    with cjk_context():
        fig = Figure(figsize=(7.5, 0.38 * len(rows) + 1.2))
        ax = fig.add_subplot(1, 1, 1)
        labels = [
            f"{r.name}({names.get(str(r.unit_id), str(r.unit_id))})"
            if rows["unit_id"].nunique() > 1
            else str(r.name)
            for r in rows.itertuples()
        ]
        vals = rows["achievement_pct"].astype(float).to_numpy()
        colors = [STATUS_COLORS[s] for s in rows["status"]]
        ax.barh(labels, vals, color=colors)
        ax.axvline(100, color="#333333", linestyle="--", linewidth=1)
        for y, v in enumerate(vals):
            ax.text(float(v), y, f" {v:.1f}%", va="center", fontsize=7)
        ax.set_xlabel("完成度(%); 越低越好的指标按 目标/现状 计")
        ax.set_xlim(0, max(110.0, float(np.nanmax(vals)) * 1.15))
        ax.invert_yaxis()
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=8)
        handles = [
            Patch(color=STATUS_COLORS[s], label=s) for s in STATUSES if s in set(rows["status"])
        ]
        ax.legend(handles=handles, fontsize=7, loc="lower right")
        ax.set_title("有目标指标的完成度", fontsize=11)
        return figure_png(fig)


def _map_candidates(ev: Evaluation, units_gdf: gpd.GeoDataFrame | None) -> dict[str, int]:
    if units_gdf is None or "unit_id" not in units_gdf.columns:
        return {}
    ids = set(units_gdf["unit_id"].astype(str))
    t = ev.table[(~ev.table["is_aggregate"]) & ev.table["unit_id"].astype(str).isin(ids)]
    t = t[np.isfinite(t["value"].astype(float))]
    counts = t.groupby("indicator", sort=False).size()
    return {str(k): int(v) for k, v in counts.items() if v >= 2}


def _map(
    ev: Evaluation,
    units_gdf: gpd.GeoDataFrame | None,
    indicator: str | None,
    unit_name: str,
    year: int,
) -> tuple[dict[str, str] | None, str]:
    cands = _map_candidates(ev, units_gdf)
    if indicator is not None:
        if indicator not in set(ev.table["indicator"]):
            raise InputError(
                f"制图指标 {indicator} 不在评估结果中", key="map_indicator", field="map_indicator"
            )
        if indicator not in cands:
            raise InputError(
                f"制图指标 {indicator} 在单元图层中没有至少两个可计算的单元值",
                key="map_indicator",
                field="map_indicator",
                hint="检查 units_gdf 的 unit_id 与评估结果是否一致",
            )
    elif not cands:
        return None, "没有可按单元制图的指标(需要单元边界 units_gdf 与至少两个单元的可计算值)。"
    else:
        order = list(dict.fromkeys(ev.table["indicator"]))
        indicator = max(cands, key=lambda k: (cands[k], -order.index(k)))
    assert units_gdf is not None
    rows = ev.table[(ev.table["indicator"] == indicator) & (~ev.table["is_aggregate"])]
    vals = rows.set_index(rows["unit_id"].astype(str))["value"].astype(float)
    g = units_gdf.copy()
    g["unit_id"] = g["unit_id"].astype(str)
    g["_value"] = g["unit_id"].map(vals)
    first = rows.iloc[0]
    label_col = "name" if "name" in g.columns else None
    title = f"{unit_name}{year}年 {first['name']}"
    png = choropleth_png(
        g,
        "_value",
        title=title,
        legend_title=f"{first['name']}({first['value_unit']})",
        label_column=label_col,
        synthetic=ev.synthetic,
        note=f"指标: {first['name']}({indicator}); 分级: 分位数; 无数据单元以斜线表示",
    )
    caption = f"图 专题图: {title}, 按单元分级设色" + ("(合成数据)" if ev.synthetic else "")
    return {
        "data_uri": _png_uri(png),
        "title": title,
        "caption": caption,
        "indicator": str(indicator),
    }, ""


def _s(v: Any) -> str:
    """Text of a cell, '' for None/NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _row_view(r: Any, names: Mapping[str, str], unit_name: str) -> dict[str, str]:
    uid = str(r.unit_id)
    uname = names.get(uid) or uid
    if r.is_aggregate and uid not in names:
        uname = f"{unit_name}(合计)"
    tgt = "—"
    target = _f(r.target)
    if target is not None:
        kind = ""
        if r.target_kind == "limit":
            kind = " 上限" if r.direction == "lower_better" else " 下限"
        extra = ", 按进度" if bool(r.target_interpolated) else ""
        tgt = f"{_num(target)}{kind}({int(float(r.target_year))}{extra})"
    gap = _f(r.gap)
    ach = _f(r.achievement_pct)
    slope = _f(r.trend_slope)
    trend = "—"
    if _s(r.trend_direction) and slope is not None:
        trend = f"{r.trend_direction}({slope:+.3g}/年, {int(r.trend_years)}年)"
    return {
        "name": str(r.name),
        "unit_name": uname,
        "value": _num(r.value),
        "unit": str(r.value_unit),
        "target": tgt,
        "gap": "—" if gap is None else ("+" if gap > 0 else "") + _num(gap),
        "achievement": "—" if ach is None else f"{ach:.1f}%",
        "trend": trend,
        "status": str(r.status),
        "explanation": _s(r.status_reason),
        "clause": _s(r.target_clause) or _s(r.clause),
        "department": _s(r.department),
        "dimension": str(r.dimension),
    }


def build_context(
    evaluation: Evaluation,
    *,
    unit_name: str,
    year: int,
    units_gdf: gpd.GeoDataFrame | None,
    provenance: Sequence[Mapping[str, Any]],
    map_indicator: str | None = None,
    consistency: Sequence[ClaimCheck] = (),
    unit_names: Mapping[str, str] | None = None,
    max_units_per_indicator: int = 12,
    max_warnings: int = 200,
) -> dict[str, Any]:
    """Everything the template needs (charts and map included as PNG data URIs)."""
    if int(year) != evaluation.year:
        raise InputError(
            f"报告年份 {year} 与评估年份 {evaluation.year} 不一致", key="report_year", field="year"
        )
    if units_gdf is not None and "unit_id" not in units_gdf.columns:
        raise InputError("单元图层缺少字段 unit_id", key="units_columns", field="unit_id")
    ev = evaluation
    names = _names(units_gdf, unit_names)
    t = ev.table
    counts = ev.status_counts()
    summ = ev.summary()
    summary_rows = [
        {
            "dimension": d,
            "counts": {s: int(summ.loc[d, s]) for s in STATUSES},
            "total": int(summ.loc[d].sum()),
        }
        for d in summ.index
    ]
    charts = []
    png = _status_chart(ev)
    if png:
        charts.append({"title": "各维度指标状态分布", "data_uri": _png_uri(png)})
    png = _achievement_chart(ev, names)
    if png:
        charts.append({"title": "有目标指标的完成度", "data_uri": _png_uri(png)})
    dims = []
    for d in ev.dimensions:
        sub = t[t["dimension"] == d]
        if sub.empty:
            continue
        rows: list[dict[str, str]] = []
        hidden = 0
        for _iid, g in sub.groupby("indicator", sort=False):
            g = g.sort_values(["is_aggregate"], ascending=False)
            if (
                len(g) > 1
                and (g["status"] == "无法计算").all()
                and g["status_reason"].nunique() == 1
            ):
                # one line for an indicator that no unit can compute, for the same reason
                view = _row_view(next(g.itertuples()), names, unit_name)
                view["unit_name"] = f"全部 {len(g)} 个单元"
                rows.append(view)
                continue
            shown = g.head(max_units_per_indicator)
            hidden += len(g) - len(shown)
            rows.extend(_row_view(r, names, unit_name) for r in shown.itertuples())
        more = f"另有 {hidden} 条单元记录未列出, 详见 Excel 导出。" if hidden else ""
        dims.append({"name": d, "rows": rows, "more": more})
    warn = ev.warnings()
    warnings = [_row_view(r, names, unit_name) for r in warn.head(max_warnings).itertuples()]
    warnings_more = (
        f"另有 {len(warn) - max_warnings} 条预警未列出, 详见 Excel 导出。"
        if len(warn) > max_warnings
        else ""
    )
    map_ctx, map_missing = _map(ev, units_gdf, map_indicator, unit_name, int(year))
    prov_keys: list[str] = []
    for p in provenance:
        for k in p:
            if k not in prov_keys:
                prov_keys.append(k)
    prov_rows = [
        [("" if p.get(k) is None else str(p.get(k))) for k in prov_keys] for p in provenance
    ]
    n_nc = int((t["status"] == "无法计算").sum())
    methods = [
        "状态: 达标 / 预警 / 未达标 按各指标目录中的预警规则判定; 目标值取评估年份之后最近的目标年"
        "(有基期者按进度线性插值), 目标年已过者沿用最后目标; 无适用目标为“无目标”。",
        "目标类型“底线/上限”: 突破即未达标, 未突破但距限值在预警带以内为预警;"
        " “目标值”: 已达为达标, 差距在预警带内为预警。",
        "完成度: 越高越好的指标为 现状/目标, 越低越好的指标为 目标/现状; 差距 = 现状 − 目标。",
        "趋势: 评估年及以前各年数值的最小二乘斜率(单位/年), 按指标方向判为向好、变差或持平。",
        f"无法计算的记录({n_nc} 条)不以 0 计, 原因列出所缺数据。",
        "覆盖率类指标: 设施按直线服务半径在 CGCS2000 高斯-克吕格平面上缓冲,"
        " 与单元求交得覆盖面积比例; 单元内人口视为均匀分布, 汇总时按人口加权(无人口表时按面积加权);"
        " 直线距离不考虑路网, 为步行可达的上限估计。",
        "面积: CGCS2000 椭球面积; 专题图采用 3 度带高斯-克吕格投影, 比例尺按投影量测,"
        " 指北针指向图幅中心真北。",
    ]
    title = f"{unit_name}{year}年城市体检评估报告"
    css = (TEMPLATES / "report_base.css").read_text("utf-8")
    return {
        "title": title,
        "subtitle": f"{ev.catalogue_title}" + (f" · {ev.jurisdiction}" if ev.jurisdiction else ""),
        "synthetic": ev.synthetic,
        "generated_at": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "base_css": css,
        "catalogue_title": ev.catalogue_title,
        "catalogue_id": ev.catalogue_id,
        "catalogue_version": ev.catalogue_version,
        "year": int(year),
        "unit_name": unit_name,
        "n_indicators": int(t["indicator"].nunique()),
        "n_rows": len(t),
        "n_computable": int((t["status"] != "无法计算").sum()),
        "counts": list(counts.items()),
        "statuses": list(STATUSES),
        "colors": STATUS_COLORS,
        "summary_rows": summary_rows,
        "charts": charts,
        "dimensions": dims,
        "map": map_ctx,
        "map_missing": map_missing,
        "warnings": warnings,
        "warnings_more": warnings_more,
        "claims": [
            {"consistent": c.consistent, "message": c.message, "text": c.claim.text or ""}
            for c in consistency
        ],
        "provenance_keys": [_PROV_ZH.get(k, k) for k in prov_keys],
        "provenance_rows": prov_rows,
        "methods": methods,
    }


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_health_check_html(evaluation: Evaluation, **kwargs: Any) -> str:
    """Render the report to an HTML string (same keyword arguments as :func:`build_context`)."""
    ctx = build_context(evaluation, **kwargs)
    return _env().get_template("health_check.html").render(**ctx)


def render_health_check(
    evaluation: Evaluation,
    *,
    unit_name: str,
    year: int,
    units_gdf: gpd.GeoDataFrame | None,
    provenance: Sequence[Mapping[str, Any]],
    out_path: str | Path,
    format: Literal["html", "pdf"] = "html",
    map_indicator: str | None = None,
    consistency: Sequence[ClaimCheck] = (),
    unit_names: Mapping[str, str] | None = None,
    max_units_per_indicator: int = 12,
) -> Path:
    """Write the city health check report as HTML or PDF.

    Parameters
    ----------
    evaluation : Evaluation
        From :func:`yizhangtu.indicators.evaluate`.
    unit_name : str
        Name of the evaluated area (e.g. 朝阳区), used in titles.
    year : int
        Evaluated year (must equal ``evaluation.year``).
    units_gdf : GeoDataFrame or None
        Units with ``unit_id`` (and ``name``) for the thematic map and unit names.
    provenance : list of dict
        Data sources (name, source, snapshot, hash …) for the appendix.
    out_path : str or Path
        Output file.
    format : {'html', 'pdf'}
        HTML (self-contained, images inline) or PDF via WeasyPrint.
    map_indicator : str, optional
        Indicator to map; default: the one with the most computable unit values.
    consistency : sequence of ClaimCheck
        Claimed-vs-computed checks to list.
    unit_names : Mapping, optional
        Extra unit id → name labels.

    Returns
    -------
    Path
        The written file.
    """
    if format not in ("html", "pdf"):
        raise InputError(
            f"不支持的报告格式: {format}", key="report_format", hint="可选 html 或 pdf"
        )
    html = render_health_check_html(
        evaluation,
        unit_name=unit_name,
        year=year,
        units_gdf=units_gdf,
        provenance=provenance,
        map_indicator=map_indicator,
        consistency=consistency,
        unit_names=unit_names,
        max_units_per_indicator=max_units_per_indicator,
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "html":
        out.write_text(html, "utf-8")
        return out
    from weasyprint import HTML

    HTML(string=html, base_url=str(TEMPLATES)).write_pdf(str(out))
    return out


def export_evaluation_xlsx(
    evaluation: Evaluation,
    path: str | Path,
    *,
    unit_names: Mapping[str, str] | None = None,
) -> Path:
    """Write the evaluation to an Excel workbook with Chinese headers.

    Sheets: 说明 (catalogue, year, synthetic flag), 汇总 (status counts per dimension),
    评估结果 (all rows), 预警清单 (预警 and 未达标 rows).
    """
    ev = evaluation
    names = {str(k): str(v) for k, v in (unit_names or {}).items()}

    def zh(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        pos = list(out.columns).index("unit_id") + 1
        out.insert(pos, "unit_name", out["unit_id"].astype(str).map(names))
        out["direction"] = out["direction"].map(_DIRECTION_ZH).fillna(out["direction"])
        out["target_kind"] = out["target_kind"].map(_TARGET_KIND_ZH).fillna(out["target_kind"])
        cols = [
            c
            for c in (*EVALUATION_COLUMNS[:6], "unit_name", *EVALUATION_COLUMNS[6:])
            if c in out.columns
        ]
        return out[cols].rename(columns=EVALUATION_HEADERS_ZH)

    info = pd.DataFrame(
        {
            "项目": [
                "指标目录",
                "目录编码",
                "目录版本",
                "评估年份",
                "地区",
                "合成数据",
                "生成时间",
                "软件版本",
            ],
            "内容": [
                ev.catalogue_title,
                ev.catalogue_id,
                ev.catalogue_version,
                ev.year,
                ev.jurisdiction or "",
                "是(仅用于测试/演示)" if ev.synthetic else "否",
                dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                __version__,
            ],
        }
    )
    summ = ev.summary().reset_index().rename(columns={"dimension": "维度"})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(out, engine="openpyxl") as xw:
        info.to_excel(xw, sheet_name="说明", index=False)
        summ.to_excel(xw, sheet_name="汇总", index=False)
        zh(ev.table).to_excel(xw, sheet_name="评估结果", index=False)
        zh(ev.warnings()).to_excel(xw, sheet_name="预警清单", index=False)
        for ws in xw.book.worksheets:
            ws.freeze_panes = "A2"
            for col in ws.iter_cols(max_row=min(ws.max_row, 200)):
                width = max(len(str(c.value)) if c.value is not None else 0 for c in col)
                ws.column_dimensions[col[0].column_letter].width = min(max(8, width * 1.6 + 2), 60)
    return out
