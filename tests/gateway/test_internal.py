"""Metrics and per-service readiness live on the internal port; the public API port says only ready or not."""

import socket

import httpx
import pytest

from devtools.standin.testing import StandInThread

from .harness import Gateway

SVC = "u-8105f7322477/test"


@pytest.fixture(scope="module")
def gwi(e2e, tmp_path_factory):
    t = StandInThread("chat").start()
    g = Gateway(tmp_path_factory.mktemp("internal"), {SVC: [f"127.0.0.1:{t.server.port}"]}).start()
    yield g
    g.stop()
    t.stop()


def test_public_port_names_no_services_and_serves_no_metrics(gwi):
    r = httpx.get(gwi.url + "/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True}
    assert httpx.get(gwi.url + "/metrics").status_code == 404
    assert SVC not in r.text


def test_internal_port_has_metrics_and_per_service_readiness(gwi):
    gwi.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "hi"}]})
    m = httpx.get(gwi.internal_url + "/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    assert "modelsvc_requests_total" in m.text and "ms-1d033c426254" in m.text
    r = httpx.get(gwi.internal_url + "/readyz").json()
    assert r["ready"] is True and r["services"][SVC] == "running"
    assert httpx.get(gwi.internal_url + "/v1/models").status_code == 404  # the API is not served there
    assert httpx.post(gwi.internal_url + "/metrics").status_code == 405
    assert f"internal port 127.0.0.1:{gwi.metrics_port}" in gwi.logs()


def test_internal_port_survives_garbage(gwi):
    with socket.create_connection(("127.0.0.1", gwi.metrics_port), timeout=5) as s:
        s.sendall(b"\x00" * 9000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert httpx.get(gwi.internal_url + "/readyz").status_code == 200


@pytest.mark.e2e
def test_metrics_port_zero_turns_it_off(tmp_path):
    t = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}, args=("--metrics-port", "0")).start()
    try:
        assert httpx.get(g.url + "/readyz").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(g.internal_url + "/metrics")
        assert "internal port" not in g.logs()
    finally:
        g.stop()
        t.stop()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.e2e
def test_the_internal_port_stays_on_loopback_when_the_api_listens_everywhere(tmp_path):
    """--host 0.0.0.0 opens the API on every interface; the metrics and per-service readiness must not follow it
    (they name every owner's services). 127.0.0.2 is another address of this host (Linux routes 127/8 to lo): the
    API answers there, the internal port does not, until --metrics-host says so."""
    t = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}, args=("--host", "0.0.0.0")).start()
    try:
        assert httpx.get(f"http://127.0.0.2:{g.port}/healthz").status_code == 200
        assert _reachable("127.0.0.1", g.metrics_port) and not _reachable("127.0.0.2", g.metrics_port)
    finally:
        g.stop()
    g.args = ("--host", "0.0.0.0", "--metrics-host", "0.0.0.0")
    g.start()
    try:
        assert httpx.get(f"http://127.0.0.2:{g.metrics_port}/metrics").status_code == 200
    finally:
        g.stop()
        t.stop()
