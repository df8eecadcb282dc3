"""Public portal (公众门户) content: the zone land-price table and FAR map of 004 (九).

Seed 004 (九) asks for a published 区片地价一张表 and 区片容积率一张图. No real figures exist
in the seeds, so the demo builds SYNTHETIC zones (合成数据) inside the real Dongguan town
boundaries, with prices and floor-area ratios taken from ``portal_zones.yaml``. The layer
``portal_zones`` and the table ``portal_land_price`` are written published, so the public
API (``/api/public/...``, ``/tiles``, ``/ogc``) serves them without login.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
import yaml

from yizhangtu.errors import InputError, NotFoundError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.store import LayerSpec, Store

__all__ = [
    "PORTAL_LAYER",
    "PORTAL_TABLE",
    "STEPS",
    "build_zones",
    "demo_step_portal",
    "load_zone_spec",
    "portal_overview",
    "write_portal",
]

PORTAL_LAYER = "portal_zones"
PORTAL_TABLE = "portal_land_price"
_SPEC = Path(__file__).with_name("portal_zones.yaml")
_TABLE_META = "web_table_meta"
#: Published tables the portal knows how to present, with their Chinese titles.
KNOWN_TABLES = {
    PORTAL_TABLE: "区片地价一张表",
    "reduction_ledger": "减量台账",
    "indicator_evaluations": "城市体检指标",
}


@lru_cache(maxsize=1)
def load_zone_spec(path: str | None = None) -> dict[str, Any]:
    """Load the zone values (YAML, synthetic, clause 004 (九))."""
    with open(path or _SPEC, encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    if not spec.get("synthetic"):
        raise InputError(
            "区片演示数据必须标注 synthetic: true",
            key="portal_not_synthetic",
            file=str(path or _SPEC),
        )
    return spec


def _strips(geom: Any, n: int) -> list[Any]:
    """Cut a polygon into ``n`` west-east strips of equal width (by bounding box)."""
    minx, miny, maxx, maxy = geom.bounds
    w = (maxx - minx) / n
    out = []
    for i in range(n):
        cell = shapely.box(minx + i * w, miny, minx + (i + 1) * w if i < n - 1 else maxx, maxy)
        part = shapely.make_valid(geom.intersection(cell))
        polys = [
            g for g in getattr(part, "geoms", [part]) if g.geom_type in ("Polygon", "MultiPolygon")
        ]
        out.append(shapely.union_all(polys) if polys else shapely.Polygon())
    return out


def build_zones(towns: gpd.GeoDataFrame, spec: dict[str, Any]) -> gpd.GeoDataFrame:
    """Zones as polygons with their synthetic price and FAR (pure; CRS of ``towns``).

    Parameters
    ----------
    towns : GeoDataFrame
        Town boundaries with the code and name fields named in ``spec``.
    spec : dict
        :func:`load_zone_spec` content.
    """
    code_f, name_f = spec["town_code_field"], spec["town_name_field"]
    by_code = {str(c): i for i, c in enumerate(towns[code_f].astype(str))}
    rows = []
    for code, zones in spec["towns"].items():
        if str(code) not in by_code:
            raise NotFoundError(f"镇街边界中没有 {code}", key="portal_town_missing", field=code_f)
        t = towns.iloc[by_code[str(code)]]
        for z, geom in zip(zones, _strips(t.geometry, len(zones)), strict=True):
            rows.append(
                {
                    "zone_id": z["zone"],
                    "town_code": str(code),
                    "town": str(t[name_f]),
                    "land_use": z["use"],
                    "price_yuan_m2": float(z["price"]),
                    "far": float(z["far"]),
                    "valuation_date": spec["valuation_date"],
                    "clause": spec["clause"],
                    "synthetic": True,
                    "geometry": geom,
                }
            )
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=towns.crs)
    gdf["area_m2"] = ellipsoidal_area(gdf.geometry).round(1)
    return gdf


def write_portal(store: Store, *, actor: str, towns_layer: str | None = None) -> dict[str, Any]:
    """Write the published zone layer and land-price table; returns what was written."""
    spec = load_zone_spec()
    towns = store.read_layer(towns_layer or spec["towns_layer"])
    zones = build_zones(towns, spec)
    snap = store.write_snapshot(
        LayerSpec(
            name=PORTAL_LAYER,
            kind="plan",
            title="区片容积率一张图 (合成数据)",
            id_field="zone_id",
            description=(
                f"合成数据 (SYNTHETIC): 演示用区片, 非真实地价与容积率; 依据 {spec['clause']}"
            ),
            synthetic=True,
            published=True,
        ),
        [zones],
        label=spec["valuation_date"][:4],
        obs_date=spec["valuation_date"],
        actor=actor,
    )
    table = pd.DataFrame(zones.drop(columns="geometry"))
    table = table[
        [
            "zone_id",
            "town_code",
            "town",
            "land_use",
            "price_yuan_m2",
            "far",
            "area_m2",
            "valuation_date",
            "clause",
            "synthetic",
        ]
    ]
    store.write_table(PORTAL_TABLE, table, actor=actor)
    meta = {"published": True, "title": "区片地价一张表 (合成数据)"}
    try:
        cur = store.get_record(_TABLE_META, PORTAL_TABLE)
        store.put_record(
            _TABLE_META,
            PORTAL_TABLE,
            {**cur.data, **meta},
            expected_version=cur.version,
            actor=actor,
        )
    except NotFoundError:
        store.put_record(_TABLE_META, PORTAL_TABLE, meta, expected_version=None, actor=actor)
    return {
        "layer": PORTAL_LAYER,
        "snapshot": snap.id,
        "zones": len(zones),
        "table": PORTAL_TABLE,
        "synthetic": True,
    }


def portal_overview(store: Store) -> dict[str, Any]:
    """Describe what the public portal shows: the zone layer and tables, if published."""
    from yizhangtu.services.auth import ANONYMOUS
    from yizhangtu.services.records import visible_tables

    tables = visible_tables(store, ANONYMOUS)
    names = {t["name"] for t in tables}
    try:
        info = store.layer(PORTAL_LAYER)
        zones = info.name if info.published and info.current_snapshot is not None else None
    except NotFoundError:
        zones = None
    spec = load_zone_spec()
    return {
        "zones_layer": zones,
        "price_table": PORTAL_TABLE if PORTAL_TABLE in names else None,
        "price_unit": spec["price_unit"],
        "clause": spec["clause"],
        "synthetic": bool(spec["synthetic"]),
        "tables": [t | {"portal_title": KNOWN_TABLES.get(t["name"])} for t in tables],
    }


def demo_step_portal(ctx: Any) -> None:
    """Demo step: the synthetic zones inside ``dongguan_towns`` (needs the boundaries step)."""
    res = write_portal(ctx.store, actor=ctx.settings.actor)
    ctx.note(
        "区片地价/容积率", PORTAL_LAYER, res["zones"], synthetic=True, detail="(公开, 004 (九))"
    )


STEPS = [("portal", demo_step_portal)]
