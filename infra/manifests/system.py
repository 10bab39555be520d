"""Cluster-level and namespace-level objects: namespaces, service accounts, Triton NetworkPolicy, device plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.names import TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT, namespace_of

from .. import labels as L
from ..settings import Settings
from .common import BUILD_SERVICE_ACCOUNT, IRSA_ANNOTATION, TRITON_SERVICE_ACCOUNT, meta

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

SYSTEM_APP = "modelsvc"
GATEWAY_APP = "modelsvc-gateway"


def triton_namespaces(catalog: Catalog, settings: Settings) -> list[str]:
    """Namespaces holding Triton objects, in catalog order (shared mode: just the one)."""
    seen: dict[str, None] = {}
    for s in deployed_services(catalog):
        seen.setdefault(namespace_of(s, settings), None)
    return list(seen)


def all_namespaces(catalog: Catalog, settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.namespace, *triton_namespaces(catalog, settings)]))


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, L.labels(SYSTEM_APP, L.SYSTEM, name))}


def _service_account(name: str, component: str, ns: str, role_arn) -> dict:
    annotations = {IRSA_ANNOTATION: role_arn} if role_arn else None
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(name, L.labels(SYSTEM_APP, component, ns), ns, annotations),
    }


def build_service_account(settings: Settings) -> dict:
    """The build Jobs' identity (they all run in the system namespace): reads checkpoints, writes the engine cache."""
    return _service_account(BUILD_SERVICE_ACCOUNT, L.ENGINE_BUILD, settings.namespace, settings.build_role_arn)


def triton_service_account(ns: str, settings: Settings) -> dict:
    """Triton pods' identity in their namespace: reads the engine cache, writes nothing."""
    return _service_account(TRITON_SERVICE_ACCOUNT, L.TRITON, ns, settings.triton_role_arn)


def _metrics_scrapers(settings: Settings) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.metrics_namespace}}}


def triton_network_policy(ns: str, settings: Settings) -> dict:
    """Only gateway pods reach Triton's ports, and the metrics namespace (Prometheus) its metrics port; everything
    else is denied ingress to Triton pods in this namespace (enforced on EKS by the VPC CNI's network policy agent)."""
    gateway_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.namespace}},
        "podSelector": {"matchLabels": L.selector(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("tritonserver-from-gateway-only", L.labels(SYSTEM_APP, L.TRITON, ns), ns),
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "tritonserver", "app.kubernetes.io/component": L.TRITON}
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [gateway_pods],
                    "ports": [
                        {"protocol": "TCP", "port": p}
                        for p in (TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT)
                    ],
                },
                {"from": [_metrics_scrapers(settings)], "ports": [{"protocol": "TCP", "port": TRITON_METRICS_PORT}]},
            ],
        },
    }


def gateway_network_policy(settings: Settings) -> dict:
    """The gateway's API port stays open to every client (ingress controllers, in-cluster callers); its internal
    metrics/readiness port only to the metrics namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("modelsvc-gateway-metrics", L.labels(GATEWAY_APP, L.GATEWAY, GATEWAY_APP), settings.namespace),
        "spec": {
            "podSelector": {"matchLabels": L.selector(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": "http"}]},
                {"from": [_metrics_scrapers(settings)], "ports": [{"protocol": "TCP", "port": "metrics"}]},
            ],
        },
    }


def device_plugin(settings: Settings) -> dict:
    """NVIDIA device plugin (static manifest of NVIDIA/k8s-device-plugin) on the GPU pool nodes only."""
    lab = L.labels("nvidia-device-plugin", L.DEVICE_PLUGIN, "nvidia-device-plugin")
    sel = L.selector("nvidia-device-plugin", L.DEVICE_PLUGIN, "nvidia-device-plugin")
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("nvidia-device-plugin", lab, "kube-system"),
        "spec": {
            "selector": {"matchLabels": sel},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": lab},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{"key": L.POOL, "operator": "Exists"}]}]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": "nvidia-device-plugin",
                            "image": settings.device_plugin_image,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                        }
                    ],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }
