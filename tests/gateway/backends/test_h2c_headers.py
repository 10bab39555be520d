"""h2c's header-block cache against hpack itself (hypothesis): whatever a server's encoder sends (fields added to the
dynamic table, evicted, never indexed, Huffman or not, table size updates), each block decodes as a fresh hpack
decoder fed the same blocks decodes it, and repeated blocks that leave the table unchanged come from the cache."""

from __future__ import annotations

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.backends import h2c

NAMES = st.sampled_from([":status", "content-type", "grpc-status", "grpc-message", "x-a", "x-b", "grpc-encoding"])
VALUES = st.sampled_from(["", "0", "200", "application/grpc", "identity", "ok", "x" * 40, "é"]) | st.text(max_size=60)
HEADERS = st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=5)
# a step: the header list, whether its fields go never-indexed, Huffman, a new table size before it (None: none)
STEP = st.tuples(HEADERS, st.booleans(), st.booleans(), st.none() | st.sampled_from([0, 64, 256, 4096]))


def connection() -> h2c._Connection:
    conn = h2c._Connection.__new__(h2c._Connection)  # only the header state: no channel, no transport
    conn.decoder = hpack.Decoder(max_header_list_size=h2c._MAX_HEADER_LIST)
    conn._decoded = {}
    return conn


def blocks(steps) -> list[bytes]:
    encoder = hpack.Encoder()
    out = []
    for headers, sensitive, huffman, size in steps:
        if size is not None:
            encoder.header_table_size = size
        fields = [hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers] if sensitive else headers
        out.append(encoder.encode(fields, huffman=huffman))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=12), st.lists(st.integers(0, 11), max_size=12))
def test_every_block_decodes_as_a_fresh_decoder_decodes_it(steps, repeats):
    sent = blocks(steps)
    # a server repeats the same bytes when the table already holds the fields: send some blocks again as they are
    for i in repeats:
        if i < len(sent):
            sent.append(sent[i])
    conn, reference = connection(), hpack.Decoder(max_header_list_size=h2c._MAX_HEADER_LIST)
    for block in sent:
        try:
            want = [(str(k), str(v)) for k, v in reference.decode(block, raw=False)]
        except Exception:  # a repeated block that only made sense before the table moved on: both refuse it
            try:
                got = conn._decoded.get(block) or conn._decode(block)
            except h2c._ProtocolError:
                return
            raise AssertionError(f"decoded {got} where hpack refuses the block") from None
        got = conn._decoded.get(block) or conn._decode(block)
        assert got == want, block


def test_a_servers_repeated_grpc_blocks_come_from_the_cache():
    encoder, conn = hpack.Encoder(), connection()
    head = [(":status", "200"), ("content-type", "application/grpc")]
    trailers = [("grpc-status", "0"), hpack.NeverIndexedHeaderTuple("grpc-message", "")]
    first = encoder.encode(head), encoder.encode(trailers)
    again = encoder.encode(head), encoder.encode(trailers)
    assert again != first  # the first added the fields to the table; the repeat indexes them
    for block in first:
        conn._decode(block)
    assert conn._decoded == {}  # each changed the table
    want = [head, [("grpc-status", "0"), ("grpc-message", "")]]
    for _ in range(2):
        assert [conn._decoded.get(b) or conn._decode(b) for b in again] == want
    assert set(conn._decoded) == set(again)
    conn._decode(encoder.encode([("x-new", "1")]))  # a new field: the table moved, the cache is emptied
    assert conn._decoded == {}
