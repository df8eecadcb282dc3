"""Rights registry (issue 6), pure parts: IDs, protection, ratios, renewal link, rosters."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook
from pyproj import Geod
from shapely.geometry import box

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.policy import load_pack, validate_pack
from yizhangtu.policy.loader import packaged_dir
from yizhangtu.renewal.model import ConsentFigures, RenewalLibrary, RenewalUnit
from yizhangtu.renewal.rules import evaluate_unit
from yizhangtu.rights.backlog import backlog_progress, validate_backlog
from yizhangtu.rights.demo import DemoTarget, demo_backlog, demo_registry, synthetic_id_number
from yizhangtu.rights.excel import holders_to_workbook, read_roster
from yizhangtu.rights.ids import (
    mask_id,
    mask_phone,
    validate_credit_code,
    validate_id_number,
)
from yizhangtu.rights.model import (
    AgreementRecord,
    Holder,
    Parcel,
    Registry,
    Share,
)
from yizhangtu.rights.protect import PIICipher, cipher_from_secret
from yizhangtu.rights.ratios import apply_registry, figure_sources, scope_ratios, unit_ratios

AT = date(2025, 6, 30)
SECRET = "test-secret-key-0123456789abcdef"
D = 0.001  # about 100 m of longitude at 23°N


@pytest.fixture(scope="module")
def rpack():
    return load_pack("rights-counting")


@pytest.fixture(scope="module")
def dgpack():
    return load_pack("dongguan-2023")


@pytest.fixture(scope="module")
def cipher():
    return PIICipher(SECRET)


# =========================================================================== GB 11643


def reference_check(first17: str) -> str:
    """The standard's algorithm written out independently: W_i = 2^(18-i) mod 11, i = 18..2."""
    total = 0
    for pos, ch in enumerate(first17):
        i = 18 - pos  # position index counted from the right, check digit is i = 1
        total += int(ch) * (2 ** (i - 1) % 11)
    return {
        0: "1",
        1: "0",
        2: "X",
        3: "9",
        4: "8",
        5: "7",
        6: "6",
        7: "5",
        8: "4",
        9: "3",
        10: "2",
    }[total % 11]


def test_id_known_valid_examples():
    # examples printed in GB 11643-1999
    assert validate_id_number("11010519491231002X") == "11010519491231002X"
    assert validate_id_number("440524188001010014") == "440524188001010014"
    assert validate_id_number(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize(
    "body", ["44190019800101123", "44190020000229456", "11010119990101000", "65010219751231999"]
)
def test_id_constructed_per_standard(body):
    good = body + reference_check(body)
    assert validate_id_number(good) == good
    wrong = body + ("0" if good[-1] != "0" else "1")
    with pytest.raises(ValidationError) as e:
        validate_id_number(wrong)
    assert e.value.key == "bad_id_checksum"
    assert wrong not in str(e.value) and wrong not in str(e.value.to_dict())
    assert mask_id(wrong) in e.value.message


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("441900800101123", "15 位"),  # old 15-digit form
        ("4419001980010112", "17 位"),
        ("44190019800101123A", "17 位"),
        ("99190019800101123" + "0", "省级"),
        ("44190019801301123" + "0", "出生日期"),
        ("44190020990101123" + "0", "出生日期"),
    ],
)
def test_id_malformed(value, why):
    with pytest.raises(ValidationError, match=why) as e:
        validate_id_number(value, today=date(2025, 1, 1))
    assert value not in e.value.message


def test_id_bad_date_checked_before_checksum():
    body = "44190019800230123"  # 30 February
    with pytest.raises(ValidationError, match="出生日期"):
        validate_id_number(body + reference_check(body))


def test_credit_code():
    assert validate_credit_code("91350100M000100Y43") == "91350100M000100Y43"
    with pytest.raises(ValidationError) as e:
        validate_credit_code("91350100M000100Y44")
    assert e.value.key == "bad_credit_code"


def test_masks():
    assert mask_id("44010119900101123X") == "4401**********123X"
    assert len(mask_id("44010119900101123X")) == 18
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("0769-22223333") == "*********3333"


