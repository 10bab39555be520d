"""Validation of our custom resources (PodMonitor, PrometheusRule) against the real CustomResourceDefinitions.

kubernetes-validate ships only built-in kinds, so the CRDs' own `openAPIV3Schema` is used: the prometheus-operator
release kube-prometheus-stack installs (infra/charts.py), found through ONE setting, `MODELSVC_K8S_CRDS` (default
`<repo root>/../shared/fixtures/k8s-crds/prometheus-operator-v0.93.0`, the fixture tree beside the checkout, which
records where each file comes from), like the Triton templates' `MODELSVC_TRITON_TEMPLATES`.

Converted to JSON Schema as the API server reads it (x-kubernetes-int-or-string, nullable) with one deliberate
strictening: every object schema that lists its properties is closed, so a misspelt field fails here where the API
server would silently prune it. `metadata` (ObjectMeta, not in the CRD schema) is checked for the fields we set.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jsonschema
import yaml

from tests.conftest import ROOT

ENV = "MODELSVC_K8S_CRDS"
DEFAULT = ROOT.parent / "shared" / "fixtures" / "k8s-crds" / "prometheus-operator-v0.93.0"
OPERATOR_VERSION = "v0.93.0"  # the fixture's release; test_charts checks kube-prometheus-stack runs the same

METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def root() -> Path:
    path = Path(os.environ.get(ENV) or DEFAULT)
    if not path.is_dir():
        raise FileNotFoundError(f"the prometheus-operator CRDs are not at {path}: set {ENV} (see CONTRIBUTING.md)")
    return path


@functools.cache
def definitions() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → its CustomResourceDefinition, for every CRD file in the directory."""
    out = {}
    for path in sorted(root().glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = crd
    return out


def _json_schema(node):
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if isinstance(out.get("pattern"), str) and "(?i)" in out["pattern"]:
        # Go's RE2 takes an inline flag anywhere; Python's re only at the start (same meaning here: whole pattern)
        out["pattern"] = "(?i)" + out["pattern"].replace("(?i)", "")
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def schema(api_version: str, kind: str) -> dict:
    crd = definitions()[(api_version, kind)]
    version = next(v for v in crd["spec"]["versions"] if f"{crd['spec']['group']}/{v['name']}" == api_version)
    s = _json_schema(version["schema"]["openAPIV3Schema"])
    s["properties"]["metadata"] = METADATA
    s["required"] = sorted({*s.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return s


def is_custom(obj: dict) -> bool:
    return (obj["apiVersion"], obj["kind"]) in definitions()


def validate(obj: dict) -> None:
    """Raises jsonschema.ValidationError when obj does not fit its CRD (or names an unknown field)."""
    if not is_custom(obj):
        raise KeyError(f"no CRD for {obj['apiVersion']} {obj['kind']} in {root()}")
    jsonschema.validate(obj, schema(obj["apiVersion"], obj["kind"]))
    crd = definitions()[(obj["apiVersion"], obj["kind"])]
    assert crd["spec"]["scope"] == "Namespaced" and obj["metadata"].get("namespace"), obj["metadata"]
