"""Plain manifest dicts → typed pulumi_kubernetes resources (no YAML round trip, nothing created inside apply)."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes._tables import CAMEL_TO_SNAKE_CASE_TABLE

from .manifests import helm

_KINDS = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
}
# Prometheus Operator kinds: custom resources (their CRDs come with the monitoring stack, infra/plan.py).
_CUSTOM = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# What a plan may require without creating (read at preview: a missing one fails it, naming the object).
# Each is the class's static `get(resource_name, id, opts)`.
_READABLE: dict[tuple[str, str], Callable[..., pulumi.Resource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace.get,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): k8s.apiextensions.v1.CustomResourceDefinition.get,
    ("apiregistration.k8s.io/v1", "APIService"): k8s.apiregistration.v1.APIService.get,
}


def resource_name(obj: dict) -> str:
    """Pulumi logical name: kind + namespace + name, unique per stack and stable while the object keeps its name."""
    md = obj["metadata"]
    return "-".join(p for p in (obj["kind"].lower(), md.get("namespace"), md["name"]) if p)


def create(obj: dict, opts: pulumi.ResourceOptions | None = None) -> pulumi.Resource:
    if helm.is_release(obj):
        return _release(obj, opts)
    if (obj["apiVersion"], obj["kind"]) in _CUSTOM:
        return k8s.apiextensions.CustomResource(
            resource_name(obj),
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=obj["metadata"],
            spec=obj["spec"],
            opts=opts,
        )
    cls = _KINDS.get((obj["apiVersion"], obj["kind"]))
    if cls is None:
        raise ValueError(f"no resource class for {obj['apiVersion']} {obj['kind']}")
    kwargs = {CAMEL_TO_SNAKE_CASE_TABLE.get(k, k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return cls(resource_name(obj), opts=opts, **kwargs)


def read(obj: dict, opts: pulumi.ResourceOptions | None = None) -> pulumi.Resource:
    """A prerequisite: the existing object, read from the cluster (`.get`); the preview fails when it is missing,
    with this logical name (`prerequisite-<kind>-<name>`) in the message."""
    get = _READABLE.get((obj["apiVersion"], obj["kind"]))
    if get is None:
        raise ValueError(f"cannot require {obj['apiVersion']} {obj['kind']}")
    return get(f"prerequisite-{resource_name(obj)}", obj["metadata"]["name"], opts=opts)


def _release(obj: dict, opts: pulumi.ResourceOptions | None) -> pulumi.Resource:
    spec, md = obj["spec"], obj["metadata"]
    timeout = opts.custom_timeouts.create if opts and opts.custom_timeouts else None
    return k8s.helm.v3.Release(
        resource_name(obj),
        name=md["name"],  # the Helm release name: charts derive their objects' names from it
        namespace=md["namespace"],
        chart=spec["chart"],
        version=spec["version"],
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=spec["repository"]),
        values=spec["values"],
        timeout=int(timeout.rstrip("s")) if timeout else None,  # Helm's own wait for the chart's workloads
        opts=opts,
    )
