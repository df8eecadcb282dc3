"""GeoPackage backend: one file that QGIS opens.

Only one SQLite library ever writes the workspace: Python's ``sqlite3``. GDAL (through
pyogrio, which bundles its own SQLite) writes each snapshot into a staging GeoPackage beside
the workspace, which then is copied in, with its R-tree and GeoPackage metadata, and
registered in one transaction. Two SQLite libraries writing one file from one process can
corrupt it: POSIX locks belong to the process, so neither library sees the other's locks
(sqlite.org, "How To Corrupt An SQLite Database File", 2.2.1). GDAL still reads the
workspace (``read_layer``), so within a process its reads and our write transactions exclude
each other through a per-file readers–writer lock; across processes SQLite's own locks apply.
A crash before the copy leaves only a staging file, which the next open removes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from typing_extensions import override

from yizhangtu.errors import ConflictError, StoreError
from yizhangtu.store._frames import (
    column_kinds,
    declared_geometry_type,
    normalise_chunk,
    py_value,
    restore_kinds,
)
from yizhangtu.store.base import FeatureRows, LayerSpec, SnapshotInfo, SQLStore, normalise_obs_date
from yizhangtu.store.hashing import ContentHasher

__all__ = ["GeoPackageStore"]

_SNAP_TABLE = re.compile(r"^[a-z][a-z0-9_]*__s\d+$")
_GPKG_APP_ID = 0x47504B47
_GPKG_USER_VERSION = 10200  # 1.2: read by every GDAL from 2.2 on, incl. Debian 12 ogrinfo

_GPKG_CORE = [
    """CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
        organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
        definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
        identifier TEXT UNIQUE, description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    # split by concatenation so the DDL that SQLite stores (and GDAL may read) stays as it was
    """CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
        geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, """
    """m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT uk_gc_table_name UNIQUE (table_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined cartesian SRS', -1, 'NONE', -1,
        'undefined', 'undefined cartesian coordinate reference system')""",
    """INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined geographic SRS', 0, 'NONE', 0,
        'undefined', 'undefined geographic coordinate reference system')""",
]


def _writer_alive(owner: tuple[Any, Any] | None) -> bool:
    """Whether the process that started writing a staging table still runs (on this host)."""
    if owner is None:
        return False
    pid, host = owner
    if host != socket.gethostname():
        return True  # another machine's writer: never ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wgs84_row() -> tuple[Any, ...]:
    from pyproj import CRS

    return (
        "WGS 84 geodetic",
        4326,
        "EPSG",
        4326,
        CRS.from_epsg(4326).to_wkt("WKT1_GDAL"),
        "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid",
    )


