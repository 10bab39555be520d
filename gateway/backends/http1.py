"""A lean keep-alive HTTP/1.1 client for forwarding to OpenAI-compatible upstreams (docs/decisions/0001, 0008).

httpx cost two thirds of the gateway's CPU per forwarded request (docs/benchmarks.md); this does what the hot path
needs and no more: keep-alive connection reuse, content-length, chunked and read-to-close bodies, connect and read
deadlines, TLS. It is an ``asyncio.Protocol``: what arrives is parsed in the loop's callback (RFC 9112: status line,
headers, chunk framing) and handed to the response's reader in one piece per read, or, through a sink, taken into
the answer right there, so a collected answer wakes its task once at the end instead of once per read.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from gateway.backends.deadline import TIMER_SLACK

# A chunk-size line (RFC 9112 7.1): hex digits, optional extensions, CRLF (a bare LF accepted, as servers do).
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?\r?\n")
_MAX_HEAD = 65536  # status line and headers (asyncio's StreamReader limit, which this client had before)
_MAX_LINE = 4096  # a chunk-size or trailer line
_MAX_EVENT = 16 << 20  # an SSE line longer than this is no event
_PAUSE_AT = 1 << 20  # read but not yet taken: stop reading the socket beyond this (a slow caller of a stream)

Sink = Callable[[list[bytes]], bool]  # takes one read's events; True: that was the last one wanted


class HttpFailure(Exception):
    """A failure talking to the upstream. kind: 'timeout' (connect or read), 'connect' (refused), 'io' (anything
    else: reset, malformed response); name is what happened, for the error message."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(name)
        self.kind, self.name = kind, name


def _protocol_error() -> HttpFailure:
    return HttpFailure("io", "RemoteProtocolError")


