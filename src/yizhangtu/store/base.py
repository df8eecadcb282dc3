"""The store interface: one catalogue, snapshots, tables, records, audit and provenance.

Layout (the same on both backends)
----------------------------------
- ``yz_layers``: catalogue, one row per layer.
- ``yz_snapshots``: one row per immutable snapshot; its features live in the table
  ``<layer>__s<id>``.
- ``<layer>``: a view of the current snapshot, so QGIS (or any GIS) opens it as an
  ordinary layer with the right CRS.
- ``yz_tables`` + ``yzt_<name>``: non-spatial ledger tables.
- ``yz_records``: editable objects (renewal units, tasks …) with a version for optimistic
  locking and the jurisdiction they belong to.
- ``yz_audit``: append-only hash chain, written in the same transaction as each change.
- ``yz_provenance``: provenance records of computed results.
- ``yz_runtime_state``: small internal state of the processes serving the workspace
  (revoked sessions, login failures, background jobs). Not audited: it records no change
  of planning data, and auditing every failed login or job progress step would bury the
  real changes; entries carry an expiry and are purged.

Imports write the snapshot table first (it is invisible until registered) and register it in
one transaction; anything unregistered is staging debris that the next open removes.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import pandas as pd
from typing_extensions import override

from yizhangtu.errors import ConflictError, InputError, NotFoundError, StoreError
from yizhangtu.provenance import ProvenanceRecord, canonical_json, sha256_hex

__all__ = [
    "LAYER_KINDS",
    "AuditRecord",
    "AuditVerification",
    "FeatureRows",
    "LayerInfo",
    "LayerSpec",
    "Record",
    "SQLStore",
    "SnapshotInfo",
    "StateEntry",
    "Store",
    "normalise_obs_date",
    "validate_layer_name",
]

LAYER_KINDS = ("survey", "plan", "control_line", "boundary", "plot", "project", "other")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,46}$")
SCHEMA_VERSION = "1"
GENESIS = "0" * 64


def validate_layer_name(name: str) -> str:
    """Check a layer or table name: lower-case ASCII, digits and ``_``; no ``__``."""
    if not _NAME_RE.match(name or "") or "__" in name:
        raise InputError(
            f"图层名不合法: {name!r}",
            key="bad_layer_name",
            field="layer",
            hint=(
                "图层名用小写英文字母开头, 只含小写字母、数字和单个下划线, 如 survey_dltb; "
                "中文名称请放在 --title"
            ),
        )
    return name


def normalise_obs_date(label: str | None) -> str | None:
    """Observation date from a label or date: '2020' → '2020-12-31' (a year-end survey)."""
    if not label:
        return None
    text = str(label).strip()
    m = re.fullmatch(r"(\d{4})", text)
    if m:
        return f"{m.group(1)}-12-31"
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if m:
        return text
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if m:
        import calendar

        return f"{text}-{calendar.monthrange(int(m.group(1)), int(m.group(2)))[1]:02d}"
    m = re.match(r"(\d{4})", text)
    return f"{m.group(1)}-12-31" if m else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LayerSpec:
    """What an import declares about a layer."""

    name: str
    kind: str = "other"
    title: str | None = None
    description: str | None = None
    code_system: str | None = None
    code_field: str | None = None
    id_field: str | None = None
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    synthetic: bool = False
    published: bool = False
    jurisdiction_field: str | None = None

    def __post_init__(self) -> None:
        validate_layer_name(self.name)
        if self.kind not in LAYER_KINDS:
            raise InputError(
                f"未知的图层类型: {self.kind}",
                key="bad_layer_kind",
                field="kind",
                hint="可选: " + ", ".join(LAYER_KINDS),
            )


@dataclass(frozen=True)
class LayerInfo:
    """A catalogue row."""

    name: str
    kind: str
    title: str | None
    description: str | None
    code_system: str | None
    code_field: str | None
    id_field: str | None
    field_mapping: Mapping[str, str]
    synthetic: bool
    published: bool
    jurisdiction_field: str | None
    crs: str | None
    geometry_type: str | None
    current_snapshot: int | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["field_mapping"] = dict(self.field_mapping)
        return d


@dataclass(frozen=True)
class SnapshotInfo:
    """One immutable, dated version of a layer."""

    id: int
    layer: str
    label: str
    obs_date: str | None
    created_at: str
    created_by: str
    source_file: str | None
    source_hash: str | None
    source_crs: str | None
    crs: str
    content_hash: str
    feature_count: int
    geometry_type: str | None
    table_name: str
    notes: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["notes"] = dict(self.notes)
        return d


@dataclass(frozen=True)
class Record:
    """An editable object with a version for optimistic locking."""

    collection: str
    key: str
    version: int
    jurisdiction: str | None
    data: Mapping[str, Any]
    updated_at: str
    updated_by: str


@dataclass(frozen=True)
class StateEntry:
    """One entry of internal runtime state (``yz_runtime_state``, not audited).

    ``kind`` names what it is (``'session_revoked'``, ``'login_failure'``, ``'job'`` …),
    ``key`` identifies it within the kind, ``group`` is a free grouping value (a user, a
    client key). Times are Unix seconds; an entry past ``expires_at`` counts as gone.
    """

    kind: str
    key: str
    group: str | None
    data: Mapping[str, Any]
    created_at: float
    updated_at: float
    expires_at: float | None


@dataclass(frozen=True)
class AuditRecord:
    """One link of the audit hash chain."""

    seq: int
    ts: str
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    input_hashes: Sequence[str]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["details"] = dict(self.details)
        d["input_hashes"] = list(self.input_hashes)
        return d


@dataclass(frozen=True)
class AuditVerification:
    """Outcome of ``audit verify``."""

    ok: bool
    count: int
    head: str
    problems: tuple[str, ...]


@dataclass
class FeatureRows:
    """Features as fetched from SQL, before any frame is built (web pages skip pandas).

    ``rows`` hold the attribute values of each feature in ``columns`` order, as the database
    returned them (added for issue 10).
    """

    snapshot: SnapshotInfo
    columns: list[str]
    kinds: list[str]
    fids: list[int]
    rows: list[tuple[Any, ...]]
    geometries: Any  # numpy array of shapely geometries, storage CRS
    next_fid: int | None

    def __len__(self) -> int:
        return len(self.fids)

    def to_frame(self) -> gpd.GeoDataFrame:
        """Build a GeoDataFrame indexed by fid, with the dtypes the columns were written with."""
        from yizhangtu.store._frames import restore_kinds

        crs = self.snapshot.crs or None
        index = pd.Index(self.fids, name="fid", dtype="int64")
        df = (
            pd.DataFrame(self.rows, columns=self.columns, index=index)
            if self.columns
            else pd.DataFrame(index=index)
        )
        restore_kinds(df, list(zip(self.columns, self.kinds, strict=True)))
        gdf = gpd.GeoDataFrame(
            df, geometry=gpd.GeoSeries(self.geometries, index=index, crs=crs), crs=crs
        )
        gdf.attrs["snapshot_id"] = self.snapshot.id
        gdf.attrs["content_hash"] = self.snapshot.content_hash
        return gdf


def audit_hash(
    seq: int, ts: str, actor: str, action: str, target: str, details: str, inputs: str, prev: str
) -> str:
    """Hash of one audit record, chained to the previous one."""
    return sha256_hex(canonical_json([seq, ts, actor, action, target, details, inputs, prev]))


class Store(ABC):
    """The interface every backend implements. Domain code never sees a backend."""

    uri: str
    backend: str

    # -- lifecycle -------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- layers ----------------------------------------------------------
    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """All catalogue rows, by name."""

    @abstractmethod
    def layer(self, name: str) -> LayerInfo:
        """One catalogue row; NotFoundError if absent."""

    @abstractmethod
    def snapshots(self, layer: str) -> list[SnapshotInfo]:
        """Snapshots of a layer, oldest first."""

    @abstractmethod
    def resolve_snapshot(
        self, layer: str, ref: str | int | None = None, *, as_of: str | None = None
    ) -> SnapshotInfo:
        """Find a snapshot by id, label or date (``as_of``: latest with obs_date ≤ as_of)."""

    @abstractmethod
    def read_layer(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        as_of: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        columns: Sequence[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Features of one snapshot (default: current), in the storage CRS."""

    @abstractmethod
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
        """Write a new snapshot atomically; it becomes current.

        Chunks share CRS and columns. ``geometry_type`` (e.g. ``"MultiPolygon"``) is the
        declared type; polygons are promoted to multi when it is a multi type.
        ``progress(n)`` is called with the number of features written after each chunk.
        """

    @abstractmethod
    def delete_layer(self, name: str, *, actor: str) -> None:
        """Remove a layer and all its snapshots (audited)."""

    @abstractmethod
    def update_layer(self, name: str, *, actor: str, **meta: Any) -> LayerInfo:
        """Change catalogue metadata (title, description, published …)."""

    # -- tables ----------------------------------------------------------
    @abstractmethod
    def write_table(
        self,
        name: str,
        df: pd.DataFrame,
        *,
        actor: str,
        mode: str = "replace",
        action: str = "table.write",
    ) -> str:
        """Write a non-spatial ledger table; returns its content hash."""

    @abstractmethod
    def read_table(self, name: str) -> pd.DataFrame:
        """Read a ledger table."""

    @abstractmethod
    def table_names(self) -> list[str]:
        """Names of ledger tables."""

    @abstractmethod
    def table_hash(self, name: str) -> str:
        """Return the recorded content hash of a ledger table."""

    # -- records ---------------------------------------------------------
    @abstractmethod
    def get_record(self, collection: str, key: str) -> Record:
        """One record; NotFoundError if absent."""

    @abstractmethod
    def list_records(
        self, collection: str, *, jurisdictions: Sequence[str] | None = None
    ) -> list[Record]:
        """Return the records of a collection.

        With ``jurisdictions``, only those in the given jurisdictions (filtered in SQL).
        """

    @abstractmethod
    def put_record(
        self,
        collection: str,
        key: str,
        data: Mapping[str, Any],
        *,
        expected_version: int | None,
        actor: str,
        jurisdiction: str | None = None,
        action: str | None = None,
    ) -> Record:
        """Create (expected_version=None → must not exist) or update (must match) a record."""

    @abstractmethod
    def delete_record(
        self, collection: str, key: str, *, expected_version: int, actor: str
    ) -> None:
        """Delete a record under optimistic locking."""

    # -- internal runtime state (not audited) ---------------------------------
    # Small, frequently written facts shared by every process serving the workspace: revoked
    # sessions, login failures, background jobs. Each call is one statement of its own
    # (never part of a caller's transaction, never waiting for the import lock).

    @abstractmethod
    def put_state(
        self,
        kind: str,
        key: str,
        data: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
        expires_at: float | None = None,
        expected_updated_at: float | None = None,
    ) -> bool:
        """Create or replace one state entry (``created_at`` is kept on replace).

        With ``expected_updated_at`` only an existing entry last written at exactly that time
        is replaced (compare-and-set); returns whether the entry was written.
        """

    @abstractmethod
    def get_state(self, kind: str, key: str, *, now: float | None = None) -> StateEntry | None:
        """One unexpired state entry, or None."""

    @abstractmethod
    def list_state(
        self,
        kind: str,
        *,
        group: str | None = None,
        without_expiry: bool = False,
        newest_first: bool = False,
        limit: int | None = None,
        now: float | None = None,
    ) -> list[StateEntry]:
        """Unexpired entries of a kind, oldest first (``group``: of one group only).

        ``without_expiry`` keeps only entries that never expire (e.g. jobs still running).
        """

    @abstractmethod
    def delete_state(self, kind: str, key: str | None = None, *, group: str | None = None) -> int:
        """Delete one entry, a group's entries, or (neither) a whole kind; return the count."""

    @abstractmethod
    def purge_state(self, *, now: float | None = None) -> int:
        """Delete every expired entry; returns the count."""

    # -- audit and provenance ---------------------------------------------
    @abstractmethod
    def audit_append(
        self,
        action: str,
        target: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        input_hashes: Sequence[str] = (),
    ) -> AuditRecord:
        """Append one audit record in its own transaction (or the current one)."""

    @abstractmethod
    def audit_log(
        self, *, limit: int | None = None, target: str | None = None
    ) -> list[AuditRecord]:
        """Audit records, newest last."""

    @abstractmethod
    def audit_verify(self) -> AuditVerification:
        """Check the hash chain, sequence and head anchor."""

    @abstractmethod
    def save_provenance(self, record: ProvenanceRecord) -> str:
        """Persist a provenance record (idempotent); returns its id."""

    @abstractmethod
    def get_provenance(self, rid: str) -> ProvenanceRecord:
        """Load a provenance record."""

    # -- feature queries for the web adapters (added for issue 10) -------------
    # Conventions shared by both backends: every snapshot table has an integer primary key
    # ``"fid"`` and a geometry column ``"geom"``. ``where_sql`` is a boolean SQL expression
    # over double-quoted column names with the backend's placeholder (``self.ph``) for each of
    # ``params``; it comes from a compiler (``yizhangtu.services.cql2``), never from a user.
    # ``jurisdictions`` are admin-code prefixes matched against the layer's catalogued
    # ``jurisdiction_field`` (``None``: no filter; empty: nothing; a layer without a
    # jurisdiction field is not filtered).

    sql_dialect: str = "sqlite"
    ph: str = "?"

    @abstractmethod
    def feature_schema(
        self, layer: str, *, snapshot: str | int | None = None
    ) -> list[tuple[str, str]]:
        """Attribute columns of a snapshot with their kinds, without fid and geometry.

        Kinds are int, float, bool, datetime and str.
        """

    def query_features(
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
    ) -> tuple[gpd.GeoDataFrame, int | None]:
        """Fetch the features of one snapshot in fid order, filtered in SQL.

        Returns (frame indexed by fid, next fid or None).

        ``bbox`` (storage CRS) selects features whose bounding boxes intersect it (an index
        test, exact on neither backend); ``after_fid`` pages by keyset; the second value is
        the last fid returned when ``limit`` rows came back (more may follow), else None.
        """
        rows = self.query_feature_rows(
            layer,
            snapshot=snapshot,
            bbox=bbox,
            where_sql=where_sql,
            params=params,
            after_fid=after_fid,
            limit=limit,
            columns=columns,
            jurisdictions=jurisdictions,
        )
        return rows.to_frame(), rows.next_fid

    @abstractmethod
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
        """Return what :meth:`query_features` returns, as raw rows (no pandas)."""

    @abstractmethod
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
        """Count the matching features; return the count and whether it is exact.

        Without any filter the snapshot's recorded count is exact and free. With a filter on
        a snapshot larger than ``estimate_above`` the backend may estimate (PostGIS: planner
        rows) or return ``(None, False)`` when it cannot.
        """

    @abstractmethod
    def spatial_filter_sql(
        self,
        snapshot: SnapshotInfo,
        wkb: bytes,
        bounds: tuple[float, float, float, float],
        op: str = "intersects",
    ) -> tuple[str, list[Any], bool]:
        """Build SQL for "geometry <op> this shape"; return (sql, params, exact).

        The shape is in the storage CRS; ``op`` is intersects, within or contains.

        PostGIS answers exactly (``ST_Intersects`` …); GeoPackage, without SQL spatial
        functions, answers with an R-tree bounding-box test (``exact`` False) that selects
        a superset for the caller to refine.
        """

    @abstractmethod
    def feature_extent(
        self,
        layer: str,
        *,
        snapshot: str | int | None = None,
        jurisdictions: Sequence[str] | None = None,
    ) -> tuple[float, float, float, float] | None:
        """Bounding box (storage CRS) of a snapshot's features, None if empty.

        With ``jurisdictions``, only the features those jurisdictions see count.
        """

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
        """Render a Mapbox vector tile in the database; None if the backend cannot.

        On None the caller encodes the tile itself.
        """
        return None

    @abstractmethod
    def query_records(
        self,
        collection: str,
        *,
        jurisdiction_prefixes: Sequence[str] | None = None,
        include_unassigned: bool = False,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Return records of a collection by key, filtered in SQL.

        With ``jurisdiction_prefixes``, only records whose jurisdiction starts with one of the
        prefixes.
        """

    @abstractmethod
    def query_table(
        self,
        name: str,
        *,
        jurisdiction_field: str | None = None,
        jurisdictions: Sequence[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Rows of a ledger table and the matching row count.

        With ``jurisdiction_field`` and ``jurisdictions``, only rows whose field starts with one
        of the prefixes.
        """


# ---------------------------------------------------------------------------
# Shared SQL implementation of everything but feature storage.
# ---------------------------------------------------------------------------

_DDL = [
    "CREATE TABLE IF NOT EXISTS yz_meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS yz_layers (
        name TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT, description TEXT,
        code_system TEXT, code_field TEXT, id_field TEXT, field_mapping TEXT, synthetic INTEGER,
        published INTEGER, jurisdiction_field TEXT, crs TEXT, geometry_type TEXT,
        current_snapshot INTEGER, created_at TEXT, updated_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS yz_snapshots (
        id INTEGER PRIMARY KEY, layer TEXT NOT NULL, label TEXT NOT NULL, obs_date TEXT,
        created_at TEXT, created_by TEXT, source_file TEXT, source_hash TEXT, source_crs TEXT,
        crs TEXT, content_hash TEXT, feature_count INTEGER, geometry_type TEXT,
        table_name TEXT NOT NULL, notes TEXT, UNIQUE (layer, label))""",
    """CREATE TABLE IF NOT EXISTS yz_audit (
        seq INTEGER PRIMARY KEY, ts TEXT, actor TEXT, action TEXT, target TEXT,
        details TEXT, input_hashes TEXT, prev_hash TEXT, hash TEXT)""",
    """CREATE TABLE IF NOT EXISTS yz_provenance (
        id TEXT PRIMARY KEY, kind TEXT, created_at TEXT, created_by TEXT, body TEXT)""",
    """CREATE TABLE IF NOT EXISTS yz_records (
        collection TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
        jurisdiction TEXT, data TEXT, updated_at TEXT, updated_by TEXT,
        PRIMARY KEY (collection, key))""",
    "CREATE INDEX IF NOT EXISTS yz_records_jur ON yz_records (collection, jurisdiction)",
    """CREATE TABLE IF NOT EXISTS yz_tables (
        name TEXT PRIMARY KEY, columns TEXT, row_count INTEGER, content_hash TEXT,
        updated_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS yz_runtime_state (
        kind TEXT NOT NULL, key TEXT NOT NULL, grp TEXT, data TEXT,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION, PRIMARY KEY (kind, key))""",
    "CREATE INDEX IF NOT EXISTS yz_runtime_state_grp ON yz_runtime_state (kind, grp)",
    "CREATE INDEX IF NOT EXISTS yz_runtime_state_exp ON yz_runtime_state (expires_at)",
]


class SQLStore(Store):
    """Catalogue, records, tables, audit and provenance over a DB-API connection.

    Subclasses supply the connection, placeholders, transactions and feature storage.
    """

    ph = "?"

    # backend hooks ------------------------------------------------------
    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _drop_snapshot_table(self, table: str) -> None: ...

    @abstractmethod
    def _set_current_view(
        self, layer: str, table: str | None, crs: str | None, geometry_type: str | None
    ) -> None: ...

    @abstractmethod
    def _write_frame_table(self, table: str, df: pd.DataFrame) -> None: ...

    @abstractmethod
    def _read_frame_table(self, table: str) -> pd.DataFrame: ...

    @abstractmethod
    def _table_exists(self, table: str) -> bool: ...

    # transactions -------------------------------------------------------
    _tx_depth = 0

    @contextmanager
    def transaction(self) -> Iterator[SQLStore]:
        """Run a block atomically; nested blocks join the outer transaction."""
        outer = self._tx_depth == 0
        if outer:
            self._begin()
        self._tx_depth += 1
        try:
            yield self
        except BaseException:
            self._tx_depth -= 1
            if outer:
                self._rollback()
            raise
        else:
            self._tx_depth -= 1
            if outer:
                self._commit()

    def _init_schema(self) -> None:
        with self.transaction():
            for stmt in _DDL:
                self._execute(stmt)
            rows = self._query("SELECT value FROM yz_meta WHERE key = ?", ("schema_version",))
            if not rows:
                self._execute(
                    "INSERT INTO yz_meta (key, value) VALUES (?, ?)",
                    ("schema_version", SCHEMA_VERSION),
                )
                self._execute(
                    "INSERT INTO yz_meta (key, value) VALUES (?, ?)", ("audit_head", GENESIS)
                )
                self._execute(
                    "INSERT INTO yz_meta (key, value) VALUES (?, ?)", ("audit_count", "0")
                )

    # layers --------------------------------------------------------------
    _LAYER_COLS = (
        "name, kind, title, description, code_system, code_field, id_field, field_mapping, "
        "synthetic, published, jurisdiction_field, crs, geometry_type, current_snapshot, "
        "created_at, updated_at"
    )

    @staticmethod
    def _layer_from_row(r: Sequence[Any]) -> LayerInfo:
        return LayerInfo(
            name=r[0],
            kind=r[1],
            title=r[2],
            description=r[3],
            code_system=r[4],
            code_field=r[5],
            id_field=r[6],
            field_mapping=json.loads(r[7] or "{}"),
            synthetic=bool(r[8]),
            published=bool(r[9]),
            jurisdiction_field=r[10],
            crs=r[11],
            geometry_type=r[12],
            current_snapshot=r[13],
            created_at=r[14],
            updated_at=r[15],
        )

    @override
    def layers(self) -> list[LayerInfo]:
        rows = self._query(f"SELECT {self._LAYER_COLS} FROM yz_layers ORDER BY name")
        return [self._layer_from_row(r) for r in rows]

    @override
    def layer(self, name: str) -> LayerInfo:
        rows = self._query(f"SELECT {self._LAYER_COLS} FROM yz_layers WHERE name = ?", (name,))
        if not rows:
            known = [li.name for li in self.layers()]
            raise NotFoundError(
                f"图层不存在: {name}",
                key="layer_not_found",
                field="layer",
                hint=("现有图层: " + ", ".join(known))
                if known
                else "工作空间还没有图层, 请先 yizhangtu import",
            )
        return self._layer_from_row(rows[0])

    _SNAP_COLS = (
        "id, layer, label, obs_date, created_at, created_by, source_file, source_hash, "
        "source_crs, crs, content_hash, feature_count, geometry_type, table_name, notes"
    )

    @staticmethod
    def _snap_from_row(r: Sequence[Any]) -> SnapshotInfo:
        return SnapshotInfo(
            id=int(r[0]),
            layer=r[1],
            label=r[2],
            obs_date=r[3],
            created_at=r[4],
            created_by=r[5],
            source_file=r[6],
            source_hash=r[7],
            source_crs=r[8],
            crs=r[9],
            content_hash=r[10],
            feature_count=int(r[11]),
            geometry_type=r[12],
            table_name=r[13],
            notes=json.loads(r[14] or "{}"),
        )

    @override
    def snapshots(self, layer: str) -> list[SnapshotInfo]:
        self.layer(layer)
        rows = self._query(
            f"SELECT {self._SNAP_COLS} FROM yz_snapshots WHERE layer = ? ORDER BY id", (layer,)
        )
        return [self._snap_from_row(r) for r in rows]

    @override
    def resolve_snapshot(
        self, layer: str, ref: str | int | None = None, *, as_of: str | None = None
    ) -> SnapshotInfo:
        info = self.layer(layer)
        snaps = self.snapshots(layer)
        if not snaps:
            raise NotFoundError(f"图层 {layer} 没有快照", key="snapshot_not_found", field="layer")
        labels = ", ".join(f"{s.label}(#{s.id})" for s in snaps)
        if ref is not None:
            for s in snaps:
                if str(s.id) == str(ref) or s.label == str(ref):
                    return s
            raise NotFoundError(
                f"图层 {layer} 没有快照 {ref}",
                key="snapshot_not_found",
                field="snapshot",
                hint=f"现有快照: {labels}",
            )
        if as_of is not None:
            cutoff = normalise_obs_date(str(as_of)) or str(as_of)
            dated = [s for s in snaps if (s.obs_date or s.created_at[:10]) <= cutoff]
            if not dated:
                raise NotFoundError(
                    f"图层 {layer} 在 {as_of} 之前没有快照",
                    key="snapshot_not_found",
                    field="as_of",
                    hint=f"现有快照: {labels}",
                )
            return max(dated, key=lambda s: ((s.obs_date or s.created_at[:10]), s.id))
        for s in snaps:
            if s.id == info.current_snapshot:
                return s
        return snaps[-1]

    def _next_snapshot_id(self) -> int:
        rows = self._query("SELECT MAX(id) FROM yz_snapshots")
        return int(rows[0][0] or 0) + 1

    def _register_snapshot(self, spec: LayerSpec, snap: SnapshotInfo, actor: str) -> None:
        """Register a written snapshot table and make it current (inside a transaction)."""
        now = _now()
        existing = self._query("SELECT created_at FROM yz_layers WHERE name = ?", (spec.name,))
        if self._query(
            "SELECT 1 FROM yz_snapshots WHERE layer = ? AND label = ?", (spec.name, snap.label)
        ):
            raise ConflictError(
                f"图层 {spec.name} 已有快照 {snap.label}",
                key="snapshot_exists",
                field="snapshot",
                hint="快照不可覆盖; 请换一个 --snapshot 标签 (如 2021-修订)",
            )
        self._execute(
            f"INSERT INTO yz_snapshots ({self._SNAP_COLS}) VALUES ({', '.join(['?'] * 15)})",
            (
                snap.id,
                snap.layer,
                snap.label,
                snap.obs_date,
                snap.created_at,
                snap.created_by,
                snap.source_file,
                snap.source_hash,
                snap.source_crs,
                snap.crs,
                snap.content_hash,
                snap.feature_count,
                snap.geometry_type,
                snap.table_name,
                canonical_json(dict(snap.notes)),
            ),
        )
        vals = (
            spec.kind,
            spec.title,
            spec.description,
            spec.code_system,
            spec.code_field,
            spec.id_field,
            canonical_json(dict(spec.field_mapping)),
            int(spec.synthetic),
            int(spec.published),
            spec.jurisdiction_field,
            snap.crs,
            snap.geometry_type,
            snap.id,
        )
        if existing:
            self._execute(
                "UPDATE yz_layers SET kind=?, title=?, description=?, code_system=?, "
                "code_field=?, id_field=?, field_mapping=?, synthetic=?, published=?, "
                "jurisdiction_field=?, crs=?, geometry_type=?, current_snapshot=?, updated_at=? "
                "WHERE name=?",
                (*vals, now, spec.name),
            )
        else:
            self._execute(
                f"INSERT INTO yz_layers ({self._LAYER_COLS}) VALUES ({', '.join(['?'] * 16)})",
                (spec.name, *vals, now, now),
            )
        self._set_current_view(spec.name, snap.table_name, snap.crs, snap.geometry_type)
        self.audit_append(
            "layer.import",
            f"layer:{spec.name}",
            actor=actor,
            details={
                "snapshot": snap.id,
                "label": snap.label,
                "features": snap.feature_count,
                "source_file": snap.source_file,
                "crs": snap.crs,
                "source_crs": snap.source_crs,
                "kind": spec.kind,
            },
            input_hashes=[h for h in (snap.source_hash, snap.content_hash) if h],
        )

    @override
    def delete_layer(self, name: str, *, actor: str) -> None:
        self.layer(name)
        snaps = self.snapshots(name)
        with self.transaction():
            self._set_current_view(name, None, None, None)
            for s in snaps:
                self._drop_snapshot_table(s.table_name)
            self._execute("DELETE FROM yz_snapshots WHERE layer = ?", (name,))
            self._execute("DELETE FROM yz_layers WHERE name = ?", (name,))
            self.audit_append(
                "layer.delete",
                f"layer:{name}",
                actor=actor,
                details={"snapshots": [s.id for s in snaps]},
                input_hashes=[s.content_hash for s in snaps],
            )

    _EDITABLE = (
        "title",
        "description",
        "published",
        "code_system",
        "code_field",
        "id_field",
        "jurisdiction_field",
        "kind",
    )

    @override
    def update_layer(self, name: str, *, actor: str, **meta: Any) -> LayerInfo:
        before = self.layer(name)
        bad = set(meta) - set(self._EDITABLE)
        if bad:
            raise InputError(
                f"不可修改的图层属性: {', '.join(sorted(bad))}",
                key="bad_layer_field",
                hint="可修改: " + ", ".join(self._EDITABLE),
            )
        if "kind" in meta and meta["kind"] not in LAYER_KINDS:
            raise InputError(f"未知的图层类型: {meta['kind']}", key="bad_layer_kind", field="kind")
        with self.transaction():
            for k, v in meta.items():
                self._execute(
                    f"UPDATE yz_layers SET {k} = ?, updated_at = ? WHERE name = ?",
                    (int(v) if isinstance(v, bool) else v, _now(), name),
                )
            self.audit_append(
                "layer.update",
                f"layer:{name}",
                actor=actor,
                details={"before": {k: getattr(before, k) for k in meta}, "after": dict(meta)},
            )
        return self.layer(name)

    # tables ----------------------------------------------------------------
    @override
    def write_table(
        self,
        name: str,
        df: pd.DataFrame,
        *,
        actor: str,
        mode: str = "replace",
        action: str = "table.write",
    ) -> str:
        validate_layer_name(name)
        if mode not in ("replace", "append"):
            raise InputError(f"未知写入模式: {mode}", key="bad_mode")
        table = f"yzt_{name}"
        with self.transaction():
            if mode == "append" and self._table_exists(table):
                old = self._read_frame_table(table)
                missing = set(old.columns) ^ set(df.columns)
                if missing:
                    raise InputError(
                        f"追加的列与表 {name} 不一致: {sorted(missing)}",
                        key="table_columns_mismatch",
                        field=",".join(sorted(missing)),
                    )
                full = pd.concat([old, df[list(old.columns)]], ignore_index=True)
            else:
                full = df.reset_index(drop=True)
            self._write_frame_table(table, full)
            from yizhangtu.store.hashing import table_hash

            h = table_hash([full])
            self._execute("DELETE FROM yz_tables WHERE name = ?", (name,))
            self._execute(
                "INSERT INTO yz_tables (name, columns, row_count, content_hash, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, canonical_json([str(c) for c in full.columns]), len(full), h, _now()),
            )
            self.audit_append(
                action,
                f"table:{name}",
                actor=actor,
                details={"rows": len(df), "mode": mode},
                input_hashes=[h],
            )
        return h

    @override
    def read_table(self, name: str) -> pd.DataFrame:
        if not self._query("SELECT 1 FROM yz_tables WHERE name = ?", (name,)):
            raise NotFoundError(
                f"数据表不存在: {name}",
                key="table_not_found",
                hint="现有数据表: " + ", ".join(self.table_names()),
            )
        return self._read_frame_table(f"yzt_{name}")

    @override
    def table_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM yz_tables ORDER BY name")]

    @override
    def table_hash(self, name: str) -> str:
        rows = self._query("SELECT content_hash FROM yz_tables WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"数据表不存在: {name}", key="table_not_found")
        return str(rows[0][0])

    # records ---------------------------------------------------------------
    @staticmethod
    def _record_from_row(r: Sequence[Any]) -> Record:
        return Record(
            collection=r[0],
            key=r[1],
            version=int(r[2]),
            jurisdiction=r[3],
            data=json.loads(r[4] or "{}"),
            updated_at=r[5],
            updated_by=r[6],
        )

    _REC_COLS = "collection, key, version, jurisdiction, data, updated_at, updated_by"

    @override
    def get_record(self, collection: str, key: str) -> Record:
        rows = self._query(
            f"SELECT {self._REC_COLS} FROM yz_records WHERE collection = ? AND key = ?",
            (collection, key),
        )
        if not rows:
            raise NotFoundError(f"{collection} 中没有 {key}", key="record_not_found", feature=key)
        return self._record_from_row(rows[0])

    @override
    def list_records(
        self, collection: str, *, jurisdictions: Sequence[str] | None = None
    ) -> list[Record]:
        sql = f"SELECT {self._REC_COLS} FROM yz_records WHERE collection = ?"
        params: list[Any] = [collection]
        if jurisdictions is not None:
            if not jurisdictions:
                return []
            sql += f" AND jurisdiction IN ({', '.join(['?'] * len(jurisdictions))})"
            params.extend(jurisdictions)
        return [self._record_from_row(r) for r in self._query(sql + " ORDER BY key", params)]

    @override
    def put_record(
        self,
        collection: str,
        key: str,
        data: Mapping[str, Any],
        *,
        expected_version: int | None,
        actor: str,
        jurisdiction: str | None = None,
        action: str | None = None,
    ) -> Record:
        body = canonical_json(dict(data))
        now = _now()
        with self.transaction():
            rows = self._query(
                f"SELECT {self._REC_COLS} FROM yz_records WHERE collection = ? AND key = ?",
                (collection, key),
            )
            current = self._record_from_row(rows[0]) if rows else None
            if expected_version is None:
                if current is not None:
                    raise ConflictError(
                        f"{collection} 中已有 {key}",
                        key="record_exists",
                        feature=key,
                        data={
                            "current": dict(current.data),
                            "version": current.version,
                            "updated_by": current.updated_by,
                        },
                    )
                version = 1
                self._execute(
                    f"INSERT INTO yz_records ({self._REC_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (collection, key, version, jurisdiction, body, now, actor),
                )
            else:
                if current is None:
                    raise NotFoundError(
                        f"{collection} 中没有 {key}", key="record_not_found", feature=key
                    )
                if current.version != expected_version:
                    raise ConflictError(
                        f"{key} 已被 {current.updated_by} 于 {current.updated_at} 修改 "
                        f"(版本 {current.version}), 你的修改基于版本 {expected_version}",
                        key="version_conflict",
                        feature=key,
                        hint="请重新读取最新内容, 合并后再保存",
                        data={
                            "current": dict(current.data),
                            "version": current.version,
                            "updated_by": current.updated_by,
                            "updated_at": current.updated_at,
                        },
                    )
                version = current.version + 1
                n = self._execute(
                    "UPDATE yz_records SET version = ?, jurisdiction = ?, data = ?, "
                    "updated_at = ?, updated_by = ? "
                    "WHERE collection = ? AND key = ? AND version = ?",
                    (
                        version,
                        jurisdiction if jurisdiction is not None else current.jurisdiction,
                        body,
                        now,
                        actor,
                        collection,
                        key,
                        expected_version,
                    ),
                )
                if n == 0:
                    raise ConflictError(f"{key} 已被他人修改", key="version_conflict", feature=key)
            self.audit_append(
                action or f"{collection}.put",
                f"{collection}:{key}",
                actor=actor,
                details={"version": version, "jurisdiction": jurisdiction},
                input_hashes=[sha256_hex(body)],
            )
        return self.get_record(collection, key)

    @override
    def delete_record(
        self, collection: str, key: str, *, expected_version: int, actor: str
    ) -> None:
        with self.transaction():
            current = self.get_record(collection, key)
            if current.version != expected_version:
                raise ConflictError(
                    f"{key} 已被 {current.updated_by} 修改 (版本 {current.version})",
                    key="version_conflict",
                    feature=key,
                )
            self._execute(
                "DELETE FROM yz_records WHERE collection = ? AND key = ?", (collection, key)
            )
            self.audit_append(
                f"{collection}.delete",
                f"{collection}:{key}",
                actor=actor,
                details={"version": current.version},
            )

    # runtime state ---------------------------------------------------------------
    _STATE_COLS = "kind, key, grp, data, created_at, updated_at, expires_at"

    @staticmethod
    def _state_from_row(r: Sequence[Any]) -> StateEntry:
        return StateEntry(
            kind=r[0],
            key=r[1],
            group=r[2],
            data=json.loads(r[3] or "{}"),
            created_at=float(r[4]),
            updated_at=float(r[5]),
            expires_at=float(r[6]) if r[6] is not None else None,
        )

    @override
    def put_state(
        self,
        kind: str,
        key: str,
        data: Mapping[str, Any] | None = None,
        *,
        group: str | None = None,
        expires_at: float | None = None,
        expected_updated_at: float | None = None,
    ) -> bool:
        body = canonical_json(dict(data or {}))
        now = time.time()
        exp = float(expires_at) if expires_at is not None else None
        if expected_updated_at is not None:
            n = self._execute(
                "UPDATE yz_runtime_state SET grp = ?, data = ?, updated_at = ?, expires_at = ? "
                "WHERE kind = ? AND key = ? AND updated_at = ?",
                (group, body, now, exp, kind, key, float(expected_updated_at)),
            )
            return bool(n)
        self._execute(
            f"INSERT INTO yz_runtime_state ({self._STATE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET grp = excluded.grp, data = excluded.data, "
            "updated_at = excluded.updated_at, expires_at = excluded.expires_at",
            (kind, key, group, body, now, now, exp),
        )
        return True

    @override
    def get_state(self, kind: str, key: str, *, now: float | None = None) -> StateEntry | None:
        rows = self._query(
            f"SELECT {self._STATE_COLS} FROM yz_runtime_state "
            "WHERE kind = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (kind, key, now if now is not None else time.time()),
        )
        return self._state_from_row(rows[0]) if rows else None

    @override
    def list_state(
        self,
        kind: str,
        *,
        group: str | None = None,
        without_expiry: bool = False,
        newest_first: bool = False,
        limit: int | None = None,
        now: float | None = None,
    ) -> list[StateEntry]:
        sql = f"SELECT {self._STATE_COLS} FROM yz_runtime_state WHERE kind = ?"
        params: list[Any] = [kind]
        if without_expiry:
            sql += " AND expires_at IS NULL"
        else:
            sql += " AND (expires_at IS NULL OR expires_at > ?)"
            params.append(now if now is not None else time.time())
        if group is not None:
            sql += " AND grp = ?"
            params.append(group)
        order = "created_at DESC, key DESC" if newest_first else "created_at, key"
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._state_from_row(r) for r in self._query(sql, params)]

    @override
    def delete_state(self, kind: str, key: str | None = None, *, group: str | None = None) -> int:
        sql = "DELETE FROM yz_runtime_state WHERE kind = ?"
        params: list[Any] = [kind]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        if group is not None:
            sql += " AND grp = ?"
            params.append(group)
        return int(self._execute(sql, params))

    @override
    def purge_state(self, *, now: float | None = None) -> int:
        return int(
            self._execute(
                "DELETE FROM yz_runtime_state WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now if now is not None else time.time(),),
            )
        )

    # audit -------------------------------------------------------------------
    @override
    def audit_append(
        self,
        action: str,
        target: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        input_hashes: Sequence[str] = (),
    ) -> AuditRecord:
        with self.transaction():
            self._lock_audit()
            head = self._query("SELECT value FROM yz_meta WHERE key = ?", ("audit_head",))[0][0]
            count = int(
                self._query("SELECT value FROM yz_meta WHERE key = ?", ("audit_count",))[0][0]
            )
            seq = count + 1
            ts = _now()
            det = canonical_json(dict(details or {}))
            ins = canonical_json(list(input_hashes))
            h = audit_hash(seq, ts, actor, action, target, det, ins, head)
            self._execute(
                "INSERT INTO yz_audit (seq, ts, actor, action, target, details, input_hashes, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, ts, actor, action, target, det, ins, head, h),
            )
            self._execute("UPDATE yz_meta SET value = ? WHERE key = ?", (h, "audit_head"))
            self._execute("UPDATE yz_meta SET value = ? WHERE key = ?", (str(seq), "audit_count"))
        return AuditRecord(
            seq, ts, actor, action, target, json.loads(det), json.loads(ins), head, h
        )

    def _lock_audit(self) -> None:
        """Serialise writers of the chain (backends override where needed)."""

    @override
    def audit_log(
        self, *, limit: int | None = None, target: str | None = None
    ) -> list[AuditRecord]:
        sql = (
            "SELECT seq, ts, actor, action, target, details, input_hashes, prev_hash, hash "
            "FROM yz_audit"
        )
        params: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            params.append(target)
        sql += " ORDER BY seq"
        rows = self._query(sql, params)
        if limit:
            rows = rows[-limit:]
        return [
            AuditRecord(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                r[4],
                json.loads(r[5] or "{}"),
                json.loads(r[6] or "[]"),
                r[7],
                r[8],
            )
            for r in rows
        ]

    @override
    def audit_verify(self) -> AuditVerification:
        rows = self._query(
            "SELECT seq, ts, actor, action, target, details, input_hashes, prev_hash, hash "
            "FROM yz_audit ORDER BY seq"
        )
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        for r in rows:
            seq = int(r[0])
            if seq != expected_seq:
                problems.append(
                    f"缺少审计记录 #{expected_seq}"
                    + (f"–#{seq - 1}" if seq - 1 > expected_seq else "")
                )
            if r[7] != prev:
                problems.append(f"审计记录 #{seq} 的前序哈希与上一条不符 (记录被删除或改动)")
            h = audit_hash(seq, r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            if h != r[8]:
                problems.append(f"审计记录 #{seq} 内容被篡改 (哈希不符)")
            prev = r[8]
            expected_seq = seq + 1
        meta = dict(self._query("SELECT key, value FROM yz_meta"))
        if int(meta.get("audit_count", 0)) != len(rows):
            problems.append(
                f"审计记录数 {len(rows)} 与锚定值 {meta.get('audit_count')} 不符 (末尾记录被删除?)"
            )
        if rows and meta.get("audit_head") != rows[-1][8]:
            problems.append("审计链末端哈希与锚定值不符")
        return AuditVerification(
            ok=not problems, count=len(rows), head=prev, problems=tuple(problems)
        )

    # provenance ----------------------------------------------------------------
    @override
    def save_provenance(self, record: ProvenanceRecord) -> str:
        with self.transaction():
            if not self._query("SELECT 1 FROM yz_provenance WHERE id = ?", (record.id,)):
                self._execute(
                    "INSERT INTO yz_provenance (id, kind, created_at, created_by, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.kind,
                        record.created_at,
                        record.created_by,
                        canonical_json(record.to_dict()),
                    ),
                )
        return record.id

    @override
    def get_provenance(self, rid: str) -> ProvenanceRecord:
        rows = self._query("SELECT body FROM yz_provenance WHERE id = ?", (rid,))
        if not rows:
            rows = self._query("SELECT body FROM yz_provenance WHERE id LIKE ?", (rid + "%",))
            if len(rows) != 1:
                raise NotFoundError(
                    f"溯源记录不存在: {rid}",
                    key="provenance_not_found",
                    hint="结果输出中的 provenance_id 即为记录号",
                )
        return ProvenanceRecord.from_dict(json.loads(rows[0][0]))

    # snapshot verification ----------------------------------------------------
    def verify_snapshot(self, layer: str, ref: str | int | None = None) -> bool:
        """Recompute a snapshot's content hash from what is stored and compare."""
        from yizhangtu.store.hashing import ContentHasher

        snap = self.resolve_snapshot(layer, ref)
        gdf = self.read_layer(layer, snapshot=snap.id)
        hasher = ContentHasher()
        hasher.update(gdf.rename_geometry("geometry") if gdf.geometry.name != "geometry" else gdf)
        if hasher.hexdigest() != snap.content_hash:
            raise StoreError(
                f"快照 {layer}#{snap.id} 内容哈希不符, 数据可能被改动",
                key="snapshot_tampered",
                data={"recorded": snap.content_hash, "actual": hasher.hexdigest()},
            )
        return True

    # -- feature, record and table queries for the web adapters (added for issue 10) -----
    @staticmethod
    def _prefix_clause(expr: str, prefixes: Sequence[str], ph: str) -> tuple[str, list[Any]]:
        """``expr`` starts with one of ``prefixes`` (admin codes), as portable SQL."""
        if not prefixes:
            return "1 = 0", []
        parts = [f"substr(CAST({expr} AS TEXT), 1, {len(str(p))}) = {ph}" for p in prefixes]
        return "(" + " OR ".join(parts) + ")", [str(p) for p in prefixes]

    def _feature_filters(
        self,
        info: LayerInfo,
        schema: Sequence[tuple[str, str]],
        *,
        where_sql: str | None,
        params: Sequence[Any],
        after_fid: int | None,
        jurisdictions: Sequence[str] | None,
    ) -> tuple[list[str], list[Any]]:
        """WHERE parts shared by both backends (attribute filter, keyset, jurisdiction)."""
        parts: list[str] = []
        args: list[Any] = []
        if where_sql:
            parts.append(f"({where_sql})")
            args.extend(params)
        if after_fid is not None:
            parts.append(f'"fid" > {self.ph}')
            args.append(int(after_fid))
        if jurisdictions is not None and info.jurisdiction_field:
            if info.jurisdiction_field not in {n for n, _ in schema}:
                parts.append("1 = 0")  # the field is catalogued but absent: show nothing
            else:
                sql, p = self._prefix_clause(
                    self._quote_ident(info.jurisdiction_field), jurisdictions, self.ph
                )
                parts.append(sql)
                args.extend(p)
        return parts, args

    @staticmethod
    def _quote_ident(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @override
    def query_records(
        self,
        collection: str,
        *,
        jurisdiction_prefixes: Sequence[str] | None = None,
        include_unassigned: bool = False,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        sql = f"SELECT {self._REC_COLS} FROM yz_records WHERE collection = ?"
        params: list[Any] = [collection]
        if jurisdiction_prefixes is not None:
            clause, p = self._prefix_clause("jurisdiction", jurisdiction_prefixes, "?")
            if include_unassigned:
                clause = f"({clause} OR jurisdiction IS NULL)"
            sql += f" AND {clause}"
            params.extend(p)
        if after_key is not None:
            sql += " AND key > ?"
            params.append(after_key)
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._record_from_row(r) for r in self._query(sql, params)]

    @override
    def query_table(
        self,
        name: str,
        *,
        jurisdiction_field: str | None = None,
        jurisdictions: Sequence[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[pd.DataFrame, int]:
        from yizhangtu.store._frames import restore_kinds

        if not self._query("SELECT 1 FROM yz_tables WHERE name = ?", (name,)):
            raise NotFoundError(
                f"数据表不存在: {name}",
                key="table_not_found",
                hint="现有数据表: " + ", ".join(self.table_names()),
            )
        table = f"yzt_{name}"
        kinds_row = self._query("SELECT value FROM yz_meta WHERE key = ?", (f"kinds:{table}",))
        kinds = [tuple(k) for k in json.loads(kinds_row[0][0])] if kinds_row else []
        names = [str(k[0]) for k in kinds]
        if any("?" in n or "%" in n for n in names):
            # the portable placeholder rewrite cannot carry these names through
            raise InputError(
                f"数据表 {name} 的列名含 ? 或 %, 无法按条件查询",
                key="table_column_name",
                field=name,
            )
        where = ""
        params: list[Any] = []
        if jurisdictions is not None and jurisdiction_field:
            if jurisdiction_field not in names:
                where = " WHERE 1 = 0"
            else:
                clause, params = self._prefix_clause(
                    self._quote_ident(jurisdiction_field), jurisdictions, "?"
                )
                where = f" WHERE {clause}"
        total = int(
            self._query(f"SELECT COUNT(*) FROM {self._quote_ident(table)}{where}", params)[0][0]
        )
        cols = ", ".join(self._quote_ident(n) for n in names) or "fid"
        sql = f"SELECT {cols} FROM {self._quote_ident(table)}{where} ORDER BY fid"
        args = list(params)
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            args.extend([int(limit) if limit is not None else 2**62, int(offset)])
        rows = self._query(sql, args)
        df = pd.DataFrame(rows, columns=names) if names else pd.DataFrame(index=range(len(rows)))
        return restore_kinds(df, kinds), total
