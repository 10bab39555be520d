"""gRPC calls over cleartext HTTP/2 (h2c with prior knowledge: what ``grpc.insecure_channel`` speaks), for the
Triton client.

Why not ``grpc.aio``: every message it reads crosses from grpc core's poller thread to the event loop and through
its Cython call machinery. Measured with py-spy and the paired bench (docs/benchmarks.md, decision 0007), that was
57% of the gateway's CPU on the Triton path: ~0.08 ms per streamed message and ~0.5 ms per call on top, more than
everything else the gateway does. Here a message costs one frame parse and one protobuf parse on the event loop.

What the wire carries is gRPC's HTTP/2 mapping (grpc/grpc doc/PROTOCOL-HTTP2.md) over RFC 9113, client side only:

* One connection per channel, opened on the first call (``connect_timeout_s``; a failed connect fails calls with
  UNAVAILABLE for ``_BACKOFF_S`` without retrying, as grpc's channel does in TRANSIENT_FAILURE), replaced once the
  server sends GOAWAY, the connection is lost or stream ids run out. Calls beyond the server's
  SETTINGS_MAX_CONCURRENT_STREAMS wait for a slot.
* A call: HEADERS (``:method POST``, ``:scheme http``, ``:path``, ``:authority``, ``content-type application/grpc``,
  ``te trailers``, ``grpc-timeout``) and the request as one length-prefixed message with END_STREAM, split into
  frames of the server's SETTINGS_MAX_FRAME_SIZE and sent as its flow-control windows allow.
* Responses: messages as they arrive (uncompressed: we offer only ``identity``), then trailers: ``grpc-status`` and
  the percent-decoded ``grpc-message``. A non-200 ``:status`` maps to a status as the spec's HTTP table says;
  RST_STREAM from the server maps as the spec's error-code table says ("Received RST_STREAM with error code N").
* Our receive windows are large and credited as soon as data is read (messages are parsed at once, so nothing is
  held back from the reader); header blocks (CONTINUATION included) always go through the HPACK decoder (the
  ``hpack`` package), even for streams already gone, so its dynamic table stays in step with the server's. Request
  headers are encoded without indexing, so no encoder state.
* Deadlines: the call's ``timeout`` is sent as ``grpc-timeout`` and enforced here too (DEADLINE_EXCEEDED, the stream
  reset with CANCEL). ``cancel()``, or cancelling the task in ``read()``, resets the stream (CANCEL): the server
  stops the request.
* PING is answered; while calls are open the connection is pinged every ``keepalive_s`` (300 s: no more often than
  Triton allows without data) and dropped when no answer comes within ``keepalive_timeout_s``.

Errors are ``RpcFailure`` (a ``grpc.RpcError`` with ``code()`` -> ``grpc.StatusCode`` and ``details()``), so the
caller maps statuses exactly as it maps grpc's. Tests run every path against grpc's own server (the stand-in
engine): tests/gateway/backends/test_h2c.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import grpc
import hpack

log = logging.getLogger("gateway.backends.h2c")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame types
_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW, _CONTINUATION = range(10)
# flags
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
# settings
_S_TABLE, _S_PUSH, _S_MAX_STREAMS, _S_WINDOW, _S_FRAME = 1, 2, 3, 4, 5
_CANCEL, _PROTOCOL_ERROR, _REFUSED = 8, 1, 7
_MAX_REFUSALS = 5

_WINDOW_SIZE = 1 << 24  # our receive window per stream and (via WINDOW_UPDATE) for the connection
_MAX_WINDOW = 2**31 - 1
_BACKOFF_S = 1.0
_MAX_HEADER_LIST = 1 << 20
_MAX_CACHED_BLOCK = 256  # bytes: the blocks that repeat are a few bytes; an error's long grpc-message never does
_MAX_CACHED_BLOCKS = 64
_MAX_FRAME = 16384
_MAX_STREAM_ID = 2**31 - 1
_FRAME_HEAD = struct.Struct(">BHBBI")  # a frame's length (24 bits: 8 + 16), type, flags, R + stream id
_MESSAGE_HEAD = struct.Struct(">BI")  # a gRPC message's compressed flag and length

# RST_STREAM error code -> status (PROTOCOL-HTTP2.md, "Errors")
_RST_STATUS = {
    0: grpc.StatusCode.INTERNAL,
    1: grpc.StatusCode.INTERNAL,
    2: grpc.StatusCode.INTERNAL,
    3: grpc.StatusCode.INTERNAL,
    4: grpc.StatusCode.INTERNAL,
    6: grpc.StatusCode.INTERNAL,
    7: grpc.StatusCode.UNAVAILABLE,  # REFUSED_STREAM: never processed, safe to retry
    8: grpc.StatusCode.CANCELLED,
    9: grpc.StatusCode.INTERNAL,
    10: grpc.StatusCode.INTERNAL,
    11: grpc.StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    12: grpc.StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
}
# HTTP :status -> status when a response is not gRPC's 200 (the spec's "HTTP to gRPC Status Code Mapping")
_HTTP_STATUS = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


class RpcFailure(grpc.RpcError):  # type: ignore[misc]  # grpc ships no type hints
    """A call's final non-OK status."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def status_from_trailers(headers: dict[str, str]) -> RpcFailure | None:
    """None for OK; the failure the trailers (or a trailers-only response) carry otherwise."""
    raw = headers.get("grpc-status")
    if raw is None:
        return RpcFailure(grpc.StatusCode.UNKNOWN, "the response ended without grpc-status")
    try:
        code = _BY_VALUE.get(int(raw), grpc.StatusCode.UNKNOWN)
    except ValueError:
        code = grpc.StatusCode.UNKNOWN
    if code is grpc.StatusCode.OK:
        return None
    return RpcFailure(code, unquote(headers.get("grpc-message", ""), errors="replace"))


def http_status_failure(status: str) -> RpcFailure | None:
    """The failure a response's :status stands for (None for 200)."""
    if status == "200":
        return None
    try:
        code = _HTTP_STATUS.get(int(status), grpc.StatusCode.UNKNOWN)
    except ValueError:
        code = grpc.StatusCode.UNKNOWN
    return RpcFailure(code, f"Received http2 header with status: {status}")


def grpc_timeout(seconds: float) -> str:
    """The grpc-timeout header value (at most 8 digits, rounded up)."""
    ms = max(1, math.ceil(seconds * 1000))
    return f"{ms}m" if ms < 10**8 else f"{min(math.ceil(seconds), 10**8 - 1)}S"


def _int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with `first`'s high bits in its first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: str | int, value: str) -> bytes:
    """A header field "without indexing" (RFC 7541 6.2.2): by static-table index or by name; no Huffman."""
    v = value.encode("latin-1")
    head = _int(name, 4) if isinstance(name, int) else b"\x00" + _int(len(name), 7) + name.encode("latin-1")
    return head + _int(len(v), 7) + v


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def parse_target(target: str) -> tuple[str, int]:
    """(host, port) of ``host:port``, ``[v6]:port`` or grpc's ``dns:///host:port``."""
    rest = target[len("dns:///") :] if target.startswith("dns:///") else target
    host, sep, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port gRPC target: {target!r}")
    return host, int(port)


