"""Helm releases in the plan: a chart at a pinned version with its values, named and namespaced like an object.

Not a Kubernetes kind: the Pulumi program installs it with `kubernetes:helm.sh/v3:Release` (which waits for the
chart's workloads), `modelsvc render` writes its values file and the `helm upgrade --install` line of `apply.sh`.
"""

from __future__ import annotations

from ..charts import Chart

API_VERSION = "helm.sh/v3"
KIND = "HelmRelease"


def release(chart: Chart, name: str, namespace: str, values: dict) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"chart": chart.name, "version": chart.version, "repository": chart.repo, "values": values},
    }


def is_release(obj: dict) -> bool:
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") == KIND
