"""Layers and features as a user may see them: catalogue, feature queries, export, diff.

Every function takes a :class:`~yizhangtu.services.auth.Scope`. Filters (CQL2, bbox,
jurisdiction, keyset) are compiled to SQL and run by the store; on GeoPackage a spatial
predicate selects R-tree candidates that are refined here. Output coordinates follow OGC API
Features Part 2: CRS84 (lon, lat) by default, EPSG axis order when an EPSG CRS is asked for.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from yizhangtu.errors import InputError, NotFoundError
from yizhangtu.services import cql2
from yizhangtu.services.auth import Scope
from yizhangtu.store import LayerInfo, SnapshotInfo, Store

__all__ = [
    "CRS84",
    "EXPORT_FORMATS",
    "CrsSpec",
    "FeaturePlan",
    "catalogue",
    "count_matched",
    "crs_uri",
    "diff_features",
    "export_features",
    "feature_extent",
    "features_json",
    "fetch_json_page",
    "fetch_page",
    "from_request",
    "get_feature",
    "iter_pages",
    "json_ready",
    "parse_bbox",
    "parse_crs",
    "plan_features",
    "queryables",
    "resolve_datetime",
    "scoped_frame",
    "supported_crs",
    "to_output",
    "visible_layer",
    "visible_layers",
]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: EPSG codes served besides CRS84: WGS84, CGCS2000, Web Mercator, CGCS2000 Gauss–Krüger zones.
_SUPPORTED_EPSG = (4326, 4490, 3857, *range(4491, 4555))


def crs_uri(crs: str | CRS | None) -> str:
    """OGC URI of a CRS (CRS84 for OGC:CRS84, the EPSG URI otherwise)."""
    if crs is None:
        return CRS84
    c = CRS.from_user_input(crs)
    if c.to_string() in ("OGC:CRS84",) or c.name == "WGS 84 (CRS84)":
        return CRS84
    epsg = c.to_epsg()
    return _EPSG_URI.format(epsg) if epsg else CRS84


def supported_crs(storage: str | None = None) -> list[str]:
    """CRS URIs a client may ask for (``crs``, ``bbox-crs``, ``filter-crs``)."""
    out = [CRS84, *(_EPSG_URI.format(c) for c in _SUPPORTED_EPSG)]
    if storage:
        u = crs_uri(storage)
        if u not in out:
            out.append(u)
    return out


@dataclass(frozen=True)
class CrsSpec:
    """A requested CRS: its URI, the pyproj CRS, and whether its first axis points north."""

    uri: str
    crs: CRS
    lat_first: bool


_CRS_CACHE: dict[str, CrsSpec] = {}
_CRS_LOCK = threading.Lock()


def parse_crs(text: str | None, *, param: str = "crs", storage: str | None = None) -> CrsSpec:
    """Parse a ``crs``-style parameter (URI, ``EPSG:n``, ``[EPSG:n]``, URN); CRS84 by default."""
    raw = (text or "").strip() or CRS84
    with _CRS_LOCK:
        if raw in _CRS_CACHE:
            return _CRS_CACHE[raw]
    t = raw.strip("[]<>")
    epsg: int | None = None
    if t in (
        CRS84,
        "OGC:CRS84",
        "CRS84",
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "http://www.opengis.net/def/crs/OGC/0/CRS84",
    ):
        spec = CrsSpec(CRS84, CRS.from_user_input("OGC:CRS84"), False)
    else:
        m = re.fullmatch(
            r"(?:https?://www\.opengis\.net/def/crs/EPSG/0/|EPSG:|urn:ogc:def:crs:EPSG:[\d.]*:)(\d+)",
            t,
            re.IGNORECASE,
        )
        if m:
            epsg = int(m.group(1))
        allowed = set(_SUPPORTED_EPSG)
        if storage:
            se = CRS.from_user_input(storage).to_epsg()
            if se:
                allowed.add(se)
        if epsg is None or epsg not in allowed:
            raise InputError(
                f"不支持的坐标系参数 {param}={raw}",
                key="unsupported_crs",
                field=param,
                hint=(
                    "可用: CRS84 (默认, 经度在前), EPSG:4326, EPSG:4490 (CGCS2000), EPSG:3857, "
                    "EPSG:4491–4554 (CGCS2000 高斯-克吕格); 写作 "
                    "http://www.opengis.net/def/crs/EPSG/0/4490"
                ),
            )
        c = CRS.from_epsg(epsg)
        first = c.axis_info[0].direction.lower() if c.axis_info else "east"
        spec = CrsSpec(_EPSG_URI.format(epsg), c, first in ("north", "south"))
    with _CRS_LOCK:
        _CRS_CACHE[raw] = spec
    return spec


_TRANSFORMERS: dict[tuple[str, str], Transformer | None] = {}


def _transformer(src: CRS, dst: CRS) -> Transformer | None:
    """always_xy transformer, or None when the two CRS are the same up to axis order."""
    key = (src.to_wkt(), dst.to_wkt())
    with _CRS_LOCK:
        if key in _TRANSFORMERS:
            return _TRANSFORMERS[key]
    if src.equals(dst, ignore_axis_order=True):
        tr = None
    else:
        tr = Transformer.from_crs(src, dst, always_xy=True)
        # WGS84 ↔ CGCS2000 is a null "ballpark" operation in PROJ: skip the arithmetic
        if src.is_geographic and dst.is_geographic and "ballpark" in (tr.description or "").lower():
            tr = None
    with _CRS_LOCK:
        _TRANSFORMERS[key] = tr
    return tr


def _apply(
    geoms: np.ndarray, tr: Transformer | None, swap_out: bool = False, swap_in: bool = False
) -> np.ndarray:
    if tr is None and not swap_out and not swap_in:
        return geoms

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = (c[:, 1], c[:, 0]) if swap_in else (c[:, 0], c[:, 1])
        if tr is not None:
            x, y = tr.transform(x, y)
        return np.column_stack([y, x] if swap_out else [x, y])

    return shapely.transform(geoms, fn)


_BY_NAME: dict[tuple[str, str, str], Transformer | None] = {}


def _named_transformer(src: str, dst_uri: str, dst: CRS, direction: str) -> Transformer | None:
    key = (src, dst_uri, direction)
    with _CRS_LOCK:
        if key in _BY_NAME:
            return _BY_NAME[key]
    a = CRS.from_user_input(src)
    tr = _transformer(a, dst) if direction == "out" else _transformer(dst, a)
    with _CRS_LOCK:
        _BY_NAME[key] = tr
    return tr


def to_output(
    geoms: Sequence[Any] | np.ndarray, storage_crs: str | None, out: CrsSpec
) -> np.ndarray:
    """Geometries from the storage CRS into the requested CRS and axis order."""
    g = np.asarray(geoms, dtype=object)
    return _apply(
        g,
        _named_transformer(storage_crs or "EPSG:4490", out.uri, out.crs, "out"),
        swap_out=out.lat_first,
    )


def from_request(
    geoms: Sequence[Any] | np.ndarray, spec: CrsSpec, storage_crs: str | None
) -> np.ndarray:
    """Geometries given in a request CRS (axis order of that CRS) into the storage CRS."""
    g = np.asarray(geoms, dtype=object)
    tr = _named_transformer(storage_crs or "EPSG:4490", spec.uri, spec.crs, "in")
    if tr is not None:
        g = shapely.segmentize(g, 0.01 if spec.crs.is_geographic else 1000.0)
    return _apply(g, tr, swap_in=spec.lat_first)


# --------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------


def visible_layers(store: Store, scope: Scope) -> list[LayerInfo]:
    """Layers the scope may see, by name."""
    return [
        li for li in store.layers() if scope.layer_visible(li) and li.current_snapshot is not None
    ]


def visible_layer(store: Store, scope: Scope, name: str) -> LayerInfo:
    """One layer if the scope may see it; NotFoundError (404) otherwise, without telling which."""
    try:
        info = store.layer(name)
    except NotFoundError:
        info = None
    if info is None or not scope.layer_visible(info):
        raise NotFoundError(
            f"图层不存在或未公开: {name}",
            key="layer_not_found",
            field="layer",
            hint="查看 /api/layers 或 /ogc/collections 中的图层",
        )
    return info


_EXTENTS: OrderedDict[tuple[Any, ...], tuple[float, float, float, float] | None] = OrderedDict()
_EXTENT_LOCK = threading.Lock()


def feature_extent(
    store: Store, scope: Scope, info: LayerInfo, snap: SnapshotInfo
) -> tuple[float, float, float, float] | None:
    """CRS84 bounding box of a snapshot as the scope sees it (cached by content hash)."""
    prefixes = scope.layer_prefixes(info)
    key = (store.uri, snap.content_hash, snap.id, prefixes)
    with _EXTENT_LOCK:
        if key in _EXTENTS:
            return _EXTENTS[key]
    ext = store.feature_extent(info.name, snapshot=snap.id, jurisdictions=prefixes)
    if ext is not None:
        src = CRS.from_user_input(snap.crs or "EPSG:4490")
        tr = _transformer(src, CRS.from_user_input("OGC:CRS84"))
        if tr is not None:
            ext = tuple(tr.transform_bounds(*ext, densify_pts=8))  # type: ignore[assignment]
        ext = tuple(round(float(v), 7) for v in ext)  # type: ignore[assignment]
    with _EXTENT_LOCK:
        _EXTENTS[key] = ext
        while len(_EXTENTS) > 2048:
            _EXTENTS.popitem(last=False)
    return ext


def catalogue(store: Store, scope: Scope) -> dict[str, Any]:
    """Return the layer catalogue (``layers --json`` shape) restricted to the scope.

    Feature counts of layers filtered by jurisdiction are counted inside the jurisdiction.
    """
    from yizhangtu.services.layers import layer_summary

    summary = layer_summary(store)
    infos = {li.name: li for li in visible_layers(store, scope)}
    out = []
    for entry in summary["layers"]:
        info = infos.get(entry["name"])
        if info is None:
            continue
        prefixes = scope.layer_prefixes(info)
        entry = dict(entry)
        entry["jurisdiction_field"] = info.jurisdiction_field
        entry["description"] = info.description
        entry["filtered_by_jurisdiction"] = prefixes is not None
        if prefixes is not None:
            entry["feature_count"] = store.count_features(info.name, jurisdictions=prefixes)[0]
            for s in entry["snapshots"]:
                s["feature_count"] = store.count_features(
                    info.name, snapshot=s["id"], jurisdictions=prefixes
                )[0]
        out.append(entry)
    return {"backend": store.backend, "layers": out}


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


def parse_bbox(
    text: str | Sequence[float] | None, spec: CrsSpec | None = None
) -> tuple[float, float, float, float] | None:
    """Parse ``bbox`` (4 or 6 numbers in ``spec``'s axis order) to (minx, miny, maxx, maxy).

    400 for malformed or out-of-range values.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        vals = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise InputError(
            f"bbox 格式有误: {text}",
            key="bad_bbox",
            field="bbox",
            hint="应为 4 个数字: 最小经度,最小纬度,最大经度,最大纬度",
        ) from None
    if len(vals) == 6:
        vals = [vals[0], vals[1], vals[3], vals[4]]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise InputError(
            f"bbox 应为 4 个 (或 6 个) 有限数字: {text}",
            key="bad_bbox",
            field="bbox",
            hint="如 bbox=116.40,39.90,116.50,40.00",
        )
    spec = spec or parse_crs(None)
    if spec.lat_first:
        vals = [vals[1], vals[0], vals[3], vals[2]]
    minx, miny, maxx, maxy = vals
    if spec.crs.is_geographic:
        if not (
            -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
        ):
            raise InputError(
                f"bbox 超出经纬度范围: {text}",
                key="bbox_out_of_range",
                field="bbox",
                hint="经度 −180…180, 纬度 −90…90; 注意 EPSG:4326 的轴序为纬度在前",
            )
        if minx > maxx:
            raise InputError(
                f"bbox 跨越 180° 经线或最小经度大于最大经度: {text}",
                key="bbox_out_of_range",
                field="bbox",
                hint="请拆成两个查询",
            )
    if minx > maxx or miny > maxy:
        raise InputError(f"bbox 的最小值大于最大值: {text}", key="bbox_out_of_range", field="bbox")
    return (minx, miny, maxx, maxy)


_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[Tt ][0-9:.]+(?:[Zz]|[+-]\d{2}:?\d{2})?)?$")


def _date_part(text: str, whole: str) -> str | None:
    t = text.strip()
    if t in ("", ".."):
        return None
    m = _DATE.match(t)
    if not m:
        raise InputError(
            f"datetime 格式有误: {whole}",
            key="bad_datetime",
            field="datetime",
            hint="如 2020-12-31、2020-12-31T00:00:00Z 或区间 2020-01-01/2021-12-31 (开放端用 ..)",
        )
    try:
        date.fromisoformat(m.group(1))
    except ValueError:
        raise InputError(
            f"datetime 不是有效日期: {whole}", key="bad_datetime", field="datetime"
        ) from None
    return m.group(1)


def resolve_datetime(store: Store, layer: str, value: str | None) -> SnapshotInfo | None:
    """Return the snapshot a ``datetime`` selects by observation date.

    An instant or the end of an interval selects the latest snapshot observed on or before
    it (the layer as it stood then); an open end selects the current snapshot. None when no
    snapshot existed yet.
    """
    if value is None or not value.strip():
        return store.resolve_snapshot(layer)
    parts = value.split("/")
    if len(parts) > 2:
        raise InputError(f"datetime 格式有误: {value}", key="bad_datetime", field="datetime")
    start = _date_part(parts[0], value) if len(parts) == 2 else None
    end = _date_part(parts[-1], value)
    if start and end and start > end:
        raise InputError(
            f"datetime 区间起点晚于终点: {value}", key="bad_datetime", field="datetime"
        )
    if len(parts) == 2 and end is None:
        return store.resolve_snapshot(layer)
    try:
        return store.resolve_snapshot(layer, as_of=end)
    except NotFoundError:
        return None


