"""OGC API - Features Part 1 (core, GeoJSON), Part 2 (CRS) and Part 3 (filtering, CQL2 text).

Collections are the layers the caller may see (published layers without login). Items are
one snapshot (default: current; ``datetime`` selects by observation date, ``snapshot`` by
label or id), filtered in the database, paged by keyset (``after`` in the ``next`` link) and
streamed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from yizhangtu.errors import InputError, NotFoundError
from yizhangtu.services import features as fsvc
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, get_scope

__all__ = ["CONFORMANCE", "router"]

router = APIRouter(prefix="/ogc", tags=["OGC API Features"])

GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
]
_KNOWN_PARAMS = {
    "limit",
    "bbox",
    "bbox-crs",
    "datetime",
    "crs",
    "filter",
    "filter-lang",
    "filter-crs",
    "after",
    "snapshot",
    "f",
}
_F_VALUES = {None, "", "json", "geojson", "application/json", "application/geo+json"}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_f(f: str | None) -> None:
    if f not in _F_VALUES:
        raise InputError(
            f"不支持的输出格式 f={f}",
            key="bad_format",
            field="f",
            hint="只提供 JSON/GeoJSON (f=json)",
        )


def _json(
    body: Any, media: str = "application/json", headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, media_type=media, headers=headers)


@router.get("", summary="OGC API 登录页")
async def landing(request: Request, f: str | None = Query(None)) -> JSONResponse:
    """OGC API Features 登录页 (landing page)。"""
    _check_f(f)
    b = _base(request)
    return _json(
        {
            "title": "一张图 OGC API Features",
            "description": "国土空间规划一张图: 图层快照的要素服务 (OGC API Features 1–3 部分)",
            "links": [
                {"href": f"{b}/ogc", "rel": "self", "type": "application/json", "title": "本页"},
                {
                    "href": f"{b}/openapi.json",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                    "title": "API 定义",
                },
                {
                    "href": f"{b}/docs",
                    "rel": "service-doc",
                    "type": "text/html",
                    "title": "API 文档",
                },
                {
                    "href": f"{b}/ogc/conformance",
                    "rel": "conformance",
                    "type": "application/json",
                    "title": "符合性声明",
                },
                {
                    "href": f"{b}/ogc/collections",
                    "rel": "data",
                    "type": "application/json",
                    "title": "要素集合",
                },
            ],
        }
    )


@router.get("/conformance", summary="符合性声明")
async def conformance(f: str | None = Query(None)) -> JSONResponse:
    """实现的符合性类别。"""
    _check_f(f)
    return _json({"conformsTo": CONFORMANCE})


def _collection(store: Store, scope: Scope, name: str, base: str) -> dict[str, Any]:
    info = fsvc.visible_layer(store, scope, name)
    snaps = store.snapshots(name)
    cur = store.resolve_snapshot(name)
    ext = fsvc.feature_extent(store, scope, info, cur)
    dates = sorted(s.obs_date for s in snaps if s.obs_date)
    title = (info.title or info.name) + (
        " (合成数据)" if info.synthetic and "合成" not in (info.title or "") else ""
    )
    href = f"{base}/ogc/collections/{name}"
    out: dict[str, Any] = {
        "id": name,
        "title": title,
        "description": info.description or "",
        "itemType": "feature",
        "links": [
            {"href": href, "rel": "self", "type": "application/json", "title": title},
            {"href": f"{href}/items", "rel": "items", "type": GEOJSON, "title": "要素"},
            {
                "href": f"{href}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "title": "可查询属性",
            },
            {
                "href": f"{base}/tiles/{name}/{{z}}/{{x}}/{{y}}.mvt",
                "rel": "item",
                "type": "application/vnd.mapbox-vector-tile",
                "title": "矢量瓦片 (WebMercatorQuad)",
                "templated": True,
            },
        ],
        "crs": fsvc.supported_crs(cur.crs),
        "storageCrs": fsvc.crs_uri(cur.crs or "EPSG:4490"),
        "extent": {
            "spatial": {"bbox": [list(ext)] if ext else [[-180, -90, 180, 90]], "crs": fsvc.CRS84},
            "temporal": {
                "interval": [[dates[0] + "T00:00:00Z", dates[-1] + "T23:59:59Z"]]
                if dates
                else [[None, None]],
                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
            },
        },
        "snapshots": [
            {"id": s.id, "label": s.label, "obs_date": s.obs_date, "feature_count": s.feature_count}
            for s in snaps
        ],
        "synthetic": info.synthetic,
    }
    return out


@router.get("/collections", summary="要素集合列表")
async def collections(
    request: Request, f: str | None = Query(None), scope: Scope = Depends(get_scope)
) -> JSONResponse:
    """可见图层 (未登录: 已公开图层)。"""
    _check_f(f)
    b = _base(request)

    def run(st: Store) -> list[dict[str, Any]]:
        return [_collection(st, scope, li.name, b) for li in fsvc.visible_layers(st, scope)]

    cols = await get_rt(request).run(run)
    return _json(
        {
            "links": [
                {
                    "href": f"{b}/ogc/collections",
                    "rel": "self",
                    "type": "application/json",
                    "title": "要素集合",
                }
            ],
            "collections": cols,
            "crs": fsvc.supported_crs(),
        }
    )


@router.get("/collections/{collectionId}", summary="要素集合")
async def collection(
    request: Request,
    collectionId: str = Path(..., max_length=64),
    f: str | None = Query(None),
    scope: Scope = Depends(get_scope),
) -> JSONResponse:
    """一个图层的集合描述 (范围、坐标系、快照)。"""
    _check_f(f)
    b = _base(request)
    return _json(await get_rt(request).run(lambda st: _collection(st, scope, collectionId, b)))


@router.get("/collections/{collectionId}/queryables", summary="可查询属性")
async def queryables(
    request: Request,
    collectionId: str = Path(..., max_length=64),
    f: str | None = Query(None),
    scope: Scope = Depends(get_scope),
) -> JSONResponse:
    """可在 filter (CQL2) 中使用的属性 (JSON Schema)。"""
    _check_f(f)
    url = f"{_base(request)}/ogc/collections/{collectionId}/queryables"
    return _json(
        await get_rt(request).run(
            lambda st: fsvc.queryables(st, scope, collectionId, self_url=url)
        ),
        media="application/schema+json",
    )


def _direct_filters(request: Request, schema: dict[str, str]) -> str | None:
    """Queryables given as query parameters (``?DLBM=0101``) as a CQL2 conjunction."""
    parts = []
    for k, v in request.query_params.multi_items():
        if k in _KNOWN_PARAMS:
            continue
        if k not in schema:
            raise InputError(
                f"未知的查询参数: {k}",
                key="unknown_parameter",
                field=k,
                hint="可用参数: "
                + ", ".join(sorted(_KNOWN_PARAMS))
                + ", 以及 /queryables 中的属性",
            )
        kind = schema[k]
        if kind in ("int", "float"):
            try:
                float(v)
            except ValueError:
                raise InputError(
                    f"参数 {k} 应为数字: {v}", key="cql2_type_mismatch", field=k
                ) from None
            lit = v
        elif kind == "bool":
            lit = "TRUE" if v.lower() in ("1", "true") else "FALSE"
        else:
            lit = "'" + v.replace("'", "''") + "'"
        parts.append('"' + k.replace('"', '""') + '" = ' + lit)
    return " AND ".join(parts) if parts else None


@router.get("/collections/{collectionId}/items", summary="要素")
async def items(
    request: Request,
    collectionId: str = Path(..., max_length=64),
    limit: int | None = Query(None, ge=1, description="每页要素数 (超过上限按上限)"),
    bbox: str | None = Query(
        None, description="最小经度,最小纬度,最大经度,最大纬度 (bbox-crs 的轴序)"
    ),
    bbox_crs: str | None = Query(None, alias="bbox-crs"),
    datetime_: str | None = Query(
        None, alias="datetime", description="按观测日期选择快照: 2020-12-31 或区间 ../2021-06-30"
    ),
    crs: str | None = Query(None, description="输出坐标系, 默认 CRS84"),
    filter_: str | None = Query(None, alias="filter", description="CQL2 文本筛选条件"),
    filter_lang: str | None = Query(None, alias="filter-lang"),
    filter_crs: str | None = Query(None, alias="filter-crs"),
    after: int | None = Query(None, ge=0, description="翻页游标 (见 next 链接)"),
    snapshot: str | None = Query(None, description="快照标签或编号"),
    f: str | None = Query(None),
    scope: Scope = Depends(get_scope),
) -> Response:
    """一个快照的要素 (GeoJSON, 流式输出), 筛选在数据库中执行。"""
    _check_f(f)
    rt = get_rt(request)
    s = rt.settings
    lim = min(limit or s.ogc_default_limit, s.ogc_max_limit)

    def prepare(st: Store) -> tuple[fsvc.FeaturePlan, int | None, bool]:
        info = fsvc.visible_layer(st, scope, collectionId)
        extra = None
        if any(k not in _KNOWN_PARAMS for k in request.query_params):
            extra = _direct_filters(request, dict(st.feature_schema(info.name)))
        flt = filter_
        if extra:
            flt = f"({filter_}) AND {extra}" if filter_ and filter_.strip() else extra
        plan = fsvc.plan_features(
            st,
            scope,
            collectionId,
            snapshot=snapshot,
            datetime_=datetime_,
            bbox=bbox,
            bbox_crs=bbox_crs,
            filter_=flt,
            filter_lang=filter_lang,
            filter_crs=filter_crs,
            crs=crs,
        )
        matched, exact = fsvc.count_matched(st, plan, estimate_above=s.count_estimate_threshold)
        return plan, matched, exact

    plan, matched, exact = await rt.run(prepare)
    base_url = str(request.url)

    def page(st: Store, cursor: int | None, n: int) -> tuple[list[str], int, int | None]:
        texts, nxt = fsvc.fetch_json_page(st, plan, after=cursor, limit=n)
        return texts, len(texts), nxt

    async def body() -> AsyncIterator[bytes]:
        # pages are gathered into ~64 KB writes: one write for a small response (no
        # Nagle/delayed-ACK stalls between small chunks), bounded memory for a large one
        buf = bytearray(b'{"type":"FeatureCollection","features":[')
        left, cursor, returned, nxt = lim, after, 0, None
        first = True
        while left > 0:
            texts, n, more = await rt.run(page, cursor, min(1000, left))
            if texts:
                if not first:
                    buf += b","
                buf += ",".join(texts).encode("utf-8")
                first = False
            if len(buf) >= 65536:
                yield bytes(buf)
                buf.clear()
            returned += n
            left -= n
            if more is None:
                nxt = None
                break
            cursor = more
            nxt = more
        links = [
            {"href": base_url, "rel": "self", "type": GEOJSON, "title": "本页"},
            {
                "href": f"{_base(request)}/ogc/collections/{collectionId}",
                "rel": "collection",
                "type": "application/json",
                "title": "集合",
            },
        ]
        if nxt is not None:
            links.append(
                {
                    "href": str(request.url.include_query_params(after=nxt)),
                    "rel": "next",
                    "type": GEOJSON,
                    "title": "下一页",
                }
            )
        tail: dict[str, Any] = {
            "numberReturned": returned,
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": links,
        }
        if matched is not None:
            tail["numberMatched"] = matched
            if not exact:
                tail["numberMatchedEstimated"] = True
        if plan.snap is not None:
            tail["snapshot"] = {
                "id": plan.snap.id,
                "label": plan.snap.label,
                "obs_date": plan.snap.obs_date,
                "content_hash": plan.snap.content_hash,
            }
        buf += ("]," + json.dumps(tail, ensure_ascii=False)[1:]).encode("utf-8")
        yield bytes(buf)

    headers = {"Content-Crs": f"<{plan.out.uri}>"}
    if plan.snap is not None:
        headers["X-Snapshot"] = str(plan.snap.id)
    return StreamingResponse(body(), media_type=GEOJSON, headers=headers)


@router.get("/collections/{collectionId}/items/{featureId}", summary="单个要素")
async def item(
    request: Request,
    collectionId: str = Path(..., max_length=64),
    featureId: str = Path(..., max_length=32),
    crs: str | None = Query(None),
    snapshot: str | None = Query(None),
    f: str | None = Query(None),
    scope: Scope = Depends(get_scope),
) -> Response:
    """一个要素 (编号为快照内的 fid)。"""
    _check_f(f)
    try:
        fid = int(featureId)
    except ValueError:
        raise NotFoundError(
            f"要素编号应为整数: {featureId}", key="feature_not_found", feature=featureId
        ) from None
    text, plan = await get_rt(request).run(
        lambda st: fsvc.get_feature(st, scope, collectionId, fid, snapshot=snapshot, crs=crs)
    )
    b = _base(request)
    feature = json.loads(text)
    feature["links"] = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON},
        {
            "href": f"{b}/ogc/collections/{collectionId}",
            "rel": "collection",
            "type": "application/json",
        },
    ]
    return Response(
        json.dumps(feature, ensure_ascii=False),
        media_type=GEOJSON,
        headers={"Content-Crs": f"<{plan.out.uri}>"},
    )
