"""The pinned Helm charts, read from their own files at the pinned versions (fixture tree, MODELSVC_HELM_CHARTS):
the cluster autoscaler's RBAC fits its image, and every value we set or rely on exists with the meaning we assume."""

from __future__ import annotations

import re

import pytest
import yaml

from infra.charts import CLUSTER_AUTOSCALER, KUBE_PROMETHEUS_STACK, PROMETHEUS_ADAPTER, Chart
from infra.manifests import cluster_autoscaler, monitoring, monitoring_stack
from infra.settings import Settings

from . import crds
from .cluster_model import chart_dir

# What the cluster autoscaler image lists and watches before it scales anything (it waits for every informer's
# cache to sync): its own informers (kubernetes/autoscaler, tag cluster-autoscaler-1.33.6 be4b5a18,
# cluster-autoscaler/utils/kubernetes/listers.go) and those of the kube-scheduler framework it embeds to simulate
# scheduling (namespaces, services, volumes, storage classes, CSI objects; VolumeAttachments from 1.32:
# kubernetes/autoscaler#7663, fixed in the chart by #7904, first released in cluster-autoscaler-chart-9.46.3).
IMAGE_WATCHES = {
    "": {"pods", "nodes", "namespaces", "services", "replicationcontrollers", "persistentvolumes",
         "persistentvolumeclaims"},
    "apps": {"daemonsets", "replicasets", "statefulsets"},
    "batch": {"jobs"},
    "policy": {"poddisruptionbudgets"},
    "storage.k8s.io": {"storageclasses", "csinodes", "csidrivers", "csistoragecapacities", "volumeattachments"},
}  # fmt: skip
# What it changes: nodes (taints while scaling down), evictions, its status ConfigMap, its leader-election lease.
IMAGE_WRITES = {("", "nodes"): {"update"}, ("", "pods/eviction"): {"create"}, ("coordination.k8s.io", "leases"): {
    "create"}}  # fmt: skip
AWS = {"cloudProvider": "aws", "rbac": {"create": True, "clusterScoped": True, "pspEnabled": False}}
_IF = re.compile(r"\{\{-?\s*if\s+(.*?)\s*-?\}\}")
_KNOWN_TRUE = {"and .Values.rbac.create .Values.rbac.clusterScoped", ".Values.rbac.create"}


def rendered_rules(chart: Chart, template: str = "clusterrole.yaml") -> list[dict]:
    """The rules of the chart's RBAC template as rendered for our values (cloudProvider aws, rbac on): the outer
    `if rbac.create (and clusterScoped)` kept, every other conditional block (other cloud providers, PSP, extra
    rules, `with`/`range` over optional values) dropped, `{{ … }}` expressions replaced by a placeholder."""
    lines, active = [], [True]
    for line in (chart_dir(chart.name, chart.version) / "templates" / template).read_text().splitlines():
        stripped = line.strip()
        if m := _IF.fullmatch(stripped):
            active.append(active[-1] and m.group(1) in _KNOWN_TRUE)
            continue
        if re.fullmatch(r"\{\{-?\s*(with|range)\s.*\}\}", stripped):  # optional extras (annotations): empty for us
            active.append(False)
            continue
        if re.fullmatch(r"\{\{-?\s*end\s*-?\}\}", stripped):
            active.pop()
            continue
        if re.fullmatch(r"\{\{-?\s*else\s*-?\}\}", stripped):
            active[-1] = not active[-1] and active[-2]
            continue
        if not active[-1] or re.fullmatch(r"\{\{.*\}\}", stripped):
            continue
        lines.append(re.sub(r"\{\{.*?\}\}", "x", line))
    doc = yaml.safe_load("\n".join(lines))
    return doc["rules"]


def grants(rules: list[dict], group: str, resource: str, verbs: set[str]) -> bool:
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and not r.get("resourceNames")
        and verbs <= set(r.get("verbs", []))
        for r in rules
    )


def missing_permissions(chart: Chart) -> list[str]:
    rules = rendered_rules(chart)
    missing = [
        f"{verb} {group or 'core'}/{res}"
        for group, resources in IMAGE_WATCHES.items()
        for res in sorted(resources)
        for verb in ("list", "watch")
        if not grants(rules, group, res, {verb})
    ]
    for (group, res), verbs in IMAGE_WRITES.items():
        missing += [f"{v} {group or 'core'}/{res}" for v in sorted(verbs) if not grants(rules, group, res, {v})]
    return missing


def _chart_yaml(chart: Chart) -> dict:
    return yaml.safe_load((chart_dir(chart.name, chart.version) / "Chart.yaml").read_text())


def _values(chart: Chart) -> dict:
    return yaml.safe_load((chart_dir(chart.name, chart.version) / "values.yaml").read_text())


@pytest.mark.parametrize("minor", sorted(CLUSTER_AUTOSCALER))
def test_the_cluster_autoscaler_chart_runs_the_clusters_minor(minor):
    chart = CLUSTER_AUTOSCALER[minor]
    meta = _chart_yaml(chart)
    assert (meta["name"], meta["version"], meta["appVersion"]) == (chart.name, chart.version, chart.app_version)
    assert meta["appVersion"].startswith(f"{minor}.")  # its default image: cluster-autoscaler v<appVersion>
    assert "tag" not in cluster_autoscaler.values(Settings(kubernetes_version=minor)).get("image", {})