# --------------------------------------------------------------------------------------
# Feature queries
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeaturePlan:
    """A checked, compiled feature query; ``snap`` None means nothing can match."""

    info: LayerInfo
    snap: SnapshotInfo | None
    out: CrsSpec
    where_sql: str | None
    params: tuple[Any, ...]
    exact: bool
    refine: Any
    jurisdictions: tuple[str, ...] | None
    schema: tuple[tuple[str, str], ...]


def plan_features(
    store: Store,
    scope: Scope,
    layer: str,
    *,
    snapshot: str | None = None,
    datetime_: str | None = None,
    bbox: str | Sequence[float] | None = None,
    bbox_crs: str | None = None,
    filter_: str | None = None,
    filter_lang: str | None = None,
    filter_crs: str | None = None,
    crs: str | None = None,
) -> FeaturePlan:
    """Check every parameter and compile the query (raises 400/404 before any output)."""
    info = visible_layer(store, scope, layer)
    if snapshot is not None and datetime_ is not None:
        raise InputError(
            "snapshot 与 datetime 只能指定一个", key="snapshot_and_datetime", field="datetime"
        )
    snap = (
        store.resolve_snapshot(layer, snapshot)
        if snapshot is not None
        else resolve_datetime(store, layer, datetime_)
    )
    storage = (snap.crs if snap else info.crs) or "EPSG:4490"
    out = parse_crs(crs, storage=storage)
    node: Any = None
    if bbox is not None and (not isinstance(bbox, str) or bbox.strip()):
        bspec = parse_crs(bbox_crs, param="bbox-crs", storage=storage)
        b = parse_bbox(bbox, bspec)
        assert b is not None
        box = shapely.box(*b)
        node = cql2.Spatial("intersects", from_request([box], cql2_spec(bspec), storage)[0])
    if filter_ is not None and filter_.strip():
        lang = (filter_lang or "cql2-text").strip().lower()
        if lang != "cql2-text":
            raise InputError(
                f"不支持的筛选语言 filter-lang={filter_lang}",
                key="bad_filter_lang",
                field="filter-lang",
                hint="只支持 cql2-text",
            )
        fspec = parse_crs(filter_crs, param="filter-crs", storage=storage)
        parsed = cql2.parse(filter_)
        parsed = cql2.map_geometries(parsed, lambda g: from_request([g], fspec, storage)[0])
        node = parsed if node is None else cql2.And((node, parsed))
    schema = tuple(store.feature_schema(layer, snapshot=snap.id)) if snap else ()
    where_sql, params, exact = None, (), True
    if node is not None and snap is not None:
        s = snap

        def spatial_sql(geom: Any, op: str) -> tuple[str, list[Any], bool]:
            return store.spatial_filter_sql(
                s, shapely.to_wkb(geom), tuple(shapely.bounds(geom)), op
            )

        compiled = cql2.compile_sql(
            node,
            schema=dict(schema),
            ph=store.ph,
            dialect=store.sql_dialect,
            spatial_sql=spatial_sql,
        )
        where_sql, params, exact = compiled.sql, compiled.params, compiled.exact
    elif node is not None:
        # no snapshot: still type-check the filter against the newest snapshot's schema
        latest = store.resolve_snapshot(layer)
        cql2.compile_sql(
            node,
            schema=dict(store.feature_schema(layer, snapshot=latest.id)),
            ph=store.ph,
            dialect=store.sql_dialect,
            spatial_sql=lambda g, op: ("1 = 1", [], True),
        )
    return FeaturePlan(
        info,
        snap,
        out,
        where_sql,
        tuple(params),
        exact,
        None if exact else node,
        scope.layer_prefixes(info),
        schema,
    )


def cql2_spec(spec: CrsSpec) -> CrsSpec:
    """Bbox values were already put lon/lat-first by :func:`parse_bbox`."""
    return CrsSpec(spec.uri, spec.crs, False)


@dataclass
class _Page:
    fids: list[int]
    rows: list[tuple[Any, ...]]
    geoms: np.ndarray  # output CRS
    columns: list[str]
    kinds: list[str]
    next: int | None


def _fetch(store: Store, plan: FeaturePlan, *, after: int | None, limit: int) -> _Page:
    """Fetch up to ``limit`` matching rows after ``after``, refining R-tree candidates if needed."""
    fids: list[int] = []
    rows: list[tuple[Any, ...]] = []
    geoms: list[np.ndarray] = []
    columns: list[str] = [n for n, _ in plan.schema]
    kinds: list[str] = [k for _, k in plan.schema]
    if plan.snap is None or limit <= 0:
        return _Page([], [], np.empty(0, dtype=object), columns, kinds, None)
    cursor = after
    more = False
    while len(fids) < limit:
        need = limit - len(fids)
        batch = need + 1 if plan.exact else max(need + 1, 1000)
        fr = store.query_feature_rows(
            plan.info.name,
            snapshot=plan.snap.id,
            where_sql=plan.where_sql,
            params=plan.params,
            after_fid=cursor,
            limit=batch,
            jurisdictions=plan.jurisdictions,
        )
        columns, kinds = fr.columns, fr.kinds
        f_fids, f_rows, f_geoms = fr.fids, fr.rows, np.asarray(fr.geometries, dtype=object)
        if not plan.exact and len(fr):
            keep = cql2.evaluate(plan.refine, fr.to_frame(), f_geoms)
            idx = np.nonzero(keep)[0]
            f_fids = [f_fids[i] for i in idx]
            f_rows = [f_rows[i] for i in idx]
            f_geoms = f_geoms[idx]
        if len(f_fids) > need:
            fids += f_fids[:need]
            rows += f_rows[:need]
            geoms.append(f_geoms[:need])
            more = True
            break
        fids += f_fids
        rows += f_rows
        geoms.append(f_geoms)
        if fr.next_fid is None:
            break
        cursor = fr.next_fid
        if len(fids) == limit:  # the batch ended exactly: what follows ``cursor`` is unknown
            more = True
    g = np.concatenate(geoms) if geoms else np.empty(0, dtype=object)
    if len(g):
        g = to_output(g, plan.snap.crs, plan.out)
    nxt = None
    if more:
        nxt = fids[-1] if fids else None
        if not plan.exact and cursor is not None and (nxt is None or cursor > nxt):
            nxt = int(cursor)
    return _Page(fids, rows, g, columns, kinds, nxt)


