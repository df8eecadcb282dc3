"""Provenance records: what every computed figure was computed from.

A record names the input layer snapshots (with content hashes and their source files), the
input tables, the policy pack (id, version, hash), the parameters and the package version.
Records are pure data; the store persists them and ``yizhangtu explain`` prints them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "InputRef",
    "PolicyRef",
    "ProvenanceRecord",
    "canonical_json",
    "make_provenance",
    "sha256_hex",
]


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(data: bytes | str) -> str:
    """Return the SHA-256 hex digest of ``data``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class InputRef:
    """One input: a layer snapshot or a table, with its content hash."""

    kind: str  # "snapshot" | "table" | "file"
    name: str
    content_hash: str
    snapshot_id: int | None = None
    label: str | None = None
    source_file: str | None = None
    source_hash: str | None = None


@dataclass(frozen=True)
class PolicyRef:
    """The policy pack a result was computed under."""

    id: str
    version: str
    hash: str


@dataclass(frozen=True)
class ProvenanceRecord:
    """The full chain behind one computed result."""

    id: str
    kind: str
    created_at: str
    created_by: str
    package_version: str
    inputs: tuple[InputRef, ...]
    policy: PolicyRef | None
    params: Mapping[str, Any] = field(default_factory=dict)
    result_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        d = asdict(self)
        d["inputs"] = [asdict(i) for i in self.inputs]
        d["params"] = dict(self.params)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProvenanceRecord:
        """Rebuild a record from :meth:`to_dict` output."""
        pol = d.get("policy")
        return cls(
            id=d["id"],
            kind=d["kind"],
            created_at=d["created_at"],
            created_by=d["created_by"],
            package_version=d["package_version"],
            inputs=tuple(InputRef(**i) for i in d.get("inputs", [])),
            policy=PolicyRef(**pol) if pol else None,
            params=dict(d.get("params") or {}),
            result_hash=d.get("result_hash"),
        )


def make_provenance(
    kind: str,
    *,
    inputs: Iterable[InputRef],
    params: Mapping[str, Any] | None = None,
    policy: PolicyRef | Mapping[str, str] | None = None,
    result: Any = None,
    actor: str = "unknown",
) -> ProvenanceRecord:
    """Build a record; its id is a hash of everything but the timestamp.

    Parameters
    ----------
    kind : str
        What was computed, e.g. ``"area_table"``.
    inputs : iterable of InputRef
        Snapshots and tables read.
    params : mapping, optional
        Parameters that shaped the result.
    policy : PolicyRef or mapping, optional
        Pack used, if any.
    result : any, optional
        The result (JSON-serialisable) whose hash is recorded.
    actor : str
        Who ran it.
    """
    from yizhangtu import __version__

    pol = PolicyRef(**policy) if isinstance(policy, Mapping) else policy
    ins = tuple(sorted(inputs, key=lambda i: (i.kind, i.name, i.snapshot_id or 0)))
    result_hash = sha256_hex(canonical_json(result)) if result is not None else None
    body = {
        "kind": kind,
        "inputs": [asdict(i) for i in ins],
        "policy": asdict(pol) if pol else None,
        "params": dict(params or {}),
        "package_version": __version__,
        "result_hash": result_hash,
    }
    rid = sha256_hex(canonical_json(body))[:16]
    return ProvenanceRecord(
        id=rid,
        kind=kind,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=actor,
        package_version=__version__,
        inputs=ins,
        policy=pol,
        params=dict(params or {}),
        result_hash=result_hash,
    )
