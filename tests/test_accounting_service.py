"""Area tables over the store: engines agree, totals reconcile, provenance explains them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest

from yizhangtu.demo.synthetic import generate_survey
from yizhangtu.geo.area import geodesic_area
from yizhangtu.geo.coverage import clean_coverage, edge_match
from yizhangtu.services.accounting import area_table
from yizhangtu.services.provenance import explain_chain
from yizhangtu.settings import get_settings
from yizhangtu.store import LayerSpec, Store

STREETS = ("建外街道", "朝外街道", "呼家楼街道", "东坝乡")


@pytest.fixture
def workspace(store: Store, chaoyang_path: Path) -> Store:
    """Four real streets and a SYNTHETIC survey tiling them."""
    streets = gpd.read_file(chaoyang_path).set_crs(4490, allow_override=True)
    streets = streets[streets["name"].isin(STREETS)].reset_index(drop=True)
    store.write_snapshot(
        LayerSpec("streets", kind="boundary", title="街乡"), [streets], label="2023", actor="t"
    )
    units, _ = clean_coverage(streets)
    survey = edge_match(generate_survey(units, unit_field="code", seed=7))
    store.write_snapshot(
        LayerSpec(
            "survey",
            kind="survey",
            title="合成三调",
            code_system="sandiao",
            code_field="DLBM",
            id_field="BSM",
            synthetic=True,
        ),
        [survey],
        label="2020",
        actor="t",
    )
    return store


def _by_key(res: dict) -> dict[tuple[str, str], float]:
    return {(r["unit"], r["class"]): r["area"] for r in res["rows"]}


def test_area_table_reconciles_and_engines_agree(workspace: Store, chaoyang_path: Path):
    s = get_settings(actor="t")
    local = area_table(
        workspace, "survey", by="streets", group="urban_rural_construction", unit="m2", settings=s
    )
    src = gpd.read_file(chaoyang_path)
    geod = dict(zip(src["name"], geodesic_area(src.geometry), strict=True))
    for u in local["totals"]["units"]:
        assert abs(u["pieces_total"] / geod[u["unit"]] - 1) < 1e-4, u
        assert abs(u["residual"]) / u["unit_area"] < 1e-4
    assert {r["class"] for r in local["rows"]} == {"城乡建设用地", "非城乡建设用地"}
    dask = area_table(
        workspace,
        "survey",
        by="streets",
        group="urban_rural_construction",
        unit="m2",
        engine="dask",
        settings=s,
    )
    a, b = _by_key(local), _by_key(dask)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-3)
    if workspace.backend == "postgis":
        pg = area_table(
            workspace,
            "survey",
            by="streets",
            group="urban_rural_construction",
            unit="m2",
            engine="postgis",
            settings=s,
        )
        c = _by_key(pg)
        big = {k for k, v in a.items() if v > 1.0}
        assert big <= c.keys()
        for k in big:
            assert c[k] == pytest.approx(a[k], rel=1e-6), k


def test_area_table_provenance_explains_inputs(workspace: Store):
    res = area_table(
        workspace,
        "survey",
        by="streets",
        group="level1",
        unit="ha",
        settings=get_settings(actor="t"),
    )
    chain = explain_chain(workspace, res["provenance_id"])
    names = {i["name"] for i in chain["inputs"]}
    assert names == {"survey", "streets"}
    assert all(i["present"] for i in chain["inputs"])
    assert chain["record"]["params"]["group"] == "level1"


def test_postgis_engine_needs_postgis(workspace: Store):
    from yizhangtu.errors import InputError

    if workspace.backend == "postgis":
        res = area_table(
            workspace, "survey", by="streets", engine="postgis", settings=get_settings()
        )
        assert res["rows"]
        return
    with pytest.raises(InputError) as e:
        area_table(workspace, "survey", by="streets", engine="postgis", settings=get_settings())
    assert e.value.key == "engine_needs_postgis"


def test_area_cli_json_and_xlsx(tmp_path: Path, chaoyang_path: Path):
    ws = str(tmp_path / "ws.gpkg")
    streets = gpd.read_file(chaoyang_path)
    streets = streets[streets["name"].isin(STREETS)]
    units, _ = clean_coverage(streets.set_crs(4490, allow_override=True))
    survey = edge_match(generate_survey(units, unit_field="code", seed=3))
    sp = tmp_path / "dltb.shp"
    pyogrio.write_dataframe(survey.to_crs(4527), sp, encoding="GBK")
    stp = tmp_path / "streets.geojson"
    streets.to_file(stp)
    env = os.environ | {"YIZHANGTU_WORKSPACE": ws}
    yz = [sys.executable, "-m", "yizhangtu.cli.main"]
    subprocess.run(
        [*yz, "import", str(stp), "--layer", "streets", "--kind", "boundary", "--snapshot", "2023"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *yz,
            "import",
            str(sp),
            "--layer",
            "survey",
            "--kind",
            "survey",
            "--snapshot",
            "2020",
            "--code-field",
            "DLBM",
            "--code-system",
            "sandiao",
            "--id-field",
            "BSM",
            "--synthetic",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            *yz,
            "area",
            "survey",
            "--by",
            "streets",
            "--group",
            "construction",
            "--unit",
            "mu",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    assert data["rows"] and all(
        set(r) == {"unit", "class", "area", "area_unit"} for r in data["rows"]
    )
    assert {r["area_unit"] for r in data["rows"]} == {"mu"}
    assert data["provenance_id"] and data["totals"]["area_unit"] == "mu"
    total_mu = sum(r["area"] for r in data["rows"])
    assert total_mu == pytest.approx(geodesic_area(streets.geometry).sum() / (10000 / 15), rel=1e-4)
    xl = tmp_path / "a.xlsx"
    subprocess.run(
        [*yz, "area", "survey", "--by", "streets", "--format", "xlsx", "-o", str(xl)],
        env=env,
        check=True,
        capture_output=True,
    )
    import openpyxl

    wb = openpyxl.load_workbook(xl)
    assert wb.sheetnames == ["面积统计", "平衡校核", "溯源"]
    ex = subprocess.run(
        [*yz, "explain", data["provenance_id"], "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert {i["source_file"] for i in json.loads(ex.stdout)["inputs"]} == {
        "dltb.shp",
        "streets.geojson",
    }
    assert np.isfinite(total_mu)
