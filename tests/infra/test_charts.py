"""The pinned Helm charts, as read from their own files at the pinned upstream tags (the facts devtools/chart_facts.py
wrote to tests/infra/data/helm-chart-facts.json; tests/infra/helm_facts.py): the facts cover every pin, the cluster
autoscaler's RBAC fits its image, and every value we set or rely on exists with the meaning we assume."""

from __future__ import annotations

import pytest

from infra import charts
from infra.charts import CLUSTER_AUTOSCALER, KUBE_PROMETHEUS_STACK, PROMETHEUS_ADAPTER, Chart
from infra.manifests import cluster_autoscaler, monitoring, monitoring_stack
from infra.settings import Settings

from . import crds
from .helm_facts import exists, facts, holds

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
# What it changes: nodes (taints while scaling down), evictions, its leader-election lease (ClusterRole) and its
# status ConfigMap in its own namespace (Role): Get, Update, Create, Delete of `--status-config-map-name`, default
# cluster-autoscaler-status (be4b5a18 cluster-autoscaler/clusterstate/utils/status.go, config/flags/flags.go).
IMAGE_WRITES = {("", "nodes"): {"update"}, ("", "pods/eviction"): {"create"}, ("coordination.k8s.io", "leases"): {
    "create"}}  # fmt: skip
STATUS_CONFIGMAP = "cluster-autoscaler-status"


def _pinned() -> list[Chart]:
    """Every Chart infra/charts.py pins, wherever it keeps it (a constant, or in a table)."""
    found = []
    for obj in vars(charts).values():
        for item in obj.values() if isinstance(obj, dict) else [obj]:
            if isinstance(item, Chart) and item not in found:
                found.append(item)
    return found


def _values_we_set() -> list[tuple[Chart, dict]]:
    arn = "arn:aws:iam::123456789012:role/c-cluster-autoscaler"
    return [
        *(
            (chart, cluster_autoscaler.values(Settings(kubernetes_version=minor, cluster_name="c", region="us-west-2",
                                                       cluster_autoscaler_role_arn=arn)))
            for minor, chart in CLUSTER_AUTOSCALER.items()
        ),
        (KUBE_PROMETHEUS_STACK, monitoring_stack.kube_prometheus_stack_values(Settings())),
        (PROMETHEUS_ADAPTER, monitoring_stack.prometheus_adapter_values(Settings())),
    ]  # fmt: skip


def _paths(values: dict, looked_up: list[str], prefix: str = "") -> list[str]:
    """The dotted paths of values, down to those the facts looked up (a free-form map like extraArgs is one)."""
    out = []
    for key, v in values.items():
        path = f"{prefix}{key}"
        if path not in looked_up and isinstance(v, dict) and v:
            out += _paths(v, looked_up, f"{path}.")
        else:
            out.append(path)
    return out


def rules(chart: Chart, kind: str = "ClusterRole") -> list[dict]:
    return facts(chart)["rbac"][kind]["rules"]


def grants(rules: list[dict], group: str, resource: str, verbs: set[str], name: str | None = None) -> bool:
    """Some rule grants the verbs on the resource: on every object, or (with name) on that one."""
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and (not r.get("resourceNames") or (name is not None and name in r["resourceNames"]))
        and verbs <= set(r.get("verbs", []))
        for r in rules
    )


def missing_permissions(chart: Chart) -> list[str]:
    cluster_rules = rules(chart)
    missing = [
        f"{verb} {group or 'core'}/{res}"
        for group, resources in IMAGE_WATCHES.items()
        for res in sorted(resources)
        for verb in ("list", "watch")
        if not grants(cluster_rules, group, res, {verb})
    ]
    for (group, res), verbs in IMAGE_WRITES.items():
        missing += [f"{v} {group or 'core'}/{res}" for v in sorted(verbs) if not grants(cluster_rules, group, res, {v})]
    return missing


def test_the_facts_cover_every_pinned_chart():
    """A new pin (or a new version) without regenerated facts fails here, not in a test that reads them."""
    pinned = _pinned()
    assert {c.name for c in pinned} >= {"cluster-autoscaler", "kube-prometheus-stack", "prometheus-adapter"}
    assert set(CLUSTER_AUTOSCALER.values()) <= set(pinned)
    for chart in pinned:
        f = facts(chart)  # LookupError with the command to regenerate
        source = f["source"]
        assert (f["name"], f["version"]) == (chart.name, chart.version)
        assert source["tag"].endswith(f"-{chart.version}") and len(source["commit"]) == 40
        owner, repo = source["repository"].split("/")
        assert chart.repo == f"https://{owner}.github.io/{repo}"  # the Helm repository is that repository's Pages


@pytest.mark.parametrize("chart, ours", _values_we_set(), ids=[f"{c.name}-{c.version}" for c, _ in _values_we_set()])
def test_every_value_we_set_exists_in_the_chart(chart, ours):
    f = facts(chart)
    paths = _paths(ours, f["value_paths"])
    assert [p for p in paths if p not in f["value_paths"]] == [], "add to chart_facts.VALUE_PATHS; regenerate"
    assert [p for p in paths if not exists(f["values"], p)] == [], f"{chart.name} {chart.version} has no such value"


