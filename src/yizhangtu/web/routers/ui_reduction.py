"""UI support for reduction (减量): progress dashboard, and plot submission as check → confirm.

The check runs :func:`yizhangtu.services.reduction.submit_plots` with ``dry_run=True``, so
the user sees exactly the checks a real submission runs; the upload is kept under a one-time
token until confirmed (or expired).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from yizhangtu.errors import InputError, NotFoundError, QCError
from yizhangtu.services.auth import Scope
from yizhangtu.store import Store
from yizhangtu.web.deps import get_rt, need

__all__ = ["ACCESS", "router"]

#: Access class of each route, checked generically by tests/test_web_access.py; the
#: jurisdiction filtering itself is proved by tests/test_web_ui.py.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/ui/reduction/progress"): "perm:read",
    ("GET", "/api/ui/reduction/units"): "perm:read",
    ("GET", "/api/ui/reduction/plots"): "perm:read",
    ("POST", "/api/ui/reduction/check"): "perm:write",
    ("POST", "/api/ui/reduction/submit"): "perm:write",
}

router = APIRouter(prefix="/api/ui/reduction", tags=["界面: 减量"])

#: Checked uploads wait on disk (not in one process's memory), so any server process of the
#: workspace can confirm them; a confirmation claims its directory with an atomic rename.
_TTL_SECONDS = 3600
_MAX_PENDING = 200
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _related(scope: Scope, code: str | None) -> bool:
    """Inside the user's jurisdiction, or one of its parents (the district above a township)."""
    j = scope.jurisdiction or ""
    c = str(code or "")
    return bool(j) and bool(c) and (c.startswith(j) or j.startswith(c.rstrip("0") or c))


def _progress(st: Store, scope: Scope, year: int | None) -> dict[str, Any]:
    from yizhangtu.services import reduction as svc

    out: dict[str, Any] = {}
    for by in ("district", "township"):
        try:
            rep = svc.progress_json(svc.progress_report(st, by=by, year=year))
        except InputError as exc:
            if exc.key != "reduction_no_ledger":
                raise
            rep = {
                "level": by,
                "year": None,
                "rows": [],
                "reported": [],
                "synthetic_survey": False,
                "message": exc.message + (f" ({exc.hint})" if exc.hint else ""),
            }
        rep["rows"] = [r for r in rep["rows"] if _related(scope, r["unit_code"])]
        rep["reported"] = [r for r in rep["reported"] if _related(scope, r["unit_code"])]
        rep["warnings"] = [r["message"] for r in rep["rows"] if r.get("behind")]
        out[by] = rep
    return out


def _units(st: Store, scope: Scope) -> dict[str, Any]:
    from yizhangtu.services import reduction as svc

    cfg = svc.get_config(st)
    if not cfg.units_layer:
        return {"units": [], "layer": None}
    gdf = st.read_layer(cfg.units_layer)
    rows = []
    for _, r in gdf.iterrows():
        code = str(r[cfg.unit_field])
        if scope.covers(code):
            rows.append({"code": code, "name": str(r[cfg.name_field])})
    return {"units": rows, "layer": cfg.units_layer, "plots_layer": cfg.plots_layer}


def _plots(st: Store, scope: Scope, year: int | None) -> list[dict[str, Any]]:
    from yizhangtu.services import reduction as svc
    from yizhangtu.services.features import json_ready

    gdf = svc.list_plots(st, year=year)
    keep = [scope.covers(str(t)) for t in gdf["township"]] if len(gdf) else []
    df = (
        gdf[keep].drop(columns=[gdf.geometry.name])
        if len(gdf)
        else gdf.drop(columns=[gdf.geometry.name])
    )
    return list(json_ready(df.to_dict(orient="records")))


def _check(
    st: Store, scope: Scope, path: Path, township: str, year: int, settings: Any
) -> dict[str, Any]:
    from yizhangtu.services import reduction as svc
    from yizhangtu.services.features import json_ready

    try:
        res = svc.submit_plots(
            st, path, township=township, year=year, settings=settings, flag=True, dry_run=True
        )
    except QCError as exc:
        return {
            "ok": False,
            "refused": True,
            "township": township,
            "year": year,
            "message": exc.message,
            "hint": exc.hint,
            "issues": list(exc.data.get("issues", [])),
            "plots": [],
        }
    plots = [
        {
            "plot_id": str(r["plot_id"]),
            "plot_type": r.get("plot_type"),
            "planned_use": r.get("planned_use"),
            "area_m2": float(r["area_m2"]),
            "qc_status": r["qc_status"],
            "qc_reasons": r["qc_reasons"],
        }
        for _, r in (res.plots.iterrows() if res.plots is not None else iter(()))
    ]
    return json_ready(
        {
            "ok": res.flagged == 0,
            "refused": False,
            "township": township,
            "year": year,
            "submitted": res.submitted,
            "flagged": res.flagged,
            "area_m2": res.area_m2,
            "plots": plots,
            "issues": [],
        }
    )


