"""The gateway's HTTP/1.1 connections: Sanic's protocol with five changes.

* A whole-request deadline. Sanic's request timeout is an idle timer, reset by every byte, so a client sending a
  header line or a body byte every few seconds holds a connection forever. Here a request (request line, headers
  and body; for a new connection, counted from the connection) must arrive whole within REQUEST_TIMEOUT: 408.
* The response timeout is read from the app's config at every check, so a catalog reload that allows longer
  answers applies to open keep-alive connections too.
* A request line Sanic cannot parse (a NUL byte in the URL) made Sanic's own error path fail and log a traceback
  carrying the whole URL, query string and any key in it: the unusable URL is dropped instead.
* Strict framing (RFC 9112), as nginx and Envoy apply it: Sanic 25.12 takes a chunk size with int(x, 16) ("0x10",
  " 10", "1_0" pass), skips the two bytes after chunk data without checking they are CRLF, and splits header lines
  at the first colon without checking the name ("Transfer-Encoding : chunked" became an unknown header, so the
  body was read as the next request) or the value (a bare CR or LF stays in it). Any of these is what lets a front
  proxy and this server disagree on where a request ends (request smuggling): 400, and the connection is closed.
  Reported upstream (docs/reliability.md has the text); the checks here run before Sanic parses the same bytes.
* A connection cap (`--max-connections`): past it a new connection gets 503 with Retry-After and is closed at
  once, before any byte of it is read, instead of costing memory and file descriptors without bound.
"""

from __future__ import annotations

import re

from sanic.exceptions import BadRequest, RequestTimeout
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

# field-name = token (RFC 9110 5.1, tchar); field-value: visible characters, SP and HTAB, obs-text (no CTL but HTAB)
_FIELD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")
# chunk-size = 1*HEXDIG (at most 16: 64 bits), then chunk extensions: BWS ";" ... without CTLs
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?")
_MAX_CHUNK_LINE = 64 + 2  # Sanic's own bound on a chunk-size line, with its leading CRLF


def _strict(bad: bool, http: Http) -> None:
    if bad:
        http.keep_alive = False  # nothing after this may be read as a request
        raise BadRequest("malformed HTTP framing (RFC 9112): the connection is closed")


class _Http(Http):
    async def http1_request_header(self):
        self.protocol.request_begins()
        # Wait for the whole head, as Sanic does, and check it before Sanic parses it.
        buf, pos = self.recv_buffer, 0
        while (end := buf.find(b"\r\n\r\n", pos)) == -1 and len(buf) < self.HEADER_MAX_SIZE:
            pos = max(0, len(buf) - 3)
            await self._receive_more()
        if end != -1:
            lines = bytes(buf[:end]).split(b"\r\n")[1:]
            _strict(any(not _FIELD.fullmatch(line) for line in lines), self)
        await Http.http1_request_header(self)

    async def read(self):
        if self.request_bytes_left == 0 and self.request_body == "chunked":
            # The chunk-size line, checked before Sanic reads it: "\r\n" (the end of the previous chunk's data, or
            # of the head), the size, "\r\n".
            buf = self.recv_buffer
            while (end := buf.find(b"\r\n", 2)) == -1 and len(buf) <= _MAX_CHUNK_LINE:
                await self._receive_more()
            _strict(buf[:2] != b"\r\n" or end == -1 or not _CHUNK_SIZE.fullmatch(bytes(buf[2:end])), self)
        return await Http.read(self)

    def create_empty_request(self) -> None:
        try:
            Http.create_empty_request(self)
        except BadRequest:  # the URL itself is unusable: answer 400 without it (and never log it)
            self.url = "/"
            Http.create_empty_request(self)


_TOO_MANY_BODY = (
    b'{"error": {"message": "the gateway has as many connections open as it accepts; retry shortly", '
    b'"type": "server_error", "param": null, "code": "too_many_connections"}}'
)
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_MANY_BODY), _TOO_MANY_BODY)
)


class GatewayProtocol(HttpProtocol):
    HTTP_CLASS = _Http
    __slots__ = ("_deadline", "_first", "_refused", "_seq")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seq = 0
        self._first = True
        self._deadline = None
        self._refused = False
        self.app.ctx.connections = self.connections  # the server's set of open connections (drain closes them)

    def connection_made(self, transport):
        cap = self.app.ctx.settings.max_connections
        if cap and len(self.connections) >= cap:
            self._refused = True
            runtime = self.app.ctx.runtime
            if runtime is not None:
                runtime.usage.metrics.connections_refused.inc()
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()  # the first request counts from the connection: connecting and sending nothing is slow too

    def data_received(self, data: bytes):
        if not self._refused:
            super().data_received(data)

    def connection_lost(self, exc):
        if not self._refused:
            super().connection_lost(exc)

    def request_begins(self) -> None:
        if self._first:
            self._first = False
            return
        self._arm()

    def _arm(self) -> None:
        self._seq += 1
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.app.config.REQUEST_TIMEOUT, self._too_slow, self._seq)

    def _too_slow(self, seq: int) -> None:
        http = self._http if hasattr(self, "_http") else None
        if seq != self._seq or http is None or not self._task:
            return
        stage = http.stage
        waiting = (
            (stage is Stage.IDLE and self._first)
            or stage is Stage.REQUEST
            or (stage is Stage.HANDLER and http.request_body)
        )
        if waiting:
            http.request_body = None  # and Sanic must not go on reading the rest of it after the 408
            http.keep_alive = False
            http.exception = RequestTimeout(
                f"the whole request must arrive within {self.app.config.REQUEST_TIMEOUT:g}s"
            )
            self._task.cancel("request deadline")

    def check_timeouts(self):
        self.response_timeout = self.app.config.RESPONSE_TIMEOUT
        return super().check_timeouts()

    def close(self, timeout: float | None = None):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        return super().close(timeout=timeout)


def close_idle(connections) -> None:
    """At drain: close every idle keep-alive connection, and make busy ones close once their response is done
    (instead of holding the shutdown until the grace ends)."""
    for conn in list(connections):
        http = conn.http
        if http is None or http.stage is Stage.IDLE:
            conn.close()
        else:
            http.keep_alive = False
