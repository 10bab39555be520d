"""Every error path answers with the right status and an OpenAI-shaped error body, and never hangs."""

import json
import time

import httpx
import pytest

from .harness import DEMO_KEY, OTHER_KEY, SEARCH_KEY

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_bad_json(gw):
    e = error(gw.post(CHAT, b"{not json", headers={"content-type": "application/json"}), 400)
    assert e["code"] == "invalid_json" and e["type"] == "invalid_request_error"
    e = error(gw.post(CHAT, b""), 400)
    assert e["code"] == "invalid_json"
    e = error(gw.post(CHAT, b"[1, 2]"), 400)
    assert e["message"] == "the request body must be a JSON object"


@pytest.mark.parametrize(
    "body,param,code",
    [
        ({"messages": MSG}, "model", "missing_required_parameter"),
        ({"model": "u-8105f7322477/test"}, "messages", "missing_required_parameter"),
        ({"model": "u-8105f7322477/test", "messages": []}, "messages", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": "hi"}, "messages", "invalid_value"),
        (
            {"model": "u-8105f7322477/test", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "invalid_type",
        ),
        ({"model": 7, "messages": MSG}, "model", "invalid_type"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "temperature": 3}, "temperature", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "top_p": -0.1}, "top_p", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "max_tokens": 999999}, "max_tokens", "invalid_value"),
        (
            {"model": "u-8105f7322477/test", "messages": MSG, "max_completion_tokens": True},
            "max_completion_tokens",
            "invalid_type",
        ),
        ({"model": "u-8105f7322477/test", "messages": MSG, "n": 2}, "n", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"model": "u-8105f7322477/test", "messages": MSG, "stream": "yes"}, "stream", "invalid_type"),
        (
            {"model": "u-8105f7322477/test", "messages": MSG, "stream_options": {"include_usage": True}},
            "stream_options",
            "invalid_value",
        ),
        (
            {"model": "u-8105f7322477/test", "messages": MSG, "tools": [{"type": "function"}]},
            "tools",
            "unsupported_parameter",
        ),
        (
            {
                "model": "u-8105f7322477/test",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ],
            },
            "messages[0].content[0]",
            "image_not_supported",
        ),
        (
            {"model": "u-8105f7322477/test", "messages": MSG, "response_format": {"type": "json_object"}},
            "response_format",
            "unsupported_parameter",
        ),
    ],
)
def test_invalid_requests_name_the_parameter(gw, body, param, code):
    e = error(gw.post(CHAT, body), 400)
    assert (e["param"], e["code"]) == (param, code), e


def test_oversized_body_is_413(gw):
    big = {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    e = error(gw.post(CHAT, big), 413)
    assert e["code"] == "request_too_large"


def test_auth_errors(gw):
    e = error(gw.post(CHAT, {"model": "u-8105f7322477/test", "messages": MSG}, key=None), 401)
    assert e["code"] == "invalid_api_key" and "Bearer" in e["message"]
    e = error(gw.post(CHAT, {"model": "u-8105f7322477/test", "messages": MSG}, key="sk-ms-wrong"), 401)
    assert e["message"] == "incorrect API key provided"
    r = httpx.post(
        gw.url + CHAT,
        json={"model": "u-8105f7322477/test", "messages": MSG},
        headers={"authorization": f"Basic {DEMO_KEY}"},
    )
    assert error(r, 401)["code"] == "invalid_api_key"


def test_unknown_model_and_other_owner_look_the_same(gw):
    unknown = error(gw.post(CHAT, {"model": "u-8105f7322477/nope", "messages": MSG}), 404)
    other = error(gw.post(CHAT, {"model": "u-3f9a2c7e51d0/receipts", "messages": MSG}), 404)
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
        assert error(gw.post(CHAT, {"model": name, "messages": MSG}), 404)["code"] == "model_not_found"
    r = httpx.get(gw.url + "/v1/models/u-3f9a2c7e51d0%2Freceipts", headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert error(r, 404)["code"] == "model_not_found"
    r = httpx.get(gw.url + "/v1/models/u-3f9a2c7e51d0%2Freceipts", headers={"authorization": f"Bearer {OTHER_KEY}"})
    assert r.status_code == 200 and r.json()["id"] == "u-3f9a2c7e51d0/receipts"


def test_wrong_endpoint_for_the_task(gw):
    e = error(gw.post(CHAT, {"model": "u-3f9a2c7e51d0/product-images", "messages": MSG}, key=OTHER_KEY), 400)
    assert e["code"] == "wrong_endpoint" and "/v1/images/generations" in e["message"]
    e = error(gw.post("/v1/images/generations", {"model": "u-8105f7322477/test", "prompt": "x"}), 400)
    assert e["code"] == "wrong_endpoint"


def test_unknown_endpoint_and_method(gw):
    assert error(httpx.get(gw.url + "/v1/nothing-here"), 404)["code"] == "not_found"
    assert error(httpx.get(gw.url + "/nothing"), 404)["code"] == "not_found"
    assert error(httpx.get(gw.url + CHAT), 405)["code"] == "method_not_allowed"


def test_backend_down_is_a_clean_503(gw):
    t = time.perf_counter()
    r = gw.post(CHAT, {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "[standin:refuse]"}]})
    e = error(r, 503)
    assert e["code"] == "backend_unavailable" and e["type"] == "server_error"
    assert time.perf_counter() - t < 5


