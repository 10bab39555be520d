"""A changed services.yaml is picked up without a restart; an invalid one is refused and the old one keeps serving."""

import os
import signal

import httpx
import pytest

from devtools.standin.testing import StandInThread

from .harness import Gateway, example_catalog

SVC = "u-8105f7322477/test"


@pytest.fixture
def gw1(e2e, tmp_path):
    t = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}).start()
    yield g, t
    g.stop()
    t.stop()


def _names(g):
    return [m["id"] for m in httpx.get(g.url + "/v1/models", headers=g.headers()).json()["data"]]


def test_file_change_is_picked_up_and_invalid_file_refused(gw1):
    g, t = gw1
    assert _names(g) == [SVC, "u-8105f7322477/support-bot"]
    # an in-flight stream survives the reload
    t.server.token_delay = 0.02
    stream = g.stream_in_background(
        {"model": SVC, "max_tokens": 40, "messages": [{"role": "user", "content": "a long answer please"}]}
    )
    text = example_catalog().replace("access_name: u-8105f7322477/support-bot", "access_name: u-8105f7322477/helper")
    g.config.write_text(text)
    assert g.wait_until(lambda: "u-8105f7322477/helper" in _names(g), 10)
    status, body = stream.join(20)
    t.server.token_delay = 0.0
    assert status == 200 and body.rstrip().endswith("data: [DONE]") and '"error"' not in body

    g.config.write_text(text.replace("  replicas: 2\n", "  replicas: 0\n"))
    assert g.wait_until(lambda: "catalog reload refused" in g.logs(), 10)
    assert "services.yaml:9:13: 'replicas' is 0, must be >= 1" in g.logs()
    assert "u-8105f7322477/helper" in _names(g)  # still the last valid version
    r = g.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "still here"}]})
    assert r.status_code == 200


@pytest.mark.e2e
def test_sighup_reloads(tmp_path):
    t = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}, args=("--reload-poll", "0")).start()
    try:
        g.config.write_text(
            example_catalog()
            .replace("name: Test\n", "name: Test\n    description: renamed\n")
            .replace("u-8105f7322477/support-bot", "u-8105f7322477/bot2")
        )
        assert "u-8105f7322477/bot2" not in _names(g)  # no polling: not yet
        os.kill(g.proc.pid, signal.SIGHUP)
        assert g.wait_until(lambda: "u-8105f7322477/bot2" in _names(g), 10)
    finally:
        g.stop()
        t.stop()


def test_the_watcher_survives_undecodable_and_deeply_nested_files(gw1):
    g, _ = gw1
    text = example_catalog()
    g.config.write_bytes(text.replace("  replicas: 2\n", "  replicas: 2  # caf\xe9\n").encode("latin-1"))
    assert g.wait_until(lambda: "not UTF-8" in g.logs(), 10), g.logs()[-2000:]
    assert "services.yaml:9:21: not UTF-8 (byte 0xe9)" in g.logs()
    g.config.write_text(text + "extra: " + "[" * 5000 + "]" * 5000 + "\n")
    assert g.wait_until(lambda: "nested too deeply" in g.logs(), 10), g.logs()[-2000:]
    assert SVC in _names(g)  # still the last valid version
    g.config.write_text(text.replace("access_name: u-8105f7322477/support-bot", "access_name: u-8105f7322477/later"))
    assert g.wait_until(lambda: "u-8105f7322477/later" in _names(g), 10), "the watcher stopped watching"
