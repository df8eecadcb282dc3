"""Reduction ledger services (减量台账): targets, plots, acceptance, rebuild, transfers, progress.

Store layout
------------
- layer ``reduction_plots`` (kind ``plot``, id ``plot_id``, jurisdiction ``township``): every
  submission writes a new immutable snapshot holding all plots (fields
  :data:`~yizhangtu.reduction.model.PLOT_FIELDS`);
- table ``reduction_targets``: one row per (unit, kind, year);
- table ``reduction_acceptance``: one row per plot and year, with the plot, baseline and survey
  snapshots, the policy pack and a provenance id;
- table ``reduction_ledger``: one row per unit, level and year (township rows computed,
  district rows their exact sums), with a provenance id;
- table ``reduction_rebuild``: rebuild checks of accepted plots against later surveys;
- records ``reduction_transfer`` (指标联动, versioned) and ``reduction_config/default``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from yizhangtu.errors import ConflictError, InputError, NotFoundError, QCError, ValidationError
from yizhangtu.geo.area import ellipsoidal_area
from yizhangtu.policy import PolicyPack, load_pack
from yizhangtu.reduction import (
    ACCEPTANCE_COLUMNS,
    LEDGER_COLUMNS,
    PLOT_FIELDS,
    PLOT_REQUIRED,
    PlotIssue,
    ProgressRow,
    RebuildAlert,
    Target,
    Transfer,
    UnitColumns,
    aggregate_ledger,
    balance,
    check_plots,
    check_transfer,
    construction_mask,
    detect_rebuild,
    evaluate_year,
    ledger_to_xlsx,
    normalise_plots,
    plots_from_links,
    progress,
    reported_rows,
    targets_from_xlsx,
)
from yizhangtu.reduction.model import PLOT_ALIASES, BalanceRow
from yizhangtu.reduction.plots import issues_from_qc
from yizhangtu.reduction.rules import param
from yizhangtu.services.provenance import record_result, snapshot_ref, table_ref
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, SnapshotInfo, Store

if TYPE_CHECKING:
    from yizhangtu.services.auth import Scope

#: A job's progress callback: (fraction 0–1, message).
ProgressFn = Callable[[float, str], None]

__all__ = [
    "AcceptResult",
    "ProgressFn",
    "ReductionConfig",
    "SubmitResult",
    "accept_job",
    "accept_year",
    "acceptance_in",
    "add_transfer",
    "balance_in",
    "balance_report",
    "check_accept",
    "check_rebuild",
    "export_ledger",
    "get_config",
    "import_targets",
    "ledger_export_job",
    "list_plots",
    "list_transfers",
    "plots_in",
    "progress_in",
    "progress_report",
    "read_targets",
    "rebuild_in",
    "rebuild_job",
    "reduction_pack",
    "require_whole_ledger",
    "seed_targets_from_pack",
    "set_config",
    "set_target",
    "submit_plots",
    "targets_in",
    "targets_report",
    "targets_report_in",
    "transfers_in",
]

T_TARGETS = "reduction_targets"
T_ACCEPT = "reduction_acceptance"
T_LEDGER = "reduction_ledger"
T_REBUILD = "reduction_rebuild"
C_TRANSFER = "reduction_transfer"
C_CONFIG = "reduction_config"
_TARGET_COLS = (
    "unit_code",
    "unit_name",
    "level",
    "kind",
    "year",
    "target_m2",
    "parent_code",
    "clause",
    "synthetic",
    "note",
)
_REBUILD_COLS = (
    "plot_id",
    "township",
    "accepted_year",
    "survey_label",
    "survey_year",
    "rebuilt_m2",
    "plot_area_m2",
    "alert",
    "severity",
    "message",
    "provenance_id",
)
_TABULAR = (".xlsx", ".xls", ".ods", ".csv")


# ----------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ReductionConfig:
    """Which layers and fields the ledger uses (stored as record ``reduction_config/default``)."""

    units_layer: str | None = None
    unit_field: str = "code"
    name_field: str = "name"
    parent_field: str | None = "district_code"
    parent_name_field: str | None = "district_name"
    survey_layer: str = "survey"
    code_field: str = "DLBM"
    czcsxm_field: str | None = "CZCSXM"
    plots_layer: str = "reduction_plots"
    pack: str = "beijing-reduction"

    @property
    def columns(self) -> UnitColumns:
        """Unit-layer columns for the domain functions."""
        return UnitColumns(
            self.unit_field, self.name_field, self.parent_field, self.parent_name_field
        )

    def require_units(self) -> str:
        """Return the units layer; InputError when not configured."""
        if not self.units_layer:
            raise InputError(
                "尚未设定减量核算单元图层 (乡镇/街道界)",
                key="reduction_units_unset",
                hint="运行 yizhangtu reduction config --units-layer <图层名>, 如 chaoyang_streets",
            )
        return self.units_layer


def get_config(store: Store) -> ReductionConfig:
    """Return the workspace's reduction configuration (defaults when none is stored)."""
    try:
        rec = store.get_record(C_CONFIG, "default")
    except NotFoundError:
        return ReductionConfig()
    known = set(ReductionConfig.__dataclass_fields__)
    return ReductionConfig(**{k: v for k, v in rec.data.items() if k in known})


def set_config(store: Store, *, actor: str, **changes: Any) -> ReductionConfig:
    """Change configuration fields (None values are ignored); audited, versioned."""
    changes = {k: v for k, v in changes.items() if v is not None}
    bad = set(changes) - set(ReductionConfig.__dataclass_fields__)
    if bad:
        raise InputError(f"未知的配置项: {', '.join(sorted(bad))}", key="reduction_config_field")
    cfg = replace(get_config(store), **changes)
    if cfg.units_layer:
        info = store.layer(cfg.units_layer)
        cols = store.read_layer(cfg.units_layer).columns
        for f in (cfg.unit_field, cfg.name_field):
            if f not in cols:
                raise InputError(
                    f"图层 {info.name} 没有字段 {f}",
                    key="reduction_config_field_missing",
                    field=f,
                    hint="现有字段: " + ", ".join(map(str, cols)),
                )
    try:
        rec = store.get_record(C_CONFIG, "default")
        store.put_record(
            C_CONFIG,
            "default",
            asdict(cfg),
            expected_version=rec.version,
            actor=actor,
            action="reduction.config",
        )
    except NotFoundError:
        store.put_record(
            C_CONFIG,
            "default",
            asdict(cfg),
            expected_version=None,
            actor=actor,
            action="reduction.config",
        )
    return cfg


def reduction_pack(store: Store, name_or_path: str | None = None) -> PolicyPack:
    """Load the policy pack named on the command line, else the configured one."""
    return load_pack(name_or_path or get_config(store).pack)


def _units(store: Store, cfg: ReductionConfig) -> tuple[gpd.GeoDataFrame, SnapshotInfo]:
    layer = cfg.require_units()
    snap = store.resolve_snapshot(layer)
    return store.read_layer(layer, snapshot=snap.id), snap


def _names(units: gpd.GeoDataFrame, cfg: ReductionConfig) -> dict[str, str]:
    names = dict(
        zip(units[cfg.unit_field].astype(str), units[cfg.name_field].astype(str), strict=True)
    )
    if (
        cfg.parent_field
        and cfg.parent_name_field
        and {cfg.parent_field, cfg.parent_name_field} <= set(units.columns)
    ):
        names.update(
            dict(
                zip(
                    units[cfg.parent_field].astype(str),
                    units[cfg.parent_name_field].astype(str),
                    strict=True,
                )
            )
        )
    return names


@contextlib.contextmanager
def _tx(store: Store) -> Iterator[None]:
    tx = getattr(store, "transaction", None)
    if tx is None:
        yield
        return
    with tx():
        yield


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_table(store: Store, name: str) -> pd.DataFrame | None:
    return store.read_table(name) if name in store.table_names() else None


# ----------------------------------------------------------------------------------------- targets
def read_targets(store: Store) -> list[Target]:
    """All stored targets."""
    df = _read_table(store, T_TARGETS)
    return [] if df is None else [Target.from_row(r) for r in df.to_dict("records")]


