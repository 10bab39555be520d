"""The OpenAI-compatible API under /v1."""

from __future__ import annotations

from urllib.parse import unquote

from sanic import Blueprint, Request

from .. import completions as C
from ..auth import authorize
from ..errors import NotFound
from .common import json_body, json_response

bp = Blueprint("openai", url_prefix="/v1")


def _rt(request: Request):
    return request.app.ctx.runtime


def _key(request: Request):
    # (keys in the URL are refused for every path by the app's request middleware, before any handler)
    return _rt(request).keyring.authenticate(request.headers.get("authorization"))


def _model_object(rt, service) -> dict:
    return {"id": service.access_name, "object": "model", "created": 0, "owned_by": service.owner}


@bp.get("/models")
async def list_models(request: Request):
    key = _key(request)
    rt = _rt(request)
    return json_response({"object": "list", "data": [_model_object(rt, s) for s in rt.catalog.services_of(key.owner)]})


@bp.get("/models/<model:path>")
async def get_model(request: Request, model: str):
    model = unquote(model)  # SDKs percent-encode the '/' of an access name
    key = _key(request)
    rt = _rt(request)
    return json_response(_model_object(rt, authorize(key, rt.catalog.service(model), model)))


async def _text(request: Request, endpoint: str):
    key = _key(request)
    body = json_body(request)
    call = C.begin(_rt(request), key, body, endpoint)
    req, stream, include_usage = C.prepare(call, body)
    await C.inline_images(call, req)
    async with C.admitted(call, stream):
        if not stream:
            result = await C.complete(call, req)
            return json_response(
                result,
                headers={
                    "x-gateway-overhead-ms": f"{call.overhead_ms():.3f}",
                    "x-request-id": call.request_id,
                    **call.admission.headers,
                },
            )
        s = await C.open_stream(call, req, include_usage)  # errors before the first byte are plain JSON errors
        await C.relay(
            s,
            lambda: request.respond(
                content_type="text/event-stream",
                headers={
                    "cache-control": "no-cache",
                    "x-accel-buffering": "no",
                    "x-request-id": call.request_id,
                    **call.admission.headers,
                },
            ),
        )


@bp.post("/chat/completions")
async def chat_completions(request: Request):
    return await _text(request, "chat.completions")


@bp.post("/completions")
async def completions(request: Request):
    return await _text(request, "completions")


@bp.post("/images/generations")
async def images(request: Request):
    key = _key(request)
    body = json_body(request)
    call = C.begin(_rt(request), key, body, "images.generations")
    async with C.admitted(call, False):
        return json_response(
            await C.generate_images(call, body), headers={"x-request-id": call.request_id, **call.admission.headers}
        )


@bp.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown(request: Request, path: str):
    raise NotFound(f"unknown endpoint {request.method} /v1/{path}")