# =========================================================================== protection


def test_cipher_roundtrip_and_errors(cipher):
    pid = "11010519491231002X"
    p1 = cipher.protect(pid, mask_id)
    p2 = cipher.protect(pid, mask_id)
    assert p1.token != p2.token  # fresh nonce
    assert pid not in p1.token and pid not in repr(p1)
    assert p1.masked == "1101**********002X"
    assert p1.index == p2.index == cipher.index(pid)
    assert cipher.decrypt(p1.token) == pid
    other = PIICipher("another-secret-key-abcdefghijklmn")
    with pytest.raises(ValidationError) as e:
        other.decrypt(p1.token)
    assert e.value.key == "pii_key_mismatch"
    assert other.index(pid) != p1.index
    parts = p1.token.split(".")
    tampered = ".".join(
        [*parts[:2], parts[2][:-4] + ("AAAA" if parts[2][-4:] != "AAAA" else "BBBB")]
    )
    with pytest.raises(ValidationError) as e:
        cipher.decrypt(tampered)
    assert e.value.key == "pii_token_tampered"


def test_missing_or_weak_secret():
    with pytest.raises(InputError) as e:
        cipher_from_secret(None)
    assert e.value.key == "secret_key_missing"
    assert "YIZHANGTU_SECRET_KEY" in e.value.message
    with pytest.raises(InputError) as e:
        cipher_from_secret("short")
    assert e.value.key == "secret_key_weak"


# =========================================================================== ratios


def strip(i: int):
    return box(113.7 + i * D, 23.0, 113.7 + (i + 1) * D, 23.0 + D)


def scenario(records=()) -> Registry:
    """Hand-known registry.

    P1 1000 m² shared A 1/2, B 1/2; P2 600 m² and P3 400 m² both held by C; P4 500 m²
    held by D (下落不明); P5 500 m² held by E (境外). Land: A 500, B 500, C 1000, D 500,
    E 500 = 3000 m²; 5 heads.
    """
    areas = [1000, 600, 400, 500, 500]
    parcels = tuple(
        Parcel(f"P{i}", "国有建设用地使用权", registered_area_m2=a, geometry=strip(i))
        for i, a in enumerate(areas, start=1)
    )
    holders = (
        Holder("A", "甲"),
        Holder("B", "乙"),
        Holder("C", "丙"),
        Holder("D", "丁", status="下落不明"),
        Holder("E", "戊", status="境外"),
    )
    shares = (
        Share("P1", "A", 0.5),
        Share("P1", "B", "1/2"),
        Share("P2", "C", 1),
        Share("P3", "C", "100%"),
        Share("P4", "D", 1),
        Share("P5", "E", 1),
    )
    return Registry(parcels, holders, shares, tuple(records), crs="EPSG:4490")


SCOPE = box(113.7 + D, 23.0, 113.7 + 6 * D, 23.0 + D)


def rec(rid, holder, kind="意愿", on=date(2025, 3, 1), unit="U1", **kw):
    return AgreementRecord(rid, holder, unit, kind, on, **kw)


def test_hand_known_consent_ratios(rpack):
    reg = scenario([rec("r1", "A"), rec("r2", "C", parcel_code="P2")])
    assert reg.problems() == []
    r = scope_ratios(reg, SCOPE, AT, rpack, unit_id="U1")
    assert r.covered and math.isclose(r.coverage, 1.0, rel_tol=1e-6)
    assert r.area_total_m2 == 3000 and r.heads_total == 5
    assert r.land_by_holder() == {"A": 500, "B": 500, "C": 1000, "D": 500, "E": 500}
    # area: A 500 + C's P2 600 = 1100; heads: only A (C has not consented for P3)
    assert r.consent.area_share == pytest.approx(1100 / 3000)
    assert r.consent.head_share == pytest.approx(1 / 5)
    assert r.consent.source == "computed" and r.consent.as_of == AT
    assert r.consent.heads_total == 5 and r.consent.area_total_m2 == 3000
    assert [h.holder_id for h in r.missing("consent")] == ["B", "C", "D", "E"]
    assert r.signing.area_share == 0 and r.signing.head_share == 0
    # C's second parcel: C counts once by head
    r2 = scope_ratios(
        reg.with_records([rec("r3", "C", parcel_code="P3")]), SCOPE, AT, rpack, unit_id="U1"
    )
    assert r2.consent.area_share == pytest.approx(1500 / 3000)
    assert r2.consent.head_share == pytest.approx(2 / 5)
    assert r2.heads_total == 5


