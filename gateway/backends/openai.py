"""Backend kind `openai`: forward to an OpenAI-compatible server that already runs elsewhere (vLLM, trtllm-serve,
NIM, Triton's OpenAI frontend). Same interface as TritonInstance, so balancing, retries and metering are shared.

Chat requests are forwarded as messages (the upstream applies its own chat template); completions as the prompt.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import AsyncIterator
from urllib.parse import urlsplit

import orjson

from ..errors import BackendError, BackendTimeout, BackendUnavailable, InvalidRequest
from .triton import Delta, GenRequest, GenResult


class _HttpFailure(Exception):
    """A failure talking to the upstream. kind: 'timeout' (connect or read), 'connect' (refused), 'io' (anything
    else: reset, malformed response); name is what happened, for the error message."""

    def __init__(self, kind: str, name: str):
        super().__init__(name)
        self.kind, self.name = kind, name


class _Response:
    __slots__ = ("status", "_client", "_conn", "_length", "_chunked", "_keep", "_done")

    def __init__(self, client: "_Http1", conn, status: int, headers: dict[bytes, bytes]):
        self.status, self._client, self._conn = status, client, conn
        length = headers.get(b"content-length")
        self._length = int(length) if length is not None else None
        self._chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        self._keep = (self._chunked or self._length is not None) and \
            headers.get(b"connection", b"").lower() != b"close"
        self._done = False

    async def _io(self, aw):
        try:
            async with asyncio.timeout(self._client.read_timeout):
                return await aw
        except TimeoutError:
            self.aclose()
            raise _HttpFailure("timeout", "ReadTimeout") from None
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.aclose()
            raise _HttpFailure("io", type(e).__name__) from None

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives (one piece per HTTP chunk); the connection goes back to the pool at the end."""
        reader = self._conn[0]
        if self._chunked:
            while True:
                line = await self._io(reader.readline())
                if not line:
                    raise _HttpFailure("io", "RemoteProtocolError")
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    while (await self._io(reader.readline())) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                data = await self._io(reader.readexactly(size + 2))
                yield data[:-2]
        elif self._length is not None:
            left = self._length
            while left > 0:
                data = await self._io(reader.read(min(left, 65536)))
                if not data:
                    raise _HttpFailure("io", "RemoteProtocolError")
                left -= len(data)
                yield data
        else:
            while data := await self._io(reader.read(65536)):
                yield data
        self._done = True
        self._release()

    async def read(self) -> bytes:
        if self._length is not None and not self._chunked:
            data = await self._io(self._conn[0].readexactly(self._length)) if self._length else b""
            self._done = True
            self._release()
            return data
        return b"".join([p async for p in self.pieces()])

    async def lines(self) -> AsyncIterator[str]:
        buf = b""
        async for piece in self.pieces():
            buf += piece
            if b"\n" not in buf:
                continue
            *complete, buf = buf.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode()
        if buf:
            yield buf.rstrip(b"\r").decode()

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


