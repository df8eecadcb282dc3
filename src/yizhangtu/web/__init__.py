"""The web adapter: REST API, OGC API Features, vector tiles, sessions (FastAPI).

:func:`create_app` builds an application for one workspace; ``yizhangtu serve`` runs it.
Routers are thin: each calls a framework-neutral service in :mod:`yizhangtu.services`.
"""

from yizhangtu.web.app import create_app
from yizhangtu.web.config import WebSettings

__all__ = ["WebSettings", "create_app"]