def test_special_holders_stay_in_denominator(rpack):
    # E (abroad) consents without naming the procedure: not counted, flagged
    reg = scenario([rec("r1", "A"), rec("e1", "E")])
    r = scope_ratios(reg, SCOPE, AT, rpack, unit_id="U1")
    assert r.heads_total == 5 and r.area_total_m2 == 3000
    assert r.consent.area_share == pytest.approx(500 / 3000)
    flags = {f.facts["holder_id"]: f for f in r.findings if f.rule_id == "rights.special_holder"}
    assert flags["E"].outcome == "record_ignored" and flags["E"].clause == "004 (十六)"
    assert "境外权益人签约及产权注销操作方法" in flags["E"].message
    assert flags["D"].outcome == "missing" and "财产代管" in flags["D"].message
    assert flags["D"].severity == "warning"
    # through the named procedure the abroad holder counts
    proc = rpack.param("procedure_abroad")
    reg2 = scenario([rec("r1", "A"), rec("e1", "E", via_procedure=proc)])
    r2 = scope_ratios(reg2, SCOPE, AT, rpack, unit_id="U1")
    assert r2.consent.area_share == pytest.approx(1000 / 3000)
    assert r2.consent.head_share == pytest.approx(2 / 5)
    flags2 = {
        f.facts["holder_id"]: f.outcome for f in r2.findings if f.rule_id == "rights.special_holder"
    }
    assert flags2 == {"D": "missing", "E": "handled"}


def test_record_dates_status_and_scope(rpack):
    recs = [
        rec("r1", "A", on=date(2025, 7, 1)),  # after the evaluation date
        rec("r2", "B", status="作废"),
        rec("r3", "C", status="撤回", withdrawn_on=date(2025, 5, 1)),
        rec("r4", "C", unit="U2"),  # made for another unit
    ]
    r = scope_ratios(scenario(recs), SCOPE, AT, rpack, unit_id="U1")
    assert r.consent.area_share == 0
    # before the withdrawal C counted; on the later date A counts too
    r_apr = scope_ratios(scenario(recs), SCOPE, date(2025, 4, 1), rpack, unit_id="U1")
    assert r_apr.consent.area_share == pytest.approx(1000 / 3000)
    r_aug = scope_ratios(scenario(recs), SCOPE, date(2025, 8, 1), rpack, unit_id="U1")
    assert r_aug.consent.area_share == pytest.approx(500 / 3000)
    # records of any unit when no unit is named (arbitrary polygon)
    r_any = scope_ratios(scenario(recs), SCOPE, AT, rpack)
    assert r_any.consent.area_share == pytest.approx(1000 / 3000)
    # records older than the current round do not count
    r_since = scope_ratios(
        scenario([rec("r1", "A")]), SCOPE, AT, rpack, unit_id="U1", since=date(2025, 4, 1)
    )
    assert r_since.consent.area_share == 0


def test_signing_implies_consent_and_head_rule(rpack):
    reg = scenario(
        [
            rec("c1", "C", parcel_code="P2"),
            rec("s1", "C", "签约", on=date(2025, 4, 1), parcel_code="P3"),
        ]
    )
    r = scope_ratios(reg, SCOPE, AT, rpack, unit_id="U1")
    assert r.signing.area_share == pytest.approx(400 / 3000) and r.signing.head_share == 0
    assert r.consent.area_share == pytest.approx(
        1000 / 3000
    ) and r.consent.head_share == pytest.approx(0.2)
    any_parcel = rpack.with_values(head_agrees_when="any_parcel")
    r2 = scope_ratios(reg, SCOPE, AT, any_parcel, unit_id="U1")
    assert r2.signing.head_share == pytest.approx(0.2)
    no_imply = rpack.with_values(signing_implies_consent=False)
    r3 = scope_ratios(reg, SCOPE, AT, no_imply, unit_id="U1")
    assert r3.consent.area_share == pytest.approx(600 / 3000) and r3.consent.head_share == 0


