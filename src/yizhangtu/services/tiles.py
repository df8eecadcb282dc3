"""Vector tiles (Mapbox Vector Tile 2.1, WebMercatorQuad) for every layer and snapshot.

PostGIS renders tiles itself (``ST_AsMVT``); for GeoPackage this module clips, simplifies,
quantises and encodes with numpy (``mapbox_vector_tile.encode`` spends ~250 µs per polygon,
too slow for a z12 tile of a survey). Tiles are cached in memory under the snapshot's
content hash, so a new snapshot is never served from an old tile.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from yizhangtu.errors import InputError
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store

__all__ = [
    "MAX_ZOOM",
    "TileCache",
    "TileResult",
    "encode_from_rows",
    "encode_mvt",
    "render_tile",
    "simplify_tolerance",
    "tile_bounds",
    "validate_tile",
]

#: Highest zoom served (WebMercatorQuad).
MAX_ZOOM = 24
_HALF = 20037508.342789244  # half the Web Mercator world width (m)
_EXTENT = 4096
_BUFFER = 64


def validate_tile(z: int, x: int, y: int, *, max_zoom: int = MAX_ZOOM) -> None:
    """400 unless 0 ≤ z ≤ max_zoom and 0 ≤ x, y < 2^z."""
    if not 0 <= z <= max_zoom:
        raise InputError(
            f"瓦片级别 z={z} 超出范围 (0–{max_zoom})",
            key="tile_out_of_range",
            field="z",
            hint="WebMercatorQuad 瓦片: 0 ≤ z ≤ 24",
        )
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise InputError(
            f"瓦片坐标 x={x}, y={y} 超出第 {z} 级的范围 (0–{n - 1})",
            key="tile_out_of_range",
            field="x,y",
            hint="x 与 y 应在 0 到 2^z-1 之间",
        )


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds (EPSG:3857) of a tile."""
    span = 2 * _HALF / (1 << z)
    minx = -_HALF + x * span
    maxy = _HALF - y * span
    return (minx, maxy - span, minx + span, maxy)


def simplify_tolerance(z: int, *, pixels: float = 1.0, tile_px: int = 512) -> float:
    """Simplification tolerance (m) at zoom ``z``: ``pixels`` screen pixels of a tile."""
    return (2 * _HALF / (1 << z)) / tile_px * pixels


_TRANSFORMERS: dict[tuple[str, str], Transformer] = {}
_TR_LOCK = threading.Lock()


def _transformer(src: str, dst: str) -> Transformer:
    key = (src, dst)
    with _TR_LOCK:
        tr = _TRANSFORMERS.get(key)
        if tr is None:
            tr = Transformer.from_crs(
                CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True
            )
            _TRANSFORMERS[key] = tr
    return tr


def _storage_bbox(
    bounds3857: tuple[float, float, float, float], crs: str
) -> tuple[float, float, float, float]:
    tr = _transformer("EPSG:3857", crs)
    minx, miny, maxx, maxy = tr.transform_bounds(*bounds3857, densify_pts=8)
    return (minx, miny, maxx, maxy)


# --------------------------------------------------------------------------------------
# MVT encoding
# --------------------------------------------------------------------------------------


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varint bytes of non-negative ints, and each value's byte count."""
    v = np.asarray(values, dtype=np.uint64)
    nb = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        nb += v >= np.uint64(1 << (7 * k))
    offsets = np.concatenate([[0], np.cumsum(nb)[:-1]])
    out = np.zeros(int(nb.sum()), dtype=np.uint8)
    for b in range(int(nb.max()) if len(nb) else 0):
        m = nb > b
        byte = (v[m] >> np.uint64(7 * b)) & np.uint64(0x7F)
        cont = (nb[m] > b + 1).astype(np.uint64) << np.uint64(7)
        out[offsets[m] + b] = (byte | cont).astype(np.uint8)
    return out, nb


