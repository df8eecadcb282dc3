"""Code tables, 2020→2023 changes, the 三调→用地用海 crosswalk, groups and the codes CLI."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from yizhangtu import codes
from yizhangtu.cli.codes import app
from yizhangtu.codes._data import read_csv
from yizhangtu.errors import InputError, NotFoundError, PolicyError, ValidationError

DATA = resources.files("yizhangtu.codes").joinpath("data")
REFERENCE_FILES = [
    "gbt21010_2017_land_use_status.csv",
    "sandiao_working_classification.csv",
    "land_sea_use_classification_2023.csv",
    "sandiao_to_landsea_crosswalk_2020trial_codes.csv",
]


def levels(system: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for c in codes.load_table(system):
        out[c.level] = out.get(c.level, 0) + 1
    return out


# -- tables --------------------------------------------------------------------------------
def test_systems_and_metadata() -> None:
    assert codes.list_systems() == [
        "gbt21010-2017",
        "sandiao",
        "sandiao-czcsxm",
        "landsea-2023",
        "landsea-2020",
    ]
    for system in codes.list_systems():
        t = codes.load_table(system)
        assert t.system == system
        assert t.title and t.version and t.source
        assert all(c.system == system for c in t)


def test_table_sizes_match_reference_csvs() -> None:
    # reference README: 85 / 69 / 175 rows
    assert len(read_csv("gbt21010_2017_land_use_status.csv")) == 85
    assert len(read_csv("sandiao_working_classification.csv")) == 69
    assert len(read_csv("land_sea_use_classification_2023.csv")) == 175
    assert len(read_csv("sandiao_to_landsea_crosswalk_2020trial_codes.csv")) == 85

    assert len(codes.load_table("gbt21010-2017")) == 85
    assert levels("gbt21010-2017") == {1: 12, 2: 73}
    assert len(codes.load_table("landsea-2023")) == 175
    assert levels("landsea-2023") == {1: 24, 2: 111, 3: 40}

    sandiao = codes.load_table("sandiao")
    ref = read_csv("sandiao_working_classification.csv")
    ref_codes = ref.loc[ref["level"] != "attr", "code"].tolist()
    assert len(ref_codes) == 68  # 69 rows minus the CZCSXM 'attr' row
    ext = read_csv("sandiao_extensions.csv")["code"].tolist()
    assert len(ext) == 13
    assert [c.code for c in sandiao] == ref_codes + ext
    for code in ("00", "05H1", "08H1", "08H2", "0508", "0201K", "08H2A", "1107A"):
        assert code in sandiao


def test_shipped_copies_equal_reference(shared_dir: Path) -> None:
    for name in REFERENCE_FILES:
        shipped = DATA.joinpath(name).read_bytes()
        assert shipped == (shared_dir / "reference" / name).read_bytes(), name


def test_sandiao_hierarchy_and_level_helpers() -> None:
    t = codes.load_table("sandiao")
    assert t.get("0603").name == "盐田"
    assert t.level1("0603") == "00"  # 三调 lists 盐田 under 00 湿地
    assert t.level2("0603") == "0603"
    assert t.level1("0201K") == "02"
    assert t.level2("0201K") == "0201"
    assert t.level2("08") is None
    assert t.ancestors("08H2A") == ("08H2", "08")
    assert set(t.children("00")) == {"0303", "0304", "0306", "0402", "0603", "1105", "1106", "1108"}
    assert [c.code for c in t.codes(level=1)][:3] == ["00", "01", "02"]
    assert t.valid_codes() == frozenset(c.code for c in t)
    assert "0101" in t and 101 not in t and "9999" not in t


def test_get_unknown_code_hints() -> None:
    t = codes.load_table("gbt21010-2017")
    with pytest.raises(NotFoundError) as exc:
        t.get("101")
    assert exc.value.key == "code_not_found"
    assert "0101" in (exc.value.hint or "")
    with pytest.raises(NotFoundError):
        codes.load_table("no-such-system")


def test_corrections_applied() -> None:
    t = codes.load_table("landsea-2023")
    assert t.get("2005").name == "其他交通运输用海"
    assert "更正" in (t.get("2005").note or "")
    gbt = codes.load_table("gbt21010-2017")
    assert gbt.get("0807").name == "文化设施用地"
    assert gbt.get("0809").name == "公用设施用地"


def test_czcsxm_table_with_caveat() -> None:
    t = codes.load_table("sandiao-czcsxm")
    assert {c.code: c.name for c in t.codes(level=1)} == {
        "201": "城市",
        "202": "建制镇",
        "203": "村庄",
        "204": "盐田及采矿用地",
        "205": "特殊用地",
    }
    assert t.get("203A").parent == "203"
    assert all("待核实" in (c.note or "") for c in t)
    assert any("核对" in c for c in t.caveats)


# -- 2020 → 2023 changes ---------------------------------------------------------------------
BRIEF_CHANGES = [
    ("0204", ("0205",)),
    ("0602", ("060201",)),
    ("0603", ("060202",)),
    ("0604", ("060203",)),
    ("1311", ("1705",)),
    ("1312", ("1311",)),
    ("1313", ("1312",)),
    ("2302", ("2303",)),
    ("060102", ("1207",)),
    ("2303", ("060102",)),
]


@pytest.mark.parametrize(("code_2020", "expected"), BRIEF_CHANGES)
def test_each_change_applied(code_2020: str, expected: tuple[str, ...]) -> None:
    assert codes.convert_landsea_2020_to_2023(code_2020) == expected
    t20, t23 = codes.load_table("landsea-2020"), codes.load_table("landsea-2023")
    assert code_2020 in t20
    assert all(c in t23 for c in expected)


def test_change_names_follow_the_class() -> None:
    t20, t23 = codes.load_table("landsea-2020"), codes.load_table("landsea-2023")
    same_name = ["0204", "0602", "0603", "0604", "1312", "1313", "2302", "2303"]
    for code_2020 in same_name:
        (code_2023,) = codes.convert_landsea_2020_to_2023(code_2020)
        assert t20.get(code_2020).name == t23.get(code_2023).name, code_2020
    assert t20.get("1311").name == "干渠" and t23.get("1705").name == "沟渠"
    assert t20.get("060102").name == "村庄内部道路用地"
    assert t23.get("1207").name == "城镇村道路用地"


def test_changes_agree_with_2023_csv_notes() -> None:
    """The notes of the 2023 reference CSV name the 2020 codes; the change list must agree."""
    frame = read_csv("land_sea_use_classification_2023.csv")
    checked = 0
    for code, note in zip(frame["code"], frame["note"], strict=True):
        for old in re.findall(r"2020 trial(?: code)? (\d{4,6})\)?$", note) + re.findall(
            r"\(2020 trial code (\d{4,6})\)", note
        ):
            assert code in codes.convert_landsea_2020_to_2023(old), (old, code)
            checked += 1
        for old, new in re.findall(r"(\d{4,6})=[^;]*?-> now (\d{4,6})", note):
            assert codes.convert_landsea_2020_to_2023(old) == (new,), (old, new)
            checked += 1
    assert checked >= 5


def test_derived_2020_table() -> None:
    t20, t23 = codes.load_table("landsea-2020"), codes.load_table("landsea-2023")
    assert levels("landsea-2020") == {1: 24, 2: 106, 3: 39}
    only_2023 = {"0205", "060201", "060202", "060203", "2206"}
    assert not only_2023 & t20.valid_codes()
    assert {"0604", "1313", "090301", "090302"} <= t20.valid_codes() - t23.valid_codes()
    assert t20.get("0602").name == "种植设施建设用地" and t20.get("0602").level == 2
    changes = codes.landsea_changes()
    listed = set(changes["code_2020"]) - {""}
    for c in t20:  # every unchanged 2020 code is the same class in 2023
        if c.code not in listed:
            assert codes.convert_landsea_2020_to_2023(c.code) == (c.code,)
            assert t23.get(c.code).name == c.name
    for row in changes.itertuples():
        assert row.code_2023 in t23
        if row.code_2020:
            assert t20.get(row.code_2020).name == row.name_2020


def test_unverified_changes_are_flagged() -> None:
    changes = codes.landsea_changes()
    assert set(changes["kind"]) <= {"renamed", "renumbered", "merged", "split", "not_in_2020"}
    unverified = set(changes.loc[~changes["verified"], "code_2020"]) - {""}
    assert {"2202", "090302", "0601"} <= unverified
    assert codes.convert_landsea_2020_to_2023("2202")[0] == "2206"  # the default first


# -- crosswalk -----------------------------------------------------------------------------
def test_converted_crosswalk_has_no_2020_only_codes() -> None:
    cw = codes.crosswalk("sandiao", "landsea-2023")
    t20, t23 = codes.load_table("landsea-2020"), codes.load_table("landsea-2023")
    assert set(cw["target_code"]) <= t23.valid_codes()
    assert not set(cw["target_code"]) & (t20.valid_codes() - t23.valid_codes())
    renumbered = set(codes.landsea_changes().query("kind != 'renamed'")["code_2020"]) - {""}
    for row in cw.itertuples():
        for old in row.target_code_2020.split(","):
            if old in renumbered:
                assert row.target_code != old or old in codes.convert_landsea_2020_to_2023(old)


def test_crosswalk_sources_exist_and_cover_sandiao() -> None:
    sandiao = codes.load_table("sandiao")
    for target in ("landsea-2023", "landsea-2020"):
        cw = codes.crosswalk("sandiao", target)
        assert set(cw["source_code"]) <= sandiao.valid_codes()
        assert set(cw["source_code"]) == sandiao.valid_codes()
        assert set(cw["relation"]) == {"1:1", "1:n"}
        counts = cw.groupby("source_code")["target_code"].nunique()
        expected = counts.map(lambda n: "1:1" if n == 1 else "1:n")
        assert (cw["relation"] == cw["source_code"].map(expected)).all()
        assert cw.groupby("source_code")["is_default"].sum().eq(1).all()
        assert list(cw.columns[:4]) == ["source_code", "target_code", "relation", "note"]


def test_crosswalk_2020_names_match_table() -> None:
    cw = codes.crosswalk("sandiao", "landsea-2020")
    known_typos = {("0306", "0502"), ("0305", "0303"), ("08", "14")}  # 灌木沼泽/灌木林/敞开
    bad = cw[
        (cw["source_target_name"] != cw["target_name"])
        & ~cw.apply(lambda r: (r.source_code, r.target_code) in known_typos, axis=1)
    ]
    assert bad.empty, bad[["source_code", "target_code", "source_target_name", "target_name"]]


def test_crosswalk_specific_conversions() -> None:
    cw = codes.crosswalk()

    def targets(src: str) -> set[str]:
        return set(cw.loc[cw["source_code"] == src, "target_code"])

    assert targets("1109") == {"1311"}
    assert targets("1203") == {"2303"}
    assert targets("1202") == {"060201", "060202", "060203"}
    assert targets("1006") == {"060101", "060102"}
    assert targets("1107A") == {"1705"}
    assert targets("0204") == {"0205"}
    assert "1312" in targets("0809") and "1313" not in targets("0809")
    assert targets("1004") == {"1207"}
    c20 = codes.crosswalk("sandiao", "landsea-2020")
    assert set(c20.loc[c20["source_code"] == "1004", "target_code"]) == {"1207", "060102"}
    fixed = cw[(cw["source_code"] == "0307K") & cw["is_default"]]
    assert fixed["target_code"].tolist() == ["0304"] and "更正" in fixed["note"].iloc[0]


def test_change_crosswalk_and_unsupported_pair() -> None:
    cw = codes.crosswalk("landsea-2020", "landsea-2023")
    assert set(cw["source_code"]) == codes.load_table("landsea-2020").valid_codes()
    row = cw[cw["source_code"] == "0101"].iloc[0]
    assert (row.target_code, row.relation) == ("0101", "1:1")
    assert set(cw.loc[cw["source_code"] == "2202", "target_code"]) == {
        "2202",
        "2203",
        "2204",
        "2205",
        "2206",
    }
    with pytest.raises(NotFoundError):
        codes.crosswalk("landsea-2023", "sandiao")


def test_map_codes() -> None:
    s = pd.Series(["1202", "0101", 1109.0, "0204K"], index=[7, 8, 9, 10])
    out = codes.map_codes(s, "sandiao", "landsea-2023")
    assert out["row"].tolist()[:4] == [7, 7, 7, 8]
    assert out.loc[out["row"] == 9, "target_code"].tolist() == ["1311"]
    assert out.loc[out["row"] == 8, "relation"].tolist() == ["1:1"]
    default = out[out["is_default"]]
    assert default["row"].tolist() == [7, 8, 9, 10]
    assert default["target_code"].tolist() == ["060201", "0101", "1311", "0205"]


def test_map_codes_unknown_codes_raise_with_list() -> None:
    s = pd.Series(["0101", "9999", "9999", None, "101"])
    with pytest.raises(ValidationError) as exc:
        codes.map_codes(s, "sandiao", "landsea-2023")
    err = exc.value
    assert err.key == "unknown_codes"
    assert err.data["unknown"] == {"9999": 2, "": 1, "101": 1}
    assert "9999" in err.message


# -- groups --------------------------------------------------------------------------------
URBAN = "城乡建设用地"
NOT_URBAN = "非城乡建设用地"
PARCELS = pd.DataFrame(
    [
        # DLBM, CZCSXM, expected 城乡建设用地, expected 建设用地
        ("0701", "201", URBAN, "建设用地"),
        ("0702", "203", URBAN, "建设用地"),
        ("0702", None, NOT_URBAN, "建设用地"),  # village house outside every 城镇村 range
        ("05H1", "202A", URBAN, "建设用地"),
        ("0601", "203A", URBAN, "建设用地"),
        ("0602", "204", NOT_URBAN, "建设用地"),  # mining: 其他建设用地
        ("0602", "201", NOT_URBAN, "建设用地"),  # mining inside a town still excluded
        ("0603", "204", NOT_URBAN, "建设用地"),  # 盐田, listed under 00 湿地
        ("09", "205", NOT_URBAN, "建设用地"),
        ("09", "201", NOT_URBAN, "建设用地"),  # 特殊用地 excluded even inside a town
        ("0101", "203", NOT_URBAN, "非建设用地"),  # farmland inside a village
        ("1003", "201", NOT_URBAN, "建设用地"),  # 公路: regional infrastructure
        ("1004", "203", URBAN, "建设用地"),
        ("1002", "201", URBAN, "建设用地"),  # urban rail
        ("0810A", "201", URBAN, "建设用地"),  # extension code, via its parent 0810
        ("1201", "202", URBAN, "建设用地"),
        ("08H2A", "", NOT_URBAN, "建设用地"),  # blank string = outside
        ("1109", "201", NOT_URBAN, "建设用地"),
        ("1202", "203", NOT_URBAN, "非建设用地"),
    ],
    columns=["DLBM", "CZCSXM", "urban", "construction"],
    index=range(100, 119),
)


def test_classify_urban_rural_with_czcsxm() -> None:
    got = codes.classify(
        PARCELS["DLBM"],
        system="sandiao",
        group="urban_rural_construction",
        czcsxm=PARCELS["CZCSXM"],
    )
    assert got.index.equals(PARCELS.index)
    assert got.name == "urban_rural_construction"
    assert got.tolist() == PARCELS["urban"].tolist()


def test_classify_construction_ignores_czcsxm() -> None:
    got = codes.classify(PARCELS["DLBM"], system="sandiao", group="construction")
    assert got.tolist() == PARCELS["construction"].tolist()


def test_classify_three_categories_and_ecological() -> None:
    s = pd.Series(["0303", "1104K", "1107A", "1108", "0404", "0603", "1104", "1103", "0301K"])
    g = codes.load_groups()
    agri = g.classify(s, system="sandiao", group="agricultural").eq("农用地").tolist()
    assert agri == [True, True, True, False, False, False, True, True, True]
    unused = g.classify(s, system="sandiao", group="unused").eq("未利用地").tolist()
    assert unused == [False, False, False, True, True, False, False, False, False]
    eco = g.classify(s, system="sandiao", group="ecological").eq("生态用地").tolist()
    assert eco == [True, False, False, True, True, False, False, True, True]


def test_classify_czcsxm_errors() -> None:
    s = pd.Series(["0701", "0702"])
    with pytest.raises(InputError) as exc:
        codes.classify(s, system="sandiao", group="urban_rural_construction")
    assert exc.value.key == "czcsxm_required"
    with pytest.raises(ValidationError) as exc2:
        codes.classify(
            s, system="sandiao", group="urban_rural_construction", czcsxm=pd.Series(["206", "201"])
        )
    assert exc2.value.key == "unknown_czcsxm" and exc2.value.data["unknown"] == {"206": 1}
    with pytest.raises(InputError):
        codes.classify(
            s,
            system="sandiao",
            group="urban_rural_construction",
            czcsxm=pd.Series(["201", "201"], index=[5, 6]),
        )


def test_classify_landsea_2023() -> None:
    s = pd.Series(["0701", "1311", "1002", "16", "1502", "1206", "2301", "060101"])
    got = codes.classify(s, system="landsea-2023", group="urban_rural_construction")
    assert got.eq(URBAN).tolist() == [True, False, False, True, False, True, True, False]
    # CZCSXM is optional for 2023 codes; when given it narrows, blank leaves it to the code
    cz = pd.Series(["201", None, None, "204", None, "201", None, None])
    got2 = codes.classify(s, system="landsea-2023", group="urban_rural_construction", czcsxm=cz)
    assert got2.eq(URBAN).tolist() == [True, False, False, False, False, True, True, False]
    built = codes.classify(s, system="landsea-2023", group="construction").eq("建设用地")
    assert built.tolist() == [True, True, True, True, True, True, True, False]


def test_classify_ambiguous_codes() -> None:
    s = pd.Series(["13", "04", "0701"])
    with pytest.raises(ValidationError) as exc:
        codes.classify(s, system="landsea-2023", group="urban_rural_construction")
    assert exc.value.key == "ambiguous_codes"
    assert exc.value.data["ambiguous"] == {"13": 1}
    got = codes.classify(s, system="landsea-2023", group="agricultural", ambiguous="na")
    assert got.isna().tolist() == [False, True, False]
    assert got[0] == "非农用地"


def test_classify_levels() -> None:
    s = pd.Series(["0603", "0101", "01", "0201K"])
    assert codes.classify(s, system="sandiao", group="level1").tolist() == ["00", "01", "01", "02"]
    lv2 = codes.classify(s, system="sandiao", group="level2")
    assert lv2.tolist()[:2] == ["0603", "0101"] and lv2[2] is pd.NA and lv2[3] == "0201"


def test_unknown_codes_raise_with_list() -> None:
    s = pd.Series(["0101", "XX", "XX", "0101", None])
    assert codes.unknown_codes(s, "sandiao") == {"XX": 2, "": 1}
    assert codes.unknown_codes(pd.Series(["0101", 101.0]), "gbt21010-2017") == {"101": 1}
    with pytest.raises(ValidationError) as exc:
        codes.classify(s, system="sandiao", group="construction")
    assert exc.value.key == "unknown_codes"
    assert exc.value.data["unknown"] == {"XX": 2, "": 1}
    assert "XX" in str(exc.value)


@pytest.mark.parametrize("system", ["sandiao", "gbt21010-2017", "landsea-2023"])
def test_three_categories_partition_land_codes(system: str) -> None:
    g = codes.load_groups()
    t = codes.load_table(system)
    leaves = [c.code for c in t if not t.children(c.code)]
    sea = {"18", "19", "20", "21", "22", "24"} if system == "landsea-2023" else set()
    members = {n: set(g.members(n, system)) for n in ("agricultural", "construction", "unused")}
    for code in leaves:
        hits = [n for n, m in members.items() if code in m]
        expected = 0 if t.level1(code) in sea else 1
        assert len(hits) == expected, (code, hits)


@pytest.mark.parametrize(
    "group", ["construction", "agricultural", "unused", "urban_rural_construction", "ecological"]
)
def test_groups_agree_across_one_to_one_crosswalk(group: str) -> None:
    cw = codes.crosswalk()
    one = cw[cw["relation"] == "1:1"]
    g = codes.load_groups()
    cz = pd.Series("201", index=one.index)
    src = g.classify(one["source_code"], system="sandiao", group=group, czcsxm=cz, ambiguous="na")
    tgt = g.classify(one["target_code"], system="landsea-2023", group=group, ambiguous="na")
    both = src.notna() & tgt.notna()
    assert both.sum() > 30
    mismatch = one[both & (src != tgt)]
    assert mismatch.empty, mismatch[["source_code", "target_code"]]


def test_describe_group() -> None:
    d = codes.load_groups().describe("urban_rural_construction")
    assert d["label"] == URBAN and d["other_label"] == NOT_URBAN
    assert "002" in d["basis"] and d["judgement"]
    sd = d["systems"]["sandiao"]
    assert sd["czcsxm"]["required"] is True
    assert sd["czcsxm"]["in"] == ["201", "201A", "202", "202A", "203", "203A"]
    assert "0810A" in sd["codes"] and "0602" not in sd["codes"]
    assert d["systems"]["landsea-2023"]["exclude"] == ["1311"]
    assert codes.load_groups().describe("level1")["name"] == "level1"


def test_group_not_defined_for_system() -> None:
    with pytest.raises(PolicyError) as exc:
        codes.classify(pd.Series(["0101"]), system="landsea-2020", group="construction")
    assert exc.value.key == "group_system_missing"


def _custom_groups() -> dict:
    doc = yaml.safe_load(DATA.joinpath("groups", "default.yaml").read_text(encoding="utf-8"))
    rule = doc["groups"]["urban_rural_construction"]["systems"]["sandiao"]
    rule["members"].append("0602")
    rule["czcsxm"]["in"].append("204")
    doc["id"] = "tdt1024-style"
    return doc


def test_load_custom_groups_from_path(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump(_custom_groups(), allow_unicode=True), encoding="utf-8")
    s, cz = pd.Series(["0602", "0603", "0701"]), pd.Series(["204", "204", "204"])
    custom = codes.load_groups(path)
    assert custom.id == "tdt1024-style" and custom.source == str(path.resolve())
    got = custom.classify(s, system="sandiao", group="urban_rural_construction", czcsxm=cz)
    assert got.tolist() == [URBAN, NOT_URBAN, URBAN]
    default = codes.classify(s, system="sandiao", group="urban_rural_construction", czcsxm=cz)
    assert default.tolist() == [NOT_URBAN] * 3
    # edited file is re-read
    doc = _custom_groups()
    doc["groups"]["urban_rural_construction"]["systems"]["sandiao"]["members"].append("0603")
    path.write_text(yaml.safe_dump(doc, allow_unicode=True) + "\n# v2\n", encoding="utf-8")
    again = codes.load_groups(str(path))
    got = again.classify(s, system="sandiao", group="urban_rural_construction", czcsxm=cz)
    assert got.tolist() == [URBAN, URBAN, URBAN]


def test_invalid_group_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    doc = _custom_groups()
    doc["groups"]["construction"]["systems"]["sandiao"]["members"] = [101]  # unquoted code
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        codes.load_groups(bad)
    assert exc.value.key == "groups_invalid"
    doc["groups"]["construction"]["systems"]["sandiao"]["members"] = ["9999"]
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError, match="9999"):
        codes.load_groups(bad)
    with pytest.raises(NotFoundError):
        codes.load_groups(tmp_path / "missing.yaml")


# -- CLI -----------------------------------------------------------------------------------
runner = CliRunner()


def run_json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_list_json() -> None:
    systems = run_json("list")
    assert [s["system"] for s in systems] == codes.list_systems()
    level1 = run_json("list", "--system", "sandiao", "--level", "1")
    assert len(level1["items"]) == 13 and level1["items"][0]["code"] == "00"
    full = run_json("list", "--system", "landsea-2023")
    assert len(full["items"]) == 175 and full["source"]


def test_cli_show_map_groups_json() -> None:
    shown = run_json("show", "0603", "--system", "sandiao")
    assert shown["name"] == "盐田" and shown["level1"] == "00"
    mapped = run_json("map", "1202", "1109", "--from", "sandiao", "--to", "landsea-2023")
    assert [i["target_code"] for i in mapped["items"]] == ["060201", "060202", "060203", "1311"]
    groups = run_json("groups")
    assert [g["name"] for g in groups["groups"]] == codes.load_groups().names()
    one = run_json("groups", "--name", "urban_rural_construction")
    assert one["groups"][0]["systems"]["sandiao"]["czcsxm"]["required"] is True


def test_cli_rich_output_and_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "代码体系" in result.output
    result = runner.invoke(app, ["map", "1004"])
    assert result.exit_code == 0 and "源代码" in result.output and "1207" in result.output
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(_custom_groups(), allow_unicode=True), encoding="utf-8")
    custom = run_json("groups", "--file", str(path))
    assert custom["id"] == "tdt1024-style"
    result = runner.invoke(app, ["show", "9999", "--system", "sandiao"])
    assert isinstance(result.exception, NotFoundError)
    result = runner.invoke(app, ["list", "--level", "1"])
    assert isinstance(result.exception, InputError)