@pytest.mark.parametrize("minor", sorted(CLUSTER_AUTOSCALER))
def test_the_cluster_autoscaler_chart_runs_the_clusters_minor(minor):
    chart = CLUSTER_AUTOSCALER[minor]
    meta = facts(chart)
    assert (meta["name"], meta["version"], meta["appVersion"]) == (chart.name, chart.version, chart.app_version)
    assert meta["appVersion"].startswith(f"{minor}.")  # its default image: cluster-autoscaler v<appVersion>
    assert "tag" not in cluster_autoscaler.values(Settings(kubernetes_version=minor)).get("image", {})


@pytest.mark.parametrize("minor", sorted(CLUSTER_AUTOSCALER))
def test_the_cluster_autoscaler_chart_grants_what_its_image_watches(minor):
    chart = CLUSTER_AUTOSCALER[minor]
    assert missing_permissions(chart) == []
    role = rules(chart, "Role")
    assert grants(role, "", "configmaps", {"create"})  # create cannot be limited to a name
    assert grants(role, "", "configmaps", {"get", "update", "delete"}, name=STATUS_CONFIGMAP)


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
    f = facts(chart)
    defaults = f["values"]
    ours = cluster_autoscaler.values(Settings(kubernetes_version=minor, cluster_name="c", region="us-west-2"))
    for key in ours:
        assert key in defaults, f"{chart.version}: no value {key}"
    assert {"create", "name", "annotations"} <= set(defaults["rbac"]["serviceAccount"])
    assert "clusterName" in defaults["autoDiscovery"]
    assert defaults["rbac"]["create"] is True and defaults["rbac"]["clusterScoped"] is True  # the template's guard
    assert defaults["cloudProvider"] == "aws" or ours["cloudProvider"] == "aws"
    # the facts' RBAC is rendered for exactly this: the templates' guards hold for our values
    for kind in ("ClusterRole", "Role"):
        assert holds(f["rbac"][kind]["when"], f, ours), kind
    assert f["rbac"]["ClusterRole"]["when"] == {"all_of": ["rbac.create", "rbac.clusterScoped"]}


def test_kube_prometheus_stack_installs_the_operator_whose_crds_we_validate_against():
    f = facts(KUBE_PROMETHEUS_STACK)
    assert (f["version"], f["appVersion"]) == (KUBE_PROMETHEUS_STACK.version, KUBE_PROMETHEUS_STACK.app_version)
    assert f["appVersion"] == crds.OPERATOR_VERSION == crds.root().name.removeprefix("prometheus-operator-")
    listing = f["crds"]["files"]
    for kind, crd in monitoring_stack.CRDS.items():
        assert f"crd-{crd.split('.')[0]}.yaml" in listing, kind
    assert f["crds"]["when"] == {"all_of": ["crds.enabled"]}  # Chart.yaml: the crds subchart's condition
    assert holds(f["crds"]["when"], f, monitoring_stack.kube_prometheus_stack_values(Settings()))


def test_kube_prometheus_stack_selects_our_monitors_rules_and_dashboard(example):
    defaults = facts(KUBE_PROMETHEUS_STACK)["values"]
    spec = defaults["prometheus"]["prometheusSpec"]
    # nil selectors + *NilUsesHelmValues: the Prometheus selects objects labelled release: <release name>
    for kind in ("podMonitor", "rule"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is True and spec[f"{kind}Selector"] == {}
        assert spec[f"{kind}NamespaceSelector"] == {}  # every namespace
    assert defaults["crds"]["enabled"] is True
    assert defaults["grafana"]["enabled"] is True  # the dashboard's consumer
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
    f = facts(PROMETHEUS_ADAPTER)
    assert (f["version"], f["appVersion"]) == (PROMETHEUS_ADAPTER.version, PROMETHEUS_ADAPTER.app_version)
    defaults = f["values"]
    ours = monitoring_stack.prometheus_adapter_values(Settings())
    assert set(ours["prometheus"]) <= set(defaults["prometheus"]) and set(ours["rules"]) <= set(defaults["rules"])
    objects = f["objects"]
    # with rules.existing the chart renders no rules ConfigMap of its own, and it registers the APIService only with
    # rules.default or rules.custom set
    assert objects["ConfigMap"]["when"] == {"none_of": ["rules.existing"]}
    assert objects["APIService"]["when"] == {"any_of": ["rules.default", "rules.custom"]}
    assert ours["rules"]["default"] is True
    assert not holds(objects["ConfigMap"]["when"], f, ours) and holds(objects["APIService"]["when"], f, ours)
    api = objects["APIService"]
    assert (api["name"], api["group"], api["version"]) == (
        monitoring_stack.CUSTOM_METRICS_API,
        "custom.metrics.k8s.io",
        "v1beta1",
    )
