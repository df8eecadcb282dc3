"""Routers of the web API, one module per capability.

Each module ``yizhangtu.web.routers.<name>`` exposes ``router`` (a FastAPI ``APIRouter``)
and is included when present, so a capability adds its API by adding a module here and its
name to :data:`ROUTER_MODULES`. Handlers stay thin: check access with the dependencies of
:mod:`yizhangtu.web.deps` and call a service function on a store thread
(``await get_rt(request).run(service, scope, ...)``).

Every route must be classified for ``tests/test_web_access.py``, which fails otherwise: either
a scenario there, or an ``ACCESS`` dict in the router module mapping ``(method, path)`` to
``"public"`` (no login), ``"login"`` (any signed-in user) or ``"perm:<permission>"`` (e.g.
``"perm:read"``), whose authentication gates the test then checks generically. Routes that
read or write jurisdiction data deserve a scenario proving they stay inside it.
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI

__all__ = ["ROUTER_MODULES", "include_routers"]

#: Router modules, included in this order when importable (``accounting`` only while
#: ``yizhangtu.services.accounting`` exists).
ROUTER_MODULES = (
    "auth",
    "users",
    "catalogue",
    "records",
    "tables",
    "audit",
    "provenance",
    "jobs",
    "reports",
    "public",
    "accounting",
    "renewal",
    "reduction",
    "conformance",
    "indicators",
    "scoring",
    "tasks",
    "ui_portal",
    "ui_indicators",
    "ui_reduction",
    "ui_renewal",
    "ui_tasks",
    "ogc",
    "tiles",
)


def include_routers(app: FastAPI, names: tuple[str, ...] = ROUTER_MODULES) -> list[str]:
    """Include every present router module; returns the names included."""
    done = []
    for name in names:
        module = f"{__name__}.{name}"
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        app.include_router(mod.router)
        done.append(name)
    return done
