"""GitHub's published REST description and recorded real exchanges, installed at test time (never copied here).

npm `@octokit/openapi` is GitHub's OpenAPI description of api.github.com (github/rest-api-description, with
Octokit's extensions); npm `@octokit/fixtures` holds recorded request/response pairs of the real API. Both are
installed into tests/github/.octokit (git-ignored) on first use, at pinned versions, without lifecycle scripts. The
workflow-script tests build every payload the fake API serves from the description's own examples and validate it
against the description's schema, so the scripts are tested against what GitHub sends, not a hand-written guess.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
PREFIX = HERE / ".octokit"
PACKAGES = {"@octokit/openapi": "23.0.2", "@octokit/fixtures": "23.1.2"}


def _installed(name: str, version: str) -> bool:
    pkg = PREFIX / "node_modules" / name / "package.json"
    return pkg.exists() and json.loads(pkg.read_text()).get("version") == version


def install() -> Path:
    """The node_modules folder with both packages at their pinned versions (npm install once, then reused)."""
    if not all(_installed(n, v) for n, v in PACKAGES.items()):
        npm = shutil.which("npm")
        assert npm, "npm is not installed: .ci/run installs Node.js and npm"
        PREFIX.mkdir(exist_ok=True)
        specs = [f"{n}@{v}" for n, v in PACKAGES.items()]
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PREFIX),
                "--no-save",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                *specs,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return PREFIX / "node_modules"


@functools.cache
def description() -> dict[str, Any]:
    path = install() / "@octokit" / "openapi" / "generated" / "api.github.com.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema (the description is OpenAPI 3.0.3): null becomes one more
    allowed type (and enum value)."""
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _registry() -> Registry:
    schema = {"components": _nullable(description()["components"])}
    return Registry().with_resource("api.json", Resource.from_contents(schema, default_specification=_SPEC))


def _spec() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


_SPEC = _spec()


def example(name: str) -> Any:
    """A deep copy of components/examples/<name>'s value (what the docs show GitHub answering)."""
    return copy.deepcopy(description()["components"]["examples"][name]["value"])


def validate(payload: Any, schema: str) -> None:
    """Raise unless payload matches components/schemas/<schema> of the description."""
    validator = Draft202012Validator({"$ref": f"api.json#/components/schemas/{schema}"}, registry=_registry())
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
    assert not errors, f"{schema}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def response_schema(path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
    op = description()["paths"][path][method]
    return op["responses"][status]["content"]["application/json"]["schema"]


def validate_response(payload: Any, path: str, method: str = "get", status: str = "200") -> None:
    """Raise unless payload matches the description's response schema of that operation."""
    raw = json.dumps(_nullable(response_schema(path, method, status)))
    schema = json.loads(raw.replace('"#/components', '"api.json#/components'))
    errors = list(Draft202012Validator(schema, registry=_registry()).iter_errors(payload))
    assert not errors, f"{method.upper()} {path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def recorded(scenario: str) -> list[dict[str, Any]]:
    """The normalized recorded exchanges of an @octokit/fixtures scenario (method, path, status, response...)."""
    path = install() / "@octokit" / "fixtures" / "scenarios" / "api.github.com" / scenario / "normalized-fixture.json"
    return json.loads(path.read_text(encoding="utf-8"))
