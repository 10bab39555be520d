"""Appending usage lines to a local file so that a full disk never fails a request and never loses a record.

Policy (docs/reliability.md, "usage log on a full disk"): every line is one `write()` to a file opened with
O_APPEND, so the kernel holds it once the call returns (a SIGKILL right after loses nothing). A write that fails
(ENOSPC, EDQUOT, EIO, EFBIG) or is short keeps the line in memory and is retried, in order, before the next line
and on every tick; the request that produced it is answered normally and the failure shows in the metrics
(`modelsvc_usage_write_errors_total`, `modelsvc_usage_buffered_records`). A short write leaves a fragment: the
retry starts on a fresh line, so the fragment is a line of its own that readers skip (and count) while the record
is written whole exactly once. Only when `max_buffered` lines wait does the gateway fail closed: `full` turns true
and new model requests get 503 until the disk takes the backlog.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os

import orjson

log = logging.getLogger("gateway.usage")


class AppendFile:
    def __init__(self, path: str, metrics, max_buffered: int = 100_000, lock: bool = False, exclusive: bool = False):
        self.path = path
        self.metrics = metrics
        self.max_buffered = max_buffered
        self.pending: collections.deque[bytes] = collections.deque()
        self.size = 0  # bytes this object wrote whole
        self._torn = False  # a short write left a fragment: the next line starts with "\n"
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # exclusive: a new file or an error, never another process's (a spool segment)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_EXCL if exclusive else 0), 0o640)
        if lock:  # a spool segment: held by this process while it lives, so another can tell it is orphaned
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @property
    def full(self) -> bool:
        return len(self.pending) >= self.max_buffered

    def append(self, line: bytes) -> None:
        """`line` ends with b"\\n". Never raises for a disk problem."""
        self.pending.append(line)
        self.flush()

    def flush(self) -> bool:
        """Write what waits, in order; True when nothing is left in memory."""
        while self.pending:
            line = self.pending[0]
            data = b"\n" + line if self._torn else line
            try:
                n = os.write(self.fd, data)
            except OSError as e:
                self._failed(str(e.errno) if e.errno is None else errno.errorcode.get(e.errno, str(e.errno)), e)
                return False
            if n != len(data):
                self._torn = True
                self._failed("short_write", None)
                return False
            self._torn = False
            self.size += n
            self.pending.popleft()
        self.metrics.buffered.set(0)
        return True

    def _failed(self, reason: str, e: OSError | None) -> None:
        self.metrics.write_errors.labels(reason).inc()
        self.metrics.buffered.set(len(self.pending))
        if len(self.pending) == 1 or self.full:  # once per episode, and when the gateway starts refusing
            log.error(
                "usage records cannot be written to %s (%s): %d kept in memory%s",
                self.path,
                e.strerror if e else "short write",
                len(self.pending),
                "; refusing new requests until the disk takes them" if self.full else "",
            )

    def close(self) -> None:
        self.flush()
        if self.pending:
            log.error("%d usage records could not be written to %s before exit", len(self.pending), self.path)
        try:
            os.fsync(self.fd)
        except OSError:
            pass  # a character device (tests use /dev/full) or a disk already failing: nothing more to do
        os.close(self.fd)


def read_lines(path: str, metrics=None):
    """Parsed records of a usage file, skipping fragments a full disk left (see AppendFile)."""
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict) or "request_id" not in rec:
                if metrics is not None:
                    metrics.corrupt.inc()
                log.warning("skipped an unreadable line in %s (a write torn by a full disk)", path)
                continue
            yield rec
