"""Every error path answers with the right status and an OpenAI-shaped error body, and never hangs: what needs
the real server and engines (size limits, timeouts, engines dying). Parameter, auth and routing errors:
test_app_inproc.py, in process."""

import json
import time

import httpx
import pytest

from devtools.standin.testing import StandInThread
from devtools.standin.testing_openai import OpenAIUpstreamThread

from .harness import SEARCH_KEY, Gateway

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_oversized_body_is_413(gw):
    big = {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    e = error(gw.post(CHAT, big), 413)
    assert e["code"] == "request_too_large"


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


# -- what the engine refuses because of the caller's input is the caller's 400, and costs them nothing -----------------
LONG = " ".join(f"w{i}" for i in range(120))  # over the engines' limit of 50 input tokens below


@pytest.mark.e2e
@pytest.mark.parametrize(
    "decoupled,stream",
    [(True, False), (True, True), (False, False), (False, True)],
    ids=["dec", "dec-stream", "unary", "nd-stream"],
)
def test_an_input_the_engine_refuses_is_the_callers_400_and_not_billed(tmp_path, decoupled, stream):
    """TensorRT-LLM refuses a prompt longer than its engine was built for (INVALID_ARGUMENT; on a decoupled model
    only as the stream's error message). Before: 502 backend_error, and the attempt billed with its estimated prompt.
    Now: 400 context_length_exceeded, not retried, no usage record."""
    engine = StandInThread("chat", decoupled=decoupled, max_input_len=50).start()
    other = StandInThread("chat", decoupled=decoupled, max_input_len=50).start()
    g = Gateway(tmp_path, {"u-8105f7322477/test": [engine.url, other.url]}).start()
    try:
        body = {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": LONG}], "stream": stream}
        e = error(g.post(CHAT, body), 400)
        assert (e["code"], e["param"], e["type"]) == ("context_length_exceeded", "messages", "invalid_request_error")
        assert "at most 50" in e["message"]
        assert engine.server.requests_started + other.server.requests_started == 1  # refused, not retried elsewhere
        ok = g.post(CHAT, {"model": "u-8105f7322477/test", "messages": MSG, "max_tokens": 2})
        assert ok.status_code == 200
        assert g.wait_until(lambda: len(g.usage()) >= 1)
        time.sleep(0.3)
        assert [u["request_id"] for u in g.usage()] == [ok.headers["x-request-id"]]  # the refusal left no record
        assert httpx.get(g.internal_url + "/readyz").json()["services"]["u-8105f7322477/test"] == "running"
    finally:
        g.stop()
        engine.stop()
        other.stop()


@pytest.mark.e2e
def test_an_input_the_upstream_refuses_is_the_callers_400(tmp_path):
    up = OpenAIUpstreamThread().start()
    up.upstream.max_context = 50
    g = Gateway(tmp_path, {"team-search/query-rewriter": [up.url]}).start()
    try:
        for stream in (False, True):
            body = {
                "model": "team-search/query-rewriter",
                "messages": [{"role": "user", "content": LONG}],
                "stream": stream,
            }
            e = error(g.post(CHAT, body, key=SEARCH_KEY), 400)
            assert "maximum context length is 50 tokens" in e["message"] and e["type"] == "invalid_request_error"
        time.sleep(0.3)
        assert g.usage() == []
    finally:
        g.stop()
        up.stop()
