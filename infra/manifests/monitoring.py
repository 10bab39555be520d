"""Metrics collection for the Prometheus Operator: PodMonitors (Triton, gateway), the PrometheusRule (recording
rules + alerts), the Grafana dashboard ConfigMap. Plain prometheus.io annotations on the pods are the fallback for a
Prometheus without the operator (see triton.scrape_annotations).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from modelsvc.catalog.capacity import deployed_services

from .. import labels as L
from ..observability.dashboard import dashboard
from ..observability.rules import rule_groups
from ..settings import Settings
from .common import meta
from .system import GATEWAY_APP, SYSTEM_APP, triton_namespaces

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

MONITORING = "monitoring"
GATEWAY_METRICS_PORT = "metrics"  # the gateway's internal metrics port (--metrics-port), by container port name
TRITON_METRICS_PORT = "metrics"  # Triton's --metrics-port, by container port name
DASHBOARD_LABEL = "grafana_dashboard"  # what kube-prometheus-stack's Grafana sidecar watches


def _labels(settings: Settings, instance: str) -> dict:
    return L.labels(SYSTEM_APP, MONITORING, instance, extra={"release": settings.prometheus_release})


def _service_id_relabel() -> list[dict]:
    """Each Triton series carries the pod's service id, so rules and dashboards can group by service."""
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", L.SERVICE_ID)],
            "targetLabel": "service_id",
            "action": "replace",
        }
    ]


def triton_pod_monitor(ns: str, settings: Settings) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta("tritonserver", _labels(settings, "tritonserver"), ns),
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": "tritonserver", "app.kubernetes.io/component": L.TRITON}
            },
            "podMetricsEndpoints": [
                {
                    "port": TRITON_METRICS_PORT,
                    "path": "/metrics",
                    "interval": "15s",
                    "relabelings": _service_id_relabel(),
                }
            ],
        },
    }


def gateway_pod_monitor(settings: Settings) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta(GATEWAY_APP, _labels(settings, GATEWAY_APP), settings.namespace),
        "spec": {
            "selector": {"matchLabels": L.selector(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)},
            "podMetricsEndpoints": [{"port": GATEWAY_METRICS_PORT, "path": "/metrics", "interval": "15s"}],
        },
    }


def prometheus_rule(catalog: Catalog, settings: Settings) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("modelsvc", _labels(settings, "modelsvc-rules"), settings.namespace),
        "spec": {"groups": rule_groups(catalog, settings)},
    }


def dashboard_configmap(settings: Settings) -> dict:
    lab = {**_labels(settings, "modelsvc-dashboard"), DASHBOARD_LABEL: "1"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("modelsvc-dashboard", lab, settings.metrics_namespace),
        "data": {"modelsvc.json": json.dumps(dashboard(), indent=2)},
    }


def monitoring_objects(catalog: Catalog, settings: Settings) -> list[dict]:
    """With the Prometheus Operator: monitors, rules and the dashboard. Without: nothing (annotations only)."""
    if not settings.prometheus_operator:
        return []
    objs = [gateway_pod_monitor(settings)]
    if deployed_services(catalog):
        objs += [triton_pod_monitor(ns, settings) for ns in triton_namespaces(catalog, settings)]
    return objs + [prometheus_rule(catalog, settings), dashboard_configmap(settings)]
