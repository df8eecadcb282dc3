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

from yizhangtu.provenance import canonical_json

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


def frame_digests(gdf: pd.DataFrame, geometry: str | None = "geometry") -> list[bytes]:
    """Per-row SHA-256 digests of geometry WKB and canonical attributes."""
    cols = [c for c in gdf.columns if c != geometry]
    cols.sort()
    if geometry is not None and geometry in gdf.columns:
        wkb = shapely.to_wkb(np.asarray(gdf[geometry].values, dtype=object), output_dimension=2, byte_order=1, flavor="iso")
    else:
        wkb = [b""] * len(gdf)
    values = gdf[cols].astype(object).to_numpy() if cols else np.empty((len(gdf), 0), dtype=object)
    out: list[bytes] = []
    for i in range(len(gdf)):
        attrs = canonical_json([canonical_value(x) for x in values[i]])
        h = hashlib.sha256()
        h.update(wkb[i] if wkb[i] is not None else b"")
        h.update(b"\x00")
        h.update("|".join(cols).encode())
        h.update(b"\x00")
        h.update(attrs.encode("utf-8"))
        out.append(h.digest())
    return out


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
