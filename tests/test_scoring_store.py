"""Site scoring against the workspace, on both backends.

Sites, stops and the facility-gap table are the SYNTHETIC Chaoyang micro-centre demo (values
made up, flagged synthetic) placed in the real street boundaries of tests/data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import yaml
from typer.testing import CliRunner

from yizhangtu.errors import ConflictError
from yizhangtu.scoring import build_demo_sites, score_sites
from yizhangtu.services.provenance import explain_chain
from yizhangtu.services.scoring import (
    CONFIGS,
    RESULTS,
    get_config,
    load_results,
    rerun,
    save_config,
    score_workspace,
    write_dossiers,
)
from yizhangtu.store import LayerSpec, Store, open_store

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def demo():
    streets = gpd.read_file(DATA / "chaoyang_streets.geojson").to_crs(4490)
    return streets, build_demo_sites(streets)


def _config(d) -> dict:
    m = {
        k: v
        for k, v in d.mapping.items()
        if k
        in ("id", "title", "synthetic", "source", "criteria", "weights", "method", "normalisation")
    }
    m["sites"] = {"layer": "micro_centres", "id_field": "site_id", "name_field": "name"}
    m["layers"] = {"transit_stops": {"layer": "stops_ws"}}
    m["tables"] = {"facility_gap": {"table": "facility_gap"}}
    m["boundaries"] = {"layer": "chaoyang_streets"}
    return m


def build_workspace(store: Store, demo) -> None:
    streets, d = demo
    store.write_snapshot(
        LayerSpec(name="chaoyang_streets", kind="boundary", id_field="code"),
        [streets],
        label="2023",
        actor="t",
    )
    store.write_snapshot(
        LayerSpec(name="micro_centres", kind="project", title="微中心(合成)", synthetic=True),
        [d.sites],
        label="2022",
        actor="t",
    )
    store.write_snapshot(
        LayerSpec(name="stops_ws", kind="other", title="站点(合成)", synthetic=True),
        [d.layers["transit_stops"]],
        label="2022",
        actor="t",
    )
    store.write_table("facility_gap", d.tables["facility_gap"], actor="t")


def test_score_from_workspace_matches_core_and_reruns(store, demo, tmp_path):
    build_workspace(store, demo)
    _streets, d = demo
    rec = save_config(store, "mc", _config(d), actor="planner", jurisdiction="110105")
    assert rec.version == 1 and get_config(store, "mc")[1].jurisdiction == "110105"
    run = score_workspace(store, "mc", actor="planner")
    # same result as the pure core on the in-memory inputs
    direct = score_sites(d.sites, d.config, layers=d.layers, tables=d.tables)
    assert list(run.result.table.index) == list(direct.table.index)
    assert np.allclose(run.result.table["score"], direct.table["score"])
    assert run.synthetic and run.record is not None and run.record.jurisdiction == "110105"
    # persisted: record + ledger rows with the provenance id; the chain resolves
    stored = store.get_record(RESULTS, run.run_id)
    assert [s["site_id"] for s in stored.data["sites"]] == list(direct.table.index)
    rows = load_results(store, run.run_id)
    assert len(rows) == 10 and set(rows["provenance_id"]) == {run.provenance_id}
    crit = json.loads(rows.iloc[0]["criteria"])
    assert set(crit) == {"transport", "facility_need", "feasibility"}
    chain = explain_chain(store, run.provenance_id)
    assert {i["name"] for i in chain["inputs"]} == {
        "micro_centres",
        "stops_ws",
        "facility_gap",
        "chaoyang_streets",
    }
    assert all(i["present"] for i in chain["inputs"])
    # a new stops snapshot does not change a rerun of the stored run (pinned snapshot)
    stops = d.layers["transit_stops"].iloc[:5]
    store.write_snapshot(
        LayerSpec(name="stops_ws", kind="other", synthetic=True), [stops], label="2023", actor="t"
    )
    again = rerun(store, run.run_id, actor="auditor")
    assert again.provenance_id == run.provenance_id
    assert np.allclose(again.result.table["score"], run.result.table["score"])
    fresh = score_workspace(store, "mc", actor="planner", persist=False)
    assert fresh.provenance_id != run.provenance_id
    # a changed table refuses the rerun
    store.write_table("facility_gap", d.tables["facility_gap"].assign(gap_index=1), actor="t")
    with pytest.raises(ConflictError) as e:
        rerun(store, run.run_id, actor="auditor")
    assert e.value.key == "table_changed"
    # config updates use optimistic locking
    save_config(store, "mc", _config(d) | {"title": "改"}, actor="a", expected_version=1)
    with pytest.raises(ConflictError):
        save_config(store, "mc", _config(d), actor="b", expected_version=1)
    # dossiers
    ids = [str(x) for x in run.result.table.index[:2]]
    html = write_dossiers(run, tmp_path / "dossiers", site_ids=ids)
    assert len(html) == 2 and html[0].name.startswith("01_")
    assert "data:image/png;base64" in html[0].read_text("utf-8")  # the site map
    top = run.result.table.iloc[0]
    text = html[0].read_text("utf-8")
    assert str(top["name"]) in text and "合成数据" in text
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    (pdf,) = write_dossiers(
        run,
        tmp_path / "pdf",
        format="pdf",
        site_ids=[str(run.result.table.index[0])],
        with_map=False,
    )
    out = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert str(top["name"]) in out.replace("\n", "")


def test_layer_field_and_distance_criteria(store, demo):
    streets, d = demo
    build_workspace(store, demo)
    rng = np.random.default_rng(3)
    need = streets[["code", "geometry"]].assign(
        need=rng.integers(1, 100, len(streets)).astype(float)
    )
    store.write_snapshot(
        LayerSpec(name="street_need", kind="other", title="街道需求(合成)", synthetic=True),
        [need],
        label="2022",
        actor="t",
    )
    cfg = {
        "title": "图层字段与距离(合成)",
        "synthetic": True,
        "sites": {"layer": "micro_centres", "id_field": "site_id", "name_field": "name"},
        "criteria": [
            {
                "name": "need",
                "label": "街道需求",
                "direction": "benefit",
                "source": {"kind": "layer_field", "layer": "street_need", "field": "need"},
            },
            {
                "name": "near",
                "label": "最近站点距离",
                "direction": "cost",
                "source": {"kind": "distance_to_nearest", "layer": "transit_stops"},
            },
        ],
        "layers": {"transit_stops": {"layer": "stops_ws"}},
        "weights": {"direct": {"need": 0.5, "near": 0.5}},
    }
    run = score_workspace(store, cfg, actor="t", persist=False)
    raw = run.result.raw
    # layer field: the value of the street polygon containing each site
    j = gpd.sjoin(d.sites, need, predicate="within").set_index("site_id")["need"]
    assert np.allclose(raw["need"].reindex(j.index), j)
    # distance: metres in the sites' Gauss-Kruger zone, checked against shapely in that zone
    epsg = run.result.metric_epsg
    s = d.sites.to_crs(epsg)
    st = shapely.union_all(
        np.asarray(d.layers["transit_stops"].to_crs(epsg).geometry.values, dtype=object)
    )
    expect = np.array([g.distance(st) for g in s.geometry])
    assert np.allclose(raw["near"].to_numpy(), expect, rtol=1e-6)
    assert (
        run.record is None
        and store.list_records(RESULTS) == []
        and store.list_records(CONFIGS) == []
    )


def test_cli_workspace_scoring(workspace_uri, demo, tmp_path):
    from yizhangtu.cli.main import app

    _streets, d = demo
    with open_store(workspace_uri) as st:
        build_workspace(st, demo)
    cfg = tmp_path / "mc.yaml"
    cfg.write_text(yaml.safe_dump(_config(d), allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    base = ["-w", workspace_uri, "score"]
    r = runner.invoke(
        app, [*base, "save-config", "mc", str(cfg), "--jurisdiction", "110105", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version"] == 1
    r = runner.invoke(app, [*base, "save-config", "mc", str(cfg), "--expected-version", "7"])
    assert isinstance(r.exception, ConflictError)
    r = runner.invoke(
        app, [*base, "run-ws", "mc", "--dossier", str(tmp_path / "ds"), "--no-map", "--json"]
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["synthetic"] and len(res["sites"]) == 10 and len(res["dossiers"]) == 10
    r = runner.invoke(app, [*base, "results", "--json"])
    assert r.exit_code == 0, r.output
    assert [x["run_id"] for x in json.loads(r.output)["runs"]] == [res["run_id"]]
    r = runner.invoke(
        app,
        [
            *base,
            "dossier",
            res["run_id"],
            "--out",
            str(tmp_path / "again"),
            "--site",
            "S01",
            "--no-map",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)
    assert again["provenance_id"] == res["provenance_id"] and len(again["dossiers"]) == 1