def fetch_page(
    store: Store, plan: FeaturePlan, *, after: int | None, limit: int
) -> tuple[gpd.GeoDataFrame, int | None]:
    """Fetch up to ``limit`` matching features after fid ``after`` (output CRS), and the cursor."""
    from yizhangtu.store.base import FeatureRows

    page = _fetch(store, plan, after=after, limit=limit)
    snap = plan.snap
    if snap is None:
        return gpd.GeoDataFrame(
            {"geometry": gpd.GeoSeries([], crs=None)}, geometry="geometry"
        ), None
    fr = FeatureRows(snap, page.columns, page.kinds, page.fids, page.rows, page.geoms, page.next)
    gdf = fr.to_frame()
    return gdf.set_crs(None, allow_override=True) if gdf.crs is not None else gdf, page.next


def fetch_json_page(
    store: Store, plan: FeaturePlan, *, after: int | None, limit: int
) -> tuple[list[str], int | None]:
    """Like :func:`fetch_page`, but straight to GeoJSON Feature strings (no data frames)."""
    page = _fetch(store, plan, after=after, limit=limit)
    return _features_json(page.fids, page.rows, page.geoms, page.columns, page.kinds), page.next


def _prop(v: Any, kind: str) -> Any:
    if v is None:
        return None
    if kind == "float":
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if kind == "int":
        return int(v)
    if kind == "bool":
        return bool(v)
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (bytes, memoryview)):
        return None
    return v


