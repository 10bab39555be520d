"""Graceful shutdown with a stream in flight, and usage records when the gateway is SIGKILLed mid-load."""

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from modelsvc.standin.testing import StandInThread

from .harness import Gateway

SVC = "u-8105f7322477/test"


@pytest.fixture
def engine():
    t = StandInThread("chat").start()
    yield t
    t.stop()


def test_sigterm_drains_then_finishes_the_stream(tmp_path, engine):
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, args=("--drain", "0.6", "--grace", "10")).start()
    engine.server.token_delay = 0.05
    stream = g.stream_in_background({"model": SVC, "max_tokens": 30,
                                     "messages": [{"role": "user", "content": "a long story please"}]})
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
                    r = c.post(g.url + "/v1/chat/completions", json={
                        "model": SVC, "max_tokens": 4, "messages": [{"role": "user", "content": "count me"}]})
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
