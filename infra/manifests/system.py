"""Cluster-level and namespace-level objects: namespaces, service accounts, Triton NetworkPolicy, device plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import labels as L
from ..capacity import triton_services
from ..names import TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT, namespace_of
from ..settings import Settings
from .common import ENGINE_SERVICE_ACCOUNT, IRSA_ANNOTATION, meta

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

SYSTEM_APP = "modelsvc"
GATEWAY_APP = "modelsvc-gateway"


def triton_namespaces(catalog: "Catalog", settings: Settings) -> list[str]:
    """Namespaces holding Triton objects, in catalog order (shared mode: just the one)."""
    seen: dict[str, None] = {}
    for s in triton_services(catalog):
        seen.setdefault(namespace_of(s, settings), None)
    return list(seen)


def all_namespaces(catalog: "Catalog", settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.namespace, *triton_namespaces(catalog, settings)]))


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": meta(name, L.labels(SYSTEM_APP, L.SYSTEM, name))}


def engine_service_account(ns: str, settings: Settings) -> dict:
    """Used by the build Jobs (write) and Triton pods (read) for the engine cache; on eks it carries the IRSA role."""
    annotations = {IRSA_ANNOTATION: settings.irsa_role_arn} if settings.irsa_role_arn else None
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": meta(ENGINE_SERVICE_ACCOUNT, L.labels(SYSTEM_APP, L.ENGINE_BUILD, ns), ns, annotations)}


def triton_network_policy(ns: str, settings: Settings) -> dict:
    """Only gateway pods reach Triton's ports; everything else is denied ingress to Triton pods in this namespace."""
    gateway_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.namespace}},
        "podSelector": {"matchLabels": L.selector(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta("tritonserver-from-gateway-only", L.labels(SYSTEM_APP, L.TRITON, ns), ns),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "tritonserver",
                                            "app.kubernetes.io/component": L.TRITON}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [gateway_pods],
                         "ports": [{"protocol": "TCP", "port": p}
                                   for p in (TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT)]}],
        },
    }


def device_plugin(settings: Settings) -> dict:
    """NVIDIA device plugin (static manifest of NVIDIA/k8s-device-plugin) on the GPU pool nodes only."""
    lab = L.labels("nvidia-device-plugin", L.DEVICE_PLUGIN, "nvidia-device-plugin")
    sel = L.selector("nvidia-device-plugin", L.DEVICE_PLUGIN, "nvidia-device-plugin")
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": meta("nvidia-device-plugin", lab, "kube-system"),
        "spec": {
            "selector": {"matchLabels": sel},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": lab},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": L.POOL, "operator": "Exists"}]}]}}},
                    "containers": [{
                        "name": "nvidia-device-plugin",
                        "image": settings.device_plugin_image,
                        "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                    }],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }
