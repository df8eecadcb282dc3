"""UI support for urban renewal (城市更新): pipeline dashboard, unit status and stage advance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from yizhangtu.errors import NotFoundError
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import IsoDay, get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_ui.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/ui/renewal/summary"): "perm:read",
    ("GET", "/api/ui/renewal/units"): "perm:read",
    ("GET", "/api/ui/renewal/units/{unit_id}"): "perm:read",
    ("POST", "/api/ui/renewal/units/{unit_id}/advance"): "perm:write",
}

router = APIRouter(prefix="/api/ui/renewal", tags=["界面: 城市更新"])


def _towns(st: Store, scope: Scope) -> list[str]:
    from yizhangtu.services.renewal import UNITS_COLLECTION

    recs = st.query_records(UNITS_COLLECTION, jurisdiction_prefixes=scope.record_prefixes())
    return sorted({str(r.jurisdiction) for r in recs if r.jurisdiction})


def _day(at: str | None) -> dt.date:
    return dt.date.fromisoformat(at) if at else dt.date.today()


def _summary(st: Store, scope: Scope, at: str | None, days: int | None) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc
    from yizhangtu.services.features import json_ready

    towns = _towns(st, scope)
    day = _day(at)
    if not towns:
        return {"available": False, "at": day.isoformat(), "message": "本辖区没有更新单元"}
    pack = svc.resolve_pack()
    ev = svc.evaluate(
        st, day, pack, actor=str(scope.username), jurisdictions=towns, days=days, record=False
    )
    d = ev.to_dict()
    dl = svc.deadlines(st, day, pack, days=days, jurisdictions=towns)
    problems = [f for f in d["findings"] if f["severity"] in ("error", "warning")]
    return json_ready(
        {
            "available": True,
            "at": day.isoformat(),
            "synthetic": d["synthetic"],
            "pack": d["pack"],
            "counts": d["counts"],
            "pipeline": d["pipeline"],
            "by_town": ev.pipeline_by_town().to_dict(orient="records"),
            "deadlines": dl.sort_values("days_left").to_dict(orient="records") if len(dl) else [],
            "findings": problems[:300],
            "findings_total": len(problems),
        }
    )


def _units(st: Store, scope: Scope) -> list[dict[str, Any]]:
    from yizhangtu.services import renewal as svc

    towns = _towns(st, scope)
    return (
        [
            {
                "unit_id": s.unit.unit_id,
                "name": s.unit.name,
                "town": s.unit.town,
                "stage": s.unit.stage.value,
                "version": s.unit.version,
                "jurisdiction": s.jurisdiction,
                "synthetic": bool(getattr(s.unit, "synthetic", False)),
            }
            for s in svc.list_units(st, jurisdictions=towns)
        ]
        if towns
        else []
    )


def _visible_unit(st: Store, scope: Scope, unit_id: str) -> Any:
    from yizhangtu.services import renewal as svc

    try:
        stored = svc.get_unit(st, unit_id)
    except NotFoundError:
        stored = None
    if stored is None or not scope.covers(stored.jurisdiction):
        raise NotFoundError(f"本辖区没有更新单元 {unit_id}", key="unit_not_found", feature=unit_id)
    return stored


def _show(st: Store, scope: Scope, unit_id: str, at: str | None) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc

    _visible_unit(st, scope, unit_id)
    out = svc.show_unit(st, unit_id, _day(at), svc.resolve_pack())
    out.pop("geometry_wkt", None)
    return out


def _advance(st: Store, scope: Scope, unit_id: str, body: Advance) -> dict[str, Any]:
    from yizhangtu.services import renewal as svc

    stored = _visible_unit(st, scope, unit_id)
    scope.require_covers(stored.jurisdiction, "更新单元")
    res = svc.advance_unit(
        st,
        unit_id,
        body.to_stage,
        _day(body.at),
        svc.resolve_pack(),
        actor=str(scope.username),
        expected_version=body.version,
        note=body.note or None,
    )
    return res.to_dict()


@router.get("/summary", summary="更新看板数据")
async def summary(
    request: Request,
    at: Annotated[IsoDay, Query(description="评估日期, 默认今天")] = None,
    days: int | None = Query(None, ge=1, le=3650),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Renewal dashboard data.

    本辖区更新单元: 各阶段数量与面积、到期事项、规则发现 (不记录出处)。
    """
    return await get_rt(request).run(_summary, scope, at, days)


@router.get("/units", summary="本辖区更新单元")
async def units(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """Renewal units in the user's jurisdiction.

    单元编号、名称、镇街、阶段和版本号。
    """
    return {"units": await get_rt(request).run(_units, scope)}


@router.get("/units/{unit_id}", summary="单元状态与可推进阶段")
async def show(
    unit_id: str,
    request: Request,
    at: Annotated[IsoDay, Query()] = None,
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Show a unit's status and possible moves.

    单元详情、规则发现和每个可去阶段的判定 (推进前预览)。
    """
    return await get_rt(request).run(_show, scope, unit_id, at)


class Advance(BaseModel):
    """A stage move based on the version the user saw."""

    to_stage: str = Field(..., max_length=20)
    at: IsoDay = None
    note: str | None = Field(None, max_length=500)
    version: int = Field(..., ge=1, description="读取时的版本号 (乐观锁)")


@router.post("/units/{unit_id}/advance", summary="推进单元阶段")
async def advance(
    unit_id: str, body: Advance, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Advance a unit's stage.

    规则允许时推进; 规则不允许 422 (含发现); 他人已先修改 409 (含对方的修改)。
    """
    return await get_rt(request).run(_advance, scope, unit_id, body)
