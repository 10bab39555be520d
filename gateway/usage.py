"""Usage metering: one record per request that reached a backend, as an append-only JSON-lines log and as
Prometheus metrics per service id.

Each record is one `write()` of one line to a file opened with O_APPEND: the kernel has it as soon as the call
returns, so a gateway killed between requests loses nothing, and concurrent workers never interleave lines.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass(frozen=True)
class UsageRecord:
    request_id: str
    service_id: str
    access_name: str
    key_id: str
    endpoint: str  # "chat.completions" | "completions" | "images.generations"
    stream: bool
    status: str  # "ok" | "error" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    overhead_ms: float
    instance: str = ""
    error: str = ""
    prompt_tokens_estimated: bool = False  # the engine's count never arrived: the gateway's own estimate
    images: int = 0  # images.generations: images the engine generated
    ts: float = field(default_factory=time.time)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        labels = ["service_id", "access_name"]
        self.requests = Counter("modelsvc_requests", "Requests that reached a backend", labels + ["status"],
                                registry=self.registry)
        self.prompt_tokens = Counter("modelsvc_prompt_tokens", "Prompt tokens", labels, registry=self.registry)
        self.completion_tokens = Counter("modelsvc_completion_tokens", "Completion tokens", labels,
                                         registry=self.registry)
        self.latency = Histogram("modelsvc_request_latency_seconds", "End-to-end request latency", labels,
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.overhead = Histogram("modelsvc_gateway_overhead_seconds",
                                  "Time spent in the gateway: total minus waiting on the backend", ["access_name"],
                                  buckets=_OVERHEAD_BUCKETS, registry=self.registry)


class UsageLog:
    def __init__(self, path: str | None, metrics: Metrics):
        self.metrics = metrics
        self.path = path
        self._fd = None
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def record(self, rec: UsageRecord) -> None:
        if self._fd is not None:
            os.write(self._fd, orjson.dumps(rec) + b"\n")  # orjson serialises dataclasses natively
        m, labels = self.metrics, (rec.service_id, rec.access_name)
        m.requests.labels(*labels, rec.status).inc()
        m.prompt_tokens.labels(*labels).inc(rec.prompt_tokens)
        m.completion_tokens.labels(*labels).inc(rec.completion_tokens)
        m.latency.labels(*labels).observe(rec.latency_ms / 1000)
        m.overhead.labels(rec.access_name).observe(rec.overhead_ms / 1000)

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