class _Conn(asyncio.Protocol):
    """One connection; the response in progress on it (if any) gets what arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: _Response | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the connection's framing is lost
            self.close()
        else:
            self.response.received(data)

    def eof_received(self) -> bool:
        if self.response is not None:
            self.response.ended()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None and self.response._phase != _DONE:  # after a whole body: nothing lost
            self.response.fail(HttpFailure("io", type(exc).__name__ if exc else "ConnectionClosed"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


_HEAD, _BODY, _DONE = 0, 1, 2  # what the response is reading


class _Response:
    """One response, parsed as it arrives. The reader takes it with read(), batches(), events() or sink(); the
    connection goes back to the pool once the body ended and the reader is finished with it (aclose())."""

    __slots__ = (
        "_bad",
        "_buf",
        "_chunked",
        "_client",
        "_conn",
        "_error",
        "_finished",
        "_handle",
        "_keep",
        "_last",
        "_left",
        "_line",
        "_line_size",
        "_loop",
        "_need",
        "_paused",
        "_phase",
        "_queued",
        "_ready",
        "_sink",
        "_stopped",
        "_timeout",
        "_trailers",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(self, client: Http1, conn: _Conn, timeout: float) -> None:
        self._client, self._conn, self._timeout = client, conn, timeout
        self._loop = asyncio.get_running_loop()
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self._phase = _HEAD
        self._buf = bytearray()  # the head, or a chunked body, read but not yet parsed
        self._need = 0  # a chunked body: the bytes _buf must hold before it is parsed again
        self._chunked = self._keep = self._trailers = self._bad = self._stopped = self._finished = False
        self._left = -1  # content-length: bytes of the body still to come; -1: not framed by a length
        # what arrived and the reader has not taken yet: a list per read, with its size in bytes
        self._ready: collections.deque[tuple[list[bytes], int]] = collections.deque()
        self._queued = 0  # bytes in _ready
        self._paused = False  # the socket is not being read until the reader takes some of _ready
        self._line: list[bytes] | None = None  # events: the parts of a line cut between reads; None: not events
        self._line_size = 0
        self._sink: Sink | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._last = self._loop.time()  # when something last arrived (the read deadline counts from there)
        self._handle: asyncio.TimerHandle | None = None

    # -- what arrives (the protocol's callbacks) ----------------------------------------------------------------------
    def received(self, data: bytes) -> None:
        if self._phase == _DONE or self._error is not None:
            if data:  # more than the body: the connection cannot be reused
                self._keep = False
            return
        self._last = self._loop.time()
        try:
            if self._phase == _HEAD:
                data = self._head(data)
                if self._phase == _HEAD:
                    return
                self._wake()
            if self._chunked:
                pieces = self._take(data)
            elif self._left >= 0:
                if len(data) > self._left:  # more than content-length: the connection cannot be reused
                    data, self._keep = data[: self._left], False
                self._left -= len(data)
                pieces = [data] if data else []
                if self._left == 0:
                    self._phase = _DONE
            else:
                pieces = [data] if data else []
            self._deliver(pieces)
            if self._bad:
                raise _protocol_error()
        except Exception as e:  # a malformed response, or the sink refused an event: the reader raises it
            self.fail(e)
            return
        if self._phase == _DONE:
            self._wake()

    def ended(self) -> None:
        """The server closed its side: the end of a body read to the close; for any other, a cut."""
        if self._phase == _BODY and not self._chunked and self._left < 0:
            self._phase = _DONE
            self._keep = False
            if self._line is not None:  # a last event without its line end
                self._deliver([])
            self._wake()
        elif self._phase != _DONE:
            self.fail(_protocol_error())

    def fail(self, error: BaseException) -> None:
        """The response cannot be read on (the reader raises `error` after what arrived before it); the connection
        is closed."""
        if self._error is None:
            self._error = error
            self._conn.close()
        self._wake()

    def _head(self, data: bytes) -> bytes:
        """Take the status line and headers (skipping 1xx interim responses); returns the body's first bytes."""
        buf = self._buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end > _MAX_HEAD or (end < 0 and len(buf) > _MAX_HEAD):
                raise HttpFailure("io", "LimitOverrunError")
            if end < 0:
                return b""
            lines = bytes(buf[:end]).split(b"\r\n")
            rest = bytes(buf[end + 4 :])
            buf.clear()
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
                raise _protocol_error()
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:  # 100 Continue and the like: the real answer follows
                buf += rest
                continue
            break
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise _protocol_error()
            headers[name.lower()] = value.strip()
        self.status, self.headers = status, headers
        length = headers.get(b"content-length")
        self._chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if self._chunked:
            self._keep = length is None  # both: the length is ignored and the connection not reused (RFC 9112 6.3)
        elif length is not None:
            if not length.isdigit():
                raise _protocol_error()
            self._left, self._keep = int(length), True
        elif status in (204, 304):
            self._left, self._keep = 0, True
        self._keep = self._keep and headers.get(b"connection", b"").lower() != b"close" and lines[0][5:8] == b"1.1"
        self._phase = _DONE if self._left == 0 else _BODY
        return rest

    def _take(self, data: bytes) -> list[bytes]:
        """The chunks complete in what has arrived (the phase becomes _DONE after the last chunk's trailers). A
        malformed chunk fails the body, but only after the good ones before it were handed on (_bad). A chunk cut
        between reads waits in _buf, which is parsed again only once it holds what that chunk needs (_need): a
        large chunk in many reads costs each read an append, not a copy of all before it."""
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            data = bytes(buf)
            buf.clear()
        pos = 0
        out: list[bytes] = []
        match = _CHUNK_SIZE.match
        while self._phase != _DONE:
            if self._trailers:  # after the last chunk: trailer lines, up to the empty one
                i = data.find(b"\n", pos)
                if i < 0:
                    if len(data) - pos > _MAX_LINE:
                        break  # malformed: below
                    return self._keep_rest(data, pos, 0, out)
                if data[pos:i] in (b"", b"\r"):  # the empty line
                    self._phase = _DONE
                pos = i + 1
                continue
            m = match(data, pos)
            if m is None:
                if data.find(b"\n", pos) >= 0 or len(data) - pos > _MAX_LINE:
                    break  # malformed: below
                return self._keep_rest(data, pos, 0, out)  # the size line is not all here yet
            size = int(m[1], 16)
            start = m.end()
            if size == 0:
                self._trailers = True
                pos = start
                continue
            end = start + size
            if len(data) < end + 2:
                return self._keep_rest(data, pos, end + 2 - pos, out)
            if data[end : end + 2] != b"\r\n":
                break  # malformed: no CRLF after the chunk's data
            out.append(data[start:end])
            pos = end + 2
            if pos == len(data):  # the read ended with a chunk, the common case: nothing to keep
                self._need = 0
                return out
        else:
            self._keep &= len(data) == pos  # more than the body: the connection cannot be reused
            return out
        if not out:
            raise _protocol_error()
        self._bad = True
        return out

    def _keep_rest(self, data: bytes, pos: int, need: int, out: list[bytes]) -> list[bytes]:
        self._buf += memoryview(data)[pos:]
        self._need = need
        return out

    def _deliver(self, pieces: list[bytes]) -> None:
        if self._line is not None:  # events: the data lines of what arrived
            text = b"".join(pieces) if len(pieces) != 1 else pieces[0]
            if b"\n" not in text and self._phase != _DONE:  # a line still cut: kept in parts, joined once whole
                self._line.append(text)
                self._line_size += len(text)
                if self._line_size > _MAX_EVENT:
                    raise _protocol_error()
                return
            if self._line:
                text = b"".join(self._line) + text
                self._line.clear()
                self._line_size = 0
            if text.startswith(b"data:") and text.endswith(b"\n\n") and text.count(b"\n") == 2:
                pieces = [text[5:-2].strip()]  # one event, one line: what a token's read brings
            else:
                lines = text.split(b"\n")
                rest = lines.pop()
                if self._phase == _DONE:
                    if rest.startswith(b"data:"):  # the body ended without a line end
                        lines.append(rest)
                elif rest:
                    self._line.append(rest)
                    self._line_size = len(rest)
                pieces = [line[5:].strip() for line in lines if line.startswith(b"data:")]
        if not pieces or self._stopped:
            return
        if self._sink is not None:
            if self._sink(pieces):
                self._stopped = True
                self._wake()
            return
        size = sum(map(len, pieces))
        self._ready.append((pieces, size))
        self._queued += size
        if self._queued > _PAUSE_AT and not self._paused and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    # -- the reader's side ------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        """Until something more arrives, the body ends or the read deadline (counted from the last arrival)."""
        self._waiter = self._loop.create_future()
        if self._handle is None:
            self._handle = self._loop.call_at(self._last + self._timeout, self._check_deadline)
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _check_deadline(self) -> None:
        self._handle = None
        if self._waiter is None or self._phase == _DONE:
            return
        due = self._last + self._timeout
        if self._loop.time() + TIMER_SLACK < due:  # something arrived since the timer was set
            self._handle = self._loop.call_at(due, self._check_deadline)
            return
        self.fail(HttpFailure("timeout", "ReadTimeout"))

    def _raise(self) -> None:
        if self._error is not None:
            self._drop()
            raise self._error

    async def head(self) -> None:
        """Until the status line and headers are in (a failure after them is the body's: its reader raises it)."""
        while self._phase == _HEAD:
            self._raise()
            await self._wait()

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The body as it arrives, a list of pieces per read (a chunked body: its chunks)."""
        while True:
            if self._ready:
                batch, size = self._ready.popleft()
                self._queued -= size
                if self._paused and self._queued <= _PAUSE_AT // 2:
                    self._paused = False
                    if self._conn.transport is not None and not self._conn.closed:
                        self._conn.transport.resume_reading()
                yield batch
                continue
            self._raise()
            if self._phase == _DONE:
                self.aclose()
                return
            await self._wait()

    async def read(self) -> bytes:
        return b"".join([piece async for batch in self.batches() for piece in batch])

    def events(self) -> AsyncIterator[list[bytes]]:
        """The body as server-sent events: the values of its `data:` lines, a list per read (one line each: what
        OpenAI-compatible servers send)."""
        self._line = []
        self._redeliver()
        return self.batches()

    async def sink(self, sink: Sink) -> None:
        """The body's events handed to `sink` as they arrive, in the protocol's callback (no task wakes per read);
        returns when the body ended or the sink said it had what it wanted."""
        self._line, self._sink = [], sink
        self._redeliver()
        while not self._stopped:
            self._raise()
            if self._phase == _DONE:
                break
            await self._wait()
        self.aclose()

    def _redeliver(self) -> None:
        """What arrived with the head, read again the way the reader asked for it (a failure in it is the body's,
        as in the callback)."""
        ready, self._ready, self._queued = self._ready, collections.deque(), 0
        try:
            for batch, _ in ready:
                self._deliver(batch)
        except Exception as e:
            self.fail(e)

    def aclose(self) -> None:
        """The reader is done: the connection goes back to the pool if the body ended cleanly, else it is closed
        (an unfinished response cannot leave it reusable; the upstream drops the request with it). Once only: the
        connection may be serving the next request already."""
        if self._finished:
            return
        if self._phase == _DONE and self._error is None and self._keep and not self._conn.closed:
            if len(self._client.idle) < self._client.max_idle:
                self._finish()
                self._client.idle.append(self._conn)
                return
        self._drop()

    def _drop(self) -> None:
        if not self._finished:
            self._finish()
            self._conn.close()

    def _finish(self) -> None:
        self._finished = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._conn.response = None


class Http1:
    """A lean keep-alive HTTP/1.1 client: what the forwarding hot path needs and no more. (httpx cost two thirds
    of the gateway's CPU per forwarded request; see docs/benchmarks.md.)"""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        read_timeout: float,
        connect_timeout: float,
        max_idle: int = 200,
    ):
        u = urlsplit(base_url)
        https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if https else 80)
        self.prefix = u.path.rstrip("/")
        self.ssl = None
        if https:
            try:
                import certifi

                self.ssl = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                self.ssl = ssl.create_default_context()
        self.read_timeout, self.connect_timeout, self.max_idle = read_timeout, connect_timeout, max_idle
        self._head = f"host: {u.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[_Conn] = []

    async def _connect(self, timeout: float) -> _Conn:
        try:
            async with asyncio.timeout(timeout):
                loop = asyncio.get_running_loop()
                _, conn = await loop.create_connection(_Conn, self.host or "", self.port, ssl=self.ssl)
                return conn
        except TimeoutError:
            raise HttpFailure("timeout", "ConnectTimeout") from None
        except OSError:
            raise HttpFailure("connect", "ConnectError") from None

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> _Response:
        """Send the request and wait for the response's head (timeout: for that and for each later wait, default
        the client's read_timeout); the body is then read from the response."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        read_timeout = timeout or self.read_timeout
        for attempt in (0, 1):
            conn = None
            while self.idle and conn is None:
                conn = self.idle.pop()
                if conn.closed or conn.transport is None or conn.transport.is_closing():
                    conn.close()
                    conn = None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(min(timeout or self.connect_timeout, self.connect_timeout))
            r = conn.response = _Response(self, conn, read_timeout)
            try:
                assert conn.transport is not None
                conn.transport.write(data)
                await r.head()
            except HttpFailure as e:
                r.aclose()
                if e.kind == "io" and reused and attempt == 0 and not r._buf:
                    continue  # a kept-alive connection the server had closed meanwhile: once more on a new one
                raise
            except BaseException:
                r.aclose()
                raise
            return r
        raise _protocol_error()  # unreachable: the loop returns or raises

    async def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
