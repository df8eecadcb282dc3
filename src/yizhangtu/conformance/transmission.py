"""Plan transmission (规划传导): caps passed down a hierarchy of plans, checked with elasticity.

A hierarchy (``data/hierarchies/*.yaml`` or a user file) lists plan nodes (city → district →
street/unit, or 大圈 → 中圈 → 小圈) with their caps on population, building scale, construction
land and floor-area ratio, or tasks such as construction-land reduction. For each parent and
metric, the children's total (sum; area-weighted mean for FAR) must not exceed the parent's cap
by more than the elasticity of the tier (Dongguan: 10% per tier, 004 (四)); a task (direction
``min``) must be covered by the children within the same elasticity. The elasticity is a pack
parameter (``transmission_elasticity``, a number or a mapping by parent level); the verdict
messages come from the conformance pack.

Refused: a parent id that does not exist (orphan), a second root, a cycle, an unknown metric.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from yizhangtu.conformance._common import data_names, read_data_yaml
from yizhangtu.conformance.rules import TransmissionSubject, evaluate
from yizhangtu.errors import FileFormatError, NotFoundError, PolicyError, ValidationError
from yizhangtu.policy import PolicyPack
from yizhangtu.policy.rules import Finding

__all__ = [
    "Elasticity",
    "Hierarchy",
    "Metric",
    "PlanNode",
    "TransmissionResult",
    "check_transmission",
    "hierarchy_from_mapping",
    "list_hierarchies",
    "load_hierarchy",
    "metrics_catalogue",
]


@dataclass(frozen=True)
class Metric:
    """A transmitted quantity.

    Attributes
    ----------
    id, label, unit : str
        Identifier, Chinese label, display unit (values are stored in this unit).
    aggregate : str
        ``sum`` or ``weighted_mean`` (by ``weight``, another metric).
    direction : str
        ``max`` for a cap (上限), ``min`` for a task (下限, e.g. 减量任务).
    """

    id: str
    label: str
    unit: str
    aggregate: str = "sum"
    direction: str = "max"
    weight: str | None = None
    decimals: int = 2

    def fmt(self, v: float) -> str:
        """Value with unit, e.g. ``333.4万人``."""
        return f"{v:,.{self.decimals}f}{self.unit}"


def metrics_catalogue() -> dict[str, Metric]:
    """Metrics defined in ``data/transmission_metrics.yaml``."""
    doc = read_data_yaml("transmission_metrics.yaml")
    return {
        k: Metric(
            id=k,
            label=v["label"],
            unit=v["unit"],
            aggregate=v.get("aggregate", "sum"),
            direction=v.get("direction", "max"),
            weight=v.get("weight"),
            decimals=int(v.get("decimals", 2)),
        )
        for k, v in doc["metrics"].items()
    }


@dataclass(frozen=True)
class PlanNode:
    """One plan of the hierarchy."""

    id: str
    name: str
    level: str
    parent: str | None
    values: Mapping[str, float]
    current: Mapping[str, float] = field(default_factory=dict)
    synthetic: bool = False
    source: str | None = None


@dataclass(frozen=True)
class Hierarchy:
    """A validated plan hierarchy (tree)."""

    id: str
    title: str
    levels: tuple[str, ...]
    nodes: Mapping[str, PlanNode]
    metrics: Mapping[str, Metric]
    root: str
    elasticity_pack: str | None = None
    synthetic: bool = False
    notes: tuple[str, ...] = ()
    source: str = ""
    content: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def children(self, node_id: str) -> list[PlanNode]:
        """Direct children in file order."""
        return [n for n in self.nodes.values() if n.parent == node_id]

    def depth_first(self) -> list[PlanNode]:
        """Nodes from the root down, parents before children."""
        out: list[PlanNode] = []
        stack = [self.root]
        while stack:
            nid = stack.pop()
            out.append(self.nodes[nid])
            stack.extend(reversed([c.id for c in self.children(nid)]))
        return out

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the file content."""
        from yizhangtu.provenance import canonical_json, sha256_hex

        return sha256_hex(canonical_json(self.content))


def _bad(
    msg: str,
    source: str,
    *,
    key: str = "hierarchy_invalid",
    feature: str | None = None,
    hint: str | None = None,
    data: dict[str, Any] | None = None,
) -> ValidationError:
    return ValidationError(msg, key=key, file=source, feature=feature, hint=hint, data=data)


