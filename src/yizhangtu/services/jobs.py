"""Background jobs (imports, reports) on a thread pool, with progress and a job id.

A request submits a job and returns at once; clients poll the job. Job rows (status,
progress, result) are kept in the workspace (``yz_runtime_state``), so every process serving
it answers for every job, and jobs of a process that died are marked interrupted. Jobs open
their own workspace connection. Results are stored the usual way (a snapshot, a report file), so a
job that fails leaves nothing half-written: imports are atomic in the store, and report files
are written under a temporary name and renamed when complete.

Report files live in the workspace's report directory, each with a ``<name>.meta.json``
sidecar naming its kind, title, creator, jurisdiction and publication.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd

from yizhangtu.errors import InputError, NotFoundError, PermissionDeniedError, YizhangtuError
from yizhangtu.services.auth import Scope
from yizhangtu.settings import Settings
from yizhangtu.store import LayerSpec, Store, open_store

__all__ = [
    "INTERRUPTED_MESSAGE",
    "JOB_KIND",
    "Job",
    "JobManager",
    "JobStateRunner",
    "area_table_job",
    "check_whole_layers",
    "diff_report_job",
    "import_job",
    "layers_report_job",
    "list_reports",
    "open_worker_store",
    "prepare_import",
    "recover_jobs",
    "report_path",
    "write_lock",
    "write_report_meta",
]

log = logging.getLogger("yizhangtu.jobs")
ProgressFn = Callable[[float, str], None]
_STATUS_ZH = {
    "queued": "排队中",
    "running": "运行中",
    "succeeded": "已完成",
    "failed": "失败",
    "interrupted": "已中断",
}
#: ``yz_runtime_state`` kind of job rows.
JOB_KIND = "job"
_ACTIVE = ("queued", "running")
INTERRUPTED_MESSAGE = "任务所在的服务进程已停止, 任务未完成, 请重新提交"
_STOPPED_MESSAGE = "服务已停止, 任务未开始执行, 请重新提交"
T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JobStateRunner(Protocol):
    """Runs ``fn(store, *args)`` on one workspace connection, in submission order.

    ``call`` waits for the result, ``submit`` returns a future. One thread keeps writes of a
    job in order; :class:`yizhangtu.web.runtime.StoreRunner` with one thread is one.
    """

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(store, *args)`` and return its result."""
        ...

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(store, *args)``."""
        ...


@dataclass
class Job:
    """One background job."""

    id: str
    kind: str
    title: str
    owner: str | None
    jurisdiction: str | None
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    created_at: str = field(default_factory=_stamp)
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["status_label"] = _STATUS_ZH.get(self.status, self.status)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Rebuild a job from a stored row (extra keys such as ``pid`` are dropped)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def done(self) -> bool:
        """Finished: succeeded, failed, or interrupted by the end of its process."""
        return self.status not in _ACTIVE


def _proc_start(pid: int) -> str | None:
    """Start time of a process (Linux ``/proc``), telling a reused pid from the original."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields_ = stat.rsplit(")", 1)[-1].split()
    return fields_[19] if len(fields_) > 19 and fields_[0] != "Z" else None