def _write_targets(store: Store, targets: Sequence[Target], *, actor: str, action: str) -> str:
    merged: dict[tuple[str, str, int], Target] = {t.key: t for t in read_targets(store)}
    for t in targets:
        merged[t.key] = t
    rows = sorted(
        merged.values(),
        key=lambda t: (
            t.level != "city",
            t.level != "district",
            t.parent_code or "",
            t.unit_code,
            t.kind,
            t.year,
        ),
    )
    df = pd.DataFrame([t.to_row() for t in rows], columns=list(_TARGET_COLS))
    df["year"] = df["year"].astype("int64")
    df["target_m2"] = df["target_m2"].astype(float)
    df["synthetic"] = df["synthetic"].astype(bool)
    return store.write_table(T_TARGETS, df, actor=actor, action=action)


def set_target(store: Store, target: Target, *, actor: str) -> Target:
    """Add or replace one target (same unit, kind and year)."""
    _write_targets(store, [target], actor=actor, action="reduction.target.set")
    return target


def import_targets(store: Store, path: str | Path, *, actor: str) -> list[Target]:
    """Import targets from a bureau workbook (:func:`yizhangtu.reduction.targets_from_xlsx`)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"找不到文件 {p}", key="file_not_found", file=str(p))
    targets = targets_from_xlsx(p.read_bytes(), file=p.name)
    if not targets:
        raise InputError("目标表没有数据行", key="reduction_targets_empty", file=p.name)
    _write_targets(store, targets, actor=actor, action="reduction.target.import")
    return targets


def seed_targets_from_pack(
    store: Store, pack: PolicyPack, *, actor: str, names: dict[str, str] | None = None
) -> list[Target]:
    """Write the district targets the pack cites (e.g. 朝阳区 71 km² by 2035, 002 (一(一)二))."""
    horizon = param(pack, "horizon_date").year  # type: ignore[attr-defined]
    clause = pack.parameter("district_targets").clause
    out = [
        Target(
            unit_code=str(code),
            unit_name=(names or {}).get(str(code), str(code)),
            level="district",
            kind="total",
            year=horizon,
            target_m2=float(km2) * 1e6,
            clause=f"{pack.id} · {clause}",
            note="政策包引用的区级目标",
        )
        for code, km2 in dict(param(pack, "district_targets")).items()  # type: ignore[call-overload]
    ]
    _write_targets(store, out, actor=actor, action="reduction.target.seed")
    return out


def _split_message(parent: Target, n: int, allocated: float, diff: float) -> str:
    head = f"{parent.unit_name} {parent.year} 年{'总' if parent.kind == 'total' else '年度'}目标"
    if abs(diff) <= 1.0:
        return f"{head}已全部分解到 {n} 个下级单位"
    return (
        f"{head} {parent.target_m2 / 1e6:.4f} 平方公里, 下级合计 {allocated / 1e6:.4f} 平方公里,"
        f" 差 {diff / 1e6:+.4f}"
    )


def targets_report(store: Store) -> dict[str, Any]:
    """Targets with the split check: children's totals against their parent's (市—区—乡镇)."""
    targets = read_targets(store)
    checks = []
    for parent in targets:
        kids = [
            t
            for t in targets
            if t.parent_code == parent.unit_code and t.kind == parent.kind and t.year == parent.year
        ]
        if not kids:
            continue
        allocated = sum(t.target_m2 for t in kids)
        diff = parent.target_m2 - allocated
        checks.append(
            {
                "unit_code": parent.unit_code,
                "unit_name": parent.unit_name,
                "kind": parent.kind,
                "year": parent.year,
                "target_m2": parent.target_m2,
                "allocated_m2": allocated,
                "unallocated_m2": diff,
                "children": len(kids),
                "ok": abs(diff) <= 1.0,
                "message": _split_message(parent, len(kids), allocated, diff),
            }
        )
    return {
        "targets": [t.to_row() | {"target_km2": t.target_m2 / 1e6} for t in targets],
        "split_checks": checks,
    }


# ----------------------------------------------------------------------------------------- plots
@dataclass(frozen=True)
class SubmitResult:
    """What a plot submission did."""

    township: str
    year: int
    snapshot: SnapshotInfo | None
    submitted: int
    flagged: int
    issues: tuple[PlotIssue, ...]
    area_m2: float
    warnings: tuple[str, ...] = ()
    #: The checked plots of the file with ``qc_status`` and ``qc_reasons`` (set on a dry run).
    plots: gpd.GeoDataFrame | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "dry_run": self.snapshot is None,
            "township": self.township,
            "year": self.year,
            "submitted": self.submitted,
            "flagged": self.flagged,
            "area_m2": self.area_m2,
            "area_ha": self.area_m2 / 1e4,
            "snapshot": None if self.snapshot is None else self.snapshot.to_dict(),
            "issues": [i.to_dict() for i in self.issues],
            "warnings": list(self.warnings),
        }


def _norm_header(h: object) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(h)).strip())


def _read_plot_file(
    store: Store, path: Path, *, year: int, crs: str | None, wkt_field: str | None
) -> tuple[gpd.GeoDataFrame, str]:
    """Read a plot file: any vector format, a table with WKT, or a table linking to a stored layer.

    A link names ``layer`` or ``layer@snapshot``; the survey layer without a snapshot means the
    survey the plots are drawn on (the latest of a year before ``year``), else the current one.
    """
    from yizhangtu.io import read_source

    if path.suffix.lower() in _TABULAR:
        table = (
            pd.read_csv(path, dtype=str, encoding="utf-8-sig")
            if path.suffix.lower() == ".csv"
            else pd.read_excel(path, dtype=str)
        )
        heads = {_norm_header(c): c for c in table.columns}
        link_layer = next(
            (
                heads[h]
                for h in heads
                if PLOT_ALIASES.get(h) == "link_layer" or h.lower() == "link_layer"
            ),
            None,
        )
        link_id = next(
            (heads[h] for h in heads if PLOT_ALIASES.get(h) == "link_id" or h.lower() == "link_id"),
            None,
        )
        if link_layer and link_id and wkt_field is None:
            layers = sorted(set(table[link_layer].dropna().astype(str).str.strip()))
            if len(layers) != 1:
                raise InputError(
                    f"关联图层须唯一, 清单中为: {', '.join(layers) or '空'}",
                    key="reduction_link_layer",
                    file=path.name,
                    field=str(link_layer),
                )
            name, _, label = layers[0].partition("@")
            info = store.layer(name)
            id_field = info.id_field
            if not id_field:
                raise InputError(
                    f"图层 {info.name} 未设定要素标识字段, 无法按编号关联",
                    key="reduction_link_no_id",
                    file=path.name,
                    hint="导入该图层时用 --id-field 指定 (如 BSM)",
                )
            if label:
                snap = store.resolve_snapshot(name, label)
            elif name == get_config(store).survey_layer:
                snap = _survey_before(store, name, year)
            else:
                snap = store.resolve_snapshot(name)
            frame = table.rename(columns={link_layer: "link_layer", link_id: "link_id"})
            gdf = plots_from_links(
                frame,
                store.read_layer(name, snapshot=snap.id),
                id_field,
                file=f"{path.name} ({name}@{snap.label})",
            )
            return gdf, hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        gdf, report = read_source(path, crs=crs, wkt_field=wkt_field)
    except InputError as exc:
        if path.suffix.lower() in _TABULAR and exc.key in (
            "no_geometry_columns",
            "geometry_columns_missing",
            "tabular_no_geometry",
        ):
            raise InputError(
                "减量地块清单须含面几何: 请提供 WKT 面 (列名 WKT/几何),"
                " 或 图层+要素编号 两列关联已入库图层",
                key="reduction_plot_no_polygon",
                file=path.name,
                hint="点坐标 (x/y) 不能表示地块范围",
            ) from exc
        raise
    gdf = gdf.reset_index(drop=True)
    return gdf, report.source_hash


def _to_storage(gdf: gpd.GeoDataFrame, settings: Settings) -> gpd.GeoDataFrame:
    from pyproj import CRS

    from yizhangtu.services.layers import _prepare

    return _prepare(gdf, CRS.from_user_input(settings.storage_crs), {})


def list_plots(
    store: Store, *, township: str | None = None, year: int | None = None
) -> gpd.GeoDataFrame:
    """Return the current plots, optionally of one township and/or year."""
    cfg = get_config(store)
    try:
        gdf = store.read_layer(cfg.plots_layer)
    except NotFoundError:
        return gpd.GeoDataFrame(
            {f: [] for f in PLOT_FIELDS}, geometry=gpd.GeoSeries([], crs="EPSG:4490")
        )
    if township is not None:
        gdf = gdf[gdf["township"].astype(str) == str(township)]
    if year is not None:
        gdf = gdf[gdf["year"].astype(int) == int(year)]
    return gdf.reset_index(drop=True)


_STRUCTURAL = {
    "missing_crs",
    "missing_geometry",
    "empty_geometry",
    "invalid_geometry",
    "mixed_geometry",
    "multipart",
    "missing_field",
    "missing_value",
    "duplicate_id",
    "overlap",
}


def submit_plots(
    store: Store,
    path: str | Path,
    *,
    township: str,
    year: int,
    settings: Settings,
    pack: PolicyPack | None = None,
    flag: bool = False,
    replace_existing: bool = False,
    crs: str | None = None,
    wkt_field: str | None = None,
    dry_run: bool = False,
) -> SubmitResult:
    """Check a township's plot file and store it as a new snapshot of the plot layer (落图).

    Checks: the layer QC (:func:`yizhangtu.qc.run_qc`: geometry validity, single polygons,
    required fields, duplicated ids, overlaps inside the file), then the reduction checks
    (inside the township, no overlap with stored plots, ids not already used, construction land
    in the latest survey, survey covering the plot, allowed type/ownership/use).

    Errors refuse the whole file (nothing written, QCError with every issue in
    ``data['issues']``). With ``flag=True`` plots failing only the reduction checks are stored
    with ``qc_status='flagged'`` and their reasons and are never counted at acceptance;
    structural problems (invalid geometry, missing fields, duplicated ids, overlaps inside the
    file) are always refused. ``dry_run=True`` runs every check and writes nothing; the result
    has no snapshot and carries the checked plots.
    """
    from yizhangtu.qc import QCOptions, run_qc

    pack = pack or reduction_pack(store)
    cfg = get_config(store)
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"找不到文件 {p}", key="file_not_found", file=str(p))
    units, _ = _units(store, cfg)
    unit = units[units[cfg.unit_field].astype(str) == str(township)]
    if unit.empty:
        raise NotFoundError(
            f"单元图层 {cfg.units_layer} 中没有乡镇 {township}",
            key="reduction_unit_not_found",
            field="township",
            hint="乡镇代码见 yizhangtu info " + str(cfg.units_layer),
        )
    unit_name = str(unit.iloc[0][cfg.name_field])
    district = (
        str(unit.iloc[0][cfg.parent_field])
        if cfg.parent_field and cfg.parent_field in unit.columns
        else None
    )

    raw, source_hash = _read_plot_file(store, p, year=int(year), crs=crs, wkt_field=wkt_field)
    types = set(raw.geometry.geom_type.dropna())
    if types and types <= {"Point", "MultiPoint"}:
        raise InputError(
            "减量地块须为面, 文件中只有点坐标",
            key="reduction_plot_no_polygon",
            file=p.name,
            hint="请提供 WKT 面 (列名 WKT/几何), 或 图层+要素编号 两列关联已入库图层;"
            " 点坐标 (x/y) 不能表示地块范围",
        )
    plots = normalise_plots(raw, township=str(township), year=int(year), file=p.name)
    plots = _to_storage(plots, settings)
    qc = run_qc(
        plots,
        QCOptions(
            id_field="plot_id",
            check_overlap=True,
            expect_single=True,
            expected_geometry="polygon",
            required_fields=PLOT_REQUIRED,
            sliver_area_m2=settings.sliver_area_m2,
        ),
        file=p.name,
    )
    ids = plots["plot_id"].astype(str).tolist()
    issues = issues_from_qc(qc, ids)
    structural = [i for i in issues if i.severity == "error" and i.check in _STRUCTURAL]
    geom_bad = {
        i.plot_id
        for i in issues
        if i.check in ("missing_geometry", "empty_geometry", "invalid_geometry", "mixed_geometry")
    }

    existing = list_plots(store)
    replaced = pd.Series(False, index=existing.index)
    if replace_existing and len(existing):
        replaced = (existing["township"].astype(str) == str(township)) & (
            existing["year"].astype(int) == int(year)
        )
        acc = _read_table(store, T_ACCEPT)
        if (
            acc is not None
            and len(acc)
            and set(acc["plot_id"].astype(str)) & set(existing.loc[replaced, "plot_id"].astype(str))
        ):
            raise ConflictError(
                f"{unit_name} {year} 年的地块已验收, 不能替换",
                key="reduction_plots_accepted",
                hint="已验收的地块不可撤换; 新地块请用新的编号另行提交",
            )
    keep = existing[~replaced]

    survey_snap = _survey_before(store, cfg.survey_layer, int(year))
    survey = store.read_layer(cfg.survey_layer, snapshot=survey_snap.id, bbox=_bbox(plots, unit))
    cons = construction_mask(survey, pack, code_field=cfg.code_field, czcsxm_field=cfg.czcsxm_field)
    ok_rows = plots[~plots["plot_id"].astype(str).isin(geom_bad)].reset_index(drop=True)
    from datetime import date

    if len(ok_rows):
        issues += check_plots(
            ok_rows,
            unit=unit,
            unit_label=f"{unit_name}({township})",
            existing=keep if len(keep) else None,
            survey=survey,
            survey_construction=cons,
            survey_label=f"{cfg.survey_layer}@{survey_snap.label}",
            pack=pack,
            at=date(int(year), 12, 31),
        )
    errors = [i for i in issues if i.severity == "error"]
    if errors and (not flag or structural or any(i.check == "duplicate_id" for i in errors)):
        raise QCError(
            f"减量地块质检未通过: {len(errors)} 个错误,"
            f" 涉及 {len({i.plot_id for i in errors})} 个地块; 未写入任何地块",
            key="reduction_plots_refused",
            file=p.name,
            hint="修正后重新提交"
            + ("; 仅空间/属性问题时可加 --flag 带标记入库" if not flag and not structural else ""),
            data={"issues": [i.to_dict() for i in issues]},
        )
    reasons: dict[str, list[str]] = {}
    for i in errors:
        reasons.setdefault(str(i.plot_id), []).append(i.message)
    new = plots.copy()
    new["district"] = district
    new["area_m2"] = ellipsoidal_area(new.geometry)
    new["qc_status"] = [
        ("flagged" if pid in reasons else "ok") for pid in new["plot_id"].astype(str)
    ]
    new["qc_reasons"] = ["; ".join(reasons.get(pid, [])) for pid in new["plot_id"].astype(str)]
    new["survey_snapshot"] = np.int64(survey_snap.id)
    new["source_file"] = p.name
    new["submitted_by"] = settings.actor
    new["submitted_at"] = _now()
    new = new[[*PLOT_FIELDS, "geometry"]]
    warnings = tuple(i.message for i in issues if i.severity == "warning")
    if dry_run:
        return SubmitResult(
            str(township),
            int(year),
            None,
            len(new),
            len(reasons),
            tuple(issues),
            float(new["area_m2"].sum()),
            warnings,
            plots=new,
        )
    allp = (
        pd.concat([keep[[*PLOT_FIELDS, "geometry"]], new], ignore_index=True) if len(keep) else new
    )
    allp = gpd.GeoDataFrame(allp, geometry="geometry", crs=new.crs)
    allp["year"] = allp["year"].astype("int64")
    allp["survey_snapshot"] = allp["survey_snapshot"].astype("int64")
    allp["area_m2"] = allp["area_m2"].astype(float)
    allp["declared_area_m2"] = allp["declared_area_m2"].astype(float)
    n = (
        sum(
            1
            for s in _snapshots(store, cfg.plots_layer)
            if s.label.startswith(f"{year}-{township}-")
        )
        + 1
    )
    spec = LayerSpec(
        name=cfg.plots_layer,
        kind="plot",
        title="减量地块 (落图)",
        description="各乡镇提交的年度减量地块; 每次提交生成新快照",
        id_field="plot_id",
        jurisdiction_field="township",
    )
    snap = store.write_snapshot(
        spec,
        [allp],
        label=f"{year}-{township}-{n}",
        obs_date=f"{int(year)}-12-31",
        source_file=p.name,
        source_hash=source_hash,
        source_crs=str(raw.crs) if raw.crs else None,
        actor=settings.actor,
        notes={
            "township": str(township),
            "year": int(year),
            "submitted": len(new),
            "flagged": len(reasons),
            "replaced": int(replaced.sum()),
            "survey_snapshot": survey_snap.id,
        },
        geometry_type="MultiPolygon",
    )
    return SubmitResult(
        str(township),
        int(year),
        snap,
        len(new),
        len(reasons),
        tuple(issues),
        float(new["area_m2"].sum()),
        warnings,
    )


def _bbox(*frames: gpd.GeoDataFrame) -> tuple[float, float, float, float] | None:
    """Bounding box (storage CRS) around the frames' geometries, or None."""
    b = np.array([f.total_bounds for f in frames if len(f)], dtype=float)
    b = b[np.isfinite(b).all(axis=1)] if len(b) else b
    if not len(b):
        return None
    return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


