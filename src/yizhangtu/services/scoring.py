"""Site scoring services (一站一策一档) over the workspace.

Configurations and results are kept in the workspace, sites and criterion inputs are read from
workspace layers and tables, dossiers are written to a folder.

A workspace configuration is the same YAML as the file-based one (``yizhangtu score run``), with
workspace bindings instead of paths::

    sites: {layer: micro_centres, id_field: site_id, name_field: name}
    layers: {transit_stops: {layer: transit_stops}}      # criterion layer → workspace layer
    tables: {facility_gap: {table: facility_gap}}        # criterion table → ledger table
    indicators: {table: indicator_evaluations}           # indicator criteria (optional)
    boundaries: {layer: chaoyang_streets}                # map background of the dossiers

A name without a binding is looked up as a layer or table of the same name. Configurations are
records (``scoring_configs``), results are records (``scoring_results``) plus the ledger table
``scoring_results`` (one row per site and run), each with a provenance record naming the
snapshots and tables read. :func:`rerun` scores a stored run again from exactly those snapshots.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from yizhangtu.errors import ConflictError, InputError, NotFoundError
from yizhangtu.provenance import InputRef, canonical_json, sha256_hex
from yizhangtu.scoring import (
    ScoringConfig,
    ScoringResult,
    parse_scoring_config,
    render_dossier_html,
    render_dossier_pdf,
    score_sites,
)
from yizhangtu.services.provenance import record_result, snapshot_ref, table_ref
from yizhangtu.store import Record, Store

__all__ = [
    "CONFIGS",
    "RESULTS",
    "RESULTS_TABLE",
    "ScoringRun",
    "get_config",
    "load_results",
    "rerun",
    "save_config",
    "score_workspace",
    "write_dossiers",
]

CONFIGS = "scoring_configs"
RESULTS = "scoring_results"
RESULTS_TABLE = "scoring_results"


def save_config(
    store: Store,
    key: str,
    mapping: Mapping[str, Any],
    *,
    actor: str,
    jurisdiction: str | None = None,
    expected_version: int | None = None,
    replace: bool = False,
) -> Record:
    """Validate and store a scoring configuration (create, or update at ``expected_version``)."""
    parse_scoring_config(mapping)  # raises on an invalid config
    data = json.loads(canonical_json(dict(mapping)))
    if expected_version is None and replace:
        try:
            expected_version = store.get_record(CONFIGS, key).version
        except NotFoundError:
            expected_version = None
    return store.put_record(
        CONFIGS,
        key,
        data,
        expected_version=expected_version,
        actor=actor,
        jurisdiction=jurisdiction,
        action="scoring.config",
    )


def get_config(store: Store, key: str) -> tuple[dict[str, Any], Record]:
    """Return a stored configuration mapping and its record."""
    rec = store.get_record(CONFIGS, key)
    return dict(rec.data), rec


@dataclass(frozen=True, eq=False)
class ScoringRun:
    """One scoring run against the workspace."""

    run_id: str
    config_key: str | None
    config_version: int | None
    result: ScoringResult
    sites: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame]
    boundaries: gpd.GeoDataFrame | None
    provenance_id: str
    record: Record | None
    synthetic: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the scoring result plus run facts)."""
        return self.result.to_dict() | {
            "run_id": self.run_id,
            "config": self.config_key,
            "config_version": self.config_version,
            "provenance_id": self.provenance_id,
            "synthetic": self.synthetic,
        }


def _binding(entry: Any, kind: str, default: str) -> tuple[str, str | int | None]:
    if isinstance(entry, Mapping):
        return str(entry.get(kind) or default), entry.get("snapshot")
    if isinstance(entry, str) and entry:
        return entry, None
    return default, None


def _layer(
    store: Store, name: str, snapshot: str | int | None, refs: list[InputRef], snaps: dict[str, int]
) -> gpd.GeoDataFrame:
    snap = store.resolve_snapshot(name, snapshot)
    refs.append(snapshot_ref(snap))
    snaps[name] = snap.id
    return store.read_layer(name, snapshot=snap.id)


def _used_names(cfg: ScoringConfig) -> tuple[set[str], set[str], bool]:
    layers = {
        str(c.source.layer)
        for c in cfg.criteria
        if c.source.kind in ("layer_field", "distance_to_nearest", "count_within")
    }
    tables = {str(c.source.table) for c in cfg.criteria if c.source.kind == "table"}
    needs_ind = any(c.source.kind == "indicator" for c in cfg.criteria)
    return layers, tables, needs_ind