_SMALL = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    if 0 <= n < 16384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _value_bytes(v: Any) -> bytes:
    if isinstance(v, (bool, np.bool_)):
        return b"\x38" + _varint(int(bool(v)))
    if isinstance(v, (int, np.integer)):
        iv = int(v)
        if iv >= 0:
            return b"\x28" + _varint(iv)
        return b"\x30" + _varint((iv << 1) ^ (iv >> 63))
    if isinstance(v, (float, np.floating)):
        return b"\x19" + struct.pack("<d", float(v))
    if isinstance(v, (datetime, date, pd.Timestamp)):
        v = v.isoformat()
    return _field(1, str(v).encode("utf-8"))


@dataclass
class _Paths:
    """Quantised paths (rings or lines) of the features, concatenated in feature order."""

    coords: np.ndarray  # (n, 2) int64 tile coordinates
    path_of: np.ndarray  # path index per coordinate
    path_feature: np.ndarray  # feature index per path
    closed: bool


def _quantise(
    geoms: np.ndarray, bounds: tuple[float, float, float, float], extent: int
) -> np.ndarray:
    minx, _miny, maxx, maxy = bounds
    scale = extent / (maxx - minx)

    def fn(c: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [np.rint((c[:, 0] - minx) * scale), np.rint((maxy - c[:, 1]) * scale)]
        )

    return shapely.transform(geoms, fn)


def _polygon_paths(geoms: np.ndarray, feat_idx: np.ndarray) -> _Paths | None:
    parts, pf = shapely.get_parts(geoms, return_index=True)
    parts = np.asarray(parts)
    keep = shapely.get_type_id(parts) == 3
    parts, pf = parts[keep], pf[keep]
    if len(parts) == 0:
        return None
    rings, rp = shapely.get_rings(parts, return_index=True)
    coords, cr = shapely.get_coordinates(rings, return_index=True)
    if len(coords) == 0:
        return None
    coords = coords.astype(np.int64)
    n_r = len(rings)
    # drop each ring's closing point and consecutive duplicates
    last = np.r_[cr[1:] != cr[:-1], True]
    dup = np.r_[False, (cr[1:] == cr[:-1]) & np.all(coords[1:] == coords[:-1], axis=1)]
    ok = ~last & ~dup
    coords, cr = coords[ok], cr[ok]
    counts = np.bincount(cr, minlength=n_r)
    # signed area (surveyor's formula, tile coordinates: y down)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nxt = np.arange(len(coords)) + 1
    ends = start + counts - 1
    has = counts > 0
    nxt[ends[has]] = start[has]
    cross = (
        coords[:, 0] * coords[nxt % max(len(coords), 1), 1]
        - coords[nxt % max(len(coords), 1), 0] * coords[:, 1]
    )
    area = np.bincount(cr, weights=cross.astype(np.float64), minlength=n_r)
    is_ext = np.r_[True, rp[1:] != rp[:-1]]
    valid = (counts >= 3) & (area != 0)
    # a polygon whose exterior collapsed loses its holes too
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[rp[is_ext & valid]] = True
    valid &= part_ok[rp]
    flip = valid & np.where(is_ext, area < 0, area > 0)
    if flip.any():
        order = np.arange(len(coords))
        for r in np.nonzero(flip)[0]:
            s, e = start[r], start[r] + counts[r]
            order[s:e] = order[s:e][::-1]
        coords = coords[order]
    keep_c = valid[cr]
    coords, cr = coords[keep_c], cr[keep_c]
    ring_ids = np.nonzero(valid)[0]
    remap = np.full(n_r, -1)
    remap[ring_ids] = np.arange(len(ring_ids))
    return _Paths(coords, remap[cr], feat_idx[pf[rp[ring_ids]]], closed=True)