def _survey_before(store: Store, layer: str, year: int) -> SnapshotInfo:
    """Return the latest survey of a year before ``year`` (what its plots are drawn on)."""
    snaps = store.snapshots(layer)
    if not snaps:
        raise NotFoundError(f"图层 {layer} 没有快照", key="snapshot_not_found", field="layer")
    earlier = [s for s in snaps if _year_of(s) < year]
    if not earlier:
        raise NotFoundError(
            f"图层 {layer} 没有 {year} 年以前的调查快照, 无法核对地块是否为城乡建设用地",
            key="reduction_no_survey_before",
            hint="先导入上一年度的变更调查",
        )
    return max(earlier, key=lambda s: (_year_of(s), s.obs_date or "", s.id))


def _snapshots(store: Store, layer: str) -> list[SnapshotInfo]:
    try:
        return store.snapshots(layer)
    except NotFoundError:
        return []


# ----------------------------------------------------------------------------------------- accept
@dataclass(frozen=True)
class AcceptResult:
    """Acceptance of one year and the ledger rows it produced."""

    year: int
    baseline: SnapshotInfo
    survey: SnapshotInfo
    acceptance: pd.DataFrame
    township: pd.DataFrame
    district: pd.DataFrame
    provenance_id: str
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (areas in m², with km² totals)."""
        acc = self.acceptance
        counts = acc["verdict"].value_counts().to_dict() if len(acc) else {}
        return {
            "year": self.year,
            "baseline": {
                "label": self.baseline.label,
                "id": self.baseline.id,
                "content_hash": self.baseline.content_hash,
            },
            "survey": {
                "label": self.survey.label,
                "id": self.survey.id,
                "content_hash": self.survey.content_hash,
            },
            "verdicts": {str(k): int(v) for k, v in counts.items()},
            "plots": _records(acc),
            "district": _records(self.district),
            "township": _records(self.township),
            "provenance_id": self.provenance_id,
            "stats": self.stats,
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in df.to_dict("records"):
        out.append(
            {
                k: (
                    None
                    if (not isinstance(v, str | bool) and v is not None and pd.isna(v))
                    else (v.item() if hasattr(v, "item") else v)
                )
                for k, v in r.items()
            }
        )
    return out


def _previous_snapshot(store: Store, layer: str, snap: SnapshotInfo) -> SnapshotInfo:
    cutoff = snap.obs_date or snap.created_at[:10]
    earlier = [
        s
        for s in store.snapshots(layer)
        if s.id != snap.id and (s.obs_date or s.created_at[:10]) < cutoff
    ]
    if not earlier:
        raise NotFoundError(
            f"图层 {layer} 在快照 {snap.label} 之前没有快照, 无法确定上年调查",
            key="reduction_no_baseline",
            field="baseline",
            hint="用 --baseline 指定上年的调查快照",
        )
    return max(earlier, key=lambda s: ((s.obs_date or s.created_at[:10]), s.id))


def _year_of(snap: SnapshotInfo) -> int:
    text = snap.obs_date or snap.label
    m = re.match(r"(\d{4})", str(text))
    if not m:
        raise InputError(
            f"无法从快照 {snap.label} 判断调查年度",
            key="reduction_snapshot_year",
            hint="快照标签或观测日期应含年份, 如 2021",
        )
    return int(m.group(1))


def accept_year(
    store: Store,
    *,
    year: int,
    survey: str,
    settings: Settings,
    baseline: str | None = None,
    pack: PolicyPack | None = None,
) -> AcceptResult:
    """Year-end acceptance (验收) of the year's plots and the unit ledger of that year.

    Replaces earlier results of the same year. Every acceptance row names the plot snapshot,
    the baseline and survey snapshots and the policy pack, and carries a provenance id.
    """
    pack = pack or reduction_pack(store)
    cfg = get_config(store)
    s1 = store.resolve_snapshot(cfg.survey_layer, survey)
    if _year_of(s1) != int(year):
        raise ValidationError(
            f"调查快照 {s1.label} 的年度为 {_year_of(s1)}, 与验收年度 {year} 不符",
            key="reduction_year_mismatch",
            field="year",
            hint="--survey 应为当年的年度变更调查快照",
        )
    s0 = (
        store.resolve_snapshot(cfg.survey_layer, baseline)
        if baseline
        else _previous_snapshot(store, cfg.survey_layer, s1)
    )
    if s0.id == s1.id:
        raise ValidationError(
            "上年调查与本年调查是同一快照", key="reduction_same_snapshot", field="baseline"
        )
    units, usnap = _units(store, cfg)
    g0 = store.read_layer(cfg.survey_layer, snapshot=s0.id)
    g1 = store.read_layer(cfg.survey_layer, snapshot=s1.id)
    c0 = construction_mask(g0, pack, code_field=cfg.code_field, czcsxm_field=cfg.czcsxm_field)
    c1 = construction_mask(g1, pack, code_field=cfg.code_field, czcsxm_field=cfg.czcsxm_field)
    psnaps = _snapshots(store, cfg.plots_layer)
    psnap = store.resolve_snapshot(cfg.plots_layer) if psnaps else None
    plots = store.read_layer(cfg.plots_layer, snapshot=psnap.id) if psnap else None
    res = evaluate_year(
        units=units,
        baseline=g0,
        baseline_construction=c0,
        survey=g1,
        survey_construction=c1,
        plots=plots,
        year=int(year),
        pack=pack,
        columns=cfg.columns,
    )

    refs = [snapshot_ref(s0), snapshot_ref(s1), snapshot_ref(usnap)] + (
        [snapshot_ref(psnap)] if psnap else []
    )
    policy = pack.ref()
    with _tx(store):
        acc = res.acceptance.copy()
        if len(acc):
            pids = []
            for r in acc.to_dict("records"):
                rec = record_result(
                    store,
                    "reduction.acceptance",
                    inputs=refs,
                    params={"year": int(year), "plot_id": r["plot_id"], "plane": res.plane},
                    policy=policy,
                    result={
                        k: r[k]
                        for k in ("plot_id", "verdict", "reduced_m2", "base_m2", "counted_m2")
                    },
                    actor=settings.actor,
                )
                pids.append(rec.id)
            acc["plot_snapshot"] = np.int64(psnap.id) if psnap else None
            acc["plot_snapshot_hash"] = psnap.content_hash if psnap else None
            acc["baseline_snapshot"] = np.int64(s0.id)
            acc["baseline_label"] = s0.label
            acc["baseline_hash"] = s0.content_hash
            acc["survey_snapshot"] = np.int64(s1.id)
            acc["survey_label"] = s1.label
            acc["survey_hash"] = s1.content_hash
            acc["policy_id"] = policy["id"]
            acc["policy_version"] = policy["version"]
            acc["policy_hash"] = policy["hash"]
            acc["provenance_id"] = pids
            acc = acc[list(ACCEPTANCE_COLUMNS)]
        ledger_rec = record_result(
            store,
            "reduction.ledger",
            inputs=refs,
            params={"year": int(year), "plane": res.plane, "units_layer": cfg.units_layer},
            policy=policy,
            result=_records(res.ledger),
            actor=settings.actor,
        )
        town = res.ledger.copy()
        town["baseline_label"] = s0.label
        town["survey_label"] = s1.label
        town["provenance_id"] = ledger_rec.id
        town = town[list(LEDGER_COLUMNS)]
        dist = aggregate_ledger(town, level="district", names=_names(units, cfg))
        old_acc = _read_table(store, T_ACCEPT)
        if old_acc is not None and len(old_acc):
            old_acc = old_acc[old_acc["year"].astype(int) != int(year)]
        full_acc = (
            pd.concat([x for x in (old_acc, acc) if x is not None and len(x)], ignore_index=True)
            if (len(acc) or (old_acc is not None and len(old_acc)))
            else pd.DataFrame(columns=list(ACCEPTANCE_COLUMNS))
        )
        store.write_table(
            T_ACCEPT, _typed_acceptance(full_acc), actor=settings.actor, action="reduction.accept"
        )
        old_led = _read_table(store, T_LEDGER)
        if old_led is not None and len(old_led):
            old_led = old_led[old_led["year"].astype(int) != int(year)]
        full_led = pd.concat(
            [x for x in (old_led, town, dist) if x is not None and len(x)], ignore_index=True
        )
        store.write_table(
            T_LEDGER, _typed_ledger(full_led), actor=settings.actor, action="reduction.ledger"
        )
        store.audit_append(
            "reduction.accept",
            f"reduction:{year}",
            actor=settings.actor,
            details={
                "year": int(year),
                "survey": s1.label,
                "baseline": s0.label,
                "plots": len(acc),
                "provenance_id": ledger_rec.id,
            },
            input_hashes=[s0.content_hash, s1.content_hash]
            + ([psnap.content_hash] if psnap else []),
        )
    return AcceptResult(
        int(year), s0, s1, acc, town, dist, ledger_rec.id, dict(res.stats) | {"plane": res.plane}
    )


def _typed_acceptance(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in (
        "area_m2",
        "baseline_cover_m2",
        "cover_m2",
        "base_m2",
        "remaining_m2",
        "reduced_m2",
        "new_m2",
        "share",
        "counted_m2",
    ):
        if c in df.columns:
            df[c] = df[c].astype(float)
    for c in ("year", "survey_snapshot", "baseline_snapshot"):
        if c in df.columns and len(df):
            df[c] = df[c].astype("int64")
    if "counted" in df.columns and len(df):
        df["counted"] = df["counted"].astype(bool)
    return df


def _typed_ledger(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in LEDGER_COLUMNS:
        if c.endswith("_m2"):
            df[c] = df[c].astype(float)
        elif c == "year" or c.startswith("plots"):
            df[c] = df[c].astype("int64")
    return df


def read_ledger(store: Store) -> pd.DataFrame:
    """Read the stored ledger (all levels and years); empty before the first acceptance."""
    df = _read_table(store, T_LEDGER)
    return pd.DataFrame(columns=list(LEDGER_COLUMNS)) if df is None else df


def read_acceptance(store: Store) -> pd.DataFrame:
    """Read the stored acceptance rows."""
    df = _read_table(store, T_ACCEPT)
    return pd.DataFrame(columns=list(ACCEPTANCE_COLUMNS)) if df is None else df


# ----------------------------------------------------------------------------------------- rebuild
def check_rebuild(
    store: Store, *, survey: str, settings: Settings, pack: PolicyPack | None = None
) -> list[RebuildAlert]:
    """Check every plot accepted before ``survey``'s year against that survey (复建监测)."""
    pack = pack or reduction_pack(store)
    cfg = get_config(store)
    later = store.resolve_snapshot(cfg.survey_layer, survey)
    ly = _year_of(later)
    acc = read_acceptance(store)
    if len(acc):
        acc = acc[acc["counted"].astype(bool) & (acc["year"].astype(int) < ly)]
    if not len(acc):
        return []
    gl = store.read_layer(cfg.survey_layer, snapshot=later.id)
    cl = construction_mask(gl, pack, code_field=cfg.code_field, czcsxm_field=cfg.czcsxm_field)
    alerts: list[RebuildAlert] = []
    names = _names(_units(store, cfg)[0], cfg) if cfg.units_layer else {}
    for (sid, pid_snap), grp in acc.groupby(["survey_snapshot", "plot_snapshot"], sort=True):
        snap_acc = store.resolve_snapshot(cfg.survey_layer, int(sid))
        psnap = store.resolve_snapshot(cfg.plots_layer, int(pid_snap))
        ga = store.read_layer(cfg.survey_layer, snapshot=snap_acc.id)
        ca = construction_mask(ga, pack, code_field=cfg.code_field, czcsxm_field=cfg.czcsxm_field)
        plots = store.read_layer(cfg.plots_layer, snapshot=psnap.id)
        plots = plots[plots["plot_id"].astype(str).isin(set(grp["plot_id"].astype(str)))].copy()
        years = dict(zip(grp["plot_id"].astype(str), grp["year"].astype(int), strict=True))
        plots["accepted_year"] = plots["plot_id"].astype(str).map(years)
        found = detect_rebuild(
            plots.reset_index(drop=True),
            accepted_survey=ga,
            accepted_construction=ca,
            later_survey=gl,
            later_construction=cl,
            survey_year=ly,
            survey_label=later.label,
            pack=pack,
            unit_names=names,
        )
        refs = [snapshot_ref(snap_acc), snapshot_ref(later), snapshot_ref(psnap)]
        for a in found:
            rec = record_result(
                store,
                "reduction.rebuild",
                inputs=refs,
                params={"plot_id": a.plot_id, "survey": later.label},
                policy=pack.ref(),
                result={"rebuilt_m2": a.rebuilt_m2, "alert": a.alert},
                actor=settings.actor,
            )
            alerts.append(replace(a, provenance_id=rec.id))
    df = pd.DataFrame([a.to_dict() for a in alerts], columns=list(_REBUILD_COLS))
    old = _read_table(store, T_REBUILD)
    if old is not None and len(old):
        old = old[old["survey_label"].astype(str) != later.label]
        df = pd.concat([old, df], ignore_index=True)
    df["alert"] = df["alert"].astype(bool)
    for c in ("accepted_year", "survey_year"):
        df[c] = df[c].astype("int64")
    for c in ("rebuilt_m2", "plot_area_m2"):
        df[c] = df[c].astype(float)
    store.write_table(T_REBUILD, df, actor=settings.actor, action="reduction.rebuild")
    return alerts


