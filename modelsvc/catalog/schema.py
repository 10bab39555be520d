"""JSON Schema for services.yaml, generated from the same classes the loader validates with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import Document

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "services.schema.json"


def json_schema() -> dict[str, Any]:
    schema = Document.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "modelsvc services.yaml",
        "description": "Model services, GPU pools, base models and API key digests. Validate with `modelsvc validate`.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
