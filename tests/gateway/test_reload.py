"""A changed services.yaml is picked up without a restart; an invalid one is refused and the old one keeps serving."""

import asyncio
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


# -- only a file that is done changing is loaded ----------------------------------------------------------------------
def test_a_change_is_read_once_the_file_has_stayed_the_same_for_the_settle_time():
    from gateway.reload import Settle

    s = Settle((1, 100, 7), settle_s=1.0)
    assert not s.observe((1, 100, 7), 0.0)  # unchanged
    assert not s.observe((2, 50, 7), 0.1)  # a writer truncated it and wrote half
    assert not s.observe((2, 50, 7), 0.6)  # half, still: not settled yet
    assert not s.observe((3, 100, 7), 0.9)  # the rest arrived: the clock starts again
    assert not s.observe((3, 100, 7), 1.8)
    assert s.observe((3, 100, 7), 1.95)  # unchanged for 1.05 s: read it
    assert not s.observe((3, 100, 7), 5.0)  # read once
    assert not s.observe(None, 6.0) and not s.observe(None, 9.0)  # gone (mid-rename): nothing to read


def test_a_file_that_changes_while_it_is_read_is_not_taken(tmp_path, monkeypatch):
    from gateway import reload

    path = tmp_path / "services.yaml"
    path.write_text(example_catalog())
    assert reload.read_whole(str(path)) == path.read_bytes()
    real_fstat, calls = os.fstat, []

    def growing(fd):  # the second look finds the file longer: a writer appended during the read
        st = real_fstat(fd)
        calls.append(st)
        if len(calls) == 2:
            return os.stat_result((*st[:6], st.st_size + 10, *st[7:]))
        return st

    monkeypatch.setattr(reload.os, "fstat", growing)
    assert reload.read_whole(str(path)) is None


HALF = example_catalog()[: example_catalog().rindex("  - name:")]  # the file with its last service cut off


async def test_a_half_written_catalog_is_not_loaded_while_it_keeps_changing(tmp_path, caplog):
    """Before, a half-written services.yaml was loaded at the next poll: the services it had not reached yet
    answered 404 until the writer finished. Here the writer is slow (the half file stands for a second, 20
    polls): nothing is loaded until the file has stayed the same for --reload-settle."""
    from modelsvc.catalog import loads

    from .inproc import InProcessGateway

    full = example_catalog()
    half = loads(HALF)  # valid YAML, a valid catalog: only missing a service
    assert len(half.services) == len(loads(full).services) - 1
    async with InProcessGateway(tmp_path, catalog_file=True, reload_poll_s=0.05, reload_settle_s=60) as g:
        names = {s.access_name for s in g.app.ctx.runtime.catalog.services}
        (tmp_path / "services.yaml").write_text(HALF)
        await asyncio.sleep(1.0)
        assert {s.access_name for s in g.app.ctx.runtime.catalog.services} == names  # still the whole catalog
        assert "catalog reloaded" not in caplog.text


async def test_a_settled_change_is_loaded_and_a_catalog_that_drops_services_is_logged_loudly(tmp_path, caplog):
    from .inproc import InProcessGateway

    async with InProcessGateway(tmp_path, catalog_file=True, reload_poll_s=0.05, reload_settle_s=0.2) as g:
        dropped = [s.access_name for s in g.app.ctx.runtime.catalog.services][-1]
        (tmp_path / "services.yaml").write_text(HALF)
        for _ in range(200):
            if dropped not in {s.access_name for s in g.app.ctx.runtime.catalog.services}:
                break
            await asyncio.sleep(0.05)
        assert dropped not in {s.access_name for s in g.app.ctx.runtime.catalog.services}
        errors = [r for r in caplog.records if r.levelname == "ERROR" and "removes 1 service(s)" in r.getMessage()]
        assert errors and dropped in errors[0].getMessage()
