"""GitHub's published REST description (npm @octokit/openapi: github/rest-api-description with Octokit's
extensions) and recorded real exchanges (npm @octokit/fixtures), as installed by `./dev setup` into tests/node
(tests/node/package.json pins both; nothing of them is copied into this repository).

`operation(method, path)` finds the description's operation of a request; `check_request` / `check_response`
validate a request's parameters and body, and a response's body, against it (OpenAPI 3.0's `nullable` read as JSON
Schema's null type).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

NODE = Path(__file__).resolve().parents[2] / "node" / "node_modules" / "@octokit"
DESCRIPTION = NODE / "openapi" / "generated" / "api.github.com.json"
SCENARIOS = NODE / "fixtures" / "scenarios" / "api.github.com"


class ContractError(AssertionError):
    """A request or response that GitHub's description does not allow."""


@functools.cache
def description() -> dict[str, Any]:
    assert DESCRIPTION.exists(), "run ./dev setup (npm ci in tests/node installs @octokit/openapi)"
    return json.loads(DESCRIPTION.read_text(encoding="utf-8"))


def version(package: str) -> str:
    return json.loads((NODE / package / "package.json").read_text())["version"]


def _nullable(node: Any) -> Any:
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
    return Registry().with_resource("api.json", Resource.from_contents(schema, default_specification=DRAFT202012))


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    raw = json.dumps(_nullable(schema)).replace('"#/components', '"api.json#/components')
    return Draft202012Validator(json.loads(raw), registry=_registry())


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = description()["components"][kind][name]
    return node


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str, list[str], int]]:
    out = []
    for template in description()["paths"]:
        names = re.findall(r"\{([^}]+)\}", template)
        pattern = re.escape(template)
        for i, name in enumerate(names):
            # a last parameter may hold slashes (a ref "heads/main", a file path)
            part = "(.+)" if i == len(names) - 1 and template.endswith("}") else "([^/]+)"
            pattern = pattern.replace(re.escape("{" + name + "}"), part, 1)
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        out.append((re.compile("^" + pattern + "$"), template, names, literal))
    out.sort(key=lambda t: -t[3])  # the most specific template first
    return out


def operation(method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(template, operation, path parameters) of a request path; ContractError when the description has none."""
    for pattern, template, names, _ in _templates():
        m = pattern.match(path)
        if m and method.lower() in description()["paths"][template]:
            return template, description()["paths"][template][method.lower()], dict(zip(names, m.groups()))
    raise ContractError(f"{method} {path}: no such operation in GitHub's REST description")


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def check_request(method: str, path: str, query: dict[str, str], body: Any) -> tuple[str, dict[str, Any]]:
    """Validate a request against its operation: every path and query parameter declared and valid, the required
    ones present, the JSON body valid. Returns (template, operation)."""
    template, op, path_params = operation(method, path)
    declared = {}
    for p in op.get("parameters", []):
        p = _resolve(p)
        declared[(p["in"], p["name"])] = p
    for (where, name), p in declared.items():
        if where == "path":
            value = path_params.get(name)
            if value is None:
                raise ContractError(f"{method} {template}: path parameter {name} missing")
            _check(_validator(p["schema"]), _coerce(value, p["schema"]), f"{method} {template} path {name}")
    for name, value in query.items():
        p = declared.get(("query", name))
        if p is None:
            raise ContractError(f"{method} {template}: query parameter '{name}' is not in the description")
        _check(_validator(p["schema"]), _coerce(value, p["schema"]), f"{method} {template} query {name}")
    for (where, name), p in declared.items():
        if where == "query" and p.get("required") and name not in query:
            raise ContractError(f"{method} {template}: required query parameter {name} missing")
    rb = op.get("requestBody")
    if rb is not None:
        rb = _resolve(rb)
        if body is None and rb.get("required"):
            raise ContractError(f"{method} {template}: a JSON body is required")
        if body is not None:
            _check(_validator(rb["content"]["application/json"]["schema"]), body, f"{method} {template} body")
    elif body is not None:
        raise ContractError(f"{method} {template}: takes no body")
    return template, op


def check_response(op: dict[str, Any], status: int, body: Any, what: str) -> None:
    resp = op["responses"].get(str(status))
    if resp is None:
        raise ContractError(f"{what}: status {status} is not a documented response")
    resp = _resolve(resp)
    content = resp.get("content", {}).get("application/json")
    if content is not None and "schema" in content:
        _check(_validator(content["schema"]), body, f"{what} response {status}")


def _check(v: Draft202012Validator, value: Any, what: str) -> None:
    errors = sorted(v.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        raise ContractError(f"{what}: " + "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:3]))


def example(name: str) -> Any:
    """A copy of components/examples/<name>'s value: what GitHub's docs show it answering."""
    return copy.deepcopy(description()["components"]["examples"][name]["value"])


def recorded(scenario: str, index: int = 0) -> dict[str, Any]:
    """One recorded exchange of an @octokit/fixtures scenario (method, path, body, status, response, reqheaders)."""
    path = SCENARIOS / scenario / "normalized-fixture.json"
    return copy.deepcopy(json.loads(path.read_text(encoding="utf-8"))[index])
