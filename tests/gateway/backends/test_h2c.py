"""h2c against grpc's own server (grpc core's HTTP/2, the stack Triton serves with): every status, deadline,
cancellation, flow-control and connection path the Triton client relies on, and the same answers grpc.aio gets."""

from __future__ import annotations

import asyncio
import socket
import threading

import grpc
import hpack
import pytest

from gateway.backends import h2c

from .h2reset import ResettingPeer

SERVICE = "test.Probe"
STREAM, UNARY, HANG = f"/{SERVICE}/Stream", f"/{SERVICE}/Unary", f"/{SERVICE}/Hang"


class Raw(bytes):
    """A request message that is its own serialization (the handlers read plain bytes)."""

    def SerializeToString(self) -> bytes:
        return bytes(self)


def ident(b: bytes) -> bytes:
    return b


class Probe:
    """The test service. A request is `verb:arg` text."""

    def __init__(self):
        self.cancelled = 0
        self.started = 0
        self.seen_timeouts: list[float | None] = []

    async def stream(self, request: bytes, context):
        self.started += 1
        self.seen_timeouts.append(context.time_remaining())
        verb, _, arg = request.decode().partition(":")
        if verb == "count":  # count:N -> N messages "0".."N-1"
            for i in range(int(arg)):
                yield str(i).encode()
        elif verb == "big":  # big:N -> one message of N bytes
            yield b"x" * int(arg)
        elif verb == "fail":  # fail:CODE -> two messages, then the status
            yield b"a"
            yield b"b"
            await context.abort(grpc.StatusCode[arg], "it went wrong: 100% ünïcode\nline two")
        elif verb == "refuse":  # a trailers-only response
            await context.abort(grpc.StatusCode[arg], "refused")
        elif verb == "long-error":  # an error message of N bytes
            yield b"a"
            await context.abort(grpc.StatusCode.INTERNAL, "e" * int(arg))
        elif verb == "echo-size":
            yield str(len(request)).encode()
        elif verb == "slow":  # slow:N -> N messages 20 ms apart
            for i in range(int(arg)):
                await asyncio.sleep(0.02)
                yield str(i).encode()

    async def unary(self, request: bytes, context) -> bytes:
        if request.startswith(b"fail:"):
            await context.abort(grpc.StatusCode[request[5:].decode()], "unary failed")
        return b"echo " + request[:64]

    async def hang(self, request: bytes, context):
        self.started += 1
        yield b"first"
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # grpc's server cancels the handler when the client resets the stream
            self.cancelled += 1
            raise


async def serve(probe: Probe, *, options=(), port: int = 0):
    server = grpc.aio.server(options=list(options))
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.unary_stream_rpc_method_handler(probe.stream),
            "Unary": grpc.unary_unary_rpc_method_handler(probe.unary),
            "Hang": grpc.unary_stream_rpc_method_handler(probe.hang),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def probe():
    p = Probe()
    server, url = await serve(p)
    p.url = url
    yield p
    await server.stop(None)


async def read_all(call) -> list[bytes]:
    out = []
    while (m := await call.read()) is not None:
        out.append(m)
    return out


