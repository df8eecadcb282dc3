"""Demo step of the conformance capability (合成数据): control lines, plans, a red-line check.

Inside the real Chaoyang and Fangshan boundaries of the demo store it generates, seeded:

- the three national control lines ``eco_redline``, ``basic_farmland``, ``urban_boundary``
  (城镇集中建设区 / 城镇弹性发展区 / 特别用途区 in its ``zone`` field), with two deliberate
  overlaps so the mutual-exclusion check has something to find;
- Beijing's 两线三区: ``bj_zones`` (集中建设区 / 限制建设区 / 生态控制区 tiling each district) and
  ``eco_control_line``;
- two plan layers: ``plan_landuse`` (区级用地用海规划, landsea-2023 codes) and ``plan_zoning``
  (两线三区 as a zoning plan, plain values);
- a registered red line ``redlines`` and a project delivered as a 界址点 TXT file whose
  coordinates differ from the registered ones by a 0.3 m transformation offset.

Everything is labelled synthetic (``synthetic=True`` and 合成数据 in titles) and imported through
``Store.write_snapshot``. The step then runs the line check, the conflict analysis (三调 × 用地用海
and 城镇开发边界 × 三调 where the demo survey exists), the transmission check of seed 002's caps and
the red-line check, and writes the one-page result (HTML and PDF) into ``out_dir/reports``.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
import shapely.ops
from pyproj import CRS

from yizhangtu.errors import NotFoundError
from yizhangtu.store import LayerSpec

__all__ = ["SEED", "demo_step_conformance", "synthetic_control_layers"]

SEED = 2035
_PLANE = CRS.from_epsg(4548)  # CGCS2000 3° zone 39 (117°E), no prefix: both districts
_JZD_CRS = CRS.from_epsg(4527)  # the same zone with the zone number prefixed, as 界址点 files use
_DESC = "合成数据 (SYNTHETIC): 在真实区界内按固定随机种子生成, 非真实管控线或规划成果, 仅供演示"
_AT = date(2024, 12, 31)


def _blobs(
    rng: np.random.Generator, region: Any, n: int, r: tuple[float, float], where: Any = None
) -> Any:
    """Unite ``n`` random ellipses (radii in metres) centred in ``where`` (default ``region``)."""
    area = where if where is not None else region
    if area.is_empty:
        return shapely.Polygon()
    minx, miny, maxx, maxy = area.bounds
    shapes: list[Any] = []
    tries = 0
    while len(shapes) < n and tries < n * 50:
        tries += 1
        p = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if not area.contains(p):
            continue
        a, b = rng.uniform(*r), rng.uniform(*r)
        e = shapely.affinity.scale(p.buffer(1.0, quad_segs=8), a, b)
        shapes.append(shapely.affinity.rotate(e, rng.uniform(0, 180), origin=p))
    if not shapes:
        return shapely.Polygon()
    return shapely.union_all(shapes).intersection(region)


def _keep(g: Any) -> Any:
    """Keep polygonal parts above 2000 m², without simplifying (boundaries stay exact)."""
    return _clean(g, 0.0)


def _clean(g: Any, tol: float = 5.0) -> Any:
    g = shapely.make_valid(shapely.simplify(g, tol) if tol > 0 else g)
    polys = [p for p in _polygons(g) if p.area > 2_000]
    return (
        shapely.MultiPolygon(polys)
        if len(polys) > 1
        else (polys[0] if polys else shapely.Polygon())
    )


def _district_lines(
    rng: np.random.Generator, streets: gpd.GeoDataFrame, district: str, *, mountainous: bool
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Control lines and zones of one district, in the GK plane."""
    region = shapely.union_all(np.asarray(streets.geometry.values, dtype=object)).buffer(0)
    minx, _, maxx, _ = region.bounds
    width = maxx - minx
    if mountainous:  # Fangshan: the 街道 form the towns
        urban_units = streets[streets["name"].str.endswith("街道")]
    else:  # Chaoyang: urbanised but for the outer ring; the 80 % of units nearest the centre
        c = region.centroid
        d = streets.geometry.centroid.distance(c)
        urban_units = streets[d <= d.quantile(0.8)]
    urban_core = (
        shapely.union_all(np.asarray(urban_units.geometry.values, dtype=object))
        .buffer(-150)
        .buffer(450)
        .intersection(region)
    )
    if mountainous:  # Fangshan: mountains in the west
        west = shapely.box(
            minx, region.bounds[1], minx + 0.55 * width, region.bounds[3]
        ).intersection(region)
        eco = _blobs(rng, region, 30, (1500, 4500), where=west)
    else:  # Chaoyang: a few river and wetland patches in the north-east
        ne = shapely.box(
            minx + 0.55 * width,
            region.bounds[1] + 0.5 * (region.bounds[3] - region.bounds[1]),
            maxx,
            region.bounds[3],
        ).intersection(region)
        eco = _blobs(rng, region, 4, (400, 900), where=ne)
    eco = _clean(eco.difference(urban_core.buffer(300)))
    special = _blobs(rng, region, 2, (400, 800), where=urban_core.buffer(-800)).intersection(
        urban_core
    )
    special = _keep(_clean(special).difference(eco))
    concentrated = _keep(_clean(urban_core).difference(eco).difference(special))
    elastic = _keep(
        _clean(
            _blobs(rng, region, 6, (600, 1200), where=urban_core.buffer(900).difference(urban_core))
        )
        .difference(urban_core)
        .difference(concentrated)
        .difference(special)
        .difference(eco)
    )
    urban = shapely.union_all([concentrated, special, elastic])
    plain = region.difference(eco).difference(urban.buffer(200))
    farmland = _blobs(
        rng,
        region,
        25 if mountainous else 6,
        (700, 2000) if mountainous else (300, 700),
        where=plain,
    )
    farmland = _keep(_clean(farmland).difference(eco).difference(urban))
    # two deliberate overlaps (合成冲突示例): farmland over the red line, farmland over the boundary
    deliberate = []
    for other in (eco, concentrated):
        if other.is_empty:
            continue
        b = other.boundary
        p = b.interpolate(0.37 * b.length)
        deliberate.append(
            _keep(shapely.box(p.x - 150, p.y - 150, p.x + 150, p.y + 150).intersection(region))
        )
    # Beijing 两线三区 tiling the district
    z_conc = urban
    z_restr = _keep(
        _clean(urban.buffer(1200)).intersection(region).difference(urban).difference(eco)
    )
    z_eco = _keep(region.difference(z_conc).difference(z_restr))
    # simplification may have pushed edges a few metres past the district: clip everything back
    eco, farmland, concentrated, elastic, special = (
        _keep(g.intersection(region)) for g in (eco, farmland, concentrated, elastic, special)
    )
    deliberate = [_keep(g.intersection(region)) for g in deliberate]
    z_conc, z_restr, z_eco = (_keep(g.intersection(region)) for g in (z_conc, z_restr, z_eco))
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {
        "eco_redline": [
            (g, {"name": f"{district}生态保护红线(合成)", "district": district})
            for g in [eco]
            if not g.is_empty
        ],
        "basic_farmland": [
            (g, {"name": f"{district}永久基本农田(合成)", "district": district, "note": ""})
            for g in [farmland]
            if not g.is_empty
        ]
        + [
            (
                g,
                {
                    "name": f"{district}永久基本农田(合成)",
                    "district": district,
                    "note": "合成冲突示例",
                },
            )
            for g in deliberate
            if not g.is_empty
        ],
        "urban_boundary": [
            (g, {"name": f"{district}城镇开发边界(合成)", "district": district, "zone": z})
            for g, z in (
                (concentrated, "城镇集中建设区"),
                (elastic, "城镇弹性发展区"),
                (special, "特别用途区"),
            )
            if not g.is_empty
        ],
        "bj_zones": [
            (g, {"district": district, "zone": z})
            for g, z in ((z_conc, "集中建设区"), (z_restr, "限制建设区"), (z_eco, "生态控制区"))
            if not g.is_empty
        ],
        "eco_control_line": [(z_eco, {"name": f"{district}生态控制线(合成)", "district": district})]
        if not z_eco.is_empty
        else [],
    }
    return out


