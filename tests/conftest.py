"""Shared fixtures: a store on each backend, real data paths, and the mandatory-suite guard."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from yizhangtu.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("YIZHANGTU_SHARED_DIR", REPO.parent / "shared"))

# Suites that CI must run: when YIZHANGTU_REQUIRE_SUITES names them, a skip is a failure.
_REQUIRED = {s for s in os.environ.get("YIZHANGTU_REQUIRE_SUITES", "").split(",") if s}
_skipped_required: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and _REQUIRED:
        marks = set(report.keywords)
        hit = _REQUIRED & marks
        if hit:
            _skipped_required.append(f"{report.nodeid} ({', '.join(sorted(hit))})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_required:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"ERROR: {len(_skipped_required)} required tests were skipped:", red=True)
            for line in _skipped_required[:20]:
                tr.write_line("  " + line, red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("YIZHANGTU_TEST_PG_DSN")
    if not dsn:
        pytest.skip("YIZHANGTU_TEST_PG_DSN not set (scripts/pg-cluster.sh start)")
    return dsn


def _pg_store(dsn: str) -> Iterator[Store]:
    from yizhangtu.store.postgis import PostGISStore

    schema = "t_" + uuid.uuid4().hex[:10]
    st = PostGISStore(dsn, schema=schema)
    try:
        yield st
    finally:
        try:
            st.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            st.close()


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty workspace on each backend."""
    if request.param == "gpkg":
        st = open_store(tmp_path / "ws.gpkg")
        try:
            yield st
        finally:
            st.close()
    else:
        dsn = request.getfixturevalue("pg_dsn")
        yield from _pg_store(dsn)


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def workspace_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A workspace URI on each backend (for CLI tests)."""
    if request.param == "gpkg":
        yield str(tmp_path / "ws.gpkg")
    else:
        dsn = request.getfixturevalue("pg_dsn")
        # a fresh database per test keeps CLI runs isolated
        import psycopg

        name = "t_" + uuid.uuid4().hex[:10]
        base = dsn.rsplit("/", 1)[0]
        with psycopg.connect(base + "/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            with psycopg.connect(base + "/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def chaoyang_path() -> Path:
    """The 43 real Chaoyang streets and townships (copied from shared/data, WGS84)."""
    return DATA / "chaoyang_streets.geojson"