def test_backend_hanging_hits_the_deadline(gw):
    t = time.perf_counter()
    r = gw.post(
        CHAT,
        {"model": "u-8105f7322477/test", "max_tokens": 5, "messages": [{"role": "user", "content": "[standin:hang]"}]},
    )
    took = time.perf_counter() - t
    assert error(r, 504)["code"] == "backend_timeout"
    # --deadline 2, plus the generation a non-streamed answer may need: 5 tokens at the 5 tokens/s floor
    assert 2.8 < took < 7


def test_backend_hanging_stream_is_a_504_before_any_byte(gw):
    t = time.perf_counter()
    r = gw.post(
        CHAT,
        {"model": "u-8105f7322477/test", "stream": True, "messages": [{"role": "user", "content": "[standin:hang]"}]},
    )
    assert error(r, 504)["code"] == "backend_timeout"
    assert time.perf_counter() - t < 6


def test_backend_dying_mid_stream_ends_with_an_error_event(gw, engines):
    t = time.perf_counter()
    with httpx.stream(
        "POST",
        gw.url + CHAT,
        headers=gw.headers(),
        timeout=10,
        json={
            "model": "u-8105f7322477/test",
            "stream": True,
            "messages": [{"role": "user", "content": "tell me [standin:die:3]"}],
        },
    ) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert time.perf_counter() - t < 5
    assert events[-1] == "[DONE]"
    import json

    last = json.loads(events[-2])
    assert last["error"]["code"] == "backend_error" and last["error"]["type"] == "server_error"
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert len([c for c in contents if c]) >= 1  # the caller got the first tokens before the failure


def test_errors_never_show_internal_addresses_to_callers(gw, engines):
    """Engine addresses stay in the logs (operators need them), never in an error a caller reads."""
    port = str(engines["chat"].server.port)
    r = gw.post(CHAT, {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "[standin:refuse]"}]})
    e = error(r, 503)
    assert "127.0.0.1" not in r.text and port not in r.text and "<internal>" in e["message"]
    with httpx.stream(
        "POST",
        gw.url + CHAT,
        headers=gw.headers(),
        timeout=10,
        json={
            "model": "u-8105f7322477/test",
            "stream": True,
            "messages": [{"role": "user", "content": "tell me [standin:die:3]"}],
        },
    ) as r:
        text = r.read().decode()
    assert '"error"' in text and "127.0.0.1" not in text and port not in text
    assert gw.wait_until(lambda: f"127.0.0.1:{port}" in gw.logs())


def test_address_redaction_covers_the_usual_spellings():
    from gateway.errors import BackendError, redact_addresses

    for address in [
        "10.0.3.7:8001",
        "ipv4:127.0.0.1:18602",
        "[fd00::1]:8001",
        "fd00::1",
        "http://vllm.internal:8000/v1",
        "triton-0.svc.cluster.local:8001",
        "192.168.1.20",
    ]:
        out = redact_addresses(f"ensemble at {address}: connection refused")
        assert address not in out and out.endswith(": connection refused"), out
    assert redact_addresses("model 'u-1/x' has no seed input") == "model 'u-1/x' has no seed input"
    assert "10.1.2.3" not in BackendError("engine at 10.1.2.3:8001 died").body()["error"]["message"]


UPSTREAM_SVC = "team-search/query-rewriter"


def _search(gw, content: str, **body):
    return gw.post(
        "/v1/chat/completions",
        {"model": UPSTREAM_SVC, "messages": [{"role": "user", "content": content}], **body},
        key=SEARCH_KEY,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_answering_200_with_a_body_that_is_not_json_is_a_clean_502(gw, stream):
    before = len(gw.usage())
    r = _search(gw, "[standin:garbage] rewrite this", stream=stream)
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "backend_error" and "invalid" in err["message"] and "<html>" not in err["message"]
    assert gw.wait_until(lambda: len(gw.usage()) > before)
    rec = gw.usage()[-1]
    assert rec["status"] == "error" and rec["access_name"] == UPSTREAM_SVC and rec["prompt_tokens"] > 0


def test_a_bad_upstream_event_mid_stream_ends_with_an_error_event(gw):
    before = len(gw.usage())
    r = _search(gw, "[standin:bad-event:3] rewrite this long query", stream=True, max_tokens=20)
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events
    assert json.loads(events[-2])["error"]["code"] == "backend_error"
    assert sum('"content"' in e for e in events) >= 3  # what came before the bad event was delivered
    assert gw.wait_until(lambda: len(gw.usage()) > before)
    rec = gw.usage()[-1]
    assert rec["status"] == "error" and rec["completion_tokens"] >= 3