class Call:
    """One call: ``read()`` gives the response messages, then None (status OK) or raises RpcFailure.

    With a ``sink``, each message goes to ``sink(message)`` as it is parsed, in the connection's callback, and
    ``read()`` only waits for the end: a reader that collects a whole answer is not woken once per message. An
    exception the sink raises ends the call (the stream is reset) and is what ``read()`` raises."""

    __slots__ = (
        "_body",
        "_channel",
        "_conn",
        "_error",
        "_have",
        "_header_block",
        "_messages",
        "_need",
        "_parse",
        "_parts",
        "_recv_headers",
        "_recv_unacked",
        "_refusals",
        "_send_window",
        "_sent",
        "_sink",
        "_started",
        "_timer",
        "_waiter",
        "done",
        "id",
    )

    def __init__(
        self,
        channel: Channel,
        header_block: bytes,
        body: bytes,
        parse: Callable[[bytes], Any],
        timeout: float,
        sink: Callable[[Any], None] | None = None,
    ):
        self._channel = channel
        self._sink = sink
        self._header_block = header_block
        self._body = body
        self._sent = 0
        self._parse = parse
        self._messages: collections.deque[Any] = collections.deque()
        self._parts: list[bytes] = []  # a message arriving over several frames
        self._have = 0
        self._need = -1
        self._recv_headers = False
        self._recv_unacked = 0
        self._refusals = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._started = False
        self._conn: _Connection | None = None
        self._send_window = 0
        self.done = False
        self.id = 0
        loop = channel.loop
        self._timer: asyncio.TimerHandle | None = loop.call_at(loop.time() + timeout, self._expire)

    # -- the caller's side ---------------------------------------------------------------------------------------------
    async def read(self) -> Any | None:
        while True:
            if self._messages:
                return self._messages.popleft()
            if self.done:
                if self._error is not None:
                    raise self._error
                return None
            if not self._started:
                self._started = True
                self._channel._begin(self)
                continue
            self._waiter = waiter = self._channel.loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                self.cancel()
                raise
            finally:
                self._waiter = None

    def queued(self) -> Any | None:
        """The next message already received (in the read that brought the last one), None if none is: never waits."""
        return self._messages.popleft() if self._messages else None

    def cancel(self) -> None:
        """Ends the call (CANCELLED); the server is told (RST_STREAM CANCEL). No-op once it ended (as every call
        has by the time its reader's `finally` cancels it: no failure is built then)."""
        if not self.done:
            self._finish(RpcFailure(grpc.StatusCode.CANCELLED, "Locally cancelled by application!"), reset=True)

    # -- the connection's side ---------------------------------------------------------------------------------------
    def _expire(self) -> None:
        self._timer = None
        self._finish(RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), reset=True)

    def _finish(self, error: Exception | None, *, reset: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        if conn is not None:
            conn.forget(self, reset)
        else:
            self._channel._unqueue(self)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _data(self, data: bytes) -> None:
        """A DATA payload: complete messages to the reader, the rest kept for the next frame."""
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._parts)
            self._parts = []
            self._have, self._need = 0, -1
        pos, size = 0, len(data)
        while size - pos >= 5:
            compressed, length = _MESSAGE_HEAD.unpack_from(data, pos)
            if compressed:
                self._finish(RpcFailure(grpc.StatusCode.INTERNAL, "compressed message without negotiation"), reset=True)
                return
            if length > self._channel.max_message_bytes:
                self._finish(
                    RpcFailure(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"Received message larger than max ({length} vs. {self._channel.max_message_bytes})",
                    ),
                    reset=True,
                )
                return
            end = pos + 5 + length
            if end > size:
                break
            try:
                message = self._parse(data[pos + 5 : end])
            except Exception as e:  # a message the protobuf cannot parse
                self._finish(RpcFailure(grpc.StatusCode.INTERNAL, f"Failed to parse server response: {e}"), reset=True)
                return
            if self._sink is None:
                self._messages.append(message)
            else:
                try:
                    self._sink(message)
                except Exception as e:  # the reader's own verdict on the message: the call ends with it
                    self._finish(e, reset=True)
                    return
            pos = end
        if pos < size:
            rest = data[pos:]
            self._parts = [rest]
            self._have = len(rest)
            self._need = 5 + int.from_bytes(rest[1:5], "big") if len(rest) >= 5 else 5
        if self._sink is None:
            self._wake()

    def _headers(self, headers: dict[str, str], end_stream: bool) -> None:
        if not self._recv_headers:
            self._recv_headers = True
            failure = http_status_failure(headers.get(":status", ""))
            if failure is not None:
                self._finish(failure, reset=not end_stream)
                return
            if not end_stream:
                return
        if not end_stream:
            self._finish(RpcFailure(grpc.StatusCode.INTERNAL, "trailers without END_STREAM"), reset=True)
            return
        if self._parts:
            self._finish(RpcFailure(grpc.StatusCode.INTERNAL, "the stream ended inside a message"))
            return
        self._finish(status_from_trailers(headers))


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection and the calls open on it."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.loop = channel.loop
        self.transport: asyncio.Transport | None = None
        self.calls: dict[int, Call] = {}
        self.next_id = 1
        self.ready: asyncio.Future[None] = self.loop.create_future()  # the server's first SETTINGS arrived
        self.closed = False
        self.failure: RpcFailure | None = None  # why it closed
        self.draining = False  # GOAWAY received: no new calls
        self.max_streams = 2**31
        self.peer_window = 65535  # the server's initial window per stream (what we may send)
        self.max_frame = 16384
        self.send_window = 65535  # connection-level
        self.blocked: collections.deque[Call] = collections.deque()  # calls with request data left to send
        self.recv_unacked = 0  # connection-level bytes read but not yet credited back
        # a header block over the limit would be a protocol error for the whole connection: an engine's long error
        # message (grpc-message) must not cost every call on it
        self.decoder = hpack.Decoder(max_header_list_size=_MAX_HEADER_LIST)
        self._decoded: dict[bytes, list[tuple[str, str]]] = {}  # header blocks that leave the table unchanged
        self._buf = b""
        self._block: list[bytes] = []  # a header block continued by CONTINUATION frames
        self._block_stream = 0
        self._block_size = 0
        self._block_end = False
        self._table_update = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_due: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport's
        settings = struct.pack(">HIHI", _S_PUSH, 0, _S_WINDOW, _WINDOW_SIZE)
        self._write(
            _PREFACE
            + _frame(_SETTINGS, 0, 0, settings)
            + _frame(_WINDOW, 0, 0, struct.pack(">I", _WINDOW_SIZE - 65535))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(RpcFailure(grpc.StatusCode.UNAVAILABLE, f"Connection lost: {exc or 'closed by the server'}"))

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        pos, size = 0, len(data)
        try:
            while size - pos >= 9:
                high, low, kind, flags, stream = _FRAME_HEAD.unpack_from(data, pos)
                length = (high << 16) | low
                if length > _MAX_FRAME:  # over the SETTINGS_MAX_FRAME_SIZE we advertise (the default)
                    raise _ProtocolError(f"a frame of {length} bytes (FRAME_SIZE_ERROR)")
                end = pos + 9 + length
                if end > size:
                    break
                stream &= _MAX_STREAM_ID
                payload = data[pos + 9 : end]
                pos = end
                if self._block and kind != _CONTINUATION:
                    raise _ProtocolError("a header block was interrupted")
                if kind == _DATA:  # the hot path first
                    self._on_data(stream, flags, payload)
                else:
                    self._on_frame(kind, stream, flags, payload)
        except _ProtocolError as e:
            self._abort(str(e))
            return
        self._buf = data[pos:] if pos < size else b""

    def _on_frame(self, kind: int, stream: int, flags: int, payload: bytes) -> None:
        if kind == _HEADERS or kind == _CONTINUATION:
            self._on_headers(kind, stream, flags, payload)
        elif kind == _SETTINGS:
            self._on_settings(flags, payload)
        elif kind == _WINDOW:
            self._on_window(stream, payload)
        elif kind == _PING:
            if not flags & _ACK:
                self._write(_frame(_PING, _ACK, 0, payload))
            elif self._pong_due is not None:
                self._pong_due.cancel()
                self._pong_due = None
        elif kind == _RST:
            self._on_reset(stream, payload)
        elif kind == _GOAWAY:
            self._on_goaway(payload)
        elif kind == _PUSH:
            raise _ProtocolError("PUSH_PROMISE although push is disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 5.5)

    # -- frames ---------------------------------------------------------------------------------------------------
    def _on_data(self, stream: int, flags: int, payload: bytes) -> None:
        credited = len(payload)  # padding counts against flow control too
        if flags & _PADDED:
            payload = payload[1 : len(payload) - payload[0]] if payload and payload[0] < len(payload) else b""
        self.recv_unacked += credited
        call = self.calls.get(stream)
        updates = b""
        if self.recv_unacked >= _WINDOW_SIZE // 2:
            updates = _frame(_WINDOW, 0, 0, struct.pack(">I", self.recv_unacked))
            self.recv_unacked = 0
        if call is not None:
            if payload:
                call._data(payload)
            if call.done:
                pass
            elif flags & _END_STREAM:
                call._finish(RpcFailure(grpc.StatusCode.INTERNAL, "the stream ended without trailers"))
            else:
                call._recv_unacked += credited
                if call._recv_unacked >= _WINDOW_SIZE // 2:
                    updates += _frame(_WINDOW, 0, stream, struct.pack(">I", call._recv_unacked))
                    call._recv_unacked = 0
        if updates:
            self._write(updates)

    def _on_headers(self, kind: int, stream: int, flags: int, payload: bytes) -> None:
        if kind == _HEADERS:
            if self._block:
                raise _ProtocolError("HEADERS inside a header block")
            pad = 0
            if flags & _PADDED:
                if not payload:
                    raise _ProtocolError("empty padded HEADERS")
                pad = payload[0]
                payload = payload[1:]
            if flags & _PRIORITY_FLAG:
                payload = payload[5:]
            if pad:
                if pad > len(payload):
                    raise _ProtocolError("padding longer than the frame")
                payload = payload[: len(payload) - pad]
            self._block_stream, self._block_end = stream, bool(flags & _END_STREAM)
        elif not self._block or stream != self._block_stream:
            raise _ProtocolError("CONTINUATION without its HEADERS")
        self._block.append(payload)
        self._block_size += len(payload)
        if self._block_size > _MAX_HEADER_LIST:  # no endless CONTINUATION
            raise _ProtocolError("a header block over 1 MiB")
        if not flags & _END_HEADERS:
            return
        block = b"".join(self._block)
        self._block, self._block_size = [], 0
        fields = self._decoded.get(block)
        if fields is None:
            fields = self._decode(block)
        call = self.calls.get(self._block_stream)
        if call is not None:
            call._headers(dict(fields), self._block_end)

    def _decode(self, block: bytes) -> list[tuple[str, str]]:
        """A header block decoded; kept for the next same block while the dynamic table stays as it is.

        A server answers every call of a kind with the same bytes once its dynamic table holds the fields (gRPC's
        response headers and ``grpc-status: 0`` trailers: a few indexed fields, 8 µs each through hpack). A block
        that leaves the table as it found it (its length, newest entry and size) decodes the same while the table
        stays so; any block that changes it (an entry added, evicted or resized) empties the cache."""
        table = self.decoder.header_table
        entries = table.dynamic_entries
        size, newest, maxsize = len(entries), entries[0] if entries else None, table.maxsize
        try:
            fields = [(str(k), str(v)) for k, v in self.decoder.decode(block, raw=False)]
        except Exception as e:  # hpack's errors: the connection's header state is lost
            raise _ProtocolError(f"undecodable header block: {e}") from None
        if len(entries) != size or (entries[0] if entries else None) is not newest or table.maxsize != maxsize:
            self._decoded.clear()
        elif len(block) <= _MAX_CACHED_BLOCK and len(self._decoded) < _MAX_CACHED_BLOCKS:
            self._decoded[block] = fields
        return fields

    def _on_settings(self, flags: int, payload: bytes) -> None:
        if flags & _ACK:
            return
        if len(payload) % 6:
            raise _ProtocolError("SETTINGS of a bad size")
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == _S_TABLE:
                # the server resized its HPACK table: RFC 7541 4.2 wants a size update at the start of our next
                # header block (we never index, so ours is 0)
                self._table_update = True
            elif key == _S_MAX_STREAMS:
                self.max_streams = value
            elif key == _S_WINDOW:
                if value > _MAX_WINDOW:
                    raise _ProtocolError("SETTINGS_INITIAL_WINDOW_SIZE too large")
                delta, self.peer_window = value - self.peer_window, value
                for call in self.calls.values():
                    call._send_window += delta
            elif key == _S_FRAME:
                if not 16384 <= value < 1 << 24:  # RFC 9113 6.5.2
                    raise _ProtocolError(f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.max_frame = value
        self._write(_frame(_SETTINGS, _ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._flush()
        self.channel._admit(self)

    def _on_window(self, stream: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ProtocolError("WINDOW_UPDATE of a bad size")
        increment = int.from_bytes(payload, "big") & _MAX_WINDOW
        if stream == 0:
            self.send_window += increment
        elif (call := self.calls.get(stream)) is not None:
            call._send_window += increment
        self._flush()

    def _on_reset(self, stream: int, payload: bytes) -> None:
        call = self.calls.get(stream)
        if call is not None and len(payload) == 4:
            code = int.from_bytes(payload, "big")
            if code == _REFUSED and not call._recv_headers and call._refusals < _MAX_REFUSALS:
                self._retry(call)
                return
            status = _RST_STATUS.get(code, grpc.StatusCode.INTERNAL)
            call._finish(RpcFailure(status, f"Received RST_STREAM with error code {code}"))

    def _on_goaway(self, payload: bytes) -> None:
        if len(payload) < 8:
            raise _ProtocolError("GOAWAY of a bad size")
        last = int.from_bytes(payload[:4], "big") & _MAX_STREAM_ID
        code = int.from_bytes(payload[4:8], "big")
        self.draining = True
        debug = payload[8:].decode("utf-8", "replace")
        if code:
            log.info("%s sent GOAWAY %d (%s)", self.channel.target, code, debug[:200])
        going = RpcFailure(grpc.StatusCode.UNAVAILABLE, f"the server is going away ({debug[:200]})")
        self.failure = self.failure or going
        for stream, call in list(self.calls.items()):
            if stream > last:  # never processed: safe to retry elsewhere
                call._finish(going)
        self.channel._drop(self)
        if not self.calls:
            self._close_transport()

    def _retry(self, call: Call) -> None:
        """A stream the server refused (it never saw the request: grpc core refuses a stream over its limit until the
        last one it closed is gone on its side) goes again, as grpc's transparent retry does, once a call ends."""
        call._refusals += 1
        del self.calls[call.id]
        if call._sent < len(call._body):
            with contextlib.suppress(ValueError):
                self.blocked.remove(call)
        call._conn, call._sent = None, 0
        self.channel._waiting.appendleft(call)
        if not self.calls:  # no other call will end to admit it
            self.loop.call_later(0.01 * call._refusals, self.channel._admit, self)

    # -- calls ----------------------------------------------------------------------------------------------------
    def usable(self) -> bool:
        return not (self.closed or self.draining) and self.next_id <= _MAX_STREAM_ID

    def has_room(self) -> bool:
        return len(self.calls) < self.max_streams

    def start(self, call: Call) -> None:
        call._conn = self
        call.id = stream = self.next_id
        self.next_id += 2
        call._send_window = self.peer_window
        self.calls[stream] = call
        block = call._header_block
        if self._table_update:
            self._table_update = False
            block = b"\x20" + block  # dynamic table size update: 0
        frames = [_frame(_HEADERS, _END_HEADERS, stream, block)]
        if not self._send(call, frames):
            self.blocked.append(call)
        self._write(b"".join(frames))  # one write (one syscall) for the request, as a rule
        if self._ping_timer is None and self.channel.keepalive_s:
            self._ping_timer = self.loop.call_later(self.channel.keepalive_s, self._keepalive)

    def _send(self, call: Call, frames: list[bytes]) -> bool:
        """As much of the call's request as the windows allow, onto `frames`; True when all of it went."""
        body = call._body
        total = len(body)
        while call._sent < total:
            n = min(total - call._sent, self.send_window, call._send_window, self.max_frame)
            if n <= 0:
                return False
            start = call._sent
            call._sent += n
            self.send_window -= n
            call._send_window -= n
            frames.append(_frame(_DATA, _END_STREAM if call._sent == total else 0, call.id, body[start : start + n]))
        return True

    def _flush(self) -> None:
        blocked, self.blocked = self.blocked, collections.deque()
        frames: list[bytes] = []
        for call in blocked:
            if not call.done and not self._send(call, frames):
                self.blocked.append(call)
        if frames:
            self._write(b"".join(frames))

    def forget(self, call: Call, reset: bool) -> None:
        if self.calls.pop(call.id, None) is None:
            return
        if reset and not self.closed:
            self._write(_frame(_RST, 0, call.id, struct.pack(">I", _CANCEL)))
        if call._sent < len(call._body):
            with contextlib.suppress(ValueError):
                self.blocked.remove(call)
        if not self.calls:
            if self._ping_timer is not None:
                self._ping_timer.cancel()
                self._ping_timer = None
            if self.draining:
                self._close_transport()
        self.channel._admit(self)

    # -- keepalive and shutdown -------------------------------------------------------------------------------------
    def _keepalive(self) -> None:
        self._ping_timer = None
        if self.closed or not self.calls:
            return
        self._write(_frame(_PING, 0, 0, b"\0" * 8))
        if self._pong_due is None:
            self._pong_due = self.loop.call_later(self.channel.keepalive_timeout_s, self._no_pong)
        self._ping_timer = self.loop.call_later(self.channel.keepalive_s, self._keepalive)

    def _no_pong(self) -> None:
        self._pong_due = None
        self._close(RpcFailure(grpc.StatusCode.UNAVAILABLE, "keepalive watchdog timeout"))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _abort(self, reason: str) -> None:
        self._write(_frame(_GOAWAY, 0, 0, struct.pack(">II", 0, _PROTOCOL_ERROR)))
        self._close(RpcFailure(grpc.StatusCode.INTERNAL, f"HTTP/2 protocol error: {reason}"))

    def _close(self, failure: RpcFailure) -> None:
        if self.failure is None:
            self.failure = failure
        if not self.ready.done():
            self.ready.set_exception(failure)
            self.ready.exception()  # retrieved: the connect step reports it
        self.closed = True
        for timer in (self._ping_timer, self._pong_due):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_due = None
        calls, self.calls = self.calls, {}
        for call in calls.values():
            call._conn = None
            call._finish(failure)
        self.channel._drop(self)
        self._close_transport()

    def _close_transport(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _ProtocolError(Exception):
    pass


class Channel:
    """Calls to one ``host:port`` over one HTTP/2 connection at a time."""

    def __init__(
        self,
        target: str,
        *,
        connect_timeout_s: float = 5.0,
        max_message_bytes: int = 2**31 - 1,
        keepalive_s: float = 300.0,
        keepalive_timeout_s: float = 20.0,
        user_agent: str = "modelsvc-gateway",
    ):
        self.target = target
        self.host, self.port = parse_target(target)
        self.connect_timeout_s = connect_timeout_s
        self.max_message_bytes = max_message_bytes
        self.keepalive_s = keepalive_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.loop = asyncio.get_running_loop()
        authority = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self._fixed = (
            b"\x83\x86"  # :method POST, :scheme http (static table 3 and 6)
            + _literal(1, authority)
            + _literal(31, "application/grpc")
            + _literal("te", "trailers")
            + _literal("grpc-accept-encoding", "identity")
            + _literal(58, user_agent)
        )
        self._paths: dict[str, bytes] = {}
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._waiting: collections.deque[Call] = collections.deque()  # calls waiting for a connection or a slot
        self._failed: RpcFailure | None = None
        self._failed_until = 0.0
        self._closed = False

    def call(
        self,
        method: str,
        request: Any,
        parse: Callable[[bytes], Any],
        timeout: float,
        sink: Callable[[Any], None] | None = None,
    ) -> Call:
        """A call of `method` (``/package.Service/Method``) with one request message (or its bytes); it starts on the
        first read (`sink`: see Call)."""
        path = self._paths.get(method)
        if path is None:
            path = self._paths[method] = _literal(4, method)
        body = request if type(request) is bytes else request.SerializeToString()  # (a request built as bytes)
        block = self._fixed + path + _literal("grpc-timeout", grpc_timeout(timeout))
        return Call(self, block, b"\0" + len(body).to_bytes(4, "big") + body, parse, timeout, sink)

    async def unary(self, method: str, request: Any, parse: Callable[[bytes], Any], timeout: float) -> Any:
        call = self.call(method, request, parse, timeout)
        try:
            response = await call.read()
            if response is None:
                raise RpcFailure(grpc.StatusCode.INTERNAL, "the server sent no response message")
            if await call.read() is not None:
                raise RpcFailure(grpc.StatusCode.INTERNAL, "the server sent more than one response message")
            return response
        finally:
            call.cancel()

    async def close(self) -> None:
        """Ends every call (CANCELLED) and the connection."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        failure = RpcFailure(grpc.StatusCode.CANCELLED, "the channel was closed")
        waiting, self._waiting = self._waiting, collections.deque()
        for call in waiting:
            call._finish(failure)
        if self._conn is not None:
            self._conn._close(failure)

    # -- calls: waiting for a connection / a stream slot ----------------------------------------------------------
    def _begin(self, call: Call) -> None:
        if self._closed:
            call._finish(RpcFailure(grpc.StatusCode.CANCELLED, "the channel was closed"))
            return
        conn = self._conn
        if conn is not None and conn.usable() and conn.has_room() and not self._waiting:
            conn.start(call)
            return
        if conn is None or not conn.usable():
            if self._failed is not None and self.loop.time() < self._failed_until:
                call._finish(self._failed)
                return
            self._connect()
        self._waiting.append(call)

    def _unqueue(self, call: Call) -> None:
        try:
            self._waiting.remove(call)
        except ValueError:
            pass

    def _admit(self, conn: _Connection) -> None:
        """Start waiting calls on `conn` while it has room."""
        if conn is not self._conn:
            return
        while self._waiting and conn.usable() and conn.has_room():
            call = self._waiting.popleft()
            if not call.done:
                conn.start(call)

    def _drop(self, conn: _Connection) -> None:
        """`conn` takes no new calls: the waiting ones go to a new connection."""
        if conn is self._conn:
            self._conn = None
            if self._waiting and not self._closed:
                self._connect()

    def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = self.loop.create_task(self._open())

    async def _open(self) -> None:
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
                await conn.ready
                if not conn.usable():  # closed or going away right after its SETTINGS: as if it never connected
                    raise conn.failure or RpcFailure(grpc.StatusCode.UNAVAILABLE, "closed at once")
        except (RpcFailure, TimeoutError, OSError) as e:
            if conn is not None:
                conn._close_transport()
            why = e.details() if isinstance(e, RpcFailure) else "timed out" if isinstance(e, TimeoutError) else e
            self._connect_failed(RpcFailure(grpc.StatusCode.UNAVAILABLE, f"failed to connect to {self.target}: {why}"))
            return
        except asyncio.CancelledError:  # the channel closed while connecting
            if conn is not None:
                conn._close_transport()
            raise
        finally:
            self._connecting = None
        self._failed = None
        if self._closed:
            conn._close(RpcFailure(grpc.StatusCode.CANCELLED, "the channel was closed"))
            return
        self._conn = conn
        self._admit(conn)

    def _connect_failed(self, failure: RpcFailure) -> None:
        """Every waiting call fails; so do new ones for _BACKOFF_S (a dead pod is not dialled once per request)."""
        self._failed, self._failed_until = failure, self.loop.time() + _BACKOFF_S
        waiting, self._waiting = self._waiting, collections.deque()
        for call in waiting:
            call._finish(failure)
