"""Helpers shared by the backends for plain tables and snapshot chunks."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["column_kinds", "declared_geometry_type", "normalise_chunk", "py_value", "restore_kinds"]


def column_kinds(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Map each column to one of int, float, bool, datetime, str."""
    out = []
    for c in df.columns:
        dt = df[c].dtype
        if pd.api.types.is_bool_dtype(dt):
            k = "bool"
        elif pd.api.types.is_integer_dtype(dt):
            k = "int"
        elif pd.api.types.is_float_dtype(dt):
            k = "float"
        elif pd.api.types.is_datetime64_any_dtype(dt):
            k = "datetime"
        else:
            k = "str"
        out.append((str(c), k))
    return out


def py_value(v: Any, kind: str) -> Any:
    """Convert one cell to a DB-API value."""
    if v is None or (not isinstance(v, (str, bytes)) and pd.isna(v)):
        return None
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "bool":
        return bool(v)
    if kind == "datetime":
        return pd.Timestamp(v).isoformat()
    return str(v)


def restore_kinds(df: pd.DataFrame, kinds: list[tuple[str, str]]) -> pd.DataFrame:
    """Give columns read back from SQL the dtypes they were written with."""
    for name, k in kinds:
        if name not in df.columns:
            continue
        if k == "int":
            df[name] = (
                df[name].astype("Int64") if df[name].isna().any() else df[name].astype("int64")
            )
        elif k == "float":
            df[name] = df[name].astype("float64")
        elif k == "bool":
            df[name] = (
                df[name].astype("boolean") if df[name].isna().any() else df[name].astype(bool)
            )
        elif k == "datetime":
            df[name] = pd.to_datetime(df[name])
        else:
            df[name] = df[name].astype(object).where(df[name].notna(), None)
    return df


_MULTI = {"Polygon": "MultiPolygon", "LineString": "MultiLineString", "Point": "MultiPoint"}


def normalise_chunk(gdf: gpd.GeoDataFrame, geometry_type: str | None) -> gpd.GeoDataFrame:
    """Promote single to multi geometries when the declared type is a multi type."""
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    if geometry_type and geometry_type.startswith("Multi"):
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        types = shapely.get_type_id(geoms)
        single = {0: 4, 1: 5, 3: 6}
        need = np.isin(types, list(single))
        if need.any():
            out = geoms.copy()
            for t, _mt in single.items():
                sel = types == t
                if sel.any():
                    out[sel] = (
                        shapely.multipolygons(geoms[sel][:, None])
                        if t == 3
                        else (
                            shapely.multilinestrings(geoms[sel][:, None])
                            if t == 1
                            else shapely.multipoints(geoms[sel][:, None])
                        )
                    )
            gdf = gdf.set_geometry(gpd.GeoSeries(out, crs=gdf.crs, index=gdf.index))
    return gdf


def declared_geometry_type(types: set[str]) -> str:
    """Return the column type for a set of geometry type names."""
    types = {t for t in types if t and t != "None"}
    if not types:
        return "Geometry"
    if len(types) == 1:
        return next(iter(types))
    for single, multi in _MULTI.items():
        if types <= {single, multi}:
            return multi
    return "Geometry"
