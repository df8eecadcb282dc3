"""Shared helpers of the conformance core: packaged data, metric planes, patches and packs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pyproj import CRS

from yizhangtu.errors import CRSError, InputError, PolicyError
from yizhangtu.geo.area import ellipsoidal_area, gk_zone_epsg, to_geographic
from yizhangtu.policy import PolicyPack

__all__ = [
    "data_names",
    "data_text",
    "explode_patches",
    "metric_crs_for",
    "pack_param",
    "patch_width_m",
    "read_data_yaml",
    "require_crs",
]

_PACKAGE = "yizhangtu.conformance"


def data_text(name: str) -> str:
    """Text of a packaged data file under ``conformance/data`` (``/`` separated)."""
    node = resources.files(_PACKAGE).joinpath("data")
    for part in name.split("/"):
        node = node.joinpath(part)
    if not node.is_file():
        raise PolicyError(
            f"缺少内置数据文件: {name}",
            key="conformance_data_missing",
            file=name,
            hint="安装包不完整, 请重新安装 yizhangtu",
        )
    return node.read_text(encoding="utf-8")


def data_names(folder: str) -> list[str]:
    """Names (without ``.yaml``) of the packaged YAML files in ``conformance/data/<folder>``."""
    node = resources.files(_PACKAGE).joinpath("data").joinpath(folder)
    return sorted(p.name[:-5] for p in node.iterdir() if p.name.endswith(".yaml"))


@cache
def read_data_yaml(name: str) -> Any:
    """Parse a packaged YAML file (cached; callers must not mutate the result)."""
    return yaml.safe_load(data_text(name))


def require_crs(gdf: gpd.GeoDataFrame, what: str) -> CRS:
    """Return the CRS of ``gdf``, or raise CRSError naming ``what``."""
    if gdf.crs is None:
        raise CRSError(f"{what}没有坐标参考系", key="crs_missing", hint="导入时用 --crs 指定坐标系")
    return CRS.from_user_input(gdf.crs)


def metric_crs_for(geoms: gpd.GeoSeries | gpd.GeoDataFrame) -> CRS:
    """CGCS2000 3-degree Gauss–Krüger zone (no prefix) of the centre of ``geoms``.

    Distances (tolerances, widths, Hausdorff) are measured in this conformal plane, whose scale
    error inside a zone is below 2e-4: well under a millimetre per metre.
    """
    series = geoms.geometry if isinstance(geoms, gpd.GeoDataFrame) else geoms
    geo = to_geographic(series)
    x0, _, x1, _ = (float(v) for v in geo.total_bounds)
    if not np.isfinite([x0, x1]).all():
        raise InputError("几何为空, 无法确定量测投影", key="empty_geometry")
    return CRS.from_epsg(int(gk_zone_epsg((x0 + x1) / 2)))


def patch_width_m(geoms: gpd.GeoSeries, area_m2: np.ndarray) -> np.ndarray:
    """Mean width of each patch, ``2 × area / perimeter`` (metres; perimeter in the GK plane).

    A strip of length L and width w has area Lw and perimeter about 2L, so this is ``w`` for
    the thin slivers that misregistered boundaries leave.
    """
    if len(geoms) == 0:
        return np.zeros(0)
    plane = to_geographic(geoms).to_crs(metric_crs_for(geoms))
    perim = shapely.length(np.asarray(plane.values, dtype=object))
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(perim > 0, 2.0 * np.asarray(area_m2, dtype=float) / perim, 0.0)
    return w


def explode_patches(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Split multipart polygons into single patches; recompute ``area_m2`` (ellipsoidal)."""
    if len(gdf) == 0:
        out = gdf.copy()
        out["area_m2"] = pd.Series(dtype=float)
        return out
    polys = gdf[gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    out = polys.explode(index_parts=False).reset_index(drop=True)
    out = out[~out.geometry.is_empty]
    out = out.reset_index(drop=True)
    out["area_m2"] = ellipsoidal_area(out.geometry)
    return out


def pack_param(packs: Sequence[PolicyPack], name: str, unit: str) -> tuple[Any, Mapping[str, Any]]:
    """Value of ``name`` from the first pack that has it, and a citation dict.

    Raises
    ------
    PolicyError
        No pack has the parameter.
    """
    for pack in packs:
        if name in pack.parameters:
            p = pack.parameter(name)
            return pack.param(name, unit=unit), {
                "pack": pack.id,
                "param": name,
                "clause": p.clause,
                "local_choice": p.local_choice,
            }
    raise PolicyError(
        f"所给政策包均没有参数 {name}",
        key="policy_param_missing",
        field=name,
        hint="使用 conformance-national 政策包, 或在本地政策包中补充该参数",
        data={"packs": [p.id for p in packs], "param": name},
    )
