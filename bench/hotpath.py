"""The per-token hot path in a loop, each step against its baseline measured in the same run.

Every answer costs these once per token: the OpenAI-compatible client's read of one SSE chunk (HTTP/1 chunk framing,
the event's lines, the chunk's JSON) and the Triton client's read of one response (HTTP/2 DATA frame, gRPC message,
the ModelStreamInferResponse). Each line prints microseconds per token, best of `--repeat` rounds, for the path the
gateway takes and for the general path it falls back to (the chunk parsed by orjson, the response by protobuf),
and their ratio. Triton's responses are the stand-in engine's own bytes (devtools/standin, run in this process).
`python -m bench.hotpath` (docs/benchmarks.md, part six).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.backends import h2c, http1
from gateway.backends import triton_wire as wire
from gateway.backends.assemble import Assembly
from gateway.backends.base import GenRequest, Sampling
from gateway.backends.openai import _Answer
from gateway.backends.triton import TritonInstance

WORDS = [" umber", " maple", " amber", " cedar", " lumen", " cobalt", " onyx", " velvet"]
CHUNK = (
    '{"id":"chatcmpl-dc461701bc424bac9de697c529922071","object":"chat.completion.chunk","created":1753616032,'
    '"model":"Qwen/Qwen3-0.6B","choices":[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}'
)  # vLLM's shape (tests/gateway/backends/test_openai_chunks.py)
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def best(fn: Callable[[], int], repeat: int) -> float:
    """Microseconds per token of fn() (which returns the tokens it handled), the best of `repeat` rounds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = fn()
        times.append((time.perf_counter() - start) / tokens * 1e6)
    return min(times)


def chunks(n: int) -> list[bytes]:
    return [(CHUNK % orjson.dumps(WORDS[i % len(WORDS)]).decode()).encode() for i in range(n)]


def openai_take(answers: int, template: bool) -> Callable[[], int]:
    payloads = chunks(24)

    def run() -> int:
        for _ in range(answers):
            a = _Answer(GenRequest("", Sampling(max_tokens=24)))
            if not template:
                a.template.tries = 1 << 30  # never learns: every chunk parsed
            out: list[Any] = []
            for p in payloads:
                a.feed([p], out)  # a chunk a read, as a paced stream's come
        return answers * len(payloads)

    return run


def http1_reads(answers: int, line_end: bytes) -> Callable[[], int]:
    """One SSE event per read through the response's callback, into the answer (a collected answer's path)."""
    events = [b"data: " + p + line_end for p in chunks(24)] + [b"data: [DONE]" + line_end]
    reads = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    reads[-1] += b"0\r\n\r\n"

    class Conn:
        transport = None
        closed = False

    def run() -> int:
        for _ in range(answers):
            r = http1._Response(None, Conn(), 60.0)  # type: ignore[arg-type]  # no client: never pooled
            r.received(HEAD)
            a = _Answer(GenRequest("", Sampling(max_tokens=24)))
            r._line, r._sink = [], a.feed  # what sink() sets up
            for data in reads:
                r.received(data)
            assert a.done
        return answers * len(reads)

    return run


async def triton_messages() -> tuple[list[bytes], TritonInstance]:
    """The stand-in engine's ModelStreamInferResponse bytes for one 24-token answer, and the (closed) instance that
    read them: its layout of the model, and its own way of taking a response into the answer."""
    from tritonclient.grpc import service_pb2

    from devtools.standin.testing import StandInThread

    recorded: list[bytes] = []
    parse = service_pb2.ModelStreamInferResponse.FromString

    def spy(data: bytes) -> Any:
        recorded.append(bytes(data))
        return parse(data)

    standin = StandInThread("chat").start()
    try:
        inst = TritonInstance(standin.url, "ensemble")
        await inst.start()
        opened = inst._open_stream

        def recording(request: Any, sink: Any = None, plain: bool = False) -> h2c.Call:
            call = opened(request, sink)
            call._parse = spy
            return call

        inst._open_stream = recording  # type: ignore[method-assign]
        await inst.generate(GenRequest("hello there " * 20, Sampling(24)))
        await inst.close()
        return recorded[:-1], inst  # the last: the final response
    finally:
        standin.stop()


def triton_reads(messages: list[bytes], inst: TritonInstance, answers: int, how: str) -> Callable[[], int]:
    """Each message as its DATA frame through the connection's callback into the answer: read through the
    template ('template'), through its general read ('general': without the usual layout's one-piece read), or
    parsed by protobuf ('protobuf')."""
    from tritonclient.grpc import service_pb2

    parse = service_pb2.ModelStreamInferResponse.FromString
    frames = [h2c._frame(0, 0, 1, b"\x00" + len(m).to_bytes(4, "big") + m) for m in messages]

    class Channel:
        max_message_bytes = 1 << 26

        def __init__(self) -> None:
            self.loop = asyncio.get_running_loop()

        def _unqueue(self, call: h2c.Call) -> None:
            pass

    def run() -> int:
        for _ in range(answers):
            conn = h2c._Connection.__new__(h2c._Connection)  # its receive side only
            conn.calls, conn.recv_unacked, conn._buf, conn._block, conn.transport = {}, 0, b"", [], None
            assembly = Assembly(GenRequest("", Sampling(max_tokens=24)), stream=False)
            template = wire.StreamTemplate(parse, inst._layout)

            def take(m: Any, assembly: Assembly = assembly) -> None:  # what a collected call's take does
                inst._take(assembly, inst._response(m, False), False)

            reader = parse if how == "protobuf" else template.parse
            call = h2c.Call(Channel(), b"", b"", reader, 60.0, take)  # type: ignore[arg-type]
            call.id = 1
            conn.calls[1] = call
            for i, frame in enumerate(frames):
                conn.data_received(frame)
                if i == 1 and how == "general":
                    template._tail = None
            assert call._timer is not None
            call._timer.cancel()
            assert assembly.responses == len(frames)
        return answers * len(frames)

    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=300, help="24-token answers per round")
    p.add_argument("--repeat", type=int, default=7, help="rounds (the best is printed)")
    asyncio.run(measure(p.parse_args(argv)))


async def measure(a: argparse.Namespace) -> None:
    """In a running loop, as the gateway's callbacks run (no await between the steps measured)."""
    messages, inst = await triton_messages()
    rows = [
        ("openai: one chunk's JSON (feed)", openai_take(a.answers, True), openai_take(a.answers, False), "parsed"),
        (
            "openai: one read of one event, into the answer",
            http1_reads(a.answers, b"\n\n"),
            http1_reads(a.answers, b"\r\n\r\n"),
            "CRLF lines (split)",
        ),
        (
            "triton: one response's frame, into the answer",
            triton_reads(messages, inst, a.answers, "template"),
            triton_reads(messages, inst, a.answers, "protobuf"),
            "protobuf",
        ),
        (
            "triton: the same, template without its one-piece read",
            triton_reads(messages, inst, a.answers, "general"),
            triton_reads(messages, inst, a.answers, "protobuf"),
            "protobuf",
        ),
    ]
    print(f"µs per token, best of {a.repeat} rounds of {a.answers} answers of 24 tokens")
    for name, ours, baseline, what in rows:
        mine, theirs = 0.0, 0.0
        for _ in range(2):  # alternated, so drift hits both
            mine, theirs = best(ours, a.repeat), best(baseline, a.repeat)
        print(f"  {name:55} {mine:6.2f}   {what}: {theirs:6.2f}   ratio {mine / theirs:.3f}")


if __name__ == "__main__":
    main()
