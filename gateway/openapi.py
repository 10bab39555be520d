"""The OpenAPI 3.1 document of the gateway's API, served at /openapi.json (and fuzzed by schemathesis in CI)."""

from __future__ import annotations

from functools import lru_cache

from .fields import ENDPOINTS

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    str(code): {"description": what, "content": {"application/json": {"schema": _ERROR}}}
    for code, what in [
        (400, "Invalid request"),
        (401, "Missing or invalid API key"),
        (404, "Unknown model (or one the key may not use)"),
        (405, "Method not allowed"),
        (413, "Request body too large"),
        (429, "Rate limit reached"),
        (431, "Request header fields too large"),
        (502, "The engine failed"),
        (503, "No instance available"),
        (504, "The engine did not answer in time"),
    ]
}
_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {k: {"type": "integer"} for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
}


def _post(summary: str, request: str, response: str, streams: bool) -> dict:
    ok = {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}}
    if streams:
        ok["text/event-stream"] = {
            "schema": {"type": "string", "description": "data: <chunk JSON> events, then data: [DONE]"}
        }
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
            },
            "responses": {"200": {"description": "OK", "content": ok}, **_ERRORS},
        }
    }


def _stored(summary: str, schema: str | None) -> dict:
    """An operation on one stored response (GET, DELETE, input items)."""
    body = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": body}}}, **_ERRORS},
    }


def _query(name: str, schema: dict, **kw: object) -> dict:
    return {"name": name, "in": "query", "schema": schema, **kw}


@lru_cache(maxsize=1)
def _usage(summary: str, kind: str) -> dict:
    """OpenAI's usage API (GET /v1/organization/usage/*): buckets of results, paged."""
    array = {"type": "array", "items": {"type": "string", "enum": ["model", "api_key_id"]}}
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [
                _query("start_time", {"type": "integer", "minimum": 0}, required=True),
                _query("end_time", {"type": "integer", "minimum": 0}),
                _query("bucket_width", {"type": "string", "enum": ["1m", "1h", "1d"]}),
                _query("group_by", array, style="form", explode=True),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1440}),
                _query("page", {"type": "string"}),
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["object", "data", "has_more", "next_page"],
                                "properties": {
                                    "object": {"const": "page"},
                                    "has_more": {"type": "boolean"},
                                    "next_page": {"type": ["string", "null"]},
                                    "data": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["object", "start_time", "end_time", "results"],
                                            "properties": {
                                                "object": {"const": "bucket"},
                                                "start_time": {"type": "integer"},
                                                "end_time": {"type": "integer"},
                                                "results": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "object": {"const": f"organization.usage.{kind}.result"},
                                                            "num_model_requests": {"type": "integer"},
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                **_ERRORS,
            },
        }
    }


_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "oneOf": [
                {"type": "string"},
                {"type": "null"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {"type": "string", "enum": ["text", "image_url"]},
                            "text": {"type": "string"},
                            "image_url": {"type": "object", "properties": {"url": {"type": "string"}}},
                        },
                    },
                },
            ]
        },
    },
}


def request_schema(endpoint: str) -> dict:
    """An endpoint's request body, from the field table (gateway/fields.py): every field it accepts, nothing else."""
    ep = ENDPOINTS[endpoint]
    return {
        "type": "object",
        "required": list(ep.required),
        "properties": {name: f.json_schema() for name, f in ep.fields.items()},
        "additionalProperties": False,
    }


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelsvc gateway",
            "version": "1",
            "description": "OpenAI-compatible API over self-hosted model services. Errors are OpenAI error "
            'bodies: {"error": {"message", "type", "param", "code"}}.',
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type", "param", "code"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Message": _MESSAGE,
                "ChatCompletionRequest": request_schema("chat.completions"),
                "CompletionRequest": request_schema("completions"),
                "ImageRequest": request_schema("images.generations"),
                "ResponseRequest": request_schema("responses"),
                "Response": {
                    "type": "object",
                    "required": ["id", "object", "created_at", "status", "model", "output"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "response"},
                        "created_at": {"type": "integer"},
                        "status": {"enum": ["completed", "incomplete", "in_progress", "failed"]},
                        "model": {"type": "string"},
                        "output": {"type": "array", "items": {"type": "object"}},
                        "usage": {"type": ["object", "null"]},
                    },
                },
                "ChatCompletion": {
                    "type": "object",
                    "required": ["id", "object", "created", "model", "choices", "usage"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "chat.completion"},
                        "created": {"type": "integer"},
                        "model": {"type": "string"},
                        "choices": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "finish_reason": {"enum": ["stop", "length", "tool_calls"]},
                                    "message": {
                                        "type": "object",
                                        "properties": {
                                            "role": {"const": "assistant"},
                                            "content": {"type": ["string", "null"]},
                                            "tool_calls": {"type": "array", "items": {"type": "object"}},
                                        },
                                    },
                                },
                            },
                        },
                        "usage": _USAGE,
                    },
                },
                "Completion": {
                    "type": "object",
                    "required": ["id", "object", "choices", "usage"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "text_completion"},
                        "usage": _USAGE,
                        "choices": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "text": {"type": "string"},
                                    "finish_reason": {"enum": ["stop", "length"]},
                                },
                            },
                        },
                    },
                },
                "Images": {
                    "type": "object",
                    "required": ["created", "data"],
                    "properties": {
                        "created": {"type": "integer"},
                        "data": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"b64_json": {"type": "string"}}},
                        },
                    },
                },
                "Model": {
                    "type": "object",
                    "required": ["id", "object", "owned_by"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                    },
                },
                "ModelList": {
                    "type": "object",
                    "required": ["object", "data"],
                    "properties": {
                        "object": {"const": "list"},
                        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
                    },
                },
            },
        },
        "paths": {
            "/v1/chat/completions": _post(
                "Chat completion (streams with stream: true)", "ChatCompletionRequest", "ChatCompletion", True
            ),
            "/v1/completions": _post("Text completion", "CompletionRequest", "Completion", True),
            "/v1/images/generations": _post(
                "Generate images (image-generation models)", "ImageRequest", "Images", False
            ),
            "/v1/responses": _post(
                "Create a response (streams typed events with stream: true)", "ResponseRequest", "Response", True
            ),
            "/v1/responses/{response_id}": {
                "get": _stored("A stored response (the key's owner's only)", "Response"),
                "delete": _stored("Delete a stored response", None),
            },
            "/v1/responses/{response_id}/input_items": {"get": _stored("A stored response's input items", None)},
            "/v1/models": {
                "get": {
                    "summary": "The services the key may use",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One service",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "Access name; its '/' may be percent-encoded.",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Model"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/organization/usage/completions": _usage(
                "Token usage of the key owner's services, in buckets", "completions"
            ),
            "/v1/organization/usage/images": _usage("Image usage of the key owner's services, in buckets", "images"),
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness (ready or not; per-service detail is on the internal port)",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "draining"}},
                }
            },
        },
    }
