"""UI support for the health-check dashboard (城市体检): status, dimensions, trends, map."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_ui.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/ui/indicators/summary"): "perm:read",
    ("GET", "/api/ui/indicators/shapes"): "perm:read",
}

router = APIRouter(prefix="/api/ui/indicators", tags=["界面: 城市体检"])

_STATUS_ORDER = ("达标", "预警", "未达标", "无目标", "无法计算")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _summary(
    st: Store, scope: Scope, year: int | None, level: str | None, indicator: str | None
) -> dict[str, Any]:
    import pandas as pd

    from yizhangtu.services.indicators import query_evaluations

    # rows of units inside the user's jurisdiction only, filtered in SQL
    t = query_evaluations(st, jurisdictions=scope.record_prefixes())
    if t.empty:
        return {
            "available": False,
            "message": "工作空间中还没有体检评估结果 (yizhangtu indicators evaluate --persist)",
        }
    t["year"] = pd.to_numeric(t["year"]).astype(int)
    combos = sorted(
        {(str(lv), int(y)) for lv, y in zip(t["level"], t["year"], strict=True)},
        key=lambda c: (c[1], c[0]),
    )
    if level is None or year is None:
        lv_pick, y_pick = next(
            ((lv, y) for lv, y in reversed(combos) if lv == "street"), combos[-1]
        )
        level = level or lv_pick
        year = year or y_pick
    cur = t[(t["level"].astype(str) == level) & (t["year"] == int(year))]
    counts = cur["status"].astype(str).value_counts().to_dict()
    status_counts = [
        {"status": s, "count": int(counts.get(s, 0))} for s in _STATUS_ORDER if s in counts
    ] + [{"status": s, "count": int(n)} for s, n in counts.items() if s not in _STATUS_ORDER]
    dims = []
    for dim, g in cur.groupby(cur["dimension"].astype(str), sort=True):
        c = g["status"].astype(str).value_counts().to_dict()
        dims.append(
            {
                "dimension": dim,
                "indicators": int(g["indicator"].nunique()),
                **{s: int(c.get(s, 0)) for s in _STATUS_ORDER},
            }
        )
    agg = (
        cur[cur["is_aggregate"].astype(bool)]
        if "is_aggregate" in cur and cur["is_aggregate"].astype(bool).any()
        else cur.drop_duplicates("indicator")
    )
    rows = [
        {
            "indicator": r["indicator"],
            "name": r["name"],
            "dimension": r["dimension"],
            "unit_name": r["unit_name"],
            "value": _num(r["value"]),
            "value_unit": r["value_unit"],
            "target": _num(r["target"]),
            "target_year": _num(r["target_year"]),
            "status": r["status"],
            "trend_direction": r["trend_direction"],
            "clause": r["clause"],
            "synthetic": bool(r["synthetic"]),
        }
        for _, r in agg.sort_values(["dimension", "indicator"]).iterrows()
    ]
    # trend: the aggregate value of each indicator over every evaluated year
    trend: dict[str, list[dict[str, Any]]] = {}
    tagg = t[t["is_aggregate"].astype(bool)] if t["is_aggregate"].astype(bool).any() else t
    for (ind, y), g in tagg.groupby(["indicator", "year"]):
        v = _num(g["value"].iloc[0])
        if v is not None:
            trend.setdefault(str(ind), []).append({"year": int(str(y)), "value": v})
    # choropleth: per-unit values of one computable indicator
    units = cur[~cur["is_aggregate"].astype(bool)]
    computable = [i for i, g in units.groupby("indicator") if g["value"].notna().any()]
    pick = indicator if indicator in computable else (computable[0] if computable else None)
    values = []
    if pick is not None:
        for _, r in units[units["indicator"] == pick].iterrows():
            values.append(
                {
                    "unit_id": str(r["unit_id"]),
                    "unit_name": r["unit_name"],
                    "value": _num(r["value"]),
                    "status": r["status"],
                }
            )
    return {
        "available": True,
        "level": level,
        "year": int(year),
        "options": [{"level": lv, "year": y} for lv, y in combos],
        "area": {"code": str(cur["area_code"].iloc[0]), "name": str(cur["area_name"].iloc[0])}
        if len(cur)
        else None,
        "synthetic": bool(cur["synthetic"].astype(bool).any()),
        "status_counts": status_counts,
        "dimensions": dims,
        "indicators": rows,
        "trend": {k: sorted(v, key=lambda x: x["year"]) for k, v in trend.items()},
        "map": {
            "indicator": pick,
            "computable": [
                {"indicator": i, "name": str(units[units["indicator"] == i]["name"].iloc[0])}
                for i in computable
            ],
            "values": values,
        },
    }


def _unit_shapes(st: Store, ids: list[str]) -> dict[str, Any]:
    """GeoJSON (CRS84) of the boundary features whose code is one of ``ids``."""
    want = set(ids)
    for info in st.layers():
        if info.kind != "boundary" or info.current_snapshot is None:
            continue
        snap = st.resolve_snapshot(info.name)
        if snap.feature_count > 5000:
            continue
        gdf = st.read_layer(info.name)
        for field in ("code", "adcode", "nbs_code", "XZQDM", "unit_id"):
            if field in gdf.columns and want <= set(gdf[field].astype(str)):
                sub = gdf[gdf[field].astype(str).isin(want)].to_crs("OGC:CRS84")
                sub = sub.assign(geometry=sub.geometry.simplify(0.0002, preserve_topology=True))
                out = sub[[field, "geometry"]].rename(columns={field: "unit_id"})
                if "name" in sub.columns:
                    out["name"] = sub["name"].astype(str)
                return {"layer": info.name, "geojson": json.loads(out.to_json(drop_id=True))}
    return {"layer": None, "geojson": None}


@router.get("/summary", summary="体检看板数据")
async def summary(
    request: Request,
    year: int | None = Query(None),
    level: str | None = Query(None, pattern="^(street|district)$"),
    indicator: str | None = Query(None, max_length=100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Health-check dashboard data.

    状态统计、分维度表、趋势和分街乡数值 (已持久化的评估结果)。
    """
    return await get_rt(request).run(_summary, scope, year, level, indicator)


@router.get("/shapes", summary="体检单元边界 (GeoJSON)")
async def shapes(
    request: Request, ids: str = Query(..., max_length=20000), scope: Scope = Depends(need("read"))
) -> dict[str, Any]:
    """Boundaries of the reporting units (GeoJSON).

    统计单元的边界 (按代码取自边界图层), 供分级设色图使用。
    """
    return await get_rt(request).run(_unit_shapes, [i for i in ids.split(",") if i])
