"""The gateway's app factory: `create_app(catalog, ...)` builds a Sanic app from an already-loaded catalog."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal

from sanic import Sanic
from sanic.exceptions import SanicException

from modelsvc.catalog import Catalog, CatalogError, load

from . import console, logs
from .api import health, openai
from .api import usage as usage_api
from .api.common import json_response
from .auth import refuse_key_in_url
from .backends.base import MIN_TOKENS_PER_S
from .config import LocalOverlay, Settings
from .errors import (
    BodyTooLarge,
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UsageUnavailable,
    openai_error_body,
)
from .internal import InternalServer, serves_internal_port
from .protocol import close_idle
from .runtime import Runtime
from .usage import Metrics, UsageLog

log = logging.getLogger("gateway")
_names = itertools.count()


def create_app(
    catalog: Catalog, settings: Settings | None = None, overlay: LocalOverlay | None = None, *, name: str | None = None
) -> Sanic:
    settings = settings or Settings()
    app = Sanic(name or f"modelsvc_gateway_{os.getpid()}_{next(_names)}", configure_logging=False)
    app.config.REQUEST_MAX_SIZE = catalog.gateway.max_body_bytes
    app.config.REQUEST_MAX_HEADER_SIZE = 16 * 1024
    app.config.REQUEST_TIMEOUT = settings.request_timeout_s  # the whole request (protocol.GatewayProtocol)
    app.config.RESPONSE_TIMEOUT = response_timeout(settings, catalog)
    app.config.KEEP_ALIVE_TIMEOUT = 75
    # grace_s for in-flight requests, then Runtime.cut stops the rest; this margin lets them answer and be metered
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.grace_s + CUT_MARGIN_S
    app.config.NOISY_EXCEPTIONS = False
    app.config.ACCESS_LOG = False
    app.ctx.draining = False
    app.ctx.settings = settings
    app.ctx.catalog_path = catalog.path

    app.blueprint(usage_api.bp)
    app.blueprint(openai.bp)
    app.blueprint(health.bp)
    app.blueprint(console.bp)

    @app.before_server_start
    async def start_runtime(app):
        logs.setup()
        usage = UsageLog(
            settings.usage_log,
            Metrics(),
            store_url=settings.usage_store,
            spool_dir=settings.usage_spool,
            max_buffered=settings.usage_buffer_max,
        )
        await usage.start()
        rt = Runtime(catalog, settings, overlay, usage)
        await rt.start()
        app.ctx.runtime = rt
        app.ctx.internal = None
        if settings.metrics_port and serves_internal_port():
            app.ctx.internal = InternalServer(lambda: app.ctx.runtime, lambda: app.ctx.draining)
            try:
                await app.ctx.internal.start(settings.metrics_host, settings.metrics_port)
            except OSError as e:
                log.error(
                    "cannot listen on the internal port %s:%d (%s): choose another with --metrics-port, or 0 "
                    "to turn it off",
                    settings.metrics_host,
                    settings.metrics_port,
                    e.strerror,
                )
                raise
        app.ctx.watcher = asyncio.create_task(_watch_catalog(app))
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload_catalog(app)))
        except (NotImplementedError, RuntimeError, ValueError) as e:
            log.warning("SIGHUP reload unavailable in this process (%s); file changes are still picked up", e)

    @app.after_server_start
    async def install_shutdown(app):
        # Replaces Sanic's own SIGTERM/SIGINT handlers (installed just before this runs): readiness turns false
        # first and the gateway keeps serving for drain_s, so Kubernetes takes it out of the Service before it
        # stops accepting; then Sanic's graceful stop lets in-flight requests and streams finish within grace_s.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, lambda: begin_shutdown(app))
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    @app.before_server_stop
    async def drain(app):
        app.ctx.draining = True
        loop = asyncio.get_running_loop()
        loop.call_later(settings.grace_s, app.ctx.runtime.cut)
        app.ctx.closer = asyncio.create_task(_close_idle_connections(app))

    @app.after_server_stop
    async def stop_runtime(app):
        app.ctx.watcher.cancel()
        if app.ctx.internal is not None:
            await app.ctx.internal.close()
        app.ctx.closer.cancel()
        await app.ctx.runtime.close()  # waits for pending usage totals
        await app.ctx.runtime.usage.close()  # deliver the spool (bounded), fsync the log
        log.info("gateway stopped")

    @app.on_request
    async def no_keys_in_urls(request):
        refuse_key_in_url(request.path, request.query_string)

    @app.on_request
    async def refuse_when_usage_cannot_be_recorded(request):
        # Fail closed (docs/reliability.md): work that cannot be billed is not started.
        if request.method == "POST" and request.path.startswith("/v1/") and app.ctx.runtime.usage.full:
            app.ctx.runtime.usage.metrics.refused.inc()
            raise UsageUnavailable("the gateway cannot record usage right now (its disk is full); retry later")

    @app.on_response
    async def count_response(request, response):
        runtime = getattr(app.ctx, "runtime", None)
        if runtime is not None and response is not None:
            runtime.usage.metrics.responses.labels(str(response.status)).inc()

    @app.exception(Exception)
    async def on_error(request, exc):
        if isinstance(exc, SanicException) and not isinstance(exc, GatewayError):
            exc = _from_sanic(exc)
        if not isinstance(exc, GatewayError):
            log.exception("unhandled error on %s %s", request.method, request.path)
        status, body, headers = openai_error_body(exc)
        return json_response(body, status=status, headers=headers)

    return app


CUT_MARGIN_S = 3.0


def response_timeout(settings: Settings, catalog: Catalog) -> float:
    """Sanic's response timeout, above the longest legitimate wait for a non-streamed answer: the backend's
    deadline + max_tokens at the slowest rate it waits for, on the first instance and on one retry."""
    longest = max((m.max_output_tokens for m in catalog.models.values()), default=0)
    return 2 * (settings.deadline_s + longest / MIN_TOKENS_PER_S) + 10


async def _close_idle_connections(app: Sanic) -> None:
    """While stopping: idle keep-alive connections are closed as soon as they are idle."""
    while True:
        close_idle(getattr(app.ctx, "connections", ()))
        await asyncio.sleep(0.1)


def begin_shutdown(app: Sanic) -> None:
    if app.ctx.draining:
        return
    app.ctx.draining = True
    drain_s = app.ctx.settings.drain_s
    log.info("shutting down: not ready; draining for %.1fs, then finishing in-flight requests", drain_s)

    async def stop_later():
        await asyncio.sleep(drain_s)
        app.stop(terminate=False)

    asyncio.ensure_future(stop_later())


def _from_sanic(exc: SanicException) -> GatewayError:
    """Sanic's own refusals (routing, size limits, malformed HTTP) in the OpenAI error shape."""
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return NotFound("unknown endpoint")
    if status == 405:
        return MethodNotAllowed("method not allowed on this endpoint")
    if status == 413:
        if "header" in str(exc).lower():  # Sanic reports both limits as 413; RFC 6585 gives headers their own code
            return HeadersTooLarge("request header fields too large")
        return BodyTooLarge("request body too large")
    if str(exc).startswith("Bad URL"):  # Sanic quotes the URL, query string and any key in it included
        return InvalidRequest("malformed URL")
    if 400 <= status < 500:
        err = InvalidRequest(str(exc) or "bad request")
        err.status = status
        return err
    return GatewayError("internal error")


async def reload_catalog(app: Sanic) -> bool:
    """Load and validate the file again; an invalid one is refused and the old catalog keeps serving."""
    path = app.ctx.catalog_path
    try:
        catalog = await asyncio.to_thread(load, path)
    except CatalogError as e:
        log.error("catalog reload refused, still serving the previous version:\n%s", e)
        return False
    except Exception:
        log.exception("catalog reload failed, still serving the previous version")
        return False
    await app.ctx.runtime.apply(catalog)
    app.config.RESPONSE_TIMEOUT = response_timeout(app.ctx.settings, catalog)
    log.info("catalog reloaded from %s", path)
    return True


async def _watch_catalog(app: Sanic) -> None:
    poll = app.ctx.settings.reload_poll_s
    if not poll:
        return
    path = app.ctx.catalog_path

    def stamp():
        try:
            st = os.stat(path)
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    last = stamp()
    while True:
        await asyncio.sleep(poll)
        now = stamp()
        if now is not None and now != last:
            last = now
            try:
                await reload_catalog(app)
            except Exception:
                log.exception("catalog reload failed; still watching %s", path)
