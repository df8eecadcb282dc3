"""Conformance services and CLI over the store, on GeoPackage and PostGIS.

The layers sit where the 界址点 test file (tests/data/conformance/redline_good.txt) is: CGCS2000
3-degree zone 39, easting 426 600 m, northing 4 399 000 m (Fangshan). Parcel HX-01 is 120 × 100 m
at the origin; HX-02 is 100 × 100 m at (0, 200) with a 20 × 20 m hole.
"""

from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from yizhangtu.cli.main import main
from yizhangtu.errors import CRSError
from yizhangtu.services.conformance import (
    check_redline_file,
    conflicts_report,
    lines_report,
    load_packs,
    read_redline_file,
    transmission_report,
    write_gpkg,
)
from yizhangtu.store import LayerSpec, Store, open_store

DATA = Path(__file__).resolve().parent / "data" / "conformance"
GOOD = DATA / "redline_good.txt"
GK = "EPSG:4548"
E0, N0 = 426_600.0, 4_399_000.0
AT = date(2024, 6, 30)


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(E0 + x0, N0 + y0, E0 + x1, N0 + y1)


def frame(geoms, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        cols, geometry=[shapely.MultiPolygon([g]) for g in geoms], crs=GK
    ).to_crs(4490)


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _put(st: Store, name: str, kind: str, gdf: gpd.GeoDataFrame, **kw) -> None:
    st.write_snapshot(
        LayerSpec(name=name, kind=kind, title=kw.pop("title", name), synthetic=True, **kw),
        [gdf],
        label="2024",
        actor="tester",
        geometry_type="MultiPolygon",
    )


def populate(st: Store) -> None:
    """Control lines, zones, a plan, a survey, units and registered red lines (合成数据)."""
    _put(st, "eco_redline", "control_line", frame([box(-100, -100, 60, 150)], name=["红线"]))
    # farmland overlaps the red line by 40 × 50 m (a conflict of the control lines)
    _put(st, "basic_farmland", "control_line", frame([box(20, -300, 400, -50)], name=["农田"]))
    _put(
        st,
        "urban_boundary",
        "control_line",
        frame(
            [box(-50, 150, 600, 600), box(600, 150, 900, 600)],
            zone=["城镇集中建设区", "特别用途区"],
        ),
    )
    _put(
        st,
        "bj_zones",
        "control_line",
        frame(
            [box(-400, -400, 60, 800), box(60, -400, 1000, 800)], zone=["生态控制区", "集中建设区"]
        ),
    )
    _put(
        st,
        "plan_landuse",
        "plan",
        frame([box(-400, -400, 60, 800), box(60, -400, 1000, 800)], YDYHFLDM=["0301", "1001"]),
        code_system="landsea-2023",
        code_field="YDYHFLDM",
    )
    # survey: construction (0601 industry) west of x = 30, farmland (0103) east of it
    _put(
        st,
        "survey",
        "survey",
        frame(
            [box(-400, -400, 30, 800), box(30, -400, 1000, 800)],
            DLBM=["0601", "0103"],
            BSM=["S1", "S2"],
        ),
        code_system="sandiao",
        code_field="DLBM",
        id_field="BSM",
    )
    _put(
        st,
        "units",
        "boundary",
        frame(
            [box(-400, -400, 300, 800), box(300, -400, 1000, 800)],
            code=["u1", "u2"],
            name=["甲街道", "乙镇"],
        ),
    )
    hx02 = shapely.Polygon(
        box(0, 200, 100, 300).exterior.coords, [box(40, 240, 60, 260).exterior.coords]
    )
    reg = frame(
        [box(0, 0, 120, 100), shapely.affinity.translate(hx02, 3.0, 4.0)],
        parcel_id=["HX-01", "HX-02"],
    )
    _put(st, "redlines", "project", reg, id_field="parcel_id")


@pytest.fixture
def ws(store: Store) -> Store:
    populate(store)
    return store


def test_lines_report_records_provenance(ws):
    packs = load_packs()
    res = lines_report(ws, units_layer="units", scope="示例区", packs=packs, at=AT, actor="tester")
    pair = {(p.line_a, p.line_b): p for p in res.overlaps.pairs}
    ef = pair[("eco_redline", "basic_farmland")]
    assert ef.patch_count == 1 and rel(ef.overlap_m2, 40 * 50) < 3e-4
    assert pair[("eco_redline", "urban_boundary")].patch_count == 0
    assert not res.overlaps.ok
    assert set(res.layers) >= {
        "eco_redline",
        "basic_farmland",
        "urban_boundary",
        "zone_eco_control",
    }
    shares = res.zones.rows.set_index(["unit", "zone"])["share"]
    assert shares[("u1", "生态控制区")] == pytest.approx(460 / 700, abs=1e-3)
    rec = ws.get_provenance(res.provenance_id)
    names = {i.name for i in rec.inputs}
    assert {"eco_redline", "basic_farmland", "urban_boundary", "bj_zones", "units"} <= names
    assert all(i.content_hash == ws.resolve_snapshot(i.name).content_hash for i in rec.inputs)
    assert rec.policy.id == "conformance-national"
    d = res.to_dict("ha")
    assert d["overlaps"][0]["area_unit"] == "ha" and json.dumps(d, ensure_ascii=False)


