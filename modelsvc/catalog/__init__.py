"""The service catalog: the only way any part of the project reads services.yaml.

from modelsvc.catalog import load, loads, CatalogError
catalog = load("services.yaml")          # raises CatalogError listing every problem
svc = catalog.service("u-8105f7322477/test")
model = catalog.model_of(svc)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import CatalogError, Problem
from .loader import decode, parse_document
from .model import Backend, Document, Gateway, Key, Limits, Model, Pool, Service, Task

__all__ = [
    "Backend",
    "Catalog",
    "CatalogError",
    "Document",
    "Gateway",
    "Key",
    "Limits",
    "Model",
    "Pool",
    "Problem",
    "Service",
    "Task",
    "load",
    "loads",
]


@dataclass(frozen=True)
class Catalog:
    """A validated services.yaml. Immutable; a reload builds a new one."""

    doc: Document
    path: str = "services.yaml"
    text: str = field(default="", repr=False, compare=False)

    @property
    def gateway(self) -> Gateway:
        return self.doc.gateway

    @property
    def pools(self) -> dict[str, Pool]:
        return self.doc.pools

    @property
    def models(self) -> dict[str, Model]:
        return self.doc.models

    @property
    def keys(self) -> tuple[Key, ...]:
        return self.doc.keys

    @property
    def services(self) -> tuple[Service, ...]:
        return self.doc.services

    @cached_property
    def _by_access_name(self) -> dict[str, Service]:
        return {s.access_name: s for s in self.doc.services}

    @cached_property
    def _by_digest(self) -> dict[str, Key]:
        return {k.sha256: k for k in self.doc.keys}

    def service(self, access_name: str) -> Service | None:
        return self._by_access_name.get(access_name)

    def model_of(self, service: Service) -> Model:
        return self.doc.models[service.model]

    def key_for_digest(self, sha256_hex: str) -> Key | None:
        return self._by_digest.get(sha256_hex)

    def services_of(self, owner: str) -> tuple[Service, ...]:
        return tuple(s for s in self.doc.services if s.owner == owner)

    def to_data(self) -> dict[str, Any]:
        """Plain data that loads back to an equal catalog (defaults omitted, file order kept)."""
        return self.doc.model_dump(mode="json", exclude_defaults=True)

    def canonical_data(self) -> dict[str, Any]:
        """What the catalog means, whatever the spelling: no comments, defaults omitted, keys and services in id
        order. Two files with equal canonical data deploy the same thing (a comment-only edit rolls nothing)."""
        data = self.to_data()
        for section in ("keys", "services"):
            if section in data:
                data[section] = sorted(data[section], key=lambda item: item["id"])
        return data

    def canonical_json(self) -> str:
        return json.dumps(self.canonical_data(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(text: str, path: str = "services.yaml") -> Catalog:
    return Catalog(doc=parse_document(text, path), path=path, text=text)


def load(path: str) -> Catalog:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CatalogError([Problem(path, 1, 1, f"cannot read the file: {e.strerror}", "check the path")]) from e
    return loads(decode(data, path), path)
