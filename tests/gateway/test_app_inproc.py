"""The gateway's own behaviour in process (no subprocess, server or engine: tests/gateway/inproc.py): parameter
validation, error shapes, auth, limits, metering and the answer's shapes, over devtools.fake_backend.

What needs the real protocol (Sanic's HTTP parser and size limits, signals, gRPC, the stand-in's real model configs)
stays in the process-level tests beside this file."""

import asyncio
import json
import time

import httpx
import pytest

from .harness import DEMO_KEY, OTHER_KEY, example_catalog
from .inproc import InProcessGateway

CHAT = "/v1/chat/completions"
SVC = "u-8105f7322477/test"
MSG = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {DEMO_KEY}"}


@pytest.fixture
async def gw(tmp_path):
    async with InProcessGateway(tmp_path) as g:
        yield g


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


async def post(g, path, body, key=DEMO_KEY, **kw):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, (bytes, str)):
        return await g.client.post(path, content=body, headers=headers, **kw)
    return await g.client.post(path, json=body, headers=headers, **kw)


# -- moved from test_errors.py: they test the gateway's parsing and refusals, not the HTTP server ---------------------
async def test_bad_json(gw):
    e = error(await post(gw, CHAT, b"{not json", headers={"content-type": "application/json"}), 400)
    assert e["code"] == "invalid_json" and e["type"] == "invalid_request_error"
    e = error(await post(gw, CHAT, b""), 400)
    assert e["code"] == "invalid_json"
    e = error(await post(gw, CHAT, b"[1, 2]"), 400)
    assert e["message"] == "the request body must be a JSON object"


