"""Processes the benchmark starts (upstreams, gateways, LiteLLM), and what it reads about them from /proc."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BENCH_KEY = "sk-bench-local-only-0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(cpus):
    if cpus is None:
        return None
    cpus = set(cpus) & os.sched_getaffinity(0) or os.sched_getaffinity(0)

    def pre():
        os.sched_setaffinity(0, cpus)
        os.setsid()  # own process group: stopped as a group, never by name

    return pre


class Proc:
    def __init__(self, name: str, cmd: list[str], *, cpus=None, env=None, log_dir: Path, cwd=None):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._logf = open(self.log, "ab")
        self.p = subprocess.Popen(
            cmd,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            cwd=cwd or ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=_pin(cpus) if cpus is not None else os.setsid,
        )
        self.pid = self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_log(self, text: str, timeout: float) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}):\n{self.tail()}")
            if text in self.log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start in {timeout}s:\n{self.tail()}")

    def wait_http(self, url: str, timeout: float, headers=None, ok=lambda r: r.status_code == 200) -> None:
        end = time.time() + timeout
        last = ""
        while time.time() < end:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}):\n{self.tail()}")
            try:
                r = httpx.get(url, timeout=1.0, headers=headers)
                if ok(r):
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = type(e).__name__
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {url} in {timeout}s ({last}):\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait()
        self._logf.close()

    # -- /proc ----------------------------------------------------------------------------------------------------
    def tree(self) -> list[int]:
        """This process and all its descendants (Sanic workers, LiteLLM's uvicorn workers)."""
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out

    def cpu_s(self) -> float:
        """utime + stime of the whole tree, seconds."""
        user, system, _ = self.counters()
        return user + system

    def counters(self) -> tuple[float, float, int]:
        """(utime s, stime s, read syscalls) of the whole tree: what the CPU went to, and how many reads it took
        (``syscr`` in /proc/PID/io counts read(2), recv(2) and their kind, one per call, whatever the size)."""
        user = system = reads = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                user, system = user + int(fields[11]), system + int(fields[12])  # fields 14, 15 of stat
                with open(f"/proc/{pid}/io") as f:  # (a process gone or not ours: its CPU still counts)
                    io = dict(line.split(": ") for line in f.read().splitlines() if ": " in line)
                reads += int(io["syscr"])
            except (OSError, IndexError, KeyError, ValueError):
                pass
        return user / TICK, system / TICK, reads

    def rss_mb(self) -> float:
        total = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                pass
        return total / 2**20


def bench_catalog(services: list[tuple[str, str]]) -> str:
    """A catalog for the benchmark: services (name, backend) owned by 'bench', one key."""
    digest = hashlib.sha256(BENCH_KEY.encode()).hexdigest()
    lines = [
        "version: 1",
        "gateway: {public_url: 'http://127.0.0.1:8080/v1', replicas: 1}",
        "pools: {bench: {instance_type: bench.large, gpus_per_node: 8, max_nodes: 8}}",
        "models:",
        "  bench-triton: {task: chat, source: 's3://bench/none', gpus: 1, max_output_tokens: 64}",
        # a Llama 3.1 checkpoint (the stand-in serves its chat template): its tool-call format and end tokens
        "  bench-llama: {task: chat, source: 's3://bench/llama-3.1-8b-instruct', gpus: 1, max_output_tokens: 64}",
        "  bench-openai: {task: chat, backend: openai, upstream: 'http://127.0.0.1:9/v1', upstream_model: standin,"
        " max_output_tokens: 64}",
        "keys:",
        f"  - {{id: k-bench, owner: bench, sha256: {digest}}}",
        "services:",
    ]
    for i, (name, backend) in enumerate(services):
        pool = ", pool: bench" if backend in ("triton", "llama") else ""
        lines.append(
            f"  - {{name: {name}, access_name: bench/{name}, id: ms-{i + 1:012x}, model: bench-{backend},"
            f" instances: 1{pool}}}"
        )
    return "\n".join(lines) + "\n"
