"""The PostgreSQL store on a real server: one migration however many gateways start at once, idempotent delivery,
and a gateway that starts and serves while the database is down."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import asyncpg
import httpx

from devtools.standin.testing import StandInThread
from gateway.usage import Metrics, UsageLog, UsageRecord
from gateway.usage.postgres import SCHEMA_VERSION, migrate

from ..harness import Gateway

SVC = "u-8105f7322477/test"


def _rec(i: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{i}",
        service_id="ms-1d033c426254",
        access_name=SVC,
        key_id="k1",
        endpoint="chat.completions",
        stream=False,
        status="ok",
        prompt_tokens=3,
        completion_tokens=i,
        latency_ms=1.0,
        overhead_ms=0.1,
    )


async def test_replicas_starting_together_migrate_once(postgres):
    postgres.psql("DROP TABLE IF EXISTS usage_records, modelsvc_schema")
    conns = [await asyncpg.connect(postgres.url) for _ in range(6)]
    try:
        found = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert sorted(found) == [0] + [SCHEMA_VERSION] * 5  # the first did the work under the lock, the rest saw it
    assert postgres.psql("SELECT version FROM modelsvc_schema").split() == [str(SCHEMA_VERSION)]


async def test_a_segment_delivered_twice_is_counted_once(postgres, tmp_path):
    postgres.psql("DROP TABLE IF EXISTS usage_records, modelsvc_schema")
    log = UsageLog(None, Metrics(), store_url=postgres.url, spool_dir=str(tmp_path / "spool"))
    await log.start()
    for i in range(5):
        log.record(_rec(i))
    log.spool.seal()
    segment = log.spool.sealed()[0]
    shutil.copy(segment, segment.replace("sealed-", "sealed-0"))  # as if a crash came between commit and delete
    assert len(log.spool.sealed()) == 2
    assert await log.spool.deliver(log.store) == 10  # both sent ...
    assert (
        postgres.psql("SELECT count(*), sum(completion_tokens) FROM usage_records").strip() == "5|10"
    )  # ... kept once
    assert log.spool.sealed() == []
    await log.close()


def _stored_ids(postgres) -> str:
    try:
        return postgres.psql("SELECT request_id FROM usage_records")
    except subprocess.CalledProcessError:
        return ""  # no table yet: the gateway migrates on its first successful connection


def test_gateway_serves_while_the_database_is_down_and_delivers_later(postgres, tmp_path):
    postgres.psql("DROP TABLE IF EXISTS usage_records, modelsvc_schema")
    engine = StandInThread("chat").start()
    postgres.stop()
    g = Gateway(
        tmp_path, {SVC: [engine.url]}, args=("--usage-store", postgres.url, "--usage-spool", str(tmp_path / "spool"))
    )
    try:
        g.start(timeout=60)
        r = g.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200  # billing is delayed, not the caller
        rid = r.headers["x-request-id"]
        u = httpx.get(
            g.url + "/v1/organization/usage/completions", params={"start_time": 0}, headers=g.headers(), timeout=30
        )
        assert u.status_code == 503 and u.json()["error"]["code"] == "usage_unavailable"
        assert "127.0.0.1" not in u.text  # no internal address in the answer
        assert "usage store not reachable at start" in g.logs()
        postgres.start()
        assert g.wait_until(lambda: rid in _stored_ids(postgres), timeout=30)  # migrated, then delivered
    finally:
        g.stop()
        engine.stop()