class _Http1:
    """A lean keep-alive HTTP/1.1 client on asyncio streams: what the forwarding hot path needs and no more.
    (httpx cost two thirds of the gateway's CPU per forwarded request; see docs/benchmarks.md.)"""

    def __init__(self, base_url: str, headers: dict[str, str], *, read_timeout: float, connect_timeout: float,
                 max_idle: int = 200):
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

    async def _connect(self, timeout: float):
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except TimeoutError:
            raise _HttpFailure("timeout", "ConnectTimeout") from None
        except OSError:
            raise _HttpFailure("connect", "ConnectError") from None

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      timeout: float | None = None) -> _Response:
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
                raise _HttpFailure("timeout", "ReadTimeout") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                writer.close()
                if reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed meanwhile: once more on a new one
                raise _HttpFailure("io", type(e).__name__) from None
            lines = raw.split(b"\r\n")
            try:
                status = int(lines[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                writer.close()
                raise _HttpFailure("io", "RemoteProtocolError") from None
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            return _Response(self, conn, status, headers)
        raise _HttpFailure("io", "RemoteProtocolError")  # unreachable: the loop returns or raises

    async def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


class OpenAIUpstream:
    def __init__(self, base_url: str, upstream_model: str | None, *, deadline_s: float = 60.0,
                 connect_timeout_s: float = 5.0, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        if "://" not in self.base_url:
            self.base_url = "http://" + self.base_url + "/v1"
        self.upstream_model = upstream_model
        self.deadline_s = deadline_s
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers,
            timeout=httpx.Timeout(deadline_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
        self.image_size = None

    async def start(self) -> None:
        if not await self.ready():
            raise BackendUnavailable(f"upstream {self.base_url} is not reachable")

    async def ready(self) -> bool:
        try:
            r = await self._client.get("/models", timeout=2.0)
            return r.status_code < 500
        except httpx.HTTPError:
            return False

    async def close(self) -> None:
        await self._client.aclose()

    def check(self, req: GenRequest) -> None:
        if req.image_urls and not req.messages:
            raise InvalidRequest("images need the chat endpoint", param="messages")

    def _body(self, req: GenRequest, stream: bool) -> tuple[str, dict]:
        body: dict = {"model": self.upstream_model or "default", "max_tokens": req.max_tokens, "stream": stream}
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.stop:
            body["stop"] = req.stop
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.messages is not None:
            body["messages"] = req.messages
            return "/chat/completions", body
        body["prompt"] = req.prompt
        return "/completions", body

    def _error(self, e: Exception, partial: bool) -> BackendError:
        if isinstance(e, httpx.TimeoutException):
            err = BackendTimeout(f"upstream did not answer within {self.deadline_s}s")
        elif isinstance(e, httpx.ConnectError) and not partial:
            err = BackendUnavailable(f"upstream {self.base_url} refused the connection")
        else:
            err = BackendError(f"upstream error: {type(e).__name__}")
        err.partial = partial
        return err

    @staticmethod
    def _status_error(status: int, text: str) -> BackendError:
        cls = BackendUnavailable if status in (502, 503) else BackendError
        err = cls(f"upstream answered {status}: {text[:200]}")
        err.partial = False
        return err

    async def generate(self, req: GenRequest) -> GenResult:
        path, body = self._body(req, False)
        try:
            r = await self._client.post(path, content=orjson.dumps(body),
                                        headers={"content-type": "application/json"})
        except httpx.HTTPError as e:
            raise self._error(e, False) from None
        if r.status_code != 200:
            raise self._status_error(r.status_code, r.text)
        data = orjson.loads(r.content)
        choice = data["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice.get("text", "")
        usage = data.get("usage") or {}
        return GenResult(text or "", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                         choice.get("finish_reason") or "stop")

    async def stream(self, req: GenRequest) -> AsyncIterator[Delta | GenResult]:
        path, body = self._body(req, True)
        parts: list[str] = []
        usage: dict = {}
        finish = "stop"
        yielded = False
        try:
            async with self._client.stream("POST", path, content=orjson.dumps(body),
                                           headers={"content-type": "application/json"}) as r:
                if r.status_code != 200:
                    raise self._status_error(r.status_code, (await r.aread()).decode(errors="replace"))
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = orjson.loads(payload)
                    if event.get("usage"):
                        usage = event["usage"]
                    for choice in event.get("choices") or ():
                        delta = choice.get("delta") or {}
                        text = delta.get("content") if "delta" in choice else choice.get("text")
                        if text:
                            parts.append(text)
                            yielded = True
                            yield Delta(text)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as e:
            raise self._error(e, yielded) from None
        yield GenResult("".join(parts), usage.get("prompt_tokens", 0), usage.get("completion_tokens", len(parts)),
                        finish)

    async def generate_images(self, prompt: str, n: int, negative_prompt: str | None = None) -> list[bytes]:
        body = {"model": self.upstream_model or "default", "prompt": prompt, "n": n, "response_format": "b64_json"}
        try:
            r = await self._client.post("/images/generations", content=orjson.dumps(body),
                                        headers={"content-type": "application/json"})
        except httpx.HTTPError as e:
            raise self._error(e, False) from None
        if r.status_code != 200:
            raise self._status_error(r.status_code, r.text)
        return [base64.b64decode(d["b64_json"]) for d in orjson.loads(r.content)["data"]]