def _features_json(
    fids: Sequence[int],
    rows: Sequence[tuple[Any, ...]],
    geoms: np.ndarray,
    columns: Sequence[str],
    kinds: Sequence[str],
) -> list[str]:
    if not len(fids):
        return []
    gj = shapely.to_geojson(np.asarray(geoms, dtype=object))
    ck = list(zip(columns, kinds, strict=True))
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    out = []
    for fid, row, g in zip(fids, rows, gj, strict=True):
        props = {c: _prop(v, k) for (c, k), v in zip(ck, row, strict=True)}
        out.append(
            f'{{"type":"Feature","id":{int(fid)},"geometry":{g if g is not None else "null"},'
            f'"properties":{dumps(props)}}}'
        )
    return out


def iter_pages(
    store: Store, plan: FeaturePlan, *, after: int | None, limit: int, chunk: int = 1000
) -> Iterator[tuple[gpd.GeoDataFrame, int | None]]:
    """``fetch_page`` in chunks (for streaming); the last item carries the next cursor."""
    left = limit
    cursor = after
    while left > 0:
        gdf, nxt = fetch_page(store, plan, after=cursor, limit=min(chunk, left))
        left -= len(gdf)
        if nxt is None or left <= 0:
            yield gdf, nxt
            return
        yield gdf, None
        cursor = nxt


def count_matched(
    store: Store, plan: FeaturePlan, *, estimate_above: int
) -> tuple[int | None, bool]:
    """numberMatched: exact when cheap, a planner estimate on large PostGIS layers, else unknown."""
    if plan.snap is None:
        return 0, True
    if plan.exact:
        return store.count_features(
            plan.info.name,
            snapshot=plan.snap.id,
            where_sql=plan.where_sql,
            params=plan.params,
            jurisdictions=plan.jurisdictions,
            estimate_above=estimate_above,
        )
    if plan.snap.feature_count > estimate_above:
        return None, False
    n = 0
    cursor = None
    while True:
        gdf, nxt = store.query_features(
            plan.info.name,
            snapshot=plan.snap.id,
            where_sql=plan.where_sql,
            params=plan.params,
            after_fid=cursor,
            limit=10_000,
            jurisdictions=plan.jurisdictions,
            columns=sorted(cql2.properties(plan.refine)),
        )
        if len(gdf):
            n += int(cql2.evaluate(plan.refine, gdf, gdf.geometry.values).sum())
        if nxt is None:
            return n, True
        cursor = nxt


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, (pd.Timestamp, datetime, date)):
        return None if pd.isna(v) else v.isoformat()
    if isinstance(v, np.generic):
        return _json_value(v.item())
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def features_json(gdf: gpd.GeoDataFrame) -> list[str]:
    """One GeoJSON Feature string per row (id = fid)."""
    if not len(gdf):
        return []
    geoms = shapely.to_geojson(np.asarray(gdf.geometry.values, dtype=object))
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    values = [[_json_value(v) for v in gdf[c].astype(object).tolist()] for c in cols]
    ids = gdf.index.tolist()
    out = []
    for i, fid in enumerate(ids):
        props = {c: values[j][i] for j, c in enumerate(cols)}
        g = geoms[i] if geoms[i] is not None else "null"
        out.append(
            f'{{"type":"Feature","id":{int(fid)},"geometry":{g},'
            f'"properties":{json.dumps(props, ensure_ascii=False, allow_nan=False)}}}'
        )
    return out


