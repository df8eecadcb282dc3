"""Land accounting services: area tables by class × unit, general overlay, with provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from yizhangtu.errors import InputError
from yizhangtu.provenance import canonical_json, sha256_hex
from yizhangtu.services.provenance import record_result, snapshot_ref
from yizhangtu.settings import Settings
from yizhangtu.store import Store

__all__ = ["area_table", "classifier_for", "overlay_layers", "write_area_table"]

_CZCSXM_FIELDS = ("CZCSXM", "czcsxm")


def _unit_field(units: gpd.GeoDataFrame, given: str | None) -> str:
    if given:
        if given not in units.columns:
            raise InputError(
                f"统计单元图层没有字段 {given}",
                key="missing_field",
                field=given,
                hint="可用字段: " + ", ".join(c for c in units.columns if c != units.geometry.name),
            )
        return given
    for cand in ("name", "XZQMC", "ZLDWMC", "code", "XZQDM"):
        if cand in units.columns:
            return cand
    raise InputError(
        "请用 --unit-field 指定统计单元名称字段", key="unit_field_required", field="--unit-field"
    )


def classifier_for(
    layer_info: Any, columns: list[str], group: str
) -> tuple[Any, str, str, dict[str, Any]]:
    """Return (classify callable, class field, code system, description) for a layer and group."""
    from yizhangtu.codes import load_groups, load_table

    code_field = layer_info.code_field
    system = layer_info.code_system
    if not code_field or code_field not in columns:
        raise InputError(
            f"图层 {layer_info.name} 未登记地类代码字段",
            key="code_field_missing",
            field="code_field",
            hint="导入时加 --code-field DLBM --code-system sandiao",
        )
    if group == "code":
        return None, code_field, system or "", {"group": "code"}
    if not system:
        raise InputError(
            f"图层 {layer_info.name} 未登记代码体系",
            key="code_system_missing",
            hint="导入时加 --code-system",
        )
    groups = load_groups()
    czcs = next((c for c in _CZCSXM_FIELDS if c in columns), None)
    table = load_table(system)
    valid = table.valid_codes()

    def classify(df: pd.DataFrame) -> pd.Series:
        codes = df[code_field].astype(str).str.strip()
        out = groups.classify(
            codes,
            system=system,
            group=group,
            czcsxm=df[czcs].astype(str) if czcs and czcs in df.columns else None,
        )
        return out.where(codes.isin(valid))

    desc = {"group": group, "code_system": system, "code_field": code_field, "czcsxm_field": czcs}
    if group not in ("level1", "level2"):
        desc["definition"] = groups.describe(group)
    desc["definition_hash"] = sha256_hex(canonical_json(desc))
    return classify, code_field, system, desc


def area_table(
    store: Store,
    layer: str,
    *,
    by: str,
    settings: Settings,
    unit_field: str | None = None,
    snapshot: str | None = None,
    as_of: str | None = None,
    by_snapshot: str | None = None,
    by_as_of: str | None = None,
    group: str = "level1",
    unit: str = "km2",
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Area of each class of ``layer`` inside each unit of ``by``, reconciled, with provenance."""
    from yizhangtu.accounting import tabulate

    info = store.layer(layer)
    lsnap = store.resolve_snapshot(layer, snapshot, as_of=as_of)
    usnap = store.resolve_snapshot(by, by_snapshot, as_of=by_as_of)
    units = store.read_layer(by, snapshot=usnap.id)
    ufield = _unit_field(units, unit_field)
    if engine == "postgis":
        table = _postgis_table(store, info, lsnap, usnap, ufield, group)
        desc = {"group": group, "engine": "postgis"}
    else:
        gdf = store.read_layer(layer, snapshot=lsnap.id)
        classify, class_field, _system, desc = classifier_for(info, list(gdf.columns), group)
        table = tabulate(
            gdf,
            units,
            class_field=class_field,
            unit_field=ufield,
            classify=classify,
            engine=engine,
            scheduler=scheduler,
            workers=workers or (settings.workers or None),
        )
    table = table.in_unit(unit)
    records = table.to_records(unit)
    summary = table.summary(unit)
    rec = record_result(
        store,
        "area_table",
        inputs=[snapshot_ref(lsnap), snapshot_ref(usnap)],
        params={
            "layer": layer,
            "by": by,
            "unit_field": ufield,
            "group": group,
            "unit": unit,
            "engine": engine,
            "classification": desc,
            "equal_area_crs": table.equal_area_crs,
        },
        result={"rows": records},
        actor=settings.actor,
    )
    return {
        "layer": layer,
        "snapshot": {"id": lsnap.id, "label": lsnap.label, "content_hash": lsnap.content_hash},
        "by": by,
        "by_snapshot": {"id": usnap.id, "label": usnap.label, "content_hash": usnap.content_hash},
        "unit_field": ufield,
        "group": group,
        "area_unit": unit,
        "area_method": "ellipsoidal (CGCS2000, 椭球面积)",
        "synthetic": info.synthetic,
        "rows": records,
        "totals": summary,
        "provenance_id": rec.id,
        "_table": table,
    }