def mute_listener() -> socket.socket:
    """A listening socket on loopback that accepts (the kernel does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def stream(ch: h2c.Channel, request: str | bytes, timeout: float = 10.0, method: str = STREAM):
    raw = request.encode() if isinstance(request, str) else request
    return ch.call(method, Raw(raw), ident, timeout)


# -- pure helpers ------------------------------------------------------------------------------------------------------
def test_request_headers_decode_with_hpack_as_grpc_sends_them():
    """Our header block (literals without indexing, static-table names) read by a real HPACK decoder."""
    ch_fixed = None

    async def build():
        nonlocal ch_fixed
        ch = h2c.Channel("example.internal:8001")
        call = ch.call(STREAM, Raw(b"x"), ident, 12.5)
        ch_fixed = call._header_block
        call.cancel()

    asyncio.run(build())
    fields = hpack.Decoder().decode(ch_fixed, raw=False)
    assert fields == [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "example.internal:8001"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-accept-encoding", "identity"),
        ("user-agent", "modelsvc-gateway"),
        (":path", STREAM),
        ("grpc-timeout", "12500m"),
    ]


@pytest.mark.parametrize("value,prefix", [(0, 7), (126, 7), (127, 7), (128, 7), (1337, 5), (2**20, 4)])
def test_hpack_integers_round_trip_through_a_real_decoder(value, prefix):
    from hpack.hpack import decode_integer

    encoded = h2c._int(value, prefix)
    assert decode_integer(encoded, prefix) == (value, len(encoded))


def test_targets():
    assert h2c.parse_target("triton-0.svc:8001") == ("triton-0.svc", 8001)
    assert h2c.parse_target("dns:///triton.ns.svc:8001") == ("triton.ns.svc", 8001)
    assert h2c.parse_target("[fd00::1]:8001") == ("fd00::1", 8001)
    for bad in ("triton", "triton:", "triton:http", ":8001", "triton:0", "triton:70000", "unix:/tmp/sock"):
        with pytest.raises(ValueError, match="host:port"):
            h2c.parse_target(bad)


def test_grpc_timeout_fits_eight_digits():
    assert h2c.grpc_timeout(0.0001) == "1m"
    assert h2c.grpc_timeout(60) == "60000m"
    assert h2c.grpc_timeout(10**6) == "1000000S"
    assert len(h2c.grpc_timeout(10**12)) <= 9


def test_statuses_from_trailers_and_http():
    assert h2c.status_from_trailers({"grpc-status": "0"}) is None
    f = h2c.status_from_trailers({"grpc-status": "3", "grpc-message": "bad%20input%0A%E2%9C%93"})
    assert f.code() is grpc.StatusCode.INVALID_ARGUMENT and f.details() == "bad input\n✓"
    assert h2c.status_from_trailers({}).code() is grpc.StatusCode.UNKNOWN
    assert h2c.status_from_trailers({"grpc-status": "99"}).code() is grpc.StatusCode.UNKNOWN
    assert h2c.http_status_failure("200") is None
    assert h2c.http_status_failure("503").code() is grpc.StatusCode.UNAVAILABLE
    assert h2c.http_status_failure("404").code() is grpc.StatusCode.UNIMPLEMENTED
    assert h2c.http_status_failure("418").code() is grpc.StatusCode.UNKNOWN


# -- against grpc's server -----------------------------------------------------------------------------------------
@pytest.mark.e2e
async def test_a_stream_and_a_unary_call(probe):
    ch = h2c.Channel(probe.url)
    assert await read_all(stream(ch, "count:5")) == [b"0", b"1", b"2", b"3", b"4"]
    assert await ch.unary(UNARY, Raw(b"hello"), ident, 5) == b"echo hello"
    assert await read_all(stream(ch, "count:0")) == []
    await ch.close()


@pytest.mark.e2e
async def test_a_sink_takes_the_messages_and_read_waits_for_the_end(probe):
    ch = h2c.Channel(probe.url)
    got: list[bytes] = []
    call = ch.call(STREAM, Raw(b"count:30"), ident, 10, sink=got.append)
    assert await call.read() is None
    assert got == [str(i).encode() for i in range(30)]

    class Enough(Exception):
        pass

    def refuse_after_one(message: bytes) -> None:
        if message == b"first":
            raise Enough("the reader's verdict")

    call = ch.call(HANG, Raw(b"x"), ident, 10, sink=refuse_after_one)
    with pytest.raises(Enough):
        await call.read()
    for _ in range(200):  # the stream was reset: the server's handler is cancelled
        if probe.cancelled == 1:
            break
        await asyncio.sleep(0.01)
    assert probe.cancelled == 1 and not ch._conn.calls
    await ch.close()


@pytest.mark.e2e
async def test_many_calls_share_one_connection_and_its_header_table(probe):
    """grpc's server indexes response headers in HPACK's dynamic table: hundreds of calls, concurrent and one after
    another, on one connection read right only if every header block was decoded in order."""
    ch = h2c.Channel(probe.url)
    for _ in range(3):
        results = await asyncio.gather(*(read_all(stream(ch, f"count:{i % 7}")) for i in range(100)))
        assert [len(r) for r in results] == [i % 7 for i in range(100)]
    conn = ch._conn
    assert conn is not None and conn.next_id == 601 and not conn.calls
    await ch.close()


@pytest.mark.e2e
@pytest.mark.parametrize("code", ["INVALID_ARGUMENT", "INTERNAL", "UNAVAILABLE", "RESOURCE_EXHAUSTED"])
async def test_statuses_read_as_grpc_aio_reads_them(probe, code):
    """The same call through grpc.aio and through h2c: the same messages, the same code and details."""
    ch = h2c.Channel(probe.url)
    got, failure = [], None
    call = stream(ch, f"fail:{code}")
    try:
        while (m := await call.read()) is not None:
            got.append(m)
    except h2c.RpcFailure as e:
        failure = e
    async with grpc.aio.insecure_channel(probe.url) as gch:
        ref = gch.unary_stream(STREAM, request_serializer=None, response_deserializer=None)(f"fail:{code}".encode())
        ref_got = []
        with pytest.raises(grpc.aio.AioRpcError) as ref_err:
            async for m in ref:
                ref_got.append(m)
        with pytest.raises(grpc.aio.AioRpcError) as ref_trailers_only:
            await gch.unary_stream(STREAM)(f"refuse:{code}".encode()).read()
    assert got == ref_got == [b"a", b"b"]
    assert failure is not None and failure.code() is ref_err.value.code() is grpc.StatusCode[code]
    assert failure.details() == ref_err.value.details() == "it went wrong: 100% ünïcode\nline two"
    with pytest.raises(h2c.RpcFailure) as only:
        await stream(ch, f"refuse:{code}").read()
    assert (only.value.code(), only.value.details()) == (ref_trailers_only.value.code(), "refused")
    with pytest.raises(h2c.RpcFailure) as unary:
        await ch.unary(UNARY, Raw(f"fail:{code}".encode()), ident, 5)
    assert unary.value.code() is grpc.StatusCode[code] and unary.value.details() == "unary failed"
    await ch.close()


@pytest.mark.e2e
async def test_a_long_error_message_fails_its_call_only(probe):
    """grpc's server sends a 100 kB grpc-message as it is (over hpack's 64 KiB default list size): the call gets
    it, the connection and the other calls on it go on."""
    ch = h2c.Channel(probe.url)
    other = stream(ch, "slow:5")
    assert await other.read() == b"0"
    with pytest.raises(h2c.RpcFailure) as e:
        await read_all(stream(ch, "long-error:100000"))
    assert e.value.code() is grpc.StatusCode.INTERNAL and e.value.details() == "e" * 100000
    assert await read_all(other) == [b"1", b"2", b"3", b"4"]
    await ch.close()


@pytest.mark.e2e
async def test_unknown_method_is_unimplemented(probe):
    ch = h2c.Channel(probe.url)
    with pytest.raises(h2c.RpcFailure) as e:
        await ch.unary(f"/{SERVICE}/Nope", Raw(b""), ident, 5)
    assert e.value.code() is grpc.StatusCode.UNIMPLEMENTED
    await ch.close()


@pytest.mark.e2e
async def test_the_deadline_goes_to_the_server_and_is_kept_here(probe):
    ch = h2c.Channel(probe.url)
    await read_all(stream(ch, "count:1", timeout=30))
    assert 25 < probe.seen_timeouts[-1] <= 30  # grpc-timeout reached the server's context
    call = stream(ch, "x", timeout=0.3, method=HANG)
    assert await call.read() == b"first"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(h2c.RpcFailure) as e:
        await call.read()
    assert e.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert loop.time() - t0 < 2
    await ch.close()


@pytest.mark.e2e
async def test_cancel_resets_the_stream_and_the_server_sees_it(probe):
    ch = h2c.Channel(probe.url)
    call = stream(ch, "x", method=HANG)
    assert await call.read() == b"first"
    call.cancel()
    with pytest.raises(h2c.RpcFailure) as e:
        await call.read()
    assert e.value.code() is grpc.StatusCode.CANCELLED
    for _ in range(200):
        if probe.cancelled == 1:
            break
        await asyncio.sleep(0.01)
    assert probe.cancelled == 1

    # a task cancelled inside read() resets the call the same way
    call = stream(ch, "x", method=HANG)
    assert await call.read() == b"first"
    task = asyncio.ensure_future(call.read())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if probe.cancelled == 2:
            break
        await asyncio.sleep(0.01)
    assert probe.cancelled == 2 and not ch._conn.calls
    # the connection goes on serving
    assert await read_all(stream(ch, "count:2")) == [b"0", b"1"]
    await ch.close()


@pytest.mark.e2e
async def test_large_messages_both_ways_respect_flow_control_and_frame_size(probe):
    """A 3 MB request (over the server's 64 KiB initial window and its 16 KiB frames) and a 40 MB response (over our
    16 MiB windows: credited as read, or the server stalls) arrive whole."""
    ch = h2c.Channel(probe.url)
    request = b"echo-size:" + b"y" * 3_000_000
    assert await read_all(stream(ch, request)) == [str(len(request)).encode()]
    big = await read_all(stream(ch, f"big:{40_000_000}", timeout=60))
    assert len(big) == 1 and len(big[0]) == 40_000_000 and big[0] == b"x" * 40_000_000
    # several large ones at once on the one connection
    sizes = [1_000_000 + i for i in range(6)]
    results = await asyncio.gather(*(read_all(stream(ch, f"big:{n}", timeout=60)) for n in sizes))
    assert [len(r[0]) for r in results] == sizes
    await ch.close()


@pytest.mark.e2e
async def test_a_message_over_the_limit_fails_the_call(probe):
    ch = h2c.Channel(probe.url, max_message_bytes=1000)
    with pytest.raises(h2c.RpcFailure) as e:
        await read_all(stream(ch, "big:5000"))
    assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await read_all(stream(ch, "big:900")) == [b"x" * 900]
    await ch.close()


@pytest.mark.e2e
async def test_calls_beyond_max_concurrent_streams_wait_for_a_slot():
    probe = Probe()
    server, url = await serve(probe, options=[("grpc.max_concurrent_streams", 2)])
    ch = h2c.Channel(url)
    try:
        results = await asyncio.gather(*(read_all(stream(ch, "slow:3")) for _ in range(7)))
        assert results == [[b"0", b"1", b"2"]] * 7
        assert ch._conn.max_streams == 2
    finally:
        await ch.close()
        await server.stop(None)


async def test_refused_connection_is_unavailable_and_backs_off():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ch = h2c.Channel(f"127.0.0.1:{port}")
    with pytest.raises(h2c.RpcFailure) as e:
        await ch.unary(UNARY, Raw(b""), ident, 5)
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE and "failed to connect" in e.value.details()
    first = e.value
    with pytest.raises(h2c.RpcFailure) as again:  # within the back-off: the same failure, no new dial
        await ch.unary(UNARY, Raw(b""), ident, 5)
    assert again.value is first and ch._connecting is None
    await ch.close()


@pytest.mark.e2e
async def test_a_peer_that_never_speaks_http2_fails_the_connect():
    listener = mute_listener()
    ch = h2c.Channel(f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=0.3)
    try:
        with pytest.raises(h2c.RpcFailure) as e:
            await ch.unary(UNARY, Raw(b""), ident, 5)
        assert e.value.code() is grpc.StatusCode.UNAVAILABLE and "timed out" in e.value.details()
    finally:
        await ch.close()
        listener.close()


@pytest.mark.e2e
@pytest.mark.parametrize("code,status", [(2, grpc.StatusCode.INTERNAL), (7, grpc.StatusCode.UNAVAILABLE)])
async def test_rst_stream_maps_as_the_grpc_spec_says(code, status):
    peer = ResettingPeer(error_code=code)
    ch = h2c.Channel(peer.url)
    try:
        with pytest.raises(h2c.RpcFailure) as e:
            await read_all(stream(ch, "count:1"))
        assert e.value.code() is status and e.value.details() == f"Received RST_STREAM with error code {code}"
    finally:
        await ch.close()
        peer.close()


@pytest.mark.e2e
async def test_server_shutdown_drains_then_the_channel_reconnects():
    """grpc's server stopping with a grace sends GOAWAY: the call in flight finishes, the next call dials anew (a
    restarted server on the same port)."""
    probe = Probe()
    server, url = await serve(probe)
    ch = h2c.Channel(url)
    call = stream(ch, "slow:10")
    assert await call.read() == b"0"
    stopping = asyncio.ensure_future(server.stop(5))
    rest = await read_all(call)
    assert rest == [str(i).encode() for i in range(1, 10)]
    await stopping
    with pytest.raises(h2c.RpcFailure) as e:
        await read_all(stream(ch, "count:1"))
    assert e.value.code() is grpc.StatusCode.UNAVAILABLE
    ch._failed_until = 0  # skip the back-off
    server, _ = await serve(probe, port=int(url.rsplit(":", 1)[1]))
    try:
        assert await read_all(stream(ch, "count:2")) == [b"0", b"1"]
    finally:
        await ch.close()
        await server.stop(None)


@pytest.mark.e2e
async def test_a_connection_lost_mid_stream_fails_its_calls_as_unavailable():
    probe = Probe()
    server, url = await serve(probe)
    ch = h2c.Channel(url)
    call = stream(ch, "x", method=HANG)
    assert await call.read() == b"first"
    await server.stop(None)  # no grace: connections closed at once
    with pytest.raises(h2c.RpcFailure) as e:
        await call.read()
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    await ch.close()


class SilentPeer:
    """Speaks the HTTP/2 preface and SETTINGS, then never answers anything (a half-dead peer); `then`: bytes it
    sends after its SETTINGS (a hostile peer)."""

    def __init__(self, then: bytes = b"", on_call: bool = False):
        self.then, self.on_call = then, on_call
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + (b"" if self.on_call else self.then))
            if self.on_call:
                threading.Thread(target=self._on_call, args=(conn,), daemon=True).start()

    def _on_call(self, conn: socket.socket) -> None:
        seen = b""
        while (data := conn.recv(65536)) and STREAM.encode() not in (seen := seen + data):
            pass
        conn.sendall(self.then)

    def close(self):
        for c in self._conns:
            c.close()
        self._sock.close()


@pytest.mark.e2e
async def test_keepalive_drops_a_connection_whose_peer_stopped_answering():
    peer = SilentPeer()
    ch = h2c.Channel(peer.url, keepalive_s=0.1, keepalive_timeout_s=0.2)
    try:
        with pytest.raises(h2c.RpcFailure) as e:
            await read_all(stream(ch, "count:1", timeout=30))
        assert e.value.code() is grpc.StatusCode.UNAVAILABLE and "keepalive" in e.value.details()
    finally:
        await ch.close()
        peer.close()


@pytest.mark.e2e
async def test_close_cancels_calls_in_flight(probe):
    ch = h2c.Channel(probe.url)
    call = stream(ch, "x", method=HANG)
    assert await call.read() == b"first"
    await ch.close()
    with pytest.raises(h2c.RpcFailure) as e:
        await call.read()
    assert e.value.code() is grpc.StatusCode.CANCELLED


@pytest.mark.e2e
@pytest.mark.parametrize(
    "then,why",
    [
        (b"\x10\x00\x00\x00\x00\x00\x00\x00\x01", "FRAME_SIZE_ERROR"),  # a 1 MiB DATA frame announced
        # HEADERS without END_HEADERS, then CONTINUATION frames without end
        (h2c._frame(1, 0, 1, b"\x88") + h2c._frame(9, 0, 1, b"\x00" * 16000) * 70, "over 1 MiB"),
        (h2c._frame(5, 4, 1, b"\x00\x00\x00\x02"), "PUSH_PROMISE"),
        (h2c._frame(4, 0, 0, b"\x00\x05\x00\x00\x00\x00"), "SETTINGS_MAX_FRAME_SIZE 0"),  # we could send nothing
    ],
)
@pytest.mark.parametrize("on_call", [True, False])
async def test_a_hostile_peer_fails_the_connection_at_once(then, why, on_call):
    """Nothing is buffered without bound and nothing waits for a deadline: the call fails with the protocol error
    (as the connect's failure when it comes before any call: the channel does not dial it again and again)."""
    peer = SilentPeer(then, on_call=on_call)
    ch = h2c.Channel(peer.url)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        with pytest.raises(h2c.RpcFailure) as e:
            await read_all(stream(ch, "count:1", timeout=30))
        # sent at once, the bytes may land before or after the call started (it depends on the reads): either way
        codes = {grpc.StatusCode.INTERNAL} if on_call else {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}
        assert e.value.code() in codes and why in e.value.details()
        assert loop.time() - t0 < 5
    finally:
        await ch.close()
        peer.close()


@pytest.mark.e2e
@pytest.mark.parametrize("on_call", [True, False])
async def test_a_peer_going_away_at_once_is_unavailable_not_redialled(on_call):
    """GOAWAY (last stream 0) as the connection opens, or as the call arrives: UNAVAILABLE (never processed: safe to
    retry elsewhere), at once, and within the back-off the channel does not dial again."""
    goaway = h2c._frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00shutting down")
    peer = SilentPeer(goaway, on_call=on_call)
    ch = h2c.Channel(peer.url)
    try:
        with pytest.raises(h2c.RpcFailure) as e:
            await read_all(stream(ch, "count:1", timeout=30))
        assert e.value.code() is grpc.StatusCode.UNAVAILABLE and "going away (shutting down)" in e.value.details()
        assert ch._connecting is None
    finally:
        await ch.close()
        peer.close()


@pytest.mark.e2e
async def test_closing_the_channel_while_it_connects_closes_the_socket():
    listener = mute_listener()
    ch = h2c.Channel(f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=30)
    call = stream(ch, "count:1")
    reading = asyncio.ensure_future(call.read())
    loop = asyncio.get_running_loop()
    accepted, _ = await loop.run_in_executor(None, listener.accept)  # connected; the peer never speaks HTTP/2
    await ch.close()
    with pytest.raises(h2c.RpcFailure) as e:
        await reading
    assert e.value.code() is grpc.StatusCode.CANCELLED
    accepted.settimeout(5)
    data = b""
    while chunk := await loop.run_in_executor(None, accepted.recv, 65536):  # b"": the gateway closed its side
        data += chunk
    # closed (a socket left open times the recv out instead); the preface went out only if the loop had seen the
    # connection made before close(), which the accept in another thread does not order
    assert data == b"" or data.startswith(b"PRI * HTTP/2.0"), data
    accepted.close()
    listener.close()


@pytest.mark.e2e
async def test_a_header_table_resize_is_acknowledged_in_the_next_header_block():
    """RFC 7541 4.2: after the server's SETTINGS_HEADER_TABLE_SIZE the next header block (only that one) starts with
    a table size update (0: we never index); a real HPACK decoder with the new limit reads it."""
    settings = h2c._frame(4, 0, 0, b"\x00\x01\x00\x00\x00\x00")  # HEADER_TABLE_SIZE 0, sent on the first call
    peer = SilentPeer(settings, on_call=True)
    seen: list[bytes] = []
    original = h2c._Connection._write

    def spy(self, data):
        seen.append(data)
        original(self, data)

    h2c._Connection._write = spy
    ch = h2c.Channel(peer.url)
    blocks = []
    try:
        for n in range(3):
            before = len(seen)
            with pytest.raises(h2c.RpcFailure):  # the silent peer never answers
                await stream(ch, "count:1", timeout=0.3).read()
            head = next(d for d in seen[before:] if len(d) > 9 and d[3] == 1)  # the write starting with HEADERS
            blocks.append(head[9 : 9 + int.from_bytes(head[:3], "big")])
            if n == 0:
                for _ in range(500):  # until the connection read the peer's SETTINGS
                    if ch._conn is not None and ch._conn._table_update:
                        break
                    await asyncio.sleep(0.01)
                assert ch._conn._table_update
    finally:
        h2c._Connection._write = original
        await ch.close()
        peer.close()
    assert [b[0] == 0x20 for b in blocks] == [False, True, False]
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 0
    assert (":path", STREAM) in decoder.decode(blocks[1], raw=False)
