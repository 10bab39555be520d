"""The internal port (`--metrics-port`): Prometheus metrics and per-service readiness, for the cluster only.

They list every owner's access names and service ids, so they are not on the public API port (whose /readyz says
only ready or not). A tiny asyncio HTTP/1.1 server in the gateway process: two GET routes, bounded request heads,
one request per connection. In multi-worker mode the first worker serves it (the others would collide on the port);
every worker's readiness view is the same, since each probes the same instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from sanic import HTTPResponse, Request, Sanic

from .config import Settings
from .metrics import exposition

log = logging.getLogger("gateway.internal")

MAX_HEAD = 8 * 1024
HEAD_TIMEOUT_S = 5.0


def serves_internal_port() -> bool:
    """True in a single-process gateway and in the first Sanic worker."""
    name = os.environ.get("SANIC_WORKER_NAME", "")
    return not name or name.startswith("Sanic-Server-0-")


def readiness(runtime, draining: bool) -> tuple[bool, dict]:
    services = {s.access_name: runtime.status(s) for s in runtime.catalog.services}
    return not draining, services


class InternalServer:
    def __init__(self, get_runtime: Callable, is_draining: Callable[[], bool]):
        self._runtime = get_runtime
        self._draining = is_draining
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics and readiness on the internal port %s:%d", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, "application/json", b'{"error": "method not allowed"}'
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, exposition(self._runtime().usage.metrics.registry)
        if path == "/readyz":
            ready, services = readiness(self._runtime(), self._draining())
            return (200 if ready else 503), "application/json", orjson.dumps({"ready": ready, "services": services})
        return 404, "application/json", b'{"error": "not found: /metrics and /readyz only"}'

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, ctype, body = self._route(method, path)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except Exception:
            log.exception("internal port: request failed")
            status, ctype, body = 500, "text/plain", b"internal error\n"
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            500: "Error",
            503: "Service Unavailable",
        }[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()
            await writer.wait_closed()


def setup_internal(app: Sanic, settings: Settings) -> None:
    """The internal port beside the API (when --metrics-port is set), and the count of every answer's status."""

    @app.before_server_start
    async def start_internal(app: Sanic) -> None:
        app.ctx.internal = None
        if not settings.metrics_port or not serves_internal_port():
            return
        host = settings.metrics_host or "127.0.0.1"
        app.ctx.internal = InternalServer(lambda: app.ctx.runtime, lambda: app.ctx.draining)
        try:
            await app.ctx.internal.start(host, settings.metrics_port)
        except OSError as e:
            log.error(
                "cannot listen on the internal port %s:%d (%s): choose another with --metrics-port, or 0 to turn "
                "it off",
                host,
                settings.metrics_port,
                e.strerror,
            )
            raise

    @app.after_server_stop
    async def stop_internal(app: Sanic) -> None:
        if app.ctx.internal is not None:
            await app.ctx.internal.close()

    @app.on_response
    async def count_response(request: Request, response: HTTPResponse | None) -> None:
        runtime = app.ctx.runtime
        if runtime is not None and response is not None:
            runtime.usage.metrics.responses.labels(str(response.status)).inc()