def test_conflicts_report_by_unit_and_geopackage(ws, tmp_path):
    res = conflicts_report(
        ws,
        "survey",
        "plan_landuse",
        matrix="sandiao-vs-landsea",
        units_layer="units",
        actor="tester",
    )
    bt = res.result.by_type.set_index("conflict_type")
    # survey farmland under planned industry (T4) from x = 60 to 1000, under planned forest (T7)
    # from 30 to 60; survey industry under planned forest (T2) from -400 to 30
    assert rel(bt.loc["T4", "area_m2"], 940 * 1200) < 3e-4
    assert rel(bt.loc["T7", "area_m2"], 30 * 1200) < 3e-4
    assert rel(bt.loc["T2", "area_m2"], 430 * 1200) < 3e-4
    assert bt.loc["T5", "patches"] == 0
    by_unit = res.by_unit.set_index(["unit", "conflict_type"])["area_m2"]
    assert (
        rel(by_unit[("u1", "T4")], 240 * 1200) < 3e-4
        and rel(by_unit[("u2", "T4")], 700 * 1200) < 3e-4
    )
    out = write_gpkg(
        tmp_path / "conflicts.gpkg", {"conflicts": res.result.patches, "by_unit": res.by_unit}
    )
    back = pyogrio.read_dataframe(out, layer="conflicts")
    assert (
        set(back["conflict_type"]) == {"T2", "T4", "T7"}
        and "b_YDYHFLDM" in back.columns
        and "a_BSM" in back.columns
    )
    # matrix 2: the survey's construction west of x = -50 lies outside the urban boundary (U1)
    res2 = conflicts_report(ws, "urban_boundary", "survey", matrix="urban-boundary-vs-construction")
    u = res2.result.by_type.set_index("conflict_type")
    assert u.loc["U1", "patches"] >= 1 and u.loc["U2", "patches"] == 0
    assert ws.get_provenance(res2.provenance_id).kind == "conformance.conflicts"


def test_check_redline_file_jzd_with_registered_versions(ws, tmp_path):
    out = check_redline_file(ws, GOOD, packs=load_packs(), at=AT, actor="tester")
    chk = out.check
    assert out.input.format == "jzd" and out.input.source_crs == "EPSG:4527"
    assert any("EPSG:4527" in n and "EPSG:4490" in n for n in out.input.notes)
    rows = chk.line_rows.set_index(["parcel", "line_type"])
    assert rel(rows.loc[("HX-01", "eco_redline"), "overlap_m2"], 60 * 100) < 3e-4
    assert rows.loc[("HX-01", "eco_redline"), "share"] == pytest.approx(0.5, abs=1e-3)
    assert rows.loc[("HX-02", "eco_redline"), "overlap_m2"] == 0
    assert rows.loc[("HX-02", "urban_boundary"), "outside_m2"] == 0
    assert chk.parcels.set_index("parcel")["verdict"].to_dict() == {
        "HX-01": "不通过",
        "HX-02": "需审查",
    }
    match = chk.match_rows.set_index("parcel")
    assert (
        match.loc["HX-01", "outcome"] == "identical" and match.loc["HX-02", "outcome"] == "changed"
    )
    assert match.loc["HX-02", "hausdorff_m"] == pytest.approx(5.0, abs=0.05)
    assert {"redlines", "eco_redline"} <= set(out.synthetic_inputs)
    rec = ws.get_provenance(out.provenance_id)
    file_in = [i for i in rec.inputs if i.kind == "file"]
    assert file_in and file_in[0].content_hash == out.input.source_hash
    # the one-pager
    from yizhangtu.reports.redline import render_redline

    html = render_redline(out, tmp_path / "r.html").read_text(encoding="utf-8")
    assert (
        "不通过" in html
        and "合成数据" in html
        and "data:image/png;base64," in html
        and "004 (十一)" in html
    )