def read_rebuild(store: Store) -> list[RebuildAlert]:
    """Read the stored rebuild checks."""
    df = _read_table(store, T_REBUILD)
    if df is None:
        return []
    return [
        RebuildAlert(
            **{
                k: (
                    None
                    if k == "provenance_id"
                    and (v is None or (isinstance(v, float) and np.isnan(v)))
                    else v
                )
                for k, v in r.items()
            }
        )
        for r in df.to_dict("records")
    ]


# ------------------------------------------------------------------------------------ transfers
def _known_units(store: Store) -> set[str]:
    cfg = get_config(store)
    known = {t.unit_code for t in read_targets(store)}
    if cfg.units_layer:
        units, _ = _units(store, cfg)
        known |= set(units[cfg.unit_field].astype(str))
        if cfg.parent_field and cfg.parent_field in units.columns:
            known |= set(units[cfg.parent_field].astype(str))
    return known


def add_transfer(
    store: Store, transfer: Transfer, *, actor: str, pack: PolicyPack | None = None
) -> tuple[Transfer, list[dict[str, Any]]]:
    """Record a quota transfer after the pack's checks; errors refuse it (ValidationError)."""
    pack = pack or reduction_pack(store)
    findings = check_transfer(transfer, pack, known_units=_known_units(store))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise ValidationError(
            "; ".join(f.message for f in errors),
            key=f"reduction_transfer_{errors[0].outcome}",
            feature=transfer.transfer_id,
            data={"findings": [f.to_dict() for f in findings]},
        )
    store.put_record(
        C_TRANSFER,
        transfer.transfer_id,
        transfer.to_dict() | {"policy": pack.ref()},
        expected_version=None,
        actor=actor,
        jurisdiction=transfer.from_unit,
        action="reduction.transfer.add",
    )
    return transfer, [f.to_dict() for f in findings]


