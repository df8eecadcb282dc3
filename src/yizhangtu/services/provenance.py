"""Provenance services: record results and explain them back to the imported files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from yizhangtu.errors import NotFoundError
from yizhangtu.provenance import InputRef, PolicyRef, ProvenanceRecord, make_provenance
from yizhangtu.store import SnapshotInfo, Store

__all__ = ["explain_chain", "record_result", "snapshot_ref", "table_ref"]


def snapshot_ref(snap: SnapshotInfo) -> InputRef:
    """Return an input reference for a layer snapshot."""
    return InputRef(
        kind="snapshot",
        name=snap.layer,
        content_hash=snap.content_hash,
        snapshot_id=snap.id,
        label=snap.label,
        source_file=snap.source_file,
        source_hash=snap.source_hash,
    )


def table_ref(store: Store, name: str) -> InputRef:
    """Return an input reference for a ledger table."""
    return InputRef(kind="table", name=name, content_hash=store.table_hash(name))


def record_result(
    store: Store,
    kind: str,
    *,
    inputs: Sequence[InputRef],
    params: Mapping[str, Any] | None = None,
    policy: PolicyRef | Mapping[str, str] | None = None,
    result: Any = None,
    actor: str,
) -> ProvenanceRecord:
    """Build and persist a provenance record; the caller attaches ``record.id`` to its result."""
    rec = make_provenance(
        kind, inputs=inputs, params=params, policy=policy, result=result, actor=actor
    )
    store.save_provenance(rec)
    return rec


def explain_chain(store: Store, rid: str) -> dict[str, Any]:
    """Return the chain behind a result.

    That is its record and, for each input, the snapshot and its import.
    """
    rec = store.get_provenance(rid)
    inputs: list[dict[str, Any]] = []
    for ref in rec.inputs:
        item: dict[str, Any] = dict(ref.__dict__)
        item["present"] = False
        if ref.kind == "snapshot":
            try:
                snap = store.resolve_snapshot(ref.name, ref.snapshot_id)
                item["present"] = snap.content_hash == ref.content_hash
                item["imported_by"] = snap.created_by
                item["imported_at"] = snap.created_at
                item["source_crs"] = snap.source_crs
                item["notes"] = dict(snap.notes)
                audits = [
                    a
                    for a in store.audit_log(target=f"layer:{ref.name}")
                    if a.details.get("snapshot") == snap.id
                ]
                item["audit_seq"] = audits[0].seq if audits else None
            except NotFoundError:
                item["present"] = False
        elif ref.kind == "table":
            try:
                item["present"] = store.table_hash(ref.name) == ref.content_hash
            except NotFoundError:
                item["present"] = False
        inputs.append(item)
    return {"record": rec.to_dict(), "inputs": inputs}