def _process_alive(pid: Any, start: Any) -> bool:
    """Whether the process ``pid`` (started at ``start``, if known) still runs on this host."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        pass
    if Path("/proc/self/stat").exists():
        now_start = _proc_start(int(pid))
        if now_start is None:  # gone meanwhile, or a zombie
            return False
        if start is not None and str(start) != now_start:
            return False  # the pid now belongs to another process
    return True


class JobManager:
    """Run jobs on a bounded thread pool, with their state in the workspace.

    Without a ``runner`` jobs live only in this process's memory (the latest ``history``).
    With one, every job is also a row of ``yz_runtime_state`` (kind ``'job'``, grouped by
    owner): written when submitted (before the 202 answer) and when it starts, at most every
    ``progress_interval`` seconds while it reports progress, on :meth:`heartbeat`, and when
    it ends (before :meth:`wait` returns). Any process serving the workspace can then show
    it; the row records this process's pid and host, so a later process marks jobs of a dead
    one ``interrupted`` (:func:`recover_jobs`). Finished rows expire after
    ``retention_seconds``. The threads that run jobs stay in this process.
    """

    def __init__(
        self,
        workers: int = 2,
        history: int = 500,
        *,
        runner: JobStateRunner | None = None,
        retention_seconds: float = 7 * 24 * 3600,
        progress_interval: float = 0.5,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="yz-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, Future[Any]] = {}
        self._saved: dict[str, float] = {}
        self.history = history
        self.runner = runner
        self.retention_seconds = retention_seconds
        self.progress_interval = progress_interval
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._pstart = _proc_start(self.pid)

    # -- persistence ------------------------------------------------------------------
    def _row(self, job: Job) -> dict[str, Any]:
        return dict(job.__dict__) | {"pid": self.pid, "host": self.host, "pstart": self._pstart}

    def _write(self, store: Store, job_id: str, row: dict[str, Any] | None = None) -> None:
        if row is None:  # the state when the write runs, not when it was queued
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None:
                    return
                row = self._row(job)
        done = row.get("status") not in _ACTIVE
        store.put_state(
            JOB_KIND,
            job_id,
            row,
            group=row.get("owner"),
            expires_at=time.time() + self.retention_seconds if done else None,
        )

    def _persist(self, job_id: str, *, final: dict[str, Any] | None = None) -> None:
        """Write a job's row: ``final`` (a snapshot) waits for the write, others are queued."""
        if self.runner is None:
            return
        if final is not None:
            self.runner.call(self._write, job_id, final)
            with self._lock:
                self._pending.pop(job_id, None)
                self._saved.pop(job_id, None)
            return
        with self._lock:
            fut = self._pending.get(job_id)
            if fut is not None and not fut.running() and not fut.done():
                return  # a queued write will read the latest state
            self._saved[job_id] = time.monotonic()
        fut = self.runner.submit(self._write, job_id)
        with self._lock:
            self._pending[job_id] = fut
        fut.add_done_callback(self._log_failed_write)

    @staticmethod
    def _log_failed_write(fut: Future[Any]) -> None:
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None:
            log.warning("job state not saved: %s", exc)

    def heartbeat(self) -> None:
        """Rewrite the rows of this process's unfinished jobs (their ``updated_at``)."""
        with self._lock:
            ids = [j.id for j in self._jobs.values() if not j.done]
        for job_id in ids:
            self._persist(job_id)

    def _load(self, job_id: str, store: Store | None) -> Job | None:
        def load(st: Store) -> Job | None:
            e = st.get_state(JOB_KIND, job_id)
            return Job.from_dict(e.data) if e is not None else None

        if store is not None:
            return load(store)
        if self.runner is not None:
            return self.runner.call(load)
        return None

    # -- running ----------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        fn: Callable[[ProgressFn], dict[str, Any]],
        *,
        title: str,
        owner: str | None,
        jurisdiction: str | None,
    ) -> Job:
        """Queue ``fn(progress)``; it returns the job's result dict."""
        job = Job(
            id=uuid.uuid4().hex, kind=kind, title=title, owner=owner, jurisdiction=jurisdiction
        )
        job.updated_at = job.created_at
        ev = threading.Event()
        with self._lock:
            self._jobs[job.id] = job
            self._events[job.id] = ev
            while len(self._jobs) > self.history:
                old = next(iter(self._jobs.values()))
                if not old.done:
                    break
                self._jobs.popitem(last=False)
                self._events.pop(old.id, None)
        if self.runner is not None:
            try:  # visible to every process before the caller hands out the id
                self.runner.call(self._write, job.id, self._row(job))
            except BaseException:
                with self._lock:
                    self._jobs.pop(job.id, None)
                    self._events.pop(job.id, None)
                raise
        self._pool.submit(self._run, job, fn, ev)
        return job

    def _run(
        self, job: Job, fn: Callable[[ProgressFn], dict[str, Any]], ev: threading.Event
    ) -> None:
        def progress(frac: float, message: str = "") -> None:
            with self._lock:
                job.progress = max(0.0, min(1.0, float(frac)))
                if message:
                    job.message = message
                job.updated_at = _stamp()
                due = time.monotonic() - self._saved.get(job.id, 0.0) >= self.progress_interval
            if due:
                self._persist(job.id)

        with self._lock:
            job.status = "running"
            job.started_at = job.updated_at = _stamp()
        self._persist(job.id)
        try:
            result = fn(progress)
            with self._lock:
                job.result = result
                job.progress = 1.0
                job.status = "succeeded"
                job.message = job.message or "完成"
        except YizhangtuError as exc:
            with self._lock:
                job.error = exc.to_dict()
                job.status = "failed"
                job.message = exc.message
        except Exception:  # a bug: log it, tell the user without internals
            log.error("job %s (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
            with self._lock:
                job.error = {"error": "internal", "message": "任务因内部错误失败, 已记录日志"}
                job.status = "failed"
                job.message = "任务因内部错误失败"
        finally:
            with self._lock:
                job.finished_at = job.updated_at = _stamp()
                final = self._row(job)
            try:
                self._persist(job.id, final=final)
            except Exception:
                log.error("job %s: final state not saved:\n%s", job.id, traceback.format_exc())
            ev.set()

    # -- reading ------------------------------------------------------------------------
    def _visible(self, job: Job, scope: Scope) -> bool:
        if not scope.authenticated:
            return False
        if job.owner == scope.username:
            return True
        return scope.can("audit") and (job.jurisdiction is None or scope.covers(job.jurisdiction))

    def get(self, job_id: str, scope: Scope, *, store: Store | None = None) -> Job:
        """Return a job the scope may see, from this process or the workspace; 404 otherwise."""
        with self._lock:
            job = self._jobs.get(job_id)
            snap = Job(**job.__dict__) if job is not None else None
        if snap is None and scope.authenticated:
            snap = self._load(job_id, store)
        if snap is None or not self._visible(snap, scope):
            raise NotFoundError(f"任务不存在: {job_id}", key="job_not_found", field="job")
        return snap

    def list(self, scope: Scope, *, store: Store | None = None) -> list[Job]:
        """Jobs the scope may see (this process's and the workspace's), newest first."""
        if not scope.authenticated:
            return []
        with self._lock:
            mine = {j.id: Job(**j.__dict__) for j in self._jobs.values()}

        def load(st: Store) -> list[Job]:
            entries = st.list_state(
                JOB_KIND,
                group=None if scope.can("audit") else scope.username,
                newest_first=True,
                limit=self.history,
            )
            return [Job.from_dict(e.data) for e in entries]

        stored: list[Job] = []
        if store is not None:
            stored = load(store)
        elif self.runner is not None:
            stored = self.runner.call(load)
        jobs = {j.id: j for j in stored} | mine
        out = [j for j in jobs.values() if self._visible(j, scope)]
        return sorted(out, key=lambda j: (j.created_at, j.id), reverse=True)[: self.history]

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until a job of this process finishes (tests, CLI)."""
        ev = self._events.get(job_id)
        return ev.wait(timeout) if ev is not None else True

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; optionally wait for running ones.

        Jobs still queued are dropped and recorded as interrupted.
        """
        self._pool.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            dropped = [j for j in self._jobs.values() if j.status == "queued"]
            finals = []
            for j in dropped:
                j.status = "interrupted"
                j.message = _STOPPED_MESSAGE
                j.error = {"error": "job_interrupted", "message": _STOPPED_MESSAGE}
                j.finished_at = j.updated_at = _stamp()
                finals.append((j.id, self._row(j)))
        for job_id, row in finals:
            try:
                self._persist(job_id, final=row)
            except Exception as exc:
                log.warning("job %s: state not saved at shutdown: %s", job_id, exc)
            ev = self._events.get(job_id)
            if ev is not None:
                ev.set()


def recover_jobs(
    store: Store,
    *,
    stale_seconds: float = 120.0,
    retention_seconds: float = 7 * 24 * 3600,
    now: float | None = None,
) -> list[str]:
    """Mark ``interrupted`` the queued or running jobs whose process is gone; return their ids.

    A job's process is gone when it ran on this host and its pid no longer runs (or now
    belongs to another process), or when its row has not been written for
    ``stale_seconds`` (a live :class:`JobManager` rewrites it on every heartbeat). Jobs of
    this very process are left alone. A row rewritten meanwhile is left alone too.
    """
    t = now if now is not None else time.time()
    host, pid = socket.gethostname(), os.getpid()
    out = []
    for e in store.list_state(JOB_KIND, without_expiry=True, now=t):
        row = dict(e.data)
        if row.get("status") not in _ACTIVE:
            continue
        if row.get("host") == host and row.get("pid") == pid:
            continue
        gone = row.get("host") == host and not _process_alive(row.get("pid"), row.get("pstart"))
        if not gone and t - e.updated_at <= stale_seconds:
            continue
        stamp = _stamp()
        row.update(
            status="interrupted",
            message=INTERRUPTED_MESSAGE,
            error={"error": "job_interrupted", "message": INTERRUPTED_MESSAGE},
            finished_at=stamp,
            updated_at=stamp,
        )
        if store.put_state(
            JOB_KIND,
            e.key,
            row,
            group=e.group,
            expires_at=t + retention_seconds,
            expected_updated_at=e.updated_at,
        ):
            out.append(e.key)
    if out:
        log.warning("marked %d job(s) of stopped processes interrupted: %s", len(out), out)
    return out


# --------------------------------------------------------------------------------------
# Workspace connections of a long-running process
# --------------------------------------------------------------------------------------

_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def open_worker_store(uri: str) -> Store:
    """Open one more connection to a workspace that this process has already opened once.

    A GeoPackage store drops unregistered snapshot tables when it opens (debris of an
    interrupted import), but inside a server another thread may be writing such a table at
    that very moment. The server opens the workspace normally once at start-up; every later
    connection (store threads, jobs) skips that clean-up.
    """
    if uri.startswith(("postgresql://", "postgres://")):
        return open_store(uri, create=False)  # uncommitted tables are invisible to other sessions
    from yizhangtu.store.gpkg import GeoPackageStore

    class _SecondaryGeoPackageStore(GeoPackageStore):
        def _cleanup_debris(self) -> None:  # the first connection of the process did it
            return None

    return _SecondaryGeoPackageStore(uri, create=False)


def write_lock(uri: str) -> threading.Lock:
    """Return the lock serialising imports into one GeoPackage (GDAL writers would contend)."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(uri, threading.Lock())


# --------------------------------------------------------------------------------------
# Import jobs
# --------------------------------------------------------------------------------------


def prepare_import(
    store: Store,
    scope: Scope,
    layer: str,
    *,
    kind: str | None,
    title: str | None,
    description: str | None,
    jurisdiction_field: str | None,
    code_field: str | None,
    code_system: str | None,
    id_field: str | None,
    synthetic: bool | None,
) -> LayerSpec:
    """Return the spec of a new snapshot, after checking who may write it.

    An existing layer keeps its catalogue entry (publication included) unless a field is
    given. A layer without a jurisdiction field is city-wide: only users with ``publish``
    may write it. Replacing a layer with a jurisdiction field requires every current
    feature to lie in the user's jurisdiction (a snapshot replaces the whole layer).
    """
    scope.require("import")
    try:
        info = store.layer(layer)
    except NotFoundError:
        info = None
    base: dict[str, Any] = {}
    if info is not None:
        base = {
            k: getattr(info, k)
            for k in (
                "kind",
                "title",
                "description",
                "code_system",
                "code_field",
                "id_field",
                "synthetic",
                "published",
                "jurisdiction_field",
            )
        }
        base["field_mapping"] = dict(info.field_mapping)
    given = {
        "kind": kind,
        "title": title,
        "description": description,
        "jurisdiction_field": jurisdiction_field,
        "code_field": code_field,
        "code_system": code_system,
        "id_field": id_field,
        "synthetic": synthetic,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    spec = LayerSpec(name=layer, **base)
    city_wide = "没有辖区字段的图层属于全市数据, 只有市级管理员可以导入"
    if not spec.jurisdiction_field and not scope.can("publish"):
        raise PermissionDeniedError(
            city_wide,
            key="outside_jurisdiction",
            field="jurisdiction_field",
            hint="指定辖区字段 (如 ZLDWDM), 其取值须在你的辖区内",
        )
    if info is not None and info.current_snapshot is not None and not scope.can("publish"):
        if not info.jurisdiction_field or info.jurisdiction_field != spec.jurisdiction_field:
            # the catalogued layer is city-wide, or its jurisdiction field would change
            raise PermissionDeniedError(
                city_wide
                if not info.jurisdiction_field
                else "只有市级管理员可以更改图层的辖区字段",
                key="outside_jurisdiction",
                field="jurisdiction_field",
            )
    if info is not None and info.current_snapshot is not None and info.jurisdiction_field:
        snap = store.resolve_snapshot(layer)
        inside, _ = store.count_features(layer, jurisdictions=scope.record_prefixes())
        if inside != snap.feature_count:
            raise PermissionDeniedError(
                f"图层 {layer} 含有你辖区以外的要素, 新快照会替换整个图层",
                key="outside_jurisdiction",
                field="layer",
                hint="请市级管理员导入, 或按辖区分图层",
            )
    return spec


def _check_file_jurisdiction(path: Path, spec: LayerSpec, scope: Scope, options: Any) -> None:
    from yizhangtu.io import read_source

    gdf, _ = read_source(
        path,
        sublayer=getattr(options, "sublayer", None),
        encoding=getattr(options, "encoding", None),
        crs=getattr(options, "crs", None),
        x_field=getattr(options, "x_field", None),
        y_field=getattr(options, "y_field", None),
        wkt_field=getattr(options, "wkt_field", None),
    )
    fieldname = spec.jurisdiction_field
    mapping = getattr(options, "field_mapping", {}) or {}
    if mapping:
        gdf = gdf.rename(columns=mapping)
    if fieldname not in gdf.columns:
        raise InputError(
            f"文件中没有辖区字段 {fieldname}",
            key="missing_jurisdiction_field",
            file=path.name,
            field=fieldname,
        )
    values = gdf[fieldname].astype(object)
    outside = [str(v) for v in values if v is None or pd.isna(v) or not scope.covers(str(v))]
    if outside:
        raise PermissionDeniedError(
            f"文件中有 {len(outside)} 个要素的 {fieldname} 不在你的辖区 {scope.jurisdiction} 内 "
            f"(如 {outside[0]}), 未导入任何要素",
            key="outside_jurisdiction",
            file=path.name,
            field=fieldname,
        )


def import_job(
    uri: str,
    settings: Settings,
    scope: Scope,
    path: Path,
    spec: LayerSpec,
    *,
    label: str,
    options: Any,
    cleanup: Path | None,
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job importing an upload through :func:`yizhangtu.services.layers.import_file`."""
    from yizhangtu.services.layers import import_file

    def run(progress: ProgressFn) -> dict[str, Any]:
        try:
            progress(0.02, "检查文件")
            if spec.jurisdiction_field:
                _check_file_jurisdiction(path, spec, scope, options)
            lock = write_lock(uri) if not uri.startswith(("postgresql://", "postgres://")) else None
            if lock is not None and not lock.acquire(blocking=False):
                progress(0.03, "等待其他导入完成")
                lock.acquire()
            store = open_worker_store(uri)
            try:
                res = import_file(
                    store,
                    path,
                    spec,
                    label=label,
                    options=options,
                    settings=settings.model_copy(update={"actor": str(scope.username)}),
                    progress=lambda n, total: progress(
                        0.05 + 0.9 * n / max(total, 1), f"已写入 {n}/{total} 个要素"
                    ),
                )
            finally:
                store.close()
                if lock is not None:
                    lock.release()
            from yizhangtu.services.features import json_ready

            return json_ready(res.to_dict())
        finally:
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)

    return run


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def write_report_meta(
    path: Path,
    *,
    kind: str,
    title: str,
    scope: Scope,
    synthetic: bool,
    published: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a report's sidecar (before the report itself appears)."""
    meta = {
        "kind": kind,
        "title": title,
        "created_by": scope.username,
        "created_at": _now(),
        "jurisdiction": scope.jurisdiction,
        "published": published,
        "synthetic": synthetic,
    } | dict(extra or {})
    path.with_name(path.name + ".meta.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8"
    )


def _report_name(kind: str, ext: str) -> str:
    return f"{kind}_{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}{ext}"


def _finish(tmp: Path, final: Path) -> dict[str, Any]:
    tmp.replace(final)
    return {
        "report": final.name,
        "url": f"/api/reports/{final.name}",
        "bytes": final.stat().st_size,
    }


def layers_report_job(
    uri: str, scope: Scope, reports_dir: Path
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job writing the layer catalogue (as the user sees it) to an xlsx report."""

    def run(progress: ProgressFn) -> dict[str, Any]:
        from yizhangtu.services.features import catalogue

        store = open_worker_store(uri)
        try:
            progress(0.1, "读取图层目录")
            cat = catalogue(store, scope)
        finally:
            store.close()
        layers = pd.DataFrame(
            [
                {
                    "图层": e["name"],
                    "名称": e["title"],
                    "类型": e["kind"],
                    "坐标系": e["crs"],
                    "要素数": e["feature_count"],
                    "当前快照": e["current_snapshot"],
                    "快照数": len(e["snapshots"]),
                    "已公开": e["published"],
                    "按辖区过滤": e["filtered_by_jurisdiction"],
                    "合成数据": e["synthetic"],
                }
                for e in cat["layers"]
            ]
        )
        snaps = pd.DataFrame(
            [
                {
                    "图层": e["name"],
                    "快照": s["label"],
                    "观测日期": s["obs_date"],
                    "要素数": s["feature_count"],
                    "内容哈希": s["content_hash"],
                    "创建时间": s["created_at"],
                }
                for e in cat["layers"]
                for s in e["snapshots"]
            ]
        )
        synthetic = any(e["synthetic"] for e in cat["layers"])
        title = "图层目录" + (" (含合成数据)" if synthetic else "")
        reports_dir.mkdir(parents=True, exist_ok=True)
        final = reports_dir / _report_name("layers", ".xlsx")
        tmp = final.with_name("." + final.name + ".tmp")
        progress(0.6, "写入报告")
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            pd.DataFrame(
                {
                    "项目": ["报告", "生成人", "辖区", "生成时间", "说明"],
                    "内容": [
                        title,
                        scope.username,
                        scope.jurisdiction or "全部",
                        _now(),
                        "合成数据 (SYNTHETIC) 图层仅供演示" if synthetic else "",
                    ],
                }
            ).to_excel(xw, sheet_name="说明", index=False)
            layers.to_excel(xw, sheet_name="图层", index=False)
            snaps.to_excel(xw, sheet_name="快照", index=False)
        write_report_meta(final, kind="layers", title=title, scope=scope, synthetic=synthetic)
        return _finish(tmp, final)

    return run


def diff_report_job(
    uri: str,
    scope: Scope,
    reports_dir: Path,
    layer: str,
    from_ref: str,
    to_ref: str,
    unit: str = "m2",
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job comparing two snapshots (as the user sees them) in an xlsx report."""

    def run(progress: ProgressFn) -> dict[str, Any]:
        from yizhangtu.services.features import diff_features, json_ready

        store = open_worker_store(uri)
        try:
            progress(0.1, "比较快照")
            summary, changes = diff_features(store, scope, layer, from_ref, to_ref, unit=unit)
            synthetic = store.layer(layer).synthetic
        finally:
            store.close()
        summary = json_ready(summary)
        reports_dir.mkdir(parents=True, exist_ok=True)
        final = reports_dir / _report_name(f"diff_{layer}", ".xlsx")
        tmp = final.with_name("." + final.name + ".tmp")
        progress(0.7, "写入报告")
        table = (
            pd.DataFrame(changes.drop(columns=[changes.geometry.name]))
            if len(changes)
            else pd.DataFrame()
        )
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            flat = {
                k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
                for k, v in summary.items()
            }
            pd.DataFrame({"项目": list(flat), "值": list(flat.values())}).to_excel(
                xw, sheet_name="汇总", index=False
            )
            table.to_excel(xw, sheet_name="变化图斑", index=False)
        title = f"{layer} 快照比较 {from_ref} → {to_ref}" + (" (合成数据)" if synthetic else "")
        write_report_meta(
            final,
            kind="diff",
            title=title,
            scope=scope,
            synthetic=synthetic,
            extra={"layer": layer},
        )
        out = _finish(tmp, final)
        out["summary"] = summary
        return out

    return run


def _meta(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name + ".meta.json")
    if side.is_file():
        try:
            return dict(json.loads(side.read_text(encoding="utf-8")))
        except (ValueError, OSError):
            return {}
    return {}


def _report_visible(meta: dict[str, Any], scope: Scope) -> bool:
    if meta.get("published"):
        return True
    if scope.public_only or not scope.can("reports"):
        return False
    if meta.get("created_by") and meta.get("created_by") == scope.username:
        return True
    jur = meta.get("jurisdiction")
    if jur:
        return scope.covers(jur)
    return scope.can("audit")  # reports without a jurisdiction are city-level


def list_reports(reports_dir: Path, scope: Scope) -> list[dict[str, Any]]:
    """Report files the scope may download, newest first."""
    if not reports_dir.is_dir():
        return []
    out = []
    for p in reports_dir.rglob("*"):
        if (
            not p.is_file()
            or p.name.endswith(".meta.json")
            or p.name.startswith(".")
            or any(part.startswith(".") for part in p.relative_to(reports_dir).parts)
        ):
            continue
        meta = _meta(p)
        if not _report_visible(meta, scope):
            continue
        st = p.stat()
        out.append(
            {
                "name": p.relative_to(reports_dir).as_posix(),
                "bytes": st.st_size,
                "modified": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds"),
                "title": meta.get("title") or p.name,
                "kind": meta.get("kind"),
                "jurisdiction": meta.get("jurisdiction"),
                "published": bool(meta.get("published")),
                "synthetic": bool(meta.get("synthetic")),
            }
        )
    return sorted(out, key=lambda r: r["modified"], reverse=True)


def report_path(reports_dir: Path, scope: Scope, name: str) -> Path:
    """Find the file of a visible report; 404 for anything else (paths leaving the folder too)."""
    missing = NotFoundError(f"报告不存在: {name}", key="report_not_found", field="name")
    base = reports_dir.resolve()
    try:
        p = (base / name).resolve()
    except (OSError, ValueError):
        raise missing from None
    if (
        base not in p.parents
        or not p.is_file()
        or p.name.endswith(".meta.json")
        or any(part.startswith(".") for part in p.relative_to(base).parts)
    ):
        raise missing
    if not _report_visible(_meta(p), scope):
        raise missing
    return p


# --------------------------------------------------------------------------------------
# Area tables (yizhangtu.services.accounting.area_table)
# --------------------------------------------------------------------------------------


def check_whole_layers(store: Store, scope: Scope, *layers: str) -> None:
    """403 unless the user may read every feature of each layer.

    Whole-layer computations (area tables) read layers without a jurisdiction filter, so a
    user bound to a jurisdiction may run them only on published or jurisdiction-free layers,
    or on layers lying entirely inside their jurisdiction.
    """
    from yizhangtu.services.features import visible_layer

    for name in layers:
        info = visible_layer(store, scope, name)
        prefixes = scope.layer_prefixes(info)
        if prefixes is None:
            continue
        snap = store.resolve_snapshot(name)
        inside, _ = store.count_features(name, jurisdictions=prefixes)
        if inside != snap.feature_count:
            raise PermissionDeniedError(
                f"图层 {name} 有要素在你的辖区以外, 不能做全图层统计",
                key="outside_jurisdiction",
                field="layer",
                hint="请市级管理员统计, 或使用已公开的图层",
            )


def area_table_job(
    uri: str, settings: Settings, scope: Scope, reports_dir: Path, params: dict[str, Any]
) -> Callable[[ProgressFn], dict[str, Any]]:
    """Make a job running :func:`yizhangtu.services.accounting.area_table` into an xlsx report."""

    def run(progress: ProgressFn) -> dict[str, Any]:
        from yizhangtu.services.accounting import area_table, write_area_table
        from yizhangtu.services.features import json_ready

        store = open_worker_store(uri)
        try:
            progress(0.05, "叠加统计")
            check_whole_layers(store, scope, params["layer"], params["by"])
            result = area_table(
                store,
                params["layer"],
                settings=settings.model_copy(update={"actor": str(scope.username)}),
                **{k: v for k, v in params.items() if k != "layer"},
            )
        finally:
            store.close()
        reports_dir.mkdir(parents=True, exist_ok=True)
        final = reports_dir / _report_name(f"area_{params['layer']}", ".xlsx")
        tmp = final.with_name("." + final.name + ".tmp.xlsx")
        progress(0.8, "写入报告")
        write_area_table(result, tmp, "xlsx")
        title = f"{params['layer']} 按 {params['by']} 面积统计" + (
            " (合成数据)" if result.get("synthetic") else ""
        )
        write_report_meta(
            final,
            kind="area_table",
            title=title,
            scope=scope,
            synthetic=bool(result.get("synthetic")),
            extra={"provenance_id": result["provenance_id"]},
        )
        out = _finish(tmp, final)
        out["table"] = json_ready({k: v for k, v in result.items() if not k.startswith("_")})
        return out

    return run
