"""OpenAI's usage API (`GET /v1/organization/usage/completions` and `/images`), scoped to the caller's owner: a key
sees the usage of its owner's services (every key of that owner), never another owner's."""

from __future__ import annotations

import logging

from sanic import Blueprint, Request

from ..errors import UsageUnavailable, unknown_url
from ..usage import owner_of, query
from .common import json_response
from .openai import _key

bp = Blueprint("usage", url_prefix="/v1/organization/usage")
log = logging.getLogger("gateway.usage")


async def usage_rows(request: Request, key, owner: str | None, since: int, until: int) -> list[tuple]:
    """The store's minute rows for a caller: throttled per key (a query reads the store; requests are cheap to
    send), 503 when the store cannot answer."""
    rt = request.app.ctx.runtime
    await rt.limiter.throttle(f"usage-api:{key.id}", rt.settings.usage_api_rpm, "usage queries")
    try:
        return await rt.usage.minute_rows(owner, since, until)
    except Exception as e:
        log.error("usage query failed: %s: %s", type(e).__name__, e)
        raise UsageUnavailable(
            "usage data is unavailable right now (the usage database cannot be reached); retry later"
        ) from None


@bp.get("/<kind>")
async def usage(request: Request, kind: str):
    """/completions (chat.completions and completions) or /images (images.generations)."""
    if kind not in query.KINDS:
        raise unknown_url("GET", request.path)
    key = _key(request)
    q = query.parse(kind, request.args)
    since, until, _ = query.window(q)
    rows = await usage_rows(request, key, key.owner, since, until)
    rows = [r for r in rows if owner_of(r[2]) == key.owner]  # the store scoped it already; belt and braces
    return json_response(query.page(q, rows), headers={"cache-control": "no-store"})
