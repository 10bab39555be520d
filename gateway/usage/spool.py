"""The local spool in front of the database: records are appended to a segment file, sealed segments are delivered
to the store and deleted only after the commit.

    <dir>/active-<start>-<n>.jsonl         the segment this process appends to; flock'd while the process lives
    <dir>/sealed-<ns>-<start>-<n>.jsonl    closed segments waiting for delivery, oldest first

<start> names one process start (time, PID and random bits), never the PID alone: in a container the gateway is
always PID 1, and a restarted one must not take the dead one's segment for its own. A segment is created with
O_EXCL (never reopened) and owned through its flock: a process that died (SIGKILL, OOM) leaves its active segment
unlocked, and the next start (and every drain after) seals and delivers every unlocked segment, so a restarted
container (same volume) loses nothing. Several workers share one spool; one delivers at a time (`.drain.lock`),
and delivery is idempotent on request id, so a segment sent twice is still counted once.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import glob
import itertools
import logging
import os
import secrets
import time

from .appendfile import AppendFile, read_lines

log = logging.getLogger("gateway.usage")
SEGMENT_MAX_BYTES = 8 << 20  # a long database outage is spread over segments of this size


def _read_all(path: str, metrics) -> list:
    return list(read_lines(path, metrics))


class Spool:
    def __init__(self, directory: str, metrics, max_buffered: int = 100_000):
        self.dir = directory
        self.metrics = metrics
        self.max_buffered = max_buffered
        os.makedirs(directory, exist_ok=True)
        self.start = f"{time.time_ns():x}-{os.getpid()}-{secrets.token_hex(4)}"  # this process start's name
        self._seq = itertools.count()
        self.active = self._open_active()

    def _open_active(self) -> AppendFile:
        path = os.path.join(self.dir, f"active-{self.start}-{next(self._seq)}.jsonl")
        return AppendFile(path, self.metrics, self.max_buffered, lock=True, exclusive=True)

    def append(self, line: bytes) -> None:
        self.active.append(line)

    @property
    def full(self) -> bool:
        return self.active.full

    def seal(self) -> None:
        """Close the active segment for delivery and start a new one (kept when the disk cannot take a file)."""
        old = self.active
        old.flush()
        if old.size == 0:
            return
        try:
            new = self._open_active()
        except OSError as e:
            log.warning("cannot start a new usage spool segment (%s); appending to the current one", e.strerror)
            return
        new.pending, old.pending = old.pending, collections.deque()
        os.rename(old.path, self._sealed_name())
        old.close()
        self.active = new

    def _sealed_name(self) -> str:  # unique: a rename onto an existing name would replace its records
        return os.path.join(self.dir, f"sealed-{time.time_ns():020d}-{self.start}-{next(self._seq)}.jsonl")

    def adopt_orphans(self) -> int:
        """Seal the active segments of processes that are gone (their flock died with them)."""
        adopted = 0
        for path in glob.glob(os.path.join(self.dir, "active-*.jsonl")):
            if path == self.active.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live worker's segment
            try:
                if os.fstat(fd).st_size == 0:
                    os.unlink(path)
                else:
                    os.rename(path, self._sealed_name())
                    adopted += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        if adopted:
            log.info("usage spool: took over %d segment(s) left by a stopped process", adopted)
        return adopted

    def sealed(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.dir, "sealed-*.jsonl")))

    def backlog_bytes(self) -> int:
        total = self.active.size
        for path in self.sealed():
            try:
                total += os.path.getsize(path)
            except FileNotFoundError:
                pass
        return total

    async def deliver(self, store) -> int:
        """Send every sealed segment to `store`, deleting each after its commit; returns records delivered.
        Raises on a store failure (the segment stays for the next attempt)."""
        lock_fd = os.open(os.path.join(self.dir, ".drain.lock"), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another worker is delivering (ours included)
            delivered = 0
            for path in self.sealed():
                try:  # up to SEGMENT_MAX_BYTES of JSON: parsed off the event loop
                    records = await asyncio.to_thread(_read_all, path, self.metrics)
                except FileNotFoundError:
                    continue
                if records:
                    await store.insert(records)
                os.unlink(path)
                delivered += len(records)
                self.metrics.delivered.inc(len(records))
            return delivered
        finally:
            os.close(lock_fd)

    def close(self) -> None:
        active = self.active
        empty = not active.pending and os.fstat(active.fd).st_size == 0  # the file's size, not what we wrote
        active.close()
        if empty:
            try:
                os.unlink(active.path)
            except FileNotFoundError:
                pass