def hierarchy_from_mapping(doc: Any, *, source: str = "<mapping>") -> Hierarchy:
    """Build and validate a hierarchy from parsed YAML.

    Raises
    ------
    ValidationError
        ``hierarchy_orphan`` (parent id not found, or a second root), ``hierarchy_cycle``,
        ``hierarchy_no_root``, ``hierarchy_duplicate``, ``hierarchy_metric_unknown``,
        ``hierarchy_level``, ``hierarchy_invalid``.
    """
    if not isinstance(doc, Mapping):
        raise _bad("规划层级文件顶层须为映射", source)
    for k in ("id", "title", "levels", "nodes"):
        if k not in doc:
            raise _bad(f"规划层级缺少 {k}", source)
    catalogue = metrics_catalogue()
    levels = tuple(str(x) for x in doc["levels"])
    nodes: dict[str, PlanNode] = {}
    for raw in doc["nodes"]:
        if not isinstance(raw, Mapping) or "id" not in raw:
            raise _bad(f"节点须为含 id 的映射: {raw!r}", source)
        nid = str(raw["id"])
        if nid in nodes:
            raise _bad(f"节点编号重复: {nid}", source, key="hierarchy_duplicate", feature=nid)
        level = str(raw.get("level", ""))
        if level not in levels:
            raise _bad(
                f"节点 {nid} 的层级 {level!r} 不在 levels ({'、'.join(levels)}) 中",
                source,
                key="hierarchy_level",
                feature=nid,
            )
        vals: dict[str, float] = {}
        for part in ("values", "current"):
            for m, v in (raw.get(part) or {}).items():
                if m not in catalogue:
                    raise _bad(
                        f"节点 {nid} 的指标 {m} 未定义",
                        source,
                        key="hierarchy_metric_unknown",
                        feature=nid,
                        hint="可用指标: "
                        + "、".join(f"{k}({c.label})" for k, c in catalogue.items()),
                    )
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise _bad(f"节点 {nid} 的指标 {m} 须为数值, 实为 {v!r}", source, feature=nid)
        vals = {str(k): float(v) for k, v in (raw.get("values") or {}).items()}
        parent = raw.get("parent")
        nodes[nid] = PlanNode(
            id=nid,
            name=str(raw.get("name", nid)),
            level=level,
            parent=None if parent in (None, "") else str(parent),
            values=vals,
            current={str(k): float(v) for k, v in (raw.get("current") or {}).items()},
            synthetic=bool(raw.get("synthetic", doc.get("synthetic", False))),
            source=raw.get("source"),
        )
    if not nodes:
        raise _bad("规划层级没有节点", source)
    orphans = [n for n in nodes.values() if n.parent is not None and n.parent not in nodes]
    if orphans:
        raise _bad(
            "规划层级中有孤立节点, 上级不存在: "
            + "; ".join(f"{n.id}({n.name}) → {n.parent}" for n in orphans),
            source,
            key="hierarchy_orphan",
            feature=orphans[0].id,
            hint="核对 parent 是否写错, 或补充上级节点",
            data={"orphans": [n.id for n in orphans]},
        )
    # cycles: follow parents from every node
    for n in nodes.values():
        seen = [n.id]
        cur = n.parent
        while cur is not None:
            if cur in seen:
                loop = [*seen[seen.index(cur) :], cur]
                raise _bad(
                    "规划层级存在循环: " + " → ".join(loop),
                    source,
                    key="hierarchy_cycle",
                    feature=cur,
                    hint="每个节点只能有一个上级, 且不能回到自身",
                    data={"cycle": loop},
                )
            seen.append(cur)
            cur = nodes[cur].parent
    roots = [n for n in nodes.values() if n.parent is None]
    if not roots:
        raise _bad("规划层级没有根节点 (parent 为空的节点)", source, key="hierarchy_no_root")
    if len(roots) > 1:
        raise _bad(
            "规划层级有多个根节点, 除第一个外均为孤立节点: "
            + "、".join(f"{r.id}({r.name})" for r in roots[1:]),
            source,
            key="hierarchy_orphan",
            feature=roots[1].id,
            hint="为这些节点填写 parent, 或拆分为多个层级文件",
            data={"orphans": [r.id for r in roots[1:]]},
        )
    for n in nodes.values():
        if n.parent is not None:
            pl, cl = levels.index(nodes[n.parent].level), levels.index(n.level)
            if cl != pl + 1:
                raise _bad(
                    f"节点 {n.id} 的层级 {n.level} 不是上级 {n.parent} ({nodes[n.parent].level}) "
                    "的下一级",
                    source,
                    key="hierarchy_level",
                    feature=n.id,
                )
    used = {m for n in nodes.values() for m in (*n.values, *n.current)}
    return Hierarchy(
        id=str(doc["id"]),
        title=str(doc["title"]),
        levels=levels,
        nodes=nodes,
        metrics={
            k: v
            for k, v in catalogue.items()
            if k in used or any(c.weight == k for c in catalogue.values() if c.id in used)
        },
        root=roots[0].id,
        elasticity_pack=doc.get("elasticity_pack"),
        synthetic=bool(doc.get("synthetic", False)),
        notes=tuple(str(x) for x in doc.get("notes", []) or []),
        source=source,
        content=dict(doc),
    )


