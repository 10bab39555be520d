"""The metrics pipeline the HPAs and alerts need, when the stack installs it (`modelsvc:monitoring: install`):
kube-prometheus-stack (Prometheus Operator with its CRDs, Prometheus, Alertmanager, Grafana, kube-state-metrics) and
prometheus-adapter serving our recorded series as custom metrics. Pinned charts: infra/charts.py.

With `monitoring: existing` the cluster runs its own; the plan then declares what it must already have
(prerequisites the program reads at preview, see infra/plan.py).
"""

from __future__ import annotations

from ..charts import KUBE_PROMETHEUS_STACK, PROMETHEUS_ADAPTER
from ..settings import Settings
from . import helm
from .autoscaling import ADAPTER_CONFIGMAP

# kube-prometheus-stack names its objects <fullname>-<part> (templates/_helpers.tpl, "kube-prometheus-stack.fullname",
# truncated to 26 characters); a fixed fullname keeps the Prometheus Service's name independent of the release name:
# templates/prometheus/service.yaml names it <fullname>-prometheus, port 9090 (prometheusSpec.portName "http-web").
FULLNAME = "kube-prometheus"
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"
PROMETHEUS_PORT = 9090
ADAPTER_RELEASE = "prometheus-adapter"
# What the CRD objects need and prometheus-adapter provides (its templates/custom-metrics-apiservice.yaml).
CRDS = {"PodMonitor": "podmonitors.monitoring.coreos.com", "PrometheusRule": "prometheusrules.monitoring.coreos.com"}
CUSTOM_METRICS_API = "v1beta1.custom.metrics.k8s.io"


def prometheus_url(settings: Settings) -> str:
    return f"http://{PROMETHEUS_SERVICE}.{settings.metrics_namespace}.svc"


def kube_prometheus_stack_values(settings: Settings) -> dict:
    """The chart's defaults, except the fixed fullname. They are what we rely on (values.yaml at the pinned tag, as its
    facts record it, checked by tests/infra/test_charts.py): `crds.enabled` (the operator's CRDs), Prometheus selecting
    PodMonitors and PrometheusRules labelled `release: <release name>` in every namespace
    (`*SelectorNilUsesHelmValues: true`, `*NamespaceSelector: {}`), Grafana's sidecar loading ConfigMaps labelled
    `grafana_dashboard: "1"` from all namespaces, kube-state-metrics for the Job/Deployment/HPA alerts."""
    return {"fullnameOverride": FULLNAME, "crds": {"enabled": True}}


def prometheus_adapter_values(settings: Settings) -> dict:
    """Our rules ConfigMap (`rules.existing`) against the stack's Prometheus. `rules.default` stays true: the chart
    registers the custom-metrics APIService only when `rules.default` or `rules.custom` is set
    (templates/custom-metrics-apiservice.yaml), and `rules.existing` replaces the rules it would render."""
    return {
        "prometheus": {"url": prometheus_url(settings), "port": PROMETHEUS_PORT},
        "rules": {"default": True, "existing": ADAPTER_CONFIGMAP},
    }


def kube_prometheus_stack(settings: Settings) -> dict:
    # the release name is what the stack's selectors match (`release: <name>`), so our monitors carry it too
    return helm.release(
        KUBE_PROMETHEUS_STACK,
        settings.prometheus_release,
        settings.metrics_namespace,
        kube_prometheus_stack_values(settings),
    )


def prometheus_adapter(settings: Settings) -> dict:
    return helm.release(
        PROMETHEUS_ADAPTER, ADAPTER_RELEASE, settings.metrics_namespace, prometheus_adapter_values(settings)
    )
