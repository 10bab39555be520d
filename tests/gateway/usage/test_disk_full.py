"""A gateway whose usage disk is full (`/dev/full`: every write fails with ENOSPC) keeps answering, says so in its
metrics, and fails closed (503, nothing started) only once its memory buffer of records is full."""

from __future__ import annotations

import httpx
import pytest

from devtools.standin.testing import StandInThread

from ..harness import Gateway

pytestmark = pytest.mark.e2e  # every test here runs a gateway process writing to /dev/full

SVC = "u-8105f7322477/test"


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_full_disk_keeps_serving_then_fails_closed(tmp_path):
    engine = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [engine.url]}, args=("--usage-log", "/dev/full", "--usage-buffer-max", "3")).start()
    try:
        body = {"model": SVC, "messages": [{"role": "user", "content": "hi"}]}
        assert [g.post("/v1/chat/completions", body).status_code for _ in range(3)] == [200, 200, 200]
        started = engine.server.requests_started
        r = g.post("/v1/chat/completions", body)
        assert r.status_code == 503 and r.json()["error"]["code"] == "usage_unavailable"
        assert engine.server.requests_started == started  # refused before any engine work
        m = httpx.get(g.internal_url + "/metrics").text
        assert _metric(m, 'modelsvc_usage_write_errors_total{reason="ENOSPC"}') >= 3
        assert _metric(m, "modelsvc_usage_buffered_records ") == 3
        assert _metric(m, "modelsvc_usage_refused_requests_total") == 1
        assert "usage records cannot be written to /dev/full" in g.logs()
    finally:
        g.stop()
        engine.stop()