def list_transfers(store: Store) -> list[Transfer]:
    """All recorded transfers."""
    return [Transfer.from_dict(r.data) for r in store.list_records(C_TRANSFER)]


def balance_report(
    store: Store,
    *,
    year: int | None = None,
    level: str = "township",
    pack: PolicyPack | None = None,
) -> list[BalanceRow]:
    """增减挂钩 balance of each unit, cumulative through ``year`` (default latest ledger year)."""
    pack = pack or reduction_pack(store)
    led = read_ledger(store)
    if not len(led):
        return []
    y = int(led["year"].max()) if year is None else int(year)
    names = dict(zip(led["unit_code"].astype(str), led["unit_name"].astype(str), strict=True))
    return balance(led, list_transfers(store), pack, year=y, level=level, names=names)


# ----------------------------------------------------------------------------------------- progress
def progress_report(
    store: Store,
    *,
    by: str = "township",
    year: int | None = None,
    pack: PolicyPack | None = None,
    include_reported: bool = True,
) -> dict[str, Any]:
    """Progress per unit (computed), plus the seed's reported figures as separate rows."""
    if by not in ("district", "township"):
        raise InputError(
            f"未知的汇总层级: {by}", key="reduction_bad_level", hint="可选: district, township"
        )
    pack = pack or reduction_pack(store)
    led = read_ledger(store)
    rows = progress(read_targets(store), led, pack, level=by, year=year)
    names = (
        dict(zip(led["unit_code"].astype(str), led["unit_name"].astype(str), strict=True))
        if len(led)
        else {}
    )
    reported = reported_rows(pack, names=names) if include_reported and by == "district" else []
    as_of = rows[0].year if rows else (int(led["year"].max()) if len(led) else None)
    return {
        "level": by,
        "year": as_of,
        "policy": pack.ref(),
        "rows": rows,
        "reported": reported,
        "warnings": [r.message for r in rows if r.behind],
        "synthetic_survey": _survey_is_synthetic(store),
    }


