"""Raw criterion values for each site, from fields, tables, indicators or spatial measures.

Spatial measures (distance to the nearest feature, count within a radius) are computed in the
CGCS2000 3-degree Gauss–Krüger zone of the sites (:func:`yizhangtu.geo.area.gk_zone_epsg` of
their mean longitude), never in degrees or Web Mercator. Within one zone the GK scale error is
below about 1.4e-4 (at 1.5° from the central meridian), i.e. 0.14 m per kilometre.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from yizhangtu.errors import CRSError, InputError, ValidationError
from yizhangtu.geo.area import gk_zone_epsg, to_geographic
from yizhangtu.scoring.criteria import Criterion, ScoringConfig

__all__ = [
    "count_within",
    "criterion_values",
    "distance_to_nearest",
    "metric_epsg_for",
    "raw_values",
    "site_ids",
]


def site_ids(sites: pd.DataFrame, id_field: str) -> pd.Index:
    """Return the site ids as a string index; they must exist, be non-empty and unique.

    Raises
    ------
    ValidationError
        On a missing id column, empty ids or duplicates.
    """
    if id_field not in sites.columns:
        raise ValidationError(
            f"站点数据缺少编号字段 {id_field}", key="site_id_missing", field=id_field
        )
    ids = sites[id_field]
    empty = [
        i
        for i, v in enumerate(ids)
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
    ]
    if empty:
        raise ValidationError(
            f"站点编号为空 (第 {', '.join(str(i + 1) for i in empty)} 行)",
            key="site_id_empty",
            field=id_field,
        )
    sid = pd.Index([str(v) for v in ids], name="site_id")
    dup = sorted(set(sid[sid.duplicated()]))
    if dup:
        raise ValidationError(
            "站点编号重复: " + "、".join(dup), key="site_id_duplicate", field=id_field
        )
    return sid


def _geo(frame: gpd.GeoDataFrame, what: str) -> gpd.GeoSeries:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputError(f"{what}不是空间数据, 无法计算空间指标", key="not_spatial")
    if frame.crs is None:
        raise CRSError(
            f"{what}没有坐标参考系", key="crs_missing", hint="为数据指定 CRS, 如 EPSG:4490"
        )
    return to_geographic(frame.geometry)


def metric_epsg_for(sites: gpd.GeoDataFrame) -> int:
    """EPSG code of the CGCS2000 GK zone (without prefix) for the sites' mean longitude."""
    geo = _geo(sites, "站点数据")
    cx = shapely.get_x(shapely.centroid(np.asarray(geo.values, dtype=object)))
    lon = float(np.nanmean(cx))
    return int(gk_zone_epsg(lon))


def _projected(frame: gpd.GeoDataFrame, epsg: int, what: str) -> np.ndarray:
    geo = _geo(frame, what)
    return np.asarray(geo.to_crs(epsg=epsg).values, dtype=object)


def distance_to_nearest(
    sites: gpd.GeoDataFrame, layer: gpd.GeoDataFrame, *, epsg: int | None = None
) -> np.ndarray:
    """Metres from each site to the nearest feature of ``layer`` (NaN if the layer is empty)."""
    code = epsg or metric_epsg_for(sites)
    s = _projected(sites, code, "站点数据")
    if len(layer) == 0:
        return np.full(len(s), np.nan)
    target = _projected(layer, code, "目标图层")
    ok = ~shapely.is_empty(target) & ~shapely.is_missing(target)
    if not ok.any():
        return np.full(len(s), np.nan)
    tree = shapely.STRtree(target[ok])
    idx, dist = tree.query_nearest(s, return_distance=True, all_matches=False)
    out = np.full(len(s), np.nan)
    out[idx[0]] = dist
    return out


def count_within(
    sites: gpd.GeoDataFrame, layer: gpd.GeoDataFrame, radius_m: float, *, epsg: int | None = None
) -> np.ndarray:
    """Count the ``layer`` features within ``radius_m`` metres of each site."""
    code = epsg or metric_epsg_for(sites)
    s = _projected(sites, code, "站点数据")
    if len(layer) == 0:
        return np.zeros(len(s))
    target = _projected(layer, code, "目标图层")
    ok = ~shapely.is_empty(target) & ~shapely.is_missing(target)
    tree = shapely.STRtree(target[ok])
    pairs = tree.query(s, predicate="dwithin", distance=float(radius_m))
    return np.bincount(pairs[0], minlength=len(s)).astype(float)


