"""``yizhangtu rights``: rights registry (权益/产权信息) and certificate backlog (办证难).

Commands: import, holders, ratios, record, grant, backlog, template. ID and phone numbers
are masked in every output; ``holders --unmask`` shows them only to an actor granted the
permission, with a reason, and logs each unmask in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer

from yizhangtu.cli._common import JSON_OPT, console, emit_json, open_workspace, settings_from, table
from yizhangtu.errors import InputError
from yizhangtu.rights.model import AgreementRecord, RecordKind, parse_choice
from yizhangtu.services import rights as svc

__all__ = ["app"]

app = typer.Typer(help="权益与产权信息: 权益人名册、意愿与签约比例、办证台账", no_args_is_help=True)

AT_OPT = typer.Option(None, "--at", help="统计日期 YYYY-MM-DD (默认今天)")
RIGHTS_PACK_OPT = typer.Option(
    None, "--rights-pack", help="计数规则包编号或路径 (默认 rights-counting)"
)
SET_OPT = typer.Option(None, "--set", help="设定计数规则参数 名称=值, 可多次")


def _date(value: str | None, name: str = "--at") -> dt.date:
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"日期格式应为 YYYY-MM-DD: {value}", key="bad_date", field=name) from None


def _pack(name: str | None, sets: list[str] | None) -> Any:
    from yizhangtu.services.renewal import parse_set_options

    return svc.resolve_rights_pack(name, parse_set_options(sets))


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, int | float) else "-"


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    roster: Path = typer.Argument(
        ..., help="权益人名册 Excel (权益人、权属份额、意愿与签约、土地流转、征收补偿、宗地)"
    ),
    parcels: Path = typer.Option(
        None, "--parcels", help="宗地矢量文件 (parcel_code、rights_type、registered_area_m2 …)"
    ),
    synthetic: bool = typer.Option(False, "--synthetic", help="标记为合成数据"),
    towns_layer: str = typer.Option(
        "dongguan_towns", "--towns-layer", help="镇街边界图层 (镇街代码)"
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """导入权益人名册 (证件号码与电话加密保存; 有任何问题则全部不写入)."""
    settings = settings_from(ctx)
    with open_workspace(ctx, create=True) as st:
        res = svc.import_roster_file(
            st,
            roster,
            settings=settings,
            parcels_path=parcels,
            synthetic=synthetic,
            towns_layer=towns_layer,
        )
    if json_out:
        emit_json(res.to_dict())
        return
    c = res.counts
    console.print(
        f"[green]已导入[/] 宗地 {c['parcels']}、权益人 {c['holders']}、份额 {c['shares']}、"
        f"意愿与签约 {c['records']}、流转 {c['transfers']}、补偿 {c['compensations']}"
        + (" (合成数据)" if res.synthetic else "")
    )


@app.command("holders")
def holders_cmd(
    ctx: typer.Context,
    unit: str = typer.Option(None, "--unit", help="只列出此改造单元内的权益人"),
    export: Path = typer.Option(None, "--export", help="导出为 Excel (脱敏)"),
    unmask: bool = typer.Option(
        False, "--unmask", help="显示证件号码和电话原值 (须授权, 逐人记审计)"
    ),
    reason: str = typer.Option(None, "--reason", help="查看原值的理由 (与 --unmask 同用)"),
    json_out: bool = JSON_OPT,
) -> None:
    """列出权益人 (证件号码、电话默认脱敏)."""
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        holders = svc.list_holders(st, unit_id=unit)
        if export is not None:
            svc.export_holders_xlsx(st, export, unit_id=unit)
        plain: dict[str, dict[str, Any]] = {}
        if unmask:
            plain = {
                r["holder_id"]: r
                for r in svc.unmask_holders(
                    st, [h.holder_id for h in holders], settings=settings, reason=reason or ""
                )
            }
    rows = []
    for h in holders:
        row = {
            "holder_id": h.holder_id,
            "name": h.name,
            "kind": h.kind.value,
            "status": h.status.value,
            "id_number": h.id_masked,
            "phone": h.phone_masked,
            "masked": h.holder_id not in plain,
            "synthetic": h.synthetic,
        }
        if h.holder_id in plain:
            row["id_number"] = plain[h.holder_id]["id_number"]
            row["phone"] = plain[h.holder_id]["phone"]
        rows.append(row)
    if json_out:
        emit_json({"holders": rows, "export": str(export) if export else None})
        return
    console.print(
        table(
            f"权益人 ({len(rows)} 名)"
            + (f" · 单元 {unit}" if unit else "")
            + ("" if unmask else " · 证件号码已脱敏"),
            ["编号", "姓名或名称", "类型", "特殊情形", "证件号码", "联系电话"],
            [
                [r["holder_id"], r["name"], r["kind"], r["status"], r["id_number"], r["phone"]]
                for r in rows
            ],
        )
    )
    if export is not None:
        console.print(f"[green]已导出[/] {export}")


@app.command("ratios")
def ratios_cmd(
    ctx: typer.Context,
    unit: str = typer.Option(None, "--unit", help="改造单元编号 (按其红线和为其所做的记录计算)"),
    polygon: Path = typer.Option(None, "--polygon", help="任意范围的矢量文件"),
    wkt: str = typer.Option(None, "--wkt", help="任意范围的 WKT (EPSG:4490, 或配合 --crs)"),
    crs: str = typer.Option("EPSG:4490", "--crs", help="--wkt 的坐标系"),
    records_unit: str = typer.Option(
        None, "--records-unit", help="范围计算时只计此单元的记录 (默认任一单元)"
    ),
    at: str = AT_OPT,
    rights_pack: str = RIGHTS_PACK_OPT,
    sets: list[str] = SET_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """计算意愿与签约比例 (按面积和人数), 列出未同意、未签约和特殊权益人."""
    import geopandas as gpd
    import shapely

    given = [x is not None for x in (unit, polygon, wkt)]
    if sum(given) != 1:
        raise InputError(
            "请给出 --unit、--polygon 或 --wkt 之一", key="scope_required", field="--unit"
        )
    when = _date(at)
    pack = _pack(rights_pack, sets)
    settings = settings_from(ctx)
    with open_workspace(ctx) as st:
        if unit is not None:
            r = svc.ratios_for_unit(st, unit, when, pack, actor=settings.actor)
        else:
            if polygon is not None:
                from yizhangtu.services.renewal import read_vector

                geoms = read_vector(polygon).geometry
            else:
                try:
                    geoms = gpd.GeoSeries([shapely.from_wkt(wkt)], crs=crs)
                except shapely.errors.GEOSException:
                    raise InputError("--wkt 不是有效的 WKT", key="bad_wkt", field="--wkt") from None
            r = svc.ratios_for_polygon(
                st, geoms, when, pack, unit_id=records_unit, actor=settings.actor
            )
    d = r.to_dict()
    if json_out:
        emit_json(d)
        return
    console.print(
        f"[bold]{r.scope_id}[/] {when}: {len(r.parcels)} 宗地、{r.heads_total} 名权益人、"
        f"权益土地 {r.area_total_m2:,.0f}㎡, 覆盖 {_pct(r.coverage)}"
        + (" (合成数据)" if r.synthetic else "")
    )
    for kind, label in (("consent", "改造意愿"), ("signing", "签约")):
        f = d[kind]
        if f:
            console.print(f"  {label}: 面积 {_pct(f['area_share'])}, 人数 {_pct(f['head_share'])}")
    console.print(
        table(
            "权益人",
            [
                "编号",
                "姓名或名称",
                "特殊情形",
                "证件号码",
                "宗地",
                "面积(㎡)",
                "已同意(㎡)",
                "已签约(㎡)",
                "同意",
                "签约",
            ],
            [
                [
                    h.holder_id,
                    h.name,
                    h.status,
                    h.id_masked,
                    "、".join(h.parcels),
                    f"{h.land_m2:,.1f}",
                    f"{h.consented_m2:,.1f}",
                    f"{h.signed_m2:,.1f}",
                    "是" if h.consented else "否",
                    "是" if h.signed else "否",
                ]
                for h in r.holders
            ],
        )
    )
    for f in r.findings:
        if f.severity != "info" or f.rule_id == "rights.missing_holders":
            console.print(f"  [{f.to_dict()['severity_label']}] {f.message} (依据 {f.clause})")


@app.command("record")
def record_cmd(
    ctx: typer.Context,
    record_id: str = typer.Option(..., "--id", help="记录编号"),
    holder: str = typer.Option(..., "--holder", help="权益人编号"),
    unit: str = typer.Option(..., "--unit", help="改造单元编号"),
    kind: str = typer.Option(..., "--kind", help="意愿 或 签约"),
    on: str = typer.Option(..., "--date", help="日期 YYYY-MM-DD"),
    parcel: str = typer.Option(
        None, "--parcel", help="只针对此宗地 (默认该权益人在单元内全部宗地)"
    ),
    evidence: str = typer.Option(None, "--evidence", help="凭证编号 (书面同意书、补偿协议编号)"),
    via: str = typer.Option(None, "--via", help="特殊权益人所经程序 (如 财产代管)"),
    json_out: bool = JSON_OPT,
) -> None:
    """新增一条意愿或签约记录 (校验: 权益人、宗地存在, 意愿不晚于签约)."""
    rec = AgreementRecord(
        record_id=record_id,
        holder_id=holder,
        unit_id=unit,
        kind=parse_choice(RecordKind, kind, "kind", record_id),
        on=_date(on, "--date"),
        parcel_code=parcel,
        evidence=evidence,
        via_procedure=via,
    )
    with open_workspace(ctx) as st:
        out = svc.add_record(st, rec, actor=settings_from(ctx).actor)
    if json_out:
        emit_json(out)
        return
    console.print(f"[green]已记录[/] {record_id}: {holder} 于 {on} {rec.kind.value} (单元 {unit})")


@app.command("grant")
def grant_cmd(
    ctx: typer.Context,
    actor: str = typer.Argument(..., help="被授权查看个人信息原值的用户"),
    reason: str = typer.Option(..., "--reason", help="授权理由"),
    json_out: bool = JSON_OPT,
) -> None:
    """授权某用户查看证件号码和电话原值 (记审计)."""
    with open_workspace(ctx) as st:
        out = svc.grant_unmask(st, actor, granted_by=settings_from(ctx).actor, reason=reason)
    if json_out:
        emit_json(out)
        return
    console.print(f"[green]已授权[/] {actor} 查看个人信息原值")


@app.command("backlog")
def backlog_cmd(
    ctx: typer.Context,
    import_file: Path = typer.Option(
        None, "--import", help="导入办证台账 Excel (工作表 项目、房屋)"
    ),
    district: str = typer.Option(None, "--district", help="只看此区"),
    export: Path = typer.Option(None, "--export", help="导出进度 Excel"),
    projects: bool = typer.Option(False, "--projects", help="列出每个项目"),
    json_out: bool = JSON_OPT,
) -> None:
    """历史遗留办证难项目: 各项目与各区的发证进度、受阻原因 (002 一(二)六)."""
    settings = settings_from(ctx)
    with open_workspace(ctx, create=import_file is not None) as st:
        imported = (
            svc.import_backlog_file(st, import_file, actor=settings.actor) if import_file else None
        )
        progress = svc.backlog_from_store(st, district=district)
    if export is not None:
        from yizhangtu.rights.backlog import backlog_to_workbook

        export.parent.mkdir(parents=True, exist_ok=True)
        backlog_to_workbook(progress).save(export)
    if json_out:
        emit_json(
            progress.to_dict() | {"imported": imported, "export": str(export) if export else None}
        )
        return
    t = progress.totals
    console.print(
        f"[bold]办证台账[/] {t['projects']} 个项目、{t['homes']:,} 套; "
        f"已发证 {t['issued']:,} ({_pct(t['issued_share'])}), "
        f"办理中 {t['in_progress']:,}, 受阻 {t['blocked']:,}"
        + (" · 合成数据" if progress.synthetic else "")
    )
    d = progress.districts
    console.print(
        table(
            "各区进度",
            ["区", "项目", "全部发证项目", "套数", "已发证", "发证率", "受阻"],
            [
                [
                    r.district,
                    r.projects,
                    r.projects_done,
                    r.homes,
                    r.issued,
                    _pct(r.issued_share),
                    r.blocked,
                ]
                for r in d.itertuples()
            ],
        )
    )
    console.print(
        table(
            "受阻原因",
            ["原因", "对应二十字工作法", "套数"],
            [[r.block_reason, r.principle, r.homes] for r in progress.reasons.itertuples()],
        )
    )
    if projects:
        console.print(
            table(
                "项目进度",
                ["编号", "名称", "街乡", "套数", "已发证", "发证率", "受阻"],
                [
                    [
                        r.project_id,
                        r.name,
                        r.street,
                        r.homes,
                        r.issued,
                        _pct(r.issued_share),
                        r.blocked,
                    ]
                    for r in progress.projects.itertuples()
                ],
            )
        )


@app.command("template")
def template_cmd(
    file: Path = typer.Argument(..., help="输出空白名册模板 (.xlsx)"),
    json_out: bool = JSON_OPT,
) -> None:
    """生成空白的权益人名册模板 (各工作表及中文表头)."""
    from yizhangtu.rights.excel import roster_template

    file.parent.mkdir(parents=True, exist_ok=True)
    roster_template().save(file)
    if json_out:
        emit_json({"path": str(file)})
        return
    console.print(f"[green]已生成[/] {file}")
