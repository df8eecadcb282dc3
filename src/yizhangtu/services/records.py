"""Records and ledger tables as a user may see and change them.

Records (renewal units, tasks, …) carry a jurisdiction; reads are filtered by the user's
prefix in SQL and writes must stay inside it. Ledger tables carry publication and an
optional jurisdiction column in the records collection ``web_table_meta`` (the store's
``yz_tables`` has no column for either).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from yizhangtu.errors import InputError, NotFoundError
from yizhangtu.services.auth import Scope, validate_jurisdiction
from yizhangtu.services.users import RESERVED_COLLECTIONS
from yizhangtu.store import Record, Store

__all__ = [
    "TABLE_META",
    "delete_record",
    "get_record",
    "list_records",
    "put_record",
    "read_table",
    "record_dict",
    "record_history",
    "set_table_meta",
    "table_meta",
    "visible_tables",
]

TABLE_META = "web_table_meta"
_COLLECTION = re.compile(r"^[a-z][a-z0-9_]{0,46}$")


def _collection(name: str) -> str:
    if not _COLLECTION.match(name or "") or name in RESERVED_COLLECTIONS:
        raise NotFoundError(
            f"记录集合不存在: {name}", key="collection_not_found", field="collection"
        )
    return name


def record_dict(rec: Record) -> dict[str, Any]:
    """JSON-ready record."""
    return {
        "collection": rec.collection,
        "key": rec.key,
        "version": rec.version,
        "jurisdiction": rec.jurisdiction,
        "data": dict(rec.data),
        "updated_at": rec.updated_at,
        "updated_by": rec.updated_by,
    }


def _visible(scope: Scope, rec: Record) -> bool:
    return scope.covers(rec.jurisdiction)


def list_records(
    store: Store, scope: Scope, collection: str, *, after: str | None = None, limit: int = 100
) -> tuple[list[Record], str | None]:
    """List records in the user's jurisdiction (SQL prefix filter), keyset-paged by key."""
    scope.require("read")
    rows = store.query_records(
        _collection(collection),
        jurisdiction_prefixes=scope.record_prefixes(),
        after_key=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].key if more and rows else None)


def get_record(store: Store, scope: Scope, collection: str, key: str) -> Record:
    """One record; 404 if absent or outside the jurisdiction."""
    scope.require("read")
    try:
        rec = store.get_record(_collection(collection), key)
    except NotFoundError:
        rec = None
    if rec is None or not _visible(scope, rec):
        raise NotFoundError(f"{collection} 中没有 {key}", key="record_not_found", feature=key)
    return rec


def put_record(
    store: Store,
    scope: Scope,
    collection: str,
    key: str,
    data: Mapping[str, Any],
    *,
    expected_version: int | None,
    jurisdiction: str | None = None,
) -> Record:
    """Create (``expected_version`` None) or update a record inside the jurisdiction.

    A stale ``expected_version`` raises ConflictError (409) whose data holds the other
    user's version, author and content.
    """
    scope.require("write")
    collection = _collection(collection)
    if not isinstance(data, Mapping):
        raise InputError("记录内容应为 JSON 对象", key="bad_record", field="data")
    target = validate_jurisdiction(jurisdiction) if jurisdiction is not None else None
    if expected_version is None:
        target = target or scope.jurisdiction
        scope.require_covers(target, "记录")
    else:
        try:
            current = store.get_record(collection, key)
        except NotFoundError:
            current = None
        if current is None or not _visible(scope, current):
            raise NotFoundError(f"{collection} 中没有 {key}", key="record_not_found", feature=key)
        if target is not None:
            scope.require_covers(target, "记录的新辖区")
    return store.put_record(
        collection,
        key,
        data,
        expected_version=expected_version,
        actor=str(scope.username),
        jurisdiction=target,
    )