def test_membership_coverage_and_area_basis(rpack):
    reg = scenario([rec("r1", "A")])
    # a scope that holds P1..P2 only (representative points of P3..P5 outside)
    half = box(113.7 + D, 23.0, 113.7 + 3 * D, 23.0 + D)
    r = scope_ratios(reg, half, AT, rpack, unit_id="U1")
    assert set(r.parcels) == {"P1", "P2"} and r.heads_total == 3
    assert r.consent.area_share == pytest.approx(500 / 1600)
    # a scope twice the parcels' extent: coverage 50% → not covered
    big = box(113.7 + D, 23.0, 113.7 + 6 * D, 23.0 + 2 * D)
    rb = scope_ratios(reg, big, AT, rpack, unit_id="U1")
    assert rb.coverage == pytest.approx(0.5, rel=1e-3) and not rb.covered
    assert [f.outcome for f in rb.findings if f.rule_id == "rights.coverage"] == ["partial"]
    # registered area missing: the ellipsoidal area is used and reported
    p1 = replace(reg.parcels[0], registered_area_m2=None)
    reg2 = replace(reg, parcels=(p1, *reg.parcels[1:]))
    r2 = scope_ratios(reg2, SCOPE, AT, rpack, unit_id="U1")
    geod = Geod(a=6378137.0, f=1 / 298.257222101)  # CGCS2000 ellipsoid
    geom_area = abs(geod.geometry_area_perimeter(strip(1))[0])
    assert r2.area_from_geometry == ("P1",)
    assert r2.area_total_m2 == pytest.approx(2000 + geom_area, rel=1e-3)


def test_unassigned_parcel_kept_in_denominator(rpack):
    reg = scenario([rec("r1", "A"), rec("r2", "B"), rec("r3", "C")])
    extra = Parcel("P6", "集体经营性建设用地使用权", registered_area_m2=1000, geometry=strip(6))
    reg = replace(reg, parcels=(*reg.parcels, extra))
    scope = box(113.7 + D, 23.0, 113.7 + 7 * D, 23.0 + D)
    r = scope_ratios(reg, scope, AT, rpack, unit_id="U1")
    assert r.unassigned == ("P6",) and r.area_total_m2 == 4000
    assert r.consent.area_share == pytest.approx(2000 / 4000)
    assert r.heads_total == 5
    f = next(f for f in r.findings if f.outcome == "unassigned")
    assert f.severity == "warning" and "P6" in f.message


def test_registry_problems():
    reg = scenario(
        [rec("r1", "A", on=date(2025, 5, 1)), rec("s1", "A", "签约", on=date(2025, 4, 1))]
    )
    bad_share = Share("P1", "B", 0.4)
    reg = replace(reg, shares=(Share("P1", "A", 0.5), bad_share, *reg.shares[2:]))
    keys = {p.key for p in reg.problems()}
    assert {"shares_not_one", "consent_after_signing"} <= keys
    reg2 = replace(scenario(), shares=(*scenario().shares, Share("P9", "Z", 1)))
    keys2 = {p.key for p in reg2.problems()}
    assert {"unknown_holder", "unknown_parcel"} <= keys2
    with pytest.raises(ValidationError, match="国有"):
        Parcel("X", "宅基地使用权", ownership="国有")


# =========================================================================== renewal link


def unit(**kw) -> RenewalUnit:
    base = dict(
        unit_id="U1",
        name="测试单元",
        town="甲镇",
        unit_type="工改工",
        mode="政府主导",
        land_area_m2=3000.0,
        stage="确认主体",
    )
    base.update(kw)
    return RenewalUnit(**base)