def _plan_cells(rng: np.random.Generator, region: Any, n: int) -> list[Any]:
    minx, miny, maxx, maxy = region.bounds
    pts: list[Any] = []
    while len(pts) < n:
        x, y = rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)
        cand = shapely.points(x, y)
        pts.extend(cand[shapely.contains(region, cand)].tolist())
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.MultiPoint(pts[:n]), extend_to=region.envelope.buffer(1000)
        )
    )
    out: list[Any] = []
    for c in cells:
        g = shapely.make_valid(c.intersection(region))
        out.extend(p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 100)
    return out


def _plan_code(rng: np.random.Generator, zone: str, on_farm: bool) -> str:
    if zone == "集中建设区":
        return str(rng.choice(["0701", "0701", "0801", "0901", "1001", "1101", "1207", "1401"]))
    if on_farm:
        return str(
            rng.choice(["0102", "0103", "0103", "0701"])
        )  # some planned construction on farmland
    if zone == "限制建设区":
        return str(rng.choice(["0201", "0103", "0703", "0301", "1001"]))
    return str(rng.choice(["0301", "0301", "0401", "1701", "0103"]))


def synthetic_control_layers(
    streets_by_district: dict[str, gpd.GeoDataFrame], *, seed: int = SEED
) -> dict[str, gpd.GeoDataFrame]:
    """Generate the synthetic control-line, zone and plan layers (EPSG:4490) by layer name."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    plan_rows: list[tuple[Any, dict[str, Any]]] = []
    for district, streets in streets_by_district.items():
        plane = streets.to_crs(_PLANE)
        parts = _district_lines(rng, plane, district, mountainous=district == "房山区")
        for k, v in parts.items():
            acc.setdefault(k, []).extend(v)
        region = shapely.union_all(np.asarray(plane.geometry.values, dtype=object)).buffer(0)
        zones = parts["bj_zones"]
        farm = (
            shapely.union_all([g for g, _ in parts["basic_farmland"]])
            if parts["basic_farmland"]
            else shapely.Polygon()
        )
        cells = _plan_cells(rng, region, 380 if district == "房山区" else 260)
        for i, c in enumerate(cells):
            rp = c.representative_point()
            zone = next((a["zone"] for g, a in zones if g.contains(rp)), "生态控制区")
            code = _plan_code(rng, zone, farm.contains(rp))
            plan_rows.append(
                (c, {"GHBH": f"{district[:2]}-{i + 1:04d}", "YDYHFLDM": code, "district": district})
            )
    out: dict[str, gpd.GeoDataFrame] = {}
    for name, rows in acc.items():
        out[name] = _frame(rows)
    out["plan_landuse"] = _frame(plan_rows)
    zoning = out["bj_zones"].copy()
    zoning["GHFQ"] = zoning["zone"]
    out["plan_zoning"] = zoning[["GHFQ", "district", "SYNTHETIC", "geometry"]]
    return out


def _polygons(g: Any) -> list[Any]:
    """Every polygon in ``g``, however deeply nested in collections."""
    out: list[Any] = []
    for p in shapely.get_parts(g):
        if p.geom_type == "Polygon":
            if not p.is_empty:
                out.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygons(p))
    return out


def _multi(g: Any) -> Any:
    return shapely.MultiPolygon(_polygons(shapely.make_valid(g)))


def _frame(rows: list[tuple[Any, dict[str, Any]]]) -> gpd.GeoDataFrame:
    attrs = pd.DataFrame([a for _, a in rows])
    gdf = gpd.GeoDataFrame(attrs, geometry=[_multi(g) for g, _ in rows], crs=_PLANE).to_crs(4490)
    # reprojection can make near-degenerate rings invalid: repair and keep polygonal parts
    gdf = gdf.set_geometry([_multi(g) for g in gdf.geometry])
    gdf = gdf[~gdf.geometry.is_empty].reset_index(drop=True)
    gdf["SYNTHETIC"] = True
    return gdf


_LAYERS = (
    ("eco_redline", "control_line", "生态保护红线(合成数据)", None, None),
    ("basic_farmland", "control_line", "永久基本农田(合成数据)", None, None),
    ("urban_boundary", "control_line", "城镇开发边界(合成数据)", None, None),
    ("eco_control_line", "control_line", "生态控制线(合成数据)", None, None),
    ("bj_zones", "control_line", "两线三区分区(合成数据)", None, None),
    ("plan_landuse", "plan", "区级国土空间规划用地用海(合成数据)", "landsea-2023", "YDYHFLDM"),
    ("plan_zoning", "plan", "两线三区管控分区规划(合成数据)", None, "GHFQ"),
)


def _project(store_lines: dict[str, gpd.GeoDataFrame]) -> tuple[gpd.GeoDataFrame, str]:
    """Build a synthetic project (two parcels) near the Fangshan eco red line and its 界址点 text.

    Parcel 1 straddles the red line (an error); parcel 2 lies in the urban boundary. The TXT
    coordinates are the registered ones shifted 0.3 m (a coordinate-transformation offset).
    """
    eco = store_lines["eco_redline"]
    eco = eco[eco["district"] == "房山区"].to_crs(_JZD_CRS)
    ub = store_lines["urban_boundary"]
    ub = ub[(ub["district"] == "房山区") & (ub["zone"] == "城镇集中建设区")].to_crs(_JZD_CRS)
    e = shapely.union_all(np.asarray(eco.geometry.values, dtype=object))
    b = e.boundary
    # the boundary point of the red line closest to the urban boundary: a plausible project site
    u = shapely.union_all(np.asarray(ub.geometry.values, dtype=object))
    p1 = shapely.ops.nearest_points(b, u)[0]
    x1, y1 = round(p1.x, 0), round(p1.y, 0)
    q = u.representative_point()
    x2, y2 = round(q.x, 0), round(q.y, 0)
    parcels = [
        (
            "FS-2024-001",
            "合成项目(一期)",
            [(x1 - 120, y1 - 90), (x1 + 120, y1 - 90), (x1 + 120, y1 + 90), (x1 - 120, y1 + 90)],
        ),
        (
            "FS-2024-002",
            "合成项目(二期)",
            [(x2 - 100, y2 - 80), (x2 + 100, y2 - 80), (x2 + 100, y2 + 80), (x2 - 100, y2 + 80)],
        ),
    ]
    reg = gpd.GeoDataFrame(
        {"parcel_id": [p[0] for p in parcels], "name": [p[1] for p in parcels], "SYNTHETIC": True},
        geometry=[shapely.MultiPolygon([shapely.Polygon(p[2])]) for p in parcels],
        crs=_JZD_CRS,
    ).to_crs(4490)
    dx, dy = 0.18, 0.24  # 0.3 m
    lines = [
        "[属性描述]",
        "格式版本号=1.0",
        "数据产生单位=yizhangtu 演示(合成数据)",
        f"数据产生日期={_AT.isoformat()}",
        "坐标系=2000国家大地坐标系",
        "几度分带=3",
        "投影类型=高斯克吕格",
        "计量单位=米",
        "带号=39",
        "精度=0.001",
        "转换参数=,,,,,,",
        "[地块坐标]",
    ]
    for pid, name, ring in parcels:
        area_ha = shapely.Polygon(ring).area / 10_000
        lines.append(f"{len(ring) + 1},{area_ha:.4f},{pid},{name},面,,工业用地,1001,@")
        for k, (x, y) in enumerate([*ring, ring[0]]):
            n = k % len(ring) + 1
            # X = northing, Y = easting with the zone prefix (界址点 convention)
            lines.append(f"J{n},1,{y + dy:.3f},{x + dx:.3f}")
    return reg, "\n".join(lines) + "\n"


def demo_step_conformance(ctx: Any) -> None:
    """Add the synthetic control lines and plans, run the checks and write the one-page result."""
    from yizhangtu.reports.redline import render_redline
    from yizhangtu.services.conformance import (
        check_redline_file,
        conflicts_report,
        lines_report,
        load_packs,
        transmission_report,
    )

    store = ctx.store
    names = {li.name for li in store.layers()}
    missing = [n for n in ("chaoyang_streets", "fangshan_streets") if n not in names]
    if missing:
        raise NotFoundError(
            f"演示库缺少边界图层: {', '.join(missing)}",
            key="demo_boundaries_missing",
            hint="先运行 boundaries 步骤",
        )
    streets = {
        "朝阳区": store.read_layer("chaoyang_streets"),
        "房山区": store.read_layer("fangshan_streets"),
    }
    layers = synthetic_control_layers(streets)
    actor = ctx.settings.actor
    for name, kind, title, system, code_field in _LAYERS:
        gdf = layers[name]
        spec = LayerSpec(
            name=name,
            kind=kind,
            title=title,
            description=_DESC,
            code_system=system,
            code_field=code_field,
            synthetic=True,
        )
        snap = store.write_snapshot(
            spec,
            [gdf],
            label="2024",
            obs_date="2024-12-31",
            source_file=f"{name}_synthetic",
            notes={"generator": "yizhangtu.services.demo_conformance", "seed": SEED},
            actor=actor,
            geometry_type="MultiPolygon",
        )
        ctx.note(
            "管控线" if kind == "control_line" else "规划",
            name,
            snap.feature_count,
            synthetic=True,
            detail=title,
        )
    reg, jzd_text = _project(layers)
    snap = store.write_snapshot(
        LayerSpec(
            name="redlines",
            kind="project",
            title="登记项目红线(合成数据)",
            description=_DESC,
            id_field="parcel_id",
            synthetic=True,
        ),
        [reg],
        label="2024",
        obs_date="2024-12-31",
        source_file="redlines_synthetic",
        actor=actor,
        geometry_type="MultiPolygon",
    )
    ctx.note("登记红线", "redlines", snap.feature_count, synthetic=True)
    jzd_path = ctx.sources / "合成项目红线_界址点.txt"
    jzd_path.write_bytes(
        jzd_text.encode("gb18030")
    )  # delivered in GBK, as most 勘测定界 software writes
    packs = load_packs()
    workers = ctx.settings.workers or 1

    lines = lines_report(
        store,
        units_layer="fangshan_streets",
        scope="房山区",
        packs=packs,
        at=_AT,
        actor=actor,
        workers=workers,
    )
    errs = [f for f in lines.overlaps.findings if f.severity == "error"]
    ctx.note(
        "控制线重叠检查",
        "eco_redline/basic_farmland/urban_boundary",
        f"{sum(p.patch_count for p in lines.overlaps.pairs)} 处重叠",
        synthetic=True,
        detail=f"({len(errs)} 项错误, 含合成冲突示例)",
    )
    eco_total = (
        lines.zones.totals.set_index("zone")["share"].get("生态控制区")
        if lines.zones is not None
        else None
    )
    if eco_total is not None:
        ctx.note("两线三区", "房山区生态控制区占比", f"{eco_total:.1%}", synthetic=True)

    reports = ctx.out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"lines": lines.to_dict("ha")}
    if "survey" in names:
        c1 = conflicts_report(
            store,
            "survey",
            "plan_landuse",
            matrix="sandiao-vs-landsea",
            units_layer="chaoyang_streets",
            packs=packs,
            actor=actor,
            workers=workers,
        )
        c2 = conflicts_report(
            store,
            "urban_boundary",
            "survey",
            matrix="urban-boundary-vs-construction",
            units_layer="chaoyang_streets",
            packs=packs,
            actor=actor,
            workers=workers,
        )
        for c, label in ((c1, "三调 × 用地用海"), (c2, "城镇开发边界 × 三调")):
            ctx.note(
                "多规冲突",
                label,
                f"{len(c.result.patches)} 个冲突图斑",
                synthetic=True,
                detail=f"({len(c.result.slivers)} 个细碎图斑另计)",
            )
        summary["conflicts"] = [c1.to_dict("ha"), c2.to_dict("ha")]
    for h in ("chaoyang-2035", "dongguan-demo"):
        t = transmission_report(h, at=_AT, store=store, actor=actor)
        ctx.note(
            "规划传导",
            h,
            "通过" if t.result.ok else "有超限",
            synthetic=t.result.hierarchy.synthetic,
        )
        summary.setdefault("transmission", []).append(t.to_dict())

    outcome = check_redline_file(store, jzd_path, packs=packs, at=_AT, actor=actor, workers=workers)
    paths = [reports / f"redline_check_fangshan.{fmt}" for fmt in ("html", "pdf")]
    render_redline(outcome, paths, unit="m2", project="房山区合成项目红线(合成数据)")
    for path in paths:
        ctx.note("红线审查结果单", path.name, outcome.check.verdict, synthetic=True)
    summary["redline"] = outcome.to_dict("m2")
    (reports / "conformance_summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    ctx.extras["conformance"] = {
        "verdict": outcome.check.verdict,
        "provenance_id": outcome.provenance_id,
    }
