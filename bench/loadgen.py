"""The load generator: its own process, pinned to its own core, uvloop + a raw asyncio HTTP/1.1 client with
keep-alive (no httpx/aiohttp: the client must cost far less than what it measures).

    python -m bench.loadgen   (one JSON job per stdin line → one JSON result per stdout line; stays warm)

Jobs:

* ``open``: open loop. Request i is *scheduled* at t0 + i/rate whatever happened before; latency is measured from
  the scheduled time (so queueing anywhere, the generator included, shows: no coordinated omission). ``lag`` is how
  late the generator actually sent (its own saturation).
* ``closed``: ``concurrency`` connections each send back-to-back for ``duration`` s: max throughput.
* ``hold``: open ``concurrency`` streams (ramped), print ``ready <n>`` on stderr once every one has its first byte,
  then read them to the end (the parent samples the gateway's RSS in between).

Targets: ``http`` (host, port, path, headers, body) or ``triton`` (the gateway's own Triton client, straight to the
engine: the floor of the Triton path, paying the same gRPC client the gateway pays).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time

import orjson

TIMEOUT_S = 10.0


class _Resp:
    __slots__ = ("error", "events", "fut", "status", "t_done", "t_first")

    def __init__(self, fut):
        self.fut = fut
        self.status = 0
        self.t_first = 0.0
        self.t_done = 0.0
        self.events = 0
        self.error = ""


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time. Parses content-length and chunked bodies; for
    streams it counts SSE events (b"data:") and stamps the first body byte."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.resp: _Resp | None = None
        self.closed = False
        self._state = 0  # 0 head, 1 fixed body, 2 chunk size, 3 chunk data, 4 chunk trailer
        self._need = 0
        self._chunked = False
        self._keep = True

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self.resp is not None and not self.resp.fut.done():
            self.resp.error = "connection lost"
            self.resp.fut.set_result(self.resp)

    def send(self, data: bytes) -> _Resp:
        self.resp = _Resp(asyncio.get_running_loop().create_future())
        self._state = 0
        self.transport.write(data)
        return self.resp

    def _done(self):
        r = self.resp
        r.t_done = time.perf_counter()
        self.resp = None
        if not self._keep:
            self.closed = True
            self.transport.close()
        if not r.fut.done():
            r.fut.set_result(r)

    def _body(self, data):
        r = self.resp
        if not r.t_first:
            r.t_first = time.perf_counter()
        r.events += data.count(b"data:")

    def data_received(self, data):
        if self.resp is None:
            return
        self.buf += data
        buf = self.buf
        while self.resp is not None:
            st = self._state
            if st == 0:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(buf[:i]).lower()
                del buf[: i + 4]
                self.resp.status = int(head[9:12])
                self._chunked = b"transfer-encoding: chunked" in head
                self._keep = b"connection: close" not in head
                if self._chunked:
                    self._state = 2
                else:
                    j = head.find(b"content-length:")
                    end = head.find(b"\r\n", j)
                    self._need = int(head[j + 15 : end if end > 0 else len(head)]) if j >= 0 else 0
                    self._state = 1
            elif st == 1:
                if len(buf) < self._need:
                    return
                if self._need:
                    self._body(bytes(buf[: self._need]))
                del buf[: self._need]
                self._done()
            elif st == 2:
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                self._need = int(bytes(buf[:i]).split(b";")[0], 16)
                del buf[: i + 2]
                self._state = 3 if self._need else 4
            elif st == 3:
                if len(buf) < self._need + 2:
                    return
                self._body(bytes(buf[: self._need]))
                del buf[: self._need + 2]
                self._state = 2
            else:  # trailer after the last chunk
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                del buf[: i + 2]
                if i == 0:
                    self._done()


class HttpTarget:
    def __init__(self, spec: dict):
        self.host, self.port = spec["host"], spec["port"]
        body = spec["body"].encode() if isinstance(spec["body"], str) else orjson.dumps(spec["body"])
        headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
        self.request = (
            f"POST {spec['path']} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{headers}\r\n"
        ).encode() + body
        self.idle: list[HttpConn] = []
        self.opened = 0

    async def _conn(self) -> HttpConn:
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                return c
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(HttpConn, self.host, self.port)
        self.opened += 1
        return c

    async def prewarm(self, n: int) -> None:
        conns = []
        for i in range(0, n, 50):
            conns += await asyncio.gather(*(self._conn() for _ in range(min(50, n - i))))
        self.idle.extend(conns)

    async def one(self):
        """→ (ok, t_first, t_done, events, error)"""
        c = None
        try:
            c = await self._conn()
            r = await asyncio.wait_for(c.send(self.request).fut, TIMEOUT_S)
        except Exception as e:
            if c is not None and c.transport:
                c.closed = True
                c.transport.close()
            return False, 0.0, time.perf_counter(), 0, type(e).__name__
        if r.error:
            return False, r.t_first, time.perf_counter(), r.events, r.error
        if not c.closed:
            self.idle.append(c)
        return r.status == 200, r.t_first, r.t_done, r.events, "" if r.status == 200 else f"http {r.status}"

    async def close(self):
        for c in self.idle:
            if c.transport:
                c.transport.close()


class TritonTarget:
    def __init__(self, spec: dict):
        from gateway.backends.base import GenRequest, Sampling
        from gateway.backends.triton import TritonInstance

        self.backend = TritonInstance(spec["url"], spec.get("model", "ensemble"))
        self.stream = spec.get("stream", False)
        self.make = lambda: GenRequest(spec["prompt"], Sampling(spec["max_tokens"]))
        self.opened = 1

    async def prewarm(self, n: int) -> None:
        await self.backend.start()

    async def one(self):
        try:
            if not self.stream:
                await asyncio.wait_for(self.backend.generate(self.make()), TIMEOUT_S)
                return True, 0.0, time.perf_counter(), 0, ""
            first, n = 0.0, 0
            async with asyncio.timeout(TIMEOUT_S):
                async for _item in self.backend.stream(self.make()):
                    if not first:
                        first = time.perf_counter()
                    n += 1
            return True, first, time.perf_counter(), n, ""
        except Exception as e:
            return False, 0.0, time.perf_counter(), 0, type(e).__name__

    async def close(self):
        await self.backend.close()


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def _summary(samples, errors: dict, wall: float, lags: list[float]) -> dict:
    """samples: (latency_s, ttft_s, events)."""
    lat = [s[0] * 1000 for s in samples]
    ttft = [s[1] * 1000 for s in samples if s[1] > 0]
    n_err = sum(errors.values())
    total = len(samples) + n_err
    return {
        "requests": total,
        "ok": len(samples),
        "errors": n_err,
        "error_kinds": errors,
        "error_rate": n_err / total if total else 0.0,
        "throughput_rps": len(samples) / wall if wall else 0.0,
        "p50_ms": _pct(lat, 50),
        "p90_ms": _pct(lat, 90),
        "p99_ms": _pct(lat, 99),
        "max_ms": max(lat, default=0.0),
        "mean_ms": sum(lat) / len(lat) if lat else 0.0,
        "ttft_p50_ms": _pct(ttft, 50),
        "ttft_p99_ms": _pct(ttft, 99),
        "events_mean": sum(s[2] for s in samples) / len(samples) if samples else 0.0,
        "lag_p50_ms": _pct(lags, 50),
        "lag_p99_ms": _pct(lags, 99),
        "lag_max_ms": max(lags, default=0.0),
    }


async def run_open(target, rate: float, duration: float, warmup: float) -> dict:
    await target.prewarm(min(256, max(8, int(rate * 0.02))))
    # Warm-up at the same rate, not measured (JIT-free Python still has caches, pools and connections to fill).
    samples, lags, tasks = [], [], set()
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    n_warm, n = int(rate * warmup), int(rate * (warmup + duration))
    t0 = time.perf_counter() + 0.05

    async def fire(i: int, at: float):
        ok, first, done, ev, err = await target.one()
        if i < n_warm:
            return
        if ok:
            samples.append((done - at, (first - at) if first else 0.0, ev))
        else:
            errors[err] = errors.get(err, 0) + 1

    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        await asyncio.sleep(delay if delay > 0 else 0)  # always yield, so responses are read while behind
        if i >= n_warm:
            lags.append((time.perf_counter() - at) * 1000)
        t = loop.create_task(fire(i, at))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=TIMEOUT_S + 2)
    out = _summary(samples, errors, duration, lags)
    out["offered_rps"] = rate
    out["connections"] = target.opened
    return out


async def run_closed(target, concurrency: int, duration: float, warmup: float) -> dict:
    await target.prewarm(concurrency)
    samples = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + duration

    async def worker():
        while True:
            at = time.perf_counter()
            if at >= t_end:
                return
            ok, first, done, ev, err = await target.one()
            if at < t_measure:
                continue
            if ok:
                samples.append((done - at, (first - at) if first else 0.0, ev))
            else:
                errors[err] = errors.get(err, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t_measure
    out = _summary(samples, errors, wall, [])
    out["concurrency"] = concurrency
    return out


async def run_hold(target, concurrency: int) -> dict:
    """All streams open at once; 'ready' once each has its first byte."""
    results, firsts = [], []
    ready = asyncio.Event()

    async def one():
        conn = await target._conn()
        at = time.perf_counter()
        r = conn.send(target.request)
        while not r.t_first and not r.fut.done():
            await asyncio.sleep(0.01)
        firsts.append(1)
        if len(firsts) == concurrency:
            ready.set()
        r = await asyncio.wait_for(r.fut, 120)
        results.append((r.status == 200 and not r.error, r.t_done - at))

    tasks = []
    for i in range(concurrency):
        tasks.append(asyncio.create_task(one()))
        if i % 50 == 49:
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(ready.wait(), 60)
        sys.stdout.write(f"ready {len(firsts)}\n")
        sys.stdout.flush()
        await asyncio.wait_for(_readline(), 120)  # the parent has sampled RSS
    finally:
        done = await asyncio.gather(*tasks, return_exceptions=True)
    errors = sum(1 for d in done if isinstance(d, BaseException)) + sum(1 for ok, _ in results if not ok)
    return {"concurrency": concurrency, "streams_open_at_once": len(firsts), "errors": errors, "requests": concurrency}


async def run_job(job: dict) -> dict:
    t = job["target"]
    target = TritonTarget(t) if t["kind"] == "triton" else HttpTarget(t)
    try:
        if job["mode"] == "open":
            return await run_open(target, job["rate"], job["duration"], job.get("warmup", 1.0))
        if job["mode"] == "closed":
            return await run_closed(target, job["concurrency"], job["duration"], job.get("warmup", 1.0))
        return await run_hold(target, job["concurrency"])
    finally:
        await target.close()


async def _readline() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def serve() -> None:
    """One job per stdin line, one result per stdout line, until EOF (a process that stays warm between jobs)."""
    while True:
        line = await _readline()
        if not line.strip():
            return
        try:
            result = await run_job(orjson.loads(line))
        except Exception as e:
            result = {"fatal": f"{type(e).__name__}: {e}"}
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        sys.stdout.flush()


def main() -> int:
    cpu = os.environ.get("BENCH_LOADGEN_CPU")
    if cpu:
        os.sched_setaffinity(0, {int(cpu)})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
