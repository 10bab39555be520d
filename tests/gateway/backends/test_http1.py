"""The HTTP/1.1 client's bodies on a real socket: chunked bodies parsed as RFC 9112 section 7.1 says (and nothing
else accepted), however the bytes are split across reads; a malformed chunk fails the body only after the good ones
that came before it in the same read were handed on (what reached the caller is what arrived); server-sent events
read line by line; a connection kept for the next request only when its body ended cleanly."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.http1 import Http1, HttpFailure

pytestmark = pytest.mark.e2e

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def start(*responses: bytes, split: int = 0, hold: bool = False):
    """An upstream that answers the requests on each connection with `responses` in turn (written `split` bytes at a
    time when split > 0, so the client sees every cut), then closes (hold: waits for the client to close first).
    Returns the server, a client of it, and a list that grows by one per accepted connection."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            for response in responses:
                await reader.readuntil(b"\r\n\r\n")
                steps = [response] if not split else [response[i : i + split] for i in range(0, len(response), split)]
                for step in steps:
                    writer.write(step)
                    await writer.drain()
                    if split:
                        await asyncio.sleep(0)
            if hold:
                await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Http1(f"http://127.0.0.1:{port}", {}, read_timeout=5, connect_timeout=5), accepted


async def body_of(response: bytes, split: int = 0) -> bytes:
    server, client, _ = await start(response, split=split)
    try:
        r = await client.request("GET", "/x")
        return await r.read()
    finally:
        await client.close()
        server.close()


async def test_a_malformed_chunk_comes_after_the_good_ones_before_it():
    server, client, _ = await start(HEAD + chunk(b"data: ok\n\n") + b"zz\r\nnope\r\n", hold=True)
    try:
        r = await client.request("POST", "/x", b"{}")
        batches = r.batches()
        assert await batches.__anext__() == [b"data: ok\n\n"]
        with pytest.raises(HttpFailure) as e:
            await batches.__anext__()
        assert e.value.kind == "io"
    finally:
        await client.close()
        server.close()


@pytest.mark.parametrize("split", [0, 1, 3, 7])
async def test_chunks_are_read_whole_however_the_bytes_are_cut(split):
    body = HEAD + chunk(b"hello ") + b"6;name=value\r\nworld!\r\n" + chunk(b"x" * 5000) + b"0\r\nx-trailer: 1\r\n\r\n"
    assert await body_of(body, split) == b"hello world!" + b"x" * 5000


@pytest.mark.parametrize(
    "size_line",
    [b"0x5", b"+5", b"-5", b"5_0", b" 5", b"", b"g", b"1" * 16],
    ids=["0x", "plus", "minus", "underscore", "leading-space", "empty", "not-hex", "too-long"],
)
async def test_a_chunk_size_that_is_not_hex_digits_fails_the_body(size_line):
    # Python's int(x, 16) takes every one of these; RFC 9112 takes none
    with pytest.raises(HttpFailure) as e:
        await body_of(HEAD + size_line + b"\r\nhello\r\n0\r\n\r\n")
    assert e.value.kind == "io"


async def test_chunk_data_not_followed_by_crlf_fails_the_body():
    with pytest.raises(HttpFailure):
        await body_of(HEAD + b"5\r\nhelloXY0\r\n\r\n")


async def test_a_size_line_that_never_ends_fails_instead_of_buffering():
    with pytest.raises(HttpFailure):
        await body_of(HEAD + b"5" + b";" * 10000)


async def test_a_body_cut_before_its_last_chunk_fails():
    with pytest.raises(HttpFailure):
        await body_of(HEAD + chunk(b"hello"))  # the server closes without the zero-size chunk


async def test_events_are_the_data_lines_however_the_chunks_cut_them():
    events = b'data: {"a": 1}\n\n: a comment\nevent: x\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    body = HEAD + b"".join(chunk(events[i : i + 5]) for i in range(0, len(events), 5)) + b"0\r\n\r\n"
    for split in (0, 4):
        server, client, _ = await start(body, split=split)
        try:
            r = await client.request("GET", "/x")
            got = [e async for batch in r.events() for e in batch]
            assert got == [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]
        finally:
            await client.close()
            server.close()


async def test_the_connection_is_kept_when_the_body_ended_at_done_and_closed_when_cut_short():
    ended = HEAD + chunk(b"data: 1\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    server, client, accepted = await start(ended, ended, ended, hold=True)
    try:
        for _ in range(2):  # the client stops at [DONE], as the openai backend does
            r = await client.request("GET", "/x")
            async for batch in r.events():
                if b"[DONE]" in batch:
                    r.finish_if_buffered()
                    break
            r.aclose()
        assert len(accepted) == 1  # the second request went on the first connection
        r = await client.request("GET", "/x")
        assert [e async for batch in r.events() for e in batch] == [b"1", b"[DONE]"]
        assert len(client.idle) == 1
    finally:
        await client.close()
        server.close()
    # the body goes on after [DONE] (its end not here yet): the connection cannot be reused
    server, client, accepted = await start(HEAD + chunk(b"data: [DONE]\n\n"), hold=True)
    try:
        r = await client.request("GET", "/x")
        async for batch in r.events():
            if b"[DONE]" in batch:
                r.finish_if_buffered()
                break
        r.aclose()
        assert client.idle == []
    finally:
        await client.close()
        server.close()
