"""Browser tests of the web UI: Playwright (sync) driving Debian's /usr/bin/chromium.

A small workspace is built here: the real Chaoyang streets, a synthetic survey (合成数据) of two
townships with 2020 and 2021 snapshots, three reduction plots per township submitted through the
real QC, the real boundaries of six Dongguan towns with the synthetic portal zones, and one user
per township. The app runs under uvicorn on a free loopback port. Screenshots go to
``tests/output/screenshots`` (gitignored).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("YIZHANGTU_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DATA = Path(__file__).resolve().parent / "data"
SHOTS = Path(__file__).resolve().parent / "output" / "screenshots"
T1, T2 = "110105021000", "110105022000"  # 南磨房乡, 高碑店乡
USERS = {
    "nmf": ("township", "110105021"),
    "gbd": ("township", "110105022"),
    "chaoyang": ("district", "110105"),
    "dongguan": ("district", "4419"),
    "dongguan2": ("district", "4419"),
    "hunan": ("department", "43"),
    "hunan2": ("department", "43"),
}
UI_ROUTERS = ("ui_portal", "ui_indicators", "ui_reduction", "ui_renewal", "ui_tasks")
TIMEOUT = 30_000


def _plot_file(plots: Any, path: Path) -> Path:
    cols = {
        "plot_id": "地块编号",
        "plot_type": "地块类型",
        "ownership": "权属",
        "planned_use": "减量后用途",
    }
    plots.rename(columns=cols)[[*cols.values(), "geometry"]].to_file(path, driver="GeoJSON")
    return path


def _build(uri: str, tmp: Path) -> dict[str, Any]:
    import geopandas as gpd
    import numpy as np
    from argon2 import PasswordHasher

    from yizhangtu.demo.synthetic import generate_survey
    from yizhangtu.geo.area import ellipsoidal_area
    from yizhangtu.policy import load_pack
    from yizhangtu.reduction import Target, construction_mask
    from yizhangtu.services import reduction as red
    from yizhangtu.services.portal import write_portal
    from yizhangtu.services.users import add_user
    from yizhangtu.settings import Settings
    from yizhangtu.store import LayerSpec, open_store
    from yizhangtu.web.testing import PASSWORD

    streets = gpd.read_file(DATA / "chaoyang_streets.geojson").set_crs(4490, allow_override=True)
    survey = generate_survey(
        streets[streets["code"].isin([T1, T2])], unit_field="code", seed=7, n_parcels=300
    )
    survey21 = survey.copy()
    changed = survey21.index[survey21["DLBM"].eq("0702")][:5]
    survey21.loc[changed, "DLBM"] = "0301"
    towns = gpd.read_file(DATA / "web" / "dongguan_towns_portal.geojson").set_crs(
        4490, allow_override=True
    )
    settings = Settings(workspace=uri, actor="test")
    pack = load_pack("beijing-reduction")
    with open_store(uri, create=True) as st:
        st.write_snapshot(
            LayerSpec(
                name="chaoyang_streets",
                kind="boundary",
                title="朝阳区街道乡镇界",
                published=True,
                id_field="code",
            ),
            [streets],
            label="2023",
            actor="test",
        )
        spec = LayerSpec(
            name="survey",
            kind="survey",
            title="朝阳区三调图斑 (合成数据)",
            description="合成数据 (SYNTHETIC)",
            code_system="sandiao",
            code_field="DLBM",
            id_field="BSM",
            synthetic=True,
        )
        st.write_snapshot(spec, [survey], label="2020", obs_date="2020-12-31", actor="test")
        st.write_snapshot(spec, [survey21], label="2021", obs_date="2021-12-31", actor="test")
        st.write_snapshot(
            LayerSpec(
                name="dongguan_towns",
                kind="boundary",
                title="东莞市镇街界 (6 个)",
                published=True,
                id_field="nbs_code",
            ),
            [towns],
            label="2023",
            actor="test",
        )
        write_portal(st, actor="test")
        red.set_config(
            st,
            actor="test",
            units_layer="chaoyang_streets",
            unit_field="code",
            name_field="name",
            parent_field="district_code",
            parent_name_field="district_name",
            survey_layer="survey",
        )
        cons = construction_mask(survey, pack)
        area = ellipsoidal_area(survey.geometry)
        plots: dict[str, Any] = {}
        for code in (T1, T2):
            pick = (
                survey[
                    cons & survey["ZLDWDM"].eq(code).to_numpy() & (area > 2_000) & (area < 60_000)
                ]
                .sort_values("BSM")
                .iloc[:4]
            )
            assert len(pick) == 4, f"too few construction parcels in {code}"
            p = gpd.GeoDataFrame(
                {
                    "plot_id": [f"{code[6:9]}-2021-{k:03d}" for k in range(1, 5)],
                    "plot_type": ["工业大院", "村庄腾退", "拆违腾退", "疏解腾退"],
                    "ownership": np.where(pick["CZCSXM"].astype(str).eq("203"), "集体", "国有"),
                    "planned_use": ["绿地", "林地", "留白", "绿地"],
                },
                geometry=pick.geometry.to_crs(4527)
                .buffer(-1.0, join_style="mitre")
                .to_crs(4490)
                .to_numpy(),
                crs=4490,
            )
            red.submit_plots(
                st,
                _plot_file(p.iloc[:3], tmp / f"plots_{code}.geojson"),
                township=code,
                year=2021,
                settings=settings,
                pack=pack,
            )
            plots[code] = p
        # targets (district from the pack, townships synthetic) and the 2021 acceptance
        red.seed_targets_from_pack(st, pack, actor="test", names={"110105": "朝阳区"})
        for code, name in ((T1, "南磨房乡"), (T2, "高碑店乡")):
            red.set_target(
                st,
                Target(
                    code,
                    name,
                    "township",
                    "total",
                    2035,
                    500_000.0,
                    parent_code="110105",
                    clause="合成数据",
                    synthetic=True,
                ),
                actor="test",
            )
        red.accept_year(st, year=2021, survey="2021", settings=settings, pack=pack)
        # renewal: the synthetic library (合成数据) in four of the six Dongguan towns
        from yizhangtu.renewal.demo import demo_library
        from yizhangtu.services import renewal as ren

        demo = demo_library(towns, seed=0, pack=ren.resolve_pack())
        ren.save_zones(st, demo.zones, actor="test", synthetic=True)
        ids = demo.units["unit_id"].astype(str)
        ren.import_units(
            st,
            demo.library.units,
            actor="test",
            geometries=dict(zip(ids, demo.units.geometry.values, strict=True)),
            crs=demo.units.crs,
            scenarios=dict(zip(ids, demo.units["scenario"], strict=True)),
            update=True,
            source="合成数据",
        )
        # tasks: seed 003's Hunan work points, under the province code 43
        from yizhangtu.services import tasks as tsk
        from yizhangtu.tasks import load_departments, load_seed_tasks

        tsk.import_ledger(
            st,
            load_seed_tasks("hunan_2021"),
            task_set="hunan_2021",
            registry=load_departments("hunan"),
            actor="test",
            jurisdiction="43",
        )
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # test accounts only
        for name, (role, jur) in USERS.items():
            add_user(st, name, PASSWORD, role=role, jurisdiction=jur, actor="test", hasher=cheap)
    upload = _plot_file(plots[T1].iloc[3:], tmp / "减量地块_南磨房乡_补充.geojson")
    # a plot of the other township, renamed: outside 南磨房乡, so the reduction checks fail
    stray = plots[T2].iloc[3:].assign(plot_id="021-2021-099")
    wrong = _plot_file(stray, tmp / "减量地块_越界.geojson")
    return {
        "wrong": wrong,
        "plots": plots,
        "upload": upload,
        "new_plot": str(plots[T1]["plot_id"].iloc[3]),
        "changed": len(changed),
        "renewal_at": demo.at.isoformat(),
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The app over the test workspace, served on a free loopback port."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"找不到 Chromium ({CHROMIUM}): 浏览器测试需要 Debian 的 chromium 包"
            " (apt-get install -y chromium)",
            pytrace=False,
        )
    from yizhangtu.web.testing import LiveServer, make_app

    tmp = tmp_path_factory.mktemp("webui")
    uri = str(tmp / "ws.gpkg")
    built = _build(uri, tmp)
    app = make_app(uri, tmp / "reports")
    included = set(getattr(app.state, "routers", ()))
    for name in UI_ROUTERS:  # until the lead lists them in yizhangtu.web.routers.ROUTER_MODULES
        if name not in included:
            app.include_router(importlib.import_module(f"yizhangtu.web.routers.{name}").router)
    with LiveServer(app) as srv:
        yield SimpleNamespace(url=srv.url, **built)


@pytest.fixture(scope="module")
def browser(site: SimpleNamespace) -> Iterator[Any]:
    """Debian's Chromium through Playwright (never Playwright's own browser download)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page that records script errors and failed API calls."""

    def __init__(self, browser: Any, site: SimpleNamespace, user: str | None = None) -> None:
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(TIMEOUT)
        self.url = site.url
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 500 else None,
        )
        if user:
            from yizhangtu.web.testing import PASSWORD

            self.goto("/login?next=/dash/tasks")
            self.page.fill("#username", user)
            self.page.fill("#password", PASSWORD)
            self.page.click("#login-form button[type=submit]")
            self.page.wait_for_selector("#who")

    def goto(self, route: str) -> None:
        self.page.goto(f"{self.url}/#{route}")

    def wait_map(self, sel: str = "#map") -> None:
        self.page.wait_for_selector(f"{sel}[data-idle]", timeout=TIMEOUT)

    def rendered(self, layer: str) -> list[dict[str, Any]]:
        return self.page.evaluate(
            "(id) => window.yz.map.queryRenderedFeatures({layers: [id]}).map((f) => f.properties)",
            layer,
        )

    def shot(self, name: str, full: bool = False) -> Path:
        path = SHOTS / name
        self.page.screenshot(path=str(path), full_page=full)
        assert path.stat().st_size > 10_000
        return path

    def close(self) -> None:
        assert not self.errors, self.errors
        self.ctx.close()


def _plot_ids(pg: Page) -> set[str]:
    pg.page.wait_for_selector("h2:has-text('本辖区减量地块') + table tbody tr td")
    cells = pg.page.locator(
        "h2:has-text('本辖区减量地块') + table tbody tr td:first-child"
    ).all_inner_texts()
    return set(cells)


def test_township_sees_only_its_own_plots(site: SimpleNamespace, browser: Any) -> None:
    pg = Page(browser, site, "nmf")
    assert "110105021" in pg.page.inner_text("#who")
    mine = set(site.plots[T1]["plot_id"].iloc[:3])
    pg.goto("/dash/reduction")
    assert _plot_ids(pg) == mine
    api = pg.page.request.get(f"{site.url}/api/ui/reduction/plots").json()["plots"]
    assert {p["plot_id"] for p in api} == mine and {p["township"] for p in api} == {T1}

    pg.goto("/map")
    pg.wait_map()
    # the catalogue counts only this township's plots, and the map draws only them
    assert pg.page.locator("#cb-reduction_plots").is_checked()
    assert "3" in pg.page.locator(".tree-item:has(#cb-reduction_plots)").inner_text()
    drawn = pg.rendered("fill-reduction_plots")
    assert drawn, "no reduction plot drawn"
    assert {d["township"] for d in drawn} == {T1}
    assert {d["plot_id"] for d in drawn} <= mine
    # the survey is coloured by land-use code from the palette (not the grey fallback)
    colour = pg.page.evaluate(
        "() => JSON.stringify(window.yz.map.getPaintProperty('fill-survey', 'fill-color'))"
    )
    assert colour.startswith('["match"') and "0701" in colour
    assert pg.page.locator("text=朝阳区三调图斑").count() >= 1
    pg.shot("township_map.png")
    pg.close()


def test_submit_plot_then_see_it_on_the_map(site: SimpleNamespace, browser: Any) -> None:
    pg = Page(browser, site, "nmf")
    pg.goto("/forms/reduction")
    pg.page.wait_for_selector("#plot-form")
    assert pg.page.locator("#plot-township option").all_inner_texts() == ["南磨房乡 (110105021000)"]
    pg.page.fill("#plot-year", "2021")
    # a plot outside the township: checked, shown as failing, and not confirmable as is
    pg.page.set_input_files("#plot-file", str(site.wrong))
    pg.page.click("#plot-check-btn")
    pg.page.wait_for_selector("#plot-summary")
    assert "未通过" in pg.page.inner_text("#plot-check")
    assert pg.page.locator("#plot-confirm").is_disabled()
    pg.page.click("#plot-check button.link")  # 放弃
    pg.page.set_input_files("#plot-file", str(site.upload))
    pg.page.click("#plot-check-btn")
    pg.page.wait_for_selector("#plot-summary")
    assert "1 个地块" in pg.page.inner_text("#plot-summary")
    assert site.new_plot in pg.page.inner_text("#plot-check")
    # checking wrote nothing
    api = pg.page.request.get(f"{site.url}/api/ui/reduction/plots").json()["plots"]
    assert site.new_plot not in {p["plot_id"] for p in api}
    pg.shot("plot_check.png", full=True)
    pg.page.click("#plot-confirm")
    pg.page.wait_for_selector("#plot-done")
    assert "已写入 1 个地块" in pg.page.inner_text("#plot-done")
    pg.page.click("#plot-view-map")
    pg.wait_map()
    drawn = pg.rendered("fill-reduction_plots")
    assert site.new_plot in {d["plot_id"] for d in drawn}
    assert {d["township"] for d in drawn} == {T1}
    # identify: click the new plot and read its attributes from the OGC API
    pg.page.evaluate(
        """(pid) => {
             const m = window.yz.map;
             const f = m.queryRenderedFeatures({layers: ['fill-reduction_plots']})
               .find((x) => x.properties.plot_id === pid);
             const b = f.geometry.coordinates.flat(Infinity);
             const xs = b.filter((_, i) => i % 2 === 0), ys = b.filter((_, i) => i % 2 === 1);
             const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
             const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
             m.jumpTo({center: [cx, cy], zoom: 16});
           }""",
        site.new_plot,
    )
    pg.wait_map()
    box = pg.page.locator("#map canvas").bounding_box()
    pg.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.page.wait_for_selector(f"#identify :text('{site.new_plot}')")
    assert "椭球面积" in pg.page.inner_text("#identify")
    pg.shot("plot_on_map.png")
    # the other township still does not see it
    other = Page(browser, site, "gbd")
    ids = {
        p["plot_id"]
        for p in other.page.request.get(f"{site.url}/api/ui/reduction/plots").json()["plots"]
    }
    assert ids == set(site.plots[T2]["plot_id"].iloc[:3])
    other.close()
    pg.close()


def test_public_portal_shows_the_land_price_table(site: SimpleNamespace, browser: Any) -> None:
    import yaml

    from yizhangtu.services.portal import _SPEC

    spec = yaml.safe_load(_SPEC.read_text(encoding="utf-8"))
    zones = {z["zone"]: z for zs in spec["towns"].values() for z in zs}
    pg = Page(browser, site)  # no login
    pg.goto("/portal")
    pg.page.wait_for_selector("table caption:has-text('区片地价一张表')")
    rows = pg.page.locator("section:has(h2:has-text('区片地价一张表')) tbody tr").all()
    got = {}
    for r in rows:
        cells = r.locator("td").all_inner_texts()
        got[cells[0]] = cells
    assert set(got) == set(zones)
    assert got["GC-1"][1] == "莞城街道" and got["GC-1"][3] == f"{zones['GC-1']['price']:,}"
    assert (
        pg.page.locator("section:has(h2:has-text('区片地价一张表')) .badge.synthetic").count() >= 1
    )
    pg.wait_map("#portal-map")
    # unpublished staff layers stay hidden from the public
    public = pg.page.inner_text("section:has(h2:has-text('公开图层'))")
    assert "区片容积率一张图" in public and "三调图斑" not in public and "减量地块" not in public
    assert pg.page.request.get(f"{site.url}/api/ui/reduction/plots").status == 401
    pg.shot("portal.png", full=True)
    pg.close()


def test_map_measures_ellipsoidal_area_and_compares_snapshots(
    site: SimpleNamespace, browser: Any
) -> None:
    import geopandas as gpd
    from shapely.geometry import Polygon

    from yizhangtu.geo.area import ellipsoidal_area

    pg = Page(browser, site, "chaoyang")
    pg.goto("/map?layers=survey,chaoyang_streets")
    pg.wait_map()
    box = pg.page.locator("#map canvas").bounding_box()
    pixels = [(0.3, 0.3), (0.7, 0.35), (0.65, 0.75), (0.35, 0.7)]
    pg.page.click("#measure-btn")
    for fx, fy in pixels:
        pg.page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    pg.page.click("#measure-finish")
    m2 = float(pg.page.get_attribute("#measure-result", "data-m2"))
    lnglat = pg.page.evaluate("() => window.yz.state.measure")
    assert len(lnglat) == len(pixels)
    expected = float(ellipsoidal_area(gpd.GeoSeries([Polygon(lnglat)], crs=4490))[0])
    assert m2 == pytest.approx(expected, rel=1e-6)
    assert "公顷" in pg.page.inner_text("#measure-result")

    pg.page.select_option("#cmp-layer", "survey")
    pg.page.select_option("#cmp-from", label="2020")
    pg.page.select_option("#cmp-to", label="2021")
    pg.page.click("#cmp-go")
    row = pg.page.locator("#cmp-result tr.chg-attributes")
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == str(site.changed)
    # the time slider switches the survey tiles to another snapshot
    pg.page.select_option("#time-layer", "survey")
    pg.page.fill("#time-slider", "0")
    pg.page.dispatch_event("#time-slider", "change")
    assert "2020" in pg.page.inner_text("#time-label")
    assert pg.page.evaluate("() => window.yz.map.getSource('src-survey').tiles[0]").endswith(
        "?snapshot=" + str(pg.page.evaluate("() => window.yz.state.snap.survey"))
    )
    pg.shot("map_tools.png")
    pg.close()


def _post(pg: Page, path: str, body: dict[str, Any]) -> Any:
    """A write from another user's session (cookie + CSRF header, as the UI sends it)."""
    csrf = next(c["value"] for c in pg.ctx.cookies() if c["name"] == "yz_csrf")
    return pg.page.request.post(f"{pg.url}{path}", data=body, headers={"X-CSRF-Token": csrf})