class _FileLock:
    """Readers–writer lock of one workspace file inside this process (writers first).

    The writer side is reentrant for its thread, as transactions nest and a write may run
    GDAL reads of its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        self._waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                own = True
            else:
                own = False
                while self._writer is not None or self._waiting:
                    self._cond.wait()
                self._readers += 1
        try:
            yield
        finally:
            if not own:
                with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()

    def acquire_write(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
                return
            self._waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer, self._depth = me, 1

    def release_write(self) -> None:
        with self._cond:
            if self._writer != threading.get_ident():
                return
            self._depth -= 1
            if self._depth == 0:
                self._writer = None
                self._cond.notify_all()


_FILE_LOCKS: dict[str, _FileLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> _FileLock:
    key = os.path.realpath(path)
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, _FileLock())


_LOCKED_RETRIES = (0.5, 1.0, 2.0, 4.0)
_READ_ONLY_SQL = re.compile(r"^\s*(SELECT|WITH|EXPLAIN)\b", re.IGNORECASE)


class GeoPackageStore(SQLStore):
    """A workspace in one GeoPackage file."""

    backend = "gpkg"

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.uri = str(self.path)
        self._lock = _file_lock(self.path)
        if not self.path.exists():
            if not create:
                raise StoreError(
                    f"工作空间不存在: {self.path}",
                    key="workspace_not_found",
                    file=str(self.path),
                    hint="用 yizhangtu init 创建, 或检查 --workspace",
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create_empty()
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            app = self.conn.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"工作空间文件已损坏或不是 GeoPackage: {self.path} ({exc})",
                key="workspace_corrupt",
                file=str(self.path),
                hint="检查文件, 或从备份恢复",
            ) from None
        if app != _GPKG_APP_ID:
            raise StoreError(
                f"不是 GeoPackage 文件: {self.path}", key="workspace_not_gpkg", file=str(self.path)
            )
        self.conn.execute("PRAGMA foreign_keys = OFF")
        self._init_schema()
        self._cleanup_debris()

    def _create_empty(self) -> None:
        tmp = self.path.with_name(self.path.name + ".creating")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(str(tmp))
        try:
            con.execute(f"PRAGMA application_id = {_GPKG_APP_ID}")
            con.execute(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
            for stmt in _GPKG_CORE:
                con.execute(stmt)
            con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", _wgs84_row())
            con.commit()
        finally:
            con.close()
        tmp.replace(self.path)  # atomic: a half-created workspace is never visible

    @override
    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # already closed
            pass

    # -- SQL plumbing ---------------------------------------------------------
    def _begin(self) -> None:
        self._lock.acquire_write()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release_write()
            raise

    def _commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        finally:
            self._lock.release_write()

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._lock.release_write()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.conn.in_transaction or _READ_ONLY_SQL.match(sql):
            return self.conn.execute(sql, tuple(params)).rowcount
        # an autocommit write is a transaction of its own
        self._lock.acquire_write()
        try:
            return self.conn.execute(sql, tuple(params)).rowcount
        finally:
            self._lock.release_write()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def _table_exists(self, table: str) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM sqlite_master WHERE name = ? AND type IN ('table', 'view')", (table,)
            )
        )

    # -- feature tables ---------------------------------------------------------
    def _drop_snapshot_table(self, table: str) -> None:
        for (name,) in self._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?",
            (f"rtree_{table}_%",),
        ):
            if re.fullmatch(rf"rtree_{re.escape(table)}_[A-Za-z0-9_]+", name):
                self._execute(f'DROP TABLE IF EXISTS "{name}"')
        self._execute(f'DROP TABLE IF EXISTS "{table}"')
        for meta in (
            "gpkg_geometry_columns",
            "gpkg_extensions",
            "gpkg_ogr_contents",
            "gpkg_contents",
        ):
            if self._table_exists(meta):
                self._execute(f"DELETE FROM {meta} WHERE table_name = ?", (table,))

    def _cleanup_debris(self) -> None:
        """Drop snapshot tables that were written but never registered (an interrupted import).

        A table still being written by a live process (recorded in ``yz_staging`` with its pid
        on this host) is left alone, so a second process opening the workspace never deletes
        another's import in progress.
        """
        self._execute(
            "CREATE TABLE IF NOT EXISTS yz_staging "
            "(table_name TEXT PRIMARY KEY, pid INTEGER, host TEXT, started_at TEXT)"
        )
        registered = {r[0] for r in self._query("SELECT table_name FROM yz_snapshots")}
        candidates = {
            r[0] for r in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        candidates |= {r[0] for r in self._query("SELECT table_name FROM gpkg_contents")}
        owners = {
            r[0]: (r[1], r[2]) for r in self._query("SELECT table_name, pid, host FROM yz_staging")
        }
        debris = sorted(
            t
            for t in candidates
            if _SNAP_TABLE.match(t) and t not in registered and not _writer_alive(owners.get(t))
        )
        stale = [t for t, owner in owners.items() if not _writer_alive(owner)]
        for f in self.path.parent.glob(f".{glob_escape(self.path.name)}.*.staging.gpkg*"):
            m = re.fullmatch(rf"\.{re.escape(self.path.name)}\..+\.(\d+)\.staging\.gpkg.*", f.name)
            if m and not _writer_alive((int(m.group(1)), socket.gethostname())):
                f.unlink(missing_ok=True)
        if debris or stale:
            with self.transaction():
                for t in debris:
                    self._drop_snapshot_table(t)
                for t in stale:
                    self._execute("DELETE FROM yz_staging WHERE table_name = ?", (t,))

    def _set_current_view(
        self, layer: str, table: str | None, crs: str | None, geometry_type: str | None
    ) -> None:
        self._execute(f'DROP VIEW IF EXISTS "{layer}"')
        self._execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (layer,))
        self._execute("DELETE FROM gpkg_contents WHERE table_name = ?", (layer,))
        if table is None:
            return
        geom_rows = self._query(
            "SELECT column_name, geometry_type_name, srs_id, z, m FROM gpkg_geometry_columns "
            "WHERE table_name = ?",
            (table,),
        )
        if not geom_rows:
            raise StoreError(f"快照表 {table} 未登记几何列", key="store_inconsistent")
        gcol, gtype, srs_id, z, m = geom_rows[0]
        cols = [r[1] for r in self._query(f'PRAGMA table_info("{table}")')]
        others = ", ".join(f'"{c}"' for c in cols if c != "fid")
        # GDAL takes a view's first integer column named OGC_FID as the feature id.
        self._execute(f'CREATE VIEW "{layer}" AS SELECT fid AS OGC_FID, {others} FROM "{table}"')
        ext = self._query(
            "SELECT min_x, min_y, max_x, max_y, description FROM gpkg_contents "
            "WHERE table_name = ?",
            (table,),
        )
        bbox = ext[0][:4] if ext else (None, None, None, None)
        title = self._query("SELECT title FROM yz_layers WHERE name = ?", (layer,))
        self._execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change, min_x, min_y, max_x, max_y, srs_id) "
            "VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                layer,
                layer,
                (title[0][0] if title and title[0][0] else layer) + " (当前快照)",
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                *bbox,
                srs_id,
            ),
        )
        self._execute(
            "INSERT INTO gpkg_geometry_columns "
            "(table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (?, ?, ?, ?, ?, ?)",
            (layer, gcol, gtype, srs_id, z, m),
        )

    @override
    def write_snapshot(
        self,
        spec: LayerSpec,
        chunks: Iterable[gpd.GeoDataFrame],
        *,
        label: str,
        obs_date: str | None = None,
        source_file: str | None = None,
        source_hash: str | None = None,
        source_crs: str | None = None,
        notes: Mapping[str, Any] | None = None,
        actor: str = "unknown",
        geometry_type: str | None = None,
        progress: Any = None,
    ) -> SnapshotInfo:
        if self._query(
            "SELECT 1 FROM yz_snapshots WHERE layer = ? AND label = ?", (spec.name, label)
        ):
            raise ConflictError(
                f"图层 {spec.name} 已有快照 {label}",
                key="snapshot_exists",
                field="snapshot",
                hint="快照不可覆盖; 请换一个 --snapshot 标签",
            )
        sid = self._next_snapshot_id()
        table = f"{spec.name}__s{sid}"
        with self.transaction():
            if self._query("SELECT 1 FROM yz_staging WHERE table_name = ?", (table,)):
                raise ConflictError(
                    f"另一个进程正在导入 {spec.name}",
                    key="import_in_progress",
                    hint="等待其完成后重试",
                )
            self._drop_snapshot_table(table)
            self._execute(
                "INSERT INTO yz_staging (table_name, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (
                    table,
                    os.getpid(),
                    socket.gethostname(),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
        obs_date = obs_date or normalise_obs_date(label)
        hasher = ContentHasher()
        crs: str | None = None
        types: set[str] = set()
        written = 0
        staging = self._staging_path(table)
        try:
            staging.unlink(missing_ok=True)
            for chunk in chunks:
                if len(chunk) == 0:
                    continue
                chunk = normalise_chunk(chunk, geometry_type)
                if crs is None:
                    crs = chunk.crs.to_string() if chunk.crs is not None else None
                types |= set(chunk.geom_type.dropna().unique())
                hasher.update(chunk)
                gt = geometry_type or declared_geometry_type(set(chunk.geom_type.dropna().unique()))
                pyogrio.write_dataframe(
                    chunk.reset_index(drop=True),
                    staging,
                    layer=table,
                    driver="GPKG",
                    append=written > 0,
                    geometry_type=gt if written == 0 else None,
                    layer_options={
                        "GEOMETRY_NAME": "geom",
                        "FID": "fid",
                        "DESCRIPTION": spec.title or spec.name,
                    }
                    if written == 0
                    else None,
                )
                written += len(chunk)
                if progress is not None:
                    progress(written)
            if written == 0:
                from yizhangtu.errors import InputError

                raise InputError(
                    f"没有要素可写入图层 {spec.name}",
                    key="empty_layer",
                    file=source_file,
                    hint="检查源文件是否为空或过滤条件",
                )
            snap = SnapshotInfo(
                id=sid,
                layer=spec.name,
                label=label,
                obs_date=obs_date,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                created_by=actor,
                source_file=source_file,
                source_hash=source_hash,
                source_crs=source_crs,
                crs=crs or "",
                content_hash=hasher.hexdigest(),
                feature_count=written,
                geometry_type=geometry_type or declared_geometry_type(types),
                table_name=table,
                notes=dict(notes or {}),
            )
            self._copy_in(staging, table, snap, spec, actor)
        except BaseException:
            try:
                self._rollback()
                with self.transaction():
                    self._drop_snapshot_table(table)
                    self._execute("DELETE FROM yz_staging WHERE table_name = ?", (table,))
            except Exception:  # the next open cleans up what is left
                pass
            raise
        finally:
            staging.unlink(missing_ok=True)
        return snap

    def _staging_path(self, table: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{table}.{os.getpid()}.staging.gpkg")

    def _copy_in(
        self, staging: Path, table: str, snap: SnapshotInfo, spec: LayerSpec, actor: str
    ) -> None:
        """Copy a staged feature table (rows, R-tree, metadata) in and register it, atomically."""
        self.conn.execute("ATTACH DATABASE ? AS stg", (str(staging),))
        try:
            with self.transaction():
                ddl = dict(
                    self._query(
                        "SELECT name, sql FROM stg.sqlite_master WHERE type = 'table' "
                        "AND (name = ? OR tbl_name = ?)",
                        (table, table),
                    )
                )
                self._execute(ddl[table])
                self._execute(f'INSERT INTO main."{table}" SELECT * FROM stg."{table}"')
                for (name,) in self._query(
                    "SELECT name FROM stg.sqlite_master WHERE type = 'table' AND name LIKE ? "
                    "AND sql LIKE 'CREATE VIRTUAL TABLE%'",
                    (f"rtree_{table}_%",),
                ):
                    cols = [r[1] for r in self._query(f'PRAGMA stg.table_info("{name}")')]
                    self._execute(
                        f'CREATE VIRTUAL TABLE main."{name}" USING rtree({", ".join(cols)})'
                    )
                    self._execute(f'INSERT INTO main."{name}" SELECT * FROM stg."{name}"')
                for meta in ("gpkg_extensions", "gpkg_ogr_contents"):
                    if not self._table_exists(meta) and self._query(
                        "SELECT 1 FROM stg.sqlite_master WHERE name = ?", (meta,)
                    ):
                        self._execute(
                            self._query(
                                "SELECT sql FROM stg.sqlite_master WHERE name = ?", (meta,)
                            )[0][0]
                        )
                self._copy_srs()
                for meta in (
                    "gpkg_contents",
                    "gpkg_geometry_columns",
                    "gpkg_extensions",
                    "gpkg_ogr_contents",
                ):
                    if not self._query("SELECT 1 FROM stg.sqlite_master WHERE name = ?", (meta,)):
                        continue
                    names = ", ".join(
                        f'"{r[1]}"' for r in self._query(f'PRAGMA main.table_info("{meta}")')
                    )
                    self._execute(
                        f"INSERT INTO main.{meta} ({names}) SELECT {names} FROM stg.{meta} "
                        "WHERE table_name = ?",
                        (table,),
                    )
                # last, so that they never fire here: GDAL's R-tree triggers call GeoPackage
                # SQL functions (ST_MinX …) that only GDAL and QGIS connections define
                for (sql,) in self._query(
                    "SELECT sql FROM stg.sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                    (table,),
                ):
                    self._execute(sql)
                self._register_snapshot(spec, snap, actor)
                self._execute("DELETE FROM yz_staging WHERE table_name = ?", (table,))
        finally:
            self.conn.execute("DETACH DATABASE stg")

    def _copy_srs(self) -> None:
        have = {
            r[0]: r[1:]
            for r in self._query(
                "SELECT srs_id, organization, organization_coordsys_id FROM gpkg_spatial_ref_sys"
            )
        }
        cols = ", ".join(
            f'"{r[1]}"' for r in self._query('PRAGMA main.table_info("gpkg_spatial_ref_sys")')
        )
        for row in self._query(
            "SELECT srs_id, organization, organization_coordsys_id FROM stg.gpkg_spatial_ref_sys"
        ):
            if row[0] not in have:
                self._execute(
                    f"INSERT INTO main.gpkg_spatial_ref_sys ({cols}) "
                    f"SELECT {cols} FROM stg.gpkg_spatial_ref_sys WHERE srs_id = ?",
                    (row[0],),
                )
            elif row[0] > 0 and tuple(have[row[0]]) != tuple(row[1:]):
                raise StoreError(
                    f"坐标系编号 {row[0]} 在工作空间中已另有定义 ({have[row[0]]}),"
                    f" 与 {row[1:]} 冲突",
                    key="srs_conflict",
                    hint="以 EPSG 坐标系存储 (YIZHANGTU_STORAGE_CRS), 或联系管理员",
                )

    @override
    def read_layer(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        as_of: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        import time

        import pyogrio.errors

        snap = self.resolve_snapshot(layer, snapshot, as_of=as_of)
        # another process's commit can hold the file longer than GDAL's busy wait
        for delay in (*_LOCKED_RETRIES, None):
            try:
                with self._lock.reading():
                    gdf = pyogrio.read_dataframe(
                        self.path,
                        layer=snap.table_name,
                        bbox=bbox,
                        columns=list(columns) if columns is not None else None,
                    )
                break
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
                if delay is None or "locked" not in str(exc):
                    raise
                time.sleep(delay)
        gdf.attrs["snapshot_id"] = snap.id
        gdf.attrs["content_hash"] = snap.content_hash
        return gdf

    # -- plain tables -----------------------------------------------------------
    def _write_frame_table(self, table: str, df: pd.DataFrame) -> None:
        kinds = column_kinds(df)
        sqltype = {
            "int": "INTEGER",
            "float": "REAL",
            "bool": "BOOLEAN",
            "datetime": "DATETIME",
            "str": "TEXT",
        }
        self._execute(f'DROP TABLE IF EXISTS "{table}"')
        self._execute("DELETE FROM gpkg_contents WHERE table_name = ?", (table,))
        cols = ", ".join(f'"{n}" {sqltype[k]}' for n, k in kinds)
        self._execute(
            f'CREATE TABLE "{table}" '
            f"(fid INTEGER PRIMARY KEY AUTOINCREMENT{', ' + cols if cols else ''})"
        )
        if kinds:
            names = ", ".join(f'"{n}"' for n, _ in kinds)
            marks = ", ".join("?" * len(kinds))
            rows = [
                tuple(py_value(v, k) for v, (_, k) in zip(row, kinds, strict=True))
                for row in df.itertuples(index=False, name=None)
            ]
            self.conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
        # registered as an attributes table so QGIS lists it too
        self._execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) "
            "VALUES (?, 'attributes', ?, ?)",
            (table, table, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")),
        )
        self._execute(
            "INSERT OR REPLACE INTO yz_meta (key, value) VALUES (?, ?)",
            (f"kinds:{table}", json.dumps(kinds)),
        )

    def _read_frame_table(self, table: str) -> pd.DataFrame:
        df = pd.read_sql_query(f'SELECT * FROM "{table}" ORDER BY fid', self.conn).drop(
            columns=["fid"]
        )
        rows = self._query("SELECT value FROM yz_meta WHERE key = ?", (f"kinds:{table}",))
        kinds = [tuple(k) for k in json.loads(rows[0][0])] if rows else []
        return restore_kinds(df, kinds)

    # -- feature queries for the web adapters (added for issue 10) ------------------
    # Reads go through plain sqlite3 so that the attribute filter, the R-tree test, the
    # keyset and the LIMIT all run inside SQLite; geometry blobs are decoded here.
    sql_dialect = "sqlite"

    _GPKG_KINDS = (
        ("BOOLEAN", "bool"),
        ("INT", "int"),
        ("REAL", "float"),
        ("FLOAT", "float"),
        ("DOUBLE", "float"),
        ("NUMERIC", "float"),
        ("DATE", "datetime"),
    )
    _ENVELOPE_BYTES = (0, 32, 48, 48, 64)

    def _snapshot_layout(self, snap: SnapshotInfo) -> tuple[list[tuple[str, str]], str, str | None]:
        """Return (attribute kinds, geometry column, R-tree table or None) of a snapshot table.

        Snapshot tables are immutable, so the layout is cached.
        """
        cache = self.__dict__.setdefault("_layout_cache", {})
        table = snap.table_name
        key = (
            table,
            snap.created_at,
            snap.content_hash,
        )  # a deleted layer's table name can come back
        if key in cache:
            return cache[key]
        geom_rows = self._query(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (table,)
        )
        gcol = geom_rows[0][0] if geom_rows else "geom"
        schema: list[tuple[str, str]] = []
        for _cid, name, typ, *_ in self._query(f'PRAGMA table_info("{table}")'):
            if name in ("fid", gcol):
                continue
            t = (typ or "").upper()
            kind = next((k for key, k in self._GPKG_KINDS if key in t), "str")
            schema.append((name, kind))
        rtree = f"rtree_{table}_{gcol}"
        has_rtree = bool(self._query("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)))
        cache[key] = (schema, gcol, rtree if has_rtree else None)
        return cache[key]

    @override
    def feature_schema(
        self, layer: str, *, snapshot: str | int | None = None
    ) -> list[tuple[str, str]]:
        snap = self.resolve_snapshot(layer, snapshot)
        return list(self._snapshot_layout(snap)[0])

    def _bbox_clause(
        self, snap: SnapshotInfo, bbox: tuple[float, float, float, float]
    ) -> tuple[str, list[Any]]:
        _, _, rtree = self._snapshot_layout(snap)
        if rtree is None:
            return "1 = 1", []  # no index: the caller's exact refinement does the work
        return (
            f'"fid" IN (SELECT id FROM "{rtree}" '
            "WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)",
            [float(bbox[2]), float(bbox[0]), float(bbox[3]), float(bbox[1])],
        )

    @override
    def spatial_filter_sql(
        self,
        snapshot: SnapshotInfo,
        wkb: bytes,
        bounds: tuple[float, float, float, float],
        op: str = "intersects",
    ) -> tuple[str, list[Any], bool]:
        # intersects, within and contains all imply intersecting bounding boxes
        sql, params = self._bbox_clause(snapshot, bounds)
        return sql, params, False

    @override
    def feature_extent(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        jurisdictions: Sequence[str] | None = None,
    ) -> tuple[float, float, float, float] | None:
        snap, _schema, _gcol, where, args = self._feature_sql(
            layer, snapshot, None, None, (), None, jurisdictions
        )
        _, _, rtree = self._snapshot_layout(snap)
        if rtree is None:
            gdf, _ = self.query_features(layer, snapshot=snap.id, jurisdictions=jurisdictions)
            return tuple(float(v) for v in gdf.total_bounds) if len(gdf) else None  # type: ignore[return-value]
        sql = f'SELECT MIN(minx), MIN(miny), MAX(maxx), MAX(maxy) FROM "{rtree}"'
        if where:
            sql += f' WHERE id IN (SELECT "fid" FROM "{snap.table_name}"{where})'
        row = self.conn.execute(sql, args).fetchone()
        return (
            None
            if row is None or row[0] is None
            else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        )

    def _decode_geometries(self, blobs: Sequence[Any]) -> Any:
        import numpy as np
        import shapely

        out = np.empty(len(blobs), dtype=object)
        sizes = self._ENVELOPE_BYTES
        for i, b in enumerate(blobs):
            if b is None or len(b) < 8:
                out[i] = None
                continue
            env = (b[3] >> 1) & 7
            out[i] = bytes(b[8 + (sizes[env] if env < len(sizes) else 0) :])
        return shapely.from_wkb(out, on_invalid="ignore")

    def _feature_sql(
        self,
        layer: str,
        snapshot: str | int | None,
        bbox: tuple[float, float, float, float] | None,
        where_sql: str | None,
        params: Sequence[Any],
        after_fid: int | None,
        jurisdictions: Sequence[str] | None,
    ) -> tuple[SnapshotInfo, list[tuple[str, str]], str, str, list[Any]]:
        info = self.layer(layer)
        snap = self.resolve_snapshot(layer, snapshot)
        schema, gcol, _ = self._snapshot_layout(snap)
        parts, args = self._feature_filters(
            info,
            schema,
            where_sql=where_sql,
            params=params,
            after_fid=after_fid,
            jurisdictions=jurisdictions,
        )
        if bbox is not None:
            sql, p = self._bbox_clause(snap, bbox)
            parts.insert(0, sql)
            args[:0] = p
        where = (" WHERE " + " AND ".join(parts)) if parts else ""
        return snap, schema, gcol, where, args

    @override
    def query_feature_rows(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        where_sql: str | None = None,
        params: Sequence[Any] = (),
        after_fid: int | None = None,
        limit: int | None = None,
        columns: Sequence[str] | None = None,
        jurisdictions: Sequence[str] | None = None,
    ) -> FeatureRows:
        snap, schema, gcol, where, args = self._feature_sql(
            layer, snapshot, bbox, where_sql, params, after_fid, jurisdictions
        )
        kinds = [(n, k) for n, k in schema if columns is None or n in columns]
        sel = ", ".join(
            ['"fid"', *(self._quote_ident(n) for n, _ in kinds), self._quote_ident(gcol)]
        )
        sql = f'SELECT {sel} FROM "{snap.table_name}"{where} ORDER BY "fid"'
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = self.conn.execute(sql, args).fetchall()
        nxt = int(rows[-1][0]) if limit is not None and rows and len(rows) >= limit else None
        return FeatureRows(
            snapshot=snap,
            columns=[n for n, _ in kinds],
            kinds=[k for _, k in kinds],
            fids=[int(r[0]) for r in rows],
            rows=[r[1:-1] for r in rows],
            geometries=self._decode_geometries([r[-1] for r in rows]),
            next_fid=nxt,
        )

    @override
    def count_features(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        where_sql: str | None = None,
        params: Sequence[Any] = (),
        jurisdictions: Sequence[str] | None = None,
        estimate_above: int | None = None,
    ) -> tuple[int | None, bool]:
        snap, _schema, _gcol, where, args = self._feature_sql(
            layer, snapshot, bbox, where_sql, params, None, jurisdictions
        )
        if not where:
            return snap.feature_count, True
        if estimate_above is not None and snap.feature_count > estimate_above:
            return None, False  # SQLite has no planner estimate; counting would scan the layer
        return int(
            self.conn.execute(f'SELECT COUNT(*) FROM "{snap.table_name}"{where}', args).fetchone()[
                0
            ]
        ), True