def _line_paths(geoms: np.ndarray, feat_idx: np.ndarray) -> _Paths | None:
    parts, pf = shapely.get_parts(geoms, return_index=True)
    parts = np.asarray(parts)
    keep = np.isin(shapely.get_type_id(parts), (1, 2))
    parts, pf = parts[keep], pf[keep]
    if len(parts) == 0:
        return None
    coords, cl = shapely.get_coordinates(parts, return_index=True)
    coords = coords.astype(np.int64)
    dup = np.r_[False, (cl[1:] == cl[:-1]) & np.all(coords[1:] == coords[:-1], axis=1)]
    coords, cl = coords[~dup], cl[~dup]
    counts = np.bincount(cl, minlength=len(parts))
    valid = counts >= 2
    keep_c = valid[cl]
    ids = np.nonzero(valid)[0]
    remap = np.full(len(parts), -1)
    remap[ids] = np.arange(len(ids))
    return _Paths(coords[keep_c], remap[cl[keep_c]], feat_idx[pf[ids]], closed=False)


def _path_commands(p: _Paths, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Geometry command integers of all paths, and each feature's integer count."""
    n_paths = len(p.path_feature)
    counts = np.bincount(p.path_of, minlength=n_paths)
    per_path = 2 * counts + (3 if p.closed else 2)
    pstart = np.concatenate([[0], np.cumsum(per_path)[:-1]])
    stream = np.zeros(int(per_path.sum()), dtype=np.uint64)
    stream[pstart] = 1 | (1 << 3)  # MoveTo(1)
    stream[pstart + 3] = (2 | ((counts - 1) << 3)).astype(np.uint64)  # LineTo(n-1)
    if p.closed:
        stream[pstart + per_path - 1] = 7 | (1 << 3)  # ClosePath
    # deltas; the cursor restarts at (0, 0) for each feature
    feat_of_coord = p.path_feature[p.path_of]
    prev = np.vstack([[0, 0], p.coords[:-1]])
    first_of_feature = np.r_[True, feat_of_coord[1:] != feat_of_coord[:-1]]
    prev[first_of_feature] = 0
    d = p.coords - prev
    first_in_path = np.r_[True, p.path_of[1:] != p.path_of[:-1]]
    cstart = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = np.arange(len(p.coords)) - cstart[p.path_of]
    pos = pstart[p.path_of] + np.where(first_in_path, 1, 2 + 2 * k)
    stream[pos] = _zigzag(d[:, 0])
    stream[pos + 1] = _zigzag(d[:, 1])
    per_feature = np.bincount(p.path_feature, weights=per_path, minlength=n_features).astype(
        np.int64
    )
    return stream, per_feature


def _point_commands(
    geoms: np.ndarray, feat_idx: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    coords, ci = shapely.get_coordinates(geoms, return_index=True)
    coords = coords.astype(np.int64)
    feats = feat_idx[ci]
    counts = np.bincount(feats, minlength=n_features)
    prev = np.vstack([[0, 0], coords[:-1]])
    first = np.r_[True, feats[1:] != feats[:-1]] if len(feats) else np.zeros(0, dtype=bool)
    prev[first] = 0
    d = coords - prev
    per_feature = np.where(counts > 0, 1 + 2 * counts, 0)
    fstart = np.concatenate([[0], np.cumsum(per_feature)[:-1]])
    stream = np.zeros(int(per_feature.sum()), dtype=np.uint64)
    has = counts > 0
    stream[fstart[has]] = (1 | (counts[has] << 3)).astype(np.uint64)
    cstart = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = np.arange(len(coords)) - cstart[feats]
    pos = fstart[feats] + 1 + 2 * k
    stream[pos] = _zigzag(d[:, 0])
    stream[pos + 1] = _zigzag(d[:, 1])
    return stream, per_feature


def encode_mvt(
    name: str,
    geoms: Sequence[Any] | np.ndarray,
    properties: pd.DataFrame | Mapping[str, Sequence[Any]] | None,
    ids: Sequence[int] | np.ndarray,
    bounds: tuple[float, float, float, float],
    *,
    extent: int = _EXTENT,
    buffer: int = _BUFFER,
    tolerance: float = 0.0,
) -> bytes:
    """Encode one layer of EPSG:3857 geometries as a Mapbox Vector Tile.

    Geometries are clipped to the tile plus ``buffer`` units, simplified by ``tolerance``
    metres, quantised to ``extent`` units, and polygons are given the winding order MVT
    requires. Features that vanish at this zoom are dropped.
    """
    g = np.asarray(geoms, dtype=object)
    ids = np.asarray(ids, dtype=np.int64)
    res = (bounds[2] - bounds[0]) / extent
    pad = buffer * res
    if len(g):
        g = shapely.clip_by_rect(
            g, bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad
        )
        if tolerance > 0:
            g = shapely.simplify(g, tolerance, preserve_topology=False)
        g = _quantise(g, bounds, extent)
    n = len(g)
    tid = shapely.get_type_id(g) if n else np.zeros(0, dtype=int)
    dims = np.where(
        np.isin(tid, (3, 6)),
        2,
        np.where(np.isin(tid, (1, 2, 5)), 1, np.where(np.isin(tid, (0, 4)), 0, -1)),
    )
    coll = tid == 7
    if coll.any():  # GeometryCollection from clipping: keep its highest dimension
        for i in np.nonzero(coll)[0]:
            parts = shapely.get_parts(g[i])
            if len(parts):
                pd_ = shapely.get_dimensions(parts)
                top = pd_.max()
                g[i] = (
                    shapely.union_all(parts[pd_ == top])
                    if top == 2
                    else shapely.multilinestrings(parts[pd_ == top])
                    if top == 1
                    else shapely.multipoints(parts[pd_ == top])
                )
                dims[i] = top
    gtype = np.zeros(n, dtype=np.int64)
    per_feature_total = np.zeros(n, dtype=np.int64)
    feature_streams: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for dim, builder, mvt_type in ((2, _polygon_paths, 3), (1, _line_paths, 2)):
        idx = np.nonzero(dims == dim)[0]
        if len(idx):
            paths = builder(g[idx], idx)
            if paths is not None and len(paths.path_feature):
                stream, per_feature = _path_commands(paths, n)
                feature_streams[dim] = (
                    stream,
                    per_feature,
                    np.concatenate([[0], np.cumsum(per_feature)]),
                )
                gtype[per_feature > 0] = mvt_type
                per_feature_total += per_feature
    idx = np.nonzero(dims == 0)[0]
    if len(idx):
        stream, per_feature = _point_commands(g[idx], idx, n)
        feature_streams[0] = (stream, per_feature, np.concatenate([[0], np.cumsum(per_feature)]))
        gtype[per_feature > 0] = 1
        per_feature_total += per_feature

    keys: list[str] = []
    values: list[bytes] = []
    tag_cols: list[np.ndarray] = []
    cols = (
        dict(properties.items()) if isinstance(properties, pd.DataFrame) else dict(properties or {})
    )
    if cols and n:
        vindex: dict[tuple[str, Any], int] = {}
        for col, s in cols.items():
            kidx = len(keys)
            keys.append(str(col))
            seq = s.tolist() if hasattr(s, "tolist") else list(s)
            arr = np.empty(len(seq), dtype=object)
            arr[:] = seq
            codes, uniques = pd.factorize(arr, use_na_sentinel=True)
            umap = _encode_values(list(uniques), values, vindex)
            vals = np.where(codes >= 0, umap[np.maximum(codes, 0)] if len(umap) else -1, -1)
            tag_cols.append(np.column_stack([np.full(n, kidx), vals]))
    keep = np.nonzero(per_feature_total > 0)[0]
    if not len(keep):
        return b""  # an empty tile, as ST_AsMVT returns it
    # tag bytes per feature
    if tag_cols:
        tags = np.stack(tag_cols, axis=1)  # (n, ncols, 2)
        present = tags[:, :, 1] >= 0
        tag_bytes, tag_nb = _varints(tags[present].reshape(-1))
        per_feat_vals = present.sum(axis=1) * 2
        val_off = np.concatenate([[0], np.cumsum(per_feat_vals)])
        byte_off = np.concatenate([[0], np.cumsum(tag_nb)])
        tag_start = byte_off[val_off[:-1]]
        tag_len = byte_off[val_off[1:]] - tag_start
    else:
        tag_bytes = np.zeros(0, dtype=np.uint8)
        tag_start = np.zeros(n, dtype=np.int64)
        tag_len = np.zeros(n, dtype=np.int64)
    # geometry bytes per feature, all dimension groups in one buffer
    bufs, g_start, g_len = [], np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    base = 0
    for dim, (stream, _per_feature, off) in feature_streams.items():
        b, nb = _varints(stream)
        boff = np.concatenate([[0], np.cumsum(nb)])
        mine = dims == dim
        g_start[mine] = base + boff[off[:-1][mine]]
        g_len[mine] = boff[off[1:][mine]] - boff[off[:-1][mine]]
        bufs.append(b)
        base += len(b)
    geom_buf = np.concatenate(bufs) if bufs else np.zeros(0, dtype=np.uint8)
    features = _assemble(
        ids[keep],
        gtype[keep],
        tag_bytes,
        tag_start[keep],
        tag_len[keep],
        geom_buf,
        g_start[keep],
        g_len[keep],
    )
    layer = b"\x78\x02" + _field(1, name.encode("utf-8")) + features
    layer += b"".join(_field(3, k.encode("utf-8")) for k in keys)
    layer += b"".join(values)
    layer += b"\x28" + _varint(extent)
    return _field(3, layer)


def _encode_values(
    uniques: list[Any], values: list[bytes], vindex: dict[tuple[str, Any], int]
) -> np.ndarray:
    """Append the Value messages (layer field 4) of one column's distinct values; their indices.

    Floats and non-negative integers (the bulk of survey attributes: areas, ids) are encoded
    with numpy, one message per value; text and the rest one by one, shared across columns.
    """
    k = len(uniques)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    first = len(values)
    if all(isinstance(u, (float, np.floating)) for u in uniques):
        buf = np.empty((k, 11), dtype=np.uint8)
        buf[:, 0], buf[:, 1], buf[:, 2] = 0x22, 9, 0x19
        buf[:, 3:] = np.asarray(uniques, dtype="<f8").view(np.uint8).reshape(k, 8)
        values.extend(row.tobytes() for row in buf)
        return first + np.arange(k, dtype=np.int64)
    if all(
        isinstance(u, (int, np.integer)) and not isinstance(u, (bool, np.bool_)) and u >= 0
        for u in uniques
    ):
        vb, nb = _varints(np.asarray(uniques, dtype=np.uint64))
        ends = np.cumsum(nb)
        raw = vb.tobytes()
        values.extend(
            bytes((0x22, 1 + int(n), 0x28)) + raw[e - n : e] for n, e in zip(nb, ends, strict=True)
        )
        return first + np.arange(k, dtype=np.int64)
    umap = np.empty(k, dtype=np.int64)
    for j, u in enumerate(uniques):
        if isinstance(u, float) and math.isnan(u):
            umap[j] = -1
            continue
        if isinstance(u, np.generic):
            u = u.item()
        key = (type(u).__name__, u)
        vi = vindex.get(key)
        if vi is None:
            vi = vindex[key] = len(values)
            values.append(_field(4, _value_bytes(u)))
        umap[j] = vi
    return umap


def _scatter(
    out: np.ndarray, dest: np.ndarray, src: np.ndarray, start: np.ndarray, length: np.ndarray
) -> None:
    """Copy ``src[start[i]:start[i]+length[i]]`` to ``out[dest[i]:…]`` for every i, vectorised."""
    total = int(length.sum())
    if total == 0:
        return
    seg = np.repeat(np.arange(len(length)), length)
    intra = np.arange(total) - np.repeat(np.cumsum(length) - length, length)
    out[dest[seg] + intra] = src[start[seg] + intra]


def _assemble(
    ids: np.ndarray,
    gtype: np.ndarray,
    tag_buf: np.ndarray,
    tag_start: np.ndarray,
    tag_len: np.ndarray,
    geom_buf: np.ndarray,
    g_start: np.ndarray,
    g_len: np.ndarray,
) -> bytes:
    """Feature messages (each wrapped as layer field 2), built in one numpy buffer.

    Per feature: ``12 len [08 id] [12 taglen tags] [18 type] [22 geomlen geom]``.
    """
    k = len(ids)
    id_b, id_nb = _varints(ids.astype(np.uint64))
    tl_b, tl_nb = _varints(tag_len.astype(np.uint64))
    gl_b, gl_nb = _varints(g_len.astype(np.uint64))
    has_tags = tag_len > 0
    tags_part = np.where(has_tags, 1 + tl_nb + tag_len, 0)
    msg_len = 1 + id_nb + tags_part + 2 + 1 + gl_nb + g_len
    ml_b, ml_nb = _varints(msg_len.astype(np.uint64))
    total = 1 + ml_nb + msg_len
    start = np.concatenate([[0], np.cumsum(total)[:-1]])
    out = np.zeros(int(total.sum()), dtype=np.uint8)

    def offs(nb: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(nb)[:-1]])

    pos = start.copy()
    out[pos] = 0x12
    pos += 1
    _scatter(out, pos, ml_b, offs(ml_nb), ml_nb)
    pos += ml_nb
    out[pos] = 0x08
    pos += 1
    _scatter(out, pos, id_b, offs(id_nb), id_nb)
    pos += id_nb
    out[pos[has_tags]] = 0x12
    tpos = pos + 1
    _scatter(out, tpos[has_tags], tl_b, offs(tl_nb)[has_tags], tl_nb[has_tags])
    tpos = tpos + tl_nb
    _scatter(out, tpos[has_tags], tag_buf, tag_start[has_tags], tag_len[has_tags])
    pos = pos + tags_part
    out[pos] = 0x18
    out[pos + 1] = gtype.astype(np.uint8)
    pos += 2
    out[pos] = 0x22
    pos += 1
    _scatter(out, pos, gl_b, offs(gl_nb), gl_nb)
    pos += gl_nb
    _scatter(out, pos, geom_buf, g_start, g_len)
    assert k == 0 or int(pos[-1] + g_len[-1]) == len(out)
    return out.tobytes()


# --------------------------------------------------------------------------------------
# Cache and service
# --------------------------------------------------------------------------------------


class TileCache:
    """A thread-safe LRU of encoded tiles bounded in bytes.

    Keys start with (layer, content_hash); :meth:`note_current` drops a layer's tiles of
    other snapshots' hashes once a new snapshot is current.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._current: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        """Return a cached tile, or None."""
        with self._lock:
            v = self._data.get(key)
            if v is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return v

    def put(self, key: Hashable, value: bytes) -> None:
        """Store a tile, evicting the least recently used."""
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._data[key] = value
            self._size += len(value)
            while self._size > self.max_bytes and self._data:
                _, v = self._data.popitem(last=False)
                self._size -= len(v)

    def note_current(self, layer: str, content_hash: str) -> None:
        """Record the current snapshot of a layer; a change evicts the layer's older tiles."""
        with self._lock:
            if self._current.get(layer) == content_hash:
                return
            had = layer in self._current
            self._current[layer] = content_hash
            if not had:
                return
            stale = [
                k
                for k in self._data
                if isinstance(k, tuple) and k[0] == layer and k[1] != content_hash
            ]
            for k in stale:
                self._size -= len(self._data.pop(k))

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """Bytes held."""
        return self._size


@dataclass(frozen=True)
class TileResult:
    """An encoded tile and what identifies it."""

    data: bytes
    etag: str
    snapshot_id: int
    content_hash: str
    cached: bool
    pinned: bool  # the request named a snapshot: the tile never changes


def _mvt_values(values: Sequence[Any], kind: str) -> list[Any]:
    """Database values as MVT property values (booleans from SQLite's 0/1, dates as text)."""
    if kind == "bool":
        return [None if v is None else bool(v) for v in values]
    if kind == "datetime":
        return [
            None if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v))
            for v in values
        ]
    if kind == "float":
        return [None if v is None else float(v) for v in values]
    return list(values)


