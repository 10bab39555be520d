"""The usage record (one per request that reached an engine) and the Prometheus metrics derived from it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

COMPLETION_ENDPOINTS = ("chat.completions", "completions", "responses")
IMAGE_ENDPOINTS = ("images.generations",)


@dataclass(frozen=True)
class UsageRecord:
    request_id: str  # unique per request: the store's primary key, so a record delivered twice is kept once
    service_id: str
    access_name: str  # "<owner>/<name>": the owner the usage API scopes by is its prefix
    key_id: str
    endpoint: str  # "chat.completions" | "completions" | "responses" | "images.generations"
    stream: bool
    status: str  # "ok" | "error" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    overhead_ms: float
    instance: str = ""
    error: str = ""
    ts: float = field(default_factory=time.time)
    images: int = 0  # images generated (images.generations)
    prompt_tokens_estimated: bool = False  # the engine's count never arrived: the gateway's own estimate


def owner_of(access_name: str) -> str:
    return access_name.split("/", 1)[0]


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        labels = ["service_id", "access_name"]
        r = self.registry
        self.requests = Counter("modelsvc_requests", "Requests that reached a backend", labels + ["status"], registry=r)
        self.prompt_tokens = Counter("modelsvc_prompt_tokens", "Prompt tokens", labels, registry=r)
        self.completion_tokens = Counter("modelsvc_completion_tokens", "Completion tokens", labels, registry=r)
        self.latency = Histogram(
            "modelsvc_request_latency_seconds",
            "End-to-end request latency",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "modelsvc_gateway_overhead_seconds",
            "Time spent in the gateway: total minus waiting on the backend",
            ["access_name"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        # Alerting: any increase of these means records are waiting in memory or in the spool, not yet safe.
        self.write_errors = Counter(
            "modelsvc_usage_write_errors",
            "Failed or short writes of usage records to local disk (records are kept in memory and retried)",
            ["reason"],
            registry=r,
        )
        self.buffered = Gauge(
            "modelsvc_usage_buffered_records", "Usage records held in memory because the disk refused them", registry=r
        )
        self.refused = Counter(
            "modelsvc_usage_refused_requests",
            "Requests refused (503) because usage could not be recorded: the in-memory buffer is full",
            registry=r,
        )
        self.store_errors = Counter(
            "modelsvc_usage_store_errors",
            "Failed deliveries of spooled usage records to the database (retried)",
            registry=r,
        )
        self.spooled = Gauge(
            "modelsvc_usage_spool_bytes",
            "Bytes of usage records in the local spool, not yet committed to the database",
            registry=r,
        )
        self.delivered = Counter(
            "modelsvc_usage_delivered_records", "Usage records committed to the database", registry=r
        )
        self.corrupt = Counter(
            "modelsvc_usage_corrupt_lines",
            "Unreadable lines skipped in usage files (a write "
            "torn by a full disk; the record itself was written again whole)",
            registry=r,
        )
        self.connections_refused = Counter(
            "modelsvc_connections_refused",
            "Connections refused with 503 because --max-connections were open",
            registry=r,
        )
        # The gateway 5xx-ratio alert (infra/observability/rules.py): answers by HTTP status code.
        self.responses = Counter("modelsvc_http_responses", "HTTP responses by status code", ["code"], registry=r)
        self._children: dict[tuple[str, str, str], tuple] = {}

    def observe(self, rec: UsageRecord) -> None:
        key = (rec.service_id, rec.access_name, rec.status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._labelled(*key)
        requests, prompt, completion, latency, overhead = children
        requests.inc()
        prompt.inc(rec.prompt_tokens)
        completion.inc(rec.completion_tokens)
        latency.observe(rec.latency_ms / 1000)
        overhead.observe(rec.overhead_ms / 1000)

    def _labelled(self, service_id: str, access_name: str, status: str) -> tuple:
        """The five series a record goes to, looked up once per (service, status): ``labels()`` checks and locks
        on every call. The metrics hold these same children, so this holds nothing they do not (none is removed)."""
        return (
            self.requests.labels(service_id, access_name, status),
            self.prompt_tokens.labels(service_id, access_name),
            self.completion_tokens.labels(service_id, access_name),
            self.latency.labels(service_id, access_name),
            self.overhead.labels(access_name),
        )