def test_renewal_advance_previews_findings_and_shows_conflict(
    site: SimpleNamespace, browser: Any
) -> None:
    pg = Page(browser, site, "dongguan")
    pg.page.on("dialog", lambda d: d.accept())
    pg.goto(f"/forms/renewal?unit=DEMO-A01&at={site.renewal_at}")
    move = pg.page.locator(".move:has(button[data-to='确认主体'])")
    move.wait_for()
    # the rule findings of the move are shown before confirming, with their clauses
    assert "规则允许" in move.inner_text() and "004 (十)" in move.inner_text()
    assert pg.page.locator(".move:has(button[data-to='禁止重启']) button").is_disabled()
    # another user moves the unit first
    other = Page(browser, site, "dongguan2")
    r = _post(
        other,
        "/api/ui/renewal/units/DEMO-A01/advance",
        {"to_stage": "暂停", "at": site.renewal_at, "version": 1, "note": "他人暂停"},
    )
    assert r.status == 200, r.text()
    other.close()
    move.locator("button").click()
    pg.page.wait_for_selector("#conflict")
    text = pg.page.inner_text("#advance-msg")
    assert "dongguan2" in text and "暂停" in text and "已被" in text
    pg.shot("renewal_conflict.png", full=True)
    # re-read: the unit is now suspended, version 2; moving it back works
    pg.page.click("#unit-reload")
    pg.page.wait_for_selector("#unit-detail :text('当前阶段「暂停」')")
    pg.page.locator(".move button[data-to='前期工作']").click()
    pg.page.wait_for_selector("#advance-done")
    assert "「暂停」推进到「前期工作」" in pg.page.inner_text("#advance-done")
    pg.close()


