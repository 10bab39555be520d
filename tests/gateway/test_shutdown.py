"""Graceful shutdown with a stream in flight, and usage records when the gateway is SIGKILLed mid-load."""

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.standin.testing import StandInThread

from .harness import Gateway

SVC = "u-8105f7322477/test"


@pytest.fixture
def engine(e2e):
    t = StandInThread("chat").start()
    yield t
    t.stop()


def test_sigterm_drains_then_finishes_the_stream(tmp_path, engine):
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, args=("--drain", "0.6", "--grace", "10")).start()
    engine.server.token_delay = 0.05
    stream = g.stream_in_background(
        {"model": SVC, "max_tokens": 30, "messages": [{"role": "user", "content": "a long story please"}]}
    )
    time.sleep(0.3)
    g.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = httpx.get(g.url + "/readyz", timeout=2)
    assert ready.status_code == 503 and ready.json()["ready"] is False  # still serving, but not ready
    status, body = stream.join(20)
    assert g.proc.wait(15) == 0
    engine.server.token_delay = 0.0
    assert status == 200
    assert body.rstrip().endswith("data: [DONE]") and '"error"' not in body
    assert body.count('"content"') >= 30  # every token arrived
    rec = [u for u in g.usage() if u["stream"]]
    assert rec and rec[-1]["status"] == "ok" and rec[-1]["completion_tokens"] == 30
    assert "gateway stopped" in g.logs()


def test_sigkill_mid_load_loses_and_duplicates_no_usage_record(tmp_path, engine):
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}).start()
    engine.server.token_delay = 0.002
    stop_at = time.time() + 1.5
    ok_ids: list[str] = []
    lock = threading.Lock()

    def worker(_):
        with httpx.Client(headers=g.headers(), timeout=10) as c:
            while time.time() < stop_at + 5:
                try:
                    r = c.post(
                        g.url + "/v1/chat/completions",
                        json={"model": SVC, "max_tokens": 4, "messages": [{"role": "user", "content": "count me"}]},
                    )
                except httpx.HTTPError:
                    return  # the gateway is gone
                if r.status_code == 200:
                    with lock:
                        ok_ids.append(r.headers["x-request-id"])

    workers = 6
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(worker, i) for i in range(workers)]
        time.sleep(1.5)
        g.proc.send_signal(signal.SIGKILL)
        for f in futures:
            f.result(30)
    g.proc.wait(5)
    engine.server.token_delay = 0.0
    lines = g.usage_log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole: no torn record
    ids = [r["request_id"] for r in records]
    assert len(ok_ids) > 20
    assert len(ids) == len(set(ids)), "duplicated usage records"
    assert set(ok_ids) <= set(ids), "a request the caller got an answer for has no usage record"
    assert len(ids) - len(ok_ids) <= workers  # at most the requests in flight at the kill


def test_grace_over_ends_streams_with_an_error_event_and_meters_them(tmp_path, engine):
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, args=("--grace", "1")).start()
    engine.server.token_delay = 0.25  # the stand-in answers 8..40 tokens: ~10 s at most
    msgs = [{"role": "user", "content": "a very long story please"}]
    try:
        stream = g.stream_in_background({"model": SVC, "max_tokens": 40, "messages": msgs})
        unary: dict = {}
        t = threading.Thread(
            target=lambda: unary.update(
                r=g.post("/v1/chat/completions", {"model": SVC, "max_tokens": 40, "messages": msgs}, timeout=30)
            )
        )
        t.start()
        assert engine.wait_for(lambda s: s.requests_started >= 2, 5)
        time.sleep(0.3)
        start = time.time()
        g.proc.send_signal(signal.SIGTERM)
        status, body = stream.join(20)
        t.join(20)
        assert g.proc.wait(15) == 0 and time.time() - start < 10
    finally:
        engine.server.token_delay = 0.0
    assert status == 200
    events = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2]).get("error", {}).get("code") == "gateway_shutting_down", (
        events[-3:],
        len(events),
        g.logs()[-2000:],
    )
    r = unary["r"]
    assert r.status_code == 503 and r.json()["error"]["code"] == "gateway_shutting_down"
    recs = {u["stream"]: u for u in g.usage()}
    assert len(g.usage()) == 2
    assert recs[True]["status"] == "error" and recs[True]["error"] == "gateway_shutting_down"
    assert 1 <= recs[True]["completion_tokens"] < 40 and recs[True]["prompt_tokens"] > 0
    assert recs[False]["status"] == "error" and recs[False]["prompt_tokens"] > 0


def test_shutdown_closes_keep_alive_connections_instead_of_waiting_the_grace(tmp_path, engine):
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, args=("--grace", "30")).start()
    engine.server.token_delay = 0.05
    client = httpx.Client(headers=g.headers(), timeout=30)  # keeps its connection open after the stream
    result: dict = {}

    def run():
        with client.stream(
            "POST",
            g.url + "/v1/chat/completions",
            json={"model": SVC, "stream": True, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        ) as r:
            result["body"] = r.read().decode()

    try:
        t = threading.Thread(target=run)
        t.start()
        assert engine.wait_for(lambda s: s.requests_started >= 1, 5)
        start = time.time()
        g.proc.send_signal(signal.SIGTERM)  # the stream is in flight: not idle yet
        t.join(20)
        assert g.proc.wait(25) == 0
        took = time.time() - start
    finally:
        engine.server.token_delay = 0.0
        client.close()
    assert result["body"].rstrip().endswith("data: [DONE]")
    assert took < 10, f"shutdown took {took:.1f}s: it waited on an idle keep-alive connection"
