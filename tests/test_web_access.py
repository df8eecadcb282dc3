"""Access matrix: every route × every role, proving that no read or write crosses a jurisdiction.

Every (method, path) the application serves must have a scenario in MATRIX, or
``test_every_route_is_classified`` fails: a new router cannot slip in untested.

Seeded users (yizhangtu.web.testing.USERS): admin (city_admin, 11), district (110105),
town1 (township, 110105001), town2 (township, 110105002), dept (department, 110105),
citizen (public), plus anonymous visitors. ``survey`` is unpublished with jurisdiction field
ZLDWDM over streets 110105001–004; ``streets`` is published.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable

import mapbox_vector_tile
import pyogrio
import pytest

from yizhangtu.store import open_store
from yizhangtu.web.app import iter_routes
from yizhangtu.web.testing import PASSWORD, USERS, client, make_app, seed_workspace, temp_workspace

ROLES = ("anon", *USERS)
STAFF = ("admin", "district", "town1", "town2", "dept")


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def env(request, tmp_path_factory, chaoyang_path):
    base = tmp_path_factory.mktemp(f"web_access_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seeded = seed_workspace(uri, streets_path=chaoyang_path)
        app = make_app(uri, base / "reports")
        clients = {"anon": client(app)} | {u: client(app, u) for u in USERS}
        with open_store(uri) as st:
            fids = {
                z: st.query_feature_rows(
                    "survey", where_sql=f'"ZLDWDM" = {st.ph}', params=[z], limit=1
                ).fids[0]
                for z in ("110105001000", "110105002000")
            }
        # one report and one job per township, to test that they stay apart
        reports, jobs = {}, {}
        for u in ("town1", "town2"):
            r = clients[u].post("/api/jobs/layers-report")
            jobs[u] = r.json()["job"]["id"]
            app.state.rt.jobs.wait(jobs[u], 60)
            reports[u] = clients[u].get(f"/api/jobs/{jobs[u]}").json()["result"]["report"]
        try:
            yield {
                "app": app,
                "uri": uri,
                "c": clients,
                "fids": fids,
                "reports": reports,
                "jobs": jobs,
                "tmp": base,
                "backend": request.param,
                **seeded,
            }
        finally:
            app.state.rt.close()


def expect(env, method: str, url: str, statuses: dict[str, int | tuple[int, ...]], **kw) -> dict:
    """Send the request as each listed role and check the status; returns the responses."""
    out = {}
    for role, want in statuses.items():
        r = env["c"][role].request(method, url, **kw)
        allowed = want if isinstance(want, tuple) else (want,)
        assert r.status_code in allowed, f"{role} {method} {url}: {r.status_code} {r.text[:300]}"
        out[role] = r
    return out


def deny_outsiders(env, method: str, url: str, **kw) -> None:
    """Anonymous → 401, the public role → 403."""
    expect(env, method, url, {"anon": 401, "citizen": 403}, **kw)


def _zl(features) -> set[str]:
    return {f["properties"]["ZLDWDM"] for f in features}


# -- scenarios ----------------------------------------------------------------------------------


def open_route(path: str) -> Callable:
    def check(env):
        for role in ROLES:
            assert env["c"][role].get(path).status_code == 200

    return check


def s_login(env):
    for user in USERS:
        r = client(env["app"]).post(
            "/api/auth/login", json={"username": user, "password": PASSWORD}
        )
        assert r.status_code == 200 and r.json()["user"]["jurisdiction"] == USERS[user][1]
    assert (
        client(env["app"])
        .post("/api/auth/login", json={"username": "town1", "password": "x" * 12})
        .status_code
        == 401
    )


def s_token(env):
    r = client(env["app"]).post("/api/auth/token", json={"username": "town2", "password": PASSWORD})
    tok = r.json()["access_token"]
    items = (
        client(env["app"])
        .get("/ogc/collections/survey/items?limit=200", headers={"Authorization": f"Bearer {tok}"})
        .json()
    )
    assert _zl(items["features"]) == {"110105002000"}


def s_logout(env):
    assert env["c"]["anon"].post("/api/auth/logout").status_code == 401
    c = client(env["app"], "dept")
    assert c.post("/api/auth/logout").status_code == 200
    assert c.get("/api/layers").status_code == 401


def s_me(env):
    assert env["c"]["anon"].get("/api/auth/me").json()["authenticated"] is False
    for u in USERS:
        assert env["c"][u].get("/api/auth/me").json()["user"]["jurisdiction"] == USERS[u][1]


def s_users_list(env):
    deny_outsiders(env, "GET", "/api/users")
    expect(env, "GET", "/api/users", {u: 403 for u in ("district", "town1", "town2", "dept")})
    names = {u["username"] for u in env["c"]["admin"].get("/api/users").json()["users"]}
    assert names >= set(USERS)


def s_users_add(env):
    body = {
        "username": "m_new",
        "password": "long-enough-1",
        "role": "township",
        "jurisdiction": "110105004",
    }
    deny_outsiders(env, "POST", "/api/users", json=body)
    expect(env, "POST", "/api/users", {u: 403 for u in ("district", "town1", "dept")}, json=body)
    expect(
        env,
        "POST",
        "/api/users",
        {"admin": 403},
        json=body | {"username": "m_sh", "jurisdiction": "310101"},
    )
    expect(env, "POST", "/api/users", {"admin": 201}, json=body)


def _user_action(method: str, suffix: str, body: dict | None = None) -> Callable:
    def check(env):
        url = f"/api/users/town2/{suffix}"
        kw = {"json": body} if body else {}
        deny_outsiders(env, method, url, **kw)
        expect(env, method, url, {u: 403 for u in ("district", "town1", "dept")}, **kw)
        if suffix != "disable":  # disabling town2 would end the module's town2 session
            expect(env, method, url, {"admin": 200}, **kw)
            env["c"]["town2"] = client(
                env["app"], "town2"
            )  # every account change ends its sessions
        else:
            expect(env, method, "/api/users/citizen/disable", {"admin": 200})
            expect(env, "POST", "/api/users/citizen/enable", {"admin": 200})
            env["c"]["citizen"] = client(env["app"], "citizen")

    return check


def s_password(env):
    url = "/api/users/dept/password"
    deny_outsiders(env, "PUT", url, json={"password": "another-pass-1"})
    expect(
        env,
        "PUT",
        url,
        {u: 403 for u in ("district", "town1", "town2")},
        json={"password": "another-pass-1"},
    )
    # admin resets and resets back (the hash changes; the seeded password works again)
    expect(env, "PUT", url, {"admin": 200}, json={"password": PASSWORD})
    env["c"]["dept"] = client(env["app"], "dept")


def s_layers(env):
    deny_outsiders(env, "GET", "/api/layers")
    survey = env["survey_2021"]
    for u in STAFF:
        layers = {e["name"]: e for e in env["c"][u].get("/api/layers").json()["layers"]}
        assert layers["survey"]["feature_count"] == int(
            survey["ZLDWDM"].str.startswith(USERS[u][1]).sum()
        )


def s_layer(env):
    deny_outsiders(env, "GET", "/api/layers/survey")
    for u in STAFF:
        e = env["c"][u].get("/api/layers/survey").json()
        assert e["feature_count"] == int(
            env["survey_2021"]["ZLDWDM"].str.startswith(USERS[u][1]).sum()
        )


def s_snapshots(env):
    deny_outsiders(env, "GET", "/api/layers/survey/snapshots")
    a = env["c"]["town1"].get("/api/layers/survey/snapshots").json()["snapshots"]
    b = env["c"]["town2"].get("/api/layers/survey/snapshots").json()["snapshots"]
    assert (
        [s["label"] for s in a] == [s["label"] for s in b]
        and a[0]["feature_count"] != b[0]["feature_count"]
    ) or a[0]["feature_count"] > 0


def s_patch_layer(env):
    deny_outsiders(env, "PATCH", "/api/layers/survey", json={"title": "x"})
    expect(
        env,
        "PATCH",
        "/api/layers/survey",
        {u: 403 for u in ("district", "town1", "town2", "dept")},
        json={"title": "x"},
    )
    r = expect(
        env,
        "PATCH",
        "/api/layers/survey",
        {"admin": 200},
        json={"description": "合成数据 (SYNTHETIC)"},
    )
    assert r["admin"].json()["published"] is False


def s_export(env):
    url = "/api/layers/survey/export?format=gpkg"
    deny_outsiders(env, "GET", url)
    for u in ("town1", "town2"):
        r = env["c"][u].get(url)
        p = env["tmp"] / f"exp_{u}_{time.monotonic_ns()}.gpkg"
        p.write_bytes(r.content)
        assert set(pyogrio.read_dataframe(p)["ZLDWDM"]) == {USERS[u][1] + "000"}


def s_diff(env):
    url = "/api/layers/survey/diff?from=2020&to=2021&features=true"
    deny_outsiders(env, "GET", url)
    for u in ("town1", "town2"):
        body = env["c"][u].get(url).json()
        assert body["summary"]["jurisdiction"] == USERS[u][1]
        assert all(
            str(f["properties"].get("ZLDWDM") or USERS[u][1]).startswith(USERS[u][1])
            for f in body["features"]["features"]
        )


def _shp_zip(env, zl: str) -> bytes:
    gdf = env["survey"].iloc[:2][["BSM", "ZLDWDM", "geometry"]].copy()
    gdf["ZLDWDM"] = zl
    d = env["tmp"] / f"shp_{time.monotonic_ns()}"
    d.mkdir()
    pyogrio.write_dataframe(gdf, d / "p.shp", encoding="UTF-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in d.iterdir():
            zf.write(p, p.name)
    return buf.getvalue()


def s_import(env):
    url = "/api/layers/plots_x/imports"
    data = {"snapshot": "2024", "jurisdiction_field": "ZLDWDM", "kind": "plot"}
    other = _shp_zip(env, "110106001000")
    deny_outsiders(env, "POST", url, files={"file": ("p.zip", other)}, data=data)
    expect(
        env,
        "POST",
        url,
        {u: 403 for u in ("town1", "town2", "dept")},
        files={"file": ("p.zip", other)},
        data=data,
    )
    r = env["c"]["district"].post(url, files={"file": ("p.zip", other)}, data=data)
    assert r.status_code == 202
    env["app"].state.rt.jobs.wait(r.json()["job"]["id"], 60)
    job = env["c"]["district"].get(f"/api/jobs/{r.json()['job']['id']}").json()
    assert job["status"] == "failed" and job["error"]["error"] == "outside_jurisdiction"
    r = env["c"]["district"].post(
        url, files={"file": ("p.zip", _shp_zip(env, "110105003000"))}, data=data
    )
    env["app"].state.rt.jobs.wait(r.json()["job"]["id"], 60)
    assert (
        env["c"]["district"].get(f"/api/jobs/{r.json()['job']['id']}").json()["status"]
        == "succeeded"
    )
    # the township above cannot see what it does not cover; the district can
    assert env["c"]["town1"].get("/ogc/collections/plots_x/items").json()["numberMatched"] == 0
    assert env["c"]["district"].get("/ogc/collections/plots_x/items").json()["numberMatched"] == 2


def s_records_list(env):
    deny_outsiders(env, "GET", "/api/records/tasks")
    keys = {
        u: {r["key"] for r in env["c"][u].get("/api/records/tasks").json()["records"]}
        for u in STAFF
    }
    assert keys["town1"] == {"task-110105001"} and keys["town2"] == {"task-110105002"}
    assert (
        keys["district"] >= {"task-110105001", "task-110105002"}
        and keys["admin"] >= keys["district"]
    )


def s_records_create(env):
    deny_outsiders(env, "POST", "/api/records/tasks", json={"key": "x", "data": {}})
    expect(
        env,
        "POST",
        "/api/records/tasks",
        {"town1": 403, "dept": 403},
        json={"key": "cross-1", "data": {}, "jurisdiction": "110106001"},
    )
    expect(
        env,
        "POST",
        "/api/records/tasks",
        {"town2": 403},
        json={"key": "cross-2", "data": {}, "jurisdiction": "110105001"},
    )
    r = expect(
        env,
        "POST",
        "/api/records/tasks",
        {"town1": 201},
        json={"key": f"own-{time.monotonic_ns()}", "data": {"a": 1}},
    )
    assert r["town1"].json()["jurisdiction"] == "110105001"
    expect(
        env,
        "POST",
        "/api/records/tasks",
        {"dept": 201},
        json={"key": f"dept-{time.monotonic_ns()}", "data": {}, "jurisdiction": "110105003"},
    )


def s_record_get(env):
    url1, url2 = "/api/records/tasks/task-110105001", "/api/records/tasks/task-110105002"
    deny_outsiders(env, "GET", url1)
    expect(
        env, "GET", url1, {"town1": 200, "town2": 404, "district": 200, "admin": 200, "dept": 200}
    )
    expect(env, "GET", url2, {"town1": 404, "town2": 200})


def s_record_put(env):
    url2 = "/api/records/tasks/task-110105002"
    v = env["c"]["town2"].get(url2).json()["version"]
    deny_outsiders(env, "PUT", url2, json={"data": {}, "version": v})
    expect(env, "PUT", url2, {"town1": 404}, json={"data": {"hijack": True}, "version": v})
    expect(
        env,
        "PUT",
        url2,
        {"town2": 403},
        json={"data": {}, "version": v, "jurisdiction": "110105001"},
    )
    assert "hijack" not in env["c"]["town2"].get(url2).json()["data"]
    r = expect(env, "PUT", url2, {"town2": 200}, json={"data": {"progress": 5}, "version": v})
    assert r["town2"].json()["jurisdiction"] == "110105002"


def s_record_delete(env):
    key = f"del-{time.monotonic_ns()}"
    env["c"]["town2"].post("/api/records/tasks", json={"key": key, "data": {}})
    url = f"/api/records/tasks/{key}?version=1"
    deny_outsiders(env, "DELETE", url)
    expect(env, "DELETE", url, {"town1": 404})
    expect(env, "DELETE", url, {"town2": 200})


def s_record_history(env):
    deny_outsiders(env, "GET", "/api/records/tasks/task-110105002/history")
    expect(
        env,
        "GET",
        "/api/records/tasks/task-110105002/history",
        {"town1": 404, "town2": 200, "district": 200},
    )


def s_tables(env):
    deny_outsiders(env, "GET", "/api/tables")
    for u in STAFF:
        assert {t["name"] for t in env["c"][u].get("/api/tables").json()["tables"]} == {
            "stats",
            "ledger",
        }


def s_table(env):
    deny_outsiders(env, "GET", "/api/tables/ledger")
    codes = {
        u: [r["code"] for r in env["c"][u].get("/api/tables/ledger").json()["rows"]] for u in STAFF
    }
    assert (
        codes["town1"] == ["110105001"]
        and codes["town2"] == ["110105002"]
        and len(codes["admin"]) == 3
    )


def s_table_meta(env):
    deny_outsiders(env, "PUT", "/api/tables/ledger/meta", json={"title": "台账"})
    expect(
        env,
        "PUT",
        "/api/tables/ledger/meta",
        {u: 403 for u in ("district", "town1", "dept")},
        json={"title": "台账"},
    )
    expect(env, "PUT", "/api/tables/ledger/meta", {"admin": 200}, json={"title": "台账"})
    assert env["c"]["anon"].get("/api/public/tables/ledger").status_code == 404


def s_audit(path: str) -> Callable:
    def check(env):
        deny_outsiders(env, "GET", path)
        expect(
            env,
            "GET",
            path,
            {u: 403 for u in ("district", "town1", "town2", "dept")} | {"admin": 200},
        )

    return check


def s_provenance(env):
    from yizhangtu.services.provenance import record_result, snapshot_ref

    with open_store(env["uri"]) as st:
        rec = record_result(
            st, "access.test", inputs=[snapshot_ref(st.resolve_snapshot("streets"))], actor="test"
        )
    deny_outsiders(env, "GET", f"/api/provenance/{rec.id}")
    expect(env, "GET", f"/api/provenance/{rec.id}", {u: 200 for u in STAFF})


def s_jobs_list(env):
    assert env["c"]["anon"].get("/api/jobs").status_code == 401
    assert env["c"]["citizen"].get("/api/jobs").json()["jobs"] == []
    ids = {
        u: {j["id"] for j in env["c"][u].get("/api/jobs").json()["jobs"]}
        for u in ("town1", "town2", "admin", "district")
    }
    assert env["jobs"]["town1"] in ids["town1"] and env["jobs"]["town2"] not in ids["town1"]
    assert env["jobs"]["town1"] not in ids["district"]  # not the owner, no audit permission
    assert {env["jobs"]["town1"], env["jobs"]["town2"]} <= ids["admin"]


def s_job(env):
    j1 = env["jobs"]["town1"]
    expect(
        env,
        "GET",
        f"/api/jobs/{j1}",
        {
            "anon": 401,
            "citizen": 404,
            "town2": 404,
            "district": 404,
            "dept": 404,
            "town1": 200,
            "admin": 200,
        },
    )


def s_layers_report(env):
    deny_outsiders(env, "POST", "/api/jobs/layers-report")
    for u in ("dept",):
        r = env["c"][u].post("/api/jobs/layers-report")
        assert r.status_code == 202


def s_diff_report(env):
    body = {"layer": "survey", "from": "2020", "to": "2021"}
    deny_outsiders(env, "POST", "/api/jobs/diff-report", json=body)
    r = env["c"]["town2"].post("/api/jobs/diff-report", json=body)
    assert r.status_code == 202
    env["app"].state.rt.jobs.wait(r.json()["job"]["id"], 60)
    res = env["c"]["town2"].get(f"/api/jobs/{r.json()['job']['id']}").json()["result"]
    assert res["summary"]["jurisdiction"] == "110105002"
    expect(env, "POST", "/api/jobs/diff-report", {"town1": 404}, json=body | {"layer": "nolayer"})


def s_area_table(env):
    body = {"layer": "survey", "by": "streets", "unit_field": "name", "group": "code"}
    deny_outsiders(env, "POST", "/api/accounting/area-tables", json=body)
    # a whole-layer statistic would read parcels outside a township: refused; the district
    # (and its department) cover every parcel of the survey: allowed
    expect(
        env, "POST", "/api/accounting/area-tables", {u: 403 for u in ("town1", "town2")}, json=body
    )
    r = expect(env, "POST", "/api/accounting/area-tables", {"district": 202}, json=body)
    job = r["district"].json()["job"]["id"]
    env["app"].state.rt.jobs.wait(job, 120)
    assert env["c"]["district"].get(f"/api/jobs/{job}").json()["status"] == "succeeded"
    # published layers are public: anyone on the staff may tabulate them
    expect(
        env,
        "POST",
        "/api/accounting/area-tables",
        {"town1": 202},
        json=body | {"layer": "streets", "by": "streets"},
    )


def s_reports(env):
    deny_outsiders(env, "GET", "/api/reports")
    mine = {
        u: {r["name"] for r in env["c"][u].get("/api/reports").json()["reports"]}
        for u in ("town1", "town2", "district", "admin")
    }
    assert env["reports"]["town1"] in mine["town1"] and env["reports"]["town2"] not in mine["town1"]
    assert {env["reports"]["town1"], env["reports"]["town2"]} <= mine["district"] and mine[
        "district"
    ] <= mine["admin"]


def s_report(env):
    url = f"/api/reports/{env['reports']['town1']}"
    deny_outsiders(env, "GET", url)
    expect(env, "GET", url, {"town1": 200, "town2": 404, "district": 200, "admin": 200})
    expect(env, "GET", "/api/reports/../../etc/passwd", {"admin": 404})


def s_public_layers(env):
    for role in ROLES:
        assert [e["name"] for e in env["c"][role].get("/api/public/layers").json()["layers"]] == [
            "streets"
        ]


def s_public_tables(env):
    for role in ROLES:
        assert [t["name"] for t in env["c"][role].get("/api/public/tables").json()["tables"]] == [
            "stats"
        ]


def s_public_table(env):
    for role in ROLES:
        assert env["c"][role].get("/api/public/tables/stats").status_code == 200
        assert env["c"][role].get("/api/public/tables/ledger").status_code == 404


def s_public_reports(env):
    for role in ROLES:
        assert env["c"][role].get("/api/public/reports").json()["reports"] == []


def s_public_report(env):
    for role in ROLES:
        assert (
            env["c"][role].get(f"/api/public/reports/{env['reports']['town1']}").status_code == 404
        )


def s_collections(env):
    for role in ("anon", "citizen"):
        assert [c["id"] for c in env["c"][role].get("/ogc/collections").json()["collections"]] == [
            "streets"
        ]
    for u in STAFF:
        assert "survey" in {
            c["id"] for c in env["c"][u].get("/ogc/collections").json()["collections"]
        }


def s_collection(env):
    expect(
        env,
        "GET",
        "/ogc/collections/survey",
        {"anon": 404, "citizen": 404} | {u: 200 for u in STAFF},
    )
    expect(env, "GET", "/ogc/collections/streets", {r: 200 for r in ROLES})
    b1 = env["c"]["town1"].get("/ogc/collections/survey").json()["extent"]["spatial"]["bbox"][0]
    b2 = env["c"]["town2"].get("/ogc/collections/survey").json()["extent"]["spatial"]["bbox"][0]
    assert b1 != b2  # each sees the extent of its own parcels


def s_queryables(env):
    expect(
        env,
        "GET",
        "/ogc/collections/survey/queryables",
        {"anon": 404, "citizen": 404, "town1": 200},
    )


def s_items(env):
    expect(env, "GET", "/ogc/collections/survey/items", {"anon": 404, "citizen": 404})
    for u in STAFF:
        feats = []
        url = "/ogc/collections/survey/items?limit=500"
        body = env["c"][u].get(url).json()
        feats = body["features"]
        assert feats and all(z.startswith(USERS[u][1]) for z in _zl(feats))
        # a filter naming another township's parcels still returns only the user's own
        other = (
            env["c"][u]
            .get(
                "/ogc/collections/survey/items",
                params={"filter": "ZLDWDM = '110105002000'", "limit": 500},
            )
            .json()
        )
        assert all(z.startswith(USERS[u][1]) for z in _zl(other["features"]))


def s_item(env):
    f1, f2 = env["fids"]["110105001000"], env["fids"]["110105002000"]
    expect(
        env,
        "GET",
        f"/ogc/collections/survey/items/{f2}",
        {"anon": 404, "citizen": 404, "town1": 404, "town2": 200, "district": 200, "admin": 200},
    )
    expect(env, "GET", f"/ogc/collections/survey/items/{f1}", {"town1": 200, "town2": 404})


def s_tile(env):
    lon, lat = env["survey"].union_all().centroid.coords[0]
    import math

    z = 13
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    url = f"/tiles/survey/{z}/{x}/{y}.mvt"
    expect(env, "GET", url, {"anon": 404, "citizen": 404})
    for u in STAFF:
        data = env["c"][u].get(url).content
        feats = mapbox_vector_tile.decode(data)["survey"]["features"] if data else []
        assert all(f["properties"]["ZLDWDM"].startswith(USERS[u][1]) for f in feats)
    expect(env, "GET", f"/tiles/streets/{z}/{x}/{y}.mvt", {r: 200 for r in ROLES})


def s_tilejson(env):
    expect(env, "GET", "/tiles/survey.json", {"anon": 404, "citizen": 404, "town1": 200})
    expect(env, "GET", "/tiles/streets.json", {r: 200 for r in ROLES})


def s_static(env):
    for role in ROLES:
        assert env["c"][role].get("/static/app.js").status_code in (200, 404)


MATRIX: dict[tuple[str, str], Callable] = {
    ("GET", "/openapi.json"): open_route("/openapi.json"),
    ("GET", "/docs"): open_route("/docs"),
    ("GET", "/docs/oauth2-redirect"): open_route("/docs/oauth2-redirect"),
    ("GET", "/"): open_route("/"),
    ("MOUNT", "/static"): s_static,
    ("POST", "/api/auth/login"): s_login,
    ("POST", "/api/auth/token"): s_token,
    ("POST", "/api/auth/logout"): s_logout,
    ("GET", "/api/auth/me"): s_me,
    ("GET", "/api/users"): s_users_list,
    ("POST", "/api/users"): s_users_add,
    ("POST", "/api/users/{username}/disable"): _user_action("POST", "disable"),
    ("POST", "/api/users/{username}/enable"): _user_action("POST", "enable"),
    ("PUT", "/api/users/{username}/password"): s_password,
    ("GET", "/api/layers"): s_layers,
    ("GET", "/api/layers/{layer}"): s_layer,
    ("PATCH", "/api/layers/{layer}"): s_patch_layer,
    ("GET", "/api/layers/{layer}/snapshots"): s_snapshots,
    ("GET", "/api/layers/{layer}/export"): s_export,
    ("GET", "/api/layers/{layer}/diff"): s_diff,
    ("POST", "/api/layers/{layer}/imports"): s_import,
    ("GET", "/api/records/{collection}"): s_records_list,
    ("POST", "/api/records/{collection}"): s_records_create,
    ("GET", "/api/records/{collection}/{key}"): s_record_get,
    ("PUT", "/api/records/{collection}/{key}"): s_record_put,
    ("DELETE", "/api/records/{collection}/{key}"): s_record_delete,
    ("GET", "/api/records/{collection}/{key}/history"): s_record_history,
    ("GET", "/api/tables"): s_tables,
    ("GET", "/api/tables/{name}"): s_table,
    ("PUT", "/api/tables/{name}/meta"): s_table_meta,
    ("GET", "/api/audit"): s_audit("/api/audit"),
    ("GET", "/api/audit/verify"): s_audit("/api/audit/verify"),
    ("GET", "/api/provenance/{rid}"): s_provenance,
    ("GET", "/api/jobs"): s_jobs_list,
    ("GET", "/api/jobs/{job_id}"): s_job,
    ("POST", "/api/jobs/layers-report"): s_layers_report,
    ("POST", "/api/jobs/diff-report"): s_diff_report,
    ("POST", "/api/accounting/area-tables"): s_area_table,
    ("GET", "/api/reports"): s_reports,
    ("GET", "/api/reports/{name:path}"): s_report,
    ("GET", "/api/public/health"): open_route("/api/public/health"),
    ("GET", "/api/public/layers"): s_public_layers,
    ("GET", "/api/public/tables"): s_public_tables,
    ("GET", "/api/public/tables/{name}"): s_public_table,
    ("GET", "/api/public/reports"): s_public_reports,
    ("GET", "/api/public/reports/{name:path}"): s_public_report,
    ("GET", "/ogc"): open_route("/ogc"),
    ("GET", "/ogc/conformance"): open_route("/ogc/conformance"),
    ("GET", "/ogc/collections"): s_collections,
    ("GET", "/ogc/collections/{collectionId}"): s_collection,
    ("GET", "/ogc/collections/{collectionId}/queryables"): s_queryables,
    ("GET", "/ogc/collections/{collectionId}/items"): s_items,
    ("GET", "/ogc/collections/{collectionId}/items/{featureId}"): s_item,
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt"): s_tile,
    ("GET", "/tiles/{layer}.json"): s_tilejson,
}


def declared_access() -> dict[tuple[str, str], str]:
    """``ACCESS`` declarations of the included router modules (see yizhangtu.web.routers)."""
    import sys

    out: dict[tuple[str, str], str] = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("yizhangtu.web.routers.") and isinstance(
            getattr(mod, "ACCESS", None), dict
        ):
            out.update(mod.ACCESS)
    return out


def test_every_route_is_classified(env):
    routes = iter_routes(env["app"])
    declared = declared_access()
    missing = [r for r in routes if r not in MATRIX and r not in declared]
    assert not missing, (
        f"routes without an access scenario (add to MATRIX or the router's ACCESS): {missing}"
    )
    stale = [r for r in MATRIX if r not in routes]
    assert not stale, f"scenarios for routes that no longer exist: {stale}"


def test_declared_access_gates(env):
    """Routes classified by their router's ACCESS dict: check who gets in."""
    routes = set(iter_routes(env["app"]))
    for (method, path), cls in declared_access().items():
        if (method, path) not in routes or (method, path) in MATRIX:
            continue
        url = path.replace("{", "").replace("}", "").replace(":path", "")
        anon = env["c"]["anon"].request(method, url)
        if cls == "public":
            assert anon.status_code not in (401, 403) and anon.status_code < 500, (
                method,
                path,
                anon.status_code,
            )
            continue
        assert anon.status_code == 401, (method, path, anon.status_code)
        if cls.startswith("perm:"):
            from yizhangtu.services.auth import ROLES

            perm = cls.split(":", 1)[1]
            for u, (role, _) in USERS.items():
                r = env["c"][u].request(method, url)
                if perm not in ROLES[role]["perms"]:
                    assert r.status_code == 403, (method, path, u, r.status_code)
                else:
                    assert r.status_code not in (401, 403) and r.status_code < 500, (
                        method,
                        path,
                        u,
                        r.status_code,
                    )


@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_route_access(env, route):
    MATRIX[route](env)
