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


@pytest.mark.parametrize(
    ("event", "values"),
    [
        (b"data: x\n\n", [b"x"]),  # one event alone in its read: the common case, read without splitting lines
        (b"data:x\n\n", [b"x"]),
        (b"data: x\r\n\n", [b"x"]),
        (b"data: x\r\n\r\n", [b"x"]),
        (b'data: {"a": "b\\n"}\n\n', [b'{"a": "b\\n"}']),  # an escaped line end is no line end
        (b"data: a\ndata: b\n\n", [b"a", b"b"]),
        (b"event: e\ndata: x\n\n", [b"x"]),
        (b"data: x\n\ndata: y\n\n", [b"x", b"y"]),
        (b"data: x\nid\n", [b"x"]),  # a line without a colon: a field without a value (ignored)
        (b": ping\n\n", []),
        (b"\n\n", []),
    ],
)
async def test_an_event_alone_in_its_read_gives_its_data_lines(event, values):
    handed: asyncio.Queue[None] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD + chunk(event))
        await writer.drain()
        if values:
            await handed.get()  # the client has handed the event on before the rest is written
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = Http1(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", {}, read_timeout=5, connect_timeout=5)
    seen: list[bytes] = []

    def sink(batch: list[bytes]) -> bool:
        seen.extend(batch)
        handed.put_nowait(None)
        return b"[DONE]" in batch

    try:
        r = await client.request("GET", "/x")
        await r.sink(sink)
        assert seen == [*values, b"[DONE]"]
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
                    break
            r.aclose()  # the body's end came with [DONE]: the connection is kept
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
                break
        r.aclose()
        assert client.idle == []
    finally:
        await client.close()
        server.close()


def plain(body: bytes, *headers: bytes, status: bytes = b"200 OK", version: bytes = b"1.1") -> bytes:
    head = b"HTTP/%b %b\r\ncontent-length: %d\r\n" % (version, status, len(body))
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


async def test_interim_responses_are_skipped_and_a_head_too_long_fails():
    assert await body_of(b"HTTP/1.1 100 Continue\r\n\r\n" + plain(b"ok")) == b"ok"
    with pytest.raises(HttpFailure) as e:
        await body_of(b"HTTP/1.1 200 OK\r\n" + b"x-big: " + b"a" * 70000 + b"\r\n\r\n")
    assert e.value.kind == "io"
    for bad in (b"HTTP/1.1 2x0 OK\r\n\r\n", b"SPDY/3 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"):
        with pytest.raises(HttpFailure):
            await body_of(bad)
    with pytest.raises(HttpFailure):  # a length that is not digits
        await body_of(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n")


@pytest.mark.parametrize(
    "response",
    [
        plain(b"ok", b"connection: close"),
        plain(b"ok", version=b"1.0"),
        HEAD.replace(b"\r\n\r\n", b"\r\ncontent-length: 9\r\n\r\n") + chunk(b"ok") + b"0\r\n\r\n",  # both framings
        plain(b"ok") + b"HTTP/1.1 200 OK\r\n",  # more than its length
        b"HTTP/1.1 200 OK\r\n\r\nok",  # no framing: read to the close
    ],
    ids=["connection-close", "http-1.0", "length-and-chunked", "extra-bytes", "read-to-close"],
)
async def test_a_connection_is_not_reused_when_its_framing_says_so(response):
    # the server would answer a second request on the same connection (a read-to-close body: it closes)
    server, client, accepted = await start(*[response] * (1 if response.endswith(b"\r\n\r\nok") else 2))
    try:
        for _ in range(2):
            r = await client.request("GET", "/x")
            assert await r.read() == b"ok"
        assert len(accepted) == 2
    finally:
        await client.close()
        server.close()


async def test_a_kept_connection_the_server_closed_is_replaced_without_a_failure():
    server, client, accepted = await start(plain(b"one"))  # closes after its one answer
    try:
        assert await (await client.request("GET", "/x")).read() == b"one"
        assert len(client.idle) == 1
        await asyncio.sleep(0.05)  # the server's close arrives
        assert await (await client.request("GET", "/x")).read() == b"one"
        assert len(accepted) == 2
    finally:
        await client.close()
        server.close()


async def test_the_read_deadline_counts_from_the_last_arrival():
    """A body that keeps coming (a piece every 10 ms for 1.5 s) never trips a 1 s read deadline, shorter than the
    whole body; one that stops does, at the deadline and not before it. (A gap 100× the pieces' keeps a busy
    machine's stalls from tripping it.)"""
    pieces = [chunk(b"data: %d\n\n" % i) for i in range(150)]

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD)
        for p in pieces:
            writer.write(p)
            await asyncio.sleep(0.01)
        await reader.read()  # and then nothing more: the read deadline ends it
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = Http1(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", {}, read_timeout=1, connect_timeout=5)
    try:
        r = await client.request("GET", "/x")
        got: list[bytes] = []
        loop = asyncio.get_running_loop()
        with pytest.raises(HttpFailure) as e:
            async for batch in r.events():
                got += batch
                last = loop.time()
        assert e.value.kind == "timeout"
        assert got == [b"%d" % i for i in range(150)]
        assert loop.time() - last >= 1 - 0.01
    finally:
        await client.close()
        server.close()


async def test_a_reader_that_falls_behind_stops_the_socket_being_read():
    """8 MiB arrive while the reader takes nothing: the client holds about 1 MiB of it (the socket is paused, the
    rest waits in the kernel and at the server), and the whole body still comes through once it reads."""
    body = b"".join(chunk(bytes([65 + i % 26]) * 65536) for i in range(128)) + b"0\r\n\r\n"
    server, client, _ = await start(HEAD + body, hold=True)
    try:
        r = await client.request("GET", "/x")
        await asyncio.sleep(0.3)
        assert r._queued <= (1 << 20) + 2 * 65536 + 262144
        got = b"".join([p async for batch in r.batches() for p in batch])
        assert got == b"".join(bytes([65 + i % 26]) * 65536 for i in range(128))
    finally:
        await client.close()
        server.close()


async def test_the_sink_takes_the_events_in_the_callback_and_stops_when_it_has_enough():
    body = HEAD + b"".join(chunk(b"data: %d\n\n" % i) for i in range(5)) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    server, client, accepted = await start(body, body, hold=True)
    try:
        for _ in range(2):
            seen: list[bytes] = []

            def sink(batch: list[bytes], seen: list[bytes] = seen) -> bool:
                seen.extend(batch)
                return b"[DONE]" in batch

            r = await client.request("GET", "/x")
            await r.sink(sink)
            assert seen[-1] == b"[DONE]" and seen[:-1] == [b"%d" % i for i in range(5)]
        assert len(accepted) == 1  # ended cleanly each time: one connection served both

        def refuse(batch: list[bytes]) -> bool:
            raise ValueError("not an event")

        server2, client2, _ = await start(body, hold=True)
        try:
            r = await client2.request("GET", "/x")
            with pytest.raises(ValueError):
                await r.sink(refuse)
            assert client2.idle == []
        finally:
            await client2.close()
            server2.close()
    finally:
        await client.close()
        server.close()


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


async def test_an_https_upstream_is_read_over_tls_and_its_connection_kept(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    body = HEAD + chunk(b"data: 1\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    accepted: list[int] = []

    async def handle(reader, writer):
        accepted.append(1)
        for _ in range(2):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(body)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    client = Http1(f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", {}, read_timeout=5, connect_timeout=5)
    assert client.ssl is not None  # https: verified against certifi's bundle, where this test's CA is not
    with pytest.raises(HttpFailure) as e:
        await client.request("GET", "/models")
    assert e.value.kind == "connect"
    client.ssl = ssl.create_default_context(cafile=cert)
    try:
        for _ in range(2):
            r = await client.request("GET", "/models")
            assert [x async for batch in r.events() for x in batch] == [b"1", b"[DONE]"]
        assert len(accepted) == 1  # one kept connection for both (the refused handshake never reached the handler)
    finally:
        await client.close()
        server.close()


async def test_a_large_chunk_over_many_reads_and_an_endless_event_line():
    """A 2 MiB chunk written 4 KiB at a time arrives whole (kept until complete, not re-parsed per read); an event
    line that never ends fails the body at 16 MiB instead of growing without bound."""
    big = bytes(range(256)) * 8192
    assert await body_of(HEAD + chunk(big) + b"0\r\n\r\n", split=4096) == big
    endless = HEAD + b"".join(chunk(b"data: " + b"x" * 65536) for _ in range(260))
    server, client, _ = await start(endless, hold=True)
    try:
        r = await client.request("GET", "/x")
        with pytest.raises(HttpFailure) as e:
            async for _ in r.events():
                pass
        assert e.value.kind == "io"
    finally:
        await client.close()
        server.close()
