"""The HTTP/1.1 client's chunked bodies on a real socket: a malformed chunk fails the body only after the good ones
that came before it in the same read were handed on (what reached the caller is what arrived)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.http1 import Http1, HttpFailure

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def start(response: bytes):
    """An upstream that answers one request with `response`, and the client of it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Http1(f"http://127.0.0.1:{port}", {}, read_timeout=5, connect_timeout=5)


@pytest.mark.e2e
async def test_a_malformed_chunk_comes_after_the_good_ones_before_it():
    server, client = await start(HEAD + chunk(b"data: ok\n\n") + b"zz\r\nnope\r\n")
    try:
        r = await client.request("POST", "/x", b"{}")
        pieces = r.pieces()
        assert await pieces.__anext__() == b"data: ok\n\n"
        with pytest.raises(HttpFailure) as e:
            await pieces.__anext__()
        assert e.value.kind == "io"
    finally:
        await client.close()
        server.close()
