"""REST API of urban renewal (城市更新, ``/api/renewal``) on both backends.

The workspace holds the real boundaries of six Dongguan towns, the synthetic demo library
(合成数据: zones, 32 units in four towns, town accounts) and a synthetic rights registry for
four of its units, with one user per town, two city-level users and a public one. Every
figure the API answers is compared with the service function called directly on the store.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from yizhangtu.policy.rules import SEVERITY_LABELS
from yizhangtu.renewal.demo import DEMO_DATE, demo_library
from yizhangtu.services import renewal as svc
from yizhangtu.store import LayerSpec, open_store
from yizhangtu.web.testing import PASSWORD, client, make_app, temp_workspace

DATA = Path(__file__).resolve().parent / "data"
AT = DEMO_DATE.isoformat()
SECRET = "renewal-web-test-secret-0123456789"
HUMEN, NANCHENG, CHANGAN = "441900121", "441900004", "441900119"
#: name → (role, jurisdiction)
USERS = {
    "humen": ("township", HUMEN),  # 虎门镇: demo units C
    "nancheng": ("township", NANCHENG),  # 南城街道: demo units A
    "dongguan": ("district", "4419"),
    "dongguan2": ("district", "4419"),
    "chaoyang": ("township", "110105001"),  # another city: no renewal unit
    "citizen": ("public", "4419"),
}


def _seed(uri: str) -> dict:
    from argon2 import PasswordHasher

    from yizhangtu.rights.demo import demo_registry
    from yizhangtu.rights.model import HolderKind
    from yizhangtu.rights.protect import cipher_from_secret
    from yizhangtu.services.demo_rights import DEMO_UNITS, demo_targets
    from yizhangtu.services.rights import save_registry
    from yizhangtu.services.users import add_user

    towns = gpd.read_file(DATA / "web" / "dongguan_towns_portal.geojson")[
        ["name", "nbs_code", "geometry"]
    ]
    pack, rpack = _packs()
    demo = demo_library(towns, seed=0, pack=pack)
    ids = demo.units["unit_id"].astype(str)
    with open_store(uri, create=True) as st:
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
            actor="seed",
            geometry_type="MultiPolygon",
        )
        svc.save_zones(st, demo.zones, actor="seed", synthetic=True)
        svc.import_units(
            st,
            demo.library.units,
            actor="seed",
            geometries=dict(zip(ids, demo.units.geometry.values, strict=True)),
            crs=demo.units.crs,
            scenarios=dict(zip(ids, demo.units["scenario"], strict=True)),
            source="合成数据",
        )
        svc.save_town_accounts(st, demo.library.towns, actor="seed")
        stored = [s for s in svc.list_units(st) if s.unit.unit_id in DEMO_UNITS]
        frame = gpd.GeoDataFrame(
            {
                "unit_id": [s.unit.unit_id for s in stored],
                "town": [s.unit.town for s in stored],
                "land_area_m2": [s.unit.land_area_m2 for s in stored],
            },
            geometry=[s.geometry for s in stored],
            crs="EPSG:4490",
        )
        registry, people = demo_registry(
            frame,
            demo_targets(
                pack.param("consent_share_min", unit="ratio", at=DEMO_DATE),
                pack.param("expropriation_signing_share_min", unit="ratio", at=DEMO_DATE),
            ),
            cipher_from_secret(SECRET),
            DEMO_DATE,
            procedure_abroad=rpack.param("procedure_abroad", unit="text", at=DEMO_DATE),
        )
        save_registry(st, registry, actor="seed", source="合成数据")
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # test accounts only
        for name, (role, jur) in USERS.items():
            add_user(st, name, PASSWORD, role=role, jurisdiction=jur, actor="seed", hasher=cheap)
    persons = [h.name for h in registry.holders if h.kind is HolderKind.PERSON]
    secrets = [p.id_number for p in people] + [p.phone for p in people]
    return {"towns": towns, "demo": demo, "persons": persons, "secrets": secrets}


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"web_renewal_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = _seed(uri)
        app = make_app(uri, base / "reports")
        clients = {"anon": client(app)} | {u: client(app, u) for u in USERS}
        try:
            yield {"app": app, "uri": uri, "c": clients, "backend": request.param, **seeded}
        finally:
            app.state.rt.close()


@functools.cache
def _packs() -> tuple:
    """The renewal and counting packs, read once (parsing the YAML is the slow part)."""
    from yizhangtu.services.rights import resolve_rights_pack

    return svc.resolve_pack(), resolve_rights_pack()


def _units_of(env, code: str | None = None) -> list:
    with open_store(env["uri"]) as st:
        return svc.list_units(st, jurisdictions=[code] if code else None)


def _no_personal_data(env, text: str) -> None:
    leaked = [s for s in env["secrets"] + env["persons"] if s in text]
    assert not leaked, f"personal data in the answer: {leaked[:3]}"


def _chinese_error(r, status: int | tuple[int, ...], key: str | None = None) -> dict:
    allowed = status if isinstance(status, tuple) else (status,)
    assert r.status_code in allowed, (r.status_code, r.text[:400])
    body = r.json()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body
    if key is not None:
        assert body["error"] == key, body
    return body


# -- access ---------------------------------------------------------------------------------


ROUTES = [
    ("GET", "/api/renewal/units", None),
    ("POST", "/api/renewal/units", {"unit_id": "X", "town": "虎门镇"}),
    ("GET", "/api/renewal/units/DEMO-C01", None),
    ("PATCH", "/api/renewal/units/DEMO-C01", {"version": 1, "name": "x"}),
    ("POST", "/api/renewal/units/DEMO-C01/advance", {"to_stage": "暂停", "preview": True}),
    ("GET", "/api/renewal/units/DEMO-A05/ratios", None),
    ("GET", "/api/renewal/check", None),
    ("GET", "/api/renewal/deadlines", None),
    ("POST", "/api/renewal/report", {}),
]


def test_outsiders_are_refused(env):
    from yizhangtu.web.routers.renewal import ACCESS

    assert {
        (m, p.replace("DEMO-C01", "{unit_id}").replace("DEMO-A05", "{unit_id}"))
        for m, p, _ in ROUTES
    } == set(ACCESS)
    for method, url, body in ROUTES:
        kw = {"json": body} if body is not None else {}
        assert env["c"]["anon"].request(method, url, **kw).status_code == 401, (method, url)
        r = env["c"]["citizen"].request(method, url, **kw)
        _chinese_error(r, 403)
    openapi = env["c"]["anon"].get("/openapi.json").json()
    tagged = {
        (m.upper(), p)
        for p, ops in openapi["paths"].items()
        for m, op in ops.items()
        if "城市更新" in op.get("tags", [])
    }
    assert tagged == set(ACCESS)


# -- units ----------------------------------------------------------------------------------


def test_list_units_stays_in_jurisdiction(env):
    c = env["c"]
    for user, code in (("humen", HUMEN), ("nancheng", NANCHENG)):
        body = c[user].get("/api/renewal/units").json()
        want = _units_of(env, code)
        assert [u["unit_id"] for u in body["units"]] == [s.unit.unit_id for s in want]
        assert body["count"] == len(want) > 0 and body["towns"] == [code]
        assert {u["town_code"] for u in body["units"]} == {code}
        by_id = {u["unit_id"]: u for u in body["units"]}
        for s in want:
            u = by_id[s.unit.unit_id]
            assert u["stage"] == s.unit.stage.value and u["version"] == s.unit.version
            assert u["land_area_m2"] == pytest.approx(s.unit.land_area_m2)
            assert u["land_area_mu"] == pytest.approx(s.unit.land_area_m2 / (10000 / 15))
    every = c["dongguan"].get("/api/renewal/units").json()
    assert {u["unit_id"] for u in every["units"]} == {s.unit.unit_id for s in _units_of(env)}
    assert c["chaoyang"].get("/api/renewal/units").json() == {"towns": [], "count": 0, "units": []}
    # filters: a stage, a town (inside the jurisdiction only)
    stage = c["dongguan"].get("/api/renewal/units", params={"stage": "确认主体"}).json()
    assert stage["count"] == sum(1 for s in _units_of(env) if s.unit.stage.value == "确认主体")
    humen = c["dongguan"].get("/api/renewal/units", params={"town": "虎门镇"}).json()
    assert humen["units"] == c["humen"].get("/api/renewal/units").json()["units"]
    _chinese_error(c["humen"].get("/api/renewal/units", params={"town": "长安镇"}), 403)
    _chinese_error(c["humen"].get("/api/renewal/units", params={"town": "火星镇"}), 422)
    _chinese_error(c["humen"].get("/api/renewal/units", params={"stage": "拆迁"}), 400)


def test_show_unit_with_findings(env):
    c = env["c"]
    r = c["humen"].get("/api/renewal/units/DEMO-C06", params={"at": AT})
    assert r.status_code == 200, r.text
    body = r.json()
    with open_store(env["uri"]) as st:
        pack, rpack = _packs()
        direct = svc.show_unit(st, "DEMO-C06", DEMO_DATE, pack, rights_pack=rpack)
    assert body["version"] == direct["version"] and body["stage"] == direct["stage"]
    assert body["status"]["allowed_next"] == direct["status"]["allowed_next"]
    assert [f["rule_id"] for f in body["status"]["findings"]] == [
        f["rule_id"] for f in direct["status"]["findings"]
    ]
    assert body["geometry_wkt"].startswith(("POLYGON", "MULTIPOLYGON"))
    # another town's unit does not exist for a township user; the city sees it
    _chinese_error(c["humen"].get("/api/renewal/units/DEMO-A01"), 404, "unit_not_found")
    assert c["nancheng"].get("/api/renewal/units/DEMO-A01").status_code == 200
    assert c["dongguan"].get("/api/renewal/units/DEMO-A01").status_code == 200
    _chinese_error(c["dongguan"].get("/api/renewal/units/NOPE"), 404)
    # the cap the seed leaves illegible: not set → param_required; set → a verdict
    f = c["humen"].get("/api/renewal/units/DEMO-C06", params={"at": AT}).json()
    g = (
        c["humen"]
        .get("/api/renewal/units/DEMO-C06", params={"at": AT, "unit_area_max": 300})
        .json()
    )
    caps = [
        x["outcome"] for x in f["status"]["findings"] if x["rule_id"] == "renewal.unit_area_cap"
    ]
    capped = [
        x["outcome"] for x in g["status"]["findings"] if x["rule_id"] == "renewal.unit_area_cap"
    ]
    assert caps == ["param_required"] and capped and capped[0] in ("pass", "fail")
    _chinese_error(c["humen"].get("/api/renewal/units/DEMO-C06", params={"at": "2025-02-30"}), 400)
    _chinese_error(c["humen"].get("/api/renewal/units/DEMO-C06", params={"at": "2020-01-01"}), 422)


def test_ratios_are_computed_and_masked(env):
    from yizhangtu.services.rights import ratios_for_unit

    c = env["c"]
    r = c["nancheng"].get("/api/renewal/units/DEMO-A05/ratios", params={"at": AT})
    assert r.status_code == 200, r.text
    body = r.json()
    with open_store(env["uri"]) as st:
        direct = ratios_for_unit(st, "DEMO-A05", DEMO_DATE, _packs()[1], record=False)
    assert body["consent"]["area_share"] == pytest.approx(direct.consent.area_share)
    assert body["consent"]["head_share"] == pytest.approx(direct.consent.head_share)
    assert body["heads_total"] == direct.heads_total and body["covered"] is True
    assert body["area_total_m2"] == pytest.approx(direct.area_total_m2)
    assert body["missing_consent"] == [h.holder_id for h in direct.missing("consent")]
    assert body["masked"] is True and body["special"]
    # ID numbers masked, phones absent, natural persons' names reduced to the surname
    _no_personal_data(env, r.text)
    people = {h.holder_id: h for h in direct.holders if h.kind == "个人"}
    for h in body["holders"]:
        if h["holder_id"] in people:
            assert h["name"] == people[h["holder_id"]].name[0] + "*" * (
                len(people[h["holder_id"]].name) - 1
            )
            assert h["id_masked"] and "*" in h["id_masked"]
    assert "phone" not in r.text
    # the unit page carries the same figures, masked too
    page = c["nancheng"].get("/api/renewal/units/DEMO-A05", params={"at": AT})
    assert page.json()["rights"]["consent"]["area_share"] == pytest.approx(
        direct.consent.area_share
    )
    _no_personal_data(env, page.text)
    _chinese_error(c["humen"].get("/api/renewal/units/DEMO-A05/ratios"), 404)
    # a unit without polygon cannot be counted by parcels
    c["nancheng"].post(
        "/api/renewal/units",
        json={
            "unit_id": "NC-NOGEOM",
            "town": "南城街道",
            "unit_type": "工改工",
            "mode": "政府主导",
            "land_area_mu": 60,
            "synthetic": True,
        },
    )
    _chinese_error(
        c["nancheng"].get("/api/renewal/units/NC-NOGEOM/ratios"), 422, "unit_geometry_missing"
    )


def test_create_and_patch_with_locking(env):
    c = env["c"]
    town = env["towns"].loc[env["towns"]["name"] == "虎门镇"].geometry.iloc[0]
    p = town.representative_point()
    red = box(p.x - 0.002, p.y - 0.002, p.x + 0.002, p.y + 0.002)
    unit = {
        "unit_id": "HM-NEW-1",
        "name": "虎门新单元(合成)",
        "town": "虎门镇",
        "unit_type": "工改工",
        "mode": "政府主导",
        "land_area_mu": 90,
        "consent_area_share": 0.85,
        "consent_head_share": 0.82,
        "declared_on": "2025-03-01",
        "geometry_wkt": red.wkt,
        "crs": "EPSG:4326",
        "synthetic": True,
    }
    r = c["humen"].post("/api/renewal/units", json=unit)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/renewal/units/HM-NEW-1"
    made = r.json()
    assert made["version"] == 1 and made["jurisdiction"] == HUMEN
    assert made["land_area_m2"] == pytest.approx(90 * 10000 / 15)
    with open_store(env["uri"]) as st:
        s = svc.get_unit(st, "HM-NEW-1")
        assert s.unit.consent.area_share == 0.85 and s.geometry.equals_exact(red, 1e-9)
        assert "HM-NEW-1" in set(st.read_layer(svc.UNITS_LAYER)["unit_id"])
        assert st.audit_log(target=f"{svc.UNITS_COLLECTION}:HM-NEW-1")[-1].actor == "humen"
    assert "HM-NEW-1" in {
        u["unit_id"] for u in c["humen"].get("/api/renewal/units").json()["units"]
    }
    # refusals: an id in use, another town, bad values, dates backwards
    _chinese_error(c["humen"].post("/api/renewal/units", json=unit), 409, "record_exists")
    other = c["nancheng"].post("/api/renewal/units", json=unit | {"town": "南城街道"})
    body = _chinese_error(other, 409, "record_exists")
    assert "data" not in body or not body["data"]  # nothing about another town's unit
    _chinese_error(
        c["humen"].post("/api/renewal/units", json=unit | {"unit_id": "X1", "town": "长安镇"}),
        403,
        "outside_jurisdiction",
    )
    _chinese_error(
        c["humen"].post("/api/renewal/units", json=unit | {"unit_id": "X2", "town": "火星镇"}),
        422,
        "unknown_town",
    )
    _chinese_error(
        c["humen"].post("/api/renewal/units", json=unit | {"unit_id": "X3", "unit_type": "工改住"}),
        400,
        "unknown_unit_type",
    )
    _chinese_error(
        c["humen"].post(
            "/api/renewal/units", json=unit | {"unit_id": "X4", "consent_area_share": 1.5}
        ),
        400,
    )
    _chinese_error(
        c["humen"].post(
            "/api/renewal/units",
            json=unit | {"unit_id": "X5", "entity_confirmed_on": "2024-01-01"},
        ),
        422,
        "dates_out_of_order",
    )
    _chinese_error(
        c["humen"].post(
            "/api/renewal/units", json=unit | {"unit_id": "X6", "geometry_wkt": "POLYGON(("}
        ),
        400,
        "bad_wkt",
    )
    _chinese_error(
        c["humen"].post("/api/renewal/units", json=unit | {"unit_id": "X7", "crs": "EPSG:4527"}),
        400,
        "crs_mismatch",
    )
    with open_store(env["uri"]) as st:
        assert not {"X1", "X2", "X3", "X4", "X5", "X6", "X7"} & {
            s.unit.unit_id for s in svc.list_units(st)
        }

    # two editors read version 1; the second to save gets 409 with the first one's change
    url = "/api/renewal/units/HM-NEW-1"
    r1 = c["humen"].patch(url, json={"version": 1, "name": "虎门新单元(改名)", "land_area_mu": 95})
    assert r1.status_code == 200, r1.text
    assert r1.json()["version"] == 2 and r1.json()["land_area_m2"] == pytest.approx(95 * 10000 / 15)
    r2 = c["dongguan"].patch(url, json={"version": 1, "area_id": "Z-1"})
    err = _chinese_error(r2, 409, "version_conflict")
    assert err["data"]["updated_by"] == "humen" and err["data"]["current_version"] == 2
    assert err["data"]["current"]["name"] == "虎门新单元(改名)"
    assert [a["actor"] for a in err["data"]["other_changes"]] == ["humen"]
    # with the fresh version the city-level user may edit it; the polygon is kept
    r3 = c["dongguan"].patch(url, json={"version": 2, "area_id": None, "signing_area_share": None})
    assert r3.status_code == 200 and r3.json()["version"] == 3
    with open_store(env["uri"]) as st:
        s = svc.get_unit(st, "HM-NEW-1")
        assert s.unit.name == "虎门新单元(改名)" and s.geometry is not None
        assert s.updated_by == "dongguan"
    # refusals: another town's user, moving the unit out of the jurisdiction, the stage
    _chinese_error(c["nancheng"].patch(url, json={"version": 3, "name": "x"}), 404)
    _chinese_error(c["humen"].patch(url, json={"version": 3, "town": "长安镇"}), 403)
    _chinese_error(c["humen"].patch(url, json={"version": 3, "stage": "开发监管"}), 400)
    _chinese_error(c["humen"].patch(url, json={"version": 3}), 400, "nothing_to_change")
    _chinese_error(c["humen"].patch(url, json={"version": 3, "consent_head_share": None}), 422)
    _chinese_error(c["humen"].patch(url, json={"version": 3, "mode": None}), 400)
    assert c["humen"].get(url).json()["version"] == 3  # nothing refused was written


def test_advance_preview_then_move(env):
    from yizhangtu.renewal.workflow import check_transition

    c = env["c"]
    url = "/api/renewal/units/DEMO-A01/advance"
    version = c["nancheng"].get("/api/renewal/units/DEMO-A01").json()["version"]
    with open_store(env["uri"]) as st:
        audit_before = len(st.audit_log())
        pack = _packs()[0]
        lib = svc.load_library(st).library
        unit = next(u for u in lib.units if u.unit_id == "DEMO-A01")
        direct = check_transition(unit, "确认主体", DEMO_DATE, pack, lib)
    pv = c["nancheng"].post(url, json={"to_stage": "确认主体", "at": AT, "preview": True})
    assert pv.status_code == 200, pv.text
    body = pv.json()
    assert body["preview"] is True and body["allowed"] is direct.allowed is True
    assert [(f["rule_id"], f["outcome"]) for f in body["findings"]] == [
        (f.rule_id, f.outcome) for f in direct.findings
    ]
    with open_store(env["uri"]) as st:
        assert len(st.audit_log()) == audit_before  # a preview writes nothing
        assert svc.get_unit(st, "DEMO-A01").unit.version == version
    # a refused move previews as not allowed, and is refused (422) when attempted
    ref = (
        c["humen"]
        .post(
            "/api/renewal/units/DEMO-C06/advance",
            json={"to_stage": "实施方案", "at": AT, "preview": True},
        )
        .json()
    )
    assert ref["allowed"] is False and any(f["severity"] == "error" for f in ref["findings"])
    v6 = c["humen"].get("/api/renewal/units/DEMO-C06").json()["version"]
    body = _chinese_error(
        c["humen"].post(
            "/api/renewal/units/DEMO-C06/advance",
            json={"to_stage": "实施方案", "at": AT, "version": v6},
        ),
        422,
        "transition_refused",
    )
    assert body["data"]["transition"]["allowed"] is False
    # the move itself, then a stale second move
    _chinese_error(
        c["nancheng"].post(url, json={"to_stage": "确认主体", "at": AT}), 400, "version_required"
    )
    mv = c["nancheng"].post(
        url, json={"to_stage": "确认主体", "at": AT, "version": version, "note": "意愿达标"}
    )
    assert mv.status_code == 200, mv.text
    assert mv.json()["to_stage"] == "确认主体" and mv.json()["version"] == version + 1
    with open_store(env["uri"]) as st:
        log = st.audit_log(target=f"{svc.UNITS_COLLECTION}:DEMO-A01")
        assert log[-1].action == "renewal.advance" and log[-1].actor == "nancheng"
        assert mv.json()["audit_seq"] == log[-1].seq
    err = _chinese_error(
        c["dongguan"].post(url, json={"to_stage": "实施方案", "at": AT, "version": version}),
        409,
        "version_conflict",
    )
    assert any(
        a["action"] == "renewal.advance" and a["actor"] == "nancheng"
        for a in err["data"]["other_changes"]
    )
    _chinese_error(c["humen"].post(url, json={"to_stage": "确认主体", "preview": True}), 404)
    _chinese_error(
        c["nancheng"].post(url, json={"to_stage": "上天", "preview": True}), 400, "unknown_to_stage"
    )


# -- library --------------------------------------------------------------------------------


def test_check_per_unit_and_jurisdiction(env):
    c = env["c"]
    pack, rpack = _packs()
    kw = {"actor": "t", "rights_pack": rpack, "record": False}
    with open_store(env["uri"]) as st:
        codes = sorted({s.jurisdiction for s in svc.list_units(st)})
        ev_all = svc.evaluate(st, DEMO_DATE, pack, jurisdictions=codes, **kw)
        ev_hm = svc.evaluate(st, DEMO_DATE, pack, jurisdictions=[HUMEN], **kw)
    city = c["dongguan"].get("/api/renewal/check", params={"at": AT})
    assert city.status_code == 200, city.text
    body = city.json()
    assert body["counts"] == ev_all.counts() and body["findings_total"] == len(ev_all.findings)
    assert Counter((f["rule_id"], f["outcome"], f["subject"]) for f in body["findings"]) == Counter(
        (f.rule_id, f.outcome, f.subject) for f in ev_all.findings
    )
    assert body["synthetic"] is True and body["provenance_id"] is None
    _no_personal_data(env, city.text)
    special = [f for f in body["findings"] if f["rule_id"] == "rights.special_holder"]
    assert special and all("*" in f["facts"]["name"] for f in special if f["facts"].get("name"))
    # a township user: its units only, with each unit's counts
    hm = c["humen"].get("/api/renewal/check", params={"at": AT}).json()
    mine = {s.unit.unit_id for s in ev_hm.stored}
    assert {u["unit_id"] for u in hm["units"]} == mine and hm["towns"] == [HUMEN]
    assert hm["counts"] == ev_hm.counts()
    per = Counter((f.subject, f.severity) for f in ev_hm.findings)
    for u in hm["units"]:
        assert (u["error"], u["warning"], u["info"]) == (
            per[(u["unit_id"], "error")],
            per[(u["unit_id"], "warning")],
            per[(u["unit_id"], "info")],
        )
    others = {s.unit.unit_id for s in ev_all.stored} - mine
    assert not others & {f["subject"] for f in hm["findings"]}
    # severity filter, the user-set cap, another city, bad input
    errs = c["humen"].get("/api/renewal/check", params={"at": AT, "severity": "error"}).json()
    assert errs["findings"] and {f["severity"] for f in errs["findings"]} == {"error"}
    assert len(errs["findings"]) == ev_hm.counts()["error"]
    assert {f["severity_label"] for f in errs["findings"]} == {SEVERITY_LABELS["error"]}
    capped = c["humen"].get("/api/renewal/check", params={"at": AT, "unit_area_max": 300}).json()
    assert not any(f["outcome"] == "param_required" for f in capped["findings"])
    assert c["chaoyang"].get("/api/renewal/check", params={"at": AT}).json()["units"] == []
    _chinese_error(c["humen"].get("/api/renewal/check", params={"days": -1}), 400)
    _chinese_error(c["humen"].get("/api/renewal/check", params={"severity": "fatal"}), 400)


def test_deadlines_within_days(env):
    c = env["c"]
    pack = _packs()[0]
    with open_store(env["uri"]) as st:
        d90 = svc.deadlines(st, DEMO_DATE, pack, jurisdictions=[HUMEN])
        d30 = svc.deadlines(st, DEMO_DATE, pack, days=30, jurisdictions=[HUMEN])
    body = c["humen"].get("/api/renewal/deadlines", params={"at": AT}).json()
    assert body["days"] == 90 and len(body["deadlines"]) == len(d90) > 0
    assert [(r["subject"], r["due"]) for r in body["deadlines"]] == [
        (r.subject, r.due.isoformat() if hasattr(r.due, "isoformat") else r.due)
        for r in d90.itertuples()
    ]
    assert all(r["days_left"] <= 90 for r in body["deadlines"])
    assert sum(body["counts"].values()) == len(d90)
    short = c["humen"].get("/api/renewal/deadlines", params={"at": AT, "days": 30}).json()
    assert len(short["deadlines"]) == len(d30) and all(
        r["days_left"] <= 30 for r in short["deadlines"]
    )
    units_a = {s.unit.unit_id for s in _units_of(env, NANCHENG)}
    assert not units_a & {r["subject"] for r in body["deadlines"]}
    _chinese_error(c["humen"].get("/api/renewal/deadlines", params={"days": 99999}), 400)


def test_report_job_end_to_end(env):
    c = env["c"]
    r = c["nancheng"].post(
        "/api/renewal/report",
        json={"at": AT, "formats": ["html", "pdf"] if env["backend"] == "gpkg" else ["html"]},
    )
    assert r.status_code == 202, r.text
    job = r.json()["job"]["id"]
    assert r.headers["location"] == f"/api/jobs/{job}"
    env["app"].state.rt.jobs.wait(job, 120)
    j = c["nancheng"].get(f"/api/jobs/{job}").json()
    assert j["status"] == "succeeded", j
    res = j["result"]
    assert res["synthetic"] is True and res["units"] == len(_units_of(env, NANCHENG))
    assert [f["format"] for f in res["files"]] == (
        ["html", "pdf"] if env["backend"] == "gpkg" else ["html"]
    )
    # listed and served to its town and the city, not to another town
    listed = {x["name"]: x for x in c["nancheng"].get("/api/reports").json()["reports"]}
    html = res["files"][0]["report"]
    assert html in listed and listed[html]["kind"] == "renewal" and listed[html]["synthetic"]
    assert html not in {x["name"] for x in c["humen"].get("/api/reports").json()["reports"]}
    assert c["humen"].get(f"/api/reports/{html}").status_code == 404
    page = c["nancheng"].get(f"/api/reports/{html}")
    assert page.status_code == 200
    text = page.content.decode("utf-8")
    assert "合成数据" in text and res["provenance_id"] in text
    assert "DEMO-A05" in text and "DEMO-C06" not in text  # the other town's units are absent
    _no_personal_data(env, text)
    if env["backend"] == "gpkg":
        pdf = c["dongguan"].get(res["files"][1]["url"])
        assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    # the evaluation behind it is recorded with its inputs, only for the reporter's towns
    with open_store(env["uri"]) as st:
        prov = st.get_provenance(res["provenance_id"])
        assert prov.params["jurisdictions"] == [NANCHENG] and prov.policy.id == "dongguan-2023"
        pack, rpack = _packs()
        direct = svc.evaluate(
            st,
            DEMO_DATE,
            pack,
            actor="t",
            rights_pack=rpack,
            jurisdictions=[NANCHENG],
            record=False,
        )
    assert res["counts"] == direct.counts()
    # refusals before any job starts
    _chinese_error(c["chaoyang"].post("/api/renewal/report", json={"at": AT}), 404, "no_units")
    _chinese_error(c["humen"].post("/api/renewal/report", json={"formats": ["docx"]}), 400)
    _chinese_error(c["humen"].post("/api/renewal/report", json={"at": "2020-01-01"}), 422)
    _chinese_error(
        c["humen"].post("/api/renewal/report", json={"town": ["南城街道"]}),
        403,
        "outside_jurisdiction",
    )
    assert all(not n.startswith(".") for n in listed)  # nothing half-written is listed
