"""Vector tiles (MVT, WebMercatorQuad) of every layer and snapshot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from yizhangtu.services import features as fsvc
from yizhangtu.services import tiles as tsvc
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, get_scope

__all__ = ["router"]

router = APIRouter(prefix="/tiles", tags=["矢量瓦片"])
MVT = "application/vnd.mapbox-vector-tile"


@router.get("/{layer}/{z}/{x}/{y}.mvt", summary="矢量瓦片", response_class=Response)
async def tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    snapshot: str | None = Query(None, description="快照标签或编号, 默认当前快照"),
    scope: Scope = Depends(get_scope),
) -> Response:
    """一个 MVT 瓦片 (图层名即瓦片内图层名, fid 为要素编号); 坐标超出范围时 400。"""
    rt = get_rt(request)
    s = rt.settings
    tsvc.validate_tile(z, x, y, max_zoom=s.tile_max_zoom)
    res = await rt.run(
        lambda st: tsvc.render_tile(
            st,
            scope,
            layer,
            z,
            x,
            y,
            snapshot=snapshot,
            cache=rt.tiles,
            max_zoom=s.tile_max_zoom,
            simplify_px=s.tile_simplify_px,
            full_attributes_zoom=s.tile_full_attributes_zoom,
        )
    )
    private = scope.authenticated
    cache = ("private" if private else "public") + (
        ", max-age=86400, immutable" if res.pinned else ", no-cache"
    )
    headers = {
        "ETag": res.etag,
        "Cache-Control": cache,
        "Vary": "Cookie, Authorization",
        "X-Snapshot": str(res.snapshot_id),
        "X-Tile-Cache": "hit" if res.cached else "miss",
    }
    if request.headers.get("if-none-match") == res.etag:
        return Response(status_code=304, headers=headers)
    return Response(res.data, media_type=MVT, headers=headers)


@router.get("/{layer}.json", summary="TileJSON")
async def tilejson(
    layer: str,
    request: Request,
    snapshot: str | None = Query(None),
    scope: Scope = Depends(get_scope),
) -> dict[str, Any]:
    """图层瓦片的 TileJSON 3.0 描述 (范围、级别、字段)。"""
    rt = get_rt(request)
    base = str(request.base_url).rstrip("/")

    def run(st: Store) -> dict[str, Any]:
        info = fsvc.visible_layer(st, scope, layer)
        snap = st.resolve_snapshot(layer, snapshot)
        ext = fsvc.feature_extent(st, scope, info, snap)
        fields = {
            n: {"int": "Number", "float": "Number", "bool": "Boolean"}.get(k, "String")
            for n, k in st.feature_schema(layer, snapshot=snap.id)
        }
        q = f"?snapshot={snap.id}" if snapshot is not None else ""
        return {
            "tilejson": "3.0.0",
            "name": info.title or info.name,
            "description": (info.description or "") + (" (合成数据)" if info.synthetic else ""),
            "tiles": [f"{base}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt{q}"],
            "minzoom": 0,
            "maxzoom": rt.settings.tile_max_zoom,
            "bounds": list(ext) if ext else [-180, -85.05, 180, 85.05],
            "vector_layers": [{"id": layer, "fields": fields}],
            "snapshot": {"id": snap.id, "label": snap.label, "content_hash": snap.content_hash},
        }

    return await rt.run(run)
