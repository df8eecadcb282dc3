"""PostGIS backend for multi-user work.

The layout mirrors the GeoPackage backend: ``<layer>__s<id>`` snapshot tables, a view
``<layer>`` of the current one, and the same ``yz_*`` metadata tables. Everything of an
import, from COPY to catalogue and audit, is one PostgreSQL transaction; writers are
serialised by an advisory lock so that the audit chain stays linear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from typing_extensions import override

from yizhangtu.errors import ConflictError, InputError, StoreError
from yizhangtu.store._frames import (
    column_kinds,
    declared_geometry_type,
    normalise_chunk,
    py_value,
    restore_kinds,
)
from yizhangtu.store.base import FeatureRows, LayerSpec, SnapshotInfo, SQLStore, normalise_obs_date
from yizhangtu.store.hashing import ContentHasher

__all__ = ["PostGISStore"]

_LOCK_KEY = 7_355_608_2035
_PGTYPE = {
    "int": "bigint",
    "float": "double precision",
    "bool": "boolean",
    "datetime": "timestamptz",
    "str": "text",
}
_SNAP_TABLE = re.compile(r"^[a-z][a-z0-9_]*__s\d+$")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostGISStore(SQLStore):
    """A workspace in a PostgreSQL database with PostGIS (one schema)."""

    backend = "postgis"
    ph = "%s"

    def __init__(self, dsn: str, *, schema: str = "public") -> None:
        import psycopg

        self.uri = dsn
        self.schema = schema
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"无法连接 PostGIS 工作空间: {exc}".strip(),
                key="postgis_unreachable",
                hint="检查连接串、服务是否启动及权限",
            ) from None
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            raise StoreError(
                f"数据库没有 PostGIS 扩展: {exc}",
                key="postgis_missing",
                hint="apt-get install postgresql-15-postgis-3 后执行 CREATE EXTENSION postgis",
            ) from None
        if schema != "public":
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
        self.conn.execute(f"SET search_path TO {_q(schema)}, public")
        self._init_schema()
        self._cleanup_debris()

    @override
    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # already closed
            pass

    # -- SQL plumbing ---------------------------------------------------------
    def _begin(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    @staticmethod
    def _pg(sql: str) -> str:
        return sql.replace("?", "%s")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.execute(self._pg(sql), tuple(params))
        return cur.rowcount

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._pg(sql), tuple(params))
        return list(cur.fetchall())

    def _table_exists(self, table: str) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ? AND c.relname = ?",
                (self.schema, table),
            )
        )

    # -- feature tables -----------------------------------------------------------
    def _drop_snapshot_table(self, table: str) -> None:
        self._execute(f"DROP TABLE IF EXISTS {_q(table)} CASCADE")
        self._execute("DELETE FROM yz_meta WHERE key = ?", (f"kinds:{table}",))

    def _cleanup_debris(self) -> None:
        # Unregistered tables only arise from a crash before COMMIT, which PostgreSQL rolls
        # back entirely; this is a guard against manual copies.
        registered = {r[0] for r in self._query("SELECT table_name FROM yz_snapshots")}
        names = [
            r[0]
            for r in self._query(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?", (self.schema,)
            )
        ]
        debris = [t for t in names if _SNAP_TABLE.match(t) and t not in registered]
        if debris:
            with self.transaction():
                for t in debris:
                    self._drop_snapshot_table(t)

    def _set_current_view(
        self, layer: str, table: str | None, crs: str | None, geometry_type: str | None
    ) -> None:
        self._execute(f"DROP VIEW IF EXISTS {_q(layer)}")
        if table is not None:
            self._execute(f"CREATE VIEW {_q(layer)} AS SELECT * FROM {_q(table)}")
            title = self._query("SELECT title FROM yz_layers WHERE name = ?", (layer,))
            if title and title[0][0]:
                self._execute(
                    f"COMMENT ON VIEW {_q(layer)} IS {self._literal(title[0][0] + ' (当前快照)')}"
                )

    @staticmethod
    def _literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    @staticmethod
    def _srid(crs: Any) -> int:
        epsg = CRS.from_user_input(crs).to_epsg()
        if epsg is None:
            raise InputError(
                f"PostGIS 工作空间需要 EPSG 编码的坐标系, 而不是: {crs}",
                key="crs_no_epsg",
                hint="用 --crs 指定 EPSG 编码, 或设置 YIZHANGTU_STORAGE_CRS",
            )
        return int(epsg)

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
        obs_date = obs_date or normalise_obs_date(label)
        hasher = ContentHasher()
        written = 0
        crs: str | None = None
        types: set[str] = set()
        kinds: list[tuple[str, str]] | None = None
        with self.transaction():
            sid = self._next_snapshot_id()
            table = f"{spec.name}__s{sid}"
            for chunk in chunks:
                if len(chunk) == 0:
                    continue
                chunk = normalise_chunk(chunk, geometry_type)
                attrs = chunk.drop(columns=[chunk.geometry.name])
                if kinds is None:
                    crs = chunk.crs.to_string() if chunk.crs is not None else None
                    srid = self._srid(chunk.crs)
                    kinds = column_kinds(attrs)
                    gt = geometry_type or declared_geometry_type(
                        set(chunk.geom_type.dropna().unique())
                    )
                    pg_gt = "Geometry" if gt == "Geometry" else gt
                    cols = ", ".join(f"{_q(n)} {_PGTYPE[k]}" for n, k in kinds)
                    self._execute(
                        f"CREATE TABLE {_q(table)} (fid bigint PRIMARY KEY"
                        f"{', ' + cols if cols else ''}, geom geometry({pg_gt}, {srid}))"
                    )
                types |= set(chunk.geom_type.dropna().unique())
                hasher.update(chunk)
                names = [n for n, _ in kinds]
                wkb = shapely.to_wkb(
                    np.asarray(chunk.geometry.values, dtype=object),
                    hex=True,
                    include_srid=False,
                    output_dimension=2,
                )
                values = (
                    attrs[names].astype(object).to_numpy()
                    if names
                    else np.empty((len(attrs), 0), dtype=object)
                )
                col_sql = ", ".join(["fid", *(_q(n) for n in names), "geom"])
                with (
                    self.conn.cursor() as cur,
                    cur.copy(f"COPY {_q(table)} ({col_sql}) FROM STDIN") as cp,
                ):
                    for i in range(len(chunk)):
                        row: list[Any] = [written + i + 1]
                        row.extend(
                            py_value(v, k) for v, (_, k) in zip(values[i], kinds, strict=True)
                        )
                        row.append(f"SRID={srid};{wkb[i]}" if wkb[i] is not None else None)
                        cp.write_row(row)
                written += len(chunk)
                if progress is not None:
                    progress(written)
            if written == 0:
                raise InputError(
                    f"没有要素可写入图层 {spec.name}",
                    key="empty_layer",
                    file=source_file,
                    hint="检查源文件是否为空或过滤条件",
                )
            self._execute(
                "INSERT INTO yz_meta (key, value) VALUES (?, ?)",
                (f"kinds:{table}", json.dumps(kinds)),
            )
            self._execute(
                f"CREATE INDEX {_q(table + '_geom_idx')} ON {_q(table)} USING gist (geom)"
            )
            self._execute(f"ANALYZE {_q(table)}")
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
            self._register_snapshot(spec, snap, actor)
        return snap

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
        snap = self.resolve_snapshot(layer, snapshot, as_of=as_of)
        table = snap.table_name
        all_cols = [
            r[0]
            for r in self._query(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                (self.schema, table),
            )
        ]
        attrs = [
            c for c in all_cols if c not in ("fid", "geom") and (columns is None or c in columns)
        ]
        sel = ", ".join([*(_q(c) for c in attrs), "ST_AsBinary(geom) AS geom"])
        sql = f"SELECT {sel} FROM {_q(table)}"
        params: list[Any] = []
        if bbox is not None:
            sql += " WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, ST_SRID(geom))"
            params.extend(bbox)
        sql += " ORDER BY fid"
        cur = self.conn.execute(sql, params)
        rows = cur.fetchall()
        df = pd.DataFrame(rows, columns=[*attrs, "geom"])
        geoms = shapely.from_wkb(
            np.array([bytes(g) if g is not None else None for g in df.pop("geom")], dtype=object)
        )
        kinds_row = self._query("SELECT value FROM yz_meta WHERE key = ?", (f"kinds:{table}",))
        gdf = gpd.GeoDataFrame(
            df, geometry=gpd.GeoSeries(geoms, crs=snap.crs or None), crs=snap.crs or None
        )
        if kinds_row:
            restore_kinds(gdf, [tuple(k) for k in json.loads(kinds_row[0][0])])
        gdf.attrs["snapshot_id"] = snap.id
        gdf.attrs["content_hash"] = snap.content_hash
        return gdf

    # -- plain tables ---------------------------------------------------------------
    def _write_frame_table(self, table: str, df: pd.DataFrame) -> None:
        kinds = column_kinds(df)
        self._execute(f"DROP TABLE IF EXISTS {_q(table)}")
        cols = ", ".join(f"{_q(n)} {_PGTYPE[k]}" for n, k in kinds)
        self._execute(
            f"CREATE TABLE {_q(table)} (fid bigserial PRIMARY KEY{', ' + cols if cols else ''})"
        )
        if kinds:
            names = ", ".join(_q(n) for n, _ in kinds)
            with (
                self.conn.cursor() as cur,
                cur.copy(f"COPY {_q(table)} ({names}) FROM STDIN") as cp,
            ):
                for row in df.itertuples(index=False, name=None):
                    cp.write_row([py_value(v, k) for v, (_, k) in zip(row, kinds, strict=True)])
        self._execute("DELETE FROM yz_meta WHERE key = ?", (f"kinds:{table}",))
        self._execute(
            "INSERT INTO yz_meta (key, value) VALUES (?, ?)", (f"kinds:{table}", json.dumps(kinds))
        )

    def _read_frame_table(self, table: str) -> pd.DataFrame:
        cur = self.conn.execute(f"SELECT * FROM {_q(table)} ORDER BY fid")
        names = [d.name for d in cur.description or []]
        df = pd.DataFrame(cur.fetchall(), columns=names).drop(columns=["fid"])
        rows = self._query("SELECT value FROM yz_meta WHERE key = ?", (f"kinds:{table}",))
        kinds = [tuple(k) for k in json.loads(rows[0][0])] if rows else []
        return restore_kinds(df, kinds)

    # -- feature queries for the web adapters (added for issue 10) ------------------
    sql_dialect = "postgresql"

    @staticmethod
    def _quote_ident(name: str) -> str:
        # these queries run with bound parameters, where psycopg reads every % as a placeholder
        return _q(name).replace("%", "%%")

    def _snapshot_layout(self, snap: SnapshotInfo) -> list[tuple[str, str]]:
        """Attribute kinds of an immutable snapshot table (from its recorded kinds)."""
        cache = self.__dict__.setdefault("_layout_cache", {})
        key = (
            snap.table_name,
            snap.created_at,
            snap.content_hash,
        )  # a deleted layer's table name can come back
        if key not in cache:
            rows = self._query(
                "SELECT value FROM yz_meta WHERE key = ?", (f"kinds:{snap.table_name}",)
            )
            if rows:
                cache[key] = [(str(n), str(k)) for n, k in json.loads(rows[0][0])]
            else:
                cols = self._query(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    (self.schema, snap.table_name),
                )
                cache[key] = [(r[0], "str") for r in cols if r[0] not in ("fid", "geom")]
        return cache[key]

    @override
    def feature_schema(
        self, layer: str, *, snapshot: str | int | None = None
    ) -> list[tuple[str, str]]:
        return list(self._snapshot_layout(self.resolve_snapshot(layer, snapshot)))

    @override
    def spatial_filter_sql(
        self,
        snapshot: SnapshotInfo,
        wkb: bytes,
        bounds: tuple[float, float, float, float],
        op: str = "intersects",
    ) -> tuple[str, list[Any], bool]:
        fn = {"intersects": "ST_Intersects", "within": "ST_Within", "contains": "ST_Contains"}.get(
            op
        )
        if fn is None:
            raise InputError(f"不支持的空间关系: {op}", key="bad_spatial_op")
        srid = self._srid(snapshot.crs)
        return f'{fn}("geom", ST_GeomFromWKB(%s, {int(srid)}))', [bytes(wkb)], True

    @override
    def feature_extent(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        jurisdictions: Sequence[str] | None = None,
    ) -> tuple[float, float, float, float] | None:
        snap, _schema, where, args = self._feature_sql(
            layer, snapshot, None, None, (), None, jurisdictions
        )
        row = self.conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            f'FROM (SELECT ST_Extent("geom") AS e FROM {_q(snap.table_name)}{where}) q',
            args,
        ).fetchone()
        return (
            None
            if row is None or row[0] is None
            else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        )

    def _feature_sql(
        self,
        layer: str,
        snapshot: str | int | None,
        bbox: tuple[float, float, float, float] | None,
        where_sql: str | None,
        params: Sequence[Any],
        after_fid: int | None,
        jurisdictions: Sequence[str] | None,
    ) -> tuple[SnapshotInfo, list[tuple[str, str]], str, list[Any]]:
        info = self.layer(layer)
        snap = self.resolve_snapshot(layer, snapshot)
        schema = self._snapshot_layout(snap)
        parts, args = self._feature_filters(
            info,
            schema,
            where_sql=where_sql,
            params=params,
            after_fid=after_fid,
            jurisdictions=jurisdictions,
        )
        if bbox is not None:
            parts.insert(
                0, f'"geom" && ST_MakeEnvelope(%s, %s, %s, %s, {int(self._srid(snap.crs))})'
            )
            args[:0] = [float(v) for v in bbox]
        where = (" WHERE " + " AND ".join(parts)) if parts else ""
        return snap, schema, where, args

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
        snap, schema, where, args = self._feature_sql(
            layer, snapshot, bbox, where_sql, params, after_fid, jurisdictions
        )
        kinds = [(n, k) for n, k in schema if columns is None or n in columns]
        sel = ", ".join(['"fid"', *(self._quote_ident(n) for n, _ in kinds), 'ST_AsBinary("geom")'])
        sql = f'SELECT {sel} FROM {_q(snap.table_name)}{where} ORDER BY "fid"'
        if limit is not None:
            sql += " LIMIT %s"
            args.append(int(limit))
        rows = self.conn.execute(sql, args).fetchall()
        nxt = int(rows[-1][0]) if limit is not None and rows and len(rows) >= limit else None
        geoms = shapely.from_wkb(
            np.array([bytes(r[-1]) if r[-1] is not None else None for r in rows], dtype=object)
        )
        return FeatureRows(
            snapshot=snap,
            columns=[n for n, _ in kinds],
            kinds=[k for _, k in kinds],
            fids=[int(r[0]) for r in rows],
            rows=[tuple(r[1:-1]) for r in rows],
            geometries=geoms,
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
        snap, _schema, where, args = self._feature_sql(
            layer, snapshot, bbox, where_sql, params, None, jurisdictions
        )
        if not where:
            return snap.feature_count, True
        if estimate_above is not None and snap.feature_count > estimate_above:
            explained = self.conn.execute(
                f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {_q(snap.table_name)}{where}", args
            ).fetchone()
            assert explained is not None  # EXPLAIN always returns one row
            plan = explained[0]
            if isinstance(plan, str):
                plan = json.loads(plan)
            return int(plan[0]["Plan"]["Plan Rows"]), False
        counted = self.conn.execute(
            f"SELECT COUNT(*) FROM {_q(snap.table_name)}{where}", args
        ).fetchone()
        assert counted is not None  # COUNT(*) always returns one row
        return int(counted[0]), True

    @override
    def render_mvt(
        self,
        layer: str,
        *,
        snapshot: str | int | None,
        tile: tuple[int, int, int],
        bbox: tuple[float, float, float, float],
        extent: int = 4096,
        buffer: int = 64,
        tolerance: float = 0.0,
        columns: Sequence[str] | None = None,
        jurisdictions: Sequence[str] | None = None,
    ) -> bytes | None:
        snap, schema, where, args = self._feature_sql(
            layer, snapshot, bbox, None, (), None, jurisdictions
        )
        kinds = [(n, k) for n, k in schema if columns is None or n in columns]
        g = 'ST_Transform("geom", 3857)'
        if tolerance > 0:
            g = f"ST_Simplify({g}, %s, true)"
        z, x, y = tile
        cols = "".join(f", {self._quote_ident(n)}" for n, _ in kinds)
        sql = (
            f"SELECT ST_AsMVT(q, %s, %s, 'geom', 'fid') FROM ("
            f'SELECT "fid"{cols}, '
            f"ST_AsMVTGeom({g}, ST_TileEnvelope(%s, %s, %s), %s, %s, true) AS geom "
            f"FROM {_q(snap.table_name)}{where}) q WHERE q.geom IS NOT NULL"
        )
        head: list[Any] = [layer, int(extent)]
        if tolerance > 0:
            head.append(float(tolerance))
        head.extend([int(z), int(x), int(y), int(extent), int(buffer)])
        row = self.conn.execute(sql, [*head, *args]).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""
