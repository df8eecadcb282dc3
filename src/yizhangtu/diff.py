"""Differences between two snapshots of a layer: added, removed and changed parcels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.geo.area import convert_area, ellipsoidal_area
from yizhangtu.store.hashing import frame_digests

__all__ = ["DiffResult", "diff_frames"]


@dataclass(frozen=True)
class DiffResult:
    """Outcome of :func:`diff_frames`.

    ``features`` holds one row per added, removed or changed parcel with ``change``
    (added/removed/geometry/attributes/geometry+attributes), ``area_m2`` (ellipsoidal; the
    new geometry, or the old one for removals), ``area_before_m2`` and ``changed_fields``.
    """

    features: gpd.GeoDataFrame
    match_on: str
    counts: dict[str, int]
    areas_m2: dict[str, float]
    unchanged: int
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self, unit: str = "m2") -> dict[str, Any]:
        """Return the counts and areas per change type, in ``unit``."""
        return {
            "match_on": self.match_on,
            "unchanged": self.unchanged,
            "counts": dict(self.counts),
            "areas": {k: float(convert_area(v, unit)) for k, v in self.areas_m2.items()},
            "area_unit": unit,
            **self.meta,
        }


def _attr_cols(df: pd.DataFrame, skip: set[str]) -> list[str]:
    return [c for c in df.columns if c not in skip and c != df.geometry.name]


def diff_frames(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    *,
    id_field: str | None = None,
    tolerance: float = 0.0,
) -> DiffResult:
    """Compare two snapshots.

    Parameters
    ----------
    old, new : GeoDataFrame
        The two snapshots, in the same CRS.
    id_field : str, optional
        Stable parcel id (e.g. ``BSM``). Without it, parcels are matched by identical
        geometry, so every geometry edit shows as one removal plus one addition.
    tolerance : float
        Vertex tolerance (in CRS units) under which geometries count as equal.
    """
    if old.crs is not None and new.crs is not None and not old.crs.equals(new.crs):
        new = new.to_crs(old.crs)
    old = old.rename_geometry("geometry") if old.geometry.name != "geometry" else old
    new = new.rename_geometry("geometry") if new.geometry.name != "geometry" else new
    if id_field and id_field in old.columns and id_field in new.columns:
        match_on = id_field
        ko = old[id_field].astype(str).to_numpy()
        kn = new[id_field].astype(str).to_numpy()
    else:
        match_on = "geometry"
        ko = np.array([d.hex() for d in frame_digests(old[["geometry"]])])
        kn = np.array([d.hex() for d in frame_digests(new[["geometry"]])])
    io = pd.Index(ko)
    inn = pd.Index(kn)
    removed = ~io.isin(inn)
    added = ~inn.isin(io)
    common = io.intersection(inn)
    o_idx = pd.Series(np.arange(len(ko)), index=io)
    n_idx = pd.Series(np.arange(len(kn)), index=inn)
    o_idx = o_idx[~o_idx.index.duplicated()]
    n_idx = n_idx[~n_idx.index.duplicated()]
    oi = o_idx.loc[common].to_numpy()
    ni = n_idx.loc[common].to_numpy()
    og = np.asarray(old.geometry.values, dtype=object)[oi]
    ng = np.asarray(new.geometry.values, dtype=object)[ni]
    geom_changed = (
        ~shapely.equals_exact(og, ng, tolerance=tolerance) if len(oi) else np.zeros(0, bool)
    )
    cols = sorted(set(_attr_cols(old, {id_field or ""})) & set(_attr_cols(new, {id_field or ""})))
    changed_fields: list[list[str]] = [[] for _ in range(len(oi))]
    for c in cols:
        a = old[c].to_numpy()[oi]
        b = new[c].to_numpy()[ni]
        diff_mask = ~((a == b) | (pd.isna(a) & pd.isna(b)))
        for k in np.flatnonzero(diff_mask):
            changed_fields[k].append(c)
    attr_changed = np.array([bool(f) for f in changed_fields], dtype=bool)
    parts = []
    if removed.any():
        r = old.loc[removed].copy()
        r["change"] = "removed"
        r["changed_fields"] = ""
        parts.append(r)
    if added.any():
        a = new.loc[added].copy()
        a["change"] = "added"
        a["changed_fields"] = ""
        parts.append(a)
    ch = geom_changed | attr_changed
    if ch.any():
        c = new.iloc[ni[ch]].copy()
        kinds = np.where(
            geom_changed[ch] & attr_changed[ch],
            "geometry+attributes",
            np.where(geom_changed[ch], "geometry", "attributes"),
        )
        c["change"] = kinds
        c["changed_fields"] = [",".join(f) for f, m in zip(changed_fields, ch, strict=True) if m]
        c["area_before_m2"] = ellipsoidal_area(gpd.GeoSeries(og[ch], crs=old.crs))
        parts.append(c)
    if parts:
        feats = gpd.GeoDataFrame(
            pd.concat(parts, ignore_index=True), geometry="geometry", crs=new.crs or old.crs
        )
    else:
        feats = gpd.GeoDataFrame(
            {"change": [], "changed_fields": []},
            geometry=gpd.GeoSeries([], crs=new.crs or old.crs),
            crs=new.crs or old.crs,
        )
    feats["area_m2"] = ellipsoidal_area(feats.geometry) if len(feats) else []
    if "area_before_m2" not in feats.columns:
        feats["area_before_m2"] = np.nan
    feats.loc[feats["change"] == "removed", "area_before_m2"] = feats.loc[
        feats["change"] == "removed", "area_m2"
    ]
    counts = {
        k: int((feats["change"] == k).sum())
        for k in ("added", "removed", "geometry", "attributes", "geometry+attributes")
    }
    areas = {k: float(feats.loc[feats["change"] == k, "area_m2"].sum()) for k in counts}
    return DiffResult(
        features=feats,
        match_on=match_on,
        counts=counts,
        areas_m2=areas,
        unchanged=int(len(oi) - ch.sum()),
    )
