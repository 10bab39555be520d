"""Gateway settings (built in gateway/settings.py, re-exported here), and the local overlay: where a service's
instances are when nothing is deployed.

services.yaml is what gets deployed and says nothing about addresses: in Kubernetes the gateway finds each
service's pods through its headless Service. Locally, `local.yaml` (never deployed) lists the stand-in engines to
start, each service's endpoints, and demo keys whose plaintext may live there because it never leaves the laptop.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from modelsvc.catalog import Catalog, Key, Limits

from .settings import Settings as Settings
from .settings import settings_from as settings_from


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandinSpec(_Strict):
    name: StrictStr
    profile: Literal["chat", "vision", "image", "openai"]
    port: StrictInt = Field(ge=1, le=65535)
    token_delay: float = Field(0.0, ge=0, le=5)
    decoupled: bool = True
    # serve that family's real chat template (devtools/standin/templates/): tools render as on the real model
    family: Literal["llama3", "qwen2.5", "qwen3", "mistral"] | None = None


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
