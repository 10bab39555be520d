"""The gateway: catalog ConfigMap, Deployment (rolled when the catalog changes), Service, PDB, optional Ingress."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from modelsvc.catalog.gateway_settings import env_name
from modelsvc.catalog.names import ENV_CLUSTER_DOMAIN, ENV_NAMESPACE, ENV_NAMESPACE_MODE

from .. import labels as L
from ..settings import Settings
from .common import meta, sha256
from .system import GATEWAY_APP, gateway_network_policy

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

CATALOG_CONFIGMAP = "modelsvc-catalog"
CATALOG_FILE = "services.yaml"
CATALOG_DIR = "/etc/modelsvc"
SERVICE_PORT = 80
# The gateway's internal port: /metrics and per-service /readyz. Only Prometheus scrapes it (pod annotations); the
# Service and the Ingress expose the API port alone.
USAGE_DIR = "/var/lib/modelsvc/usage"  # an emptyDir: records survive a container restart (SIGKILL, OOM)
USAGE_SECRET = "gateway-usage-store"  # the Secret the eks target creates for its RDS database


def catalog_text(catalog: Catalog) -> str:
    """The parsed catalog in canonical form, not the file as written: a comment-only or reordered edit of
    services.yaml changes neither the ConfigMap nor the hash, so it rolls nothing."""
    return yaml.safe_dump(catalog.canonical_data(), sort_keys=True, allow_unicode=True)


def catalog_hash(catalog: Catalog) -> str:
    return sha256(catalog.canonical_json())


def _labels() -> dict:
    return L.labels(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)


def gateway_selector() -> dict:
    return L.selector(GATEWAY_APP, L.GATEWAY, GATEWAY_APP)


def catalog_configmap(catalog: Catalog, settings: Settings) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(CATALOG_CONFIGMAP, _labels(), settings.namespace),
        "data": {CATALOG_FILE: catalog_text(catalog)},
    }


def deployment(catalog: Catalog, settings: Settings) -> dict:
    http = {"port": "http"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(GATEWAY_APP, _labels(), settings.namespace),
        "spec": {
            "replicas": catalog.gateway.replicas,
            "selector": {"matchLabels": gateway_selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                # The content hash rolls the pods on a catalog change, even though the gateway also reloads it.
                "metadata": {
                    "labels": _labels(),
                    "annotations": {
                        L.CATALOG_HASH: catalog_hash(catalog),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(settings.gateway_metrics_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": GATEWAY_APP,
                    "automountServiceAccountToken": False,
                    # drain, then grace for in-flight streams, then a margin before the kubelet's SIGKILL
                    "terminationGracePeriodSeconds": settings.gateway_drain_s + settings.gateway_grace_s + 10,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": gateway_selector()},
                        }
                    ],
                    "containers": [
                        {
                            "name": "gateway",
                            "image": settings.image("gateway"),
                            # the gateway's settings by their declared environment names (gateway_settings.py)
                            "env": [
                                {"name": env_name("config"), "value": f"{CATALOG_DIR}/{CATALOG_FILE}"},
                                {"name": env_name("port"), "value": str(settings.gateway_port)},
                                # `modelsvc serve --metrics-port`: /metrics and per-service readiness, off the API port
                                {"name": env_name("metrics_port"), "value": str(settings.gateway_metrics_port)},
                                # it binds loopback unless told: Prometheus scrapes the pod's address (the
                                # NetworkPolicy limits who may; the Service never exposes the port)
                                {"name": env_name("metrics_host"), "value": "0.0.0.0"},
                                {"name": ENV_NAMESPACE, "value": settings.namespace},
                                {"name": ENV_NAMESPACE_MODE, "value": settings.namespace_mode},
                                {"name": ENV_CLUSTER_DOMAIN, "value": settings.cluster_domain},
                                {"name": env_name("drain"), "value": str(settings.gateway_drain_s)},
                                {"name": env_name("grace"), "value": str(settings.gateway_grace_s)},
                                *(
                                    [
                                        {
                                            "name": env_name("redis_url"),
                                            "valueFrom": {
                                                "secretKeyRef": {"name": settings.gateway_redis_secret, "key": "url"}
                                            },
                                        }
                                    ]
                                    if settings.gateway_redis_secret
                                    else []
                                ),
                                # Usage: the spool in front of the database (or, without one, the local log) lives on
                                # the pod's volume, never in the container's own filesystem.
                                {"name": env_name("usage_spool"), "value": f"{USAGE_DIR}/spool"},
                                {"name": env_name("usage_log"), "value": f"{USAGE_DIR}/usage.jsonl"},
                                # stored Responses API responses without a usage database: beside the local log
                                {"name": env_name("responses_store"), "value": f"{USAGE_DIR}/responses.sqlite3"},
                                *(
                                    [
                                        {
                                            "name": env_name("usage_store"),
                                            "valueFrom": {
                                                "secretKeyRef": {"name": settings.gateway_usage_secret, "key": "url"}
                                            },
                                        }
                                    ]
                                    if settings.gateway_usage_secret
                                    else []
                                ),
                            ],
                            "ports": [
                                {"name": "http", "containerPort": settings.gateway_port, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": settings.gateway_metrics_port, "protocol": "TCP"},
                            ],
                            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", **http},
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", **http},
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [
                                {"name": "catalog", "mountPath": CATALOG_DIR, "readOnly": True},
                                {"name": "usage", "mountPath": USAGE_DIR},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "catalog", "configMap": {"name": CATALOG_CONFIGMAP}},
                        {"name": "usage", "emptyDir": {"sizeLimit": "2Gi"}},
                    ],
                },
            },
        },
    }


def usage_store_secret(url, settings: Settings) -> dict:
    """The Secret holding the usage database's DSN (`url` may be a Pulumi Output: the RDS endpoint)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(USAGE_SECRET, _labels(), settings.namespace),
        "type": "Opaque",
        "stringData": {"url": url},
    }


def service_account(settings: Settings) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(GATEWAY_APP, _labels(), settings.namespace),
        "automountServiceAccountToken": False,
    }


def service(settings: Settings) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(GATEWAY_APP, _labels(), settings.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": gateway_selector(),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(catalog: Catalog, settings: Settings) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(GATEWAY_APP, _labels(), settings.namespace),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": gateway_selector()}},
    }


def ingress(settings: Settings) -> dict | None:
    if not settings.ingress_host:
        return None
    spec: dict = {
        "rules": [
            {
                "host": settings.ingress_host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": GATEWAY_APP, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    if settings.ingress_class:
        spec = {"ingressClassName": settings.ingress_class, **spec}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(GATEWAY_APP, _labels(), settings.namespace),
        "spec": spec,
    }


def gateway_objects(catalog: Catalog, settings: Settings) -> list[dict]:
    objs = [
        service_account(settings),
        catalog_configmap(catalog, settings),
        deployment(catalog, settings),
        service(settings),
        pod_disruption_budget(catalog, settings),
        gateway_network_policy(settings),
    ]
    ing = ingress(settings)
    return objs + ([ing] if ing else [])
