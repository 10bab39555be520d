"""Usage metering: a record per request that reached a backend, streams included, cancellations included."""

import json
import socket
import time

import httpx
import pytest

from devtools.standin.engine import generate_tokens
from devtools.standin.testing import StandInThread
from devtools.standin.testing_openai import OpenAIUpstreamThread

from .harness import DEMO_KEY, DEMO_KEYS, OTHER_KEY, SEARCH_KEY, Gateway

SVC = "u-8105f7322477/test"


def _records(gw, request_ids):
    return [r for r in gw.usage() if r["request_id"] in request_ids]


def test_every_request_is_metered_with_engine_counts(gw):
    before = len(gw.usage())
    r = gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "meter me"}]})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        headers=gw.headers(),
        json={"model": SVC, "stream": True, "max_tokens": 7, "messages": [{"role": "user", "content": "meter me"}]},
    ) as s:
        text = s.read().decode()
        srid = s.headers["x-request-id"]
    assert '"usage"' not in text  # the caller did not ask for include_usage ...
    assert gw.wait_until(lambda: len(gw.usage()) >= before + 2)
    rec, srec = _records(gw, {rid})[0], _records(gw, {srid})[0]
    body = r.json()
    assert rec["service_id"] == "ms-1d033c426254" and rec["key_id"] == "k-local-demo"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (
        body["usage"]["prompt_tokens"],
        body["usage"]["completion_tokens"],
    )
    assert rec["status"] == "ok" and rec["latency_ms"] > 0 and 0 <= rec["overhead_ms"] <= rec["latency_ms"]
    assert srec["stream"] is True and srec["completion_tokens"] == 7  # ... but the stream is metered anyway
    assert float(r.headers["x-gateway-overhead-ms"]) >= 0


def test_failed_backend_requests_are_metered_too(gw):
    r = gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "[standin:refuse]"}]})
    assert r.status_code == 503
    assert gw.wait_until(
        lambda: any(u["status"] == "error" and u["error"] == "backend_unavailable" for u in gw.usage())
    )


def test_client_disconnect_cancels_the_backend_stream(gw, engines):
    server = engines["chat"].server
    server.token_delay = 0.05
    cancelled = server.requests_cancelled
    try:
        sock = socket.create_connection(("127.0.0.1", gw.port))
        body = json.dumps(
            {"model": SVC, "stream": True, "max_tokens": 200, "messages": [{"role": "user", "content": "a long story"}]}
        ).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer "
            + DEMO_KEY.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        got = b""
        while got.count(b"data: ") < 3:
            got += sock.recv(65536)
        sock.close()  # the caller goes away mid-stream
        assert engines["chat"].wait_for(lambda s: s.requests_cancelled > cancelled, 5), "engine kept generating"
    finally:
        server.token_delay = 0.0
    assert gw.wait_until(lambda: any(u["status"] == "cancelled" for u in gw.usage()))
    rec = [u for u in gw.usage() if u["status"] == "cancelled"][-1]
    assert 1 <= rec["completion_tokens"] < 200  # how far it got


def test_metrics_per_service_id(gw):
    gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "count"}]})
    assert httpx.get(gw.url + "/metrics").status_code == 404  # not on the public port
    text = httpx.get(gw.internal_url + "/metrics").text
    assert 'modelsvc_requests_total{access_name="u-8105f7322477/test",service_id="ms-1d033c426254",status="ok"}' in text
    assert "modelsvc_completion_tokens_total" in text
    assert "modelsvc_gateway_overhead_seconds_bucket" in text
    assert DEMO_KEY not in text


def test_keys_never_reach_the_logs(gw):
    gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "x"}]})
    gw.post("/v1/chat/completions", {"model": SVC, "messages": []}, key="sk-ms-bad-key-123456789")
    time.sleep(0.2)
    log = gw.logs() + gw.usage_log.read_text()
    assert DEMO_KEY not in log and "sk-ms-bad-key-123456789" not in log


