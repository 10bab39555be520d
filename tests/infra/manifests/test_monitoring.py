"""Scraping: PodMonitors and the PrometheusRule against the real prometheus-operator CRDs, the plain-annotation
fallback."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from infra import labels as L
from infra.manifests import monitoring, triton
from infra.render import render
from infra.settings import Settings
from modelsvc.catalog.names import TRITON_METRICS_PORT

from ..crds import validate

S = Settings()


def test_triton_pods_carry_scrape_annotations(example):
    dep = triton.deployment(example, example.service("u-8105f7322477/test"), S)
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(TRITON_METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    assert {"name": "metrics", "containerPort": TRITON_METRICS_PORT, "protocol": "TCP"} in (
        dep["spec"]["template"]["spec"]["containers"][0]["ports"]
    )


def test_triton_pod_monitor(example):
    pm = monitoring.triton_pod_monitor("modelsvc", S)
    validate(pm)
    assert pm["metadata"]["labels"]["release"] == "prometheus"
    ep = pm["spec"]["podMetricsEndpoints"][0]
    assert ep["port"] == "metrics"
    # the pod label modelsvc.io/service-id as Prometheus sees it (every non [a-zA-Z0-9_] becomes _)
    assert ep["relabelings"] == [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_modelsvc_io_service_id"],
            "targetLabel": "service_id",
            "action": "replace",
        }
    ]
    dep = triton.deployment(example, example.service("u-8105f7322477/test"), S)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert L.SERVICE_ID in pod_labels


def test_gateway_pod_monitor_scrapes_the_internal_metrics_port():
    pm = monitoring.gateway_pod_monitor(S)
    validate(pm)
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_prometheus_rule_validates(example):
    validate(monitoring.prometheus_rule(example, S))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o["spec"]["groups"][1]["rules"][0].__setitem__("fr", "5m"),
        lambda o: o["spec"]["groups"][1]["rules"][0].__setitem__("for", "five minutes"),
        lambda o: o["spec"]["groups"][1]["rules"][0]["labels"].__setitem__("severity", 2),  # label values: strings
        lambda o: o["spec"]["groups"][0].pop("name"),
    ],
)
def test_schema_catches_mistakes(example, mutate):
    bad = copy.deepcopy(monitoring.prometheus_rule(example, S))
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def test_without_the_operator_only_annotations(example):
    objs = render(example, "kubeconfig", Settings(monitoring="annotations"))
    assert not [o for o in objs if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert not [o for o in objs if o["metadata"]["name"] == "modelsvc-dashboard"]
    assert [o["kind"] for o in objs if o["kind"] == "HorizontalPodAutoscaler"] == ["HorizontalPodAutoscaler"]