def _survey_is_synthetic(store: Store) -> bool:
    try:
        return store.layer(get_config(store).survey_layer).synthetic
    except NotFoundError:
        return False


def progress_json(report: dict[str, Any]) -> dict[str, Any]:
    """JSON form of :func:`progress_report` (per unit: target, accepted, net, percent, status)."""
    out = dict(report)
    out["rows"] = [r.to_dict() for r in report["rows"]]
    out["reported"] = [r.to_dict() | {"label": "报告数 (种子 002)"} for r in report["reported"]]
    return out


def export_ledger(
    store: Store, path: str | Path, *, pack: PolicyPack | None = None, year: int | None = None
) -> dict[str, Any]:
    """Write the ledger workbook (台账 .xlsx, Chinese headers, one sheet per level)."""
    pack = pack or reduction_pack(store)
    led = read_ledger(store)
    if not len(led):
        raise InputError(
            "台账中还没有核算结果",
            key="reduction_no_ledger",
            hint="先运行 yizhangtu reduction accept --year Y --survey LABEL",
        )
    y = int(led["year"].max()) if year is None else int(year)
    led = led[led["year"].astype(int) <= y]
    prog = progress_report(store, by="district", year=y, pack=pack)
    prog_t = progress_report(store, by="township", year=y, pack=pack)
    rows: list[ProgressRow] = [*prog["reported"], *prog["rows"], *prog_t["rows"]]
    acc = read_acceptance(store)
    acc = acc[acc["year"].astype(int) <= y] if len(acc) else acc
    synthetic = _survey_is_synthetic(store)
    meta = {
        "标题": "城乡建设用地减量台账"
        + (" (合成数据: 调查图斑为合成, 非真实调查成果)" if synthetic else ""),
        "工作空间": store.uri,
        "截至年度": y,
        "政策包": f"{pack.id} {pack.version} ({pack.hash[:12]})",
        "面积口径": "CGCS2000 椭球面积; 城乡建设用地按 "
        + str(param(pack, "construction_group"))
        + " 分组判定",
        "净减量": "上年存量 − 本年存量; 核对: 净减量 = 退出城乡建设用地 − 新增城乡建设用地"
        " (核对差应为 0)",
        "验收减量": "验收为已减量/部分减量的地块内实际退出城乡建设用地的面积",
        "报告数": "进度表中标为“报告数 (种子 002)”的行取自朝阳分区规划实施情况报告, 非本系统计算",
        "合成数据": "是" if synthetic else "否",
        "生成时间": _now(),
    }
    data = ledger_to_xlsx(
        district=led[led["level"] == "district"],
        township=led[led["level"] == "township"],
        acceptance=acc,
        progress=rows,
        rebuild=read_rebuild(store),
        transfers=list_transfers(store),
        balance=balance_report(store, year=y, level="township", pack=pack)
        + balance_report(store, year=y, level="district", pack=pack),
        meta=meta,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return {
        "path": str(out),
        "bytes": len(data),
        "year": y,
        "sheets": [
            "说明",
            "进度",
            "区级台账",
            "乡镇台账",
            "地块验收",
            "复建预警",
            "指标联动",
            "增减挂钩",
        ],
        "table_hash": table_ref(store, T_LEDGER).content_hash,
    }


# ------------------------------------------------------------------------------------------- web
# Adapters for the REST API (yizhangtu.web.routers.reduction). ``prefixes`` are administrative
# code prefixes (a user's jurisdiction, ``Scope.record_prefixes()``); ``None`` means no filter.
# Every read of stored rows is filtered by the store in SQL (``query_table`` with the table's
# jurisdiction column, ``query_records``, ``query_features``), never by reading whole tables.


def _inside(code: object, prefixes: Sequence[str] | None) -> bool:
    return prefixes is None or any(str(code).startswith(str(p)) for p in prefixes if p)


def _table_in(
    store: Store, name: str, column: str, prefixes: Sequence[str] | None
) -> pd.DataFrame | None:
    """Rows of a ledger table whose ``column`` starts with one of ``prefixes`` (SQL), or None."""
    if name not in store.table_names():
        return None
    df, _ = store.query_table(
        name,
        jurisdiction_field=column if prefixes is not None else None,
        jurisdictions=None if prefixes is None else list(prefixes),
    )
    return df


def targets_in(store: Store, prefixes: Sequence[str] | None) -> list[Target]:
    """Return the targets of the units inside ``prefixes`` (filtered in SQL on ``unit_code``)."""
    df = _table_in(store, T_TARGETS, "unit_code", prefixes)
    rows: list[dict[str, Any]] = [] if df is None else df.to_dict("records")  # type: ignore[assignment]
    return [Target.from_row(r) for r in rows]


def targets_report_in(store: Store, prefixes: Sequence[str] | None) -> dict[str, Any]:
    """:func:`targets_report` over the targets inside ``prefixes``.

    A parent's split check counts the children visible with it; administrative codes nest
    (110105 → 110105001000), so a user who sees a parent sees its children.
    """
    targets = targets_in(store, prefixes)
    checks = []
    for parent in targets:
        kids = [
            t
            for t in targets
            if t.parent_code == parent.unit_code and t.kind == parent.kind and t.year == parent.year
        ]
        if not kids:
            continue
        allocated = sum(t.target_m2 for t in kids)
        diff = parent.target_m2 - allocated
        checks.append(
            {
                "unit_code": parent.unit_code,
                "unit_name": parent.unit_name,
                "kind": parent.kind,
                "year": parent.year,
                "target_m2": parent.target_m2,
                "allocated_m2": allocated,
                "unallocated_m2": diff,
                "children": len(kids),
                "ok": abs(diff) <= 1.0,
                "message": _split_message(parent, len(kids), allocated, diff),
            }
        )
    return {
        "targets": [t.to_row() | {"target_km2": t.target_m2 / 1e6} for t in targets],
        "split_checks": checks,
    }


def plots_in(
    store: Store,
    prefixes: Sequence[str] | None,
    *,
    township: str | None = None,
    year: int | None = None,
    after: int | None = None,
    limit: int = 1000,
) -> tuple[gpd.GeoDataFrame, int | None]:
    """Return the current plots inside ``prefixes`` (SQL filter on ``township``), by fid.

    Returns the frame (indexed by fid) and the fid to continue after, or None at the end.
    """
    cfg = get_config(store)
    empty = gpd.GeoDataFrame({f: [] for f in PLOT_FIELDS}, geometry=gpd.GeoSeries([]))
    try:
        info = store.layer(cfg.plots_layer)
    except NotFoundError:
        return empty, None
    if info.current_snapshot is None:
        return empty, None
    where: list[str] = []
    params: list[Any] = []
    if township is not None:
        where.append(f'"township" = {store.ph}')
        params.append(str(township))
    if year is not None:
        where.append(f'"year" = {store.ph}')
        params.append(int(year))
    return store.query_features(
        cfg.plots_layer,
        where_sql=" AND ".join(where) or None,
        params=params,
        after_fid=after,
        limit=int(limit),
        jurisdictions=None if prefixes is None else list(prefixes),
    )


def acceptance_in(
    store: Store, prefixes: Sequence[str] | None, *, year: int | None = None
) -> dict[str, Any]:
    """Return acceptance rows (by ``township``) and ledger rows (by ``unit_code``) inside.

    Both tables are filtered in SQL on those columns against ``prefixes``.
    """
    acc = _table_in(store, T_ACCEPT, "township", prefixes)
    led = _table_in(store, T_LEDGER, "unit_code", prefixes)
    acc = pd.DataFrame(columns=list(ACCEPTANCE_COLUMNS)) if acc is None else acc
    led = pd.DataFrame(columns=list(LEDGER_COLUMNS)) if led is None else led
    if year is not None:
        acc = acc[acc["year"].astype(int) == int(year)] if len(acc) else acc
        led = led[led["year"].astype(int) == int(year)] if len(led) else led
    counts = acc["verdict"].value_counts().to_dict() if len(acc) else {}
    return {
        "year": year,
        "years": sorted({int(y) for y in led["year"]}) if len(led) else [],
        "verdicts": {str(k): int(v) for k, v in counts.items()},
        "plots": _records(acc),
        "ledger": _records(led),
    }


def rebuild_in(
    store: Store,
    prefixes: Sequence[str] | None,
    *,
    survey: str | None = None,
    alerts_only: bool = False,
) -> list[dict[str, Any]]:
    """Return the rebuild checks of the plots inside ``prefixes`` (SQL filter on township)."""
    df = _table_in(store, T_REBUILD, "township", prefixes)
    if df is None or not len(df):
        return []
    if survey is not None:
        df = df[df["survey_label"].astype(str) == str(survey)]
    if alerts_only:
        df = df[df["alert"].astype(bool)]
    return _records(df)


def _transfer_of(rec: Any) -> Transfer:
    """Rebuild a stored transfer; a record of another shape is a 422, not a crash.

    (The collection can be written by other means than :func:`add_transfer`.)
    """
    from yizhangtu.errors import YizhangtuError

    try:
        return Transfer.from_dict(rec.data)
    except (KeyError, TypeError, ValueError, YizhangtuError) as exc:
        raise ValidationError(
            f"指标联动记录 {rec.key} 格式有误, 无法读取",
            key="reduction_transfer_invalid",
            feature=rec.key,
            hint="通过 POST /api/reduction/transfers 或 yizhangtu reduction transfer add 登记",
        ) from exc


def transfers_in(store: Store, prefixes: Sequence[str] | None) -> list[dict[str, Any]]:
    """Return transfers whose relieving unit (疏解地, the record's jurisdiction) is inside."""
    recs = store.query_records(
        C_TRANSFER, jurisdiction_prefixes=None if prefixes is None else list(prefixes)
    )
    return [
        _transfer_of(r).to_dict()
        | {
            "policy": r.data.get("policy"),
            "version": r.version,
            "updated_at": r.updated_at,
            "updated_by": r.updated_by,
        }
        for r in recs
    ]


def balance_in(
    store: Store,
    prefixes: Sequence[str] | None,
    *,
    year: int | None = None,
    level: str = "township",
    pack: PolicyPack | None = None,
) -> list[BalanceRow]:
    """增减挂钩 balance of the units inside ``prefixes`` (their ledger rows read in SQL).

    Every recorded transfer is passed to :func:`yizhangtu.reduction.balance`, which books a
    transfer only on the units given, so a unit's quota received from outside the prefixes
    counts while no outside unit gets a row.
    """
    if level not in ("district", "township"):
        raise InputError(
            f"未知的汇总层级: {level}", key="reduction_bad_level", hint="可选: district, township"
        )
    pack = pack or reduction_pack(store)
    led = _table_in(store, T_LEDGER, "unit_code", prefixes)
    if led is None or not len(led):
        return []
    led = led[led["level"].astype(str) == level]
    if not len(led):
        return []
    y = int(led["year"].max()) if year is None else int(year)
    names = dict(zip(led["unit_code"].astype(str), led["unit_name"].astype(str), strict=True))
    transfers = [_transfer_of(r) for r in store.list_records(C_TRANSFER)]
    return balance(led, transfers, pack, year=y, level=level, names=names)


def progress_in(
    store: Store,
    prefixes: Sequence[str] | None,
    *,
    by: str = "township",
    year: int | None = None,
    pack: PolicyPack | None = None,
) -> dict[str, Any]:
    """:func:`progress_json` of the units inside ``prefixes`` (targets and ledger read in SQL).

    The reported figures (报告数) come from the policy pack and are kept for covered units.
    Before any acceptance of the units the rows are empty and ``message`` says why.
    """
    if by not in ("district", "township"):
        raise InputError(
            f"未知的汇总层级: {by}", key="reduction_bad_level", hint="可选: district, township"
        )
    pack = pack or reduction_pack(store)
    led = _table_in(store, T_LEDGER, "unit_code", prefixes)
    led = pd.DataFrame(columns=list(LEDGER_COLUMNS)) if led is None else led
    out: dict[str, Any] = {
        "level": by,
        "policy": pack.ref(),
        "synthetic_survey": _survey_is_synthetic(store),
    }
    try:
        rows = progress(targets_in(store, prefixes), led, pack, level=by, year=year)
    except InputError as exc:
        if exc.key != "reduction_no_ledger":
            raise
        rows = []
        out["message"] = exc.message + (f" ({exc.hint})" if exc.hint else "")
    names = (
        dict(zip(led["unit_code"].astype(str), led["unit_name"].astype(str), strict=True))
        if len(led)
        else {}
    )
    reported = (
        [r for r in reported_rows(pack, names=names) if _inside(r.unit_code, prefixes)]
        if by == "district"
        else []
    )
    lvl = led[led["level"].astype(str) == by] if len(led) else led
    out["year"] = rows[0].year if rows else (int(lvl["year"].max()) if len(lvl) else year)
    out["rows"] = [r.to_dict() for r in rows]
    out["reported"] = [r.to_dict() | {"label": "报告数 (种子 002)"} for r in reported]
    out["warnings"] = [r.message for r in rows if r.behind]
    return out


def require_whole_ledger(
    store: Store, prefixes: Sequence[str] | None, *, action: str, tables: bool = False
) -> None:
    """Refuse (403) unless every unit the ledger computes lies inside ``prefixes``.

    Acceptance, rebuild checks and the ledger workbook cover every unit of the units layer
    (and their districts) at once, so only a user whose jurisdiction covers all of them may
    run them. With ``tables`` the stored targets and ledger rows must be inside too (counted
    in SQL).
    """
    from yizhangtu.errors import PermissionDeniedError

    if prefixes is None:
        return
    cfg = get_config(store)
    layer = cfg.require_units()
    names = {n for n, _ in store.feature_schema(layer)}
    if cfg.unit_field not in names:
        raise InputError(
            f"图层 {layer} 没有字段 {cfg.unit_field}",
            key="reduction_config_field_missing",
            field=cfg.unit_field,
        )
    cols = [c for c in (cfg.unit_field, cfg.parent_field) if c and c in names]
    rows = store.query_feature_rows(layer, columns=cols)  # SQL: no geometry decoding
    codes = {str(v) for r in rows.rows for v in r if v is not None}
    outside = sorted(c for c in codes if not _inside(c, prefixes))
    if tables:
        for name in (T_TARGETS, T_LEDGER):
            if name not in store.table_names():
                continue
            _, inside = store.query_table(
                name, jurisdiction_field="unit_code", jurisdictions=list(prefixes), limit=0
            )
            _, total = store.query_table(name, limit=0)
            if inside != total:
                outside.append(f"{total - inside} 行{'目标' if name == T_TARGETS else '台账'}")
    if outside:
        raise PermissionDeniedError(
            f"{action}涉及你辖区 ({', '.join(prefixes) or '无'}) 以外的单位 (如 {outside[0]}),"
            " 须由辖区覆盖全部核算单元的用户运行",
            key="outside_jurisdiction",
            field="jurisdiction",
            hint="请覆盖全部乡镇的区级用户或市级管理员运行",
        )


def check_accept(
    store: Store, *, year: int, survey: str, baseline: str | None = None
) -> dict[str, Any]:
    """Run the checks of :func:`accept_year` that need no large read (for a quick 4xx).

    Returns the survey and baseline labels the acceptance would use.
    """
    cfg = get_config(store)
    cfg.require_units()
    s1 = store.resolve_snapshot(cfg.survey_layer, survey)
    if _year_of(s1) != int(year):
        raise ValidationError(
            f"调查快照 {s1.label} 的年度为 {_year_of(s1)}, 与验收年度 {year} 不符",
            key="reduction_year_mismatch",
            field="year",
            hint="survey 应为当年的年度变更调查快照",
        )
    s0 = (
        store.resolve_snapshot(cfg.survey_layer, baseline)
        if baseline
        else _previous_snapshot(store, cfg.survey_layer, s1)
    )
    if s0.id == s1.id:
        raise ValidationError(
            "上年调查与本年调查是同一快照", key="reduction_same_snapshot", field="baseline"
        )
    return {"survey": s1.label, "baseline": s0.label}


def _is_pg(uri: str) -> bool:
    return uri.startswith(("postgresql://", "postgres://"))


@contextlib.contextmanager
def _worker(uri: str, progress: ProgressFn, *, write: bool) -> Iterator[Store]:
    """Open a job's own workspace connection; GeoPackage writes hold the write lock."""
    from yizhangtu.services.jobs import open_worker_store, write_lock

    lock = write_lock(uri) if write and not _is_pg(uri) else None
    if lock is not None and not lock.acquire(blocking=False):
        progress(0.02, "等待其他写入任务完成")
        lock.acquire()
    try:
        store = open_worker_store(uri)
        try:
            yield store
        finally:
            store.close()
    finally:
        if lock is not None:
            lock.release()


def accept_job(
    uri: str, settings: Settings, scope: Scope, *, year: int, survey: str, baseline: str | None
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job running :func:`accept_year` as ``scope``'s user (a background job)."""

    def run(progress: ProgressFn) -> dict[str, Any]:
        from yizhangtu.services.features import json_ready

        with _worker(uri, progress, write=True) as store:
            progress(0.05, "核对辖区")
            require_whole_ledger(store, scope.record_prefixes(), action="年度验收")
            progress(0.1, f"验收 {year} 年减量地块")
            res = accept_year(
                store,
                year=int(year),
                survey=survey,
                baseline=baseline,
                settings=settings.model_copy(update={"actor": str(scope.username)}),
            )
        out = res.to_dict()
        out.pop("plots", None)
        out["plots_count"] = len(res.acceptance)
        out["url"] = f"/api/reduction/acceptance?year={int(year)}"
        return dict(json_ready(out))

    return run


def rebuild_job(
    uri: str, settings: Settings, scope: Scope, *, survey: str
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job running :func:`check_rebuild` against ``survey`` as ``scope``'s user."""

    def run(progress: ProgressFn) -> dict[str, Any]:
        from urllib.parse import quote

        from yizhangtu.services.features import json_ready

        with _worker(uri, progress, write=True) as store:
            progress(0.05, "核对辖区")
            require_whole_ledger(store, scope.record_prefixes(), action="复建监测")
            progress(0.1, f"对照调查 {survey} 检查已验收地块")
            alerts = check_rebuild(
                store,
                survey=survey,
                settings=settings.model_copy(update={"actor": str(scope.username)}),
            )
        return dict(
            json_ready(
                {
                    "survey": survey,
                    "checked": len(alerts),
                    "alerts": sum(1 for a in alerts if a.alert),
                    "rows": [a.to_dict() for a in alerts],
                    "url": "/api/reduction/rebuild?survey=" + quote(survey, safe=""),
                }
            )
        )

    return run


def _redacted_uri(uri: str) -> str:
    """Name the workspace without credentials or server paths (for downloadable reports)."""
    if _is_pg(uri):
        from urllib.parse import urlsplit

        u = urlsplit(uri)
        return f"PostGIS {u.hostname or ''}{':' + str(u.port) if u.port else ''}{u.path}"
    return f"GeoPackage {Path(uri).name}"


def ledger_export_job(
    uri: str, scope: Scope, reports_dir: Path, *, year: int | None = None
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job writing the ledger workbook (:func:`export_ledger`) into ``reports_dir``.

    The report's sidecar names the user's jurisdiction, so /api/reports serves it to them and
    to users above them; the workspace location in the 说明 sheet is given without credentials.
    """

    def run(progress: ProgressFn) -> dict[str, Any]:
        import secrets

        from openpyxl import load_workbook

        from yizhangtu.services.jobs import write_report_meta

        reports_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        final = reports_dir / f"reduction_ledger_{stamp}_{secrets.token_hex(3)}.xlsx"
        tmp = final.with_name("." + final.name + ".tmp.xlsx")
        try:
            with _worker(uri, progress, write=False) as store:
                progress(0.05, "核对辖区")
                require_whole_ledger(
                    store, scope.record_prefixes(), action="导出减量台账", tables=True
                )
                progress(0.2, "生成台账")
                out = export_ledger(store, tmp, year=year)
                synthetic = _survey_is_synthetic(store)
            progress(0.8, "写入报告")
            wb = load_workbook(tmp)
            for row in wb["说明"].iter_rows(min_row=2):
                if row[0].value == "工作空间":
                    row[1].value = _redacted_uri(uri)
            wb.save(tmp)
            title = f"城乡建设用地减量台账 (截至 {out['year']} 年)" + (
                " (合成数据)" if synthetic else ""
            )
            write_report_meta(
                final,
                kind="reduction_ledger",
                title=title,
                scope=scope,
                synthetic=synthetic,
                extra={"year": out["year"], "table_hash": out["table_hash"]},
            )
            tmp.replace(final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            final.with_name(final.name + ".meta.json").unlink(missing_ok=True)
            raise
        return {
            "report": final.name,
            "url": f"/api/reports/{final.name}",
            "bytes": final.stat().st_size,
            "year": out["year"],
            "sheets": out["sheets"],
            "table_hash": out["table_hash"],
            "synthetic": synthetic,
        }

    return run
