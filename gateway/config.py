"""Gateway settings, and the local overlay: where a service's instances are when nothing is deployed.

services.yaml is what gets deployed and says nothing about addresses: in Kubernetes the gateway finds each
service's pods through its headless Service. Locally, `local.yaml` (never deployed) lists the stand-in engines to
start, each service's endpoints, and demo keys whose plaintext may live there because it never leaves the laptop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from modelsvc.catalog import Catalog, Key, Limits

from .image_fetch import ImagePolicy


@dataclass(frozen=True)
class Settings:
    deadline_s: float = 60.0  # any single backend call, and the longest silence inside a stream
    connect_timeout_s: float = 5.0
    usage_log: str | None = "var/usage.jsonl"  # the local store (no database server); unused with usage_store
    usage_store: str | None = None  # postgresql://… : the production store, fed through the spool below
    usage_spool: str = "var/usage-spool"  # a volume in Kubernetes: records wait here until the database commits
    usage_buffer_max: int = 100_000  # records kept in memory while the disk refuses them; beyond: 503 (fail closed)
    discovery: Literal["static", "dns"] = "static"
    dns_port: int = 8001  # Triton's gRPC port on each pod
    probe_interval_s: float = 1.0
    refresh_interval_s: float = 10.0
    health_interval_s: float = 5.0  # readiness check of healthy instances (0: only on failures)
    reload_poll_s: float = 1.0  # how often the catalog file's mtime is checked (0: only SIGHUP)
    drain_s: float = 0.0  # after SIGTERM: keep serving with /readyz false this long, so load balancers drain us
    grace_s: float = 30.0  # then: stop accepting and give in-flight requests and streams this long to finish
    request_timeout_s: float = 15.0  # a client must send its whole request within this (slowloris)
    redis_url: str | None = None  # shared limits and usage totals across replicas (in memory when unset)
    metrics_port: int = 9091  # internal port: /metrics and per-service /readyz (0: off)
    metrics_host: str = "127.0.0.1"  # bound like the API host
    images: ImagePolicy = ImagePolicy()  # how image URLs in vision requests are fetched
    stream_lease_s: float = 45.0  # a stream lease not renewed this long (its replica died) stops counting


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandinSpec(_Strict):
    name: StrictStr
    profile: Literal["chat", "vision", "image", "openai"]
    port: StrictInt = Field(ge=1, le=65535)
    token_delay: float = Field(0.0, ge=0, le=5)
    decoupled: bool = True


class DemoKey(_Strict):
    id: StrictStr
    owner: StrictStr
    key: StrictStr = Field(min_length=16)
    limits: Limits | None = None


class LocalOverlay(_Strict):
    standins: list[StandinSpec] = []
    endpoints: dict[str, list[StrictStr]] = {}  # access name → host:port of Triton gRPC (or an http URL for openai)
    demo_keys: list[DemoKey] = []

    def keys(self) -> list[Key]:
        return [
            Key(id=k.id, owner=k.owner, sha256=hashlib.sha256(k.key.encode()).hexdigest(), limits=k.limits)
            for k in self.demo_keys
        ]


class OverlayError(Exception):
    pass


def load_overlay(path: str, catalog: Catalog) -> LocalOverlay:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        overlay = LocalOverlay.model_validate(data)
    except OSError as e:
        raise OverlayError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise OverlayError(f"{path}: invalid YAML: {e}") from e
    except ValidationError as e:
        lines = [f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise OverlayError("\n".join(lines)) from e
    unknown = [a for a in overlay.endpoints if catalog.service(a) is None]
    if unknown:
        raise OverlayError(
            f"{path}: endpoints for unknown access names: {', '.join(unknown)} — they must match "
            f"services in {catalog.path}"
        )
    return overlay
