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
    "CONFIG_MAX_CHARS",
    "RESULTS",
    "RESULTS_TABLE",
    "ScoringRun",
    "check_rerunnable",
    "check_run_inputs",
    "check_whole_tables",
    "config_inputs",
    "describe_config",
    "dossiers_job",
    "get_config",
    "list_configs",
    "list_runs",
    "load_results",
    "put_config",
    "rerun",
    "run_detail",
    "run_sensitivity",
    "save_config",
    "score_workspace",
    "scoring_run_job",
    "validate_config",
    "visible_config",
    "visible_run",
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


# ---------------------------------------------------------------------------
# Web adapters: validation, descriptions, visibility, sensitivity and jobs. A configuration
# record without a jurisdiction is city-wide: every staff user may read and run it, only a
# user with ``publish`` may change it (as for layers without a jurisdiction field). A run
# belongs to the jurisdiction of its configuration (the runner's for a city-wide one).
# ---------------------------------------------------------------------------

#: Largest configuration accepted from a client (characters of canonical JSON).
CONFIG_MAX_CHARS = 200_000
_MAPPING_ENTRIES = ("sites", "layers", "tables")
_BINDING_ENTRIES = ("boundaries", "indicators")


def validate_config(mapping: Any) -> ScoringConfig:
    """Parse a configuration and resolve its weights (AHP consistency included).

    Raises
    ------
    ValidationError
        Any invalid entry, including an AHP matrix with ``CR`` above the packaged threshold
        (key ``ahp_inconsistent``, naming the most inconsistent judgements), or a structure of
        the wrong shape (key ``config_invalid``).
    """
    from yizhangtu.errors import ValidationError, YizhangtuError
    from yizhangtu.scoring import resolve_weights

    if not isinstance(mapping, Mapping):
        raise ValidationError("评价配置必须是 JSON 对象 (映射)", key="config_invalid")
    if len(canonical_json(dict(mapping))) > CONFIG_MAX_CHARS:
        raise ValidationError(
            f"评价配置过大 (超过 {CONFIG_MAX_CHARS} 个字符)", key="config_too_large"
        )
    for k in _MAPPING_ENTRIES:
        if mapping.get(k) is not None and not isinstance(mapping[k], Mapping):
            raise ValidationError(f"评价配置的 {k} 必须是映射", key="config_invalid", field=k)
    for k in _BINDING_ENTRIES:
        v = mapping.get(k)
        if v is not None and not isinstance(v, Mapping | str):
            raise ValidationError(
                f"评价配置的 {k} 必须是映射或图层/数据表名称", key="config_invalid", field=k
            )
    for k in ("layers", "tables"):
        for name, v in (mapping.get(k) or {}).items():
            if v is not None and not isinstance(v, Mapping | str):
                raise ValidationError(
                    f"评价配置 {k}.{name} 必须是映射或名称", key="config_invalid", field=k
                )
    try:
        cfg = parse_scoring_config(mapping)
        resolve_weights(cfg)
    except YizhangtuError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise ValidationError(
            f"评价配置的结构不正确: {type(exc).__name__}",
            key="config_invalid",
            hint="对照 yizhangtu score demo 生成的 config.yaml: criteria 为准则列表, "
            "weights 为 direct 权重或 ahp 判断矩阵",
        ) from None
    return cfg