def _layer(
    layers: Mapping[str, gpd.GeoDataFrame] | None, name: str, c: Criterion
) -> gpd.GeoDataFrame:
    if not layers or name not in layers:
        raise InputError(
            f"准则「{c.label}」({c.name}) 需要图层 {name}, 但未提供",
            key="layer_missing",
            hint="在评价配置的 layers 中给出该图层",
        )
    return layers[name]


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def criterion_values(
    sites: pd.DataFrame,
    criterion: Criterion,
    *,
    id_field: str = "site_id",
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    indicators: pd.DataFrame | None = None,
    epsg: int | None = None,
) -> pd.Series:
    """Raw values of one criterion, indexed by site id (NaN where unknown).

    Parameters
    ----------
    sites : DataFrame or GeoDataFrame
        One row per site; a GeoDataFrame with a CRS for spatial sources.
    criterion : Criterion
    id_field : str
        Site id column.
    layers, tables : mapping, optional
        Named layers (GeoDataFrames) and tables (DataFrames) the sources refer to.
    indicators : DataFrame, optional
        Long table with columns ``indicator``, ``unit``, ``value`` (and optionally ``year``:
        the latest year is used).
    epsg : int, optional
        Metric CRS for spatial measures; default the sites' GK zone.
    """
    sid = site_ids(sites, id_field)
    src = criterion.source
    k = src.kind
    if k == "field":
        if src.field not in sites.columns:
            raise ValidationError(
                f"准则「{criterion.label}」引用的站点字段不存在: {src.field}",
                key="field_missing",
                field=src.field,
            )
        vals = _numeric(sites[src.field]).to_numpy()
    elif k == "manual":
        given = src.values or {}
        unknown = sorted(set(given) - set(sid))
        if unknown:
            raise ValidationError(
                f"准则「{criterion.label}」的人工评分含未知站点: " + "、".join(unknown),
                key="manual_unknown_site",
            )
        vals = _numeric(pd.Series([given.get(s, np.nan) for s in sid])).to_numpy()
    elif k == "table":
        if not tables or src.table not in tables:
            raise InputError(
                f"准则「{criterion.label}」需要表 {src.table}, 但未提供", key="table_missing"
            )
        t = tables[str(src.table)]
        key = src.key or id_field
        skey = src.site_key or id_field
        for col, frame, what in (
            (key, t, f"表 {src.table}"),
            (src.field, t, f"表 {src.table}"),
            (skey, sites, "站点数据"),
        ):
            if col not in frame.columns:
                raise ValidationError(f"{what}缺少字段 {col}", key="field_missing", field=str(col))
        lookup = pd.Series(_numeric(t[src.field]).to_numpy(), index=t[key].astype(str))
        if lookup.index.duplicated().any():
            dups = sorted(set(lookup.index[lookup.index.duplicated()]))
            raise ValidationError(
                f"表 {src.table} 的关联字段 {key} 有重复值: " + "、".join(dups),
                key="table_key_duplicate",
            )
        vals = lookup.reindex(sites[skey].astype(str).to_numpy()).to_numpy()
    elif k == "indicator":
        if indicators is None:
            raise InputError(
                f"准则「{criterion.label}」需要指标数据, 但未提供", key="indicators_missing"
            )
        for col in ("indicator", "unit", "value"):
            if col not in indicators.columns:
                raise ValidationError(f"指标数据缺少字段 {col}", key="field_missing", field=col)
        if src.site_key not in sites.columns:
            raise ValidationError(
                f"站点数据缺少字段 {src.site_key}", key="field_missing", field=src.site_key
            )
        sel = indicators[indicators["indicator"].astype(str) == str(src.indicator)]
        if "year" in sel.columns and len(sel):
            sel = sel.sort_values("year").groupby(sel["unit"].astype(str)).tail(1)
        lookup = pd.Series(_numeric(sel["value"]).to_numpy(), index=sel["unit"].astype(str))
        lookup = lookup[~lookup.index.duplicated(keep="last")]
        vals = lookup.reindex(sites[src.site_key].astype(str).to_numpy()).to_numpy()
    elif k == "layer_field":
        layer = _layer(layers, str(src.layer), criterion)
        if src.field not in layer.columns:
            raise ValidationError(
                f"图层 {src.layer} 缺少字段 {src.field}", key="field_missing", field=src.field
            )
        pts = gpd.GeoDataFrame(
            {"_i": np.arange(len(sites))},
            geometry=gpd.GeoSeries(_geo(sites, "站点数据").representative_point().values, crs=4490),
        )
        poly = gpd.GeoDataFrame(
            {"_v": _numeric(layer[src.field]).to_numpy()},
            geometry=_geo(layer, f"图层 {src.layer}").values,
            crs=4490,
        )
        j = gpd.sjoin(pts, poly, how="left", predicate="within")
        j = j[~j["_i"].duplicated(keep="first")].sort_values("_i")
        vals = j["_v"].to_numpy(dtype=float)
    elif k == "distance_to_nearest":
        vals = distance_to_nearest(sites, _layer(layers, str(src.layer), criterion), epsg=epsg)
    elif k == "count_within":
        vals = count_within(
            sites, _layer(layers, str(src.layer), criterion), float(src.radius_m or 0), epsg=epsg
        )
    else:  # pragma: no cover - parse_scoring_config rejects unknown kinds
        raise ValidationError(f"未知的取值来源: {k}", key="criterion_source_unknown")
    return pd.Series(np.asarray(vals, dtype=float), index=sid, name=criterion.name)


def raw_values(
    sites: pd.DataFrame,
    config: ScoringConfig,
    *,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    indicators: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, int | None]:
    """Raw values of every criterion (columns) for every site (rows).

    Returns
    -------
    (DataFrame, int or None)
        The values, and the EPSG code used for spatial measures (None if none was needed).
    """
    spatial = any(c.source.kind in ("distance_to_nearest", "count_within") for c in config.criteria)
    epsg = metric_epsg_for(sites) if spatial else None
    cols = {
        c.name: criterion_values(
            sites,
            c,
            id_field=config.id_field,
            layers=layers,
            tables=tables,
            indicators=indicators,
            epsg=epsg,
        )
        for c in config.criteria
    }
    return pd.DataFrame(cols), epsg
