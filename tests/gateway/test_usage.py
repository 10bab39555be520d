"""Usage metering: a record per request that reached a backend, streams included, cancellations included."""

import socket
import time

import httpx

from .harness import DEMO_KEY

SVC = "u-8105f7322477/test"


def _records(gw, request_ids):
    return [r for r in gw.usage() if r["request_id"] in request_ids]


def test_every_request_is_metered_with_engine_counts(gw):
    before = len(gw.usage())
    r = gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "meter me"}]})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers(), json={
            "model": SVC, "stream": True, "max_tokens": 7, "messages": [{"role": "user", "content": "meter me"}]}) as s:
        text = s.read().decode()
        srid = s.headers["x-request-id"]
    assert '"usage"' not in text  # the caller did not ask for include_usage ...
    assert gw.wait_until(lambda: len(gw.usage()) >= before + 2)
    rec, srec = _records(gw, {rid})[0], _records(gw, {srid})[0]
    body = r.json()
    assert rec["service_id"] == "ms-1d033c426254" and rec["key_id"] == "k-local-demo"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (body["usage"]["prompt_tokens"],
                                                                body["usage"]["completion_tokens"])
    assert rec["status"] == "ok" and rec["latency_ms"] > 0 and 0 <= rec["overhead_ms"] <= rec["latency_ms"]
    assert srec["stream"] is True and srec["completion_tokens"] == 7  # ... but the stream is metered anyway
    assert float(r.headers["x-gateway-overhead-ms"]) >= 0


def test_failed_backend_requests_are_metered_too(gw):
    r = gw.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "[standin:refuse]"}]})
    assert r.status_code == 503
    assert gw.wait_until(lambda: any(u["status"] == "error" and u["error"] == "backend_unavailable"
                                     for u in gw.usage()))


def test_client_disconnect_cancels_the_backend_stream(gw, engines):
    server = engines["chat"].server
    server.token_delay = 0.05
    cancelled = server.requests_cancelled
    try:
        sock = socket.create_connection(("127.0.0.1", gw.port))
        body = ('{"model": "%s", "stream": true, "max_tokens": 200, "messages": [{"role": "user", '
                '"content": "a long story"}]}' % SVC).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + DEMO_KEY.encode() + b"\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
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
