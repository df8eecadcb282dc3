"""Build the demo workspace from real boundaries and census tables plus labelled synthetic layers.

Each capability contributes a step; steps run in order and report what they built. Real data
goes through the same import pipeline as a user's files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, Store, open_store

__all__ = ["DemoContext", "DemoStep", "build_demo", "demo_steps"]


@dataclass
class DemoContext:
    """State shared by the demo steps."""

    store: Store
    out_dir: Path
    shared: Path
    settings: Settings
    log: Callable[[str], None]
    built: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def note(
        self, what: str, name: str, count: int | str, synthetic: bool = False, detail: str = ""
    ) -> None:
        """Record one built item."""
        self.built.append(
            {"what": what, "name": name, "count": count, "synthetic": synthetic, "detail": detail}
        )
        self.log(f"{'[合成] ' if synthetic else ''}{what} {name}: {count} {detail}".rstrip())

    @property
    def sources(self) -> Path:
        """Where generated source files are written before import."""
        p = self.out_dir / "sources"
        p.mkdir(parents=True, exist_ok=True)
        return p


DemoStep = Callable[[DemoContext], None]

# (file, layer, title); all real, WGS84, from ../shared/data/boundaries
_BOUNDARIES = (
    ("beijing_districts_tianditu_wgs84.geojson", "bj_districts", "北京市区县界 (天地图底图数字化)"),
    ("beijing_subdistricts_wgs84.geojson", "bj_streets", "北京市街道乡镇界 (343 个)"),
    ("beijing_chaoyang_subdistricts_wgs84.geojson", "chaoyang_streets", "朝阳区街道乡镇界 (43 个)"),
    ("beijing_fangshan_subdistricts_wgs84.geojson", "fangshan_streets", "房山区街道乡镇界 (28 个)"),
    ("dongguan_towns_33_poi86_wgs84.geojson", "dongguan_towns", "东莞市镇街界 (33 个, 含松山湖)"),
)

_TABLES = (
    (
        "census2020_urbanization_beijing_hunan_dongguan.csv",
        "census2020",
        "第七次全国人口普查 (县级, 城镇化)",
    ),
    ("census2010_county_beijing_hunan_dongguan.csv", "census2010", "第六次全国人口普查 (县级)"),
    (
        "census_city_2010_2020_beijing_hunan_dongguan.csv",
        "census_city",
        "地级市 2010/2020 人口普查",
    ),
)


def step_boundaries(ctx: DemoContext) -> None:
    """Import the real administrative boundaries."""
    from yizhangtu.services.layers import ImportOptions, import_file

    for fname, layer, title in _BOUNDARIES:
        path = ctx.shared / "data" / "boundaries" / fname
        res = import_file(
            ctx.store,
            path,
            LayerSpec(
                name=layer,
                kind="boundary",
                title=title,
                description="真实边界, 来源见 shared/data/README.md; 仅供内部测试与演示",
                id_field="code" if "beijing" in fname and "districts" not in fname else None,
                published=True,
            ),
            label="2023",
            options=ImportOptions(offset_check=False),
            settings=ctx.settings,
        )
        ctx.note("边界", layer, res.snapshot.feature_count)


def step_census(ctx: DemoContext) -> None:
    """Load the census tables as ledger tables."""
    for fname, name, title in _TABLES:
        df = pd.read_csv(
            ctx.shared / "data" / "stats" / fname,
            dtype={"code": str, "adcode": str, "county_code": str},
        )
        ctx.store.write_table(name, df, actor=ctx.settings.actor, action="table.import")
        ctx.note("统计表", f"{name} ({title})", len(df))


def _edge_matched(gdf: Any) -> Any:
    from yizhangtu.geo.area import ellipsoidal_area
    from yizhangtu.geo.coverage import edge_match

    out = edge_match(gdf)
    if "TBMJ" in out.columns:
        out["TBMJ"] = ellipsoidal_area(out.geometry).round(2)
    return out


def step_survey(ctx: DemoContext) -> None:
    """Generate the synthetic Chaoyang survey series and import each year as a 三调 delivery.

    The base year is generated; every later year is the previous one evolved by the year's
    changes, including the reduction plots (减量地块) drawn on the previous year when the
    reduction demo is present (:func:`yizhangtu.services.demo_reduction.survey_years`).
    """
    import pyogrio

    from yizhangtu.demo.synthetic import evolve_survey, generate_survey
    from yizhangtu.geo.coverage import clean_coverage
    from yizhangtu.services.layers import ImportOptions, import_file

    streets = ctx.store.read_layer("chaoyang_streets")
    # the digitised streets overlap and leave slivers; a survey must tile, so clean first
    units, moved = clean_coverage(streets)
    ctx.log(
        f"街乡边界拓扑清理: 重叠 {moved['overlap_m2']:.0f} ㎡、"
        f"缝隙 {moved['gap_filled_m2']:.0f} ㎡ 并入相邻街乡"
    )
    base, years = _survey_years(ctx)
    survey = _edge_matched(
        generate_survey(units, unit_field="code", seed=2020, profile="chaoyang", year=base)
    )
    ctx.extras[f"survey_{base}"] = survey
    desc = "合成数据 (SYNTHETIC): 在真实街乡边界内生成的三调式图斑, 非真实调查成果"
    for year in (base, *years):
        if year != base:
            # the year's reduction plots are drawn on last year's survey and shape this one
            _run_optional(ctx, "yizhangtu.services.demo_reduction", "demo_plots", year)
            plots = ctx.extras.get("plots", {}).get(year)
            prev = ctx.extras[f"survey_{year - 1}"]
            # earlier plots stay as accepted: a rebuild on them is staged, never random
            earlier = [g.geometry for y, g in ctx.extras.get("plots", {}).items() if y < year]
            protect = pd.concat(earlier) if earlier else None
            gdf, log = evolve_survey(
                prev, seed=year, year=year, profile="chaoyang", plots=plots, protect=protect
            )
            gdf = _edge_matched(gdf)
            ctx.extras[f"survey_{year}"] = gdf
            ctx.extras[f"changes_{year}"] = log
        gdf = ctx.extras[f"survey_{year}"]
        # delivered the way bureaus deliver 三调: GBK Shapefile in CGCS2000 3° GK zone 39
        shp = ctx.sources / f"DLTB_chaoyang_{year}_synthetic.shp"
        pyogrio.write_dataframe(gdf.to_crs(4527), shp, encoding="GBK")
        shp.with_suffix(".cpg").unlink(missing_ok=True)
        res = import_file(
            ctx.store,
            shp,
            LayerSpec(
                name="survey",
                kind="survey",
                title="朝阳区三调图斑 (合成数据)",
                description=desc,
                code_system="sandiao",
                code_field="DLBM",
                id_field="BSM",
                synthetic=True,
            ),
            label=str(year),
            options=ImportOptions(
                code_field="DLBM", code_system="sandiao", id_field="BSM", offset_check=False
            ),
            settings=ctx.settings,
        )
        ctx.note(
            "三调图斑",
            f"survey@{year}",
            res.snapshot.feature_count,
            synthetic=True,
            detail=f"(GBK Shapefile, EPSG:4527 → {res.snapshot.crs})",
        )


def _survey_years(ctx: DemoContext) -> tuple[int, tuple[int, ...]]:
    """Return the base survey year and the evolved years (the reduction demo's, if present)."""
    import importlib

    try:
        mod = importlib.import_module("yizhangtu.services.demo_reduction")
    except ModuleNotFoundError as exc:
        if exc.name != "yizhangtu.services.demo_reduction":
            raise
        return 2020, (2021,)
    return mod.survey_years()


def _run_optional(ctx: DemoContext, module: str, func: str, *args: Any) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        ctx.log(f"跳过 {module}.{func} (模块不存在)")
        return
    getattr(mod, func)(ctx, *args)


def _optional(module: str, func: str) -> DemoStep:
    def step(ctx: DemoContext) -> None:
        _run_optional(ctx, module, func)

    step.__name__ = func
    return step


def demo_steps() -> list[tuple[str, DemoStep]]:
    """Return the steps in order. Reduction runs last: it adds the 2022 survey snapshot."""
    return [
        ("boundaries", step_boundaries),
        ("census", step_census),
        ("survey", step_survey),
        ("conformance", _optional("yizhangtu.services.demo_conformance", "demo_step_conformance")),
        ("renewal", _optional("yizhangtu.services.demo_renewal", "demo_step_renewal")),
        ("rights", _optional("yizhangtu.services.demo_rights", "demo_step_rights")),
        ("tasks", _optional("yizhangtu.services.demo_tasks", "demo_step_tasks")),
        ("indicators", _optional("yizhangtu.services.demo_indicators", "demo_step_indicators")),
        ("scoring", _optional("yizhangtu.services.demo_tasks", "demo_step_scoring")),
        ("portal", _optional("yizhangtu.services.portal", "demo_step_portal")),
        ("reduction", _optional("yizhangtu.services.demo_reduction", "demo_step_reduction")),
        ("users", step_users),
    ]


#: Demo accounts: one per role, plus the districts/departments that own the Dongguan renewal
#: library and the Hunan tasks (a jurisdiction is one administrative-code prefix).
DEMO_USERS = (
    ("admin", "city_admin", "11", "北京市管理员 (演示)"),
    ("chaoyang", "district", "110105", "朝阳区规划自然资源分局 (演示)"),
    ("nanmofang", "township", "110105021", "南磨房乡 (演示)"),
    ("ghzy", "department", "110105", "朝阳区规划部门 (演示)"),
    ("public", "public", "11", "公众 (演示)"),
    ("dongguan", "district", "4419", "东莞市更新部门 (演示)"),
    ("hunan", "department", "43", "湖南省城镇化办公室 (演示)"),
)


def step_users(ctx: DemoContext) -> None:
    """Create one demo account per role; passwords go to ``<out>/demo-users.txt`` (mode 600).

    A password already in that file is kept, so rebuilding the demo does not change logins.
    """
    import os
    import secrets

    from yizhangtu.errors import ConflictError
    from yizhangtu.services.users import add_user, set_password

    path = ctx.out_dir / "demo-users.txt"
    known: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                known[parts[0]] = parts[1]
    lines = ["# 演示账号 (仅供演示, 勿用于真实数据): 用户名 密码 角色 辖区 说明"]
    for name, role, jurisdiction, label in DEMO_USERS:
        password = known.get(name) or secrets.token_urlsafe(9)
        try:
            add_user(
                ctx.store,
                name,
                password,
                role=role,
                jurisdiction=jurisdiction,
                display_name=label,
                actor=ctx.settings.actor,
            )
        except ConflictError:  # a PostGIS workspace is not wiped between builds
            set_password(ctx.store, name, password, actor=ctx.settings.actor)
        lines.append(f"{name} {password} {role} {jurisdiction} {label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    ctx.extras["users_file"] = str(path)
    ctx.note(
        "演示账号",
        str(path),
        len(DEMO_USERS),
        detail="每个角色一个 (市级、区级、乡镇、部门、公众) 及东莞、湖南; 密码见该文件",
    )


def build_demo(
    out_dir: str | Path,
    *,
    shared: str | Path,
    settings: Settings,
    workspace: str | None = None,
    log: Callable[[str], None] = print,
    only: set[str] | None = None,
) -> DemoContext:
    """Build the demo into ``out_dir`` (workspace ``out_dir/yizhangtu-demo.gpkg`` unless given)."""
    out = Path(out_dir)
    shared = Path(shared)
    if not (shared / "data" / "boundaries").is_dir():
        raise InputError(
            f"找不到共享数据目录: {shared}",
            key="shared_missing",
            file=str(shared),
            hint="设置 YIZHANGTU_SHARED_DIR 指向 shared/ 目录",
        )
    out.mkdir(parents=True, exist_ok=True)
    uri = workspace or str(out / "yizhangtu-demo.gpkg")
    if not uri.startswith("postgresql"):
        Path(uri).unlink(missing_ok=True)
        shutil.rmtree(out / "sources", ignore_errors=True)
        shutil.rmtree(out / "reports", ignore_errors=True)
    store = open_store(uri, create=True)
    ctx = DemoContext(store=store, out_dir=out, shared=shared, settings=settings, log=log)
    try:
        for name, step in demo_steps():
            if only is None or name in only:
                step(ctx)
    finally:
        store.close()
    ctx.extras["workspace"] = uri
    return ctx