def _spool(rt: Any) -> Path:
    d = Path(rt.settings.uploads_path()) / "reduction-checks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _expire(spool: Path) -> None:
    """Drop checked uploads older than the TTL, and the oldest beyond the cap."""
    now = time.time()
    entries = []
    for d in spool.iterdir():
        try:
            age = now - d.stat().st_mtime
        except FileNotFoundError:
            continue
        if age > _TTL_SECONDS:
            shutil.rmtree(d, ignore_errors=True)
        elif _TOKEN.match(d.name):
            entries.append((age, d))
    for _, d in sorted(entries, key=lambda e: e[0], reverse=True)[
        : max(0, len(entries) - _MAX_PENDING + 1)
    ]:
        shutil.rmtree(d, ignore_errors=True)


@router.get("/progress", summary="减量进度 (区、乡镇)")
async def progress(
    request: Request,
    year: int | None = Query(None, ge=2000, le=2100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """Reduction progress by district and township.

    本辖区 (及其上级区) 的减量目标、验收与净减量进度。
    """
    return await get_rt(request).run(_progress, scope, year)


@router.get("/units", summary="可填报的乡镇")
async def units(request: Request, scope: Scope = Depends(need("read"))) -> dict[str, Any]:
    """Units the user may submit plots for.

    本辖区内的核算单元 (乡镇/街道)。
    """
    return await get_rt(request).run(_units, scope)


@router.get("/plots", summary="本辖区减量地块 (属性)")
async def plots(
    request: Request,
    year: int | None = Query(None, ge=2000, le=2100),
    scope: Scope = Depends(need("read")),
) -> dict[str, Any]:
    """List the user's reduction plots (attributes).

    本辖区已提交的减量地块及其质检状态。
    """
    return {"plots": await get_rt(request).run(_plots, scope, year)}


@router.post("/check", summary="减量地块质检 (不入库)")
async def check(request: Request, scope: Scope = Depends(need("write"))) -> dict[str, Any]:
    """Check a plot file without storing it.

    上传地块文件 (multipart: file, township, year), 按正式提交的全部规则检查, 不写入;
    返回质检结果与确认令牌。
    """
    from yizhangtu.services.uploads import check_upload

    rt = get_rt(request)
    spool = _spool(rt)
    _expire(spool)
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
        raise InputError("缺少上传文件 (字段 file)", key="missing_file", field="file")
    township = str(form.get("township") or "").strip()
    try:
        year = int(str(form.get("year") or ""))
    except ValueError:
        raise InputError("年度应为整数, 如 2021", key="bad_year", field="year") from None
    scope.require_covers(township, "乡镇")
    token = secrets.token_urlsafe(18)
    tmp = spool / f".part-{token}"
    tmp.mkdir()
    try:
        name = Path(str(upload.filename).replace("\\", "/")).name or "plots"
        dest = tmp / name
        dest.write_bytes(await upload.read())
        await form.close()
        check_upload(dest, name, rt.upload_limits)
        settings = rt.settings.model_copy(update={"actor": str(scope.username)})
        result = await rt.run(_check, scope, dest, township, year, settings)
        if result.get("refused"):
            shutil.rmtree(tmp, ignore_errors=True)
            return result
        meta = {"file": name, "township": township, "year": year, "user": scope.username}
        (tmp / "check.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp.rename(spool / token)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result | {"token": token}


class Confirm(BaseModel):
    """Which checked upload to store."""

    token: str = Field(..., max_length=64)
    flag: bool = Field(False, description="带标记入库未通过减量检查的地块")


@router.post("/submit", summary="确认提交减量地块")
async def submit(
    body: Confirm, request: Request, scope: Scope = Depends(need("write"))
) -> dict[str, Any]:
    """Store a checked plot file.

    把质检过的文件作为新快照写入减量地块图层 (令牌一次有效)。
    """
    from yizhangtu.services import reduction as svc

    rt = get_rt(request)
    spool = _spool(rt)
    gone = NotFoundError(
        "确认令牌无效或已过期, 请重新上传检查", key="token_not_found", field="token"
    )
    if not _TOKEN.match(body.token):
        raise gone
    try:
        meta = json.loads((spool / body.token / "check.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        raise gone from None
    if meta.get("user") != scope.username:
        raise gone
    claimed = spool / f".claimed-{body.token}"
    try:
        (spool / body.token).rename(claimed)  # one confirmation wins, in any process
    except FileNotFoundError:
        raise gone from None
    try:
        if time.time() - claimed.stat().st_mtime > _TTL_SECONDS:
            raise gone
        scope.require_covers(meta["township"], "乡镇")
        settings = rt.settings.model_copy(update={"actor": str(scope.username)})
        res = await rt.run(
            lambda st: svc.submit_plots(
                st,
                claimed / meta["file"],
                township=meta["township"],
                year=int(meta["year"]),
                settings=settings,
                flag=body.flag,
            )
        )
    finally:
        shutil.rmtree(claimed, ignore_errors=True)
    from yizhangtu.services.features import json_ready

    return dict(json_ready(res.to_dict()))