@pytest.mark.parametrize(
    "body,param,code",
    [
        ({"messages": MSG}, "model", "missing_required_parameter"),
        ({"model": SVC}, "messages", "missing_required_parameter"),
        ({"model": SVC, "messages": []}, "messages", "invalid_value"),
        ({"model": SVC, "messages": "hi"}, "messages", "invalid_value"),
        ({"model": SVC, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"model": SVC, "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        ({"model": 7, "messages": MSG}, "model", "invalid_type"),
        ({"model": SVC, "messages": MSG, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": SVC, "messages": MSG, "temperature": 3}, "temperature", "invalid_value"),
        ({"model": SVC, "messages": MSG, "top_p": -0.1}, "top_p", "invalid_value"),
        ({"model": SVC, "messages": MSG, "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"model": SVC, "messages": MSG, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
        ({"model": SVC, "messages": MSG, "max_tokens": 999999}, "max_tokens", "invalid_value"),
        ({"model": SVC, "messages": MSG, "max_completion_tokens": True}, "max_completion_tokens", "invalid_type"),
        ({"model": SVC, "messages": MSG, "n": 2}, "n", "unsupported_parameter"),  # no num_return_sequences
        ({"model": SVC, "messages": MSG, "n": 129}, "n", "invalid_value"),
        ({"model": SVC, "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"model": SVC, "messages": MSG, "stream": "yes"}, "stream", "invalid_type"),
        ({"model": SVC, "messages": MSG, "stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        (
            {"model": SVC, "messages": MSG, "tools": [{"type": "function"}]},
            "tools[0].function",
            "missing_required_parameter",
        ),
        (  # a valid tool, but the model (ChatML, no template of its own) renders no tools
            {"model": SVC, "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools",
            "unsupported_parameter",
        ),
        (
            {"model": SVC, "messages": MSG, "tools": [{"type": "web_search"}]},
            "tools[0].type",
            "unsupported_parameter",
        ),
        (
            {
                "model": SVC,
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ],
            },
            "messages[0].content[0]",
            "image_not_supported",
        ),
        (
            {"model": SVC, "messages": MSG, "response_format": {"type": "json_object"}},
            "response_format",
            "unsupported_parameter",
        ),
    ],
)
async def test_invalid_requests_name_the_parameter(gw, body, param, code):
    e = error(await post(gw, CHAT, body), 400)
    assert (e["param"], e["code"]) == (param, code), e
    assert gw.backend(SVC).requests == []  # refused before anything reached the engine
    assert gw.usage() == []  # and nothing to bill


async def test_auth_errors(gw):
    e = error(await post(gw, CHAT, {"model": SVC, "messages": MSG}, key=None), 401)
    assert e["code"] == "invalid_api_key" and "Bearer" in e["message"]
    e = error(await post(gw, CHAT, {"model": SVC, "messages": MSG}, key="sk-ms-wrong"), 401)
    assert e["message"] == "incorrect API key provided"
    r = await gw.client.post(CHAT, json={"model": SVC, "messages": MSG}, headers={"authorization": f"Basic {DEMO_KEY}"})
    assert error(r, 401)["code"] == "invalid_api_key"


async def test_unknown_model_and_other_owner_look_the_same(gw):
    unknown = error(await post(gw, CHAT, {"model": "u-8105f7322477/nope", "messages": MSG}), 404)
    other = error(await post(gw, CHAT, {"model": "u-3f9a2c7e51d0/receipts", "messages": MSG}), 404)
    assert unknown["code"] == other["code"] == "model_not_found"
    assert other["message"] == unknown["message"].replace("u-8105f7322477/nope", "u-3f9a2c7e51d0/receipts")
    # access names match exactly: no case folding, no path tricks
    for name in [
        "U-8105f7322477/test",
        "u-8105f7322477/test/",
        "u-8105f7322477/../u-8105f7322477/test",
        "u-8105f7322477/test ",
        "u-8105f7322477%2Ftest",
    ]:
        assert error(await post(gw, CHAT, {"model": name, "messages": MSG}), 404)["code"] == "model_not_found"
    r = await gw.client.get("/v1/models/u-3f9a2c7e51d0%2Freceipts", headers=AUTH)
    assert error(r, 404)["code"] == "model_not_found"
    r = await gw.client.get("/v1/models/u-3f9a2c7e51d0%2Freceipts", headers={"authorization": f"Bearer {OTHER_KEY}"})
    assert r.status_code == 200 and r.json()["id"] == "u-3f9a2c7e51d0/receipts"


async def test_wrong_endpoint_for_the_task(gw):
    e = error(await post(gw, CHAT, {"model": "u-3f9a2c7e51d0/product-images", "messages": MSG}, key=OTHER_KEY), 400)
    assert e["code"] == "wrong_endpoint" and "/v1/images/generations" in e["message"]
    e = error(await post(gw, "/v1/images/generations", {"model": SVC, "prompt": "x"}), 400)
    assert e["code"] == "wrong_endpoint"


async def test_unknown_endpoint_and_method(gw):
    # OpenAI's own answers: under /v1 "Invalid URL (...)" with code null (a code like "not_found" reads as "model
    # not found" in LangChain and Pydantic AI), elsewhere "Unknown request URL" with code "unknown_url"
    e = error(await gw.client.post("/v1/nothing-here", json={}), 404)
    assert e == {
        "message": "Invalid URL (POST /v1/nothing-here)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    e = error(await gw.client.get("/nothing"), 404)
    assert e["code"] == "unknown_url" and e["message"].startswith("Unknown request URL: GET /nothing.")
    assert error(await gw.client.get(CHAT), 405)["code"] == "method_not_allowed"


# -- the answer, its shapes and its one usage record ---------------------------------------------------------------
async def test_a_chat_answer_is_shaped_and_metered_once(gw):
    r = await post(gw, CHAT, {"model": SVC, "messages": MSG, "max_tokens": 5, "stop": " w4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == SVC
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": " w1 w2 w3", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert r.headers["x-request-id"] == body["id"].removeprefix("chatcmpl-")
    assert float(r.headers["x-gateway-overhead-ms"]) >= 0
    (rec,) = gw.usage()
    assert (rec["status"], rec["endpoint"], rec["stream"], rec["access_name"]) == ("ok", "chat.completions", False, SVC)
    assert rec["completion_tokens"] == body["usage"]["completion_tokens"] == 5  # what the engine generated
    (sent,) = gw.backend(SVC).requests
    assert sent.sampling.max_tokens == 5 and sent.sampling.stop == (" w4",)
    assert "hi" in sent.prompt and sent.request_id == rec["request_id"]


async def test_a_stream_has_openais_chunks_usage_and_done(gw):
    r = await post(
        gw,
        CHAT,
        {"model": SVC, "messages": MSG, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " w1 w2 w3"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    (rec,) = gw.usage()
    assert rec["status"] == "ok" and rec["stream"] is True and rec["completion_tokens"] == 3


async def test_a_completion_with_echo(gw):
    r = await post(gw, "/v1/completions", {"model": SVC, "prompt": "once", "max_tokens": 2, "echo": True})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "once w1 w2"


async def test_images_are_pngs(gw):
    r = await post(
        gw, "/v1/images/generations", {"model": "u-3f9a2c7e51d0/product-images", "prompt": "x", "n": 2}, key=OTHER_KEY
    )
    assert r.status_code == 200, r.text
    assert [d["b64_json"][:8] for d in r.json()["data"]] == ["iVBORw0K"] * 2  # base64 of the PNG signature
    (rec,) = gw.usage()
    assert rec["images"] == 2 and rec["endpoint"] == "images.generations"
    e = error(
        await post(
            gw,
            "/v1/images/generations",
            {"model": "u-3f9a2c7e51d0/product-images", "prompt": "x", "size": "9x9"},
            key=OTHER_KEY,
        ),
        400,
    )
    assert e["param"] == "size" and "8x8" in e["message"]


async def test_parameters_the_model_cannot_honour_are_refused_before_any_work(gw):
    e = error(await post(gw, CHAT, {"model": SVC, "messages": MSG, "beam_width": 2}), 400)
    assert (e["param"], e["code"]) == ("beam_width", "unsupported_parameter")
    assert gw.backend(SVC).requests == [] and gw.usage() == []


# -- backend failures --------------------------------------------------------------------------------------------------
async def test_an_unreachable_engine_is_a_clean_503_metered_as_an_attempt(gw):
    e = error(await post(gw, CHAT, {"model": SVC, "messages": [{"role": "user", "content": "[fake:refuse]"}]}), 503)
    assert e["code"] == "backend_unavailable" and e["type"] == "server_error"
    (rec,) = gw.usage()
    assert rec["status"] == "error" and rec["prompt_tokens"] == 0  # nothing reached an engine


async def test_an_engine_dying_mid_stream_ends_with_an_error_event(gw):
    body = {"model": SVC, "stream": True, "messages": [{"role": "user", "content": "x [fake:die:2]"}]}
    r = await post(gw, CHAT, body)
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "backend_error"
    assert sum('"content":" w' in e for e in events) == 2  # what came before the failure was delivered
    (rec,) = gw.usage()
    assert rec["status"] == "error" and rec["completion_tokens"] == 2


# -- limits ------------------------------------------------------------------------------------------------------------
async def test_the_rate_limit_answers_429_with_retry_after_and_meters_nothing(tmp_path):
    text = example_catalog().replace(
        "    model: llama-3.1-8b-instruct\n    instances: 1\n    pool: h100\n",
        "    model: llama-3.1-8b-instruct\n    instances: 1\n    pool: h100\n    limits: {requests_per_minute: 2}\n",
        1,
    )
    async with InProcessGateway(tmp_path, text) as g:
        if time.time() % 60 > 50:  # fixed one-minute windows: don't straddle one
            await asyncio.sleep(61 - time.time() % 60)
        ok = [await post(g, CHAT, {"model": SVC, "messages": MSG, "max_tokens": 2}) for _ in range(2)]
        assert [r.status_code for r in ok] == [200, 200]
        e = error(r := await post(g, CHAT, {"model": SVC, "messages": MSG, "max_tokens": 2}), 429)
        assert e["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
        assert len(g.usage()) == 2 and len(g.backend(SVC).requests) == 2


async def test_usage_queries_are_throttled_per_key(tmp_path):
    """A usage query reads the store (a scan of the whole log, before the index); sending one costs the caller
    nothing. Each key gets --usage-api-rpm of them per minute (the console's usage pages included), then 429."""
    async with InProcessGateway(tmp_path, usage_api_rpm=3) as g:
        if time.time() % 60 > 55:  # fixed one-minute windows: don't straddle one
            await asyncio.sleep(61 - time.time() % 60)
        url = f"/v1/organization/usage/completions?start_time={int(time.time()) - 60}"
        codes = [(await g.client.get(url, headers=AUTH)).status_code for _ in range(2)]
        r = await g.client.get(f"/console/api/usage/{SVC}", headers=AUTH)
        codes.append(r.status_code)
        r = await g.client.get(url, headers=AUTH)
        assert codes == [200, 200, 200], codes
        e = error(r, 429)
        assert e["code"] == "rate_limit_exceeded" and "usage queries" in e["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        other = await g.client.get(url, headers={"authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 200  # per key
