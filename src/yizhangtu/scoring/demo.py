"""Demo builder: 10 synthetic rail micro-centre sites (轨道微中心) in Chaoyang.

The criteria follow 002 附件4 (交通便捷性、公共设施改善需求、可实施性); every value is synthetic
and labelled so (``synthetic = True`` on each row, "合成数据" in titles). Sites are placed at
random, reproducibly (seeded), inside real street boundaries that the caller passes in, e.g.
``beijing_chaoyang_subdistricts_wgs84.geojson``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.geo.area import gk_zone_epsg, to_geographic
from yizhangtu.scoring._data import load_packaged_yaml
from yizhangtu.scoring.criteria import ScoringConfig, parse_scoring_config

__all__ = ["DemoScoring", "build_demo_sites", "demo_config_mapping"]


@dataclass(frozen=True, eq=False)
class DemoScoring:
    """Inputs of the demo scoring run (all synthetic except the street boundaries)."""

    sites: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame]
    tables: dict[str, pd.DataFrame]
    config: ScoringConfig
    mapping: dict[str, Any]
    boundaries: gpd.GeoDataFrame


def demo_config_mapping() -> dict[str, Any]:
    """Return the packaged demo configuration (``data/demo_micro_centres.yaml``) as a mapping."""
    return copy.deepcopy(load_packaged_yaml("data/demo_micro_centres.yaml"))


def _random_points_in(poly: Any, n: int, rng: np.random.Generator) -> list[shapely.Point]:
    minx, miny, maxx, maxy = poly.bounds
    pts: list[shapely.Point] = []
    shapely.prepare(poly)
    for _ in range(1000):
        xs = rng.uniform(minx, maxx, 64)
        ys = rng.uniform(miny, maxy, 64)
        inside = shapely.contains_xy(poly, xs, ys)
        pts.extend(shapely.Point(x, y) for x, y in zip(xs[inside], ys[inside], strict=True))
        if len(pts) >= n:
            return pts[:n]
    raise ValidationError(
        "无法在街道范围内生成随机点", key="demo_sampling_failed"
    )  # pragma: no cover


def build_demo_sites(
    streets: gpd.GeoDataFrame, *, name_field: str = "name", seed: int | None = None
) -> DemoScoring:
    """Build the synthetic demo: sites, a transit-stop layer, a facility-gap table, config.

    Parameters
    ----------
    streets : GeoDataFrame
        Real street (街道/乡) boundaries with a CRS and a name field holding the street names
        the demo config refers to (Chaoyang: 望京街道, 酒仙桥街道, …).
    name_field : str
        Street name column.
    seed : int, optional
        Random seed; default from the demo config.

    Raises
    ------
    InputError
        When a street named by the demo config is missing from ``streets``.
    """
    cfg = demo_config_mapping()
    rng = np.random.default_rng(cfg["random_seed"] if seed is None else seed)
    if name_field not in streets.columns:
        raise InputError(
            f"街道边界缺少名称字段 {name_field}", key="field_missing", field=name_field
        )
    geo = to_geographic(streets.geometry)
    by_name = {str(n): g for n, g in zip(streets[name_field], geo.values, strict=True)}
    codes = {
        str(n): str(c)
        for n, c in zip(streets[name_field], streets.get("code", streets[name_field]), strict=True)
    }
    placements = cfg["sites"]["placements"]
    missing = [p["street"] for p in placements if p["street"] not in by_name]
    if missing:
        raise InputError(
            "街道边界中找不到示例站点所在的街道: " + "、".join(missing),
            key="demo_street_missing",
            hint="传入朝阳区街道边界 (beijing_chaoyang_subdistricts_wgs84.geojson)",
        )
    rows = []
    for p in placements:
        pt = _random_points_in(by_name[p["street"]], 1, rng)[0]
        rows.append(
            {
                "site_id": p["site_id"],
                "name": p["name"],
                "street_name": p["street"],
                "street_code": codes[p["street"]],
                "synthetic": True,
                "geometry": pt,
            }
        )
    sites = gpd.GeoDataFrame(rows, geometry="geometry", crs=4490)
    # Synthetic stops: some close to each site (100–750 m, in the GK zone), plus background.
    epsg = int(gk_zone_epsg(float(np.mean([r["geometry"].x for r in rows]))))
    fwd = Transformer.from_crs(4490, epsg, always_xy=True)
    inv = Transformer.from_crs(epsg, 4490, always_xy=True)
    stops: list[shapely.Point] = []
    for p, r in zip(placements, rows, strict=True):
        x0, y0 = fwd.transform(r["geometry"].x, r["geometry"].y)
        k = int(p.get("stops_near", 0))
        dist = rng.uniform(100.0, 750.0, k)
        ang = rng.uniform(0.0, 2 * np.pi, k)
        lon, lat = inv.transform(x0 + dist * np.cos(ang), y0 + dist * np.sin(ang))
        stops.extend(
            shapely.Point(a, b) for a, b in zip(np.atleast_1d(lon), np.atleast_1d(lat), strict=True)
        )
    district = shapely.union_all(np.asarray(geo.values, dtype=object))
    stops.extend(_random_points_in(district, int(cfg["sites"].get("background_stops", 0)), rng))
    stop_layer = gpd.GeoDataFrame(
        {"stop_id": [f"T{i + 1:03d}" for i in range(len(stops))], "synthetic": True},
        geometry=stops,
        crs=4490,
    )
    gap = cfg["tables"]["facility_gap"]
    table = pd.DataFrame(gap["rows"])
    table["synthetic"] = True
    config = parse_scoring_config(cfg)
    return DemoScoring(
        sites=sites,
        layers={"transit_stops": stop_layer},
        tables={"facility_gap": table},
        config=config,
        mapping=cfg,
        boundaries=streets,
    )
