"""End-to-end import through the CLI, on both backends: real files, real stores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from yizhangtu.geo.area import ellipsoidal_area, geodesic_area
from yizhangtu.store import open_store

YZ = [sys.executable, "-m", "yizhangtu.cli.main"]


def run(ws: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"YIZHANGTU_WORKSPACE": ws, "YIZHANGTU_ACTOR": "tester"}
    p = subprocess.run([*YZ, *args], capture_output=True, text=True, env=env, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def run_json(ws: str, *args: str) -> dict:
    return json.loads(run(ws, *args, "--json").stdout)


@pytest.fixture
def gbk_shapefile(tmp_path: Path, chaoyang_path: Path) -> Path:
    """The 43 streets as a 三调-style delivery: GBK DBF, CGCS2000 3° GK zone 39, no .cpg."""
    g = gpd.read_file(chaoyang_path).to_crs(4527)
    g = g[["code", "name", "geometry"]].rename(columns={"code": "XZQDM", "name": "XZQMC"})
    out = tmp_path / "gbk" / "streets_gk.shp"
    out.parent.mkdir()
    pyogrio.write_dataframe(g, out, encoding="GBK")
    out.with_suffix(".cpg").unlink(missing_ok=True)
    return out


def test_import_geojson_43_streets(workspace_uri: str, chaoyang_path: Path):
    res = run_json(
        workspace_uri,
        "import",
        str(chaoyang_path),
        "--layer",
        "streets",
        "--kind",
        "boundary",
        "--snapshot",
        "2023",
        "--title",
        "朝阳区街乡",
    )
    assert res["snapshot"]["feature_count"] == 43
    assert res["read"]["crs_source"] in ("declared", "inferred")
    with open_store(workspace_uri) as st:
        g = st.read_layer("streets")
    src = gpd.read_file(chaoyang_path)
    assert sorted(g["name"]) == sorted(src["name"])
    np.testing.assert_allclose(
        np.sort(ellipsoidal_area(g.geometry)), np.sort(geodesic_area(src.geometry)), rtol=1e-4
    )


def test_import_gbk_shapefile_without_cpg(
    workspace_uri: str, gbk_shapefile: Path, chaoyang_path: Path
):
    res = run_json(
        workspace_uri,
        "import",
        str(gbk_shapefile),
        "--layer",
        "streets_gk",
        "--kind",
        "boundary",
        "--snapshot",
        "2023",
    )
    assert res["snapshot"]["feature_count"] == 43
    assert res["read"]["encoding_source"] != "utf-8"
    assert res["read"]["crs"] == "EPSG:4527"
    with open_store(workspace_uri) as st:
        g = st.read_layer("streets_gk")
    src = gpd.read_file(chaoyang_path)
    assert sorted(g["XZQMC"]) == sorted(src["name"])
    by_code = dict(zip(src["code"], geodesic_area(src.geometry), strict=True))
    ours = dict(zip(g["XZQDM"], ellipsoidal_area(g.geometry), strict=True))
    for code, ref in by_code.items():
        assert abs(ours[code] / ref - 1) < 1e-4, code


def test_layers_json_info_export_diff(workspace_uri: str, chaoyang_path: Path, tmp_path: Path):
    run(
        workspace_uri,
        "import",
        str(chaoyang_path),
        "--layer",
        "streets",
        "--kind",
        "boundary",
        "--snapshot",
        "2020",
    )
    g = gpd.read_file(chaoyang_path)
    g2 = g.drop(index=[0, 1]).copy()
    g2.loc[2, "name"] = "改名街道"
    p2 = tmp_path / "v2.geojson"
    g2.to_file(p2)
    run(
        workspace_uri,
        "import",
        str(p2),
        "--layer",
        "streets",
        "--kind",
        "boundary",
        "--snapshot",
        "2021",
        "--id-field",
        "code",
    )
    lay = run_json(workspace_uri, "layers")
    (entry,) = [x for x in lay["layers"] if x["name"] == "streets"]
    assert (
        entry["kind"] == "boundary" and entry["crs"] == "EPSG:4490" and entry["feature_count"] == 41
    )
    assert [s["label"] for s in entry["snapshots"]] == ["2020", "2021"]
    d = run_json(workspace_uri, "diff", "streets", "2020", "2021", "--unit", "km2")
    assert (
        d["counts"]["removed"] == 2 and d["counts"]["attributes"] == 1 and d["counts"]["added"] == 0
    )
    removed_km2 = ellipsoidal_area(g.geometry.iloc[[0, 1]]).sum() / 1e6
    assert d["areas"]["removed"] == pytest.approx(removed_km2, rel=1e-9)
    out = tmp_path / "old.shp"
    ex = run_json(
        workspace_uri, "export", "streets", "--format", "shp", "--as-of", "2020", "-o", str(out)
    )
    assert ex["features"] == 43
    assert out.with_suffix(".cpg").read_text() == "GBK"
    assert ex["renamed_fields"]["name_nbs2023"] == "name_nbs20"
    back = pyogrio.read_dataframe(out, encoding="GBK")
    assert "朝外街道" in set(back["name"])
    assert "name_nbs20" in back.columns
    for fmt in ("gpkg", "geojson", "parquet", "csv"):
        o = tmp_path / f"x.{fmt}"
        assert (
            run_json(workspace_uri, "export", "streets", "--format", fmt, "-o", str(o))["features"]
            == 41
        )
        assert o.stat().st_size > 0
    info = run_json(workspace_uri, "info", "streets")
    assert info["snapshots"][0]["source_file"] == "chaoyang_streets.geojson"
    assert run_json(workspace_uri, "audit", "verify")["ok"] is True


def test_qc_failure_refuses_import_and_leaves_nothing(workspace_uri: str, tmp_path: Path):
    # a ring with a zero-width spike: invalid, and make_valid leaves one polygon
    bow = shapely.Polygon(
        [
            (116.40, 39.90),
            (116.41, 39.90),
            (116.41, 39.91),
            (116.405, 39.91),
            (116.405, 39.92),
            (116.405, 39.91),
            (116.40, 39.91),
        ]
    )
    ok = shapely.box(116.42, 39.90, 116.43, 39.91)
    p = tmp_path / "bad.geojson"
    gpd.GeoDataFrame(
        {"BSM": [1, 2], "DLBM": ["0101", "0702"]}, geometry=[bow, ok], crs=4326
    ).to_file(p)
    r = run(
        workspace_uri, "import", str(p), "--layer", "plots", "--kind", "plot", "--json", check=False
    )
    assert r.returncode == 2
    err = json.loads(r.stdout)
    assert err["error"] == "qc_failed" and err["file"].endswith("bad.geojson")
    assert run_json(workspace_uri, "layers")["layers"] == []
    fixed = run_json(
        workspace_uri, "import", str(p), "--layer", "plots", "--kind", "plot", "--repair"
    )
    assert fixed["snapshot"]["feature_count"] == 2 and fixed["repairs"]


def test_check_command_reports_findings(tmp_path: Path):
    a = shapely.box(116.40, 39.90, 116.41, 39.91)
    b = shapely.box(116.405, 39.90, 116.415, 39.91)
    p = tmp_path / "overlap.geojson"
    gpd.GeoDataFrame({"BSM": [1, 1], "DLBM": ["0101", "9999"]}, geometry=[a, b], crs=4326).to_file(
        p
    )
    r = run(
        str(tmp_path / "ws.gpkg"),
        "check",
        str(p),
        "--kind",
        "survey",
        "--id-field",
        "BSM",
        "--code-field",
        "DLBM",
        "--code-system",
        "sandiao",
        "--json",
        "--qc-out",
        str(tmp_path / "qc.gpkg"),
        check=False,
    )
    assert r.returncode == 2
    rep = json.loads(r.stdout)["qc"]
    assert (
        rep["counts"]["duplicate_id"] >= 1
        and rep["counts"]["overlap"] >= 1
        and rep["counts"]["unknown_code"] >= 1
    )
    assert len(pyogrio.read_dataframe(tmp_path / "qc.gpkg")) >= 3
    assert not (tmp_path / "ws.gpkg").exists()


def test_ogrinfo_reads_workspace(tmp_path: Path, chaoyang_path: Path, gbk_shapefile: Path):
    if shutil.which("ogrinfo") is None:
        pytest.fail("ogrinfo (gdal-bin) is required: scripts/setup-system.sh installs it")
    ws = str(tmp_path / "ws.gpkg")
    run(
        ws,
        "import",
        str(chaoyang_path),
        "--layer",
        "streets",
        "--kind",
        "boundary",
        "--snapshot",
        "2023",
    )
    run(
        ws,
        "import",
        str(gbk_shapefile),
        "--layer",
        "streets_gk",
        "--kind",
        "boundary",
        "--snapshot",
        "2023",
    )
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", ws], capture_output=True, text=True, check=True
    ).stdout
    blocks = {b.split("\n", 1)[0].strip(): b for b in out.split("Layer name: ")[1:]}
    for name in ("streets", "streets_gk"):
        assert "Feature Count: 43" in blocks[name]
        assert "China Geodetic Coordinate System 2000" in blocks[name] or "CGCS2000" in blocks[name]


def _big_file(tmp_path: Path, n: int) -> Path:
    rng = np.random.default_rng(7)
    x = 116.2 + rng.random(n) * 0.5
    y = 39.8 + rng.random(n) * 0.3
    geoms = shapely.box(x, y, x + 0.0005, y + 0.0005)
    gdf = gpd.GeoDataFrame(
        {"BSM": np.arange(n), "DLBM": np.where(rng.random(n) < 0.5, "0101", "0702")},
        geometry=geoms,
        crs=4490,
    )
    p = tmp_path / "big.gpkg"
    pyogrio.write_dataframe(gdf, p, layer="big")
    return p


def _snapshot_table_exists(ws: str, table: str) -> bool:
    if ws.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(ws) as c:
            active = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE %s", ("COPY%big__s%",)
            ).fetchone()[0]
            return bool(active)
    # GeoPackage: GDAL writes into a staging file beside the workspace, copied in at the end
    p = Path(ws)
    return any(
        f.stat().st_size > 1_000_000 for f in p.parent.glob(f".{p.name}.{table}.*.staging.gpkg")
    )


@pytest.mark.slow
def test_sigkill_during_large_import_leaves_workspace_intact(
    workspace_uri: str, tmp_path: Path, chaoyang_path: Path
):
    run(
        workspace_uri,
        "import",
        str(chaoyang_path),
        "--layer",
        "streets",
        "--kind",
        "boundary",
        "--snapshot",
        "2023",
    )
    src = _big_file(tmp_path, 400_000)
    run(
        workspace_uri,
        "import",
        str(chaoyang_path),
        "--layer",
        "big",
        "--kind",
        "other",
        "--snapshot",
        "v1",
        "--no-offset-check",
    )
    env = os.environ | {
        "YIZHANGTU_WORKSPACE": workspace_uri,
        "YIZHANGTU_IMPORT_CHUNK_SIZE": "20000",
    }
    proc = subprocess.Popen(
        [
            *YZ,
            "import",
            str(src),
            "--layer",
            "big",
            "--snapshot",
            "v2",
            "--no-offset-check",
            "--json",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if _snapshot_table_exists(workspace_uri, "big__s3"):
                break
            time.sleep(0.05)
        assert proc.poll() is None, (
            "import finished before it could be killed; make the file larger"
        )
        time.sleep(0.5)  # let it write a few chunks
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open_store(workspace_uri) as st:
        assert [s.label for s in st.snapshots("big")] == ["v1"]
        assert len(st.read_layer("big")) == 43
        assert len(st.read_layer("streets")) == 43
        assert st.verify_snapshot("streets")
        assert st.audit_verify().ok
        names = {li.name for li in st.layers()}
        assert names == {"streets", "big"}
    if not workspace_uri.startswith("postgresql://"):
        with sqlite3.connect(workspace_uri) as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert "big__s3" not in tables and not any(
                t.startswith("rtree_big__s3") for t in tables
            )
        # the next open removed the dead writer's staging file
        assert not list(Path(workspace_uri).parent.glob("*.staging.gpkg*"))
    # and the next import goes through
    r = run_json(
        workspace_uri, "import", str(src), "--layer", "big", "--snapshot", "v2", "--no-offset-check"
    )
    assert r["snapshot"]["feature_count"] == 400_000