def list_hierarchies() -> list[str]:
    """Ids of the hierarchies shipped as data."""
    return data_names("hierarchies")


def load_hierarchy(name_or_path: str | os.PathLike[str]) -> Hierarchy:
    """Load a shipped hierarchy by id (``chaoyang-2035``) or a YAML file by path."""
    text = os.fspath(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or os.sep in text:
        if not p.is_file():
            raise NotFoundError(f"找不到规划层级文件 {p}", key="hierarchy_not_found", file=str(p))
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FileFormatError(
                f"规划层级文件不是有效的 YAML: {exc}", key="hierarchy_yaml", file=str(p)
            ) from None
        return hierarchy_from_mapping(doc, source=str(p))
    if text not in data_names("hierarchies"):
        raise NotFoundError(
            f"没有名为 {text} 的规划层级",
            key="hierarchy_not_found",
            hint="内置: " + ", ".join(data_names("hierarchies")) + "; 或给出 YAML 文件路径",
        )
    return hierarchy_from_mapping(
        read_data_yaml(f"hierarchies/{text}.yaml"), source=f"hierarchies/{text}.yaml"
    )


@dataclass(frozen=True)
class Elasticity:
    """Elasticity of transmission: a default and optional values by parent level."""

    default: float
    by_level: Mapping[str, float] = field(default_factory=dict)
    pack: Mapping[str, str] = field(default_factory=dict)
    clause: str = ""

    def for_level(self, level: str) -> float:
        """Elasticity applying below a parent of ``level``."""
        return float(self.by_level.get(level, self.default))

    @classmethod
    def from_pack(cls, pack: PolicyPack, name: str = "transmission_elasticity") -> Elasticity:
        """Read ``transmission_elasticity`` (a ratio, or ratios by level) from any pack."""
        value = pack.param(name, unit="ratio")
        p = pack.parameter(name)
        clause = p.clause or "本地设定"
        if isinstance(value, Mapping):
            default = float(value.get("default", max(value.values())))
            return cls(
                default=default,
                by_level={str(k): float(v) for k, v in value.items() if k != "default"},
                pack=pack.ref(),
                clause=clause,
            )
        return cls(default=float(value), pack=pack.ref(), clause=clause)


@dataclass(frozen=True)
class TransmissionResult:
    """Outcome of :func:`check_transmission`.

    Attributes
    ----------
    rows : DataFrame
        One row per (parent, metric): ``parent``, ``parent_name``, ``level``, ``metric``,
        ``metric_label``, ``unit``, ``direction``, ``parent_value``, ``children_total``,
        ``children``, ``elasticity``, ``limit``, ``headroom`` (to the cap, negative when over),
        ``elastic_headroom`` (to the cap plus elasticity), ``outcome``, ``severity``.
    current : DataFrame
        Nodes' current values against their own caps (``node``, ``metric``, ``value``,
        ``current``, ``use_share``, ``status``).
    findings : list of Finding
    """

    hierarchy: Hierarchy
    elasticity: Elasticity
    rows: pd.DataFrame
    current: pd.DataFrame
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """No error finding."""
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""

        def recs(df: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {
                    str(k): (
                        None
                        if isinstance(v, float) and v != v
                        else (v.item() if hasattr(v, "item") else v)
                    )
                    for k, v in r.items()
                }
                for r in df.to_dict("records")
            ]

        return {
            "hierarchy": {
                "id": self.hierarchy.id,
                "title": self.hierarchy.title,
                "hash": self.hierarchy.hash,
                "synthetic": self.hierarchy.synthetic,
                "source": self.hierarchy.source,
            },
            "elasticity": {
                "default": self.elasticity.default,
                "by_level": dict(self.elasticity.by_level),
                "pack": dict(self.elasticity.pack),
                "clause": self.elasticity.clause,
            },
            "ok": self.ok,
            "rows": recs(self.rows),
            "current": recs(self.current),
            "findings": [f.to_dict() for f in self.findings],
        }


def _children_total(
    metric: Metric, kids: Sequence[PlanNode]
) -> tuple[float | None, tuple[str, ...]]:
    missing = tuple(k.name for k in kids if metric.id not in k.values)
    if missing:
        return None, missing
    if metric.aggregate == "sum":
        return float(sum(k.values[metric.id] for k in kids)), ()
    w = metric.weight or ""
    missing_w = tuple(f"{k.name}(权重 {w})" for k in kids if w not in k.values)
    if missing_w:
        return None, missing_w
    tw = sum(k.values[w] for k in kids)
    if tw <= 0:
        return None, tuple(f"{k.name}(权重为 0)" for k in kids)
    return float(sum(k.values[metric.id] * k.values[w] for k in kids) / tw), ()


def _current_status(m: Metric, planned: float | None, current: float) -> str:
    if planned is None:
        return "无规划值"
    if m.direction == "max":
        return (
            f"超出上限 {current / planned - 1:.1%}"
            if current > planned
            else f"在上限内(已用 {current / planned:.1%})"
        )
    return "已完成" if current >= planned else f"已完成 {current / planned:.1%}"


def check_transmission(
    h: Hierarchy, *, elasticity: Elasticity, packs: Sequence[PolicyPack], at: date
) -> TransmissionResult:
    """Check every parent's caps against its children, within ``elasticity``.

    Parameters
    ----------
    h : Hierarchy
    elasticity : Elasticity
        From :meth:`Elasticity.from_pack` (e.g. dongguan-2023, 004 (四): 10%).
    packs : sequence of PolicyPack
        Conformance packs giving the ``conformance.transmission`` messages.
    at : date
        Evaluation date.
    """
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for node in h.depth_first():
        kids = h.children(node.id)
        if not kids:
            continue
        e = elasticity.for_level(node.level)
        for mid, pv in node.values.items():
            m = h.metrics[mid]
            total, missing = _children_total(m, kids)
            subj = TransmissionSubject(
                parent_id=node.id,
                parent_name=node.name,
                metric=mid,
                metric_label=m.label,
                unit=m.unit,
                direction=m.direction,
                parent_value=pv,
                children_total=total,
                missing=missing,
                elasticity=e,
                elasticity_clause=elasticity.clause,
                fmt=m.fmt,
            )
            fs = evaluate(packs, "transmission", subj, at, subject_id=node.id)
            if not fs:
                raise PolicyError(
                    "所给政策包没有启用规则 conformance.transmission",
                    key="policy_rule_missing",
                    hint="使用 conformance-national 政策包",
                )
            findings.extend(fs)
            limit = pv * (1 + e) if m.direction == "max" else pv * (1 - e)
            rows.append(
                {
                    "parent": node.id,
                    "parent_name": node.name,
                    "level": node.level,
                    "metric": mid,
                    "metric_label": m.label,
                    "unit": m.unit,
                    "direction": m.direction,
                    "parent_value": pv,
                    "children_total": total,
                    "children": len(kids),
                    "elasticity": e,
                    "limit": limit,
                    "headroom": (pv - total if m.direction == "max" else total - pv)
                    if total is not None
                    else None,
                    "elastic_headroom": (limit - total if m.direction == "max" else total - limit)
                    if total is not None
                    else None,
                    "outcome": fs[0].outcome,
                    "severity": fs[0].severity,
                }
            )
    cur = []
    for node in h.depth_first():
        for mid, cv in node.current.items():
            planned = node.values.get(mid)
            m = h.metrics[mid]
            cur.append(
                {
                    "node": node.id,
                    "node_name": node.name,
                    "metric": mid,
                    "metric_label": m.label,
                    "unit": m.unit,
                    "direction": m.direction,
                    "value": planned,
                    "current": cv,
                    "use_share": (cv / planned) if planned else None,
                    "status": _current_status(m, planned, cv),
                }
            )
    return TransmissionResult(
        hierarchy=h,
        elasticity=elasticity,
        rows=pd.DataFrame(rows),
        current=pd.DataFrame(cur),
        findings=findings,
    )
