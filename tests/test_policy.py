"""Policy-pack framework: loading, schema and semantic validation, parameters, validity, CLI."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yizhangtu.cli.policy import app
from yizhangtu.errors import FileFormatError, NotFoundError, PolicyError
from yizhangtu.policy import (
    UNIT_KINDS,
    add_period,
    list_packs,
    load_pack,
    pack_from_mapping,
    validate_mapping,
    validate_pack,
)
from yizhangtu.policy.loader import packaged_dir, schema_units
from yizhangtu.policy.rules import Finding, RuleRegistry

DATA = Path(__file__).parent / "data" / "policies"
SEED = DATA / "seed_004_dongguan.txt"
FICT = DATA / "fictitious-city.yaml"
DG_FILE = Path(str(packaged_dir() / "dongguan-2023.yaml"))

CN_NUM = {1: "一", 2: "兩", 3: "三", 4: "四", 5: "五", 6: "六", 10: "十"}


@pytest.fixture(scope="module")
def pack():
    return load_pack("dongguan-2023")


@pytest.fixture()
def raw():
    return yaml.safe_load(DG_FILE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict, name: str = "pack.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def _keys(problems):
    return {p.key for p in problems if p.severity == "error"}


# --------------------------------------------------------------------------- loading


def test_list_and_load_packaged(pack):
    ids = [p.id for p in list_packs()]
    assert "dongguan-2023" in ids
    assert pack.id == "dongguan-2023"
    assert pack.module == "renewal"
    assert pack.jurisdiction["name"] == "东莞市"
    assert pack.effective == date(2023, 1, 10)
    assert pack.expires == date(2028, 1, 9)
    ref = pack.ref()
    assert set(ref) == {"id", "version", "hash"}
    assert re.fullmatch(r"[0-9a-f]{64}", ref["hash"])
    # same content, same hash; loading by path gives the same hash as by id
    assert load_pack(DG_FILE).hash == pack.hash


def test_hash_changes_with_content(pack):
    set_pack = pack.with_values(unit_area_max=300)
    assert set_pack.hash != pack.hash
    assert set_pack.param("unit_area_max", unit="mu") == 300
    assert set_pack.parameter("unit_area_max").user_set
    # original untouched
    with pytest.raises(PolicyError):
        pack.param("unit_area_max")


def test_load_unknown_pack():
    with pytest.raises(NotFoundError) as exc:
        load_pack("no-such-pack")
    assert "dongguan-2023" in (exc.value.hint or "")
    with pytest.raises(NotFoundError):
        load_pack("/nonexistent/dir/pack.yaml")


def test_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(FileFormatError):
        validate_pack(p)


def test_schema_units_match_code():
    assert schema_units() == set(UNIT_KINDS)


# ------------------------------------------------------------ the Dongguan pack against its seed


def _clauses(text: str) -> dict[str, str]:
    heads = [
        (m.start(), m.group(1)) for m in re.finditer(r"^\(([一二三四五六七八九十]+)\)", text, re.M)
    ]
    out = {}
    for (start, name), nxt in zip(heads, [*heads[1:], (len(text), "")], strict=True):
        out[name] = text[start : nxt[0]]
    return out


def _evidence(value, unit) -> list[str]:
    if unit == "km2":
        return [f"{value:g}-", f"-{value:g}平方公里"]
    if unit == "mu":
        return [f"{value:g}畝"]
    if unit == "ratio":
        if value == "1/3":
            return ["三分之一"]
        return [f"{value * 100:g}%"]
    if unit in ("year", "month"):
        suffix = "年" if unit == "year" else "個月"
        return [f"{value}{suffix}", f"{CN_NUM[value]}{suffix}"]
    if unit == "spaces_per_100m2":
        return [f"{value:g}個"]
    if unit == "split":
        return [":".join(str(v) for v in value.values())]
    raise AssertionError(unit)


def test_every_seed_number_is_in_its_clause(pack):
    """Each cited number of the Dongguan pack appears in the text of the clause it cites."""
    clauses = _clauses(SEED.read_text(encoding="utf-8"))
    checked = 0
    for p in pack.parameters.values():
        if p.local_choice or p.value is None or p.unit in ("list", "text", "bool"):
            continue
        m = re.fullmatch(r"004 \((.+)\)", p.clause)
        assert m, f"{p.name}: clause {p.clause!r} does not cite seed 004"
        body = clauses[m.group(1)]
        values = p.value.values() if isinstance(p.value, dict) and p.unit != "split" else [p.value]
        for v in values:
            cands = [f"{v:g}"] if p.unit == "coefficient" else _evidence(v, p.unit)
            assert any(c in body for c in cands), (
                f"{p.name}={v} not found in 004 ({m.group(1)}): {cands}"
            )
            checked += 1
    assert checked >= 25


def test_validity_dates_match_seed(pack):
    text = SEED.read_text(encoding="utf-8")
    assert "有效期至2028年1月9日" in text
    assert "2023年1月10日" in text
    assert pack.expires == date(2028, 1, 9) and pack.effective == date(2023, 1, 10)


def test_illegible_unit_cap_is_required_from_user(pack):
    p = pack.parameter("unit_area_max")
    assert p.value is None and p.required_from_user and p.clause == "004 (三)"
    assert "?00畝以內" in SEED.read_text(encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        pack.param("unit_area_max", unit="mu")
    assert exc.value.key == "policy_param_required"
    assert exc.value.detail.field == "unit_area_max"
    problems = validate_pack(DG_FILE)
    assert [p.key for p in problems] == ["policy_param_required"]
    assert problems[0].severity == "warning"


def test_local_choices_are_flagged(pack):
    local = {p.name for p in pack.parameters.values() if p.local_choice}
    assert {
        "hierarchy_tolerance",
        "timeline_horizon",
        "balance_fund_basis",
        "share_source_precedence",
    } <= local
    for p in pack.parameters.values():
        assert p.local_choice or p.clause, p.name


# --------------------------------------------------------------------------- param()


def test_param_missing_unit_mismatch_inactive(pack, raw, tmp_path):
    with pytest.raises(PolicyError) as exc:
        pack.param("no_such_param")
    assert exc.value.key == "policy_param_missing"
    with pytest.raises(PolicyError) as exc:
        pack.param("consent_share_min", unit="percent")
    assert exc.value.key == "policy_param_unit"
    assert pack.param("consent_share_min", unit="ratio") == 0.8
    assert pack.param("reinvestment_share_min") == pytest.approx(1 / 3)
    assert pack.param("balance_coefficient") == {"权利人自行改造": 1.1, "公开招引实施主体": 1.05}
    raw["parameters"]["consent_share_min"]["effective_to"] = "2024-12-31"
    p2 = load_pack(_write(tmp_path, raw))
    assert p2.param("consent_share_min", at=date(2024, 12, 31)) == 0.8
    with pytest.raises(PolicyError) as exc:
        p2.param("consent_share_min", at=date(2025, 1, 1))
    assert exc.value.key == "policy_param_inactive"


def test_with_values_rejects_bad_values(pack):
    with pytest.raises(PolicyError):
        pack.with_values(unit_area_max="three hundred")
    with pytest.raises(PolicyError):
        pack.with_values(consent_share_min=80)
    with pytest.raises(PolicyError):
        pack.with_values(nonexistent=1)


def test_ensure_valid_at_boundaries(pack):
    pack.ensure_valid_at(date(2023, 1, 10))
    pack.ensure_valid_at(date(2028, 1, 9))
    with pytest.raises(PolicyError) as exc:
        pack.ensure_valid_at(date(2023, 1, 9))
    assert exc.value.key == "policy_not_yet_effective"
    with pytest.raises(PolicyError) as exc:
        pack.ensure_valid_at(date(2028, 1, 10))
    assert exc.value.key == "policy_expired"
    assert "2028-01-09" in exc.value.message


def test_add_period():
    assert add_period(date(2024, 2, 29), 1, "year") == date(2025, 2, 28)
    assert add_period(date(2023, 1, 31), 1, "month") == date(2023, 2, 28)
    assert add_period(date(2024, 11, 30), 3, "month") == date(2025, 2, 28)
    assert add_period(date(2025, 6, 30), -1, "year") == date(2024, 6, 30)
    assert add_period(date(2025, 1, 1), 90, "day") == date(2025, 4, 1)
    with pytest.raises(PolicyError):
        add_period(date(2025, 1, 1), 1, "km2")


# --------------------------------------------------------------------------- validation problems


def test_missing_parameter_needed_by_rule(raw):
    del raw["parameters"]["consent_share_min"]
    problems = validate_mapping(raw)
    assert "policy_param_missing" in _keys(problems)
    assert any(
        "consent_share_min" in p.message and "renewal.consent" in p.message for p in problems
    )
    with pytest.raises(PolicyError) as exc:
        pack_from_mapping(raw)
    assert exc.value.key == "policy_invalid"
    assert exc.value.data["problems"]


def test_wrong_unit(raw):
    raw["parameters"]["acquisition_deadline"]["unit"] = "month"
    problems = validate_mapping(raw)
    assert "policy_param_unit" in _keys(problems)
    assert any(p.where == "parameters.acquisition_deadline.unit" for p in problems)


def test_percent_written_as_ratio(raw):
    raw["parameters"]["consent_share_min"]["value"] = 80
    problems = validate_mapping(raw)
    assert "policy_param_value" in _keys(problems)
    assert any("0.8" in p.message for p in problems)


def test_null_value_needs_required_from_user(raw):
    raw["parameters"]["linkage_share_min"]["value"] = None
    problems = validate_mapping(raw)
    assert any(p.key == "policy_schema" and "required_from_user" in p.message for p in problems)


def test_missing_clause_needs_local_choice(raw):
    del raw["parameters"]["linkage_share_min"]["clause"]
    problems = validate_mapping(raw)
    assert any(p.key == "policy_schema" and "clause" in p.message for p in problems)
    raw["parameters"]["linkage_share_min"]["local_choice"] = True
    assert not _keys(validate_mapping(raw))


def test_bad_clause_format_and_dates(raw):
    raw["parameters"]["linkage_share_min"]["clause"] = "第十四条"
    raw["expires"] = "2022-01-01"
    problems = validate_mapping(raw)
    assert any(p.where.startswith("parameters.linkage_share_min") for p in problems)
    raw["parameters"]["linkage_share_min"]["clause"] = "004 (十四)"
    problems = validate_mapping(raw)
    assert "policy_dates" in _keys(problems)


def test_unknown_rule_and_missing_message(raw):
    raw["rules"]["renewal.no_such_rule"] = copy.deepcopy(raw["rules"]["renewal.consent"])
    del raw["rules"]["renewal.consent"]["messages"]["missing"]
    keys = _keys(validate_mapping(raw))
    assert {"policy_rule_unknown", "policy_message_missing"} <= keys


def test_disabled_rule_does_not_need_params(raw):
    raw["rules"]["renewal.parking"]["enabled"] = False
    del raw["parameters"]["parking_rate"]
    assert not _keys(validate_mapping(raw))


def test_unknown_module_is_a_warning(raw):
    raw["module"] = "nomodule"
    problems = validate_mapping(raw)
    assert not _keys(problems)
    assert any(p.key == "policy_module" for p in problems)


def test_fictitious_pack_validates():
    assert validate_pack(FICT) == []
    fp = load_pack(FICT)
    assert fp.synthetic and fp.param("consent_share_min") == pytest.approx(2 / 3)
    assert fp.hash != load_pack("dongguan-2023").hash


# --------------------------------------------------------------------------- rule registry


def test_registry_messages_and_bad_placeholder(raw):
    reg = RuleRegistry("testonly")

    @reg.rule(
        "renewal.consent", scope="unit", params={"consent_share_min": "ratio"}, outcomes=("pass",)
    )
    def _r(ctx, subject):
        return ctx.finding("pass", unit_id=subject, min_share=ctx.param("consent_share_min"))

    raw["module"] = "testonly"
    raw["rules"] = {
        "renewal.consent": {
            "clause": "004 (十)",
            "messages": {"pass": {"severity": "info", "text": "单元{unit_id}门槛{min_share:.0%}"}},
        }
    }
    good = pack_from_mapping(raw)
    (f,) = reg.evaluate(good, "unit", "U1", date(2024, 1, 1))
    assert isinstance(f, Finding)
    assert f.message == "单元U1门槛80%"
    assert f.clause == "004 (十)"
    assert f.facts["params"] == {"consent_share_min": 0.8}
    json.dumps(f.to_dict(), ensure_ascii=False)
    raw["rules"]["renewal.consent"]["messages"]["pass"]["text"] = "单元{nonexistent}"
    bad = pack_from_mapping(raw)
    with pytest.raises(PolicyError) as exc:
        reg.evaluate(bad, "unit", "U1", date(2024, 1, 1))
    assert exc.value.key == "policy_message_field"


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_list_and_show():
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    assert any(p["id"] == "dongguan-2023" for p in json.loads(res.output))
    res = runner.invoke(app, ["show", "dongguan-2023", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["consent_share_min"]["clause"] == "004 (十)"
    assert params["unit_area_max"]["required_from_user"] is True
    assert data["required_from_user"] == ["unit_area_max"]
    res = runner.invoke(app, ["show", "dongguan-2023"], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "须由用户设定" in res.output


def test_cli_validate(tmp_path, raw):
    res = runner.invoke(app, ["validate", str(DG_FILE), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["valid"] is True
    raw["parameters"]["consent_share_min"]["unit"] = "percent"
    bad = _write(tmp_path, raw)
    res = runner.invoke(app, ["validate", str(bad), "--json"])
    assert res.exit_code == PolicyError.exit_code
    out = json.loads(res.output)
    assert out["valid"] is False
    assert any(p["key"] == "policy_param_unit" for p in out["problems"])
    res = runner.invoke(app, ["validate", str(DG_FILE), "--at", "2029-01-01", "--json"])
    assert res.exit_code == PolicyError.exit_code
    assert any(p["key"] == "policy_expired" for p in json.loads(res.output)["problems"])
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == PolicyError.exit_code and "无效" in res.output