def get_feature(
    store: Store,
    scope: Scope,
    layer: str,
    fid: int,
    *,
    snapshot: str | None = None,
    crs: str | None = None,
) -> tuple[str, FeaturePlan]:
    """One feature as GeoJSON text; 404 if absent or outside the jurisdiction."""
    plan = plan_features(store, scope, layer, snapshot=snapshot, crs=crs)
    assert plan.snap is not None
    ph = store.ph
    fr = store.query_feature_rows(
        layer,
        snapshot=plan.snap.id,
        where_sql=f'"fid" = {ph}',
        params=[int(fid)],
        limit=1,
        jurisdictions=plan.jurisdictions,
    )
    if not len(fr):
        raise NotFoundError(
            f"图层 {layer} 中没有要素 {fid}", key="feature_not_found", feature=str(fid)
        )
    geoms = to_output(np.asarray(fr.geometries, dtype=object), plan.snap.crs, plan.out)
    return _features_json(fr.fids, fr.rows, geoms, fr.columns, fr.kinds)[0], plan


_JSON_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "datetime": "string",
}


def queryables(store: Store, scope: Scope, layer: str, *, self_url: str) -> dict[str, Any]:
    """JSON Schema of a collection's queryables (OGC API Features Part 3)."""
    info = visible_layer(store, scope, layer)
    schema = store.feature_schema(layer)
    gt = (info.geometry_type or "").lower().replace("multi", "")
    props: dict[str, Any] = {
        "geometry": {
            "title": "几何",
            "format": f"geometry-{gt}"
            if gt in ("point", "linestring", "polygon")
            else "geometry-any",
            "x-ogc-role": "primary-geometry",
        },
    }
    for name, kind in schema:
        p: dict[str, Any] = {
            "title": info.field_mapping.get(name, name)
            if isinstance(info.field_mapping, dict)
            else name,
            "type": _JSON_TYPES.get(kind, "string"),
        }
        if kind == "datetime":
            p["format"] = "date-time"
        props[name] = p
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": self_url,
        "type": "object",
        "title": info.title or info.name,
        "properties": props,
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------------------
# Whole frames: export and diff
# --------------------------------------------------------------------------------------


def scoped_frame(
    store: Store, scope: Scope, layer: str, *, snapshot: str | int | None = None
) -> gpd.GeoDataFrame:
    """Return a whole snapshot (storage CRS) as the scope sees it."""
    info = visible_layer(store, scope, layer)
    prefixes = scope.layer_prefixes(info)
    if prefixes is None:
        return store.read_layer(layer, snapshot=snapshot)
    gdf, _ = store.query_features(layer, snapshot=snapshot, jurisdictions=prefixes)
    return gdf.reset_index(drop=True)


EXPORT_FORMATS = {
    "gpkg": ".gpkg",
    "geojson": ".geojson",
    "csv": ".csv",
    "shp": ".zip",
    "parquet": ".parquet",
}


def export_features(
    store: Store,
    scope: Scope,
    layer: str,
    out_dir: str | Path,
    *,
    fmt: str,
    snapshot: str | None = None,
) -> Path:
    """Write a snapshot as the scope sees it to a file in ``out_dir``; returns its path.

    Unfiltered exports go through :func:`yizhangtu.services.layers.export_layer`;
    jurisdiction-filtered ones are written the same way from the filtered frame.
    Shapefiles come back zipped.
    """
    import zipfile

    from yizhangtu.services.layers import export_layer

    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise InputError(
            f"不支持的导出格式: {fmt}",
            key="bad_format",
            field="format",
            hint="可选: " + ", ".join(EXPORT_FORMATS),
        )
    info = visible_layer(store, scope, layer)
    snap = store.resolve_snapshot(layer, snapshot)
    out_dir = Path(out_dir)
    stem = f"{layer}_{snap.label}".replace("/", "_")
    target = out_dir / (stem + (".shp" if fmt == "shp" else EXPORT_FORMATS[fmt]))
    prefixes = scope.layer_prefixes(info)
    if prefixes is None:
        export_layer(store, layer, target, fmt=fmt, snapshot=str(snap.id))
    else:
        _write_frame(scoped_frame(store, scope, layer, snapshot=snap.id), target, fmt, layer)
    if fmt == "shp":
        zpath = out_dir / f"{stem}.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out_dir.glob(f"{stem}.*")):
                if f != zpath:
                    zf.write(f, f.name)
        return zpath
    return target


