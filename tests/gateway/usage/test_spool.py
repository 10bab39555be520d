"""The spool's hand-over between processes, with real processes and real flocks: a live worker's segment is never
taken, a dead one's (SIGKILL) is sealed for delivery with every record it holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.usage.appendfile import read_lines
from gateway.usage.record import Metrics
from gateway.usage.spool import Spool

ROOT = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent("""
    import sys
    from gateway.usage.record import Metrics
    from gateway.usage.spool import Spool
    s = Spool(sys.argv[1], Metrics())
    for i in range(50):
        s.append(b'{"request_id": "w%d"}\\n' % i)
    print("written", flush=True)
    sys.stdin.read()  # stay alive (holding the segment's flock) until told to go
""")


@pytest.mark.e2e
def test_live_segments_stay_and_dead_ones_are_adopted(tmp_path):
    spool_dir = str(tmp_path / "spool")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, spool_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "written"
        mine = Spool(spool_dir, Metrics())
        assert mine.adopt_orphans() == 0 and mine.sealed() == []  # the writer is alive: its segment is its own
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        assert mine.adopt_orphans() == 1
        (segment,) = mine.sealed()
        assert [r["request_id"] for r in read_lines(segment)] == [f"w{i}" for i in range(50)]
        mine.close()
    finally:
        if writer.poll() is None:
            writer.kill()


class _Store:
    """Records what it was given; the database itself is tested in test_postgres.py."""

    def __init__(self):
        self.ids: list[str] = []

    async def insert(self, records):
        self.ids += [r["request_id"] for r in records]

    async def close(self):
        pass


async def test_shutdown_delivers_the_active_segment_even_while_an_older_one_waits(tmp_path):
    """A sealed segment still waiting (the loop was stopped mid-delivery, or the database was down) must not keep the
    active segment from being sealed at shutdown: a deleted pod would take those records with it."""
    from gateway.usage.sink import UsageLog

    log = UsageLog(None, Metrics(), store_url="postgresql://unused", spool_dir=str(tmp_path / "spool"))
    log.store = _Store()
    log.spool.append(b'{"request_id": "old"}\n')
    log.spool.seal()  # waiting for delivery
    log.spool.append(b'{"request_id": "new"}\n')  # appended after the seal, before shutdown
    await log.close()
    assert sorted(log.store.ids) == ["new", "old"]
    assert not [p for p in (tmp_path / "spool").glob("*.jsonl") if p.stat().st_size]


RESTARTED = textwrap.dedent("""
    import asyncio, json, os, sys
    os.getpid = lambda: 1  # a container's gateway is always PID 1
    from gateway.usage.record import Metrics
    from gateway.usage.sink import UsageLog

    class Store:
        ids = []
        connect_timeout_s = 1.0
        async def pool(self):
            return None
        async def insert(self, records):
            self.ids += [r["request_id"] for r in records]
        async def close(self):
            pass

    async def main():
        log = UsageLog(None, Metrics(), store_url="postgresql://unused", spool_dir=sys.argv[1])
        log.store = Store()
        await log.start()
        if sys.argv[2] == "write":
            for i in range(20):
                log.spool.append(b'{"request_id": "r%d"}\\n' % i)
            print("written", flush=True)
            await asyncio.sleep(3600)  # SIGKILLed here, its records in its active segment
        await log.close()  # SIGTERM: deliver what the spool holds
        print(json.dumps(sorted(Store.ids)), flush=True)

    asyncio.run(main())
""")


@pytest.mark.e2e
def test_a_restarted_container_with_the_same_pid_loses_nothing(tmp_path):
    """In a container the gateway is always PID 1: segment names by PID alone made the restarted process reopen
    the dead one's active segment as its own, skip adopting it, and delete it as empty at SIGTERM. Simulated here by
    two processes that both see PID 1 (tests/gateway/usage/test_pid_namespace.py does it with a real PID
    namespace and PostgreSQL)."""
    spool_dir = str(tmp_path / "spool")
    first = subprocess.Popen(
        [sys.executable, "-c", RESTARTED, spool_dir, "write"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert first.stdout.readline().strip() == "written"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = subprocess.run(
        [sys.executable, "-c", RESTARTED, spool_dir, "deliver"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    delivered = second.stdout.strip().splitlines()[-1] if second.stdout.strip() else second.stderr
    assert delivered == json.dumps(sorted(f"r{i}" for i in range(20))), delivered


def test_segment_names_are_unique_per_process_start(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getpid", lambda: 1)
    a, b = Spool(str(tmp_path), Metrics()), Spool(str(tmp_path), Metrics())
    assert a.active.path != b.active.path
    a.append(b'{"request_id": "x"}\n')
    a.seal()
    b.append(b'{"request_id": "y"}\n')
    b.seal()
    assert len(a.sealed()) == 2  # neither sealed segment replaced the other
    a.close()
    b.close()
