"""Stored responses, keyed by id and owner, with a retention bound: the embedded SQLite store and the PostgreSQL one
(a real server), the same behaviour."""

import asyncio
import time

import pytest

from devtools.postgres_server import PostgresServer
from gateway.responses.store import PostgresResponses, SqliteStore, make_store

RESPONSE = {"id": "resp_1", "object": "response", "output": [{"type": "message", "content": [{"text": "hi"}]}]}
INPUT = [{"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]
CONTEXT = [{"id": "msg_0", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "before"}]}]


@pytest.fixture(scope="module")
def postgres(e2e):
    pg = PostgresServer()
    yield pg
    pg.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(str(tmp_path / "responses.sqlite3"), ttl_s=3600)
    else:
        pg = request.getfixturevalue("postgres")
        s = PostgresResponses(pg.url, ttl_s=3600)
    yield s
    await s.close()


async def test_kept_per_owner(store):
    await store.put("alice", RESPONSE, INPUT, CONTEXT)
    got = await store.get("alice", "resp_1")
    assert got is not None and got.response == RESPONSE and got.input_items == INPUT
    assert got.history() == [*CONTEXT, *INPUT, *RESPONSE["output"]]
    assert await store.get("bob", "resp_1") is None  # another owner: as if it did not exist
    assert not await store.delete("bob", "resp_1")
    assert await store.get("alice", "resp_1") is not None
    # the same id under another owner is another response
    await store.put("bob", {**RESPONSE, "output": []}, [], [])
    assert (await store.get("alice", "resp_1")).response == RESPONSE
    assert await store.delete("alice", "resp_1")
    assert await store.get("alice", "resp_1") is None
    assert (await store.get("bob", "resp_1")).response["output"] == []


async def test_expired_responses_are_gone(store):
    store.ttl_s = 0.2
    await store.put("alice", {**RESPONSE, "id": "resp_old"}, INPUT, [])
    assert await store.get("alice", "resp_old") is not None
    await asyncio.sleep(0.3)
    assert await store.get("alice", "resp_old") is None
    assert not await store.delete("alice", "resp_old")


async def test_concurrent_writes(store):
    await asyncio.gather(*(store.put("alice", {**RESPONSE, "id": f"resp_{i}"}, INPUT, []) for i in range(20)))
    got = await asyncio.gather(*(store.get("alice", f"resp_{i}") for i in range(20)))
    assert all(g is not None for g in got)


def test_which_store(tmp_path):
    assert isinstance(make_store(str(tmp_path / "r.db"), None, 10), SqliteStore)
    assert isinstance(make_store(str(tmp_path / "r.db"), "postgresql://x/y", 10), PostgresResponses)
    assert make_store(None, None, 10) is None


async def test_a_database_that_is_down_fails_the_call_not_the_gateway():
    s = PostgresResponses("postgresql://postgres@127.0.0.1:1/none", ttl_s=10, connect_timeout_s=0.5)
    t = time.monotonic()
    with pytest.raises(OSError):
        await s.get("alice", "resp_1")
    assert time.monotonic() - t < 5
    await s.close()
