"""Autoscaling: one `autoscaling/v2` HPA per autoscaled service, and the prometheus-adapter rules that serve the
HPA's per-pod metric from Prometheus (the recording rules in infra/observability/rules.py).

Why prometheus-adapter and not KEDA (docs/infra.md, "Autoscaling"): the HPA stays an object we render and validate
against the real Kubernetes schema, with min/max/behaviour read straight from services.yaml; it is NVIDIA's path in
its TensorRT-LLM autoscaling guide; and it needs one cluster add-on (installed by its Helm chart with
`rules.existing` pointing at our ConfigMap) instead of KEDA's operator, CRDs and webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.model import ScaleMetric
from modelsvc.catalog.names import k8s_name, namespace_of

from .. import labels as L
from ..observability.metrics import PENDING, QUEUE_RATIO
from ..settings import Settings
from .common import meta
from .system import SYSTEM_APP

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Service

ADAPTER_CONFIGMAP = "modelsvc-prometheus-adapter"
METRIC_NAMES = {ScaleMetric.queue_ratio: QUEUE_RATIO, ScaleMetric.pending_requests: PENDING}
# Scale up fast (a queue means callers wait now; GPU pods take minutes to start anyway): the larger of doubling or
# two pods per minute. Scale down slowly: after scale_down_delay of low load, one pod per two minutes.
SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 60},
        {"type": "Pods", "value": 2, "periodSeconds": 60},
    ],
}
SCALE_DOWN_POLICY = {"type": "Pods", "value": 1, "periodSeconds": 120}


def quantity(value: float) -> str:
    """A Kubernetes quantity in milli-units (0.5 → 500m, 1 → 1000m): exact for the targets the catalog allows."""
    return f"{round(value * 1000)}m"


def hpa(catalog: Catalog, service: Service, settings: Settings) -> dict:
    auto = service.autoscale
    assert auto is not None
    name = k8s_name(service.access_name)
    lab = L.labels("tritonserver", "autoscaler", name, service.id, service.owner)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name, lab, namespace_of(service, settings)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": service.instances,
            "maxReplicas": auto.max_instances,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": METRIC_NAMES[auto.metric]},
                        "target": {"type": "AverageValue", "averageValue": quantity(auto.target)},
                    },
                }
            ],
            "behavior": {
                "scaleUp": SCALE_UP,
                "scaleDown": {
                    "stabilizationWindowSeconds": auto.scale_down_delay_s,
                    "selectPolicy": "Min",
                    "policies": [SCALE_DOWN_POLICY],
                },
            },
        },
    }


def autoscaled(catalog: Catalog) -> list[Service]:
    return [s for s in deployed_services(catalog) if s.autoscale is not None]


def adapter_rules() -> dict:
    """prometheus-adapter's config.yaml: each recorded per-pod series becomes a custom metric of the pod."""
    return {
        "rules": [
            {
                "seriesQuery": f'{metric}{{namespace!="",pod!=""}}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                "name": {"matches": "^(.*)$", "as": "${1}"},
                "metricsQuery": "max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})",
            }
            for metric in (QUEUE_RATIO, PENDING)
        ]
    }


def adapter_configmap(settings: Settings) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            ADAPTER_CONFIGMAP, L.labels(SYSTEM_APP, "autoscaler", ADAPTER_CONFIGMAP), settings.metrics_namespace
        ),
        "data": {"config.yaml": yaml.safe_dump(adapter_rules(), sort_keys=False)},
    }


def adapter_objects(catalog: Catalog, settings: Settings) -> list[dict]:
    """prometheus-adapter's rules, when some service autoscales (the HPAs themselves belong to their services)."""
    return [adapter_configmap(settings)] if autoscaled(catalog) else []
