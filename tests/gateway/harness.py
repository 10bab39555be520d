"""A real gateway process (`modelsvc serve`) on loopback, over stand-in engines run in this test process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODELSVC = str(Path(sys.executable).parent / "modelsvc")
DEMO_KEY = "sk-ms-local-demo-8105f7322477"
OTHER_KEY = "sk-ms-local-demo-3f9a2c7e51d0"
SEARCH_KEY = "sk-ms-local-demo-team-search"
DEMO_KEYS = [
    {"id": "k-local-demo", "owner": "u-8105f7322477", "key": DEMO_KEY},
    {"id": "k-local-demo-2", "owner": "u-3f9a2c7e51d0", "key": OTHER_KEY},
    {"id": "k-local-demo-3", "owner": "team-search", "key": SEARCH_KEY},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def example_catalog(**gateway) -> str:
    """The repository's example services.yaml, with gateway settings adjusted for tests."""
    text = (ROOT / "services.yaml").read_text()
    for key, value in gateway.items():
        marker = "  replicas: 2\n"
        text = text.replace(marker, marker + f"  {key}: {value}\n", 1)
    return text


class Gateway:
    def __init__(
        self,
        tmp_path: Path,
        endpoints: dict[str, list[str]],
        *,
        catalog_text: str | None = None,
        args: tuple[str, ...] = (),
        demo_keys=DEMO_KEYS,
        wrap: tuple[str, ...] = (),
    ):
        self.dir = tmp_path
        self.config = tmp_path / "services.yaml"
        self.config.write_text(catalog_text or example_catalog())
        self.overlay = tmp_path / "local.yaml"
        self.overlay.write_text(yaml.safe_dump({"endpoints": endpoints, "demo_keys": demo_keys}))
        self.usage_log = tmp_path / "usage.jsonl"
        self.log = tmp_path / "gateway.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.internal_url = f"http://127.0.0.1:{self.metrics_port}"  # /metrics and per-service /readyz
        self.args = args
        self.wrap = wrap  # a command the gateway runs under (e.g. unshare, to give it a PID namespace)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Gateway:
        cmd = [
            *self.wrap,
            MODELSVC,
            "serve",
            "--config",
            str(self.config),
            "--local",
            str(self.overlay),
            "--port",
            str(self.port),
            "--usage-log",
            str(self.usage_log),
            "--probe-interval",
            "0.2",
            "--health-interval",
            "0.5",
            "--reload-poll",
            "0.2",
            "--metrics-port",
            str(self.metrics_port),
            *self.args,
        ]
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.dir, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.logs()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int | None:
        assert self.proc is not None, "stop() before start()"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def usage(self) -> list[dict]:
        if not self.usage_log.exists():
            return []
        return [json.loads(line) for line in self.usage_log.read_text().splitlines()]

    def headers(self, key: str = DEMO_KEY) -> dict:
        return {"authorization": f"Bearer {key}"}

    def post(self, path: str, body, key: str | None = DEMO_KEY, **kw) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        headers.update(kw.pop("headers", {}))
        if isinstance(body, (bytes, str)):
            return httpx.post(self.url + path, content=body, headers=headers, timeout=kw.pop("timeout", 30), **kw)
        return httpx.post(self.url + path, json=body, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def stream_in_background(self, body: dict) -> BackgroundStream:
        """POST a streaming chat completion from a thread; join() it for (status, whole SSE body)."""
        return BackgroundStream(self, body)

    def wait_until(self, predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False


class BackgroundStream:
    def __init__(self, gateway: Gateway, body: dict):
        self.status: int | None = None
        self.text = ""

        self.error: httpx.HTTPError | None = None

        def run():
            try:
                with httpx.stream(
                    "POST",
                    gateway.url + "/v1/chat/completions",
                    headers=gateway.headers(),
                    timeout=30,
                    json={**body, "stream": True},
                ) as r:
                    self.status = r.status_code
                    self.text = r.read().decode()
            except httpx.HTTPError as e:  # the gateway went away mid-stream (tests that kill it)
                self.error = e

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def join(self, timeout: float = 30) -> tuple[int | None, str]:
        self._thread.join(timeout)
        return self.status, self.text
