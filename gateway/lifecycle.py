"""The gateway's life: the runtime (usage log, instance pools, limits) started with the server, SIGTERM turning
readiness false and draining, Sanic's graceful stop, then the cut at the end of the grace and a clean close."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from sanic import Sanic

from modelsvc.catalog import Catalog

from . import logs
from .backends.base import MIN_TOKENS_PER_S
from .config import LocalOverlay, Settings
from .protocol import close_idle
from .runtime import BackendFactory, Runtime
from .usage import Metrics, UsageLog

log = logging.getLogger("gateway")

# grace_s for in-flight requests, then Runtime.cut stops the rest; this margin lets them answer and be metered
CUT_MARGIN_S = 3.0


def configure(app: Sanic, catalog: Catalog, settings: Settings) -> None:
    """Sanic's limits and timeouts, and the state the other steps share."""
    app.config.REQUEST_MAX_SIZE = catalog.gateway.max_body_bytes
    app.config.REQUEST_MAX_HEADER_SIZE = 16 * 1024
    app.config.REQUEST_TIMEOUT = settings.request_timeout_s  # the whole request (protocol.GatewayProtocol)
    app.config.RESPONSE_TIMEOUT = response_timeout(settings, catalog)
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.grace_s + CUT_MARGIN_S
    app.config.NOISY_EXCEPTIONS = False
    app.config.ACCESS_LOG = False
    app.ctx.draining = False
    app.ctx.settings = settings
    app.ctx.catalog_path = catalog.path
    app.ctx.runtime = None  # started with the server (setup_lifecycle)
    app.ctx.connections = ()  # the server's set of open connections, once the first one opened (protocol.py)


def response_timeout(settings: Settings, catalog: Catalog) -> float:
    """Sanic's response timeout, above the longest legitimate wait for a non-streamed answer: the backend's
    deadline + max_tokens at the slowest rate it waits for, on the first instance and on one retry."""
    longest = max((m.max_output_tokens for m in catalog.models.values()), default=0)
    return 2 * (settings.deadline_s + longest / MIN_TOKENS_PER_S) + 10


def setup_lifecycle(
    app: Sanic,
    catalog: Catalog,
    settings: Settings,
    overlay: LocalOverlay | None,
    backends: BackendFactory | None = None,
) -> None:
    @app.before_server_start
    async def start_runtime(app: Sanic) -> None:
        logs.setup()
        usage = UsageLog(
            settings.usage_log,
            Metrics(),
            store_url=settings.usage_store,
            spool_dir=settings.usage_spool,
            max_buffered=settings.usage_buffer_max,
        )
        await usage.start()
        rt = Runtime(catalog, settings, overlay, usage, backends=backends)
        await rt.start()
        app.ctx.runtime = rt

    @app.after_server_start
    async def freeze_startup_objects(app: Sanic) -> None:
        # What start-up built (modules, the catalog, compiled templates, clients) lives as long as the process: out
        # of the collector's way, so that a full collection scans only what requests create. A full scan of
        # everything paused every caller's request for ~50 ms (docs/reliability.md, resource bounds).
        gc.collect()
        gc.freeze()

    @app.after_server_start
    async def install_shutdown(app: Sanic) -> None:
        # Replaces Sanic's own SIGTERM/SIGINT handlers (installed just before this runs): readiness turns false
        # first and the gateway keeps serving for drain_s, so Kubernetes takes it out of the Service before it
        # stops accepting; then Sanic's graceful stop lets in-flight requests and streams finish within grace_s.
        if app.asgi:  # an ASGI server (or a test) owns the process's signals
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, lambda: begin_shutdown(app))
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    @app.before_server_stop
    async def drain(app: Sanic) -> None:
        app.ctx.draining = True
        loop = asyncio.get_running_loop()
        loop.call_later(settings.grace_s, app.ctx.runtime.cut)
        app.ctx.closer = asyncio.create_task(_close_idle_connections(app))

    @app.after_server_stop
    async def stop_runtime(app: Sanic) -> None:
        app.ctx.closer.cancel()
        await app.ctx.runtime.close()  # waits for pending usage totals
        await app.ctx.runtime.usage.close()  # deliver the spool (bounded), fsync the log
        log.info("gateway stopped")


async def _close_idle_connections(app: Sanic) -> None:
    """While stopping: idle keep-alive connections are closed as soon as they are idle."""
    while True:
        close_idle(app.ctx.connections)
        await asyncio.sleep(0.1)


def begin_shutdown(app: Sanic) -> None:
    if app.ctx.draining:
        return
    app.ctx.draining = True
    drain_s = app.ctx.settings.drain_s
    log.info("shutting down: not ready; draining for %.1fs, then finishing in-flight requests", drain_s)

    async def stop_later() -> None:
        await asyncio.sleep(drain_s)
        app.stop(terminate=False)

    app.ctx.stopping = asyncio.ensure_future(stop_later())  # held: a bare task may be garbage-collected
