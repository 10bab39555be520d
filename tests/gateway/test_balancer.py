"""Balancing across three stand-in instances, failover when one dies, and its recovery."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.standin.testing import StandInThread

from .harness import Gateway

SVC = "u-8105f7322477/test"


@pytest.fixture
def three(e2e, tmp_path):
    threads = [StandInThread("chat", token_delay=0.002).start() for _ in range(3)]
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}" for t in threads]}).start()
    yield g, threads
    g.stop()
    for t in threads:
        t.stop()


def _send(g: Gateway, n: int, workers: int = 12, stream: bool = False) -> list[int]:
    body = {"model": SVC, "messages": [{"role": "user", "content": "balance me"}], "max_tokens": 4, "stream": stream}
    with httpx.Client(headers=g.headers(), timeout=20) as client:

        def one(_):
            r = client.post(g.url + "/v1/chat/completions", json=body)
            return r.status_code if not stream or "[DONE]" in r.text else 599

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(n)))


def test_spread_is_within_20_percent_of_even(three):
    g, threads = three
    statuses = _send(g, 300)
    assert statuses.count(200) == 300
    counts = [t.server.requests_completed for t in threads]
    assert sum(counts) == 300
    assert all(80 <= c <= 120 for c in counts), counts


def test_failover_when_an_instance_is_killed_and_recovery(three):
    g, threads = three
    port = threads[0].server.port
    threads[0].kill()
    statuses = _send(g, 60) + _send(g, 30, stream=True)
    assert statuses.count(200) == 90, statuses  # every request retried onto a live instance
    assert g.wait_until(lambda: f"instance 127.0.0.1:{port} failed" in g.logs(), 5)
    ready = httpx.get(g.internal_url + "/readyz").json()["services"][SVC]
    assert ready == "degraded"

    revived = StandInThread("chat", port=port).start()
    try:
        assert g.wait_until(lambda: httpx.get(g.internal_url + "/readyz").json()["services"][SVC] == "running", 10)
        assert _send(g, 60).count(200) == 60
        assert revived.server.requests_completed >= 10  # back in rotation
    finally:
        revived.stop()


def test_all_instances_down_is_503_quickly(three):
    g, threads = three
    for t in threads:
        t.kill()
    start = time.perf_counter()
    r = httpx.post(
        g.url + "/v1/chat/completions",
        headers=g.headers(),
        timeout=20,
        json={"model": SVC, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "backend_unavailable"
    assert time.perf_counter() - start < 3
