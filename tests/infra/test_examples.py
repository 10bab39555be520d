"""docs/examples/kubernetes is `modelsvc render` of the example catalog, current and schema-valid."""

from __future__ import annotations

import json

import kubernetes_validate
import yaml

from infra.render import render, write_monitoring_files, write_yaml
from infra.settings import Settings

from .conftest import ROOT
from .crd_schemas import is_custom, validate as validate_crd

EXAMPLES = ROOT / "docs" / "examples" / "kubernetes"
HINT = "docs/examples/kubernetes is stale: run `modelsvc render docs/examples/kubernetes` (after removing the folder)"


def test_examples_are_the_current_render(example, tmp_path):
    write_yaml(render(example), tmp_path)
    write_monitoring_files(example, Settings(), tmp_path)
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(EXAMPLES): p.read_text() for p in EXAMPLES.rglob("*") if p.is_file()}
    assert sorted(fresh) == sorted(committed), HINT
    assert fresh == committed, HINT


def test_examples_are_schema_valid_and_include_an_hpa():
    kinds = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        if is_custom(obj):
            validate_crd(obj)
        else:
            kubernetes_validate.validate(obj, "1.33", strict=True)
        kinds.append(obj["kind"])
    assert kinds.count("HorizontalPodAutoscaler") == 1
    assert {"PodMonitor", "PrometheusRule"} <= set(kinds)
    rules = yaml.safe_load((EXAMPLES / "monitoring" / "modelsvc-rules.yaml").read_text())
    assert [g["name"] for g in rules["groups"]] == ["modelsvc-autoscaling", "modelsvc-alerts"]
    assert json.loads((EXAMPLES / "monitoring" / "modelsvc-dashboard.json").read_text())["uid"] == "modelsvc-overview"