def _send_raw(gw, body: dict) -> socket.socket:
    """A POST on a raw socket, so the test can drop the connection whenever it likes."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer "
        + DEMO_KEY.encode()
        + b"\r\nContent-Length: "
        + str(len(data)).encode()
        + b"\r\n\r\n"
        + data
    )
    return sock


def _new_records(gw, before: int, n: int = 1) -> list[dict]:
    assert gw.wait_until(lambda: len(gw.usage()) >= before + n), "no usage record"
    time.sleep(0.3)  # nothing more may follow: exactly one record per request
    new = gw.usage()[before:]
    assert len(new) == n, new
    return new


LONG_PROMPT = " ".join(f"word{i}" for i in range(6000))


def _engine_prompt_tokens(gw, content: str) -> int:
    before = len(gw.usage())
    r = gw.post(
        "/v1/chat/completions", {"model": SVC, "max_tokens": 1, "messages": [{"role": "user", "content": content}]}
    )
    assert r.status_code == 200
    return _new_records(gw, before)[0]["prompt_tokens"]


def test_non_streamed_request_whose_caller_leaves_is_metered(gw, engines):
    server = engines["chat"].server
    server.token_delay = 0.05
    cancelled, started = server.requests_cancelled, server.requests_started
    before = len(gw.usage())
    try:
        # [standin:hang]: the engine answers nothing before the caller leaves (else its first response's count)
        sock = _send_raw(
            gw,
            {
                "model": SVC,
                "max_tokens": 200,
                "messages": [{"role": "user", "content": "[standin:hang] " + LONG_PROMPT}],
            },
        )
        assert engines["chat"].wait_for(lambda s: s.requests_started > started, 5)
        sock.close()
        assert engines["chat"].wait_for(lambda s: s.requests_cancelled > cancelled, 5), "engine kept generating"
    finally:
        server.token_delay = 0.0
    rec = _new_records(gw, before)[0]
    assert rec["status"] == "cancelled" and rec["stream"] is False
    # a one-answer request: the engine's count never arrived, so the gateway's estimate, marked as one
    assert rec["prompt_tokens"] >= 6000 and rec["prompt_tokens_estimated"] is True


def test_stream_dropped_before_its_first_token_is_metered(gw, engines):
    before, started = len(gw.usage()), engines["chat"].server.requests_started
    sock = _send_raw(
        gw,
        {
            "model": SVC,
            "stream": True,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "[standin:hang] " + LONG_PROMPT}],
        },
    )
    assert engines["chat"].wait_for(lambda s: s.requests_started > started, 5)
    sock.close()
    rec = _new_records(gw, before)[0]
    assert rec["status"] == "cancelled" and rec["stream"] is True and rec["completion_tokens"] == 0
    assert rec["prompt_tokens"] >= 6000 and rec["prompt_tokens_estimated"] is True


def test_stream_dropped_near_the_end_has_the_engines_prompt_count(gw, engines):
    expected = _engine_prompt_tokens(gw, LONG_PROMPT)
    server = engines["chat"].server
    server.token_delay = 0.05
    before = len(gw.usage())
    try:
        sock = _send_raw(
            gw, {"model": SVC, "stream": True, "max_tokens": 12, "messages": [{"role": "user", "content": LONG_PROMPT}]}
        )
        got = b""
        while got.count(b'"content"') < 10:
            got += sock.recv(65536)
        sock.close()
        rec = _new_records(gw, before)[0]
    finally:
        server.token_delay = 0.0
    assert rec["status"] == "cancelled" and 9 <= rec["completion_tokens"] < 12
    assert (rec["prompt_tokens"], rec["prompt_tokens_estimated"]) == (expected, False)


def test_images_are_metered_by_count(gw):
    before = len(gw.usage())
    r = gw.post(
        "/v1/images/generations",
        {"model": "u-3f9a2c7e51d0/product-images", "prompt": "a red mug", "n": 10},
        key=OTHER_KEY,
        timeout=60,
    )
    assert r.status_code == 200 and len(r.json()["data"]) == 10
    rec = _new_records(gw, before)[0]
    assert rec["endpoint"] == "images.generations" and rec["status"] == "ok" and rec["images"] == 10


def test_a_long_non_streamed_answer_outlasts_the_server_timeouts(gw, engines):
    """A non-streamed answer is only sent when generation is done: a slow one (~72 s here, past the 60 s response
    timeout the server once had) must still arrive whole, within the backend's own wait of
    deadline + max_tokens / 5 tokens/s, and be metered."""
    prompt = next(p for p in (f"tell me a long tale {i}" for i in range(500)) if len(generate_tokens(p)) >= 36)
    n = len(generate_tokens(prompt))
    server = engines["chat"].server
    server.token_delay = 72 / n
    before = len(gw.usage())
    try:
        r = gw.post("/v1/completions", {"model": SVC, "prompt": prompt, "max_tokens": 1000}, timeout=150)
    finally:
        server.token_delay = 0.0
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == n
    rec = _new_records(gw, before)[0]
    assert rec["status"] == "ok" and rec["completion_tokens"] == n and rec["latency_ms"] > 70_000


# -- abandoned work is metered, and charged to the key's token limits -----------------------------------------------
LIMITED = [dict(k, limits={"tokens_per_minute": 1_000_000}) for k in DEMO_KEYS]


def _raw(port: int, key: str, body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
        + key.encode()
        + b"\r\nContent-Length: "
        + str(len(data)).encode()
        + b"\r\n\r\n"
        + data
    )
    return sock


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["triton", "openai"])
def test_an_abandoned_non_streamed_request_is_billed_for_what_the_engine_generated(tmp_path, backend):
    """Before: a caller leaving a non-streamed request was billed 0 output tokens, whatever the engine generated
    until the cancel (its one answer only comes at the end). The engine's tokens until the cancel are recorded
    and count against the key's tokens per minute."""
    if backend == "triton":
        engine, svc, key = StandInThread("chat", token_delay=0.02).start(), SVC, DEMO_KEY
        counter, url = engine.server, engine.url
    else:
        engine, svc, key = OpenAIUpstreamThread(token_delay=0.02).start(), "team-search/query-rewriter", SEARCH_KEY
        counter, url = engine.upstream, engine.url
    g = Gateway(tmp_path, {svc: [url]}, demo_keys=LIMITED).start()
    try:
        story = [{"role": "user", "content": "a long, long story"}]
        body = {"model": svc, "max_tokens": 400, "ignore_eos": True, "messages": story}  # all 400 unless cut
        before = counter.tokens_generated
        sock = _raw(g.port, key, body)
        end = time.monotonic() + 20
        # the engine counts a token as it sends it; the gateway may not have read the latest ones yet when the
        # caller leaves, so the bound below leaves it 40 tokens (0.8 s at this delay) to be behind the engine
        while counter.tokens_generated - before < 60 and time.monotonic() < end:
            time.sleep(0.01)
        sock.close()  # the caller goes away mid-generation
        assert g.wait_until(lambda: any(u["status"] == "cancelled" for u in g.usage()), 10), g.logs()[-2000:]
        (rec,) = [u for u in g.usage() if u["status"] == "cancelled"]
        generated = counter.tokens_generated - before
        assert rec["stream"] is False and 20 <= rec["completion_tokens"] <= generated <= 400, (rec, generated)
        spent = rec["prompt_tokens"] + rec["completion_tokens"]
        remaining = lambda: int(  # noqa: E731
            g.post("/v1/chat/completions", {**body, "max_tokens": 1}, key=key).headers["x-ratelimit-remaining-tokens"]
        )
        assert g.wait_until(lambda: remaining() <= 1_000_000 - spent, 5)  # charged to the key's limit
    finally:
        g.stop()
        engine.stop()
