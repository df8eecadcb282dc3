"""The demo workspace, built once from the real shared data.

It is what the README's main command makes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yizhangtu.settings import get_settings
from yizhangtu.store import open_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path):
    from yizhangtu.services.demo import build_demo

    out = tmp_path_factory.mktemp("demo")
    ctx = build_demo(
        out, shared=shared_dir, settings=get_settings(actor="demo-test"), log=lambda m: None
    )
    return ctx


def test_demo_builds_real_boundaries_and_labelled_synthetic_survey(demo):
    with open_store(demo.extras["workspace"], create=False) as st:
        layers = {li.name: li for li in st.layers()}
        assert len(st.read_layer("chaoyang_streets")) == 43
        assert len(st.read_layer("fangshan_streets")) == 28
        assert len(st.read_layer("bj_streets")) == 343
        assert len(st.read_layer("bj_districts")) == 16
        assert len(st.read_layer("dongguan_towns")) == 33
        survey = layers["survey"]
        assert survey.synthetic and "合成" in (survey.title or "")
        assert [s.label for s in st.snapshots("survey")] == [
            "2017",
            "2018",
            "2019",
            "2020",
            "2021",
            "2022",
        ]
        assert not layers["chaoyang_streets"].synthetic
        assert set(st.table_names()) >= {"census2020", "census2010", "census_city"}
        assert st.audit_verify().ok
        names = set(st.read_layer("chaoyang_streets")["name"])
        assert {"朝外街道", "首都机场街道", "孙河乡"} <= names


def test_ogrinfo_lists_every_demo_layer_with_crs_and_count(demo):
    if shutil.which("ogrinfo") is None:
        pytest.fail("ogrinfo (gdal-bin) is required: scripts/setup-system.sh installs it")
    ws = demo.extras["workspace"]
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", ws], capture_output=True, text=True, check=True
    ).stdout
    blocks = {b.split("\n", 1)[0].strip(): b for b in out.split("Layer name: ")[1:]}
    with open_store(ws, create=False) as st:
        for li in st.layers():
            snap = st.resolve_snapshot(li.name)
            assert li.name in blocks, f"ogrinfo does not list {li.name}"
            assert f"Feature Count: {snap.feature_count}" in blocks[li.name], li.name
            assert "China Geodetic Coordinate System 2000" in blocks[li.name], li.name


def test_demo_cli_layers_json(demo):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "yizhangtu.cli.main",
            "--workspace",
            demo.extras["workspace"],
            "layers",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(p.stdout)
    by = {x["name"]: x for x in data["layers"]}
    assert by["survey"]["feature_count"] > 10_000 and by["survey"]["synthetic"] is True
    assert by["chaoyang_streets"]["crs"] == "EPSG:4490"


def test_demo_survey_reconciles_to_street_areas(demo):
    from yizhangtu.services.accounting import area_table

    with open_store(demo.extras["workspace"], create=False) as st:
        for label in ("2020", "2021"):
            res = area_table(
                st,
                "survey",
                by="chaoyang_streets",
                snapshot=label,
                group="level1",
                unit="m2",
                settings=get_settings(actor="t"),
            )
            units = res["totals"]["units"]
            assert len(units) == 43
            for u in units:
                assert abs(u["residual"]) / u["unit_area"] < 1e-4, u


def test_demo_reduction_ledger_matches_the_reported_order_of_magnitude(demo):
    import openpyxl

    fig = demo.extras["reduction"]
    reported = fig["reported_seed_002"]["net_km2"]
    assert reported == 35.5 and fig["target_km2"] == 71
    # computed from the synthetic surveys 2017–2021 and the accepted plots, not copied
    net = fig["computed"]["net_km2"]
    assert 0.6 * reported <= net <= 1.4 * reported, fig
    assert set(fig["net_by_year_km2"]) == {2018, 2019, 2020, 2021}
    assert abs(sum(fig["net_by_year_km2"].values()) - net) < 1e-6
    assert fig["rebuild_alerts"] >= 1
    ws = demo.extras["workspace"]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "yizhangtu.cli.main",
            "--workspace",
            ws,
            "reduction",
            "progress",
            "--by",
            "township",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(p.stdout)
    rows = data["rows"]
    assert len(rows) == 19 and data["year"] == 2021
    for r in rows:
        assert {"target_m2", "accepted_m2", "net_m2", "percent_complete", "status"} <= set(r)
        assert r["target_m2"] > 0 and r["net_m2"] is not None
    behind = [r for r in rows if r["status"] == "behind"]
    assert 1 <= len(behind) < len(rows)
    assert all("滞后" in r["message"] for r in behind)
    wb = openpyxl.load_workbook(fig["xlsx"], read_only=True)
    assert {"进度", "乡镇台账", "地块验收", "复建预警"} <= set(wb.sheetnames)
    header = [c.value for c in next(wb["地块验收"].iter_rows(max_row=1))]
    assert "地块编号" in header


def test_demo_creates_one_user_per_role_who_can_log_in(demo):
    from yizhangtu.services.auth import ROLES
    from yizhangtu.services.users import authenticate, list_users

    lines = [
        line.split()
        for line in Path(demo.extras["users_file"]).read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert Path(demo.extras["users_file"]).stat().st_mode & 0o077 == 0
    with open_store(demo.extras["workspace"], create=False) as st:
        users = {u.username: u for u in list_users(st)}
        assert {u.role for u in users.values()} == set(ROLES)
        for name, password, role, jurisdiction, *_ in lines:
            u = authenticate(st, name, password)
            assert (u.role, u.jurisdiction) == (role, jurisdiction)