def test_task_progress_report_and_conflict(site: SimpleNamespace, browser: Any) -> None:
    pg = Page(browser, site, "hunan")
    pg.goto("/dash/tasks")
    first = pg.page.locator("table.grid tbody tr").first
    first.wait_for()
    assert "逾期" in first.inner_text()  # overdue first
    task = first.locator("td").first.inner_text()
    pg.goto(f"/forms/tasks?task={task}")
    pg.page.wait_for_selector("#task-form")
    other = Page(browser, site, "hunan2")
    r = _post(
        other,
        f"/api/ui/tasks/{task}/progress",
        {"progress_pct": 85, "reported_on": "2021-12-28", "note": "他人报送", "version": 1},
    )
    assert r.status == 200, r.text()
    other.close()
    pg.page.fill("#task-pct", "90")
    pg.page.fill("#task-date", "2021-12-30")
    pg.page.fill("#task-note", "完成主要工作")
    pg.page.click("#task-form button[type=submit]")
    pg.page.wait_for_selector("#conflict")
    assert "hunan2" in pg.page.inner_text("#conflict") and "他人报送" in pg.page.inner_text(
        "#conflict"
    )
    pg.page.click("#task-reload")
    pg.page.wait_for_selector("#task-form")
    pg.page.fill("#task-pct", "90")
    pg.page.fill("#task-date", "2021-12-30")
    pg.page.click("#task-form button[type=submit]")
    pg.page.wait_for_selector("#task-done")
    history = pg.page.request.get(f"{site.url}/api/records/tasks/{task}").json()
    assert [p["progress_pct"] for p in history["data"]["progress"]][-2:] == [85, 90]
    pg.close()


