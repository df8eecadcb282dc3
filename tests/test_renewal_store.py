"""Renewal library on the store (issue 5): records, layers, locking, audit, evaluation, CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest
from openpyxl import load_workbook
from shapely.geometry import box
from typer.testing import CliRunner

from yizhangtu.errors import ConflictError, InputError, NotFoundError, ValidationError
from yizhangtu.policy import load_pack
from yizhangtu.renewal.demo import DEMO_DATE, demo_library
from yizhangtu.renewal.model import ConsentFigures, RenewalUnit, StageDates
from yizhangtu.renewal.views import library_report
from yizhangtu.services import renewal as svc
from yizhangtu.store import LayerSpec, Store, open_store

TOWNS_FILE = Path("/work/shared/data/boundaries/dongguan_towns_33_poi86_wgs84.geojson")
HUMEN = "虎门镇"


@pytest.fixture(scope="module")
def towns(shared_dir) -> gpd.GeoDataFrame:
    path = shared_dir / "data" / "boundaries" / TOWNS_FILE.name
    return gpd.read_file(path)[["name", "nbs_code", "geometry"]]


@pytest.fixture(scope="module")
def demo(towns):
    return demo_library(towns, seed=0)


@pytest.fixture(scope="module")
def pack():
    return load_pack("dongguan-2023")


def put_towns(store: Store, towns: gpd.GeoDataFrame) -> None:
    store.write_snapshot(
        LayerSpec(name="dongguan_towns", kind="boundary"), [towns], label="2023", actor="tester"
    )


def persist_demo(store: Store, demo) -> None:
    svc.save_zones(store, demo.zones, actor="tester")
    ids = demo.units["unit_id"].astype(str)
    svc.import_units(
        store,
        demo.library.units,
        actor="tester",
        geometries=dict(zip(ids, demo.units.geometry.values, strict=True)),
        crs=demo.units.crs,
        scenarios=dict(zip(ids, demo.units["scenario"], strict=True)),
    )
    svc.save_town_accounts(store, demo.library.towns, actor="tester")


def code_of(towns, name):
    return str(towns.loc[towns["name"] == name, "nbs_code"].iloc[0])


def square(town_geom, side=0.003):
    c = town_geom.representative_point()
    return box(c.x - side / 2, c.y - side / 2, c.x + side / 2, c.y + side / 2)


def a_unit(**kw) -> RenewalUnit:
    base = dict(
        unit_id="T-01",
        name="测试单元",
        town=HUMEN,
        unit_type="工改工",
        mode="政府主导",
        land_area_m2=100 * 10000 / 15,
        consent=ConsentFigures(0.8, 0.8),
        dates=StageDates(declared_on=date(2025, 1, 10)),
    )
    base.update(kw)
    return RenewalUnit(**base)


# =========================================================================== records


def test_add_update_conflict(store, towns):
    put_towns(store, towns)
    geom = square(towns.loc[towns["name"] == HUMEN].geometry.iloc[0])
    s = svc.add_unit(store, a_unit(), actor="甲", geometry=geom, crs="EPSG:4326")
    assert s.jurisdiction == code_of(towns, HUMEN) and s.unit.version == 1
    assert s.crs == "EPSG:4490" and s.geometry.equals_exact(geom, 1e-9)
    assert [
        r.key for r in store.list_records(svc.UNITS_COLLECTION, jurisdictions=[s.jurisdiction])
    ] == ["T-01"]
    assert store.list_records(svc.UNITS_COLLECTION, jurisdictions=["441900999"]) == []
    layer = store.read_layer(svc.UNITS_LAYER)
    assert list(layer["unit_id"]) == ["T-01"] and layer["town_code"].iloc[0] == s.jurisdiction
    with pytest.raises(ConflictError) as e:
        svc.add_unit(store, a_unit(), actor="甲")
    assert e.value.key == "record_exists"
    with pytest.raises(ValidationError) as e:
        svc.add_unit(store, a_unit(unit_id="T-02", town="不存在镇"), actor="甲")
    assert e.value.key == "unknown_town"

    # two editors read version 1; the second one to save gets a 409 with the other change
    mine = svc.get_unit(store, "T-01").unit
    svc.update_unit(
        store,
        RenewalUnit(**{**mine.__dict__, "name": "乙改的名称"}),
        expected_version=1,
        actor="乙",
    )
    with pytest.raises(ConflictError) as e:
        svc.update_unit(
            store, RenewalUnit(**{**mine.__dict__, "area_id": "X"}), expected_version=1, actor="丙"
        )
    err = e.value
    assert err.key == "version_conflict" and err.http_status == 409
    assert err.data["current_version"] == 2 and err.data["updated_by"] == "乙"
    assert err.data["current"]["name"] == "乙改的名称"
    assert "name" in err.data["fields_differing"]
    assert [a["actor"] for a in err.data["other_changes"]] == ["乙"]
    assert svc.get_unit(store, "T-01").geometry is not None  # update kept the polygon
    assert len(store.snapshots(svc.UNITS_LAYER)) == 2


def test_advance_writes_record_and_audit_together(store, towns, pack):
    put_towns(store, towns)
    svc.add_unit(store, a_unit(), actor="甲")
    svc.add_unit(store, a_unit(unit_id="T-LOW", consent=ConsentFigures(0.5, 0.9)), actor="甲")
    before = len(store.audit_log())
    res = svc.advance_unit(
        store,
        "T-01",
        "确认主体",
        date(2025, 6, 1),
        pack,
        actor="乙",
        expected_version=1,
        note="意愿达标",
    )
    assert res.stored.unit.stage.value == "确认主体" and res.stored.unit.version == 2
    assert res.stored.unit.consent.source == "entered"  # entered figures kept in the record
    log = store.audit_log()
    new = log[before:]
    assert [a.action for a in new] == [
        "renewal.unit.update",
        "renewal.advance",
    ]  # no polygon, no layer
    adv = new[1]
    assert adv.seq == new[0].seq + 1 and adv.seq == res.audit_seq
    assert (
        adv.details["from"] == "前期工作"
        and adv.details["to"] == "确认主体"
        and adv.details["version"] == 2
    )
    assert (
        adv.details["pack"]["id"] == "dongguan-2023" and adv.details["figure_source"] == "entered"
    )
    assert store.audit_verify().ok
    hist = svc.get_unit(store, "T-01").unit.history
    assert hist[-1].at == date(2025, 6, 1) and hist[-1].note == "意愿达标"

    # a refused move writes nothing
    n = len(store.audit_log())
    with pytest.raises(ValidationError) as e:
        svc.advance_unit(store, "T-LOW", "确认主体", date(2025, 6, 1), pack, actor="乙")
    assert e.value.key == "transition_refused"
    assert any(f["rule_id"] == "renewal.consent" for f in e.value.data["transition"]["findings"])
    assert len(store.audit_log()) == n and svc.get_unit(store, "T-LOW").unit.version == 1

    # a stale version: the other editor's transition is in the error
    with pytest.raises(ConflictError) as e:
        svc.advance_unit(
            store, "T-01", "实施方案", date(2025, 6, 2), pack, actor="丙", expected_version=1
        )
    other = [a for a in e.value.data["other_changes"] if a["action"] == "renewal.advance"]
    assert other and other[0]["details"]["to"] == "确认主体" and other[0]["actor"] == "乙"
    assert e.value.data["current"]["stage"] == "确认主体"
    with pytest.raises(NotFoundError):
        svc.advance_unit(store, "NOPE", "确认主体", date(2025, 6, 1), pack, actor="乙")


# =========================================================================== evaluation


def test_stored_demo_matches_pure_evaluation(store, towns, demo, pack):
    put_towns(store, towns)
    persist_demo(store, demo)
    assert len(store.list_records(svc.UNITS_COLLECTION)) == len(demo.library.units)
    codes = {r.jurisdiction for r in store.list_records(svc.UNITS_COLLECTION)}
    assert codes == {code_of(towns, t) for t in demo.towns.values()}
    ev = svc.evaluate(store, DEMO_DATE, pack, actor="tester")
    pure = library_report(demo.library, DEMO_DATE, pack, zones=demo.zones, units=demo.units)

    def key(fs):
        return Counter((f.rule_id, f.outcome, f.subject) for f in fs)

    assert key(ev.report.findings) == key(pure.findings)
    assert ev.rights_findings == () and ev.synthetic
    outcomes = {(f.rule_id, f.outcome) for f in ev.findings}
    assert ("renewal.hierarchy", "outside") in outcomes and ("renewal.linkage", "fail") in outcomes
    assert ("renewal.unit_area_cap", "param_required") in outcomes
    # zone statistics and town linkage survive the round trip
    zs = ev.report.zone_stats.set_index("zone_id")
    pz = pure.zone_stats.set_index("zone_id")
    assert zs["area_m2"].to_dict() == pytest.approx(pz["area_m2"].to_dict(), rel=1e-6)
    assert list(ev.report.linkage["share"]) == pytest.approx(list(pure.linkage["share"]))
    # deadlines: within the pack's 90 days and overdue ones, as the pure timeline
    dl = svc.deadlines(store, DEMO_DATE, pack)
    assert list(dl["subject"]) == list(pure.timeline["subject"]) and len(dl) > 0
    assert (dl["days_left"] <= 90).all()
    soon = svc.deadlines(store, DEMO_DATE, pack, days=0)
    assert set(soon["status"]) <= {"overdue", "due_today"}
    # provenance: records hashes, layer snapshots, pack
    prov = store.get_provenance(ev.provenance_id)
    kinds = {(i.kind, i.name) for i in prov.inputs}
    assert {
        ("records", svc.UNITS_COLLECTION),
        ("snapshot", svc.ZONES_LAYER),
        ("snapshot", svc.UNITS_LAYER),
    } <= kinds
    assert prov.policy.id == "dongguan-2023" and prov.params["at"] == DEMO_DATE.isoformat()
    # only one town
    town = demo.towns["A"]
    ev_a = svc.evaluate(
        store, DEMO_DATE, pack, actor="tester", jurisdictions=[code_of(towns, town)], record=False
    )
    assert {s.unit.town for s in ev_a.stored} == {town}
    # a user-set cap turns the required-parameter finding into verdicts
    capped = svc.resolve_pack(None, svc.parse_set_options(["unit_area_max=300"]))
    ev_c = svc.evaluate(store, DEMO_DATE, capped, actor="tester", record=False)
    caps = {f.outcome for f in ev_c.findings if f.rule_id == "renewal.unit_area_cap"}
    assert "param_required" not in caps and {"pass", "fail"} <= caps


def test_excel_export_and_import(store, towns, tmp_path):
    put_towns(store, towns)
    g = towns.loc[towns["name"] == HUMEN].geometry.iloc[0]
    svc.add_unit(store, a_unit(), actor="甲", geometry=square(g), crs="EPSG:4326")
    svc.add_unit(store, a_unit(unit_id="T-02", name="第二单元"), actor="甲")
    xlsx = svc.export_units_xlsx(store, tmp_path / "units.xlsx")
    wb = load_workbook(xlsx)
    ws = wb["改造单元"]
    head = [c.value for c in ws[1]]
    assert head[:3] == ["单元编号", "单元名称", "镇街"]
    ws.cell(row=3, column=2, value="第二单元(改名)")
    wb.save(xlsx)
    with pytest.raises(ConflictError) as e:
        svc.import_units_file(store, xlsx, actor="乙")
    assert e.value.key == "record_exists" and set(e.value.data["existing"]) == {"T-01", "T-02"}
    res = svc.import_units_file(store, xlsx, actor="乙", update=True)
    assert res.updated == ("T-02",) and res.unchanged == ("T-01",)
    assert svc.get_unit(store, "T-02").unit.name == "第二单元(改名)"
    assert svc.get_unit(store, "T-01").geometry is not None
    # a new list with polygons from a separate file
    gj = tmp_path / "red.geojson"
    gpd.GeoDataFrame({"unit_id": ["T-02"]}, geometry=[square(g, 0.001)], crs="EPSG:4326").to_file(
        gj
    )
    res2 = svc.import_units_file(store, xlsx, actor="乙", update=True, geometry_path=gj)
    assert res2.updated == ("T-02",)
    assert set(store.read_layer(svc.UNITS_LAYER)["unit_id"]) == {"T-01", "T-02"}
    # a bad cell names the row and the column
    ws = wb["改造单元"]
    ws.cell(row=2, column=4, value="工改住")
    wb.save(xlsx)
    with pytest.raises(InputError) as e:
        svc.import_units_file(store, xlsx, actor="乙", update=True)
    assert e.value.detail.feature.startswith("改造单元!第2行") and e.value.detail.file == str(xlsx)


# =========================================================================== files: report and CLI


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory, towns, demo) -> Path:
    ws = tmp_path_factory.mktemp("renewal") / "demo.gpkg"
    with open_store(ws) as st:
        put_towns(st, towns)
        persist_demo(st, demo)
    return ws


def test_report_html_and_pdf(demo_ws, tmp_path, pack):
    ws = tmp_path / "ws.gpkg"
    shutil.copy(demo_ws, ws)
    with open_store(ws) as st:
        res = svc.write_report(st, DEMO_DATE, pack, tmp_path / "out", actor="tester")
    html, pdf = res.paths
    text = html.read_text(encoding="utf-8")
    for phrase in (
        "城市更新项目库",
        "合成数据",
        "问题清单",
        "项目推进",
        "期限提醒",
        "工改工联动比例",
        "Noto Sans CJK SC",
    ):
        assert phrase in text
    assert res.evaluation.provenance_id in text
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


def cli(ws: Path, *args: str):
    from yizhangtu.cli.main import app

    r = CliRunner().invoke(app, ["-w", str(ws), "renewal", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def test_cli(demo_ws, tmp_path, capsys):
    from yizhangtu.cli.main import main

    ws = tmp_path / "ws.gpkg"
    shutil.copy(demo_ws, ws)
    out = json.loads(cli(ws, "check", "--at", DEMO_DATE.isoformat(), "--json").stdout)
    assert out["synthetic"] and out["counts"]["error"] > 0
    f = out["findings"][0]
    assert {"rule_id", "severity", "clause", "facts", "message", "subject"} <= set(f)
    assert any(x["outcome"] == "param_required" for x in out["findings"])
    out2 = json.loads(
        cli(ws, "check", "--at", "2025-06-30", "--set", "unit_area_max=300", "--json").stdout
    )
    assert not any(x["outcome"] == "param_required" for x in out2["findings"])
    dl = json.loads(cli(ws, "deadlines", "--at", "2025-06-30", "--json").stdout)
    assert dl["deadlines"] and all(d["days_left"] <= 90 for d in dl["deadlines"])
    show = json.loads(cli(ws, "show", "DEMO-A01", "--at", "2025-06-30", "--json").stdout)
    assert show["stage"] == "前期工作" and "确认主体" in show["status"]["allowed_next"]
    adv = json.loads(
        cli(
            ws,
            "advance",
            "DEMO-A01",
            "确认主体",
            "--at",
            "2025-06-30",
            "--version",
            str(show["version"]),
            "--json",
        ).stdout
    )
    assert adv["to_stage"] == "确认主体" and adv["version"] == show["version"] + 1
    rep = json.loads(
        cli(
            ws,
            "report",
            "--at",
            "2025-06-30",
            "--format",
            "html",
            "--out",
            str(tmp_path / "r"),
            "--json",
        ).stdout
    )
    assert rep["paths"] == [str(tmp_path / "r" / "renewal_report.html")]
    cli(
        ws,
        "add",
        "--id",
        "NEW-1",
        "--town",
        HUMEN,
        "--type",
        "工改工",
        "--mode",
        "政府主导",
        "--area-mu",
        "80",
        "--consent",
        "85%,0.9",
        "--json",
    )
    assert cli(ws, "export", str(tmp_path / "u.xlsx"), "--json").exit_code == 0
    stats = json.loads(cli(ws, "stats", "--at", "2025-06-30", "--json").stdout)
    assert stats["zone_stats"] and stats["linkage"]
    # errors: refused transition and stale version, rendered as JSON with exit codes
    with pytest.raises(SystemExit) as e:
        main(
            [
                "-w",
                str(ws),
                "renewal",
                "advance",
                "DEMO-C06",
                "实施方案",
                "--at",
                "2025-06-30",
                "--json",
            ]
        )
    assert e.value.code == 2
    err = json.loads(capsys.readouterr().out)
    assert err["error"] == "transition_refused"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "-w",
                str(ws),
                "renewal",
                "advance",
                "DEMO-A01",
                "实施方案",
                "--version",
                "1",
                "--json",
            ]
        )
    assert e.value.code == 5
    assert json.loads(capsys.readouterr().out)["error"] == "version_conflict"
