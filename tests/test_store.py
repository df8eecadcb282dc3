"""The store interface, run identically on the GeoPackage and PostGIS backends."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from yizhangtu.errors import ConflictError, InputError, NotFoundError
from yizhangtu.geo.area import ellipsoidal_area, geodesic_area
from yizhangtu.provenance import make_provenance
from yizhangtu.services.provenance import explain_chain, snapshot_ref
from yizhangtu.store import LayerSpec, Store


@pytest.fixture
def streets(chaoyang_path) -> gpd.GeoDataFrame:
    return gpd.read_file(chaoyang_path).set_crs(4490, allow_override=True)


def _spec(name: str = "streets", **kw) -> LayerSpec:
    return LayerSpec(
        name=name, kind=kw.pop("kind", "boundary"), title=kw.pop("title", "朝阳区街乡"), **kw
    )


def test_snapshot_roundtrip_preserves_features_and_chinese(store: Store, streets):
    snap = store.write_snapshot(
        _spec(),
        [streets.iloc[:20], streets.iloc[20:]],
        label="2023",
        actor="tester",
        source_file="a.geojson",
        source_hash="abc",
    )
    assert snap.feature_count == 43
    assert snap.crs == "EPSG:4490"
    back = store.read_layer("streets")
    assert len(back) == 43
    assert sorted(back["name"]) == sorted(streets["name"])
    assert "朝外街道" in set(back["name"])
    np.testing.assert_allclose(
        ellipsoidal_area(back.geometry), geodesic_area(streets.geometry), rtol=1e-4
    )
    assert store.verify_snapshot("streets")


def test_content_hash_is_order_independent_and_backend_neutral(store: Store, streets):
    a = store.write_snapshot(_spec("a"), [streets], label="x", actor="t")
    b = store.write_snapshot(_spec("b"), [streets.iloc[::-1]], label="x", actor="t")
    assert a.content_hash == b.content_hash
    # the same figure the GeoPackage backend computed for this data in another run
    from yizhangtu.store.hashing import ContentHasher

    h = ContentHasher()
    h.update(streets)
    assert h.hexdigest() == a.content_hash


def test_snapshots_as_of_and_history(store: Store, streets):
    store.write_snapshot(_spec(), [streets], label="2020", actor="t")
    store.write_snapshot(_spec(), [streets.iloc[:10]], label="2021", actor="t")
    assert [s.label for s in store.snapshots("streets")] == ["2020", "2021"]
    assert len(store.read_layer("streets")) == 10
    assert len(store.read_layer("streets", as_of="2020")) == 43
    assert len(store.read_layer("streets", as_of="2021-06-30")) == 43
    assert len(store.read_layer("streets", as_of="2022")) == 10
    assert len(store.read_layer("streets", snapshot="2020")) == 43
    with pytest.raises(NotFoundError) as e:
        store.read_layer("streets", as_of="2019")
    assert "2020" in (e.value.hint or "")
    with pytest.raises(ConflictError):
        store.write_snapshot(_spec(), [streets], label="2020", actor="t")


def test_failed_write_leaves_no_trace(store: Store, streets):
    store.write_snapshot(_spec(), [streets], label="2020", actor="t")
    before_audit = store.audit_verify().count

    def broken():
        yield streets.iloc[:10]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.write_snapshot(_spec(), broken(), label="2021", actor="t")
    assert [s.label for s in store.snapshots("streets")] == ["2020"]
    assert len(store.read_layer("streets")) == 43
    assert store.audit_verify().ok and store.audit_verify().count == before_audit


def test_empty_snapshot_refused(store: Store, streets):
    with pytest.raises(InputError) as e:
        store.write_snapshot(_spec(), [streets.iloc[:0]], label="2020", actor="t")
    assert e.value.key == "empty_layer"
    assert store.layers() == []


def test_bad_layer_names():
    for bad in ("图斑", "Survey", "a__b", "1abc", ""):
        with pytest.raises(InputError):
            LayerSpec(name=bad)
    with pytest.raises(InputError):
        LayerSpec(name="ok", kind="nonsense")


def test_tables_roundtrip_and_hash(store: Store):
    df = pd.DataFrame(
        {
            "unit": ["东坝", "金盏"],
            "target_km2": [1.5, 2.0],
            "year": [2021, 2021],
            "ok": [True, False],
        }
    )
    h = store.write_table("targets", df, actor="t")
    back = store.read_table("targets")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["year"].dtype.kind == "i" and back["ok"].dtype == bool
    assert store.table_hash("targets") == h
    h2 = store.write_table("targets", df.iloc[:1], actor="t", mode="append")
    assert len(store.read_table("targets")) == 3 and h2 != h
    assert store.table_names() == ["targets"]


def test_records_optimistic_locking(store: Store):
    r1 = store.put_record(
        "renewal_unit",
        "U1",
        {"stage": "前期工作"},
        expected_version=None,
        actor="alice",
        jurisdiction="441900101",
    )
    assert r1.version == 1
    r2 = store.put_record(
        "renewal_unit", "U1", {"stage": "确认主体"}, expected_version=1, actor="alice"
    )
    assert r2.version == 2 and r2.jurisdiction == "441900101"
    with pytest.raises(ConflictError) as e:
        store.put_record("renewal_unit", "U1", {"stage": "撤回"}, expected_version=1, actor="bob")
    assert e.value.data["updated_by"] == "alice" and e.value.data["current"]["stage"] == "确认主体"
    store.put_record(
        "renewal_unit",
        "U2",
        {"stage": "前期工作"},
        expected_version=None,
        actor="a",
        jurisdiction="441900102",
    )
    assert [r.key for r in store.list_records("renewal_unit", jurisdictions=["441900102"])] == [
        "U2"
    ]
    assert store.list_records("renewal_unit", jurisdictions=[]) == []
    assert len(store.list_records("renewal_unit")) == 2


def test_audit_chain_detects_tampering_and_deletion(store: Store, streets):
    store.write_snapshot(_spec(), [streets], label="2020", actor="t")
    store.put_record("x", "k", {"a": 1}, expected_version=None, actor="t")
    store.put_record("x", "k", {"a": 2}, expected_version=1, actor="t")
    v = store.audit_verify()
    assert v.ok and v.count == 3
    store._execute("UPDATE yz_audit SET actor = ? WHERE seq = ?", ("mallory", 2))  # type: ignore[attr-defined]
    v = store.audit_verify()
    assert not v.ok and any("#2" in p for p in v.problems)
    store._execute("UPDATE yz_audit SET actor = ? WHERE seq = ?", ("t", 2))  # type: ignore[attr-defined]
    assert store.audit_verify().ok
    store._execute("DELETE FROM yz_audit WHERE seq = ?", (2,))  # type: ignore[attr-defined]
    v = store.audit_verify()
    assert not v.ok and any("#2" in p for p in v.problems)


def test_audit_detects_truncated_tail(store: Store, streets):
    store.write_snapshot(_spec(), [streets], label="2020", actor="t")
    store.put_record("x", "k", {"a": 1}, expected_version=None, actor="t")
    store._execute("DELETE FROM yz_audit WHERE seq = ?", (2,))  # type: ignore[attr-defined]
    v = store.audit_verify()
    assert not v.ok


def test_provenance_roundtrip_and_explain(store: Store, streets):
    snap = store.write_snapshot(
        _spec(),
        [streets],
        label="2020",
        actor="t",
        source_file="streets.geojson",
        source_hash="sha256:f00",
    )
    rec = make_provenance(
        "area_table",
        inputs=[snapshot_ref(snap)],
        params={"unit": "km2"},
        policy={"id": "p", "version": "1", "hash": "h"},
        result={"x": 1},
        actor="t",
    )
    assert store.save_provenance(rec) == rec.id
    assert store.save_provenance(rec) == rec.id  # idempotent
    back = store.get_provenance(rec.id)
    assert back == rec
    chain = explain_chain(store, rec.id[:8])
    assert chain["inputs"][0]["source_file"] == "streets.geojson"
    assert chain["inputs"][0]["present"] is True
    assert chain["inputs"][0]["imported_by"] == "t"
    with pytest.raises(NotFoundError):
        store.get_provenance("nope")


def test_delete_and_update_layer(store: Store, streets):
    store.write_snapshot(_spec(), [streets], label="2020", actor="t")
    info = store.update_layer("streets", actor="t", title="新名称", published=True)
    assert info.title == "新名称" and info.published
    store.delete_layer("streets", actor="t")
    assert store.layers() == []
    assert store.audit_verify().ok


def test_promote_mixed_polygons_to_multi(store: Store):
    a = shapely.box(116.40, 39.90, 116.41, 39.91)
    b = shapely.MultiPolygon(
        [shapely.box(116.42, 39.90, 116.43, 39.91), shapely.box(116.44, 39.90, 116.45, 39.91)]
    )
    gdf = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[a, b], crs=4490)
    snap = store.write_snapshot(
        _spec("mixed", kind="other"), [gdf], label="1", actor="t", geometry_type="MultiPolygon"
    )
    back = store.read_layer("mixed")
    assert set(back.geom_type) == {"MultiPolygon"}
    assert snap.geometry_type == "MultiPolygon"
    np.testing.assert_allclose(ellipsoidal_area(back.geometry), ellipsoidal_area(gdf.geometry))


def test_gpkg_reads_and_writes_from_threads_of_one_process(tmp_path, streets):
    # GDAL (its own SQLite) reads the file while Python's sqlite3 writes it in other threads:
    # without the per-file lock GDAL saw the writer's journal as hot ("attempt to write a
    # readonly database"), and two SQLite libraries writing one file can corrupt it
    import sqlite3
    import subprocess
    import threading

    from yizhangtu.store import open_store

    ws = tmp_path / "ws.gpkg"
    with open_store(str(ws)) as st:
        st.write_snapshot(
            LayerSpec(name="streets", kind="boundary"), [streets], label="v0", actor="t"
        )
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        with open_store(str(ws)) as st:
            while not stop.is_set():
                try:
                    assert len(st.read_layer("streets")) == len(streets)
                except BaseException as exc:
                    errors.append(exc)
                    return

    def writer() -> None:
        with open_store(str(ws)) as st:
            try:
                for i in range(1, 9):
                    st.write_snapshot(
                        LayerSpec(name="streets", kind="boundary"),
                        [streets],
                        label=f"v{i}",
                        actor="t",
                    )
                    for k in range(10):
                        st.put_record(
                            "notes", f"{i}-{k}", {"i": i}, expected_version=None, actor="t"
                        )
            except BaseException as exc:
                errors.append(exc)
            finally:
                stop.set()

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    with sqlite3.connect(ws) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with open_store(str(ws)) as st:
        assert [s.label for s in st.snapshots("streets")] == [f"v{i}" for i in range(9)]
        assert all(st.verify_snapshot("streets", f"v{i}") for i in range(9))
        assert len(st.list_records("notes")) == 80
    # GDAL sees every snapshot table with its R-tree index and CRS
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", str(ws), "streets__s9"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        f"Feature Count: {len(streets)}" in out and "China Geodetic Coordinate System 2000" in out
    )
    with sqlite3.connect(ws) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
        assert "rtree_streets__s9_geom" in names and "rtree_streets__s9_geom_insert" in names
        assert not list(tmp_path.glob("*.staging.gpkg*"))
