"""From an empty cluster the plan converges: applied in any order Pulumi may create it (its dependency graph), to a
model that knows only the built-in kinds and the namespaces `default` and `kube-system`, no object is refused and
none waits forever for something nothing creates (tests/infra/cluster_model.py)."""

from __future__ import annotations

import dataclasses

import pytest

from infra.manifests import monitoring_stack
from infra.plan import Entry, plan
from infra.settings import Settings

from .cluster_model import Cluster, Refused, apply_all

SETTINGS = {
    "eks": Settings(target="eks", cluster_name="modelsvc-test"),
    "kubeconfig": Settings(target="kubeconfig"),
    "kubeconfig-per-owner": Settings(target="kubeconfig", namespace_mode="per-owner", ingress_host="m.example.com"),
}


@pytest.mark.parametrize("target", SETTINGS)
@pytest.mark.parametrize("catalog_name", ["example", "small"])
def test_the_whole_plan_applies_to_an_empty_cluster(catalog_name, target, request):
    catalog = request.getfixturevalue(catalog_name)
    p = plan(catalog, SETTINGS[target], usage_store_url="postgresql://u:p@db/modelsvc")
    apply_all(p)
    # and it did apply everything there is, the custom resources included
    cluster = Cluster()
    for entry in p:
        cluster.apply(entry)
    kinds = {k for k, _, _ in cluster.applied}
    assert {"Namespace", "Deployment", "Job", "PodMonitor", "PrometheusRule", "HelmRelease"} <= kinds
    assert len(cluster.applied) == len(p)


def test_an_autoscaled_catalog_gets_its_metric_from_the_installed_adapter(example):
    p = plan(example, SETTINGS["kubeconfig"])
    hpa = next(e for e in p if e.obj["kind"] == "HorizontalPodAutoscaler")
    adapter = next(e for e in p if e.is_release and e.obj["spec"]["chart"] == "prometheus-adapter")
    assert adapter.key in hpa.needs


def _without_need(p, kind, need_kind):
    """The plan with one edge dropped: `kind`'s entries forget their need of a `need_kind`."""
    entries = [
        dataclasses.replace(e, needs=tuple(n for n in e.needs if n[0] != need_kind)) if e.obj["kind"] == kind else e
        for e in p.entries
    ]
    return dataclasses.replace(p, entries=entries)


@pytest.mark.parametrize(
    "kind, need, message",
    [
        ("PodMonitor", "HelmRelease", "no matches for kind"),  # the CRDs come with kube-prometheus-stack
        ("Deployment", "ServiceAccount", "would never become ready"),
        ("ServiceAccount", "Namespace", "not found"),
        ("HorizontalPodAutoscaler", "HelmRelease", "would never get its metric"),
    ],
)
def test_a_missing_edge_is_caught(example, kind, need, message):
    """The model is not satisfied by the plan's list order alone: drop one dependency and some order Pulumi may take
    creates the object too early."""
    broken = _without_need(plan(example, SETTINGS["kubeconfig"]), kind, need)
    with pytest.raises(Refused, match=message):
        apply_all(broken)


def test_an_existing_monitoring_stack_is_checked_not_assumed(example):
    settings = Settings(target="kubeconfig", monitoring="existing")
    p = plan(example, settings)
    required = {e.key for e in p.prerequisites}
    assert required == {
        ("Namespace", None, "monitoring"),
        ("CustomResourceDefinition", None, "podmonitors.monitoring.coreos.com"),
        ("CustomResourceDefinition", None, "prometheusrules.monitoring.coreos.com"),
        ("APIService", None, monitoring_stack.CUSTOM_METRICS_API),
    }
    assert not p.releases  # nothing installed
    with pytest.raises(Refused, match="prerequisite Namespace 'monitoring' is missing"):
        apply_all(p)  # an empty cluster has none of it: the preview stops at the first

    def ready():
        return Cluster(
            namespaces=("default", "kube-system", "monitoring"),
            crds_installed=set(monitoring_stack.CRDS.values()),
            api_services={monitoring_stack.CUSTOM_METRICS_API},
        )

    apply_all(p, ready)


def test_annotations_mode_needs_only_the_metrics_api_for_its_hpas(example, small):
    settings = Settings(target="kubeconfig", monitoring="annotations")
    assert not plan(small, settings).prerequisites  # no HPA: nothing to require
    p = plan(example, settings)
    assert {e.key[0] for e in p.prerequisites} == {"Namespace", "APIService"}
    assert not [e for e in p if e.obj["apiVersion"].startswith("monitoring.coreos.com")]


def test_a_prerequisite_is_never_created(example):
    p = plan(example, Settings(target="kubeconfig", monitoring="existing"))
    created = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in p.objects}
    assert not created & {e.key for e in p.prerequisites}
    assert all(isinstance(e, Entry) and e.existing for e in p.prerequisites)