def describe_config(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Criteria, weights and the AHP matrix with its consistency figures, JSON-ready.

    Never raises for a stored configuration that no longer validates: ``valid`` is then
    false and ``error`` holds the message.
    """
    from yizhangtu.errors import YizhangtuError
    from yizhangtu.scoring import (
        ahp_matrix_from_pairs,
        ahp_weights,
        check_pairwise_matrix,
        resolve_weights,
    )
    from yizhangtu.scoring.criteria import DIRECTIONS, METHODS, NORMALISATIONS
    from yizhangtu.services.features import json_ready

    out: dict[str, Any] = {"valid": True, "error": None}
    try:
        cfg = validate_config(mapping)
    except YizhangtuError as exc:
        out.update(valid=False, error=exc.message, hint=exc.hint, data=json_ready(exc.data))
        try:
            cfg = parse_scoring_config(mapping)
        except (YizhangtuError, TypeError, ValueError, AttributeError, KeyError, IndexError):
            return out
    names = [c.name for c in cfg.criteria]
    labels = [c.label for c in cfg.criteria]
    out |= {
        "title": cfg.title,
        "synthetic": cfg.synthetic,
        "method": cfg.method,
        "method_label": METHODS.get(cfg.method, cfg.method),
        "normalisation": cfg.normalisation,
        "normalisation_label": NORMALISATIONS.get(cfg.normalisation, cfg.normalisation),
        "sites": mapping.get("sites"),
        "layers": mapping.get("layers"),
        "tables": mapping.get("tables"),
        "boundaries": mapping.get("boundaries"),
        "criteria": [
            {
                "name": c.name,
                "label": c.label,
                "direction": c.direction,
                "direction_label": DIRECTIONS.get(c.direction, c.direction),
                "unit": c.unit,
                "description": c.description,
                "source": c.source.kind,
                "source_label": c.source.describe(),
            }
            for c in cfg.criteria
        ],
    }
    spec = cfg.weights
    ahp: dict[str, Any] | None = None
    weights: dict[str, float] | None = None
    warnings: list[str] = []
    try:
        if spec.ahp_matrix is not None or spec.ahp_pairs is not None:
            if spec.ahp_pairs is not None:
                alias = {c.name: c.label for c in cfg.criteria} | {lb: lb for lb in labels}
                matrix = ahp_matrix_from_pairs(
                    labels, [(alias.get(a, a), alias.get(b, b), v) for a, b, v in spec.ahp_pairs]
                )
                given: Any = [list(p) for p in spec.ahp_pairs]
            else:
                matrix = check_pairwise_matrix(spec.ahp_matrix, labels)
                given = [list(r) for r in spec.ahp_matrix or ()]
            res = ahp_weights(matrix, labels, enforce=False)
            weights = dict(zip(names, res.weights, strict=True))
            ahp = res.to_dict() | {
                "order": labels,
                "matrix": [[float(x) for x in row] for row in matrix],
                "given": given,
            }
            mode = "ahp_pairs" if spec.ahp_pairs is not None else "ahp_matrix"
        else:
            weights, _, warnings = resolve_weights(cfg)
            mode = "direct"
    except YizhangtuError as exc:
        mode = "invalid"
        if out["valid"]:
            out.update(valid=False, error=exc.message, hint=exc.hint)
    out |= {
        "weight_mode": mode,
        "weights": weights,
        "ahp": ahp,
        "cr": ahp["cr"] if ahp else None,
        "weight_warnings": warnings,
    }
    return dict(json_ready(out))


def config_inputs(
    mapping: Mapping[str, Any], *, sites_layer: str | None = None
) -> tuple[list[str], list[str]]:
    """Workspace layers (sites first) and tables that scoring with ``mapping`` reads."""
    cfg = validate_config(mapping)
    layers: list[str] = []
    sites_entry = mapping.get("sites") or {}
    sname = sites_layer or sites_entry.get("layer")
    if sname:
        layers.append(str(sname))
    used_layers, used_tables, needs_ind = _used_names(cfg)
    layer_map = mapping.get("layers") or {}
    layers += [_binding(layer_map.get(n), "layer", n)[0] for n in sorted(used_layers)]
    if mapping.get("boundaries"):
        bname, _ = _binding(mapping["boundaries"], "layer", "")
        if bname:
            layers.append(bname)
    table_map = mapping.get("tables") or {}
    tables = [_binding(table_map.get(n), "table", n)[0] for n in sorted(used_tables)]
    if needs_ind:
        tables.append(_binding(mapping.get("indicators"), "table", "indicator_evaluations")[0])
    return list(dict.fromkeys(layers)), list(dict.fromkeys(tables))


def check_whole_tables(store: Store, scope: Any, *tables: str) -> None:
    """404 for a table the scope may not list; 403 unless it may read every row of it.

    Scoring reads whole tables; a table whose rows carry a jurisdiction column (see
    :mod:`yizhangtu.services.records`) may be read whole only when published or when all its
    rows lie inside the user's jurisdiction.
    """
    from yizhangtu.errors import PermissionDeniedError
    from yizhangtu.services.records import table_meta

    names = set(store.table_names())
    for name in tables:
        meta = table_meta(store, name) if name in names else None
        if meta is None or (scope.public_only and not meta.get("published")):
            raise NotFoundError(
                f"数据表不存在或未公开: {name}", key="table_not_found", field="table"
            )
        field = meta.get("jurisdiction_field")
        if meta.get("published") or not field:
            continue
        _, inside = store.query_table(
            name, jurisdiction_field=field, jurisdictions=scope.record_prefixes(), limit=0
        )
        _, total = store.query_table(name, limit=0)
        if inside != total:
            raise PermissionDeniedError(
                f"数据表 {name} 有记录在你的辖区以外, 不能整表用于评价",
                key="outside_jurisdiction",
                field="table",
                hint="请市级管理员运行评价, 或使用已公开的数据表",
            )


def _config_visible(scope: Any, rec: Record) -> bool:
    return rec.jurisdiction is None or bool(scope.covers(rec.jurisdiction))


def visible_config(store: Store, scope: Any, key: str) -> Record:
    """Return a configuration record the scope may read; 404 otherwise (without saying which)."""
    try:
        rec = store.get_record(CONFIGS, key)
    except NotFoundError:
        rec = None
    if rec is None or not _config_visible(scope, rec):
        raise NotFoundError(
            f"评价配置不存在: {key}",
            key="config_not_found",
            field="key",
            hint="GET /api/scoring/configs 列出可用的评价配置",
        )
    return rec


def list_configs(store: Store, scope: Any) -> list[dict[str, Any]]:
    """List configurations in the scope's jurisdiction (SQL prefix filter) and city-wide ones."""
    recs = store.query_records(
        CONFIGS, jurisdiction_prefixes=scope.record_prefixes(), include_unassigned=True
    )
    out = []
    for r in recs:
        crit = r.data.get("criteria")
        out.append(
            {
                "key": r.key,
                "title": r.data.get("title"),
                "method": r.data.get("method", "weighted"),
                "criteria": len(crit) if isinstance(crit, list) else None,
                "sites_layer": (r.data.get("sites") or {}).get("layer")
                if isinstance(r.data.get("sites"), Mapping)
                else None,
                "synthetic": bool(r.data.get("synthetic", False)),
                "version": r.version,
                "jurisdiction": r.jurisdiction,
                "updated_by": r.updated_by,
                "updated_at": r.updated_at,
            }
        )
    return out


def put_config(
    store: Store,
    scope: Any,
    key: str,
    mapping: Mapping[str, Any],
    *,
    version: int | None,
    jurisdiction: str | None = None,
) -> tuple[Record, bool]:
    """Create (``version`` None) or update a configuration inside the scope's jurisdiction.

    Returns the record and whether it was created. The configuration is validated first
    (:func:`validate_config`: an inconsistent AHP matrix is refused).

    Raises
    ------
    ValidationError
        An invalid configuration.
    NotFoundError
        Updating a configuration the scope cannot see (or that does not exist).
    ConflictError
        Creating one that exists, or updating from a stale ``version``.
    PermissionDeniedError
        A jurisdiction outside the scope's; changing a city-wide one without ``publish``.
    """
    from yizhangtu.errors import PermissionDeniedError
    from yizhangtu.services.auth import validate_jurisdiction

    validate_config(mapping)
    target = validate_jurisdiction(jurisdiction) if jurisdiction is not None else None
    try:
        cur = store.get_record(CONFIGS, key)
    except NotFoundError:
        cur = None
    actor = str(scope.username)
    if cur is None:
        if version is not None:
            raise NotFoundError(
                f"评价配置不存在: {key}", key="config_not_found", hint="新建配置时不要给出 version"
            )
        target = target or scope.jurisdiction
        scope.require_covers(target, "评价配置")
        return save_config(store, key, mapping, actor=actor, jurisdiction=target), True
    if not _config_visible(scope, cur):
        raise NotFoundError(f"评价配置不存在: {key}", key="config_not_found", field="key")
    if cur.jurisdiction is None and not scope.can("publish"):
        raise PermissionDeniedError(
            f"评价配置 {key} 为全市通用配置, 只有市级管理员可以修改",
            key="outside_jurisdiction",
            hint="另存为本辖区的新配置",
        )
    if version is None:
        raise ConflictError(
            f"评价配置 {key} 已存在 (版本 {cur.version}), 修改时须给出读取时的版本号",
            key="record_exists",
            feature=key,
            hint="在请求体中给出 version (乐观锁)",
            data={"version": cur.version, "updated_by": cur.updated_by},
        )
    if target is not None:
        scope.require_covers(target, "评价配置的新辖区")
    rec = save_config(
        store, key, mapping, actor=actor, jurisdiction=target, expected_version=version
    )
    return rec, False


def check_run_inputs(store: Store, scope: Any, key: str, sites_layer: str | None = None) -> Record:
    """Check that the scope may score with configuration ``key``; return its record.

    The configuration must be visible and every layer and table it reads readable whole
    (:func:`yizhangtu.services.jobs.check_whole_layers`, :func:`check_whole_tables`).
    """
    from yizhangtu.services.jobs import check_whole_layers

    rec = visible_config(store, scope, key)
    layers, tables = config_inputs(dict(rec.data), sites_layer=sites_layer)
    if not sites_layer and not (rec.data.get("sites") or {}).get("layer"):
        raise InputError(
            "评价配置缺少 sites.layer (站点图层)",
            key="config_missing",
            field="sites_layer",
            hint="在请求中给出 sites_layer, 或在配置中写 sites: {layer: ...}",
        )
    check_whole_layers(store, scope, *layers)
    check_whole_tables(store, scope, *tables)
    return rec


def visible_run(store: Store, scope: Any, run_id: str) -> Record:
    """Return a stored run the scope may read (inside its jurisdiction); 404 otherwise."""
    try:
        rec = store.get_record(RESULTS, run_id)
    except NotFoundError:
        rec = None
    if rec is None or not scope.covers(rec.jurisdiction):
        raise NotFoundError(
            f"评价运行不存在: {run_id}",
            key="run_not_found",
            field="run_id",
            hint="GET /api/scoring/runs 列出可见的评价运行",
        )
    return rec


def list_runs(store: Store, scope: Any) -> list[dict[str, Any]]:
    """List stored runs in the scope's jurisdiction (SQL prefix filter), newest first."""
    recs = store.query_records(RESULTS, jurisdiction_prefixes=scope.record_prefixes())
    rows = [
        {
            "run_id": r.key,
            "config": r.data.get("config"),
            "title": r.data.get("title"),
            "method": r.data.get("method"),
            "sites": len(r.data.get("sites") or ()),
            "scored_at": r.data.get("scored_at"),
            "provenance_id": r.data.get("provenance_id"),
            "synthetic": bool(r.data.get("synthetic")),
            "jurisdiction": r.jurisdiction,
            "updated_by": r.updated_by,
        }
        for r in recs
    ]
    return sorted(rows, key=lambda x: str(x["scored_at"] or ""), reverse=True)


def _run_config(store: Store, rec: Record) -> tuple[ScoringConfig | None, bool]:
    """Return the run's configuration (if it still parses) and whether it changed since."""
    from yizhangtu.errors import YizhangtuError

    key = rec.data.get("config")
    if not key:
        return None, True
    try:
        mapping, _ = get_config(store, str(key))
        cfg = parse_scoring_config(mapping)
    except (YizhangtuError, TypeError, ValueError, AttributeError, KeyError, IndexError):
        return None, True
    changed = sha256_hex(canonical_json(mapping)) != rec.data.get("config_hash")
    return cfg, changed


def run_detail(store: Store, rec: Record) -> dict[str, Any]:
    """Describe a stored run: ranked sites with per-criterion raw, normalised, weighted values."""
    from yizhangtu.scoring.criteria import METHODS, NORMALISATIONS
    from yizhangtu.services.features import json_ready

    d = dict(rec.data)
    cfg, changed = _run_config(store, rec)
    weights = dict(d.get("weights") or {})
    labels = {c.name: c.label for c in cfg.criteria} if cfg is not None else {}
    rows = load_results(store, rec.key)
    per_site = (
        {str(r["site_id"]): json.loads(str(r["criteria"])) for _, r in rows.iterrows()}
        if len(rows)
        else {}
    )
    sites = []
    for s in d.get("sites") or ():
        crit = per_site.get(str(s["site_id"]), {})
        sites.append(
            dict(s)
            | {
                "criteria": {
                    n: dict(v) | {"label": labels.get(n, n), "weight": weights.get(n)}
                    for n, v in crit.items()
                }
            }
        )
    method = str(d.get("method") or "")
    norm = str(d.get("normalisation") or "")
    return dict(
        json_ready(
            {k: v for k, v in d.items() if k != "sites"}
            | {
                "run_id": rec.key,
                "method_label": METHODS.get(method, method),
                "normalisation_label": NORMALISATIONS.get(norm, norm),
                "weight_method": "ahp" if d.get("ahp_cr") is not None else "direct",
                "weight_method_label": "层次分析法 (AHP) 判断矩阵"
                if d.get("ahp_cr") is not None
                else "直接赋权",
                "criteria": [
                    {"name": n, "label": labels.get(n, n), "weight": w} for n, w in weights.items()
                ],
                "config_changed": changed,
                "sites": sites,
                "version": rec.version,
                "jurisdiction": rec.jurisdiction,
                "updated_by": rec.updated_by,
            }
        )
    )


def run_sensitivity(store: Store, rec: Record, *, step: float | None = None) -> dict[str, Any]:
    """Rank stability of a stored run under ±``step`` weight changes (default ±10%).

    Recomputed by :func:`yizhangtu.scoring.sensitivity_analysis` from the run's stored raw and
    normalised values (no layer is read again). TOPSIS needs the criterion directions, so its
    configuration must be unchanged since the run.

    Raises
    ------
    ConflictError
        A TOPSIS run whose configuration changed or disappeared.
    NotFoundError
        The run's per-site rows are missing from the ledger table.
    """
    from yizhangtu.scoring import ahp_constants, sensitivity_analysis
    from yizhangtu.scoring.criteria import METHODS
    from yizhangtu.services.features import json_ready

    d = dict(rec.data)
    method = str(d.get("method") or "weighted")
    weights = {str(k): float(v) for k, v in (d.get("weights") or {}).items()}
    ids = [str(s["site_id"]) for s in d.get("sites") or ()]
    rows = load_results(store, rec.key)
    per_site = {str(r["site_id"]): json.loads(str(r["criteria"])) for _, r in rows.iterrows()}
    if not ids or any(s not in per_site for s in ids):
        raise NotFoundError(
            f"运行 {rec.key} 的逐站得分记录缺失, 无法做灵敏度分析",
            key="run_rows_missing",
            hint="重新运行评价",
        )
    cfg, changed = _run_config(store, rec)
    if method == "topsis" and (cfg is None or changed):
        raise ConflictError(
            f"运行 {rec.key} 的评价配置已修改或删除, 无法确定 TOPSIS 的准则方向",
            key="config_changed",
            hint="重新运行评价后再做灵敏度分析",
        )
    directions = (
        {c.name: c.direction for c in cfg.criteria}
        if cfg is not None and not changed
        else dict.fromkeys(weights, "benefit")  # weighted sums use normalised values only
    )
    labels = {c.name: c.label for c in cfg.criteria} if cfg is not None else {}
    order = [c.name for c in cfg.criteria] if cfg is not None else []
    names = [n for n in order if n in weights] + [n for n in weights if n not in order]
    weights = {n: weights[n] for n in names}

    def frame(kind: str) -> pd.DataFrame:
        return pd.DataFrame(
            {n: [per_site[s][n][kind] for s in ids] for n in names}, index=ids, dtype=float
        )

    h = ahp_constants().sensitivity_step if step is None else float(step)
    table = sensitivity_analysis(
        method, frame("raw"), frame("normalised"), weights, directions, step=h
    )
    stable = table.groupby("site_id")["rank_kept"].all()
    changes = (
        table.assign(moved=~table["rank_kept"])
        .groupby(["criterion", "change"], sort=False)["moved"]
        .sum()
        .reset_index()
    )
    return dict(
        json_ready(
            {
                "run_id": rec.key,
                "method": method,
                "method_label": METHODS.get(method, method),
                "step": h,
                "weights": weights,
                "criteria": [{"name": n, "label": labels.get(n, n)} for n in names],
                "stable": {s: bool(stable[s]) for s in ids},
                "all_stable": bool(stable.all()),
                "changes": [
                    {
                        "criterion": r["criterion"],
                        "label": labels.get(str(r["criterion"]), r["criterion"]),
                        "change": r["change"],
                        "sites_moved": int(r["moved"]),
                    }
                    for _, r in changes.iterrows()
                ],
                "rows": table.to_dict(orient="records"),
            }
        )
    )


def check_rerunnable(store: Store, scope: Any, rec: Record) -> None:
    """Check that a stored run can be scored again as it was, and that the scope may read it.

    Raises
    ------
    ConflictError
        The configuration or a table changed since the run (as :func:`rerun` would).
    NotFoundError
        The configuration is gone; PermissionDeniedError, a layer or table not readable whole.
    """
    from yizhangtu.services.jobs import check_whole_layers

    d = rec.data
    if not d.get("config"):
        raise NotFoundError(
            f"运行 {rec.key} 未引用已保存的评价配置, 无法重算", key="config_not_found"
        )
    mapping, cfg_rec = get_config(store, str(d["config"]))
    if sha256_hex(canonical_json(mapping)) != d.get("config_hash"):
        raise ConflictError(
            f"评价配置 {d['config']} 自运行 {rec.key} 后已修改 (版本 {cfg_rec.version})",
            key="config_changed",
            hint="重新运行评价生成新结果",
        )
    for name, h in (d.get("tables") or {}).items():
        if name not in store.table_names() or store.table_hash(name) != h:
            raise ConflictError(
                f"数据表 {name} 自运行 {rec.key} 后已变化, 无法按原样重算",
                key="table_changed",
                hint="重新运行评价生成新结果",
            )
    check_whole_layers(store, scope, *[str(n) for n in d.get("snapshots") or {}])
    check_whole_tables(store, scope, *[str(n) for n in d.get("tables") or {}])


def _is_pg(uri: str) -> bool:
    return uri.startswith(("postgresql://", "postgres://"))


def scoring_run_job(uri: str, scope: Any, params: Mapping[str, Any]) -> Any:
    """Make a job scoring with a stored configuration and persisting the run (with provenance).

    ``params``: ``config`` (key), optional ``sites_layer``, ``method``, ``normalisation``.
    """
    from yizhangtu.services.jobs import open_worker_store, write_lock

    def run(progress: Any) -> dict[str, Any]:
        from yizhangtu.services.features import json_ready

        key = str(params["config"])
        progress(0.05, "检查配置与图层")
        lock = None if _is_pg(uri) else write_lock(uri)
        store = open_worker_store(uri)
        try:
            rec = check_run_inputs(store, scope, key, params.get("sites_layer"))
            progress(0.2, "计算评价")
            if lock is not None:
                lock.acquire()
            try:
                res = score_workspace(
                    store,
                    key,
                    actor=str(scope.username),
                    jurisdiction=rec.jurisdiction or scope.jurisdiction,
                    sites_layer=params.get("sites_layer"),
                    method=params.get("method"),
                    normalisation=params.get("normalisation"),
                    persist=True,
                )
            finally:
                if lock is not None:
                    lock.release()
        finally:
            store.close()
        t = res.result.table
        return dict(
            json_ready(
                {
                    "run_id": res.run_id,
                    "url": f"/api/scoring/runs/{res.run_id}",
                    "config": key,
                    "config_version": res.config_version,
                    "provenance_id": res.provenance_id,
                    "method": res.result.method,
                    "normalisation": res.result.normalisation,
                    "synthetic": res.synthetic,
                    "warnings": list(res.result.warnings),
                    "sites": len(t),
                    "ranking": [
                        {
                            "site_id": str(s),
                            "name": str(r["name"]),
                            "score": float(r["score"]),
                            "rank": int(r["rank"]),
                        }
                        for s, r in t.iterrows()
                    ],
                }
            )
        )

    return run


def _safe_stem(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:80] or "run"


def dossiers_job(
    uri: str, scope: Any, reports_dir: Path, run_id: str, params: Mapping[str, Any]
) -> Any:
    """Make a job re-scoring a stored run from its snapshots and writing its dossiers.

    The files (``format`` html or pdf; one per site, or ``combined``) go into a folder of the
    report directory, each with its report sidecar, so ``/api/reports`` lists and serves them.
    """
    from urllib.parse import quote

    from yizhangtu.services.jobs import open_worker_store, write_lock, write_report_meta

    def run(progress: Any) -> dict[str, Any]:
        import shutil
        import uuid

        fmt = str(params.get("format") or "html")
        progress(0.05, "按原快照重算评价")
        lock = None if _is_pg(uri) else write_lock(uri)
        store = open_worker_store(uri)
        try:
            rec = visible_run(store, scope, run_id)
            check_rerunnable(store, scope, rec)
            if lock is not None:
                lock.acquire()
            try:
                again = rerun(store, run_id, actor=str(scope.username))
            finally:
                if lock is not None:
                    lock.release()
        finally:
            store.close()
        progress(0.3, "生成一站一档")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        stem = f"dossiers_{_safe_stem(run_id)}_{stamp}_{uuid.uuid4().hex[:6]}"
        reports_dir.mkdir(parents=True, exist_ok=True)
        tmp = reports_dir / f".{stem}.tmp"
        final_dir = reports_dir / stem
        title = str(again.result.config.title)
        out = []
        try:
            files = write_dossiers(
                again,
                tmp,
                format=fmt,
                site_ids=params.get("site_ids") or None,
                with_map=bool(params.get("with_map", True)),
                combined=bool(params.get("combined", False)),
            )
            progress(0.9, "登记报告")
            final_dir.mkdir(parents=True, exist_ok=True)
            for p in files:
                final = final_dir / p.name
                write_report_meta(
                    final,
                    kind="scoring_dossier",
                    title=f"{title} 一站一档 {p.stem}"
                    + (" (合成数据)" if again.synthetic and "合成" not in title else ""),
                    scope=scope,
                    synthetic=again.synthetic,
                    extra={"run_id": run_id, "provenance_id": again.provenance_id},
                )
                p.replace(final)
                rel = final.relative_to(reports_dir).as_posix()
                out.append(
                    {
                        "report": rel,
                        "url": "/api/reports/" + quote(rel),
                        "bytes": final.stat().st_size,
                    }
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {
            "run_id": run_id,
            "provenance_id": again.provenance_id,
            "format": fmt,
            "synthetic": again.synthetic,
            "reports": out,
        }

    return run
