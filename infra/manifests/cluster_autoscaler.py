"""Kubernetes' cluster autoscaler for the eks target's GPU node groups, as a Helm release in kube-system.

It adds a node when a pod is pending for one (an HPA scaled up, a rebuild needs headroom, `instances` was raised)
and removes idle ones, within each group's min/max. The chart is pinned per Kubernetes minor (infra/charts.py); its
IRSA role and the node groups' discovery and node-template tags are in infra/aws.py.
"""

from __future__ import annotations

from ..charts import cluster_autoscaler_chart
from ..settings import Settings
from . import helm
from .common import IRSA_ANNOTATION

SERVICE_ACCOUNT = "cluster-autoscaler"  # in kube-system: the IRSA role's trust subject
RELEASE = "cluster-autoscaler"
NAMESPACE = "kube-system"


def values(settings: Settings) -> dict:
    """Auto-discovery by the node groups' tags, IRSA, the chart's own image (its appVersion: the cluster's minor).
    Scale-down waits 10 minutes: a GPU node takes minutes to join and an engine minutes to load."""
    annotations = (
        {IRSA_ANNOTATION: settings.cluster_autoscaler_role_arn} if settings.cluster_autoscaler_role_arn else {}
    )
    return {
        "cloudProvider": "aws",
        "awsRegion": settings.region,
        "autoDiscovery": {"clusterName": settings.cluster_name},
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": annotations}},
        "extraArgs": {
            "expander": "least-waste",
            "balance-similar-node-groups": "false",
            "skip-nodes-with-system-pods": "false",
            "scale-down-unneeded-time": "10m",
            "scale-down-delay-after-add": "10m",
        },
    }


def release(settings: Settings) -> dict:
    return helm.release(cluster_autoscaler_chart(settings.kubernetes_version), RELEASE, NAMESPACE, values(settings))
