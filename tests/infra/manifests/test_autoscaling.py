"""HPA and prometheus-adapter manifests from services.yaml's autoscale settings."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from infra.manifests import autoscaling, triton
from infra.observability.metrics import PENDING, QUEUE_RATIO
from infra.plan import plan
from infra.settings import Settings

S = Settings()
AUTO = "    instances: 3\n    pool: h100\n"


def autoscaled(make_catalog, small_text, block: str):
    assert AUTO in small_text
    return make_catalog(small_text.replace(AUTO, AUTO + "    autoscale: " + block + "\n"))


def test_hpa_from_the_catalog(make_catalog, small_text):
    c = autoscaled(make_catalog, small_text, "{max_instances: 5, target: 0.5, scale_down_delay: 15m}")
    svc = c.service("alice/chat")
    hpa = autoscaling.hpa(c, svc, S)
    kubernetes_validate.validate(hpa, "1.33", strict=True)
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alice--chat"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 5)
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {"metric": {"name": QUEUE_RATIO}, "target": {"type": "AverageValue", "averageValue": "500m"}},
        }
    ]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["metadata"]["labels"]["modelsvc.io/service-id"] == svc.id


def test_pending_requests_metric(make_catalog, small_text):
    c = autoscaled(make_catalog, small_text, "{max_instances: 4, metric: pending_requests, target: 8}")
    spec = autoscaling.hpa(c, c.service("alice/chat"), S)["spec"]
    assert spec["metrics"][0]["pods"] == {
        "metric": {"name": PENDING},
        "target": {"type": "AverageValue", "averageValue": "8000m"},
    }


def test_autoscaled_deployment_leaves_replicas_to_the_hpa(make_catalog, small_text):
    c = autoscaled(make_catalog, small_text, "{max_instances: 5}")
    dep = triton.deployment(c, c.service("alice/chat"), S)
    assert "replicas" not in dep["spec"]
    kubernetes_validate.validate(dep, "1.33", strict=True)
    assert triton.deployment(c, c.service("alice/big"), S)["spec"]["replicas"] == 2  # fixed: as before


def test_only_autoscaled_services_get_an_hpa(small, make_catalog, small_text):
    def scaling(catalog, settings=S):
        return [
            (o["kind"], o["metadata"]["name"])
            for o in plan(catalog, settings).objects
            if o["kind"] == "HorizontalPodAutoscaler" or o["metadata"]["name"] == autoscaling.ADAPTER_CONFIGMAP
        ]

    # the stack's own prometheus-adapter always reads our rules; an existing one only when a service autoscales
    existing = Settings(monitoring="existing")
    assert scaling(small) == [("ConfigMap", autoscaling.ADAPTER_CONFIGMAP)]
    assert scaling(small, existing) == []
    c = autoscaled(make_catalog, small_text, "{max_instances: 5}")
    assert scaling(c, existing) == [
        ("ConfigMap", autoscaling.ADAPTER_CONFIGMAP),
        ("HorizontalPodAutoscaler", "alice--chat"),
    ]


def test_adapter_rules_expose_the_recorded_series_per_pod():
    cm = autoscaling.adapter_configmap(S)
    assert cm["metadata"]["namespace"] == "monitoring"
    rules = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    assert [r["seriesQuery"].split("{")[0] for r in rules] == [QUEUE_RATIO, PENDING]
    for r in rules:
        assert r["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in r["metricsQuery"] and "<<.GroupBy>>" in r["metricsQuery"]


@pytest.mark.parametrize(
    "target,quantity", [(1.0, "1000m"), (0.5, "500m"), (0.05, "50m"), (8, "8000m"), (0.123, "123m")]
)
def test_quantity(target, quantity):
    assert autoscaling.quantity(target) == quantity