def _postgis_table(store: Store, info: Any, lsnap: Any, usnap: Any, ufield: str, group: str) -> Any:
    from yizhangtu.accounting.engines.postgis_sql import (
        postgis_tabulate,
        sql_identifier,
        sql_literal,
    )

    if store.backend != "postgis":
        raise InputError(
            "--engine postgis 需要 PostGIS 工作空间",
            key="engine_needs_postgis",
            hint="用 --workspace postgresql://… 或改用 --engine local",
        )
    conn = store.conn  # type: ignore[attr-defined]
    cols = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
            (lsnap.table_name,),
        ).fetchall()
    ]
    classify, code_field, _system, _desc = classifier_for(info, cols, group)
    czcs = next((c for c in _CZCSXM_FIELDS if c in cols), None)
    key_cols = [code_field] + ([czcs] if czcs else [])
    sel = ", ".join(sql_identifier(c) for c in key_cols)
    distinct = pd.DataFrame(
        conn.execute(f"SELECT DISTINCT {sel} FROM {sql_identifier(lsnap.table_name)}").fetchall(),
        columns=key_cols,
    )
    labels = classify(distinct) if classify is not None else distinct[code_field]
    cases = []
    for row, label in zip(distinct.itertuples(index=False), labels, strict=True):
        if pd.isna(label):
            continue  # unknown codes stay NULL and are reported by postgis_tabulate
        conds = " AND ".join(
            (
                f"l.{sql_identifier(c)} IS NULL"
                if v is None
                else f"l.{sql_identifier(c)}::text = {sql_literal(str(v))}"
            )
            for c, v in zip(key_cols, row, strict=True)
        )
        cases.append(f"WHEN {conds} THEN {sql_literal(str(label))}")
    class_expr = "CASE " + " ".join(cases) + " END" if cases else "NULL"
    conn.execute("BEGIN")
    try:
        table = postgis_tabulate(
            conn,
            lsnap.table_name,
            usnap.table_name,
            unit_field=ufield,
            class_field=code_field,
            class_expr=class_expr,
        )
    finally:
        conn.execute("ROLLBACK")
    return table


def write_area_table(result: dict[str, Any], out: str | Path, fmt: str) -> Path:
    """Write an area table as csv, xlsx or json.

    The xlsx workbook has a pivot, a reconciliation and a provenance sheet.
    """
    out = Path(out)
    rows = pd.DataFrame(result["rows"])
    if fmt == "csv":
        rows.rename(
            columns={
                "unit": "统计单元",
                "class": "地类",
                "area": f"面积({result['area_unit']})",
                "area_unit": "单位",
            }
        ).to_csv(out, index=False, encoding="utf-8-sig")
    elif fmt == "json":
        out.write_text(
            json.dumps(
                {k: v for k, v in result.items() if not k.startswith("_")},
                ensure_ascii=False,
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    elif fmt == "xlsx":
        pivot = rows.pivot_table(
            index="unit", columns="class", values="area", aggfunc="sum", fill_value=0.0
        )
        pivot["合计"] = pivot.sum(axis=1)
        recon = pd.DataFrame(result["totals"]["units"]).rename(
            columns={
                "unit": "统计单元",
                "unit_area": "单元面积",
                "pieces_total": "分类合计",
                "residual": "差值",
            }
        )
        prov = pd.DataFrame(
            [
                ("图层", f"{result['layer']} 快照 {result['snapshot']['label']}"),
                ("图层内容哈希", result["snapshot"]["content_hash"]),
                ("统计单元", f"{result['by']} 快照 {result['by_snapshot']['label']}"),
                ("统计单元内容哈希", result["by_snapshot"]["content_hash"]),
                ("分组", result["group"]),
                ("面积单位", result["area_unit"]),
                ("面积算法", result["area_method"]),
                ("溯源记录号", result["provenance_id"]),
                ("合成数据", "是" if result.get("synthetic") else "否"),
            ],
            columns=["项目", "内容"],
        )
        with pd.ExcelWriter(out, engine="openpyxl") as xw:
            pivot.rename_axis(index="统计单元", columns="地类").to_excel(xw, sheet_name="面积统计")
            recon.to_excel(xw, sheet_name="平衡校核", index=False)
            prov.to_excel(xw, sheet_name="溯源", index=False)
    else:
        raise InputError(
            f"不支持的输出格式: {fmt}", key="bad_format", hint="可选: table, csv, xlsx, json"
        )
    return out


def overlay_layers(
    store: Store,
    left: str,
    right: str,
    *,
    how: str,
    settings: Settings,
    left_as_of: str | None = None,
    right_as_of: str | None = None,
    engine: str = "local",
    save_as: str | None = None,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Overlay two layers (both sides' attributes kept); optionally store the result as a layer."""
    from yizhangtu.accounting import overlay
    from yizhangtu.store import LayerSpec

    ls = store.resolve_snapshot(left, as_of=left_as_of)
    rs = store.resolve_snapshot(right, as_of=right_as_of)
    lg = store.read_layer(left, snapshot=ls.id)
    rg = store.read_layer(right, snapshot=rs.id)
    pieces = overlay(lg, rg, how, engine=engine)
    rec = record_result(
        store,
        "overlay",
        inputs=[snapshot_ref(ls), snapshot_ref(rs)],
        params={"how": how, "engine": engine, "left": left, "right": right},
        result={"pieces": len(pieces), "area_m2": round(float(pieces["area_m2"].sum()), 3)},
        actor=settings.actor,
    )
    meta = {
        "left": left,
        "right": right,
        "how": how,
        "pieces": len(pieces),
        "area_m2": float(pieces["area_m2"].sum()),
        "provenance_id": rec.id,
    }
    if save_as:
        info = store.layer(left)
        snap = store.write_snapshot(
            LayerSpec(
                name=save_as,
                kind="other",
                title=f"{left} × {right} ({how})",
                description=f"叠加分析结果, 溯源记录 {rec.id}",
                synthetic=info.synthetic or store.layer(right).synthetic,
            ),
            [pieces],
            label=f"{ls.label}x{rs.label}",
            actor=settings.actor,
        )
        meta["saved_as"] = {"layer": save_as, "snapshot": snap.id}
    return pieces, meta
