"""Starting the gateway: `modelsvc serve` (and `modelsvc dev`, which first starts the local stand-in engines)."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from modelsvc.catalog import load

from .app import create_app
from .config import Settings, load_overlay
from .metrics import prepare_workers
from .protocol import GatewayProtocol


def build(config: str, overlay_path: str | None, settings: Settings) -> Sanic:
    catalog = load(config)
    overlay = load_overlay(overlay_path, catalog) if overlay_path else None
    return create_app(catalog, settings, overlay, name="modelsvc_gateway")


def _forward_sighup(signum, frame) -> None:
    """In multi-worker mode the workers are child processes, each reloading on its own SIGHUP."""
    for child in multiprocessing.active_children():
        if child.pid is None:  # not started (active children always are)
            continue
        try:
            os.kill(child.pid, signal.SIGHUP)
        except ProcessLookupError:
            pass


def _room_for_connections(cap: int) -> None:
    """Raise the soft file-descriptor limit (often 1024) so the connection cap, not EMFILE, is what bounds
    connections (a process may raise its soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = cap + 1024 if cap else hard  # engines, usage files, the internal port
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class WorkersNeedRedis(Exception):
    pass


def serve(config: str, overlay_path: str | None, settings: Settings, *, host: str, port: int, workers: int) -> None:
    if workers > 1 and not settings.redis_url:
        # In-memory limits would be per worker (a 5/min limit letting 5 per worker through): refuse, don't pretend.
        raise WorkersNeedRedis(
            f"--workers {workers} needs --redis-url (or REDIS_URL): rate limits and stream slots must be shared by "
            "the workers; a redis-server on this host is enough. Or run --workers 1 and add replicas instead."
        )
    if workers > 1:
        prepare_workers()  # /metrics merges every worker's samples
    _room_for_connections(settings.max_connections)
    # Each Sanic worker process builds its own app (and its own gRPC channels) from the same factory.
    loader = AppLoader(factory=partial(build, config, overlay_path, settings))
    app = loader.load()
    app.prepare(
        host=host,
        port=port,
        workers=workers,
        single_process=workers == 1,
        motd=False,
        access_log=False,
        protocol=GatewayProtocol,
    )
    if workers == 1:
        Sanic.serve_single(primary=app)  # this process is the server: signals reach it directly
    else:
        signal.signal(signal.SIGHUP, _forward_sighup)
        Sanic.serve(primary=app, app_loader=loader)
