"""The one-map store: open a workspace by path or URI."""

from __future__ import annotations

from pathlib import Path

from yizhangtu.store.base import (
    LAYER_KINDS,
    AuditRecord,
    AuditVerification,
    LayerInfo,
    LayerSpec,
    Record,
    SnapshotInfo,
    StateEntry,
    Store,
)

__all__ = [
    "LAYER_KINDS",
    "AuditRecord",
    "AuditVerification",
    "LayerInfo",
    "LayerSpec",
    "Record",
    "SnapshotInfo",
    "StateEntry",
    "Store",
    "open_store",
]


def open_store(uri: str | Path, *, create: bool = True) -> Store:
    """Open (and by default create) the workspace at ``uri``.

    ``postgresql://…`` opens a PostGIS workspace; anything else is a GeoPackage path.
    """
    text = str(uri)
    if text.startswith(("postgresql://", "postgres://")):
        from yizhangtu.store.postgis import PostGISStore

        return PostGISStore(text)
    from yizhangtu.store.gpkg import GeoPackageStore

    return GeoPackageStore(text, create=create)
