"""The HTTP/1.1 client's response parser against generated responses (hypothesis): whatever the chunk sizes,
extensions, trailers and the cuts between reads, the body read back is the body sent, the events read back are the
`data:` lines sent, and the response ends exactly where its framing says. No sockets: the bytes go straight into the
parser, the way the connection's callback hands them over."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.backends.http1 import Http1, _Conn, _Response

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked(pieces: list[bytes], extensions: list[bool], trailers: list[bytes]) -> bytes:
    out = []
    for piece, ext in zip(pieces, extensions, strict=True):
        out.append(b"%X%s\r\n%s\r\n" % (len(piece), b";name=v" if ext else b"", piece))
    out.append(b"0\r\n" + b"".join(b"x-t%d: %s\r\n" % (i, t) for i, t in enumerate(trailers)) + b"\r\n")
    return b"".join(out)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks)]


def parse(reads: list[bytes], events: bool) -> tuple[list[bytes], _Response]:
    """Feed the reads to a response and take what its reader would get."""

    async def run() -> tuple[list[bytes], _Response]:
        client = Http1("http://127.0.0.1:9", {}, read_timeout=5, connect_timeout=5)
        conn = _Conn()
        r = conn.response = _Response(client, conn, 5)
        got: list[bytes] = []
        for data in reads:
            r.received(data)
            if events and r._line is None and r.status:  # the head is in: read on as events (as the backend does)
                r.events()
        while r._ready:
            got += r._ready.popleft()[0]
        return got, r

    return asyncio.run(run())


pieces = st.lists(st.binary(min_size=1, max_size=300), max_size=8)


@settings(max_examples=300, deadline=None)
@given(pieces, st.data(), st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_a_chunked_body_reads_back_whole_however_it_is_cut(body_pieces, data, points):
    extensions = data.draw(st.lists(st.booleans(), min_size=len(body_pieces), max_size=len(body_pieces)))
    trailers = data.draw(st.lists(st.sampled_from([b"1", b"abc"]), max_size=2))
    wire = HEAD + chunked(body_pieces, extensions, trailers)
    got, r = parse(cut(wire, points), events=False)
    assert b"".join(got) == b"".join(body_pieces)
    assert r._phase == 2 and r._error is None and r._keep  # ended, cleanly, reusable


lines = st.lists(st.binary(min_size=0, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=6)


@settings(max_examples=300, deadline=None)
@given(lines, st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6), st.lists(st.integers(0, 4000)))
def test_events_read_back_as_sent_however_chunks_and_reads_cut_them(payloads, sizes, points):
    stream = b"".join(b"data: %s\n\n: comment\n" % p for p in payloads)
    body_pieces, i, k = [], 0, 0
    while i < len(stream):
        body_pieces.append(stream[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    wire = HEAD + chunked(body_pieces, [False] * len(body_pieces), [])
    got, r = parse(cut(wire, points), events=True)
    assert got == [p.strip() for p in payloads]
    assert r._phase == 2 and r._error is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.lists(st.integers(0, 400)))
def test_bytes_after_the_body_make_the_connection_not_reusable(extra, points):
    wire = HEAD + chunked([b"hello"], [False], []) + extra
    got, r = parse(cut(wire, points), events=False)
    assert b"".join(got) == b"hello" and r._phase == 2 and not r._keep
