"""The floor under a stream chunk: what relaying one chunk costs on this machine with nothing but the event loop.

A uvloop process reads each message from one loopback TCP connection and writes it to another (one read, one write,
one wake-up of the loop: what any gateway does per token at least), messages 2 ms apart as the bench's streams
are; its CPU per message is the floor the gateway's `+ms/chunk` is reported against. Source and sink run in their
own processes (on the upstream cores when the bench pins). `python -m bench.floor` prints it alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time

MESSAGES = 2000
DELAY_S = 0.002
CHUNK = b"data: " + b"x" * 90 + b"\n\n"  # about one SSE chunk


def _serve(ports: mp.Queue, send: bool, cpus: set[int] | None, messages: int) -> None:
    import uvloop

    if cpus:
        os.sched_setaffinity(0, cpus)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if send:
            for _ in range(messages):
                writer.write(CHUNK)
                await asyncio.sleep(DELAY_S)
            writer.close()
        else:
            while await reader.read(65536):
                pass

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    uvloop.run(main())


class _Out(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]


class _In(asyncio.Protocol):
    def __init__(self, out: _Out, done: asyncio.Future[None]):
        self.out, self.done = out, done

    def data_received(self, data: bytes) -> None:
        self.out.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _relay(source: int, sink: int, messages: int) -> float:
    loop = asyncio.get_running_loop()
    _, out = await loop.create_connection(_Out, "127.0.0.1", sink)
    done: asyncio.Future[None] = loop.create_future()
    start = time.process_time()
    await loop.create_connection(lambda: _In(out, done), "127.0.0.1", source)
    await done
    cpu = time.process_time() - start
    out.transport.close()
    return cpu * 1000 / messages


def relay_floor_ms(
    relay_cpus: set[int] | None = None, side_cpus: set[int] | None = None, messages: int = MESSAGES
) -> float:
    """CPU ms per relayed chunk (the relay runs in a child process pinned to `relay_cpus`)."""
    ctx = mp.get_context("spawn")
    ports: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_serve, args=(ports, send, side_cpus, messages), daemon=True) for send in (True, False)]
    try:
        procs[0].start()
        source = ports.get(timeout=30)
        procs[1].start()
        sink = ports.get(timeout=30)
        result: mp.Queue = ctx.Queue()
        relay = ctx.Process(target=_relay_main, args=(source, sink, relay_cpus, messages, result), daemon=True)
        relay.start()
        ms = result.get(timeout=120)
        relay.join(5)
        return ms
    finally:
        for p in procs:
            p.terminate()


def _relay_main(source: int, sink: int, cpus: set[int] | None, messages: int, result: mp.Queue) -> None:
    import uvloop

    if cpus:
        os.sched_setaffinity(0, cpus)
    result.put(uvloop.run(_relay(source, sink, messages)))


if __name__ == "__main__":
    print(f"relay floor: {relay_floor_ms():.4f} CPU ms per chunk ({MESSAGES} chunks, {DELAY_S * 1000:.0f} ms apart)")
