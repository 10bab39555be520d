"""The OpenAI-compatible API under /v1: each handler parses the body, runs the flow (gateway/flow.py), writes the
answer."""

from __future__ import annotations

from urllib.parse import unquote

from sanic import Blueprint, HTTPResponse, Request

from .. import flow
from ..auth import authorize
from ..errors import NotFound
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
    if call.endpoint != "images.generations":
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


@bp.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown(request: Request, path: str):
    raise NotFound(f"unknown endpoint {request.method} /v1/{path}")
