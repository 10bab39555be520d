"""A lean keep-alive HTTP/1.1 client on asyncio streams, for forwarding to OpenAI-compatible upstreams.

httpx cost two thirds of the gateway's CPU per forwarded request (docs/benchmarks.md); this does what the hot path
needs and no more: keep-alive connection reuse, chunked bodies, connect and read deadlines, TLS.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

from gateway.backends.deadline import ReadDeadline

_T = TypeVar("_T")
# A chunk-size line (RFC 9112 7.1): hex digits, optional extensions, CRLF (a bare LF accepted, as servers do).
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?\r?\n")
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpFailure(Exception):
    """A failure talking to the upstream. kind: 'timeout' (connect or read), 'connect' (refused), 'io' (anything
    else: reset, malformed response); name is what happened, for the error message."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(name)
        self.kind, self.name = kind, name


class _Response:
    __slots__ = (
        "_bad",
        "_buf",
        "_chunked",
        "_client",
        "_conn",
        "_deadline",
        "_done",
        "_ended",
        "_keep",
        "_length",
        "_trailers",
        "status",
    )

    def __init__(self, client: Http1, conn: _Conn | None, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self._client, self._conn = status, client, conn
        length = headers.get(b"content-length")
        self._length = int(length) if length is not None else None
        self._chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        self._keep = (self._chunked or self._length is not None) and headers.get(b"connection", b"").lower() != b"close"
        self._done = False
        self._deadline: ReadDeadline | None = None  # one timer per response, not an asyncio.timeout per read
        self._buf = bytearray()  # chunked: read but not yet parsed
        self._trailers = self._ended = self._bad = False  # chunked: past the last chunk; past its trailers; malformed

    async def _io(self, aw: Awaitable[_T]) -> _T:
        deadline = self._deadline
        if deadline is None:
            deadline = self._deadline = ReadDeadline()
        deadline.start(self._client.read_timeout)
        try:
            return await aw
        except asyncio.CancelledError:
            if deadline.expired():
                self.aclose()
                raise HttpFailure("timeout", "ReadTimeout") from None
            raise
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.aclose()
            raise HttpFailure("io", type(e).__name__) from None
        finally:
            deadline.stop()

    def _reader(self) -> asyncio.StreamReader:
        if self._conn is None:  # closed already (cut short): nothing more to read
            raise HttpFailure("io", "ConnectionClosed")
        return self._conn[0]

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The body as it arrives, a list of pieces per read (a chunked body: its chunks; several that arrived
        together cost one read and one resumption, not one each). The connection goes back to the pool at the
        end."""
        reader = self._reader()
        try:
            if self._chunked:
                while not self._ended:
                    if self._bad:  # the good chunks before a malformed one went out with the previous batch
                        self.aclose()
                        raise HttpFailure("io", "RemoteProtocolError")
                    data = await self._io(reader.read(65536))
                    if not data:
                        raise HttpFailure("io", "RemoteProtocolError")
                    self._buf += data
                    if got := self._take():
                        yield got
            elif self._length is not None:
                left = self._length
                while left > 0:
                    data = await self._io(reader.read(min(left, 65536)))
                    if not data:
                        raise HttpFailure("io", "RemoteProtocolError")
                    left -= len(data)
                    yield [data]
            else:
                while data := await self._io(reader.read(65536)):
                    yield [data]
        finally:
            if self._deadline is not None:
                self._deadline.close()
        self._done = True
        self._release()

    def _take(self) -> list[bytes]:
        """The chunks complete in what has been read (sets _ended at the last chunk and its trailers). A malformed
        chunk fails the body, but only after the good ones before it were handed on (_bad)."""
        buf, pos = self._buf, 0
        data = bytes(buf)  # one copy; its slices are the pieces (a bytearray's would be copied twice)
        out: list[bytes] = []
        match = _CHUNK_SIZE.match
        while not self._ended:
            if self._trailers:  # after the last chunk: trailer lines, up to the empty one
                i = buf.find(b"\n", pos)
                if i < 0:
                    if len(buf) - pos > 4096:
                        break  # malformed: below
                    del buf[:pos]
                    return out
                self._ended = i == pos or (i == pos + 1 and buf[pos] == 13)  # an empty line
                pos = i + 1
                continue
            m = match(data, pos)
            if m is None:
                if buf.find(b"\n", pos) >= 0 or len(buf) - pos > 4096:
                    break  # malformed: below (no chunk-size line is this long)
                del buf[:pos]
                return out  # the size line is not all here yet
            size = int(m[1], 16)
            start = m.end()
            if size == 0:
                self._trailers = True
                pos = start
                continue
            end = start + size
            if len(buf) < end + 2:
                del buf[:pos]
                return out
            if data[end] != 13 or data[end + 1] != 10:
                break  # malformed: no CRLF after the chunk's data
            out.append(data[start:end])
            pos = end + 2
        else:
            del buf[:pos]
            return out
        if not out:
            self.aclose()
            raise HttpFailure("io", "RemoteProtocolError")
        self._bad = True
        del buf[:pos]
        return out

    async def read(self) -> bytes:
        if self._length is not None and not self._chunked:
            data = await self._io(self._reader().readexactly(self._length)) if self._length else b""
            if self._deadline is not None:
                self._deadline.close()
            self._done = True
            self._release()
            return data
        return b"".join([piece async for batch in self.batches() for piece in batch])

    async def events(self) -> AsyncIterator[list[bytes]]:
        """The body as server-sent events: the values of its `data:` lines, a list per read (one line each; what
        OpenAI-compatible servers send)."""
        rest = b""
        async for batch in self.batches():
            lines = (rest + b"".join(batch)).split(b"\n")
            rest = lines.pop()
            if data := [line[5:].strip() for line in lines if line.startswith(b"data:")]:
                yield data
        if rest.startswith(b"data:"):
            yield [rest[5:].strip()]

    def finish_if_buffered(self) -> None:
        """After the last event: if the body's end (the zero-size chunk) has already arrived, consume it so the
        connection can be kept alive; otherwise aclose() will close it."""
        if not self._chunked or self._conn is None or self._done:
            return
        stream = getattr(self._conn[0], "_buffer", None)
        if not self._ended and stream:
            self._buf += stream
            del stream[:]
            try:
                self._take()
            except HttpFailure:
                return
        if self._ended and not self._buf and not self._bad:
            if self._deadline is not None:
                self._deadline.close()
            self._done = True
            self._release()

    def _release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._keep and len(self._client.idle) < self._client.max_idle:
            self._client.idle.append(conn)
        else:
            conn[1].close()

    def aclose(self) -> None:
        """An unfinished response cannot leave its connection reusable: close it."""
        if self._conn is not None and not self._done:
            self._conn[1].close()
            self._conn = None


class Http1:
    """A lean keep-alive HTTP/1.1 client on asyncio streams: what the forwarding hot path needs and no more.
    (httpx cost two thirds of the gateway's CPU per forwarded request; see docs/benchmarks.md.)"""

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
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connect(self, timeout: float) -> _Conn:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except TimeoutError:
            raise HttpFailure("timeout", "ConnectTimeout") from None
        except OSError:
            raise HttpFailure("connect", "ConnectError") from None

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> _Response:
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        read_timeout = timeout or self.read_timeout
        for attempt in (0, 1):
            conn = None
            while self.idle and conn is None:
                conn = self.idle.pop()
                if conn[0].at_eof() or conn[1].is_closing():
                    conn[1].close()
                    conn = None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(min(timeout or self.connect_timeout, self.connect_timeout))
            reader, writer = conn
            try:
                writer.write(data)
                async with asyncio.timeout(read_timeout):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                writer.close()
                raise HttpFailure("timeout", "ReadTimeout") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                writer.close()
                if reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed meanwhile: once more on a new one
                raise HttpFailure("io", type(e).__name__) from None
            lines = raw.split(b"\r\n")
            try:
                status = int(lines[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                writer.close()
                raise HttpFailure("io", "RemoteProtocolError") from None
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            return _Response(self, conn, status, headers)
        raise HttpFailure("io", "RemoteProtocolError")  # unreachable: the loop returns or raises

    async def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()
