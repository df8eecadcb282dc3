"""State shared by every process serving one workspace, on both backends.

Logout revocations, login failures and background jobs live in the workspace
(``yz_runtime_state``), not in one process's memory: two applications over the same
workspace stand for two worker processes, a fresh one for a restart, and a killed child
process for a server that died with a job running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from yizhangtu.errors import AuthenticationError, PayloadTooLargeError, RateLimitedError
from yizhangtu.services.auth import (
    LOGIN_FAILURE_KIND,
    REVOKED_KIND,
    LoginRateLimiter,
    SessionRevocations,
)
from yizhangtu.services.jobs import (
    INTERRUPTED_MESSAGE,
    JOB_KIND,
    Job,
    _proc_start,
    recover_jobs,
)
from yizhangtu.store import open_store
from yizhangtu.web.testing import PASSWORD, client, make_app, seed_workspace, temp_workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def ws(request, tmp_path_factory, chaoyang_path):
    """One small seeded workspace per backend; each test starts its own applications on it."""
    base = tmp_path_factory.mktemp(f"web_state_{request.param}")
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgis" else None
    with temp_workspace(request.param, base, dsn) as uri:
        seed_workspace(uri, streets_path=chaoyang_path, parcels=60)
        yield {"uri": uri, "base": base, "backend": request.param}


@contextmanager
def apps(ws, n: int = 2, **overrides) -> Iterator[list]:
    """``n`` applications over the same workspace, as separate worker processes would be."""
    made = []
    try:
        for _ in range(n):
            made.append(make_app(ws["uri"], ws["base"] / "reports", **overrides))
        yield made
    finally:
        for app in made:
            app.state.rt.close()


def _audit_count(uri: str) -> int:
    with open_store(uri) as st:
        v = st.audit_verify()
        assert v.ok, v.problems
        return v.count


def _bearer(app, token: str):
    c = client(app)
    c.headers["Authorization"] = f"Bearer {token}"
    return c


# -- logout -----------------------------------------------------------------------------


def test_logout_on_one_process_is_refused_by_every_process_and_after_restart(ws):
    audit_before = _audit_count(ws["uri"])
    with apps(ws) as (a, b):
        ca = client(a, "town1", bearer=True)
        token = ca.headers["Authorization"].split()[1]
        payload = a.state.rt.signer.verify(token)
        cb = _bearer(b, token)
        assert cb.get("/api/auth/me").json()["user"]["username"] == "town1"
        other = client(b, "town1", bearer=True)  # a second session of the same user

        assert ca.post("/api/auth/logout").status_code == 200
        r = ca.get("/api/auth/me")
        assert r.status_code == 401 and r.json()["error"] == "session_revoked"
        t0 = time.monotonic()
        while (r := cb.get("/api/auth/me")).status_code == 200 and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        assert r.status_code == 401 and r.json()["error"] == "session_revoked"
        assert r.json()["message"] == "会话已注销, 请重新登录"
        assert time.monotonic() - t0 < 2.5, "another process must refuse within a second or two"
        assert other.get("/api/auth/me").status_code == 200  # only that session ended
    # both closed, as after a restart with the same secret key: a fresh process refuses it
    with apps(ws, 1) as (c,):
        r = _bearer(c, token).get("/api/layers")
        assert r.status_code == 401 and r.json()["error"] == "session_revoked"
    with open_store(ws["uri"]) as st:
        e = st.get_state(REVOKED_KIND, payload.sid)
        assert e is not None and e.expires_at == payload.expires  # kept until it would expire
        assert st.purge_state(now=payload.expires + 1) >= 1
        assert st.get_state(REVOKED_KIND, payload.sid, now=0) is None
    assert _audit_count(ws["uri"]) == audit_before  # no audit record for sessions


def test_revocations_reload_only_what_changed_and_forget_expired(store):
    a, b = SessionRevocations(), SessionRevocations()
    now = int(time.time())
    assert b.refresh(store) == 0
    a.revoke("sid-live", now + 3600, store=store)
    a.revoke("sid-soon", now + 1, store=store)
    assert a.revoked("sid-live") and not b.revoked("sid-live")
    assert b.refresh(store) == 2 and b.revoked("sid-live") and b.revoked("sid-soon")
    time.sleep(1.1)
    a.revoke("sid-new", now + 3600, store=store)
    assert b.refresh(store) == 2 and b.revoked("sid-new")
    assert not b.revoked("sid-soon")  # expired: dropped on reload (the token is refused anyway)
    assert store.purge_state() == 1
    assert [e.key for e in store.list_state(REVOKED_KIND)] == ["sid-live", "sid-new"]
    assert store.audit_verify().count == 0


# -- login throttling ---------------------------------------------------------------------


def test_login_failures_add_up_across_processes_and_survive_a_restart(ws):
    audit_before = _audit_count(ws["uri"])
    bad = {"username": "dept", "password": "wrong-password"}
    good = {"username": "dept", "password": PASSWORD}
    with apps(ws, login_max_failures=3) as (a, b):
        ca, cb = client(a), client(b)
        for c in (ca, cb, ca):  # 2 + 1 failures: the limit, counted together
            r = c.post("/api/auth/login", json=bad)
            assert r.status_code == 401 and r.json()["message"] == "用户名或密码错误"
        for c in (ca, cb):
            r = c.post("/api/auth/login", json=good)
            assert r.status_code == 429 and r.json()["error"] == "login_rate_limited"
            assert 0 < int(r.headers["retry-after"]) <= a.state.rt.settings.login_window_seconds
            assert "过多" in r.json()["message"]
        assert cb.post("/api/auth/login", json={**good, "username": "district"}).status_code == 200
        assert len(a.state.rt.limiter) == 1 == len(b.state.rt.limiter)
    with apps(ws, 1, login_max_failures=3) as (c,):
        assert client(c).post("/api/auth/login", json=good).status_code == 429
        c.state.rt.limiter.succeeded("testclient", "dept")
        assert client(c).post("/api/auth/login", json=good).status_code == 200
    assert _audit_count(ws["uri"]) == audit_before


def test_login_failures_leave_the_window_and_are_purged(store):
    lim = LoginRateLimiter(2, window=0.6)
    other = LoginRateLimiter(2, window=0.6)
    lim.failed("10.0.0.1", "Town1", store=store)
    other.failed("10.0.0.1", "town1 ", store=store)  # the same key (case, spaces)
    with pytest.raises(RateLimitedError) as err:
        other.check("10.0.0.1", "town1", store=store)
    assert err.value.data["retry_after"] >= 1 and err.value.http_status == 429
    lim.check("10.0.0.2", "town1", store=store)  # another address is not locked out
    time.sleep(0.7)
    lim.check("10.0.0.1", "town1", store=store)
    assert len(store.list_state(LOGIN_FAILURE_KIND, now=0)) == 2
    assert store.purge_state() == 2 and store.list_state(LOGIN_FAILURE_KIND, now=0) == []
    assert store.audit_verify().count == 0


# -- jobs ---------------------------------------------------------------------------------


def test_job_on_one_process_is_seen_with_progress_and_result_from_another(ws):
    with apps(ws) as (a, b):
        ta = client(a, "town1")
        tb = client(b, "town1", bearer=True)
        gate = threading.Event()

        def slow(progress):
            progress(0.5, "已完成一半 (测试)")
            gate.wait(30)
            return {"ok": True, "rows": 3}

        job = a.state.rt.jobs.submit(
            "test", slow, title="测试任务", owner="town1", jurisdiction="110105001"
        )
        r = tb.get(f"/api/jobs/{job.id}")  # visible elsewhere as soon as submitted
        assert r.status_code == 200 and r.json()["status"] in ("queued", "running")
        t0 = time.monotonic()
        while (j := tb.get(f"/api/jobs/{job.id}").json())["progress"] < 0.5:
            assert time.monotonic() - t0 < 5, j
            time.sleep(0.05)
        assert j["status"] == "running" and j["message"] == "已完成一半 (测试)"
        assert j["status_label"] == "运行中"
        gate.set()
        assert a.state.rt.jobs.wait(job.id, 30)
        j = tb.get(f"/api/jobs/{job.id}").json()
        assert j["status"] == "succeeded" and j["result"] == {"ok": True, "rows": 3}
        assert j["progress"] == 1.0 and j["finished_at"] >= j["started_at"] >= j["created_at"]
        assert job.id in [x["id"] for x in tb.get("/api/jobs").json()["jobs"]]
        # the same visibility rules as on the process that ran it
        assert client(b, "town2", bearer=True).get(f"/api/jobs/{job.id}").status_code == 404
        assert client(b, "admin", bearer=True).get(f"/api/jobs/{job.id}").status_code == 200
        assert client(b).get(f"/api/jobs/{job.id}").status_code == 401
        assert job.id not in [
            x["id"] for x in client(b, "town2", bearer=True).get("/api/jobs").json()["jobs"]
        ]
        # a real report job through the API
        r = ta.post("/api/jobs/layers-report")
        assert r.status_code == 202
        jid = r.json()["job"]["id"]
        assert a.state.rt.jobs.wait(jid, 60)
        on_a, on_b = ta.get(f"/api/jobs/{jid}").json(), tb.get(f"/api/jobs/{jid}").json()
        assert on_b == on_a and on_b["status"] == "succeeded", on_b
        assert on_b["result"]["report"].endswith(".xlsx")
        assert tb.get(on_b["result"]["url"]).status_code == 200
    with apps(ws, 1) as (c,):  # and after both stopped
        j = client(c, "town1", bearer=True).get(f"/api/jobs/{job.id}").json()
        assert j["status"] == "succeeded" and j["result"] == {"ok": True, "rows": 3}


_CHILD = textwrap.dedent(
    """
    import sys, threading, time
    from yizhangtu.store import open_store
    from yizhangtu.services.jobs import JOB_KIND
    from yizhangtu.web.testing import make_app

    app = make_app(sys.argv[1], sys.argv[2])
    def forever(progress):
        progress(0.25, "正在处理 (测试)")
        threading.Event().wait()
    job = app.state.rt.jobs.submit(
        "test", forever, title="被中断的任务", owner="town1", jurisdiction="110105001"
    )
    with open_store(sys.argv[1]) as st:
        deadline = time.monotonic() + 30
        while (st.get_state(JOB_KIND, job.id).data["progress"] < 0.25
               and time.monotonic() < deadline):
            time.sleep(0.05)
    print(job.id, flush=True)
    threading.Event().wait()
    """
)


def test_job_of_a_killed_process_is_interrupted_when_a_new_runtime_starts(ws):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, ws["uri"], str(ws["base"] / "reports")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        job_id = proc.stdout.readline().strip()
        assert job_id, "the child process did not start its job"
        with open_store(ws["uri"]) as st:
            row = st.get_state(JOB_KIND, job_id).data
        assert row["status"] == "running" and row["pid"] == proc.pid
    finally:
        proc.kill()  # SIGKILL: nothing gets to clean up
        proc.wait(30)
    with apps(ws, 1) as (c,):
        j = client(c, "town1", bearer=True).get(f"/api/jobs/{job_id}").json()
    assert j["status"] == "interrupted" and j["status_label"] == "已中断"
    assert j["message"] == INTERRUPTED_MESSAGE and "停止" in j["message"]
    assert j["error"]["error"] == "job_interrupted" and j["progress"] == 0.25
    assert j["finished_at"] is not None


def test_recover_jobs_judges_pids_hosts_and_heartbeats(store):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = socket.gethostname()
    try:

        def row(key: str, **extra) -> None:
            job = Job(key, "test", "测试", "u1", "110105", status="running")
            store.put_state(JOB_KIND, key, json.loads(json.dumps(job.__dict__)) | extra, group="u1")

        row("alive", pid=sleeper.pid, host=host, pstart=_proc_start(sleeper.pid))
        row("reused", pid=sleeper.pid, host=host, pstart="1")  # the pid is another process now
        row("elsewhere", pid=1, host="another-host.invalid", pstart=None)
        row("mine", pid=os.getpid(), host=host, pstart=None)
        assert recover_jobs(store) == ["reused"]
        sleeper.kill()
        sleeper.wait(10)
        assert recover_jobs(store) == ["alive"]
        # another host's job is judged by its heartbeat only
        assert recover_jobs(store, now=time.time() + 3600) == ["elsewhere"]
    finally:
        sleeper.kill()
        sleeper.wait(10)
    states = {e.key: e.data["status"] for e in store.list_state(JOB_KIND)}
    assert states == {
        "alive": "interrupted",
        "reused": "interrupted",
        "elsewhere": "interrupted",
        "mine": "running",
    }
    finished = [e for e in store.list_state(JOB_KIND) if e.key != "mine"]
    assert all(e.expires_at is not None and e.expires_at > time.time() for e in finished)
    assert [e.key for e in store.list_state(JOB_KIND, without_expiry=True)] == ["mine"]


# -- the store's runtime state ------------------------------------------------------------


def test_runtime_state_entries_are_not_audited(store):
    before = store.audit_verify().count
    assert store.put_state("k", "a", {"n": 1}, group="g1", expires_at=time.time() + 60)
    first = store.get_state("k", "a")
    assert first.data == {"n": 1} and first.group == "g1"
    time.sleep(0.01)
    assert store.put_state("k", "a", {"n": 2}, group="g1")  # replace: keeps created_at
    second = store.get_state("k", "a")
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert second.expires_at is None
    # compare-and-set against the time of the last write
    assert not store.put_state("k", "a", {"n": 3}, expected_updated_at=first.updated_at)
    assert store.put_state("k", "a", {"n": 3}, group="g1", expected_updated_at=second.updated_at)
    assert not store.put_state("k", "missing", {}, expected_updated_at=second.updated_at)
    store.put_state("k", "b", {"n": 4}, group="g2")
    store.put_state("k", "c", {"n": 5}, group="g2", expires_at=time.time() - 1)  # expired
    assert [e.key for e in store.list_state("k")] == ["a", "b"]
    assert [e.key for e in store.list_state("k", newest_first=True, limit=1)] == ["b"]
    assert [e.key for e in store.list_state("k", group="g2")] == ["b"]
    assert store.get_state("k", "c") is None
    assert store.purge_state() == 1
    assert store.delete_state("k", group="g2") == 1 and store.delete_state("k", "a") == 1
    assert store.list_state("k") == []
    assert store.audit_verify().count == before == 0


def test_moved_errors_keep_their_statuses_and_old_import_paths():
    from yizhangtu.services import auth, uploads

    assert (
        auth.AuthenticationError is AuthenticationError and AuthenticationError.http_status == 401
    )
    assert auth.RateLimitedError is RateLimitedError and RateLimitedError.http_status == 429
    assert uploads.PayloadTooLargeError is PayloadTooLargeError
    assert (
        PayloadTooLargeError.http_status == 413 and uploads.UnsupportedTypeError.http_status == 415
    )
