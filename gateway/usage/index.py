"""The local usage store's index: SQLite (the standard library's) beside the JSON-lines log, so a usage query reads
only the records appended since the previous one and answers from an index instead of scanning every record.

The JSON-lines file stays the record of truth: the request path appends one line with one `write()` (what makes a
SIGKILL lose nothing, appendfile.py), and nothing on that path touches SQLite. A query first brings the index up to
date from the file — the complete lines after the offset it recorded, in one transaction with the new offset, so a
crash mid-way repeats the work instead of losing or doubling it (records are keyed by request id) — then runs the
same SQL as PostgresStore.minute_rows. A log that was replaced or truncated (another inode, or shorter than the
offset) is indexed again from its start. Several processes may share the file and the index: the catch-up runs in
an IMMEDIATE transaction (one writer at a time; SQLite's own lock).

    <log>.index.sqlite
        usage_records (request_id PRIMARY KEY, ts_s, owner, service_id, access_name, key_id, endpoint,
                       prompt_tokens, completion_tokens, images), indexed by (owner, ts_s) and (ts_s)
        indexed       (inode, offset): how much of which file it holds
"""

from __future__ import annotations

import logging
import os
import sqlite3

import orjson

from .record import owner_of

log = logging.getLogger("gateway.usage")
READ_BLOCK = 4 << 20  # bytes of the log parsed per step of a catch-up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_records (
    request_id TEXT PRIMARY KEY,
    ts_s INTEGER NOT NULL,
    owner TEXT NOT NULL,
    service_id TEXT NOT NULL,
    access_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    images INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_records_owner_ts ON usage_records (owner, ts_s);
CREATE INDEX IF NOT EXISTS usage_records_ts ON usage_records (ts_s);
CREATE TABLE IF NOT EXISTS indexed (
    id INTEGER PRIMARY KEY CHECK (id = 1), inode INTEGER NOT NULL, offset INTEGER NOT NULL
);
"""
_QUERY = (
    "SELECT (ts_s / 60) * 60, service_id, access_name, key_id, endpoint, count(*), sum(prompt_tokens), "
    "sum(completion_tokens), sum(images) FROM usage_records {} GROUP BY 1, 2, 3, 4, 5"
)
_BY_OWNER = "WHERE owner = ? AND ts_s >= ? AND ts_s < ?"
_ALL = "WHERE ts_s >= ? AND ts_s < ?"


def _row(rec: dict) -> tuple:
    return (
        str(rec["request_id"]),
        int(float(rec["ts"])),
        owner_of(rec["access_name"]),
        rec["service_id"],
        rec["access_name"],
        rec["key_id"],
        rec["endpoint"],
        int(rec["prompt_tokens"]),
        int(rec["completion_tokens"]),
        int(rec.get("images") or 0),
    )


class UsageIndex:
    def __init__(self, log_path: str, metrics=None):
        self.log_path = log_path
        self.path = log_path + ".index.sqlite"
        self.metrics = metrics
        self.lines_read = 0  # lines of the log parsed by the last catch-up

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a cache of the log: a lost commit is read again from the log
        db.executescript(_SCHEMA)
        return db

    def minute_rows(self, owner: str | None, start: int, end: int) -> list[tuple]:
        """(minute, service_id, access_name, key_id, endpoint, requests, prompt, completion, images) for the records
        in [start, end), of one owner or (None) of all: what PostgresStore.minute_rows answers."""
        db = self._connect()
        try:
            self.catch_up(db)
            if owner is None:
                return db.execute(_QUERY.format(_ALL), (start, end)).fetchall()
            return db.execute(_QUERY.format(_BY_OWNER), (owner, start, end)).fetchall()
        finally:
            db.close()

    def plan(self, owner: str | None) -> str:
        """SQLite's plan for the query (tests check that it searches an index rather than scanning)."""
        db = self._connect()
        try:
            sql, args = (_QUERY.format(_ALL), (0, 1)) if owner is None else (_QUERY.format(_BY_OWNER), (owner, 0, 1))
            return " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, args))
        finally:
            db.close()

    def catch_up(self, db: sqlite3.Connection) -> int:
        """Index the complete lines appended to the log since the last catch-up; returns how many were read."""
        self.lines_read = 0
        try:
            f = open(self.log_path, "rb")
        except FileNotFoundError:
            return 0
        with f:
            st = os.fstat(f.fileno())
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT inode, offset FROM indexed WHERE id = 1").fetchone()
                inode, offset = found if found else (st.st_ino, 0)
                if inode != st.st_ino or offset > st.st_size:  # replaced or truncated: index it again
                    log.info("usage log %s was replaced; indexing it again", self.log_path)
                    db.execute("DELETE FROM usage_records")
                    inode, offset = st.st_ino, 0
                f.seek(offset)
                while True:
                    block = f.read(READ_BLOCK)
                    end = block.rfind(b"\n") + 1
                    if not end:  # nothing more, or a line still being written: left for the next catch-up
                        break
                    db.executemany(
                        "INSERT OR IGNORE INTO usage_records VALUES (?,?,?,?,?,?,?,?,?,?)", self._rows(block[:end])
                    )
                    offset += end
                    f.seek(offset)
                    if end < len(block) and len(block) < READ_BLOCK:
                        break
                db.execute("INSERT OR REPLACE INTO indexed (id, inode, offset) VALUES (1, ?, ?)", (inode, offset))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.lines_read

    def _rows(self, block: bytes):
        for raw in block.split(b"\n"):
            raw = raw.strip()
            if not raw:
                continue
            self.lines_read += 1
            try:
                yield _row(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                if self.metrics is not None:  # a fragment a full disk left (appendfile.py): the record is whole later
                    self.metrics.corrupt.inc()
                log.warning("skipped an unreadable line in %s (a write torn by a full disk)", self.log_path)