def _write_frame(gdf: gpd.GeoDataFrame, out: Path, fmt: str, layer: str) -> None:
    import pyogrio

    if fmt == "gpkg":
        pyogrio.write_dataframe(gdf, out, layer=layer, driver="GPKG")
    elif fmt == "geojson":
        pyogrio.write_dataframe(
            gdf.to_crs("OGC:CRS84") if gdf.crs is not None else gdf,
            out,
            driver="GeoJSON",
            layer_options={"RFC7946": "YES"},
        )
    elif fmt == "shp":
        long = [c for c in gdf.columns if c != gdf.geometry.name and len(c.encode("utf-8")) > 10]
        if long:
            raise InputError(
                f"Shapefile 字段名最长 10 字节, 以下字段过长: {', '.join(long)}",
                key="shp_field_name",
                field=long[0],
                hint="改用 gpkg 格式",
            )
        pyogrio.write_dataframe(gdf, out, driver="ESRI Shapefile", encoding="GBK")
        out.with_suffix(".cpg").write_text("GBK", encoding="ascii")
    elif fmt == "parquet":
        gdf.to_parquet(out)
    else:
        df = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]))
        df["wkt"] = gdf.geometry.to_wkt()
        df.to_csv(out, index=False, encoding="utf-8-sig")


def diff_features(
    store: Store,
    scope: Scope,
    layer: str,
    from_ref: str,
    to_ref: str,
    *,
    unit: str = "m2",
    max_features: int | None = None,
) -> tuple[dict[str, Any], gpd.GeoDataFrame]:
    """Diff two snapshots as the scope sees them (``services.layers.diff_layer`` if unfiltered)."""
    from yizhangtu.diff import diff_frames
    from yizhangtu.geo.area import convert_area, ellipsoidal_area
    from yizhangtu.services.layers import diff_layer

    info = visible_layer(store, scope, layer)
    a = store.resolve_snapshot(layer, from_ref)
    b = store.resolve_snapshot(layer, to_ref)
    if max_features is not None and a.feature_count + b.feature_count > max_features:
        raise InputError(
            f"两个快照共 {a.feature_count + b.feature_count} 个要素, "
            f"超过即时比较上限 {max_features}",
            key="diff_too_large",
            hint="请用后台任务: POST /api/jobs/diff-report",
        )
    if scope.layer_prefixes(info) is None:
        return diff_layer(store, layer, str(a.id), str(b.id), unit=unit)
    old = scoped_frame(store, scope, layer, snapshot=a.id)
    new = scoped_frame(store, scope, layer, snapshot=b.id)
    id_field = info.id_field or next(
        (c for c in ("BSM", "bsm", "id", "code") if c in old.columns and c in new.columns), None
    )
    res = diff_frames(old, new, id_field=id_field)
    summary = res.summary(unit) | {
        "layer": layer,
        "from": {"id": a.id, "label": a.label, "content_hash": a.content_hash},
        "to": {"id": b.id, "label": b.label, "content_hash": b.content_hash},
        "jurisdiction": scope.jurisdiction,
    }
    summary["total_area_from"] = (
        float(convert_area(ellipsoidal_area(old.geometry).sum(), unit)) if len(old) else 0.0
    )
    summary["total_area_to"] = (
        float(convert_area(ellipsoidal_area(new.geometry).sum(), unit)) if len(new) else 0.0
    )
    return summary, res.features


def json_ready(obj: Any) -> Any:
    """Make numpy/pandas values JSON-serialisable (recursively)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return _json_value(obj)