def encode_from_rows(
    store: Store,
    layer: str,
    snapshot: int,
    tile: tuple[int, int, int],
    bbox: tuple[float, float, float, float],
    *,
    columns: Sequence[str] | None,
    jurisdictions: Sequence[str] | None,
    tolerance: float,
    extent: int = _EXTENT,
    buffer: int = _BUFFER,
) -> bytes:
    """Encode a tile in Python from the store's rows (GeoPackage; any backend in tests)."""
    fr = store.query_feature_rows(
        layer, snapshot=snapshot, bbox=bbox, columns=columns, jurisdictions=jurisdictions
    )
    geoms = np.asarray(fr.geometries, dtype=object)
    if len(fr):
        tr = _transformer(fr.snapshot.crs or "EPSG:4490", "EPSG:3857")

        def fn(c: np.ndarray) -> np.ndarray:
            xx, yy = tr.transform(c[:, 0], c[:, 1])
            return np.column_stack([xx, yy])

        geoms = shapely.transform(geoms, fn)
    cols = list(zip(*fr.rows, strict=True)) if fr.rows else [() for _ in fr.columns]
    props = {
        name: _mvt_values(vals, kind)
        for name, kind, vals in zip(fr.columns, fr.kinds, cols, strict=True)
    }
    return encode_mvt(
        layer,
        geoms,
        props,
        np.asarray(fr.fids, dtype=np.int64),
        tile_bounds(*tile),
        extent=extent,
        buffer=buffer,
        tolerance=tolerance,
    )


