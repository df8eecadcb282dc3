"""Rights registry on the store (issue 6): encryption at rest, imports, the renewal link,
unmask permission and audit, masking of every output, backlog, demo steps."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from shapely.geometry import box
from typer.testing import CliRunner

from yizhangtu.errors import InputError, NotFoundError, PermissionDeniedError, ValidationError
from yizhangtu.policy import load_pack
from yizhangtu.renewal.demo import DEMO_DATE
from yizhangtu.renewal.model import RenewalUnit, StageDates
from yizhangtu.rights.demo import synthetic_id_number
from yizhangtu.rights.model import AgreementRecord
from yizhangtu.services import renewal as rsvc
from yizhangtu.services import rights as svc
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, Store, open_store

AT = date(2025, 6, 30)
SECRET = "store-test-secret-0123456789abcdef"
HUMEN = "虎门镇"
D = 0.0006


@pytest.fixture(scope="module")
def towns(shared_dir) -> gpd.GeoDataFrame:
    f = shared_dir / "data" / "boundaries" / "dongguan_towns_33_poi86_wgs84.geojson"
    return gpd.read_file(f)[["name", "nbs_code", "geometry"]]


@pytest.fixture(scope="module")
def people():
    rng = np.random.default_rng(7)
    return [(synthetic_id_number(rng), f"1390000{i:04d}") for i in range(5)]


def settings(actor: str = "tester", secret: str | None = SECRET) -> Settings:
    return Settings(actor=actor, secret_key=secret)


def origin(towns):
    p = towns.loc[towns["name"] == HUMEN].geometry.iloc[0].representative_point()
    return p.x, p.y


def strips(towns, n=5):
    x, y = origin(towns)
    return [box(x + i * D, y, x + (i + 1) * D, y + D) for i in range(n)]


def setup_unit(store: Store, towns) -> None:
    store.write_snapshot(
        LayerSpec(name="dongguan_towns", kind="boundary"), [towns], label="2023", actor="t"
    )
    x, y = origin(towns)
    unit = RenewalUnit(
        unit_id="U1",
        name="测试单元",
        town=HUMEN,
        unit_type="工改工",
        mode="政府主导",
        land_area_m2=5000.0,
        dates=StageDates(declared_on=date(2025, 1, 1)),
    )
    rsvc.add_unit(store, unit, actor="t", geometry=box(x, y, x + 5 * D, y + D), crs="EPSG:4326")


def write_inputs(tmp: Path, towns, people, n_consent=3) -> tuple[Path, Path]:
    """Parcels GeoJSON (5 × 1000 m², one per holder) and a roster workbook."""
    parcels = tmp / "parcels.geojson"
    gpd.GeoDataFrame(
        {
            "宗地代码": [f"Q{i}" for i in range(5)],
            "权利类型": [
                "集体经营性建设用地",
                "国有建设用地使用权",
                "宅基地",
                "承包地",
                "集体经营性建设用地",
            ],
            "registered_area_m2": [1000.0] * 5,
            "town": [HUMEN] * 5,
        },
        geometry=strips(towns),
        crs="EPSG:4326",
    ).to_file(parcels)
    wb = Workbook()
    wb.remove(wb.active)
    ws = wb.create_sheet("权益人")
    ws.append(["权益人编号", "姓名或名称", "类型", "证件号码", "联系电话", "特殊情形"])
    for i, (pid, phone) in enumerate(people):
        ws.append([f"H{i}", f"权益人{i}", "个人", pid, phone, "下落不明" if i == 4 else "正常"])
    ws = wb.create_sheet("权属份额")
    ws.append(["宗地代码", "权益人编号", "份额"])
    for i in range(5):
        ws.append([f"Q{i}", f"H{i}", 1])
    ws = wb.create_sheet("意愿与签约")
    ws.append(["记录编号", "权益人编号", "单元编号", "类型", "日期", "凭证编号"])
    for i in range(n_consent):
        ws.append([f"R{i}", f"H{i}", "U1", "意愿", "2025-03-01", f"YY-{i}"])
    ws = wb.create_sheet("土地流转")
    ws.append(
        ["流转编号", "宗地代码", "流出方权益人编号", "流入方", "流转方式", "起始日期", "终止日期"]
    )
    ws.append(["T1", "Q3", "H3", "某农业公司(合成)", "出租", "2021-01-01", "2030-12-31"])
    roster = tmp / "roster.xlsx"
    wb.save(roster)
    return parcels, roster


def consent_of(store, pack):
    ev = rsvc.evaluate(store, AT, pack, actor="t", record=False)
    return next(f for f in ev.findings if f.rule_id == "renewal.consent" and f.subject == "U1"), ev


# =========================================================================== store


def test_import_encrypts_and_flips_verdict(store, towns, people, tmp_path):
    setup_unit(store, towns)
    pack = load_pack("dongguan-2023")
    parcels, roster = write_inputs(tmp_path, towns, people)
    res = svc.import_roster_file(
        store, roster, settings=settings(), parcels_path=parcels, synthetic=True
    )
    assert res.counts == {
        "parcels": 5,
        "holders": 5,
        "shares": 5,
        "records": 3,
        "transfers": 1,
        "compensations": 0,
    }
    # encrypted at rest: no plain ID or phone in any stored record
    for r in store.list_records(svc.HOLDERS_COLLECTION):
        body = json.dumps(dict(r.data), ensure_ascii=False)
        assert not any(pid in body or phone in body for pid, phone in people)
        assert r.jurisdiction == str(towns.loc[towns["name"] == HUMEN, "nbs_code"].iloc[0])
    if store.backend == "gpkg":
        raw = Path(store.uri).read_bytes()
        assert not any(pid.encode() in raw or phone.encode() in raw for pid, phone in people)
    reg = svc.load_registry(store)
    assert {h.id_masked for h in reg.holders} == {p[:4] + "*" * 10 + p[-4:] for p, _ in people}
    # the renewal rule reads the computed ratios: 3 of 5 → fail; one more consent → pass
    unit_stage = rsvc.get_unit(store, "U1").unit.stage.value
    assert unit_stage == "前期工作"
    f, ev = consent_of(store, pack)
    assert f.outcome == "pending" and f.facts["source"] == "computed"
    assert f.facts["area_share"] == pytest.approx(0.6) and f.facts["heads_total"] == 5
    special = [x for x in ev.rights_findings if x.rule_id == "rights.special_holder"]
    assert [x.outcome for x in special] == ["missing"] and "财产代管" in special[0].message
    with pytest.raises(ValidationError):
        rsvc.advance_unit(store, "U1", "确认主体", AT, pack, actor="t")
    svc.add_record(
        store,
        AgreementRecord("R3", "H3", "U1", "意愿", date(2025, 4, 1), evidence="YY-3"),
        actor="乙",
    )
    f2, _ = consent_of(store, pack)
    assert f2.outcome == "pass" and f2.facts["area_share"] == pytest.approx(0.8)
    adv = rsvc.advance_unit(store, "U1", "确认主体", AT, pack, actor="t")
    assert adv.figure_source == "computed"
    assert store.audit_log()[-1].action in ("renewal.advance", "layer.import")
    # ratios of the unit: provenance with the registry's inputs
    rp = svc.resolve_rights_pack()
    r = svc.ratios_for_unit(store, "U1", AT, rp, actor="t")
    prov = store.get_provenance(r.provenance_id)
    names = {i.name for i in prov.inputs}
    assert {"rights_parcels", "rights_holders", "rights_records", "rights_shares"} <= names
    assert prov.policy.id == "rights-counting"
    # the same holder under another id, or consent dated after signing, is refused on add
    with pytest.raises(ValidationError) as e:
        svc.add_record(
            store, AgreementRecord("S0", "H0", "U1", "签约", date(2025, 2, 1)), actor="t"
        )
    assert e.value.key == "consent_after_signing"
    with pytest.raises(ValidationError) as e:
        svc.add_record(
            store, AgreementRecord("S9", "H9", "U1", "签约", date(2025, 5, 1)), actor="t"
        )
    assert e.value.key == "unknown_holder"


def test_bad_roster_writes_nothing(store, towns, people, tmp_path):
    setup_unit(store, towns)
    parcels, roster = write_inputs(tmp_path, towns, people)
    wb = load_workbook(roster)
    pid = people[1][0]
    bad = pid[:-1] + ("0" if pid[-1] != "0" else "1")
    wb["权益人"].cell(row=3, column=4, value=bad)
    wb["权属份额"].cell(row=2, column=3, value=0.7)
    wb.save(roster)
    with pytest.raises(ValidationError) as e:
        svc.import_roster_file(store, roster, settings=settings(), parcels_path=parcels)
    keys = {p["key"] for p in e.value.data["problems"]}
    assert keys == {"bad_id_checksum", "shares_not_one"}
    assert bad not in json.dumps(e.value.to_dict(), ensure_ascii=False)
    assert e.value.detail.file == str(roster)
    assert store.list_records(svc.HOLDERS_COLLECTION) == [] and not svc.has_registry(store)
    with pytest.raises(InputError) as e:
        svc.import_roster_file(store, roster, settings=settings(secret=None), parcels_path=parcels)
    assert e.value.key == "secret_key_missing"
    # shares of a parcel that is not registered
    wb = load_workbook(roster)
    wb["权益人"].cell(row=3, column=4, value=pid)
    wb["权属份额"].cell(row=2, column=3, value=1)
    wb.save(roster)
    with pytest.raises(ValidationError) as e:
        svc.import_roster_file(store, roster, settings=settings())
    assert {p["key"] for p in e.value.data["problems"]} == {"unknown_parcel"}


def test_unmask_needs_permission_and_is_audited(store, towns, people, tmp_path):
    setup_unit(store, towns)
    parcels, roster = write_inputs(tmp_path, towns, people)
    svc.import_roster_file(store, roster, settings=settings(), parcels_path=parcels)
    with pytest.raises(PermissionDeniedError) as e:
        svc.unmask_holders(store, ["H0"], settings=settings("查看员"), reason="核对")
    assert e.value.http_status == 403
    svc.grant_unmask(store, "查看员", granted_by="管理员", reason="权益核查")
    with pytest.raises(PermissionDeniedError):
        svc.grant_unmask(store, "他人", granted_by="无权限者", reason="x")
    with pytest.raises(InputError):
        svc.unmask_holders(store, ["H0"], settings=settings("查看员"), reason=" ")
    n = len(store.audit_log())
    out = svc.unmask_holders(store, ["H0", "H1"], settings=settings("查看员"), reason="签约核对")
    assert [o["id_number"] for o in out] == [people[0][0], people[1][0]]
    assert out[0]["phone"] == people[0][1]
    new = store.audit_log()[n:]
    assert [(a.action, a.target, a.actor) for a in new] == [
        ("rights.unmask", "rights_holders:H0", "查看员"),
        ("rights.unmask", "rights_holders:H1", "查看员"),
    ]
    assert new[0].details["reason"] == "签约核对" and new[0].details["fields"] == [
        "id_number",
        "phone",
    ]
    assert not any(
        p in json.dumps([a.to_dict() for a in store.audit_log()], ensure_ascii=False)
        for p, _ in people
    )
    assert store.audit_verify().ok


def test_backlog_store(store):
    projects = pd.DataFrame(
        [
            {
                "project_id": "P1",
                "name": "甲(合成)",
                "district": "朝阳区",
                "street": "望京街道",
                "homes": 2,
                "synthetic": True,
            },
            {
                "project_id": "P2",
                "name": "乙(合成)",
                "district": "海淀区",
                "street": "学院路街道",
                "homes": 1,
                "synthetic": True,
            },
        ]
    )
    homes = pd.DataFrame(
        [
            {"project_id": "P1", "home_id": "1", "status": "已发证", "block_reason": None},
            {"project_id": "P1", "home_id": "2", "status": "受阻", "block_reason": "名单合法"},
            {"project_id": "P2", "home_id": "1", "status": "办理中", "block_reason": None},
        ]
    )
    svc.save_backlog(store, projects, homes, actor="t")
    p = svc.backlog_from_store(store)
    assert p.totals["homes"] == 3 and p.totals["issued"] == 1 and p.synthetic
    cy = svc.backlog_from_store(store, district="朝阳区")
    assert cy.totals["homes"] == 2 and cy.districts.iloc[0]["issued_share"] == pytest.approx(0.5)
    assert cy.reasons.iloc[0]["principle"] == "名单合法"
    with pytest.raises(NotFoundError):
        svc.backlog_from_store(store, district="西城区")


# =========================================================================== outputs


def scan(text: str, people) -> list[str]:
    return [v for pid, phone in people for v in (pid, pid.lower(), phone) if v in text]


def xlsx_text(path: Path) -> str:
    wb = load_workbook(path)
    return "\n".join(
        str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row
    )


def test_no_unmasked_id_in_any_output(tmp_path, towns, people, monkeypatch, capsys):
    from yizhangtu.cli.main import app, main

    ws = tmp_path / "ws.gpkg"
    with open_store(ws) as st:
        setup_unit(st, towns)
    parcels, roster = write_inputs(tmp_path, towns, people)
    monkeypatch.setenv("YIZHANGTU_SECRET_KEY", SECRET)
    monkeypatch.setenv("YIZHANGTU_ACTOR", "tester")
    runner = CliRunner()

    def run(*args: str) -> str:
        r = runner.invoke(app, ["-w", str(ws), *args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.stdout

    outputs = [
        run("rights", "import", str(roster), "--parcels", str(parcels), "--json"),
        run("rights", "holders"),
        run("rights", "holders", "--json"),
        run("rights", "holders", "--unit", "U1", "--export", str(tmp_path / "h.xlsx"), "--json"),
        run("rights", "ratios", "--unit", "U1", "--at", "2025-06-30"),
        run("rights", "ratios", "--unit", "U1", "--at", "2025-06-30", "--json"),
        run(
            "rights",
            "ratios",
            "--wkt",
            box(*origin(towns), origin(towns)[0] + 2 * D, origin(towns)[1] + D).wkt,
            "--json",
        ),
        run("renewal", "check", "--at", "2025-06-30", "--json"),
        run("renewal", "show", "U1", "--at", "2025-06-30", "--json"),
        run("renewal", "report", "--at", "2025-06-30", "--out", str(tmp_path / "rep"), "--json"),
        run("renewal", "export", str(tmp_path / "u.xlsx")),
    ]
    ratios = json.loads(outputs[5])
    assert ratios["heads_total"] == 5 and ratios["holders"][0]["id_masked"].count("*") == 10
    outputs.append(xlsx_text(tmp_path / "h.xlsx"))
    outputs.append(xlsx_text(tmp_path / "u.xlsx"))
    outputs.append((tmp_path / "rep" / "renewal_report.html").read_text(encoding="utf-8"))
    pdf_text = subprocess.run(
        ["pdftotext", str(tmp_path / "rep" / "renewal_report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "城市更新项目库" in pdf_text
    outputs.append(pdf_text)
    # errors are outputs too: a malformed ID is reported masked
    wb = load_workbook(roster)
    wrong = people[2][0][:-1] + ("0" if people[2][0][-1] != "0" else "1")
    wb["权益人"].cell(row=4, column=4, value=wrong)
    wb.save(tmp_path / "bad.xlsx")
    with pytest.raises(SystemExit) as e:
        main(["-w", str(ws), "rights", "import", str(tmp_path / "bad.xlsx"), "--json"])
    assert e.value.code == 2
    err = capsys.readouterr()
    assert "bad_id_checksum" in err.out and wrong not in err.out + err.err
    outputs += [err.out, err.err]
    outputs.append(Path(ws).read_bytes().decode("latin-1"))
    leaks = [scan(text, people) for text in outputs]
    assert leaks == [[] for _ in outputs]

    # positive control: an authorised unmask does print the numbers, and is audited
    with pytest.raises(SystemExit) as e:
        main(["-w", str(ws), "rights", "holders", "--unmask", "--reason", "核对", "--json"])
    assert e.value.code == 6
    capsys.readouterr()
    run("rights", "grant", "tester", "--reason", "测试授权")
    shown = run("rights", "holders", "--unmask", "--reason", "签约核对", "--json")
    assert scan(shown, people) and json.loads(shown)["holders"][0]["masked"] is False
    with open_store(ws) as st:
        assert sum(a.action == "rights.unmask" for a in st.audit_log()) == 5


# =========================================================================== demo


def test_demo_steps(tmp_path, towns, shared_dir):
    from yizhangtu.services.demo import DemoContext
    from yizhangtu.services.demo_renewal import demo_step_renewal
    from yizhangtu.services.demo_rights import DEMO_UNITS, demo_step_rights

    logs: list[str] = []
    st = open_store(tmp_path / "demo.gpkg")
    try:
        st.write_snapshot(
            LayerSpec(name="dongguan_towns", kind="boundary"), [towns], label="2023", actor="t"
        )
        ctx = DemoContext(
            store=st,
            out_dir=tmp_path,
            shared=shared_dir,
            settings=Settings(actor="demo"),
            log=logs.append,
        )
        ctx.extras["report_formats"] = ("html",)  # the PDF path is tested in test_renewal_store
        demo_step_renewal(ctx)
        demo_step_rights(ctx)
        assert Path(ctx.extras["secret_key_file"]).is_file() and any("临时密钥" in m for m in logs)
        pack = load_pack("dongguan-2023")
        ev = rsvc.evaluate(st, DEMO_DATE, pack, actor="t", record=False)
        by = {(f.subject, f.rule_id): f for f in ev.findings}
        a05, c10, b04, b03 = DEMO_UNITS
        assert by[(a05, "renewal.consent")].outcome == "pending"
        assert by[(a05, "renewal.consent")].facts["area_share"] == pytest.approx(0.79)
        assert by[(c10, "renewal.consent")].outcome == "pass"
        assert by[(c10, "renewal.consent")].facts["area_share"] == pytest.approx(0.80)
        assert by[(b03, "renewal.expropriation")].outcome == "refused"
        assert by[(b03, "renewal.expropriation")].facts["area_share"] == pytest.approx(0.949)
        assert by[(b04, "renewal.expropriation")].outcome == "eligible"
        assert all(by[(u, "renewal.consent")].facts["source"] == "computed" for u in DEMO_UNITS)
        bl = svc.backlog_from_store(st)
        assert bl.totals["projects"] == 66 and bl.totals["homes"] == 108_000 and bl.synthetic
        reports = tmp_path / "reports"
        assert not (reports / "renewal_report.pdf").exists()
        for name in (
            "renewal_report.html",
            "renewal_units.xlsx",
            "rights_holders.xlsx",
            "rights_ratios.json",
            "cert_backlog.xlsx",
        ):
            assert (reports / name).is_file(), name
        assert "合成数据" in (reports / "renewal_report.html").read_text(encoding="utf-8")
        assert all(b["synthetic"] for b in ctx.built)
        # the synthetic IDs never leave the store unmasked
        cipher = svc.cipher_for(ctx.settings)
        plain = [cipher.decrypt(h.id_number.token) for h in svc.load_registry(st).holders[:10]]
        texts = [
            (reports / "rights_ratios.json").read_text(encoding="utf-8"),
            (reports / "renewal_report.html").read_text(encoding="utf-8"),
            xlsx_text(reports / "rights_holders.xlsx"),
        ]
        assert not any(p in t for p in plain for t in texts)
    finally:
        st.close()
    shutil.rmtree(tmp_path / "reports", ignore_errors=True)
