"""Test support: a seeded workspace, a live server and a load client (tests, benchmarks, browser).

:func:`seed_workspace` builds a small workspace from the real Chaoyang streets (published)
and a synthetic survey (合成数据, unpublished, jurisdiction field ``ZLDWDM``) with two
snapshots, two ledger tables and one user per role. :class:`LiveServer` runs the app under
uvicorn on a free loopback port in a thread. :func:`run_load` is a bounded asyncio load
generator (count- and time-bounded) that reports throughput and latency percentiles.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PASSWORD",
    "USERS",
    "LiveServer",
    "LoadResult",
    "free_port",
    "run_load",
    "seed_workspace",
]

#: Password of every seeded user.
PASSWORD = "test-password-123"
#: Seeded users: name → (role, jurisdiction).
USERS: dict[str, tuple[str, str]] = {
    "admin": ("city_admin", "11"),
    "district": ("district", "110105"),
    "town1": ("township", "110105001"),
    "town2": ("township", "110105002"),
    "dept": ("department", "110105"),
    "citizen": ("public", "11"),
}
_STREETS = Path(__file__).resolve().parents[3] / "tests" / "data" / "chaoyang_streets.geojson"


def seed_workspace(
    uri: str, *, streets_path: str | Path | None = None, parcels: int = 400, seed: int = 7
) -> dict[str, Any]:
    """Fill an empty workspace for web tests; returns what was built.

    Layers: ``streets`` (43 real Chaoyang streets, published, no jurisdiction field) and
    ``survey`` (synthetic parcels over four streets, ``jurisdiction_field='ZLDWDM'``,
    snapshots ``2020`` and ``2021``; ``NOTE`` is null on some rows). Tables: ``stats``
    (published) and ``ledger`` (unpublished, column ``code``). Records: one task per
    township. Users: :data:`USERS` with :data:`PASSWORD`.
    """
    import geopandas as gpd

    from yizhangtu.demo.synthetic import generate_survey
    from yizhangtu.services.users import add_user
    from yizhangtu.store import LayerSpec, open_store

    streets = gpd.read_file(streets_path or _STREETS)
    streets = streets.set_crs(4490, allow_override=True)
    survey = generate_survey(streets.iloc[:4], unit_field="code", seed=seed, n_parcels=parcels)
    notes = [None if i % 5 == 0 else f"核查{i % 3}" for i in range(len(survey))]
    survey["NOTE"] = pd.Series(notes, index=survey.index, dtype=object)
    survey_2021 = survey[
        np.arange(len(survey)) % 10 != 9
    ].copy()  # the 2021 change survey drops every tenth parcel
    survey_2021.loc[survey_2021.index[:10], "DLBM"] = "0701"
    with open_store(uri, create=True) as st:
        st.write_snapshot(
            LayerSpec(
                name="streets",
                kind="boundary",
                title="朝阳区街道乡镇",
                published=True,
                id_field="code",
            ),
            [streets],
            label="2023",
            actor="seed",
        )
        spec = LayerSpec(
            name="survey",
            kind="survey",
            title="朝阳区三调图斑 (合成数据)",
            description="合成数据 (SYNTHETIC)",
            code_field="DLBM",
            id_field="BSM",
            jurisdiction_field="ZLDWDM",
            synthetic=True,
        )
        st.write_snapshot(spec, [survey], label="2020", actor="seed")
        st.write_snapshot(spec, [survey_2021], label="2021", actor="seed")
        st.write_table(
            "stats",
            pd.DataFrame(
                {
                    "code": ["110105", "110106"],
                    "name": ["朝阳区", "丰台区"],
                    "pop": [3452460, 2019764],
                }
            ),
            actor="seed",
        )
        st.write_table(
            "ledger",
            pd.DataFrame({"code": ["110105001", "110105002", "110106001"], "plots": [3, 5, 7]}),
            actor="seed",
        )
        st.put_record(
            "web_table_meta",
            "stats",
            {"published": True, "title": "人口 (演示)"},
            expected_version=None,
            actor="seed",
        )
        st.put_record(
            "web_table_meta",
            "ledger",
            {"published": False, "jurisdiction_field": "code"},
            expected_version=None,
            actor="seed",
        )
        for town in ("110105001", "110105002"):
            st.put_record(
                "tasks",
                f"task-{town}",
                {"title": f"{town} 整改任务", "progress": 0},
                expected_version=None,
                actor="seed",
                jurisdiction=town,
            )
        from argon2 import PasswordHasher

        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # test accounts only
        for name, (role, jur) in USERS.items():
            add_user(st, name, PASSWORD, role=role, jurisdiction=jur, actor="seed", hasher=cheap)
    return {"survey": survey, "survey_2021": survey_2021, "streets": streets}


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """Run an ASGI app under uvicorn on 127.0.0.1 in a background thread (context manager)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="yz-live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@dataclass
class LoadResult:
    """Outcome of a load run."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bytes: int = 0

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile (ms)."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bytes": self.bytes,
        }


def run_load(
    base_url: str,
    paths: Sequence[str],
    *,
    total: int = 2000,
    concurrency: int = 8,
    max_seconds: float = 60.0,
    headers: dict[str, str] | None = None,
    ok_status: Sequence[int] = (200, 304),
) -> LoadResult:
    """Send ``total`` GET requests (cycling through ``paths``) with ``concurrency`` in flight.

    Stops early after ``max_seconds``. A response whose status is not in ``ok_status`` or a
    transport failure counts as an error.
    """
    import httpx

    async def main() -> LoadResult:
        res = LoadResult(0, 0, 0.0)
        counter = iter(range(total))
        stop_at = time.monotonic() + max_seconds
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers or {}, limits=limits, timeout=30.0
        ) as client:

            async def worker() -> None:
                for i in counter:
                    if time.monotonic() > stop_at:
                        return
                    path = paths[i % len(paths)]
                    t0 = time.perf_counter()
                    try:
                        r = await client.get(path)
                        status = r.status_code
                        res.bytes += len(r.content)
                    except httpx.HTTPError:
                        status = 0
                    res.latencies_ms.append((time.perf_counter() - t0) * 1000)
                    res.requests += 1
                    res.statuses[status] = res.statuses.get(status, 0) + 1
                    if status not in ok_status:
                        res.errors += 1

            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            res.seconds = time.perf_counter() - t
        return res

    return asyncio.run(main())


def temp_workspace(kind: str, base_dir: str | Path, pg_dsn: str | None = None) -> Any:
    """Yield a fresh workspace URI: a GeoPackage in ``base_dir`` or a new PostGIS database."""
    import contextlib
    import uuid

    @contextlib.contextmanager
    def cm() -> Any:
        if kind == "gpkg":
            yield str(Path(base_dir) / f"ws_{uuid.uuid4().hex[:8]}.gpkg")
            return
        import psycopg

        if not pg_dsn:
            raise RuntimeError("PostGIS workspace needs a DSN")
        name = "t_" + uuid.uuid4().hex[:10]
        base = pg_dsn.rsplit("/", 1)[0]
        with psycopg.connect(base + "/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            with psycopg.connect(base + "/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return cm()


def make_app(uri: str, reports_dir: str | Path, **overrides: Any) -> Any:
    """Build an application over ``uri`` with test settings (fixed secret, report folder)."""
    from yizhangtu.web import WebSettings, create_app

    settings = WebSettings.model_construct(
        **(
            WebSettings.model_construct().model_dump()
            | {
                "workspace": uri,
                "secret_key": "test-secret",
                "reports_dir": str(reports_dir),
                "actor": "test",
            }
            | overrides
        )
    )
    return create_app(settings)


def client(app: Any, username: str | None = None, *, bearer: bool = False) -> Any:
    """Make a test client (HTTPS, so Secure cookies flow), signed in as ``username`` if given.

    Cookie sessions get the CSRF header set on the client; ``bearer`` uses a token instead.
    """
    from fastapi.testclient import TestClient

    c = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    if username is None:
        return c
    if bearer:
        r = c.post("/api/auth/token", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c
    r = c.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    r.raise_for_status()
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


__all__ += ["client", "make_app", "temp_workspace"]
