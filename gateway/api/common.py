from __future__ import annotations

import orjson
from sanic import HTTPResponse, Request

from ..errors import InvalidRequest


def json_response(obj, status: int = 200, headers: dict | None = None) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(obj), status=status, headers=headers, content_type="application/json")


def json_body(request: Request):
    if not request.body:
        raise InvalidRequest("the request body is empty: send a JSON object", code="invalid_json")
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"the request body is not valid JSON: {e}", code="invalid_json") from None
