"""Schemathesis against the published OpenAPI: no operation answers 5xx (GeoPackage backend).

Every operation of ``/openapi.json`` (reads and writes) is fuzzed three times: anonymous, as
the township user ``town1`` and as the city administrator ``admin`` (bearer tokens, so writes
need no CSRF header), with schemathesis' positive (schema-valid) and negative
(schema-violating) generation. Random path parameters mostly name nothing, so operations with
path parameters get a second pass with them pinned to seeded resources (layer ``survey``,
table ``stats``, a real tile over Chaoyang …) while queries and bodies are still fuzzed: that
is what reaches the CQL2 parser, bbox and CRS handling, tiling, exports and record writes.

Generation is deterministic (``derandomize``) and bounded per operation, so CI runs are
repeatable and stay within a few minutes. The workspace is fresh for the module; fuzzed
writes land there and nowhere else. Each identity's run collects every 5xx (and every
exception escaping the app) with a curl line to reproduce it and the server-side traceback,
then fails once with the whole list.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from yizhangtu.web.testing import client, make_app, seed_workspace, temp_workspace

#: Identities fuzzed, in this order (the administrator's writes reach furthest, so go last).
IDENTITIES = ("anonymous", "town1", "admin")
#: Generated cases per operation, generation mode and pass (replayed for every identity).
MAX_EXAMPLES = 16
#: Path parameters pinned to seeded resources in the second pass (same name, same value on
#: every route; ``z/x/y`` is a zoom-12 tile over Chaoyang; ``featureId`` is looked up).
PINNED: dict[str, Any] = {
    "layer": "survey",
    "collectionId": "survey",
    "collection": "tasks",
    "key": "task-110105001",
    "task_id": "task-110105001",
    "name": "stats",
    "username": "town2",
    "z": 12,
    "x": 3373,
    "y": 1551,
}
#: Query parameters pinned alongside (the rest of the query is still generated).
PINNED_QUERY = {"/api/layers/{layer}/diff": {"from": "2020", "to": "2021"}}
#: The published spec has some 120 operations; far fewer means the spec or the loop broke.
MIN_OPERATIONS = 90
#: Share of operations that must answer something other than 401/403 to a signed-in identity
#: (the token worked and the handlers behind the permission checks were reached), and share
#: that must have answered 2xx at least once (the fuzz got past validation into real work);
#: anonymous callers only get the public operations, so theirs is a count.
MIN_AUTHORISED = {"town1": 0.75, "admin": 0.9}
MIN_SUCCESSFUL = {"anonymous": 8, "town1": 0.35, "admin": 0.4}
#: Seconds before a request counts as hung (it fails the run like a 5xx).
REQUEST_TIMEOUT = 60
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: failures are collected, not raised
    suppress_health_check=list(HealthCheck),
)


class _Tracebacks(logging.Handler):
    """Keep the traceback the app logs for an unexpected error (its 500 handler logs it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.last = "".join(traceback.format_exception(*record.exc_info))


class _OwnLifespan:
    """The app without its lifespan: the module fixture, not schemathesis, closes the runtime.

    (Schemathesis' pytest plugin ends ASGI lifespans after every test, which would close the
    module's store threads after the first identity.)
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _bearer(app: Any, username: str) -> dict[str, str]:
    c = client(app, username, bearer=True)
    return {"Authorization": c.headers["Authorization"]}


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, chaoyang_path) -> Iterator[dict[str, Any]]:
    """A fresh seeded GeoPackage workspace, its app and the app's own OpenAPI (over ASGI)."""
    base = tmp_path_factory.mktemp("web_schemathesis_gpkg")
    with temp_workspace("gpkg", base) as uri:
        seed_workspace(uri, streets_path=chaoyang_path)
        app = make_app(uri, base / "reports", upload_max_bytes=2_000_000)
        try:
            schema = schemathesis.openapi.from_asgi("/openapi.json", _OwnLifespan(app))
            # sign in before any fuzzing: fuzzed logins may lock the accounts out (429), and a
            # fuzzed logout gets a spare session so the run's own one survives
            sessions = {who: (_bearer(app, who), _bearer(app, who)) for who in IDENTITIES[1:]}
            items = client(app).get(
                "/ogc/collections/survey/items?limit=1", headers=sessions["admin"][0]
            )
            fid = str(items.json()["features"][0]["id"])
            pins = PINNED | {"featureId": fid}
            yield {"app": app, "schema": schema, "sessions": sessions, "pins": pins}
        finally:
            app.state.rt.close()


class _Run:
    """One identity's fuzz run: status tallies per operation and the distinct failures."""

    def __init__(self, env: dict[str, Any], who: str) -> None:
        self.env = env
        self.who = who
        self.tallies: dict[str, Counter[int]] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.tracebacks = _Tracebacks()

    def headers(self, operation: Any) -> dict[str, str]:
        if self.who == "anonymous":
            return {}
        main, spare = self.env["sessions"][self.who]
        return spare if operation.path == "/api/auth/logout" else main

    def fail(self, case: schemathesis.Case, headers: dict[str, str], got: str) -> None:
        """Keep the first example of each distinct failure (operation + server-side cause)."""
        tb = (self.tracebacks.last or "").strip().splitlines()
        label = case.operation.label
        self.failures.setdefault(
            (label, tb[-1] if tb else got),
            f"{self.who} {label}: {got}\n    {case.as_curl_command(headers=headers)}\n"
            + "\n".join(tb[-9:]),
        )

    def operation(self, operation: Any) -> None:
        """Fuzz one operation: random, then (if it has any) seeded path parameters."""
        tally = self.tallies.setdefault(operation.label, Counter())
        for case in _cases(self.env, operation):
            headers = self.headers(operation)
            self.tracebacks.last = None
            try:
                response = case.call(headers=dict(headers), timeout=REQUEST_TIMEOUT)
            except Exception as exc:  # the app raised past its handlers (a 500 was sent)
                tally[500] += 1
                self.fail(case, headers, repr(exc))
                continue
            tally[response.status_code] += 1
            try:
                case.validate_response(response, checks=[not_a_server_error], headers=headers)
            except Exception:
                self.fail(case, headers, f"{response.status_code} {response.text[:200]}")


def _cases(env: dict[str, Any], operation: Any) -> list[schemathesis.Case]:
    """The operation's generated cases, drawn once and replayed for every identity.

    Positive and negative cases with random path parameters, then the same with the seeded
    ones pinned. Derandomized generation would draw the same cases for each identity anyway;
    drawing once saves two thirds of the generation time.
    """
    cache = env.setdefault("cases", {})
    if operation.label in cache:
        return cache[operation.label]
    pins = env["pins"]
    names = [p.name for p in operation.path_parameters]
    passes: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [(None, None)]
    if any(n in pins for n in names):
        passes.append(({n: pins[n] for n in names if n in pins}, PINNED_QUERY.get(operation.path)))
    modes = [GenerationMode.POSITIVE]
    if list(operation.query) or list(operation.headers) or list(operation.body):
        modes.append(GenerationMode.NEGATIVE)  # path parameters alone give no negative cases
    cases: list[schemathesis.Case] = []
    for path_parameters, query in passes:
        for mode in modes:
            strategy = operation.as_strategy(
                generation_mode=mode, path_parameters=path_parameters, query=query
            )

            @SETTINGS
            @given(case=strategy)
            def draw(case: schemathesis.Case) -> None:
                cases.append(case)

            try:
                draw()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
    cache[operation.label] = cases
    return cases


@pytest.mark.parametrize("who", [f"gpkg-{i}" for i in IDENTITIES])
def test_no_operation_answers_5xx(fuzz_env, who):
    who = who.removeprefix("gpkg-")
    app = fuzz_env["app"]
    run = _Run(fuzz_env, who)
    web_log = logging.getLogger("yizhangtu.web")
    web_log.addHandler(run.tracebacks)
    propagate, web_log.propagate = web_log.propagate, False  # tracebacks go in the report
    try:
        for result in fuzz_env["schema"].get_all_operations():
            run.operation(result.ok())  # .ok() raises on an operation schemathesis cannot read
    finally:
        web_log.removeHandler(run.tracebacks)
        web_log.propagate = propagate

    if run.failures:
        pytest.fail(
            f"{who}: {len(run.failures)} distinct server errors\n\n"
            + "\n\n".join(run.failures.values()),
            pytrace=False,
        )

    # the run really covered the spec: every operation, each with several cases
    spec_ops = {
        f"{m.upper()} {p}": bool(op.get("parameters") or op.get("requestBody"))
        for p, ops in app.openapi()["paths"].items()
        for m, op in ops.items()
        if m in {"get", "post", "put", "patch", "delete"}
    }
    assert len(spec_ops) >= MIN_OPERATIONS
    assert set(run.tallies) == set(spec_ops)
    # an operation without parameters or body has exactly one possible request
    thin = {
        label: sum(t.values())
        for label, t in run.tallies.items()
        if sum(t.values()) < (MAX_EXAMPLES // 2 if spec_ops[label] else 1)
    }
    assert not thin, f"operations barely exercised: {thin}"
    ok = sorted(label for label, t in run.tallies.items() if any(200 <= s < 300 for s in t))
    floor = MIN_SUCCESSFUL[who]
    assert len(ok) >= (floor if floor >= 1 else floor * len(spec_ops)), (who, ok)
    if who in MIN_AUTHORISED:
        reached = {label for label, t in run.tallies.items() if set(t) - {401, 403}}
        assert len(reached) >= MIN_AUTHORISED[who] * len(spec_ops), (
            who,
            sorted(set(run.tallies) - reached),
        )
        # the session survived the whole run (the fuzzed logout used the spare session)
        me = client(app).get("/api/auth/me", headers=fuzz_env["sessions"][who][0]).json()
        assert me["authenticated"] and me["user"]["username"] == who
