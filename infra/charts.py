"""The Helm charts the stack installs, pinned, and their values (plain dicts: the plan carries them as releases).

Every pin names the chart's source at that version; tests/infra/test_charts.py checks what we rely on against the
facts read from each pinned chart's own files (tests/infra/data/helm-chart-facts.json, written by
devtools/chart_facts.py: regenerate it with a new pin, docs/infra.md "Helm chart facts").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repo: str
    app_version: str  # what the chart's Chart.yaml says it runs (checked against its facts)


PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts"
# prometheus-community/helm-charts tag kube-prometheus-stack-88.3.0 (54199b5b): Prometheus Operator v0.93.0, whose
# CRDs (charts/crds/crds/) are the ones the tests validate our resources against (MODELSVC_K8S_CRDS).
KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "88.3.0", PROMETHEUS_COMMUNITY, "v0.93.0")
# tag prometheus-adapter-5.3.0 (e6e041b6): prometheus-adapter v0.12.0.
PROMETHEUS_ADAPTER = Chart("prometheus-adapter", "5.3.0", PROMETHEUS_COMMUNITY, "v0.12.0")

AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler"
# The cluster autoscaler's minor must match the cluster's (kubernetes/autoscaler cluster-autoscaler/README.md,
# "Releases"), and the chart renders the RBAC its image needs: per Kubernetes minor, the newest chart whose
# appVersion is that minor (kubernetes/autoscaler tags cluster-autoscaler-chart-<v>). Images >= 1.32 start a
# VolumeAttachment informer and block until it syncs (kubernetes/autoscaler#7663): charts from 9.46.3 grant it.
CLUSTER_AUTOSCALER = {
    "1.32": Chart("cluster-autoscaler", "9.46.6", AUTOSCALER_REPO, "1.32.0"),
    "1.33": Chart("cluster-autoscaler", "9.51.0", AUTOSCALER_REPO, "1.33.0"),
    "1.34": Chart("cluster-autoscaler", "9.53.0", AUTOSCALER_REPO, "1.34.2"),
    "1.35": Chart("cluster-autoscaler", "9.59.0", AUTOSCALER_REPO, "1.35.0"),
}


def cluster_autoscaler_chart(kubernetes_version: str) -> Chart:
    minor = ".".join(kubernetes_version.split(".")[:2])
    if minor not in CLUSTER_AUTOSCALER:
        raise ValueError(
            f"kubernetesVersion {kubernetes_version}: no cluster-autoscaler chart is pinned for it "
            f"(supported: {', '.join(CLUSTER_AUTOSCALER)}; infra/charts.py)"
        )
    return CLUSTER_AUTOSCALER[minor]
