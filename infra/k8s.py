"""Plain manifest dicts → typed pulumi_kubernetes resources (no YAML round trip, nothing created inside apply)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes._tables import CAMEL_TO_SNAKE_CASE_TABLE

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
# Prometheus Operator kinds: custom resources (their CRDs come with the operator, not with us).
_CUSTOM = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def resource_name(obj: dict) -> str:
    """Pulumi logical name: kind + namespace + name, unique per stack and stable while the object keeps its name."""
    md = obj["metadata"]
    return "-".join(p for p in (obj["kind"].lower(), md.get("namespace"), md["name"]) if p)


def create(obj: dict, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
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
    if obj["kind"] == "Job":
        # Jobs are immutable and named: a changed spec under the same name must delete the old one first.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))
    return cls(resource_name(obj), opts=opts, **kwargs)