def flip_registry(n_consent: int) -> Registry:
    """Five holders with 1000 m² each; the first ``n_consent`` consented."""
    parcels = tuple(
        Parcel(f"Q{i}", "集体经营性建设用地使用权", registered_area_m2=1000, geometry=strip(i))
        for i in range(5)
    )
    holders = tuple(Holder(f"H{i}", f"权益人{i}") for i in range(5))
    shares = tuple(Share(f"Q{i}", f"H{i}", 1) for i in range(5))
    records = tuple(rec(f"r{i}", f"H{i}") for i in range(n_consent))
    return Registry(parcels, holders, shares, records, crs="EPSG:4490")


FLIP_SCOPE = box(113.7, 23.0, 113.7 + 5 * D, 23.0 + D)


def test_verdict_flips_when_one_consent_is_added(rpack, dgpack):
    # entered figures say 90 %: without the registry the unit passes on entered figures
    u = unit(consent=ConsentFigures(0.9, 0.9, source="entered"))
    lib = RenewalLibrary(units=(u,))
    f0 = next(f for f in evaluate_unit(u, AT, dgpack, lib) if f.rule_id == "renewal.consent")
    assert f0.outcome == "pass" and f0.facts["source"] == "entered"

    def verdict(reg: Registry):
        ratios = unit_ratios([u], {"U1": FLIP_SCOPE}, reg, AT, rpack)
        lib2 = apply_registry(lib, ratios)
        f = next(
            f
            for f in evaluate_unit(lib2.units[0], AT, dgpack, lib2)
            if f.rule_id == "renewal.consent"
        )
        return f, ratios

    before, ratios = verdict(flip_registry(3))
    assert before.outcome == "fail" and before.severity == "error"
    assert before.facts["source"] == "computed" and before.facts["area_share"] == pytest.approx(0.6)
    assert "权益人名册计算" in before.message
    src = figure_sources(lib, ratios)[0]
    assert src["source"] == "computed" and src["consent_entered"] == {
        "area_share": 0.9,
        "head_share": 0.9,
    }
    reg = flip_registry(3).with_records([rec("r3", "H3")])
    after, _ = verdict(reg)
    assert after.outcome == "pass"
    assert after.facts["area_share"] == pytest.approx(0.8) and after.facts[
        "head_share"
    ] == pytest.approx(0.8)


def test_uncovered_unit_keeps_entered_figures(rpack, dgpack):
    u = unit(consent=ConsentFigures(0.85, 0.85, source="entered"))
    lib = RenewalLibrary(units=(u,))
    far = box(114.0, 23.5, 114.0 + D, 23.5 + D)  # no parcel there
    ratios = unit_ratios([u], {"U1": far}, flip_registry(1), AT, rpack)
    lib2 = apply_registry(lib, ratios)
    assert lib2.units[0].consent.source == "entered"
    f = next(
        f for f in evaluate_unit(lib2.units[0], AT, dgpack, lib2) if f.rule_id == "renewal.consent"
    )
    assert (
        f.outcome == "pass"
        and f.facts["source"] == "entered"
        and f.facts["source_label"] == "人工填报"
    )
    assert figure_sources(lib, ratios)[0]["source"] == "entered"


def test_expropriation_reads_computed_signing(rpack, dgpack):
    parcels = tuple(
        Parcel(f"Q{i}", "国有建设用地使用权", registered_area_m2=a, geometry=strip(i))
        for i, a in enumerate([9500, 500])
    )
    holders = (Holder("H0", "甲"), Holder("H1", "乙"))
    shares = (Share("Q0", "H0", 1), Share("Q1", "H1", 1))
    signed = (rec("s0", "H0", "签约"),)
    reg = Registry(parcels, holders, shares, signed, crs="EPSG:4490")
    u = unit(expropriation_requested=True, signing=ConsentFigures(1.0, 1.0, kind="signing"))
    scope = box(113.7, 23.0, 113.7 + 2 * D, 23.0 + D)
    lib = apply_registry(
        RenewalLibrary(units=(u,)), unit_ratios([u], {"U1": scope}, reg, AT, rpack)
    )
    f = next(
        f
        for f in evaluate_unit(lib.units[0], AT, dgpack, lib)
        if f.rule_id == "renewal.expropriation"
    )
    # 95 % of the area but 1 of 2 heads: refused, read from the registry
    assert f.outcome == "refused" and f.facts["source"] == "computed"
    assert f.facts["area_share"] == pytest.approx(0.95) and f.facts["head_share"] == pytest.approx(
        0.5
    )


