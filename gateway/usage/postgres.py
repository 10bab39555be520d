"""The production usage store: one PostgreSQL table keyed by request id.

Delivery is idempotent (`INSERT … ON CONFLICT (request_id) DO NOTHING`): a spool segment sent again after a crash
between commit and delete is kept once. The schema is created once per deploy by whichever gateway starts first,
under a session advisory lock, so replicas starting together never race on DDL.
"""

from __future__ import annotations

import asyncio

import asyncpg

from .record import owner_of

SCHEMA_VERSION = 1
_LOCK_ID = 0x6D6F64656C737663  # "modelsvc": the advisory lock the migration runs under

_MIGRATIONS = {
    1: """
CREATE TABLE usage_records (
    request_id        text PRIMARY KEY,
    ts                double precision NOT NULL,
    ts_s              bigint NOT NULL,
    owner             text NOT NULL,
    service_id        text NOT NULL,
    access_name       text NOT NULL,
    key_id            text NOT NULL,
    endpoint          text NOT NULL,
    stream            boolean NOT NULL,
    status            text NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    images            integer NOT NULL DEFAULT 0,
    latency_ms        double precision NOT NULL,
    overhead_ms       double precision NOT NULL,
    instance          text NOT NULL DEFAULT '',
    error             text NOT NULL DEFAULT '',
    prompt_tokens_estimated boolean NOT NULL DEFAULT false
);
CREATE INDEX usage_records_owner_ts ON usage_records (owner, ts_s);
CREATE INDEX usage_records_service_ts ON usage_records (service_id, ts_s);
""",
}

COLUMNS = (
    "request_id",
    "ts",
    "ts_s",
    "owner",
    "service_id",
    "access_name",
    "key_id",
    "endpoint",
    "stream",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "images",
    "latency_ms",
    "overhead_ms",
    "instance",
    "error",
    "prompt_tokens_estimated",
)
_INSERT = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}) ON CONFLICT (request_id) DO NOTHING"
)


def row(rec: dict) -> tuple:
    ts = float(rec["ts"])
    return (
        str(rec["request_id"]),
        ts,
        int(ts),
        owner_of(rec["access_name"]),
        rec["service_id"],
        rec["access_name"],
        rec["key_id"],
        rec["endpoint"],
        bool(rec["stream"]),
        rec["status"],
        int(rec["prompt_tokens"]),
        int(rec["completion_tokens"]),
        int(rec.get("images") or 0),
        float(rec["latency_ms"]),
        float(rec["overhead_ms"]),
        rec.get("instance") or "",
        rec.get("error") or "",
        bool(rec.get("prompt_tokens_estimated")),
    )


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS modelsvc_schema (version integer NOT NULL)")
        found = await conn.fetchval("SELECT max(version) FROM modelsvc_schema") or 0
        for version in range(found + 1, SCHEMA_VERSION + 1):
            async with conn.transaction():
                await conn.execute(_MIGRATIONS[version])
                await conn.execute("INSERT INTO modelsvc_schema (version) VALUES ($1)", version)
        return found
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


class PostgresStore:
    def __init__(self, url: str, connect_timeout_s: float = 5.0):
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        """Connect (and migrate) on first use, so a gateway starts and serves while the database is down."""
        if self._pool is None:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=4,
                timeout=self.connect_timeout_s,
                command_timeout=30,
                server_settings={"application_name": "modelsvc"},
            )
            try:
                async with pool.acquire() as conn:
                    await migrate(conn)
            except BaseException:
                pool.terminate()
                raise
            self._pool = pool
        return self._pool

    async def insert(self, records: list[dict]) -> None:
        """All of `records` committed (new ones added, already present ones ignored), or an exception."""
        rows = [row(r) for r in records]
        async with (await self.pool()).acquire() as conn:
            async with conn.transaction():
                await conn.executemany(_INSERT, rows)

    async def minute_rows(self, owner: str | None, start: int, end: int) -> list[tuple]:
        """(minute, service_id, access_name, key_id, endpoint, requests, prompt, completion, images) for the
        records in [start, end), of one owner or (None) of all."""
        sql = (
            "SELECT (ts_s / 60) * 60, service_id, access_name, key_id, endpoint, count(*), sum(prompt_tokens), "
            "sum(completion_tokens), sum(images) FROM usage_records WHERE ts_s >= $1 AND ts_s < $2 {} "
            "GROUP BY 1, 2, 3, 4, 5"
        )
        args = (start, end) if owner is None else (start, end, owner)
        async with (await self.pool()).acquire() as conn:
            rows = await conn.fetch(sql.format("" if owner is None else "AND owner = $3"), *args)
        return [(int(r[0]), r[1], r[2], r[3], r[4], *(int(v) for v in tuple(r)[5:])) for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()
