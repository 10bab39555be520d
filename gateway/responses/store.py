"""Stored responses (the Responses API's ``store``, ``previous_response_id``, GET/DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items): keyed by id **and owner** — every read and delete names the owner, so one
owner's key never sees, chains or deletes another's response (it looks exactly like an id that does not exist) —
and kept ``ttl_s`` (OpenAI keeps them 30 days), expired ones purged as new ones are stored.

A stored row: the response object as answered, this request's input items, and ``context``: every item the model
saw before them (the chain of earlier responses: their context, input and output), so a follow-up is one read and
deleting an earlier response does not break the later ones. The instructions are not in it (OpenAI does not carry
``instructions`` over to a follow-up).

Two implementations of one small interface: ``SqliteStore`` (the standard library's sqlite3, a file beside the
local usage log; what ``./dev serve`` and a single gateway use) and ``PostgresResponses`` (the usage database when
one is configured, so every replica sees every response). They share nothing with the usage stores but a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

DEFAULT_TTL_S = 30 * 86400
PURGE_EVERY_S = 60.0


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]

    def history(self) -> list[dict[str, Any]]:
        """What a follow-up continues from: everything before, this request's input, this response's output."""
        return [*self.context, *self.input_items, *self.response.get("output", [])]


class ResponseStore(Protocol):
    async def put(
        self,
        owner: str,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        context: list[dict[str, Any]],
    ) -> None: ...

    async def get(self, owner: str, response_id: str) -> Stored | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...

    async def close(self) -> None: ...


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteStore:
    """One SQLite file; calls run in a worker thread (sqlite3 blocks), one connection behind a lock."""

    def __init__(self, path: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._purged = 0.0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS responses (id TEXT NOT NULL, owner TEXT NOT NULL, created_at REAL NOT "
                "NULL, expires_at REAL NOT NULL, response TEXT NOT NULL, input_items TEXT NOT NULL, context TEXT "
                "NOT NULL, PRIMARY KEY (owner, id))"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at)")
            self._conn = conn
        return self._conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(self._db(), *args)

        return await asyncio.to_thread(locked)

    async def put(
        self, owner: str, response: dict[str, Any], input_items: list[dict[str, Any]], context: list[dict[str, Any]]
    ) -> None:
        now = time.time()
        purge = now - self._purged > PURGE_EVERY_S
        if purge:
            self._purged = now

        def write(db: sqlite3.Connection) -> None:
            if purge:
                db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (response["id"], owner, now, now + self.ttl_s, _dumps(response), _dumps(input_items), _dumps(context)),
            )

        await self._run(write)

    async def get(self, owner: str, response_id: str) -> Stored | None:
        def read(db: sqlite3.Connection) -> tuple | None:
            return db.execute(
                "SELECT response, input_items, context FROM responses WHERE owner = ? AND id = ? AND expires_at > ?",
                (owner, response_id, time.time()),
            ).fetchone()

        row = await self._run(read)
        if row is None:
            return None
        return Stored(orjson.loads(row[0]), orjson.loads(row[1]), orjson.loads(row[2]))

    async def delete(self, owner: str, response_id: str) -> bool:
        def remove(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM responses WHERE owner = ? AND id = ? AND expires_at > ?", (owner, response_id, time.time())
            )
            return cur.rowcount > 0

        return bool(await self._run(remove))

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


_LOCK_ID = 0x6D6F64656C737672  # "modelsvr": the advisory lock the responses schema is created under
_SCHEMA = """
CREATE TABLE IF NOT EXISTS modelsvc_responses (
    id          text NOT NULL,
    owner       text NOT NULL,
    created_at  double precision NOT NULL,
    expires_at  double precision NOT NULL,
    response    jsonb NOT NULL,
    input_items jsonb NOT NULL,
    context     jsonb NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS modelsvc_responses_expiry ON modelsvc_responses (expires_at);
"""


class PostgresResponses:
    """The same in the usage database (its own table and pool; connected on first use, so a gateway whose database
    is down still starts and serves everything else)."""

    def __init__(self, url: str, ttl_s: float = DEFAULT_TTL_S, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.connect_timeout_s = connect_timeout_s
        self._pool: Any = None
        self._purged = 0.0
        self._connecting = asyncio.Lock()

    async def _get_pool(self) -> Any:
        import asyncpg

        async with self._connecting:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=4,
                    timeout=self.connect_timeout_s,
                    command_timeout=30,
                    server_settings={"application_name": "modelsvc-responses"},
                )
                try:
                    async with pool.acquire() as conn:
                        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
                        try:
                            await conn.execute(_SCHEMA)
                        finally:
                            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    async def put(
        self, owner: str, response: dict[str, Any], input_items: list[dict[str, Any]], context: list[dict[str, Any]]
    ) -> None:
        now = time.time()
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            if now - self._purged > PURGE_EVERY_S:
                self._purged = now
                await conn.execute("DELETE FROM modelsvc_responses WHERE expires_at <= $1", now)
            await conn.execute(
                "INSERT INTO modelsvc_responses VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb) "
                "ON CONFLICT (owner, id) DO UPDATE SET response = EXCLUDED.response",
                response["id"],
                owner,
                now,
                now + self.ttl_s,
                _dumps(response),
                _dumps(input_items),
                _dumps(context),
            )

    async def get(self, owner: str, response_id: str) -> Stored | None:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT response::text, input_items::text, context::text FROM modelsvc_responses "
                "WHERE owner = $1 AND id = $2 AND expires_at > $3",
                owner,
                response_id,
                time.time(),
            )
        if row is None:
            return None
        return Stored(orjson.loads(row[0]), orjson.loads(row[1]), orjson.loads(row[2]))

    async def delete(self, owner: str, response_id: str) -> bool:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM modelsvc_responses WHERE owner = $1 AND id = $2 AND expires_at > $3",
                owner,
                response_id,
                time.time(),
            )
        return str(status).endswith(" 1")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()


def make_store(path: str | None, usage_url: str | None, ttl_s: float) -> ResponseStore | None:
    """PostgreSQL when the usage store is one, else the SQLite file at `path`; None when storing is turned off."""
    if usage_url and usage_url.startswith(("postgres://", "postgresql://")):
        return PostgresResponses(usage_url, ttl_s)
    if path:
        return SqliteStore(path, ttl_s)
    return None