def test_redline_in_another_crs_is_reprojected_or_refused(ws, tmp_path):
    # a zipped shapefile in EPSG:4527 (prefixed zone 39), shifted 0.3 m from the registered HX-01
    red = gpd.GeoDataFrame(
        {"DKBH": ["HX-01"]},
        geometry=[shapely.affinity.translate(box(0, 0, 120, 100), 0.18, 0.24)],
        crs=GK,
    ).to_crs(4527)
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    red.to_file(shp_dir / "hx.shp", encoding="GBK")
    z = tmp_path / "hx.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    out = check_redline_file(ws, z, packs=load_packs(), at=AT)
    assert out.input.source_crs == "EPSG:4527" and out.input.id_field == "DKBH"
    assert any("EPSG:4527" in n for n in out.input.notes)
    assert out.check.match_rows.set_index("parcel").loc["HX-01", "outcome"] == "within_tolerance"
    assert (
        rel(
            out.check.line_rows.set_index("line_type").loc["eco_redline", "overlap_m2"],
            (60 - 0.18) * 100,
        )
        < 3e-4
    )
    # no .prj and no zone prefix: the coordinates fit several zones, the reader refuses
    bare = red.to_crs(GK)
    bare.to_file(tmp_path / "bare.shp")
    (tmp_path / "bare.prj").unlink()
    with pytest.raises(CRSError) as ei:
        read_redline_file(tmp_path / "bare.shp")
    assert ei.value.key in ("crs_ambiguous", "crs_missing")


def test_transmission_report_records_provenance(ws):
    out = transmission_report("dongguan-demo", store=ws, at=AT, actor="tester")
    assert out.result.ok and out.result.elasticity.default == pytest.approx(0.1)
    assert set(out.result.rows["outcome"]) == {"within", "elastic"}
    rec = ws.get_provenance(out.provenance_id)
    assert rec.policy.id == "dongguan-2023"


# ---------------------------------------------------------------------------------------- CLI
def run(ws: str, *args: str, capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(["--workspace", ws, *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_conformance_commands(workspace_uri, tmp_path, capsys):
    with open_store(workspace_uri) as st:
        populate(st)
    code, out, _ = run(
        workspace_uri,
        "conformance",
        "lines",
        "--units",
        "units",
        "--scope",
        "示例区",
        "--json",
        capsys=capsys,
    )
    assert code == 0 and json.loads(out)["ok"] is False
    gpkg = tmp_path / "c.gpkg"
    code, out, _ = run(
        workspace_uri,
        "conformance",
        "conflicts",
        "survey",
        "plan_landuse",
        "-m",
        "sandiao-vs-landsea",
        "--units",
        "units",
        "-o",
        str(gpkg),
        "--json",
        capsys=capsys,
    )
    d = json.loads(out)
    assert code == 0 and {t["type"] for t in d["by_type"] if t["patches"]} == {"T2", "T4", "T7"}
    assert "conflicts" in pyogrio.list_layers(gpkg)[:, 0]
    report = tmp_path / "r.pdf"
    code, out, _ = run(
        workspace_uri,
        "conformance",
        "check-redline",
        str(GOOD),
        "--report",
        str(report),
        "--json",
        capsys=capsys,
    )
    d = json.loads(out)
    assert code == 1 and d["verdict"] == "不通过"  # exit code 1 when the verdict is 不通过
    assert report.read_bytes()[:4] == b"%PDF"
    code, out, err = run(
        workspace_uri,
        "conformance",
        "check-redline",
        str(DATA / "redline_unclosed.txt"),
        capsys=capsys,
    )
    assert code == 2 and "未闭合" in err
    code, out, _ = run(
        workspace_uri, "conformance", "transmission", "chaoyang-2035", "--json", capsys=capsys
    )
    d = json.loads(out)
    assert code == 0 and d["ok"] and d["elasticity"]["default"] == 0.0


def test_cli_transmission_refuses_over_elasticity(tmp_path, capsys):
    import yaml

    doc = {
        "id": "t",
        "title": "测试(合成数据)",
        "levels": ["中圈", "小圈"],
        "elasticity_pack": "dongguan-2023",
        "synthetic": True,
        "nodes": [
            {
                "id": "p",
                "name": "中圈",
                "level": "中圈",
                "parent": None,
                "values": {"renewal_scale": 1000},
            },
            {
                "id": "a",
                "name": "小圈A",
                "level": "小圈",
                "parent": "p",
                "values": {"renewal_scale": 600},
            },
            {
                "id": "b",
                "name": "小圈B",
                "level": "小圈",
                "parent": "p",
                "values": {"renewal_scale": 510},
            },
        ],
    }
    f = tmp_path / "h.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    code, out, _ = run(
        str(tmp_path / "ws.gpkg"), "conformance", "transmission", str(f), capsys=capsys
    )
    assert code == 1 and "超出10%弹性空间" in out


def test_check_redline_needs_something_to_check(store):
    from yizhangtu.errors import NotFoundError

    with pytest.raises(NotFoundError) as ei:
        check_redline_file(store, GOOD, at=AT)
    assert ei.value.key == "nothing_to_check" and "管控线" in str(ei.value)
    assert store.layers() == []  # nothing written
