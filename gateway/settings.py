"""The gateway's ``Settings``: one frozen dataclass field per setting declared in modelsvc/catalog/gateway_settings.py
(built from the declarations at import, so that each setting is written once).

mypy cannot see the fields of a class built at run time: it reads gateway/settings.pyi instead, generated from the
same declarations by ``python -m devtools.settings_stub`` (tests/devtools/test_settings_stub.py fails when it drifts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from modelsvc.catalog.gateway_settings import SETTINGS as GATEWAY_SETTINGS

from .image_fetch import ImagePolicy

_IMAGE_DEFAULTS = {s.field.split(".", 1)[1]: s.default for s in GATEWAY_SETTINGS if s.field.startswith("images.")}


def _settings_fields() -> list[tuple[str, Any, Any]]:
    """One Settings field per declared setting that has one (modelsvc/catalog/gateway_settings.py)."""
    out: list[tuple[str, Any, Any]] = []
    for s in GATEWAY_SETTINGS:
        if s.field and "." not in s.field:
            kind = s.kind | None if s.optional or s.default is None else s.kind
            out.append((s.field, kind, dataclasses.field(default=s.default)))
    out.append(("images", ImagePolicy, dataclasses.field(default=ImagePolicy(**_IMAGE_DEFAULTS))))
    return out


# The gateway's settings: deadline_s, usage_log, discovery, metrics_port, grace_s, ..., images (an ImagePolicy): each
# declared once, with its type, default, flag and environment variable, in modelsvc/catalog/gateway_settings.py.
Settings = dataclasses.make_dataclass("Settings", _settings_fields(), frozen=True)
Settings.__module__ = __name__


def settings_from(values: Mapping[str, Any]) -> Any:
    """Settings from declared settings' values by name (the parsed `modelsvc serve` flags); the rest default."""
    kw: dict[str, Any] = {}
    images: dict[str, Any] = {}
    for s in GATEWAY_SETTINGS:
        if s.field and s.name in values:
            if s.field.startswith("images."):
                images[s.field.split(".", 1)[1]] = values[s.name]
            else:
                kw[s.field] = values[s.name]
    if images:
        kw["images"] = ImagePolicy(**{**_IMAGE_DEFAULTS, **images})
    return Settings(**kw)
