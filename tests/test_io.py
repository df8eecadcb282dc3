"""Tests for yizhangtu.io (reading) and yizhangtu.geo.crs, on the real Chaoyang boundaries."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import struct
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import yaml
from pyproj import CRS

from yizhangtu.errors import CRSError, EncodingError, FileFormatError, InputError, YizhangtuError
from yizhangtu.geo.area import ellipsoidal_area, geodesic_area
from yizhangtu.geo.crs import (
    crs_code,
    gk_epsg,
    gk_zone_for_lon,
    gk_zone_from_easting,
    infer_crs,
    resolve_crs,
)
from yizhangtu.geo.offsets import detect_offset, wgs84_to_gcj02
from yizhangtu.io import ReadReport, inspect_source, iter_source, read_source
from yizhangtu.io.encoding import LDID_CODEPAGES, parse_cpg

BAD = Path(__file__).parent / "data" / "bad"
MANIFEST = yaml.safe_load((BAD / "MANIFEST.yaml").read_text(encoding="utf-8"))
CASES = MANIFEST["cases"]
SOURCE = BAD / MANIFEST["source"]["file"]


def _cases(stage: str) -> list:
    return [pytest.param(c, id=c["id"]) for c in CASES if c["stage"] == stage]


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    return gpd.read_file(SOURCE)


def _write_gbk_shapefile(
    gdf: gpd.GeoDataFrame, path: Path, *, epsg: int, ldid: int | None = None
) -> Path:
    pyogrio.write_dataframe(gdf.to_crs(epsg), path, encoding="GBK")
    path.with_suffix(".cpg").unlink()
    if ldid is not None:
        dbf = bytearray(path.with_suffix(".dbf").read_bytes())
        dbf[29] = ldid
        path.with_suffix(".dbf").write_bytes(bytes(dbf))
    return path


# --------------------------------------------------------------------------- Chaoyang


def test_chaoyang_geojson(streets: gpd.GeoDataFrame) -> None:
    gdf, rep = read_source(SOURCE)
    assert len(gdf) == 43 == rep.feature_count
    assert rep.driver == "GeoJSON"
    assert (rep.encoding, rep.encoding_source) == ("UTF-8", "utf-8")
    assert (rep.crs, rep.crs_source) == ("EPSG:4326", "declared")
    assert rep.geometry_types == ("MultiPolygon",)
    assert rep.source_hash == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert list(gdf["name"]) == list(streets["name"])
    assert "建外街道" in set(gdf["name"])
    assert gdf["code"].str.len().eq(12).all()  # codes kept as text
    assert list(gdf.index) == list(range(43))
    json.dumps(rep.to_dict(), ensure_ascii=False)


@pytest.mark.parametrize(("ldid", "source"), [(0x00, "gb18030-fallback"), (0x4D, "dbf_ldid")])
def test_chaoyang_gbk_shapefile_in_gk_without_cpg(
    tmp_path: Path, streets: gpd.GeoDataFrame, ldid: int, source: str
) -> None:
    # Beijing, lon ≈ 116.4 → 3-degree zone 39 (CM 117°E): EPSG:4527 with prefix, 4548 without.
    assert gk_zone_for_lon(116.4) == 39
    assert gk_epsg(39) == 4527 and gk_epsg(39, with_prefix=False) == 4548
    shp = _write_gbk_shapefile(
        streets[["code", "name", "geometry"]], tmp_path / "街道.shp", epsg=4527, ldid=ldid
    )
    assert not shp.with_suffix(".cpg").exists()
    gdf, rep = read_source(shp)
    assert rep.feature_count == 43 == len(gdf)
    assert rep.encoding_source == source
    assert rep.encoding == ("GBK" if ldid == 0x4D else "GB18030")
    assert any(".cpg" in w for w in rep.warnings)
    assert (rep.crs, rep.crs_source) == ("EPSG:4527", "declared")
    assert list(gdf["name"]) == list(streets["name"])
    ours = ellipsoidal_area(gdf.geometry)
    reference = geodesic_area(streets.geometry)
    np.testing.assert_allclose(ours, reference, rtol=1e-4)
    parts = sorted(p for p in tmp_path.iterdir() if p.name.startswith("街道."))
    assert rep.source_hash == hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()


def test_gk_shapefile_without_prj_is_inferred(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    shp = _write_gbk_shapefile(streets[["name", "geometry"]], tmp_path / "a.shp", epsg=4527)
    shp.with_suffix(".prj").unlink()
    gdf, rep = read_source(shp)
    assert (rep.crs, rep.crs_source) == ("EPSG:4527", "inferred")
    assert any("推断为 EPSG:4527" in w for w in rep.warnings)
    assert gdf.crs.to_epsg() == 4527


def test_zipped_shapefile(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    shp = _write_gbk_shapefile(streets[["name", "geometry"]], tmp_path / "dltb.shp", epsg=4527)
    z = tmp_path / "dltb.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(tmp_path.glob("dltb.*")):
            if p.suffix != ".zip":
                zf.write(p, f"data/{p.name}")
    gdf, rep = read_source(z)
    assert len(gdf) == 43 and rep.sublayers == ("data/dltb.shp",)
    assert rep.source_hash == hashlib.sha256(z.read_bytes()).hexdigest()
    assert list(gdf["name"]) == list(streets["name"])
    assert shp.exists()


def test_filegdb_kml_and_gpkg(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    gdb = tmp_path / "plan.gdb"
    pyogrio.write_dataframe(streets.iloc[:5], gdb, layer="streets", driver="OpenFileGDB")
    gdf, rep = read_source(gdb)
    assert (
        rep.driver == "OpenFileGDB"
        and len(gdf) == 5
        and list(gdf["name"]) == list(streets["name"][:5])
    )
    kml = tmp_path / "a.kml"
    streets.iloc[:3][["name", "geometry"]].to_file(kml, driver="KML")
    gdf, rep = read_source(kml)
    assert len(gdf) == 3 and rep.crs == "EPSG:4326"
    gpkg = tmp_path / "two.gpkg"
    pyogrio.write_dataframe(streets.iloc[:2], gpkg, layer="a")
    pyogrio.write_dataframe(streets.iloc[2:5], gpkg, layer="b")
    with pytest.raises(InputError) as exc:
        inspect_source(gpkg)
    assert exc.value.key == "sublayer_required" and exc.value.data["sublayers"] == ["a", "b"]
    rep = inspect_source(gpkg, sublayer="b")
    assert rep.feature_count == 3 and rep.sublayers == ("a", "b") and rep.sublayer == "b"
    with pytest.raises(InputError) as exc:
        inspect_source(gpkg, sublayer="c")
    assert exc.value.key == "sublayer_not_found"


def test_csv_wkt_dms_and_explicit_fields(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    ewkt = tmp_path / "plots.csv"
    pd.DataFrame(
        {
            "地块": ["甲", "乙"],
            "WKT": [
                "SRID=4490;" + streets.geometry.iloc[0].wkt,
                "SRID=4490;" + streets.geometry.iloc[1].wkt,
            ],
        }
    ).to_csv(ewkt, index=False)
    gdf, rep = read_source(ewkt)
    assert (rep.crs, rep.crs_source) == ("EPSG:4490", "declared")
    assert "WKT" not in gdf.columns and gdf.geometry.iloc[0].equals_exact(
        streets.geometry.iloc[0], 1e-9
    )
    dms = tmp_path / "dms.csv"
    pd.DataFrame(
        {"编号": ["J1", "J2"], "E": ["116°23′51″", "116°24′00″"], "N": ["39°54′27″N", "39°55′00″"]}
    ).to_csv(dms, index=False)
    with pytest.raises(FileFormatError) as exc:
        read_source(dms)
    assert exc.value.key == "no_geometry_columns"
    gdf, rep = read_source(dms, x_field="E", y_field="N")
    assert gdf.geometry.iloc[0].x == pytest.approx(116 + 23 / 60 + 51 / 3600)
    assert gdf.geometry.iloc[0].y == pytest.approx(39 + 54 / 60 + 27 / 3600)
    assert rep.crs == "EPSG:4490" and gdf["编号"].tolist() == ["J1", "J2"]
    with pytest.raises(InputError) as exc:
        read_source(dms, x_field="E")
    assert exc.value.key == "xy_field_incomplete"
    with pytest.raises(InputError) as exc:
        read_source(dms, x_field="lon", y_field="N")
    assert exc.value.key == "field_not_found" and exc.value.detail.field == "lon"


def test_csv_lonlat_swapped_is_refused(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    p = tmp_path / "pts.csv"
    pd.DataFrame({"经度": streets["label_lat"], "纬度": streets["label_lon"]}).to_csv(
        p, index=False
    )
    with pytest.raises(CRSError) as exc:
        read_source(p)
    assert exc.value.key == "lonlat_swapped" and exc.value.hint


def test_offset_conversion_on_read(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    shifted = streets.iloc[:5].copy()
    shifted["geometry"] = wgs84_to_gcj02(shifted.geometry)
    p = tmp_path / "gcj.geojson"
    shifted.to_file(p)
    gdf, rep = read_source(p, from_gcj02=True)
    err = np.abs(
        shapely.get_coordinates(gdf.geometry.values)
        - shapely.get_coordinates(streets.geometry.values[:5])
    )
    assert err.max() < 1e-7
    assert any("GCJ-02" in w for w in rep.warnings)
    with pytest.raises(InputError) as exc:
        read_source(p, from_gcj02=True, from_bd09=True)
    assert exc.value.key == "offset_conflict"
    gk = tmp_path / "gk.shp"
    _write_gbk_shapefile(streets.iloc[:3][["name", "geometry"]], gk, epsg=4527)
    with pytest.raises(CRSError) as exc:
        read_source(gk, from_bd09=True)
    assert exc.value.key == "offset_needs_lonlat"


def test_cpg_that_lies_falls_back(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    shp = _write_gbk_shapefile(
        streets[["name", "geometry"]].iloc[:4], tmp_path / "a.shp", epsg=4527
    )
    shp.with_suffix(".cpg").write_text("UTF-8")
    gdf, rep = read_source(shp)
    assert rep.encoding_source == "gb18030-fallback"
    assert any(".cpg 声明的 UTF-8" in w for w in rep.warnings)
    assert list(gdf["name"]) == list(streets["name"][:4])
    with pytest.raises(EncodingError) as exc:
        read_source(shp, encoding="UTF-8")
    assert exc.value.key == "encoding_undecodable"
    assert exc.value.detail.feature == 0 and exc.value.detail.field == "name"
    gdf, rep = read_source(shp, encoding="GBK")
    assert rep.encoding_source == "override" and list(gdf["name"]) == list(streets["name"][:4])


def test_parse_cpg_and_ldid_table() -> None:
    assert parse_cpg("UTF-8") == "utf-8"
    assert parse_cpg("65001") == "utf-8"
    assert parse_cpg("936") == "gbk"
    assert parse_cpg("ANSI 936") == "gbk"
    assert parse_cpg("GB2312") == "gb2312"
    assert parse_cpg("88591") == "iso8859-1"
    assert parse_cpg("nonsense-encoding") is None
    assert LDID_CODEPAGES[0x4D] == LDID_CODEPAGES[0x7A] == "gbk"
    assert LDID_CODEPAGES[0x4F] == LDID_CODEPAGES[0x78] == "big5"
    assert 0x57 not in LDID_CODEPAGES and 0x00 not in LDID_CODEPAGES


# --------------------------------------------------------------------------- corpus


def _path(case: dict) -> str:
    return str(BAD / case["file"])


@pytest.mark.parametrize("case", _cases("read"))
@pytest.mark.parametrize("fn", ["read_source", "inspect_source", "iter_source"])
def test_bad_corpus_read_errors(case: dict, fn: str) -> None:
    path = _path(case)
    func = {
        "read_source": read_source,
        "inspect_source": inspect_source,
        "iter_source": iter_source,
    }[fn]
    with pytest.raises(YizhangtuError) as exc:
        func(path, **case.get("options", {}))
    err = exc.value
    assert err.key == case["key"], str(err)
    assert type(err).__name__ == case["error"]
    assert err.detail.file == path and path in str(err)
    assert err.hint, "every error carries a Chinese hint"
    if "feature" in case:
        assert err.detail.feature == case["feature"]
    if "field" in case:
        assert err.detail.field == case["field"]
    assert err.to_dict()["file"] == path


def _qc_evidence(gdf: gpd.GeoDataFrame, case: dict) -> None:
    """The defect the QC check must find is still in the data (reading did not repair it)."""
    key, rows = case["key"], case.get("features", [])
    geoms = gdf.geometry
    if key == "invalid_geometry":
        assert not shapely.is_valid(geoms.values[rows]).any()
        assert shapely.is_valid(geoms.drop(index=rows).values).all()
    elif key == "empty_geometry":
        assert (geoms.isna() | geoms.is_empty).to_numpy().nonzero()[0].tolist() == rows
    elif key == "duplicate_id":
        assert gdf.index[gdf[case["field"]].duplicated(keep=False)].tolist() == rows
    elif key == "multipart":
        assert np.flatnonzero(shapely.get_num_geometries(geoms.values) > 1).tolist() == rows
    elif key == "mixed_geometry":
        assert len({t.replace("Multi", "") for t in geoms.geom_type}) == 3
    elif key == "missing_field":
        assert case["field"] not in gdf.columns
    elif key == "unknown_code":
        assert (
            sorted(
                gdf.index[
                    ~gdf[case["field"]].isin(["0101", "0201", "0301", "0701", "1001", "0702"])
                ]
            )
            == rows
        )
    elif key == "overlap":
        gk = geoms.to_crs(4527)
        assert gk.iloc[1].intersection(gk.iloc[0]).area > 1000
    elif key == "gap":
        gk = geoms.to_crs(4527)
        assert gk.iloc[1].distance(gk.iloc[0]) > 10
    elif key == "sliver":
        area = ellipsoidal_area(geoms)
        assert np.flatnonzero(area < 1.0).tolist() == rows


@pytest.mark.parametrize("case", _cases("qc"))
def test_bad_corpus_qc_cases_read(case: dict) -> None:
    gdf, rep = read_source(_path(case), **case.get("options", {}))
    assert rep.feature_count == len(gdf) > 0
    _qc_evidence(gdf, case)


@pytest.mark.parametrize("case", _cases("ok"))
def test_bad_corpus_ok_cases(case: dict, streets: gpd.GeoDataFrame) -> None:
    gdf, rep = read_source(_path(case), **case.get("options", {}))
    expect = dict(case.get("expect", {}))
    names, field = expect.pop("names", None), expect.pop("field", "name")
    codes = expect.pop("codes", None)
    needle = expect.pop("warning_contains", None)
    offset = expect.pop("offset", None)
    for key, value in expect.items():
        got = getattr(rep, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    if names is not None:
        assert list(gdf[field]) == names
    if codes is not None:
        assert list(gdf["地类编码"]) == codes
    if needle is not None:
        assert any(needle in w for w in rep.warnings), rep.warnings
    if offset is not None:
        assert detect_offset(gdf, streets).kind == offset
        fixed, _ = read_source(_path(case), **{f"from_{offset}": True})
        assert detect_offset(fixed, streets).kind == "none"
    assert inspect_source(_path(case), **case.get("options", {})) == rep


def test_manifest_is_complete() -> None:
    stages = {c["stage"] for c in CASES}
    assert stages == {"read", "qc", "ok"}
    assert len([c for c in CASES if c["stage"] in ("read", "qc")]) >= 24
    assert {c["key"] for c in CASES if c["stage"] == "qc"} == {
        "invalid_geometry",
        "empty_geometry",
        "duplicate_id",
        "multipart",
        "overlap",
        "gap",
        "sliver",
        "unknown_code",
        "missing_field",
        "mixed_geometry",
    }
    for c in CASES:
        assert (BAD / c["file"]).exists(), c["file"]
        assert c["description_zh"] and c["description_en"]
        if c.get("synthetic"):
            assert c["synthetic_note"]
    size = sum(p.stat().st_size for p in BAD.rglob("*") if p.is_file())
    assert size < 2_000_000


def test_corpus_generator_is_deterministic(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_bad_corpus", BAD.parent / "make_bad_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    make_bad_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_bad_corpus)
    out = tmp_path / "bad"
    (out / "_source").mkdir(parents=True)
    shutil.copyfile(SOURCE, out / "_source" / SOURCE.name)
    make_bad_corpus.main(out)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(out) == digest(BAD), "run tests/data/make_bad_corpus.py and commit its output"


# --------------------------------------------------------------------------- chunks


@pytest.fixture(scope="module")
def big_shapefile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = 200_000
    rng = np.random.default_rng(7)
    x = 39_440_000 + rng.random(n) * 30_000
    y = 4_400_000 + rng.random(n) * 40_000
    names = np.array(["水田", "旱地", "果园", "乔木林地", "城镇住宅用地", "农村宅基地"])
    codes = np.array(["0101", "0103", "0201", "0301", "0701", "0702"])
    pick = rng.integers(0, 6, n)
    gdf = gpd.GeoDataFrame(
        {
            "BSM": np.arange(n, dtype=np.int64),
            "DLBM": codes[pick],
            "DLMC": names[pick],  # synthetic land-use labels
            "TBMJ": np.round(rng.random(n) * 300, 2),
        },
        geometry=shapely.box(x, y, x + rng.random(n) * 30 + 1, y + 15),
        crs=4527,
    )
    path = tmp_path_factory.mktemp("big") / "synthetic_dltb.shp"
    pyogrio.write_dataframe(gdf, path, encoding="GBK", use_arrow=True)
    path.with_suffix(".cpg").unlink()
    return path


def test_chunked_read_equals_one_shot(big_shapefile: Path) -> None:
    full, rep_full = read_source(big_shapefile)
    rep, chunks = iter_source(big_shapefile, chunk_size=30_000)
    assert rep == rep_full
    assert rep.feature_count == 200_000 and rep.encoding_source == "gb18030-fallback"
    seen = 0
    parts = []
    for chunk in chunks:
        assert 0 < len(chunk) <= 30_000
        assert list(chunk.index) == list(range(seen, seen + len(chunk)))
        assert list(chunk.columns) == list(full.columns)
        assert chunk.dtypes.to_dict() == full.dtypes.to_dict()
        assert chunk.crs == full.crs
        seen += len(chunk)
        parts.append(chunk)
    assert seen == 200_000
    both = pd.concat(parts)
    assert np.array_equal(
        shapely.to_wkb(both.geometry.values), shapely.to_wkb(full.geometry.values)
    )
    pd.testing.assert_frame_equal(both.drop(columns="geometry"), full.drop(columns="geometry"))
    assert set(full["DLMC"]) == {"水田", "旱地", "果园", "乔木林地", "城镇住宅用地", "农村宅基地"}


def test_iter_source_checks_before_streaming(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    feats = json.loads(SOURCE.read_text(encoding="utf-8"))
    feats["features"][40]["geometry"]["coordinates"] = [
        [[[1e9, 1e9], [1e9 + 1, 1e9], [1e9, 1e9 + 1], [1e9, 1e9]]]
    ]
    p = tmp_path / "stray.geojson"
    p.write_text(json.dumps(feats, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CRSError) as exc:
        iter_source(p, chunk_size=10)
    assert exc.value.key == "coordinates_out_of_range" and exc.value.detail.feature == 40


# --------------------------------------------------------------------------- CRS helpers


def test_gk_zone_helpers() -> None:
    assert gk_zone_from_easting(39_456_789.0).zone == 39
    assert gk_zone_from_easting(39_456_789.0).width == 3
    assert gk_zone_from_easting(20_456_789.0).width == 6
    assert gk_zone_from_easting(456_789.0) is None
    assert [gk_epsg(z) for z in (25, 45)] == [4513, 4533]
    assert [gk_epsg(z, with_prefix=False) for z in (25, 45)] == [4534, 4554]
    assert [gk_epsg(z, 6) for z in (13, 23)] == [4491, 4501]
    assert [gk_epsg(z, 6, with_prefix=False) for z in (13, 23)] == [4502, 4512]
    for zone in range(25, 46):
        crs = CRS.from_epsg(gk_epsg(zone))
        assert f"zone {zone}" in crs.name
        assert f"CM {zone * 3}E" in CRS.from_epsg(gk_epsg(zone, with_prefix=False)).name


def test_infer_crs() -> None:
    assert [c.code for c in infer_crs((116.2, 39.8, 116.7, 40.1))] == ["EPSG:4490"]
    assert [c.code for c in infer_crs((39_444_067, 4_408_378, 39_469_149, 4_441_736))] == [
        "EPSG:4527"
    ]
    assert [c.code for c in infer_crs((20_444_067, 4_408_378, 20_469_149, 4_441_736))] == [
        "EPSG:4498"
    ]
    no_prefix = [c.code for c in infer_crs((444_067, 4_408_378, 469_149, 4_441_736))]
    assert "EPSG:4548" in no_prefix and "EPSG:4509" in no_prefix and len(no_prefix) > 5
    assert infer_crs((39.8, 116.2, 40.1, 116.7)) == []
    assert infer_crs((1e12, 0, 1e12, 1)) == []
    assert crs_code("OGC:CRS84") == "EPSG:4326"


def test_resolve_crs_errors() -> None:
    gk = (39_444_067, 4_408_378, 39_469_149, 4_441_736)
    with pytest.raises(CRSError) as exc:
        resolve_crs(gk, declared="EPSG:4326", file="x")
    assert exc.value.key == "crs_mismatch" and "EPSG:4527" in exc.value.hint
    with pytest.raises(CRSError) as exc:
        resolve_crs((116.2, 39.8, 116.7, 40.1), override="EPSG:4527")
    assert exc.value.key == "crs_mismatch"
    with pytest.raises(CRSError) as exc:
        resolve_crs((444_067, 4_408_378, 469_149, 4_441_736))
    assert exc.value.key == "crs_ambiguous" and "EPSG:4548" in exc.value.data["candidates"]
    with pytest.raises(CRSError) as exc:
        resolve_crs(None)
    assert exc.value.key == "crs_missing"
    res = resolve_crs((444_067, 4_408_378, 469_149, 4_441_736), override="EPSG:4548")
    assert (res.code, res.source) == ("EPSG:4548", "override")
    res = resolve_crs((116.2, 39.8, 116.7, 40.1), declared="EPSG:4490")
    assert (res.code, res.source, res.warnings) == ("EPSG:4490", "declared", ())


def test_report_is_frozen() -> None:
    rep = inspect_source(SOURCE)
    assert isinstance(rep, ReadReport)
    with pytest.raises(AttributeError):
        rep.crs = "EPSG:4490"  # type: ignore[misc]


def test_shx_records_beyond_shp_name_the_feature(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    shp = _write_gbk_shapefile(
        streets[["name", "geometry"]].iloc[:10], tmp_path / "a.shp", epsg=4527
    )
    shx = shp.with_suffix(".shx").read_bytes()
    start7 = struct.unpack(">i", shx[100 + 7 * 8 : 104 + 7 * 8])[0] * 2
    data = bytearray(shp.read_bytes()[: start7 + 20])
    data[24:28] = struct.pack(">i", len(data) // 2)  # a header that agrees with the cut file
    shp.write_bytes(bytes(data))
    with pytest.raises(FileFormatError) as exc:
        read_source(shp)
    assert exc.value.key == "file_truncated" and exc.value.detail.feature == 7


def test_containers_and_attribute_tables(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    folder = tmp_path / "delivery"
    folder.mkdir()
    _write_gbk_shapefile(streets.iloc[:3][["name", "geometry"]], folder / "a.shp", epsg=4527)
    _write_gbk_shapefile(streets.iloc[3:7][["name", "geometry"]], folder / "b.shp", epsg=4527)
    with pytest.raises(InputError) as exc:
        read_source(folder)
    assert exc.value.key == "sublayer_required" and exc.value.data["sublayers"] == [
        "a.shp",
        "b.shp",
    ]
    gdf, rep = read_source(folder, sublayer="b")
    assert len(gdf) == 4 and rep.sublayer == "b.shp" and rep.sublayers == ("a.shp", "b.shp")

    gdb = tmp_path / "plan.gdb"
    pyogrio.write_dataframe(streets.iloc[:4], gdb, layer="streets", driver="OpenFileGDB")
    z = tmp_path / "gdb.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(gdb.iterdir()):
            zf.write(p, f"plan.gdb/{p.name}")
    gdf, rep = read_source(z)
    assert rep.driver == "OpenFileGDB" and list(gdf["name"]) == list(streets["name"][:4])

    table = tmp_path / "points.dbf"
    pts = pd.DataFrame(
        {
            "名称": streets["name"][:5],
            "经度": streets["label_lon"][:5],
            "纬度": streets["label_lat"][:5],
        }
    )
    pyogrio.write_dataframe(pts, table, driver="ESRI Shapefile", encoding="GBK")
    table.with_suffix(".cpg").unlink()
    gdf, rep = read_source(table)
    assert rep.encoding_source == "gb18030-fallback" and rep.crs == "EPSG:4490"
    assert list(gdf["名称"]) == list(streets["name"][:5]) and rep.geometry_types == ("Point",)

    with pytest.raises(CRSError) as exc:
        read_source(SOURCE, crs="EPSG:999999")
    assert exc.value.key == "crs_invalid" and exc.value.detail.file == str(SOURCE)
    with pytest.raises(InputError) as exc:
        read_source(tmp_path / "missing.shp")
    assert exc.value.key == "file_not_found"
