"""The OpenAI-compatible API under /v1: each handler parses the body, runs the flow (gateway/flow.py), writes the
answer."""

from __future__ import annotations

from urllib.parse import unquote

from sanic import Blueprint, HTTPResponse, Request

from .. import flow
from ..auth import authorize
from ..errors import InvalidRequest, NotFound, StoreUnavailable, UnsupportedParameter, unknown_url
from ..runtime import Runtime
from .common import json_body, json_response

bp = Blueprint("openai", url_prefix="/v1")
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _rt(request: Request) -> Runtime:
    return request.app.ctx.runtime


def _key(request: Request):
    # (keys in the URL are refused for every path by the app's request middleware, before any handler)
    return _rt(request).keyring.authenticate(request.headers.get("authorization"))


def _model_object(service) -> dict:
    return {"id": service.access_name, "object": "model", "created": 0, "owned_by": service.owner}


@bp.get("/models")
async def list_models(request: Request):
    key = _key(request)
    return json_response(
        {"object": "list", "data": [_model_object(s) for s in _rt(request).catalog.services_of(key.owner)]}
    )


@bp.get("/models/<model:path>")
async def get_model(request: Request, model: str):
    model = unquote(model)  # SDKs percent-encode the '/' of an access name
    key = _key(request)
    return json_response(_model_object(authorize(key, _rt(request).catalog.service(model), model)))


async def _serve(request: Request, endpoint: str) -> HTTPResponse | None:
    call = flow.begin(_rt(request), _key(request), json_body(request), endpoint)

    def respond():  # a stream's response, opened once its first piece arrived (errors before it are plain JSON)
        return request.respond(content_type="text/event-stream", headers={**_SSE_HEADERS, **call.headers()})

    body = await flow.run(call, respond)
    if body is None:
        return None  # streamed
    headers = call.headers()
    if call.endpoint in ("chat.completions", "completions", "responses"):
        headers["x-gateway-overhead-ms"] = f"{call.overhead_ms():.3f}"
    return json_response(body, headers=headers)


@bp.post("/chat/completions")
async def chat_completions(request: Request):
    return await _serve(request, "chat.completions")


@bp.post("/completions")
async def completions(request: Request):
    return await _serve(request, "completions")


@bp.post("/images/generations")
async def images(request: Request):
    return await _serve(request, "images.generations")


# -- the Responses API: created through the flow; stored ones read and deleted by their owner's keys ----------------
@bp.post("/responses")
async def responses(request: Request):
    return await _serve(request, "responses")


def _response_not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id[:100]}' not found.", param="response_id")


async def _stored(request: Request, response_id: str):
    key = _key(request)
    store = _rt(request).responses
    if store is None:
        raise _response_not_found(response_id)
    try:
        found = await store.get(key.owner, response_id)
    except Exception as e:
        raise StoreUnavailable(f"stored responses cannot be read right now ({type(e).__name__}); retry later") from None
    if found is None:
        raise _response_not_found(response_id)
    return found


@bp.get("/responses/<response_id>")
async def get_response(request: Request, response_id: str):
    if request.args.get("stream") in ("true", "1"):
        raise UnsupportedParameter("streaming a stored response again is not supported", param="stream")
    return json_response((await _stored(request, response_id)).response)


@bp.delete("/responses/<response_id>")
async def delete_response(request: Request, response_id: str):
    key = _key(request)
    store = _rt(request).responses
    try:
        deleted = store is not None and await store.delete(key.owner, response_id)
    except Exception as e:
        raise StoreUnavailable(f"stored responses cannot be deleted right now ({type(e).__name__})") from None
    if not deleted:
        raise _response_not_found(response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@bp.get("/responses/<response_id>/input_items")
async def input_items(request: Request, response_id: str):
    found = await _stored(request, response_id)
    try:
        limit = int(request.args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be an integer between 1 and 100", param="limit", code="invalid_value")
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'", param="order", code="invalid_value")
    items = found.input_items if order == "asc" else list(reversed(found.input_items))
    after = request.args.get("after")
    if after:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


@bp.post("/responses/<response_id>/cancel")
async def cancel_response(request: Request, response_id: str):
    await _stored(request, response_id)
    raise InvalidRequest(
        "Only responses created with background=true can be cancelled (this gateway runs none in the background)",
        param="response_id",
    )


@bp.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown(request: Request, path: str):
    raise unknown_url(request.method, request.path)
