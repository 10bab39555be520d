"""Soak and chaos on loopback: mixed traffic against 2 gateway replicas sharing Redis and 3 stand-in engines, while
engines and one gateway replica are killed and restarted. Reports what was sent, what succeeded, failures by cause,
usage records written, and whether usage matches the successful requests exactly.

    python -m devtools.soak --duration 60 [--json report.json]

Bounded in time and in requests; every address is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import cast

import httpx
import redis
import yaml

from devtools.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
SVC = "u-8105f7322477/test"
KEYS = [
    {"id": "k-soak-a", "owner": "u-8105f7322477", "key": "sk-ms-soak-key-owner-a-0000000000"},
    {"id": "k-soak-b", "owner": "u-8105f7322477", "key": "sk-ms-soak-key-owner-a-1111111111"},
    {"id": "k-soak-c", "owner": "u-3f9a2c7e51d0", "key": "sk-ms-soak-key-owner-b-2222222222"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Engine:
    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir = port, workdir
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.standin",
                "--port",
                str(self.port),
                "--profile",
                "chat",
                "--token-delay",
                "0.005",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if self.proc.stdout is None or not self.proc.stdout.readline():
            raise RuntimeError("stand-in did not start")

    def kill(self) -> None:
        assert self.proc is not None, "kill() before start()"
        self.proc.kill()
        self.proc.wait()


class Replica:
    def __init__(self, name: str, workdir: Path, redis_url: str):
        self.name, self.port = name, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir, self.redis_url = workdir, redis_url
        self.url = f"http://127.0.0.1:{self.port}"
        self.usage_log = workdir / f"usage-{name}.jsonl"

    def start(self) -> None:
        log = open(self.workdir / f"gateway-{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelsvc.cli",
                "serve",
                "--config",
                str(self.workdir / "services.yaml"),
                "--local",
                str(self.workdir / "local.yaml"),
                "--port",
                str(self.port),
                "--usage-log",
                str(self.usage_log),
                "--redis-url",
                self.redis_url,
                "--probe-interval",
                "0.2",
                "--health-interval",
                "0.5",
                "--deadline",
                "5",
                "--reload-poll",
                "0",
                "--metrics-port",
                "0",
                # the soak checks the Redis totals exactly: a loaded machine must not make a healthy Redis look
                # hung (the hang policy has its own test: test_limits.py)
                "--redis-timeout",
                "5",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_http(self.url + "/healthz")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


class Traffic:
    """Workers sending a mix of requests to random replicas; each outcome is classified."""

    def __init__(self, replicas: list[Replica], max_requests: int, seed: int):
        self.replicas, self.max_requests = replicas, max_requests
        self.stopped = threading.Event()  # set by run() once the chaos is over and enough was sent
        self.lock = threading.Lock()
        self.sent = 0
        self.outcomes: Counter = Counter()
        self.ok_ids: set[str] = set()
        self.rng = random.Random(seed)
        self.down: set[str] = set()  # replicas being killed/restarted by the chaos (failures there are injected)
        self.engine_kills = 0

    def _take(self) -> bool:
        with self.lock:
            if self.sent >= self.max_requests or self.stopped.is_set():
                return False
            self.sent += 1
            return True

    def _count(self, outcome: str, request_id: str | None = None) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if request_id:
                self.ok_ids.add(request_id)

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        clients = {r.name: httpx.Client(timeout=15) for r in self.replicas}
        while self._take():
            replica = rng.choice(self.replicas)
            kind = rng.choices(["chat", "stream", "completion", "bad"], weights=[55, 25, 10, 10])[0]
            key = rng.choice(KEYS[:2])["key"]
            try:
                self._one(clients[replica.name], replica, kind, key, rng)
            except httpx.HTTPError as e:
                cause = (
                    "injected: gateway replica killed"
                    if replica.name in self.down
                    else f"connection error: {type(e).__name__}"
                )
                self._count(cause)
        for c in clients.values():
            c.close()

    def _one(self, client: httpx.Client, replica: Replica, kind: str, key: str, rng: random.Random) -> None:
        headers = {"authorization": f"Bearer {key}"}
        url = replica.url + "/v1/chat/completions"
        msg = [{"role": "user", "content": f"soak {rng.randrange(10**6)}"}]
        if kind == "bad":
            bad = rng.choice(["json", "key", "model", "param"])
            if bad == "json":
                r = client.post(url, content=b"{nope", headers=headers)
            elif bad == "key":
                r = client.post(url, json={"model": SVC, "messages": msg}, headers={"authorization": "Bearer sk-x"})
            elif bad == "model":
                r = client.post(url, json={"model": "u-3f9a2c7e51d0/receipts", "messages": msg}, headers=headers)
            else:
                r = client.post(url, json={"model": SVC, "messages": msg, "temperature": 9}, headers=headers)
            expected = {"json": 400, "key": 401, "model": 404, "param": 400}[bad]
            self._count(
                f"bad request answered {r.status_code}"
                if r.status_code == expected
                else f"UNEXPECTED {r.status_code} to a bad request"
            )
            return
        if kind == "stream":
            with client.stream(
                "POST",
                url,
                headers=headers,
                json={"model": SVC, "messages": msg, "max_tokens": rng.randint(4, 24), "stream": True},
            ) as r:
                body = r.read().decode()
                if r.status_code != 200:
                    self._count(f"stream status {r.status_code}")
                elif body.rstrip().endswith("data: [DONE]") and '"error"' not in body:
                    self._count("ok", r.headers["x-request-id"])
                elif '"error"' in body:
                    self._count("injected: stream cut by an engine kill")
                else:
                    self._count("stream ended without [DONE]")
            return
        if kind == "completion":
            r = client.post(
                replica.url + "/v1/completions",
                headers=headers,
                json={"model": SVC, "prompt": "soak", "max_tokens": rng.randint(1, 16)},
            )
        else:
            r = client.post(
                url, headers=headers, json={"model": SVC, "messages": msg, "max_tokens": rng.randint(1, 32)}
            )
        if r.status_code == 200:
            self._count("ok", r.headers["x-request-id"])
        else:
            self._count(f"status {r.status_code} {r.json().get('error', {}).get('code')}")


def chaos(
    traffic: Traffic,
    engines: list[Engine],
    replicas: list[Replica],
    until: float,
    rng: random.Random,
    every: float,
    min_kills: int = 0,
) -> None:
    """An engine SIGKILLed every `every` s until `until` and at least `min_kills` times (a loaded machine makes
    restarts slow: the run lasts longer instead of doing less), one gateway replica half-way through."""
    gateway_killed = False
    start = time.time()
    while time.time() < until - every or traffic.engine_kills < min_kills:
        time.sleep(every)
        victim = rng.choice(engines)
        victim.kill()
        traffic.engine_kills += 1
        time.sleep(min(2.0, every / 2))
        victim.start()
        if not gateway_killed and time.time() - start > (until - start) / 2:
            gateway_killed = True
            replica = replicas[1]
            traffic.down.add(replica.name)
            replica.stop(signal.SIGKILL)
            time.sleep(1.0)
            replica.start()
            time.sleep(0.5)
            traffic.down.discard(replica.name)


def run(
    duration: float,
    max_requests: int,
    workers: int,
    chaos_every: float,
    seed: int,
    min_requests: int = 0,
    min_kills: int = 0,
) -> dict:
    """Traffic for `duration` s, and on until the chaos did at least `min_kills` engine kills and `min_requests`
    were sent (bounded at 4 x duration), so the checks do not depend on how fast a loaded machine is."""
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="modelsvc-soak-"))
    redis_server = RedisServer(workdir)
    engines = [Engine(free_port(), workdir) for _ in range(3)]
    for e in engines:
        e.start()
    catalog = (ROOT / "services.yaml").read_text()
    (workdir / "services.yaml").write_text(catalog)
    (workdir / "local.yaml").write_text(
        yaml.safe_dump({"endpoints": {SVC: [f"127.0.0.1:{e.port}" for e in engines]}, "demo_keys": KEYS})
    )
    replicas = [Replica(n, workdir, redis_server.url) for n in ("a", "b")]
    for r in replicas:
        r.start()
    t0 = time.time()
    traffic = Traffic(replicas, max_requests, seed)
    threads = [threading.Thread(target=traffic.worker, args=(seed + i,)) for i in range(workers)]
    chaos_thread = threading.Thread(
        target=chaos, args=(traffic, engines, replicas, t0 + duration, rng, chaos_every, min_kills)
    )
    for t in threads + [chaos_thread]:
        t.start()
    hard_end = t0 + 4 * duration
    chaos_thread.join(max(0.0, hard_end - time.time()))
    while (time.time() < t0 + duration or traffic.sent < min_requests) and time.time() < hard_end:
        time.sleep(0.1)
    traffic.stopped.set()
    for t in threads + [chaos_thread]:
        t.join(120)
    elapsed = time.time() - t0
    for r in replicas:
        r.stop()  # graceful: flushes usage logs and pending totals
    for e in engines:
        e.kill()

    records = []
    for r in replicas:
        if r.usage_log.exists():
            records += [json.loads(line) for line in r.usage_log.read_text().splitlines()]
    ids = [rec["request_id"] for rec in records]
    ok_records = {rec["request_id"] for rec in records if rec["status"] == "ok"}
    store = redis.Redis.from_url(redis_server.url)
    keys = cast(list[bytes], store.keys("modelsvc:usage:*:requests"))  # (redis-py types sync and async as one)
    redis_requests = sum(int(cast(bytes | None, store.get(k)) or 0) for k in keys)
    redis_server.stop()
    unexpected = {
        k: v
        for k, v in traffic.outcomes.items()
        if k != "ok" and not k.startswith(("bad request answered", "injected:"))
    }
    report = {
        "duration_s": round(elapsed, 1),
        "workers": workers,
        "requests_sent": traffic.sent,
        "requests_per_s": round(traffic.sent / elapsed, 1),
        "succeeded": traffic.outcomes["ok"],
        "failed_by_cause": {k: v for k, v in sorted(traffic.outcomes.items()) if k != "ok"},
        "engine_kills": traffic.engine_kills,
        "gateway_replica_kills": 1 if traffic.engine_kills else 0,
        "usage_records_written": len(records),
        "duplicate_usage_records": len(ids) - len(set(ids)),
        "successes_without_usage_record": len(traffic.ok_ids - ok_records),
        "ok_records_without_a_success": len(ok_records - traffic.ok_ids),
        "usage_matches_successes_exactly": traffic.ok_ids == ok_records and len(ids) == len(set(ids)),
        "redis_usage_requests": redis_requests,
        "unexpected_failures": unexpected,
        "workdir": str(workdir),
    }
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds of traffic (bounded)")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--chaos-every", type=float, default=6.0, help="seconds between engine kills")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--min-requests", type=int, default=0, help="go on past --duration until this many were sent")
    p.add_argument("--min-engine-kills", type=int, default=0, help="go on past --duration until this many kills")
    p.add_argument("--json", help="write the report here too")
    args = p.parse_args(argv)
    report = run(
        min(args.duration, 3600),
        args.max_requests,
        args.workers,
        args.chaos_every,
        args.seed,
        args.min_requests,
        args.min_engine_kills,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    healthy = (
        not report["unexpected_failures"]
        and report["duplicate_usage_records"] == 0
        and report["successes_without_usage_record"] == 0
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
