"""docs/examples/kubernetes is `modelsvc render` of the example catalog, current and schema-valid."""

from __future__ import annotations

import json

import kubernetes_validate
import yaml

from infra.render import write_monitoring_files
from infra.settings import Settings
from tests.conftest import ROOT

from .crds import is_custom
from .crds import validate as validate_crd

EXAMPLES = ROOT / "docs" / "examples" / "kubernetes"
HINT = "docs/examples/kubernetes is stale: run `modelsvc render docs/examples/kubernetes`"


def test_monitoring_files_are_current(example, tmp_path):
    """The manifests themselves are compared by test_render.test_docs_examples_are_the_current_render."""
    for path in write_monitoring_files(example, Settings(), tmp_path):
        assert (EXAMPLES / "monitoring" / path.name).read_text() == path.read_text(), HINT


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