def _indicator_table(
    store: Store, entry: Any, refs: list[InputRef], hashes: dict[str, str]
) -> pd.DataFrame:
    name, _ = _binding(entry, "table", "indicator_evaluations")
    t = store.read_table(name)
    refs.append(table_ref(store, name))
    hashes[name] = store.table_hash(name)
    if isinstance(entry, Mapping) and entry.get("year") is not None:
        t = t[pd.to_numeric(t["year"]).astype(int) == int(entry["year"])]
    unit_col = "unit_id" if "unit_id" in t.columns else "unit"
    return pd.DataFrame(
        {
            "indicator": t["indicator"],
            "unit": t[unit_col].astype(str),
            "value": t["value"],
            "year": t["year"],
        }
    )


def _is_synthetic(
    store: Store, layers: Sequence[str], tables: Mapping[str, pd.DataFrame], cfg: ScoringConfig
) -> bool:
    if cfg.synthetic:
        return True
    for n in layers:
        try:
            if store.layer(n).synthetic:
                return True
        except NotFoundError:
            continue
    return any(
        "synthetic" in t.columns and bool(t["synthetic"].astype(bool).any())
        for t in tables.values()
    )


def score_workspace(
    store: Store,
    config: str | Mapping[str, Any],
    *,
    actor: str,
    jurisdiction: str | None = None,
    sites_layer: str | None = None,
    method: str | None = None,
    normalisation: str | None = None,
    persist: bool = True,
    _pinned: Mapping[str, Any] | None = None,
) -> ScoringRun:
    """Score the sites of a workspace layer with a stored (key) or given configuration.

    Parameters
    ----------
    store : Store
    config : str or Mapping
        Key of a stored configuration, or a configuration mapping.
    actor : str
        Who runs it.
    jurisdiction : str, optional
        Jurisdiction of the result record (default: that of the configuration record).
    sites_layer : str, optional
        Override ``sites.layer`` of the configuration.
    method, normalisation : str, optional
        Override the configured method / normalisation.
    persist : bool
        Store the result (record + ledger rows).

    Raises
    ------
    InputError
        No sites layer; a criterion with no values.
    NotFoundError
        A layer or table the configuration names is not in the workspace.
    """
    rec_cfg = None
    if isinstance(config, str):
        mapping, rec_cfg = get_config(store, config)
        key: str | None = config
        jurisdiction = jurisdiction or rec_cfg.jurisdiction
    else:
        mapping, key = dict(config), None
    cfg = parse_scoring_config(mapping)
    pinned = dict(_pinned or {})
    snaps_pinned: Mapping[str, int] = pinned.get("snapshots", {})
    refs: list[InputRef] = []
    snaps: dict[str, int] = {}
    hashes: dict[str, str] = {}
    sites_entry = mapping.get("sites") or {}
    sname = sites_layer or (sites_entry.get("layer") if isinstance(sites_entry, Mapping) else None)
    if not sname:
        raise InputError(
            "评价配置缺少 sites.layer (站点图层)",
            key="config_missing",
            field="sites",
            hint="如 sites: {layer: micro_centres, id_field: site_id}",
        )
    sites = _layer(
        store,
        sname,
        snaps_pinned.get(
            sname, sites_entry.get("snapshot") if isinstance(sites_entry, Mapping) else None
        ),
        refs,
        snaps,
    )
    used_layers, used_tables, needs_ind = _used_names(cfg)
    layer_map = mapping.get("layers") or {}
    layers: dict[str, gpd.GeoDataFrame] = {}
    ws_layers = [sname]
    for n in sorted(used_layers):
        wsname, snap = _binding(layer_map.get(n), "layer", n)
        layers[n] = _layer(store, wsname, snaps_pinned.get(wsname, snap), refs, snaps)
        ws_layers.append(wsname)
    table_map = mapping.get("tables") or {}
    tables: dict[str, pd.DataFrame] = {}
    for n in sorted(used_tables):
        wsname, _ = _binding(table_map.get(n), "table", n)
        tables[n] = store.read_table(wsname)
        h = store.table_hash(wsname)
        want = pinned.get("tables", {}).get(wsname)
        if want is not None and want != h:
            raise ConflictError(
                f"数据表 {wsname} 自上次评价后已变化, 无法按原样重算",
                key="table_changed",
                hint="重新运行评价 (yizhangtu score run-ws) 生成新结果",
            )
        refs.append(table_ref(store, wsname))
        hashes[wsname] = h
    indicators = (
        _indicator_table(store, mapping.get("indicators"), refs, hashes) if needs_ind else None
    )
    boundaries = None
    if mapping.get("boundaries"):
        bname, bsnap = _binding(mapping["boundaries"], "layer", "")
        if bname:
            boundaries = _layer(store, bname, snaps_pinned.get(bname, bsnap), refs, snaps)
    result = score_sites(
        sites,
        cfg,
        layers=layers,
        tables=tables,
        indicators=indicators,
        method=method,
        normalisation=normalisation,
    )
    synthetic = _is_synthetic(store, ws_layers, tables, cfg)
    cfg_hash = sha256_hex(canonical_json(mapping))
    prov = record_result(
        store,
        "scoring",
        inputs=refs,
        params={
            "config": key,
            "config_version": rec_cfg.version if rec_cfg else None,
            "config_hash": cfg_hash,
            "method": result.method,
            "normalisation": result.normalisation,
            "weights": dict(result.weights),
            "metric_crs": f"EPSG:{result.metric_epsg}" if result.metric_epsg else None,
        },
        result=[[str(s), float(r["score"]), int(r["rank"])] for s, r in result.table.iterrows()],
        actor=actor,
    )
    run_id = f"{key or cfg.extra.get('id') or 'scoring'}@{prov.id[:10]}"
    record = None
    if persist:
        record = _persist(
            store,
            run_id,
            key,
            rec_cfg,
            cfg_hash,
            result,
            snaps,
            hashes,
            prov.id,
            synthetic,
            jurisdiction,
            actor,
        )
    return ScoringRun(
        run_id,
        key,
        rec_cfg.version if rec_cfg else None,
        result,
        sites,
        layers,
        boundaries,
        prov.id,
        record,
        synthetic,
    )


