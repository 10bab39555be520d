"""Where usage records go: `UsageLog.record()` is called once per request that reached an engine.

* Local default (no database server): a JSON-lines file (`--usage-log`), queried through an SQLite index beside it
  (index.py) that reads only what was appended since the previous query.
* Production (`--usage-store postgresql://…`): a local spool (`--usage-spool`, a volume) drained to PostgreSQL
  in the background; nothing is deleted from the spool before the database committed it.

`record()` is synchronous and never raises for a storage problem: the request is answered either way. Both paths
answer the same queries (`minute_rows`), which the usage API and the CLI export aggregate in one place (query.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import sqlite3
import time

import orjson

from .appendfile import AppendFile, read_lines
from .index import UsageIndex
from .postgres import PostgresStore
from .record import Metrics, UsageRecord, owner_of
from .spool import SEGMENT_MAX_BYTES, Spool

log = logging.getLogger("gateway.usage")
ORPHAN_SCAN_S = 5.0


class UsageLog:
    def __init__(
        self,
        path: str | None,
        metrics: Metrics,
        *,
        store_url: str | None = None,
        spool_dir: str | None = None,
        max_buffered: int = 100_000,
        flush_interval_s: float = 0.2,
    ):
        self.metrics = metrics
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.store: PostgresStore | None = None
        self.spool: Spool | None = None
        self.file: AppendFile | None = None
        if store_url:
            self.store = PostgresStore(store_url)
            self.spool = Spool(spool_dir or "var/usage-spool", metrics, max_buffered)
        elif path:
            self.file = AppendFile(path, metrics, max_buffered)
        self._task: asyncio.Task | None = None

    # -- the request path -------------------------------------------------------------------------------------------
    def record(self, rec: UsageRecord) -> None:
        line = orjson.dumps(rec) + b"\n"  # orjson serialises dataclasses natively
        if self.spool is not None:
            self.spool.append(line)
        elif self.file is not None:
            self.file.append(line)
        self.metrics.observe(rec)

    @property
    def full(self) -> bool:
        """Fail closed: so many records wait in memory (disk full) that no more work may be accepted."""
        target = self.spool.active if self.spool is not None else self.file
        return target is not None and target.full

    # -- background delivery ----------------------------------------------------------------------------------------
    def _drained(self) -> tuple[Spool, PostgresStore]:
        """The spool and the database it drains to: both or neither (--usage-store)."""
        if self.spool is None or self.store is None:
            raise RuntimeError("usage spool delivery without --usage-store")
        return self.spool, self.store

    async def start(self) -> None:
        if self.spool is not None:
            spool, store = self._drained()
            spool.adopt_orphans()
            try:  # connect and migrate the schema now; a database that is down only delays delivery
                await asyncio.wait_for(store.pool(), store.connect_timeout_s + 1)
            except Exception as e:
                log.error(
                    "usage store not reachable at start (%s: %s); serving, records wait in the spool %s",
                    type(e).__name__,
                    e,
                    spool.dir,
                )
            self._task = asyncio.create_task(self._deliver_loop())
        elif self.file is not None:
            self._task = asyncio.create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.file is not None and self.file.pending:  # None once closed
                self.file.flush()

    async def _deliver_loop(self) -> None:
        spool, _ = self._drained()
        delay, failing, last_scan = self.flush_interval_s, False, time.monotonic()
        while True:
            await asyncio.sleep(delay)
            if time.monotonic() - last_scan > ORPHAN_SCAN_S:
                spool.adopt_orphans()
                last_scan = time.monotonic()
            try:
                await self._deliver_once()
            except Exception as e:
                self.metrics.store_errors.inc()
                if not failing:
                    log.error(
                        "usage store unavailable (%s: %s); records wait in the spool %s", type(e).__name__, e, spool.dir
                    )
                failing, delay = True, min(max(delay * 2, 0.5), 5.0)
            else:
                if failing:
                    log.info("usage store reachable again; spool delivered")
                failing, delay = False, self.flush_interval_s
            self.metrics.spooled.set(spool.backlog_bytes())

    async def _deliver_once(self) -> int:
        spool, store = self._drained()
        spool.active.flush()
        # While a backlog waits (database down) the active segment grows instead of making many small files.
        if not spool.sealed() or spool.active.size >= SEGMENT_MAX_BYTES:
            spool.seal()
        if not spool.sealed():
            return 0
        return await spool.deliver(store)

    async def close(self, timeout_s: float = 5.0) -> None:
        """At shutdown: deliver what is spooled (bounded), then close. What is left stays in the spool for the
        next process on the same volume."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.spool is not None:
            spool, store = self._drained()
            try:
                # Seal whatever the active segment holds: _deliver_once keeps appending to it while older segments
                # wait, and a stopped loop may have left one (a pod being deleted must not keep records behind).
                spool.seal()
                await asyncio.wait_for(self._deliver_once(), timeout_s)
            except Exception as e:
                log.error(
                    "usage records left in the spool %s at shutdown (%s: %s); the next gateway on this "
                    "volume delivers them",
                    spool.dir,
                    type(e).__name__,
                    e,
                )
            spool.close()
            await store.close()
        elif self.file is not None:
            self.file.close()
            self.file = None

    # -- queries ----------------------------------------------------------------------------------------------------
    async def minute_rows(self, owner: str | None, start: int, end: int) -> list[tuple]:
        """(minute, service_id, access_name, key_id, endpoint, requests, prompt_tokens, completion_tokens,
        images) per minute and group, for records with start <= ts < end (of `owner`, or all with None)."""
        if self.store is not None:
            return await self.store.minute_rows(owner, start, end)
        if not self.path:
            return []
        return await asyncio.to_thread(indexed_minute_rows, self.path, owner, start, end, self.metrics)


def indexed_minute_rows(path: str, owner: str | None, start: int, end: int, metrics=None) -> list[tuple]:
    """The local store's query, through its index; a scan of the file when the index cannot be used (a read-only
    directory, a damaged index file: it is only a cache of the log)."""
    try:
        return UsageIndex(path, metrics).minute_rows(owner, start, end)
    except sqlite3.Error as e:
        log.warning("usage index beside %s unusable (%s): scanning the log", path, e)
        return scan_minute_rows(path, owner, start, end, metrics)


def scan_minute_rows(path: str, owner: str | None, start: int, end: int, metrics=None) -> list[tuple]:
    """The local store's query: the same rows PostgresStore.minute_rows computes in SQL."""
    if not os.path.exists(path):
        return []
    groups: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    seen: set[str] = set()
    for r in read_lines(path, metrics):
        ts = int(float(r["ts"]))
        if not start <= ts < end or (owner is not None and owner_of(r["access_name"]) != owner):
            continue
        if r["request_id"] in seen:  # a line written whole after a fragment that happened to parse
            continue
        seen.add(r["request_id"])
        g = groups[(ts // 60 * 60, r["service_id"], r["access_name"], r["key_id"], r["endpoint"])]
        g[0] += 1
        g[1] += int(r["prompt_tokens"])
        g[2] += int(r["completion_tokens"])
        g[3] += int(r.get("images") or 0)
    return [(*k, *v) for k, v in groups.items()]
