"""Per-application state: store threads, jobs, tile cache, sessions and login throttling.

Store connections are not shared between threads (SQLite connections refuse it), so a small
fixed pool of threads each holds its own workspace connection and runs the functions the
handlers hand it. Request handlers are ``async`` and await these calls; nothing blocks the
event loop.

What must hold for every process serving the workspace lives in the workspace
(``yz_runtime_state``): logout revocations, login failures and job rows. One more store
thread (``yz-state``) writes job rows in order, and a housekeeping thread, about once a
second, loads revocations made elsewhere; it also rewrites this process's running jobs
(heartbeat), marks jobs of dead processes interrupted, and purges expired entries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from yizhangtu.services.auth import LoginRateLimiter, SessionRevocations, TokenSigner
from yizhangtu.services.jobs import JobManager, open_worker_store, recover_jobs
from yizhangtu.services.tiles import TileCache
from yizhangtu.services.uploads import UploadLimits
from yizhangtu.services.users import User, get_user
from yizhangtu.store import Store, open_store
from yizhangtu.web.config import WebSettings

__all__ = ["Runtime", "StoreRunner"]

log = logging.getLogger("yizhangtu.web")
T = TypeVar("T")


class StoreRunner:
    """Fixed threads with a store each; ``await run(fn, *args)`` calls ``fn(store, *args)``."""

    def __init__(self, uri: str, threads: int = 4, *, name: str = "yz-store") -> None:
        self.uri = uri
        self._q: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        store: Store | None = None
        while True:
            item = self._q.get()
            if item is None:
                break
            fn, args, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if store is None:
                    store = open_worker_store(self.uri)
                fut.set_result(fn(store, *args))
            except BaseException as exc:
                fut.set_exception(exc)
                if (
                    store is not None
                    and store.backend == "postgis"
                    and getattr(getattr(store, "conn", None), "closed", False)
                ):
                    store = None  # connection lost: reopen on the next call
        if store is not None:
            store.close()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn(store, *args)``; returns its future."""
        if self._closed:
            raise RuntimeError("store threads are closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._q.put((fn, args, fut))
        return fut

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on a store thread."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Blocking variant (tests, start-up, background threads)."""
        return self.submit(fn, *args).result(timeout)

    def close(self) -> None:
        """Stop the threads and close their stores."""
        self._closed = True
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join(timeout=10)


class Runtime:
    """Everything one application instance shares between requests.

    Attributes
    ----------
    state_poll_seconds : float
        How often revocations made by other processes are loaded (a revoked token is
        refused everywhere within about this time).
    heartbeat_seconds, stale_job_seconds : float
        How often running jobs' rows are rewritten, and after how long without a write a
        job of another host counts as abandoned.
    recover_seconds, purge_seconds : float
        How often jobs of dead processes are looked for, and expired entries purged.
    """

    state_poll_seconds = 1.0
    heartbeat_seconds = 15.0
    stale_job_seconds = 120.0
    recover_seconds = 60.0
    purge_seconds = 300.0

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        # the one full open of this process: creates the workspace if needed and clears
        # debris of interrupted imports; later connections (threads, jobs) skip that clean-up
        open_store(settings.workspace, create=True).close()
        self.store = StoreRunner(settings.workspace, settings.store_threads)
        # one thread: job rows are written in the order their changes happened
        self.state = StoreRunner(settings.workspace, 1, name="yz-state")
        self.jobs = JobManager(workers=settings.job_workers, runner=self.state)
        self.tiles = TileCache(settings.tile_cache_bytes)
        secret = settings.secret_key
        if not secret:
            secret = secrets.token_urlsafe(32)
            log.warning("YIZHANGTU_SECRET_KEY 未设置: 使用临时密钥, 重启后所有会话失效")
        self.signer = TokenSigner(secret, settings.session_ttl_seconds)
        self.revoked = SessionRevocations(runner=self.state)
        self.limiter = LoginRateLimiter(
            settings.login_max_failures,
            settings.login_window_seconds,
            settings.login_tracked_keys,
            runner=self.state,
        )
        self.upload_limits = UploadLimits(
            settings.upload_max_bytes,
            settings.upload_max_uncompressed_bytes,
            settings.upload_max_ratio,
            settings.upload_max_members,
        )
        self._users: dict[str, tuple[float, User | None]] = {}
        self._users_lock = threading.Lock()
        self.user_cache_seconds = 2.0
        self.state.call(self._start_state)
        self._stop = threading.Event()
        self._keeper = threading.Thread(
            target=self._housekeeping, name="yz-housekeeping", daemon=True
        )
        self._keeper.start()

    def _start_state(self, st: Store) -> None:
        st.purge_state()
        recover_jobs(st, stale_seconds=self.stale_job_seconds)
        self.revoked.refresh(st, force=True)

    def _housekeeping(self) -> None:
        """Load revocations, beat the jobs' hearts, recover and purge, until closed."""
        last = dict.fromkeys(("beat", "recover", "purge"), time.monotonic())
        failing = False
        while not self._stop.wait(self.state_poll_seconds):
            try:
                self.state.call(self.revoked.refresh)
                now = time.monotonic()
                if now - last["beat"] >= self.heartbeat_seconds:
                    last["beat"] = now
                    self.jobs.heartbeat()
                if now - last["recover"] >= self.recover_seconds:
                    last["recover"] = now
                    self.state.call(
                        lambda st: recover_jobs(st, stale_seconds=self.stale_job_seconds)
                    )
                if now - last["purge"] >= self.purge_seconds:
                    last["purge"] = now
                    self.state.call(lambda st: st.purge_state())
                if failing:
                    log.warning("工作空间状态同步已恢复")
                failing = False
            except Exception as exc:  # the workspace is unreachable: keep trying
                if self._stop.is_set():
                    break
                if not failing:
                    log.warning("工作空间状态同步失败 (注销、任务状态可能滞后): %s", exc)
                failing = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on a store thread."""
        return await self.store.run(fn, *args)

    async def user(self, username: str) -> User | None:
        """Return an account (cached for a moment), or None."""
        now = time.monotonic()
        with self._users_lock:
            hit = self._users.get(username)
            if hit is not None and now - hit[0] < self.user_cache_seconds:
                return hit[1]

        def load(st: Store) -> User | None:
            from yizhangtu.errors import NotFoundError

            try:
                return get_user(st, username)
            except NotFoundError:
                return None

        user = await self.run(load)
        with self._users_lock:
            self._users[username] = (now, user)
            if len(self._users) > 10_000:
                self._users.clear()
        return user

    def forget_user(self, username: str) -> None:
        """Drop a cached account after it changed."""
        with self._users_lock:
            self._users.pop(username, None)

    def close(self) -> None:
        """Drop queued jobs, let running ones finish, then stop the store threads."""
        self._stop.set()
        self._keeper.join(timeout=30)
        self.jobs.shutdown(wait=True)
        self.state.close()
        self.store.close()
