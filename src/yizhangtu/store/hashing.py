"""Content hashes of layer snapshots and tables.

A snapshot's content hash is order-independent: each feature is hashed from its 2-D ISO WKB
and its attributes in canonical JSON; the sorted feature digests are hashed together. The
same data gives the same hash on every backend and in every row order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import shapely

__all__ = ["ContentHasher", "canonical_value", "frame_digests", "table_hash"]


def canonical_value(v: Any) -> Any:
    """Normalise one attribute value so that backends agree (1.0 == 1, NaN == None)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    if isinstance(v, (pd.Timestamp,)):
        return None if pd.isna(v) else v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def _canon_column(col: pd.Series) -> list[str]:
    """Canonical text of each value, tagged by type, so that backends agree.

    Tags make 1.0 == 1 and NaN == None on every backend.
    """
    dt = col.dtype
    if pd.api.types.is_bool_dtype(dt) and not col.isna().any():
        return ["b1" if v else "b0" for v in col.to_numpy()]
    if pd.api.types.is_integer_dtype(dt) and not col.isna().any():
        return ["i" + t for t in col.to_numpy().astype(np.int64).astype(str)]
    if pd.api.types.is_string_dtype(dt) or dt == np.dtype(object):
        vals_o = col.to_numpy(dtype=object)
        if all(type(v) is str for v in vals_o):
            return [f"s{len(v)}:{v}" for v in vals_o]
    vals = col.to_numpy(dtype=object)
    out: list[str] = []
    append = out.append
    for v in vals:
        c = canonical_value(v)
        if c is None:
            append("n")
        elif isinstance(c, bool):
            append("b1" if c else "b0")
        elif isinstance(c, int):
            append(f"i{c}")
        elif isinstance(c, float):
            append(f"f{c!r}")
        else:
            append(f"s{len(c)}:{c}")
    return out


def frame_digests(gdf: pd.DataFrame, geometry: str | None = "geometry") -> list[bytes]:
    """Per-row SHA-256 digests of the 2-D ISO WKB and the canonical attributes."""
    cols = sorted(str(c) for c in gdf.columns if c != geometry)
    n = len(gdf)
    if geometry is not None and geometry in gdf.columns:
        wkb = shapely.to_wkb(
            np.asarray(gdf[geometry].values, dtype=object),
            output_dimension=2,
            byte_order=1,
            flavor="iso",
        )
        wkb = [w if w is not None else b"" for w in wkb]
    else:
        wkb = [b""] * n
    header = ("\x1e".join(cols) + "\x1d").encode("utf-8")
    texts = [_canon_column(gdf[c]) for c in cols]
    rows = ["\x1f".join(parts) for parts in zip(*texts, strict=True)] if texts else [""] * n
    sha = hashlib.sha256
    return [
        sha(w + b"\x00" + header + r.encode("utf-8")).digest()
        for w, r in zip(wkb, rows, strict=True)
    ]


class ContentHasher:
    """Accumulate feature digests over chunks, then give the content hash."""

    def __init__(self) -> None:
        self._digests: list[bytes] = []

    def update(self, gdf: pd.DataFrame, geometry: str | None = "geometry") -> None:
        """Add the rows of one chunk."""
        self._digests.extend(frame_digests(gdf, geometry))

    @property
    def count(self) -> int:
        """Rows seen so far."""
        return len(self._digests)

    def hexdigest(self) -> str:
        """Order-independent hash of all rows seen."""
        h = hashlib.sha256()
        for d in sorted(self._digests):
            h.update(d)
        return "sha256:" + h.hexdigest()


def table_hash(frames: Iterable[pd.DataFrame], geometry: str | None = None) -> str:
    """Content hash of a (non-spatial) table."""
    hasher = ContentHasher()
    for f in frames:
        hasher.update(f, geometry)
    return hasher.hexdigest()
