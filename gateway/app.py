"""The gateway's app factory: `create_app(catalog, ...)` builds a Sanic app from an already-loaded catalog, one
`setup_*` step per concern, each beside its concern."""

from __future__ import annotations

import itertools
import os
from typing import Any

from sanic import Sanic

from modelsvc.catalog import Catalog

from . import console
from .api import health, openai
from .api import usage as usage_api
from .config import LocalOverlay, Settings
from .gitops import setup_gitops
from .hooks import setup_http
from .internal import setup_internal
from .lifecycle import configure, setup_lifecycle
from .reload import setup_reload
from .runtime import BackendFactory

_names = itertools.count()


def create_app(
    catalog: Catalog,
    settings: Settings | None = None,
    overlay: LocalOverlay | None = None,
    *,
    name: str | None = None,
    backends: BackendFactory | None = None,
    github_transport: Any = None,
) -> Sanic:
    """`backends`: how each model's instances are reached (default: Triton's gRPC client, or the OpenAI-compatible
    HTTP client for `backend: openai`); tests pass devtools.fake_backend's. `github_transport`: an httpx transport
    for the console's GitHub calls (tests: the fake GitHub, in process)."""
    settings = settings or Settings()
    app = Sanic(name or f"modelsvc_gateway_{os.getpid()}_{next(_names)}", configure_logging=False)
    configure(app, catalog, settings)
    for bp in (usage_api.bp, openai.bp, health.bp, console.bp):
        app.blueprint(bp)
    # Start in this order (Sanic stops in the reverse one): the runtime, the internal port, the catalog watcher.
    setup_lifecycle(app, catalog, settings, overlay, backends)
    setup_internal(app, settings)
    setup_reload(app)
    setup_gitops(app, github_transport)
    setup_http(app)
    return app