def _jnum(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _persist(
    store: Store,
    run_id: str,
    key: str | None,
    rec_cfg: Record | None,
    cfg_hash: str,
    result: ScoringResult,
    snaps: Mapping[str, int],
    hashes: Mapping[str, str],
    prov_id: str,
    synthetic: bool,
    jurisdiction: str | None,
    actor: str,
) -> Record:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data = {
        "run_id": run_id,
        "config": key,
        "config_version": rec_cfg.version if rec_cfg else None,
        "config_hash": cfg_hash,
        "title": result.config.title,
        "method": result.method,
        "normalisation": result.normalisation,
        "weights": dict(result.weights),
        "ahp_cr": result.ahp.cr if result.ahp else None,
        "snapshots": dict(snaps),
        "tables": dict(hashes),
        "provenance_id": prov_id,
        "synthetic": synthetic,
        "scored_at": now,
        "warnings": list(result.warnings),
        "sites": [
            {
                "site_id": str(s),
                "name": str(r["name"]),
                "score": float(r["score"]),
                "rank": int(r["rank"]),
                "phase": str(r["phase"]),
                "mode": str(r["mode"]),
                "rank_stable": bool(r["rank_stable"]),
            }
            for s, r in result.table.iterrows()
        ],
    }
    rows = []
    for s, r in result.table.iterrows():
        rows.append(
            {
                "run_id": run_id,
                "config": key or "",
                "site_id": str(s),
                "name": str(r["name"]),
                "score": float(r["score"]),
                "rank": int(r["rank"]),
                "phase": str(r["phase"]),
                "mode": str(r["mode"]),
                "rank_stable": bool(r["rank_stable"]),
                "criteria": canonical_json(
                    {
                        c.name: {
                            "raw": _jnum(result.raw.at[s, c.name]),
                            "normalised": _jnum(result.normalised.at[s, c.name]),
                            "contribution": _jnum(result.contributions.at[s, c.name]),
                        }
                        for c in result.config.criteria
                    }
                ),
                "synthetic": synthetic,
                "provenance_id": prov_id,
                "scored_at": now,
            }
        )
    new = pd.DataFrame(rows)
    with _transaction(store):
        try:
            cur = store.get_record(RESULTS, run_id)
            rec = store.put_record(
                RESULTS,
                run_id,
                data,
                expected_version=cur.version,
                actor=actor,
                jurisdiction=jurisdiction,
                action="scoring.result",
            )
        except NotFoundError:
            rec = store.put_record(
                RESULTS,
                run_id,
                data,
                expected_version=None,
                actor=actor,
                jurisdiction=jurisdiction,
                action="scoring.result",
            )
        if RESULTS_TABLE in store.table_names():
            old = store.read_table(RESULTS_TABLE)
            if set(old.columns) == set(new.columns):
                old = old[old["run_id"].astype(str) != run_id]
                new = (
                    pd.concat([old[list(new.columns)], new], ignore_index=True) if len(old) else new
                )
        store.write_table(RESULTS_TABLE, new, actor=actor, action="scoring.result")
    return rec


def _transaction(store: Store) -> Any:
    """One transaction on backends that offer it (both SQL backends do)."""
    from contextlib import nullcontext

    tx = getattr(store, "transaction", None)
    return tx() if tx is not None else nullcontext()


def load_results(store: Store, run_id: str | None = None) -> pd.DataFrame:
    """Ledger rows of scoring results (one per site and run), optionally of one run."""
    if RESULTS_TABLE not in store.table_names():
        return pd.DataFrame()
    t = store.read_table(RESULTS_TABLE)
    if run_id is not None:
        t = t[t["run_id"].astype(str) == run_id]
    return t.reset_index(drop=True)


def rerun(store: Store, run_id: str, *, actor: str, persist: bool = False) -> ScoringRun:
    """Score a stored run again from the same configuration version and snapshots.

    Raises
    ------
    ConflictError
        When the configuration or a table changed since the run.
    """
    rec = store.get_record(RESULTS, run_id)
    d = rec.data
    if d.get("config"):
        mapping, cfg_rec = get_config(store, str(d["config"]))
        if sha256_hex(canonical_json(mapping)) != d.get("config_hash"):
            raise ConflictError(
                f"评价配置 {d['config']} 自运行 {run_id} 后已修改 (版本 {cfg_rec.version})",
                key="config_changed",
                hint="重新运行评价生成新结果",
            )
        config: str | Mapping[str, Any] = str(d["config"])
    else:
        raise NotFoundError(
            f"运行 {run_id} 未引用已保存的评价配置, 无法重算", key="config_not_found"
        )
    return score_workspace(
        store,
        config,
        actor=actor,
        jurisdiction=rec.jurisdiction,
        method=d.get("method"),
        normalisation=d.get("normalisation"),
        persist=persist,
        _pinned={"snapshots": d.get("snapshots") or {}, "tables": d.get("tables") or {}},
    )


def write_dossiers(
    run: ScoringRun,
    out_dir: str | Path,
    *,
    format: str = "html",
    site_ids: Sequence[str] | None = None,
    with_map: bool = True,
    combined: bool = False,
) -> list[Path]:
    """Write one dossier (一站一档) per site, or one combined file, as HTML or PDF.

    Files are named ``<rank>_<site>_一站一档.<ext>`` (combined: ``一站一策一档_<run>.<ext>``).
    """
    if format not in ("html", "pdf"):
        raise InputError(f"未知的档案格式: {format}", key="format_unknown", hint="html 或 pdf")
    res = run.result
    ids = list(site_ids) if site_ids else list(res.table.index)
    unknown = [s for s in ids if s not in res.table.index]
    if unknown:
        raise NotFoundError("评价结果中没有这些站点: " + "、".join(unknown), key="site_not_found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kw = {
        "sites": run.sites,
        "boundaries": run.boundaries,
        "layers": run.layers,
        "with_map": with_map,
    }
    groups = [ids] if combined else [[s] for s in ids]
    ranks = {str(k): int(v) for k, v in res.table["rank"].items()}
    written = []
    for grp in groups:
        if combined:
            stem = "一站一策一档_" + run.run_id.replace("@", "_")
        else:
            stem = f"{ranks[str(grp[0])]:02d}_{grp[0]}_一站一档"
        if format == "html":
            p = out / f"{stem}.html"
            p.write_text(render_dossier_html(res, grp, **kw), encoding="utf-8")
        else:
            p = out / f"{stem}.pdf"
            pdf, _pages = render_dossier_pdf(res, grp, **kw)
            p.write_bytes(pdf)
        written.append(p)
    return written
