"""What every HTTP request goes through, whatever its route: refusals before any handler (keys in URLs, usage that
cannot be recorded) and the one mapping of every exception to the OpenAI error body (gateway/errors.py)."""

from __future__ import annotations

import logging

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

from .api.common import json_response
from .auth import refuse_key_in_url
from .errors import (
    BodyTooLarge,
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    UsageUnavailable,
    openai_error_body,
    unknown_url,
)

log = logging.getLogger("gateway")


def setup_http(app: Sanic) -> None:
    @app.on_request
    async def no_keys_in_urls(request: Request) -> None:
        refuse_key_in_url(request.path, request.query_string)

    @app.on_request
    async def refuse_when_usage_cannot_be_recorded(request: Request) -> None:
        # Fail closed (docs/reliability.md): work that cannot be billed is not started.
        usage = app.ctx.runtime.usage
        if request.method == "POST" and request.path.startswith("/v1/") and usage.full:
            usage.metrics.refused.inc()
            raise UsageUnavailable("the gateway cannot record usage right now (its disk is full); retry later")

    @app.exception(Exception)
    async def on_error(request: Request, exc: Exception) -> HTTPResponse:
        if isinstance(exc, SanicException) and not isinstance(exc, GatewayError):
            exc = from_sanic(exc, request)
        if not isinstance(exc, GatewayError):
            log.exception("unhandled error on %s %s", request.method, request.path)
        status, body, headers = openai_error_body(exc)
        return json_response(body, status=status, headers=headers)


def from_sanic(exc: SanicException, request: Request | None = None) -> GatewayError:
    """Sanic's own refusals (routing, size limits, malformed HTTP) in the OpenAI error shape."""
    status = exc.status_code
    if status == 404:
        return unknown_url(request.method, request.path) if request is not None else unknown_url("GET", "/")
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