# =========================================================================== rosters


def roster_workbook(rows_holders, rows_shares=(), rows_records=()) -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    ws = wb.create_sheet("权益人")
    ws.append(["权益人编号", "姓名或名称", "类型", "证件号码", "联系电话", "特殊情形"])
    for r in rows_holders:
        ws.append(list(r))
    ws = wb.create_sheet("权属份额")
    ws.append(["宗地代码", "权益人编号", "份额"])
    for r in rows_shares:
        ws.append(list(r))
    ws = wb.create_sheet("意愿与签约")
    ws.append(
        ["记录编号", "权益人编号", "单元编号", "宗地代码", "类型", "日期", "凭证编号", "状态"]
    )
    for r in rows_records:
        ws.append(list(r))
    return wb


def test_roster_reads_and_protects(cipher):
    rng = np.random.default_rng(1)
    ids = [synthetic_id_number(rng) for _ in range(2)]
    wb = roster_workbook(
        [
            ("H1", "张三", "个人", ids[0], "13812345678", "正常"),
            ("H2", "李四", "个人", ids[1].lower(), None, "境外"),
        ],
        [("P1", "H1", "60%"), ("P1", "H2", 0.4)],
        [
            ("R1", "H1", "U1", None, "同意", "2025-03-01", "YY-1", "有效"),
            ("R2", "H1", "U1", None, "补偿协议", date(2025, 4, 1), "XY-1", None),
        ],
    )
    roster = read_roster(wb, cipher)
    h1, h2 = roster.holders
    assert h1.id_masked == mask_id(ids[0]) and h1.phone_masked == "138****5678"
    assert cipher.decrypt(h2.id_number.token) == ids[1].upper()
    assert h2.status.value == "境外" and h2.phone is None
    assert [s.share for s in roster.shares] == [0.6, 0.4]
    assert [r.kind.value for r in roster.records] == ["意愿", "签约"]
    assert ids[0] not in repr(roster)
    out = holders_to_workbook(roster.holders, roster.shares)
    cells = [str(c) for ws in out.worksheets for row in ws.iter_rows(values_only=True) for c in row]
    assert not any(i in c or i.lower() in c for i in ids for c in cells)
    assert mask_id(ids[0]) in cells


def test_roster_reports_every_problem(cipher):
    rng = np.random.default_rng(2)
    good = synthetic_id_number(rng)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    wb = roster_workbook(
        [
            ("H1", "张三", "个人", good, None, None),
            ("H2", "张三(重复登记)", "个人", good, None, None),
            ("H3", "王五", "个人", bad, None, None),
            ("H1", "赵六", "个人", None, None, None),
        ],
        [("P1", "H1", 0.5), ("P1", "H2", 0.3), ("P2", "H3", 1)],
        [
            ("R1", "H1", "U1", None, "意愿", "2025-05-01", None, None),
            ("R2", "H1", "U1", None, "签约", "2025-04-01", None, None),
        ],
    )
    with pytest.raises(ValidationError) as e:
        read_roster(wb, cipher)
    problems = e.value.data["problems"]
    keys = [p["key"] for p in problems]
    assert "bad_id_checksum" in keys
    assert keys.count("duplicate_holder") == 2  # same holder id twice; same ID under two ids
    assert "shares_not_one" in keys
    assert "consent_after_signing" in keys
    bad_row = next(p for p in problems if p["key"] == "bad_id_checksum")
    assert bad_row["feature"] == "权益人!第4行(H3)"
    text = str(e.value.to_dict())
    assert good not in text and bad not in text


# =========================================================================== backlog