def render_tile(
    store: Store,
    scope: Scope,
    layer: str,
    z: int,
    x: int,
    y: int,
    *,
    snapshot: str | None = None,
    cache: TileCache | None = None,
    max_zoom: int = MAX_ZOOM,
    simplify_px: float = 1.0,
    extent: int = _EXTENT,
    buffer: int = _BUFFER,
    full_attributes_zoom: int = 0,
) -> TileResult:
    """Render one tile of a layer snapshot (default: current) as the user may see it.

    Below ``full_attributes_zoom`` a tile carries only the catalogued code, id and
    jurisdiction fields (enough to style and identify a feature; the rest is one OGC
    ``/items/{fid}`` away): at z12 a 1M-parcel survey otherwise makes 400 KB tiles.
    """
    from yizhangtu.services.features import visible_layer

    validate_tile(z, x, y, max_zoom=max_zoom)
    info = visible_layer(store, scope, layer)
    snap = store.resolve_snapshot(layer, snapshot)
    prefixes = scope.layer_prefixes(info)
    if cache is not None and snapshot is None:
        cache.note_current(layer, snap.content_hash)
    columns: list[str] | None = None
    if z < full_attributes_zoom:
        names = {n for n, _ in store.feature_schema(layer, snapshot=snap.id)}
        columns = [
            c
            for c in dict.fromkeys((info.code_field, info.id_field, info.jurisdiction_field))
            if c and c in names
        ]
    key = (
        layer,
        snap.content_hash,
        snap.id,
        z,
        x,
        y,
        prefixes,
        extent,
        buffer,
        simplify_px,
        tuple(columns or ("*",)),
    )
    etag = '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return TileResult(hit, etag, snap.id, snap.content_hash, True, snapshot is not None)
    b3857 = tile_bounds(z, x, y)
    pad = (b3857[2] - b3857[0]) * buffer / extent
    padded = (b3857[0] - pad, b3857[1] - pad, b3857[2] + pad, b3857[3] + pad)
    bbox = _storage_bbox(padded, snap.crs or "EPSG:4490")
    tol = simplify_tolerance(z, pixels=simplify_px) if simplify_px > 0 else 0.0
    data = store.render_mvt(
        layer,
        snapshot=snap.id,
        tile=(z, x, y),
        bbox=bbox,
        extent=extent,
        buffer=buffer,
        tolerance=tol,
        columns=columns,
        jurisdictions=prefixes,
    )
    if data is None:
        data = encode_from_rows(
            store,
            layer,
            snap.id,
            (z, x, y),
            bbox,
            columns=columns,
            jurisdictions=prefixes,
            tolerance=tol,
            extent=extent,
            buffer=buffer,
        )
    if cache is not None:
        cache.put(key, data)
    return TileResult(data, etag, snap.id, snap.content_hash, False, snapshot is not None)