def delete_record(
    store: Store, scope: Scope, collection: str, key: str, *, expected_version: int
) -> None:
    """Delete a record inside the jurisdiction, under optimistic locking."""
    scope.require("write")
    rec = get_record(store, scope, collection, key)
    scope.require_covers(rec.jurisdiction, "记录")
    store.delete_record(
        collection, key, expected_version=expected_version, actor=str(scope.username)
    )


def record_history(store: Store, scope: Scope, collection: str, key: str) -> list[dict[str, Any]]:
    """Audit entries of one visible record."""
    get_record(store, scope, collection, key)
    return [a.to_dict() for a in store.audit_log(target=f"{collection}:{key}")]


# -- ledger tables -----------------------------------------------------------------------


def table_meta(store: Store, name: str) -> dict[str, Any]:
    """Publication and jurisdiction column of a table (defaults: unpublished, none)."""
    try:
        return dict(store.get_record(TABLE_META, name).data)
    except NotFoundError:
        return {}


def set_table_meta(
    store: Store,
    scope: Scope,
    name: str,
    *,
    published: bool | None = None,
    jurisdiction_field: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Publish a table or name its jurisdiction column (``publish`` permission)."""
    scope.require("publish")
    if name not in store.table_names():
        raise NotFoundError(f"数据表不存在: {name}", key="table_not_found")
    if jurisdiction_field is not None and jurisdiction_field != "":
        cols = store.query_table(name, limit=0)[0].columns
        if jurisdiction_field not in cols:
            raise InputError(
                f"数据表 {name} 没有列 {jurisdiction_field}",
                key="bad_field",
                field="jurisdiction_field",
                hint="现有列: " + ", ".join(map(str, cols)),
            )
    try:
        rec = store.get_record(TABLE_META, name)
        data, version = dict(rec.data), rec.version
    except NotFoundError:
        data, version = {}, None
    if published is not None:
        data["published"] = bool(published)
    if jurisdiction_field is not None:
        data["jurisdiction_field"] = jurisdiction_field or None
    if title is not None:
        data["title"] = title
    store.put_record(
        TABLE_META,
        name,
        data,
        expected_version=version,
        actor=str(scope.username),
        action="table.meta",
    )
    return data


def visible_tables(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """Tables the scope may list: published ones for the public, all for staff."""
    out = []
    metas = {r.key: dict(r.data) for r in store.list_records(TABLE_META)}
    for name in store.table_names():
        meta = metas.get(name, {})
        if scope.public_only and not meta.get("published"):
            continue
        out.append(
            {
                "name": name,
                "title": meta.get("title"),
                "published": bool(meta.get("published")),
                "jurisdiction_field": meta.get("jurisdiction_field"),
            }
        )
    return out


def read_table(
    store: Store, scope: Scope, name: str, *, offset: int = 0, limit: int = 1000
) -> dict[str, Any]:
    """Rows of a visible table (filtered by its jurisdiction column for staff)."""
    meta = table_meta(store, name) if name in store.table_names() else None
    if meta is None or (scope.public_only and not meta.get("published")):
        raise NotFoundError(f"数据表不存在或未公开: {name}", key="table_not_found", field="table")
    if offset < 0 or limit < 0:
        raise InputError("offset 与 limit 不能为负", key="bad_paging")
    field = meta.get("jurisdiction_field")
    prefixes = (
        None
        if (scope.public_only or meta.get("published") or not field)
        else scope.record_prefixes()
    )
    df, total = store.query_table(
        name, jurisdiction_field=field, jurisdictions=prefixes, offset=offset, limit=limit
    )
    from yizhangtu.services.features import json_ready

    rows = json_ready(
        pd.DataFrame(df).astype(object).where(pd.notna(df), None).to_dict(orient="records")
    )
    return {
        "name": name,
        "columns": [str(c) for c in df.columns],
        "rows": rows,
        "total": total,
        "offset": offset,
        "limit": limit,
        "filtered_by_jurisdiction": prefixes is not None,
    }