def test_backlog_progress_hand_known():
    projects = pd.DataFrame(
        [
            {
                "project_id": "X1",
                "name": "甲",
                "district": "朝阳区",
                "street": "酒仙桥",
                "homes": 3,
            },
            {"project_id": "X2", "name": "乙", "district": "朝阳区", "street": "望京", "homes": 2},
        ]
    )
    homes = pd.DataFrame(
        [
            {"project_id": "X1", "home_id": "1", "status": "已发证", "block_reason": None},
            {"project_id": "X1", "home_id": "2", "status": "已发证", "block_reason": None},
            {"project_id": "X1", "home_id": "3", "status": "受阻", "block_reason": "实测准确"},
            {"project_id": "X2", "home_id": "1", "status": "已发证", "block_reason": None},
            {"project_id": "X2", "home_id": "2", "status": "已发证", "block_reason": None},
        ]
    )
    p = backlog_progress(projects, homes)
    assert p.totals["homes"] == 5 and p.totals["issued"] == 4 and p.totals["projects_done"] == 1
    x1 = p.projects.set_index("project_id").loc["X1"]
    assert x1["issued_share"] == pytest.approx(2 / 3) and x1["blocked"] == 1
    d = p.districts.iloc[0]
    assert d["issued_share"] == pytest.approx(0.8) and d["projects"] == 2
    assert (
        p.reasons.iloc[0]["block_reason"] == "实测面积与记载不符"
        and p.reasons.iloc[0]["principle"] == "实测准确"
    )
    homes.loc[2, "block_reason"] = None
    homes.loc[4, "status"] = "不知道"
    with pytest.raises(ValidationError) as e:
        validate_backlog(projects.assign(homes=[3, 3]), homes)
    keys = {x["key"] for x in e.value.data["problems"]}
    assert keys == {"block_reason_missing", "bad_cert_status", "homes_mismatch"}


def test_demo_backlog_order_of_magnitude():
    projects, homes = demo_backlog(["酒仙桥街道", "望京街道", "三里屯街道"], seed=3)
    assert len(projects) == 66 and projects["homes"].sum() == 108_000 and len(homes) == 108_000
    assert projects["synthetic"].all() and projects["name"].str.contains("合成数据").all()
    p = backlog_progress(projects, homes)
    assert p.synthetic and 0.5 < p.totals["issued_share"] < 1


# =========================================================================== packs and demo


def test_rights_pack_is_valid_and_cited():
    path = Path(str(packaged_dir() / "rights-counting.yaml"))
    assert [p for p in validate_pack(path) if p.severity == "error"] == []
    pack = load_pack("rights-counting")
    assert pack.module == "rights"
    for p in pack.parameters.values():
        assert p.local_choice or (p.clause or "").startswith("004 ("), p.name
    assert {r for r in pack.rules} == {
        "rights.coverage",
        "rights.missing_holders",
        "rights.special_holder",
    }


def test_demo_registry_hits_targets(rpack, cipher):
    side = 0.002
    units = gpd.GeoDataFrame(
        {
            "unit_id": ["U-A", "U-B"],
            "town": ["虎门镇", "虎门镇"],
            "land_area_m2": [45000.0, 45000.0],
        },
        geometry=[
            box(113.7, 23.0, 113.7 + side, 23.0 + side),
            box(113.71, 23.0, 113.71 + side, 23.0 + side),
        ],
        crs="EPSG:4490",
    )
    targets = [DemoTarget("U-A", "consent", 0.79, 16), DemoTarget("U-B", "signing", 0.949, 19)]
    reg, people = demo_registry(
        units, targets, cipher, AT, procedure_abroad=rpack.param("procedure_abroad")
    )
    assert reg.problems() == [] and reg.synthetic
    assert all(p.id_number not in repr(reg) for p in people)
    ra = scope_ratios(reg, units.geometry.iloc[0], AT, rpack, unit_id="U-A")
    rb = scope_ratios(reg, units.geometry.iloc[1], AT, rpack, unit_id="U-B")
    assert ra.covered and rb.covered
    assert ra.consent.area_share == pytest.approx(0.79, abs=1e-12) and ra.consent.head_share == 0.8
    assert (
        rb.signing.area_share == pytest.approx(0.949, abs=1e-12) and rb.signing.head_share == 0.95
    )
    assert {h.status for h in ra.special()} == {"境外", "下落不明"}
    assert len({h.holder_id for h in ra.holders}) == 20 and len(ra.parcels) == 20
