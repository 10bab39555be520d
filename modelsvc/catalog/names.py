"""Kubernetes names derived from the catalog: the ONE place that maps access names to object names.

Rules (tested in tests/modelsvc/catalog/test_names.py):

* ``k8s_name("<owner>/<name>")`` is ``<owner>--<name>`` when that is unambiguous and short enough, e.g.
  ``u-8105f7322477/test`` → ``u-8105f7322477--test``. It is a DNS-1035 label (what a Service name must be; stricter
  than DNS-1123: starts with a letter), at most ``MAX_NAME`` characters so that suffixes still fit the
  63-character label limit.
* Otherwise (a part contains ``--``, the name would be too long, or it would start with a digit) the name is a
  readable prefix plus ``---`` and 8 hex digits of the access name's SHA-256. Plain names never contain ``---``
  (the parts of an access name cannot start or end with ``-`` and plain ones contain no ``--``), and the single
  ``--`` in a plain name marks the one place where ``/`` was, so the mapping is injective without looking at the
  rest of the catalog.
* Stable: a name depends only on its own access name, so adding or removing other services never renames one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from . import Catalog
    from .model import Service

NamespaceMode = Literal["shared", "per-owner"]
NAMESPACE_MODES: tuple[NamespaceMode, ...] = ("shared", "per-owner")


class Placement(Protocol):
    """What names depend on besides the catalog: where the objects go. infra's stack Settings has these fields, and
    so does the gateway's view of its pod environment (placement_from_env)."""

    @property
    def namespace(self) -> str: ...
    @property
    def namespace_mode(self) -> NamespaceMode: ...
    @property
    def cluster_domain(self) -> str: ...


@dataclass(frozen=True)
class DefaultPlacement:
    namespace: str = "modelsvc"  # shared mode: everything; per-owner mode: the gateway and shared objects
    namespace_mode: NamespaceMode = "shared"
    cluster_domain: str = "cluster.local"

    def __post_init__(self) -> None:
        if self.namespace_mode not in NAMESPACE_MODES:
            raise ValueError(f"namespace mode must be one of {NAMESPACE_MODES}, got {self.namespace_mode!r}")


MAX_NAME = 47  # room for suffixes within the 63-character label limit (kept: changing it would rename services)
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT = 8000, 8001, 8002


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _hashed(readable: str, key: str, limit: int) -> str:
    prefix = "" if readable[:1].isalpha() else "x-"
    room = limit - len(prefix) - 3 - 8
    head = readable[:room].rstrip("-")
    return f"{prefix}{head}---{_digest(key)}"


def k8s_name(access_name: str) -> str:
    """Base Kubernetes name of a service (Deployment, headless Service, PDB; the Job adds a suffix)."""
    owner, sep, name = access_name.partition("/")
    if not sep or not DNS1123_LABEL_RE.match(owner) or not DNS1123_LABEL_RE.match(name):
        raise ValueError(f"not an access name '<owner>/<name>': {access_name!r}")
    plain = f"{owner}--{name}"
    if "--" in owner or "--" in name or len(plain) > MAX_NAME or not plain[0].isalpha():
        return _hashed(plain, access_name, MAX_NAME)
    return plain


def service_names(catalog: Catalog) -> dict[str, str]:
    """access name → k8s name for every service; raises if two map to the same name (a SHA-256 prefix clash)."""
    out = {s.access_name: k8s_name(s.access_name) for s in catalog.services}
    seen: dict[str, str] = {}
    for access, name in out.items():
        if name in seen:
            raise ValueError(f"access names {seen[name]!r} and {access!r} both map to Kubernetes name {name!r}")
        seen[name] = access
    return out


def owner_namespace(owner: str, base: str = "modelsvc") -> str:
    """Namespace of an owner in per-owner mode: ``<base>-<owner>`` (hashed like k8s_name when ambiguous/long)."""
    plain = f"{base}-{owner}"
    if "--" in owner or len(plain) > 63:
        return _hashed(plain, f"{base}/{owner}", 63)
    return plain


def namespace_of(service: Service | str, placement: Placement | None = None) -> str:
    """Namespace a service's objects live in."""
    placement = placement or DefaultPlacement()
    access = service if isinstance(service, str) else service.access_name
    if placement.namespace_mode == "per-owner":
        return owner_namespace(access.split("/", 1)[0], placement.namespace)
    return placement.namespace


def headless_service_host(service: Service | str, placement: Placement | None = None) -> str:
    """DNS name of a service's headless Service: resolves to the IPs of all its ready Triton pods.

    ``<k8s_name>.<namespace>.svc.<cluster_domain>``, e.g. ``u-8105f7322477--test.modelsvc.svc.cluster.local``.
    Triton gRPC listens on TRITON_GRPC_PORT (8001) of each pod. Accepts a Service or an access name.
    """
    placement = placement or DefaultPlacement()
    access = service if isinstance(service, str) else service.access_name
    return f"{k8s_name(access)}.{namespace_of(access, placement)}.svc.{placement.cluster_domain}"


def triton_grpc_target(service: Service | str, placement: Placement | None = None) -> str:
    """host:port the gateway resolves (all A records) and dials per pod."""
    return f"{headless_service_host(service, placement)}:{TRITON_GRPC_PORT}"


# The gateway pod gets these variables so it can call headless_service_host with the deployed settings.
ENV_NAMESPACE, ENV_NAMESPACE_MODE, ENV_CLUSTER_DOMAIN = (
    "MODELSVC_NAMESPACE",
    "MODELSVC_NAMESPACE_MODE",
    "MODELSVC_CLUSTER_DOMAIN",
)


def placement_from_env(environ: Mapping[str, str] | None = None) -> DefaultPlacement:
    """The placement that matters for service DNS, read from the gateway pod's environment (defaults otherwise)."""
    env = os.environ if environ is None else environ
    d = DefaultPlacement()
    mode = env.get(ENV_NAMESPACE_MODE, d.namespace_mode)
    if mode not in NAMESPACE_MODES:
        raise ValueError(f"{ENV_NAMESPACE_MODE} must be one of {NAMESPACE_MODES}, got {mode!r}")
    return DefaultPlacement(
        namespace=env.get(ENV_NAMESPACE, d.namespace),
        namespace_mode="per-owner" if mode == "per-owner" else "shared",
        cluster_domain=env.get(ENV_CLUSTER_DOMAIN, d.cluster_domain),
    )


def engine_job_name(cache_key: str) -> str:
    """Engine-build Job, one per cache key: a new key is a new name, hence a new Job (rebuild); the same key reuses
    it, whichever services share it."""
    return f"engine-build-{cache_key}"
