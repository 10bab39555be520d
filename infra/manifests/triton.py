"""Per service with a triton-backed model: engine-build Job, Triton Deployment, headless Service, PDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import labels as L
from ..cache import MAX_BATCH_SIZE, engine_uri, service_cache_key
from ..capacity import gpu_type, resources
from ..names import (TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT, engine_job_name, k8s_name,
                     namespace_of)
from ..settings import Settings
from . import scripts
from .common import ENGINE_SERVICE_ACCOUNT, PULUMI_TIMEOUT, gpu_toleration, meta

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Service

TRITON_APP = "tritonserver"
STARTUP_BUDGET_S = 15 * 60  # engine load of a large model; the startup probe allows this much
SHM_SIZE = "8Gi"
PORTS = [("http", TRITON_HTTP_PORT), ("grpc", TRITON_GRPC_PORT), ("metrics", TRITON_METRICS_PORT)]


def _labels(service: "Service", component: str, extra: dict | None = None) -> dict:
    return L.labels(TRITON_APP, component, k8s_name(service.access_name), service.id, service.owner, extra)


def triton_selector(service: "Service") -> dict:
    return L.selector(TRITON_APP, L.TRITON, k8s_name(service.access_name))


def _placement(service: "Service") -> dict:
    return {"nodeSelector": {L.POOL: service.pool}, "tolerations": [gpu_toleration()]}


def _engine_env(catalog: "Catalog", service: "Service", settings: Settings) -> list[dict]:
    key = service_cache_key(catalog, service, settings)
    return [{"name": "ENGINE_KEY", "value": key}, {"name": "ENGINE_URI", "value": engine_uri(settings, key)}]


def probes() -> dict:
    """Startup: /v2/health/ready for up to STARTUP_BUDGET_S (engine load); then readiness on the same path (out of
    the headless Service's DNS when not ready) and liveness on /v2/health/live (restart when wedged)."""
    period = 10
    return {
        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": period,
                         "timeoutSeconds": 5, "failureThreshold": STARTUP_BUDGET_S // period},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 6},
    }


def engine_job(catalog: "Catalog", service: "Service", settings: Settings) -> dict:
    """Builds the service's engine into the cache unless it is there already.

    The name carries the cache key: a changed key is a new Job (rebuild), an unchanged one is left alone. Services
    sharing a key share the cached engine: the first build writes it, the others find the marker and stop at once.
    """
    model = catalog.model_of(service)
    key = service_cache_key(catalog, service, settings)
    name = engine_job_name(k8s_name(service.access_name), key)
    lab = _labels(service, L.ENGINE_BUILD, {L.CACHE_KEY: key})
    env = _engine_env(catalog, service, settings) + [
        {"name": "MODEL_SOURCE", "value": model.source or ""},
        {"name": "TP_SIZE", "value": str(model.gpus)},
        {"name": "DTYPE", "value": model.dtype},
        {"name": "MAX_INPUT_TOKENS", "value": str(model.max_input_tokens)},
        {"name": "MAX_OUTPUT_TOKENS", "value": str(model.max_output_tokens)},
        {"name": "MAX_BATCH_SIZE", "value": str(MAX_BATCH_SIZE)},
        {"name": "TASK", "value": model.task.value},
        {"name": "GPU_TYPE", "value": gpu_type(catalog, service.pool)},
    ]
    work = [{"name": "work", "mountPath": "/work"}]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(name, lab, namespace_of(service, settings), {PULUMI_TIMEOUT: str(4 * 3600)}),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 4 * 3600,
            "template": {
                "metadata": {"labels": lab},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": ENGINE_SERVICE_ACCOUNT,
                    **_placement(service),
                    "initContainers": [
                        {"name": "fetch-checkpoint", "image": settings.aws_cli_image, "command": ["sh", "-c"],
                         "args": [scripts.FETCH_CHECKPOINT], "env": env, "volumeMounts": work},
                        {"name": "build-engine", "image": settings.triton_image, "command": ["python3", "-c"],
                         "args": [scripts.BUILD_ENGINE], "env": env, "resources": resources(model),
                         "volumeMounts": work + [{"name": "shm", "mountPath": "/dev/shm"}]},
                    ],
                    "containers": [
                        {"name": "upload-engine", "image": settings.aws_cli_image, "command": ["sh", "-c"],
                         "args": [scripts.UPLOAD_ENGINE], "env": env, "volumeMounts": work},
                    ],
                    "volumes": [{"name": "work", "emptyDir": {}},
                                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}],
                },
            },
        },
    }


def triton_command(gpus: int) -> tuple[list[str], list[dict]]:
    """tritonserver arguments and extra env. With several GPUs the TensorRT-LLM backend runs in orchestrator mode
    (one Triton process spawns a worker per GPU), so the pod stays one process listening on the three ports."""
    cmd = ["tritonserver", "--model-repository=/models/repo", f"--http-port={TRITON_HTTP_PORT}",
           f"--grpc-port={TRITON_GRPC_PORT}", f"--metrics-port={TRITON_METRICS_PORT}", "--disable-auto-complete-config",
           "--backend-config=python,shm-region-prefix-name=prefix0_"]
    env = [{"name": "TRTLLM_ORCHESTRATOR", "value": "1"}] if gpus > 1 else []
    return cmd, env


def deployment(catalog: "Catalog", service: "Service", settings: Settings) -> dict:
    model = catalog.model_of(service)
    name = k8s_name(service.access_name)
    key = service_cache_key(catalog, service, settings)
    lab = _labels(service, L.TRITON, {L.CACHE_KEY: key})
    cmd, extra_env = triton_command(model.gpus)
    models_mount = {"name": "models", "mountPath": "/models"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(name, lab, namespace_of(service, settings), {PULUMI_TIMEOUT: "2400"}),
        "spec": {
            "replicas": service.instances,
            "selector": {"matchLabels": triton_selector(service)},
            # One GPU instance cannot be surged onto a full pool: replace pods one at a time instead.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": lab},
                "spec": {
                    "serviceAccountName": ENGINE_SERVICE_ACCOUNT,
                    **_placement(service),
                    "terminationGracePeriodSeconds": 60,
                    "initContainers": [
                        {"name": "fetch-engine", "image": settings.aws_cli_image, "command": ["sh", "-c"],
                         "args": [scripts.FETCH_ENGINE], "env": _engine_env(catalog, service, settings),
                         "volumeMounts": [models_mount]},
                    ],
                    "containers": [{
                        "name": "triton",
                        "image": settings.triton_image,
                        "command": cmd,
                        "env": extra_env,
                        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in PORTS],
                        "resources": resources(model),
                        **probes(),
                        "volumeMounts": [models_mount, {"name": "shm", "mountPath": "/dev/shm"}],
                    }],
                    "volumes": [{"name": "models", "emptyDir": {}},
                                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}],
                },
            },
        },
    }


def headless_service(catalog: "Catalog", service: "Service", settings: Settings) -> dict:
    """clusterIP None: DNS returns every ready pod so the gateway keeps one gRPC channel per pod and balances."""
    name = k8s_name(service.access_name)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(name, _labels(service, L.TRITON), namespace_of(service, settings)),
        "spec": {
            "clusterIP": "None",
            "selector": triton_selector(service),
            "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in PORTS],
        },
    }


def pod_disruption_budget(catalog: "Catalog", service: "Service", settings: Settings) -> dict:
    """Voluntary evictions (node drains, upgrades) take at most one instance at a time."""
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": meta(k8s_name(service.access_name), _labels(service, L.TRITON), namespace_of(service, settings)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": triton_selector(service)}},
    }


def service_objects(catalog: "Catalog", service: "Service", settings: Settings) -> list[dict]:
    return [engine_job(catalog, service, settings), deployment(catalog, service, settings),
            headless_service(catalog, service, settings), pod_disruption_budget(catalog, service, settings)]