@pytest.mark.parametrize("minor", sorted(CLUSTER_AUTOSCALER))
def test_the_cluster_autoscaler_chart_grants_what_its_image_watches(minor):
    assert missing_permissions(CLUSTER_AUTOSCALER[minor]) == []


def test_the_old_chart_lacks_volumeattachments():
    """Chart 9.38.0 (what the stack pinned before, with the image overridden to the cluster's 1.33): the autoscaler
    would wait forever on its VolumeAttachment informer."""
    old = Chart("cluster-autoscaler", "9.38.0", "", "1.30.0")
    assert missing_permissions(old) == [
        "list storage.k8s.io/volumeattachments",
        "watch storage.k8s.io/volumeattachments",
    ]


@pytest.mark.parametrize("minor", sorted(CLUSTER_AUTOSCALER))
def test_our_cluster_autoscaler_values_exist_in_the_chart(minor):
    chart = CLUSTER_AUTOSCALER[minor]
    defaults = _values(chart)
    ours = cluster_autoscaler.values(Settings(kubernetes_version=minor, cluster_name="c", region="us-west-2"))
    for key in ours:
        assert key in defaults, f"{chart.version}: no value {key}"
    assert {"create", "name", "annotations"} <= set(defaults["rbac"]["serviceAccount"])
    assert "clusterName" in defaults["autoDiscovery"]
    assert defaults["rbac"]["create"] is True and defaults["rbac"]["clusterScoped"] is True  # the template's guard
    assert defaults["cloudProvider"] == "aws" or ours["cloudProvider"] == "aws"


def test_kube_prometheus_stack_installs_the_operator_whose_crds_we_validate_against():
    meta = _chart_yaml(KUBE_PROMETHEUS_STACK)
    assert (meta["version"], meta["appVersion"]) == (KUBE_PROMETHEUS_STACK.version, KUBE_PROMETHEUS_STACK.app_version)
    assert meta["appVersion"] == crds.OPERATOR_VERSION == crds.root().name.removeprefix("prometheus-operator-")
    listing = (chart_dir(KUBE_PROMETHEUS_STACK.name, KUBE_PROMETHEUS_STACK.version) / "crds.list").read_text().split()
    for kind, crd in monitoring_stack.CRDS.items():
        assert f"crd-{crd.split('.')[0]}.yaml" in listing, kind


def test_kube_prometheus_stack_selects_our_monitors_rules_and_dashboard(example):
    defaults = _values(KUBE_PROMETHEUS_STACK)
    spec = defaults["prometheus"]["prometheusSpec"]
    # nil selectors + *NilUsesHelmValues: the Prometheus selects objects labelled release: <release name>
    for kind in ("podMonitor", "rule"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is True and spec[f"{kind}Selector"] == {}
        assert spec[f"{kind}NamespaceSelector"] == {}  # every namespace
    assert defaults["crds"]["enabled"] is True
    sidecar = defaults["grafana"]["sidecar"]["dashboards"]
    settings = Settings()
    board = monitoring.dashboard_configmap(settings)
    assert (
        board["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"] and sidecar["searchNamespace"] == "ALL"
    )
    for obj in monitoring.monitoring_objects(example, settings):
        assert (
            obj["metadata"]["labels"]["release"] == monitoring_stack.kube_prometheus_stack(settings)["metadata"]["name"]
        )
    assert defaults["kubeStateMetrics"]["enabled"] is True  # the Job, Deployment and HPA alerts read it
    assert (
        spec["portName"] == "http-web" and defaults["prometheus"]["service"]["port"] == monitoring_stack.PROMETHEUS_PORT
    )
    for key in monitoring_stack.kube_prometheus_stack_values(settings):
        assert key in defaults


def test_prometheus_adapter_serves_our_rules_as_custom_metrics():
    meta = _chart_yaml(PROMETHEUS_ADAPTER)
    assert (meta["version"], meta["appVersion"]) == (PROMETHEUS_ADAPTER.version, PROMETHEUS_ADAPTER.app_version)
    defaults = _values(PROMETHEUS_ADAPTER)
    ours = monitoring_stack.prometheus_adapter_values(Settings())
    assert set(ours["prometheus"]) <= set(defaults["prometheus"]) and set(ours["rules"]) <= set(defaults["rules"])
    base = chart_dir(PROMETHEUS_ADAPTER.name, PROMETHEUS_ADAPTER.version) / "templates"
    # with rules.existing the chart renders no rules ConfigMap of its own, and it registers the APIService only with
    # rules.default or rules.custom set
    assert (base / "configmap.yaml").read_text().startswith("{{- if not .Values.rules.existing -}}")
    assert "if or .Values.rules.default .Values.rules.custom" in (base / "custom-metrics-apiservice.yaml").read_text()
    assert ours["rules"]["default"] is True