@pytest.mark.parametrize(
    ("route", "heading"),
    [
        ("/dash/health", "城市体检"),
        ("/dash/reduction", "减量进度"),
        ("/dash/renewal", "城市更新"),
        ("/dash/tasks", "重点任务"),
        ("/forms/renewal", "更新单元推进"),
        ("/forms/tasks", "任务进度填报"),
    ],
)
def test_dashboards_and_forms_render(
    site: SimpleNamespace, browser: Any, route: str, heading: str
) -> None:
    pg = Page(browser, site, "chaoyang")
    pg.goto(route)
    pg.page.wait_for_selector(f".page h1:has-text('{heading}')")
    pg.page.wait_for_load_state("networkidle")
    assert "页面加载失败" not in pg.page.inner_text("#app")
    if route == "/dash/reduction":
        pg.page.wait_for_selector("#chart-townships canvas")
        assert _plot_ids(pg) >= set(site.plots[T1]["plot_id"].iloc[:3]) | set(
            site.plots[T2]["plot_id"].iloc[:3]
        )
        pg.shot("dash_reduction.png", full=True)
    pg.close()


def test_checked_upload_confirmed_by_another_server_process(tmp_path: Path) -> None:
    # two applications over one workspace stand for two server processes: a plot file checked
    # on one is confirmed on the other, exactly once, and only by the user who checked it
    from yizhangtu.web.testing import client, make_app

    uri = str(tmp_path / "ws.gpkg")
    built = _build(uri, tmp_path)
    a = make_app(uri, tmp_path / "reports")
    b = make_app(uri, tmp_path / "reports")
    for app in (a, b):
        for name in UI_ROUTERS:
            if name not in set(getattr(app.state, "routers", ())):
                app.include_router(importlib.import_module(f"yizhangtu.web.routers.{name}").router)
    with client(a, "nmf") as ca, client(b, "nmf") as cb, client(b, "chaoyang") as other:
        with built["upload"].open("rb") as fh:
            r = ca.post(
                "/api/ui/reduction/check",
                data={"township": T1, "year": "2021"},
                files={"file": (built["upload"].name, fh, "application/geo+json")},
            )
        assert r.status_code == 200, r.text
        check = r.json()
        assert check["ok"] and check["submitted"] == len(built["plots"][T1]) - 3
        token = check["token"]
        before = {p["plot_id"] for p in cb.get("/api/ui/reduction/plots").json()["plots"]}
        assert built["new_plot"] not in before  # checking wrote nothing
        assert other.post("/api/ui/reduction/submit", json={"token": token}).status_code == 404
        r = cb.post("/api/ui/reduction/submit", json={"token": token})
        assert r.status_code == 200, r.text
        assert r.json()["submitted"] == check["submitted"] and r.json()["dry_run"] is False
        after = {p["plot_id"] for p in ca.get("/api/ui/reduction/plots").json()["plots"]}
        assert built["new_plot"] in after
        again = ca.post("/api/ui/reduction/submit", json={"token": token})
        assert again.status_code == 404 and "令牌" in again.json()["message"]
        bad = cb.post("/api/ui/reduction/submit", json={"token": "../../etc/passwd-xxxxxxxx"})
        assert bad.status_code == 404
