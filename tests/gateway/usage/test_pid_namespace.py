"""A container restart, for real: the gateway runs as PID 1 of its own PID namespace (unshare), on a spool volume
and a real PostgreSQL. It is SIGKILLed with records in its active spool segment; the restarted gateway — PID 1
again, so the same PID — must deliver them. Before, it reopened the dead process's segment as its own and deleted
it as empty at SIGTERM: answered requests never reached the table, and no line was logged."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from devtools.standin.testing import StandInThread

from ..harness import Gateway

SVC = "u-8105f7322477/test"


def _unshare() -> tuple[str, ...]:
    # root may create a PID namespace; anyone else needs a user namespace to own it
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    return ("unshare", *user, "--pid", "--fork", "--kill-child")


def _pid_one(g: Gateway) -> int:
    """The gateway's PID outside its namespace (the child unshare forked); inside, it is 1."""
    assert g.proc is not None, "the gateway is not started"
    pid = g.proc.pid
    for _ in range(100):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("unshare has no child")


def _ns_pid(pid: int) -> int:
    """The PID the process has inside its own namespace (the last NSpid of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise RuntimeError("no NSpid")


def _handles(pid: int, sig: int) -> bool:
    """Whether the process catches sig (SigCgt): PID 1 of a namespace ignores a signal it has no handler for, so
    a SIGTERM sent before the gateway installed its handler would be lost."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def engine():
    t = StandInThread("chat").start()
    yield t
    t.stop()


def test_a_gateway_restarted_as_pid_1_delivers_the_records_of_the_one_that_died(tmp_path, postgres, engine):
    spool = tmp_path / "spool"
    args = ("--usage-store", postgres.url, "--usage-spool", str(spool))
    eps = {SVC: [f"127.0.0.1:{engine.server.port}"]}
    postgres.stop()  # records stay in the spool while the database is away
    # A backlog from before (a sealed segment waiting for the database): while it waits, new records stay in the
    # active segment (no new segment per delivery tick), so the dead process's records are in its first one.
    spool.mkdir()
    backlog = spool / "sealed-00000000000000000001-1.jsonl"
    backlog.write_text(
        '{"request_id": "backlog-1", "service_id": "ms-1d033c426254", "access_name": "u-8105f7322477/test", '
        '"key_id": "k-local-demo", "endpoint": "chat.completions", "stream": false, "status": "ok", '
        '"prompt_tokens": 1, "completion_tokens": 1, "latency_ms": 1.0, "overhead_ms": 0.1, "ts": 1.0}\n'
    )
    g = Gateway(tmp_path, eps, args=args, wrap=_unshare()).start()
    first = second = None
    try:
        inner = _pid_one(g)
        assert _ns_pid(inner) == 1  # the gateway is PID 1 of its namespace, as in a container
        first = g.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "one"}]})
        second = g.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "two"}]})
        assert first.status_code == second.status_code == 200
        assert _wait_for(lambda: sum(p.stat().st_size for p in spool.glob("active-*.jsonl")) > 0)
        os.kill(inner, signal.SIGKILL)  # the container is killed (OOM, a crashed node agent, ...)
        g.proc.wait(10)
    finally:
        if g.proc.poll() is None:
            g.proc.kill()
        g._logf.close()

    postgres.start()
    g.start()  # the container restarts: PID 1 again, same volume
    inner = _pid_one(g)
    assert _ns_pid(inner) == 1
    assert _wait_for(lambda: _handles(inner, signal.SIGTERM))
    os.kill(inner, signal.SIGTERM)  # and its pod is deleted: drain, deliver the spool, exit
    assert g.proc.wait(30) == 0, g.logs()[-3000:]
    g._logf.close()
    ids = {first.headers["x-request-id"], second.headers["x-request-id"], "backlog-1"}
    rows = postgres.psql(
        "SELECT request_id FROM usage_records WHERE request_id IN (" + ",".join(f"'{i}'" for i in ids) + ")"
    )
    assert set(rows.split()) == ids, g.logs()[-3000:]
    assert not [p for p in spool.glob("*.jsonl") if p.stat().st_size], "records left behind in the spool"
