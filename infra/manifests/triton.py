"""Per service with a triton-backed model: engine-build Job, Triton Deployment, headless Service, PDB."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from modelsvc.catalog.capacity import build_gpus
from modelsvc.catalog.model import Task
from modelsvc.catalog.names import (
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    engine_job_name,
    k8s_name,
    namespace_of,
)

from .. import disk
from .. import labels as L
from ..cache import MAX_BATCH_SIZE, engine_builds, engine_uri, max_num_tokens, service_cache_key, spec_json
from ..settings import Settings
from . import scripts
from .common import BUILD_SERVICE_ACCOUNT, TRITON_SERVICE_ACCOUNT, gpu_toleration, meta

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Model, Service

TRITON_APP = "tritonserver"
BUILD_APP = "engine-build"
BUILD_BUDGET_S = 4 * 3600  # Job deadline and Pulumi's wait for it (infra/plan.py)
TRTLLM_TEMPLATES = "/app/all_models"  # NVIDIA's Triton TensorRT-LLM image: triton_backend/all_models of its release
DIFFUSION_TEMPLATES = "/workspace/diffusion-models"  # the tutorials' diffusion image: its model configs
# multimodal.md sizes GPU 0's CUDA memory pool for the prompt tables passed between models: fp16 (2 bytes) × image
# features (324 for Qwen2-VL at 504x504) × hidden size (8192 covers the 72B model) × max batch size.
MULTIMODAL_POOL_BYTES = 2 * 324 * 8192 * MAX_BATCH_SIZE
STARTUP_BUDGET_S = 15 * 60  # engine load of a large model; the startup probe allows this much
# A finished build Job (complete or failed) is deleted this long after it ends: its logs stay readable meanwhile
# (`kubectl logs job/engine-build-<key>`), then the next deploy finds the engine cached, or builds it afresh.
FINISHED_BUILD_TTL_S = 3600
# No Hugging Face Hub (or any internet) in build and serving pods: every library that could reach for it is told
# not to, so a missing file fails with its name instead of downloading (a production VPC has no route anyway).
OFFLINE_ENV = [
    {"name": "HF_HUB_OFFLINE", "value": "1"},
    {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
    {"name": "HF_DATASETS_OFFLINE", "value": "1"},
]
HF_CACHE = "hf"  # under the engine entry: the Hub-layout cache the diffusion demo reads its scheduler from
SHM_SIZE = "8Gi"
PORTS = [("http", TRITON_HTTP_PORT), ("grpc", TRITON_GRPC_PORT), ("metrics", TRITON_METRICS_PORT)]


def resources(model: Model) -> dict:
    """Container resources of one Triton instance: all its GPUs, plus host CPU/memory sized per GPU."""
    return {
        "limits": {"nvidia.com/gpu": str(model.gpus)},
        "requests": {"nvidia.com/gpu": str(model.gpus), "cpu": str(4 * model.gpus), "memory": f"{16 * model.gpus}Gi"},
    }


def _labels(service: Service, component: str, extra: dict | None = None) -> dict:
    return L.labels(TRITON_APP, component, k8s_name(service.access_name), service.id, service.owner, extra)


def triton_selector(service: Service) -> dict:
    return L.selector(TRITON_APP, L.TRITON, k8s_name(service.access_name))


def _placement(service: Service) -> dict:
    return {"nodeSelector": {L.POOL: service.pool}, "tolerations": [gpu_toleration()]}


def _engine_env(key: str, settings: Settings) -> list[dict]:
    return [{"name": "ENGINE_KEY", "value": key}, {"name": "ENGINE_URI", "value": engine_uri(settings, key)}]


def probes() -> dict:
    """Startup: /v2/health/ready for up to STARTUP_BUDGET_S (engine load); then readiness on the same path (out of
    the headless Service's DNS when not ready) and liveness on /v2/health/live (restart when wedged)."""
    period = 10
    return {
        "startupProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": STARTUP_BUDGET_S // period,
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
    }


def serving_image(model: Model, settings: Settings) -> str:
    """NVIDIA's Triton TensorRT-LLM image; for vision-chat the same with its per-model requirements; for
    image-generation the tutorials' diffusion image (infra/images.py)."""
    if model.task is Task.image_generation:
        return settings.image("diffusion")
    if model.task is Task.vision_chat:
        return settings.image("vision")
    return settings.triton_image


def _templates_dir(model: Model) -> str:
    """Where the serving image keeps NVIDIA's model-repository templates of its own release."""
    return DIFFUSION_TEMPLATES if model.task is Task.image_generation else TRTLLM_TEMPLATES


def engine_job(catalog: Catalog, key: str, services: list[Service], settings: Settings) -> dict:
    """Builds one engine cache entry (all `services` share its key) unless it is there already.

    The name carries the key: a changed key is a new Job (rebuild), an unchanged one is left alone, and services
    sharing a key share one Job. Steps: fetch the checkpoint (aws-cli) → copy the serving image's own templates →
    write the model repository with infra.modelrepo (gateway image; fails in seconds on a template problem, before
    any GPU time) → build the engine (serving image, GPU) → upload, marker last (aws-cli).
    """
    first = services[0]
    model = catalog.model_of(first)
    lab = L.labels(BUILD_APP, L.ENGINE_BUILD, engine_job_name(key), extra={L.CACHE_KEY: key})
    env = _engine_env(key, settings) + [
        {"name": "MODEL_SOURCE", "value": model.source or ""},
        {"name": "TASK", "value": model.task.value},
        {"name": "TP_SIZE", "value": str(model.gpus)},
        {"name": "DTYPE", "value": model.dtype},
        {"name": "MAX_INPUT_TOKENS", "value": str(model.max_input_tokens)},
        {"name": "MAX_OUTPUT_TOKENS", "value": str(model.max_output_tokens)},
        {"name": "MAX_BATCH_SIZE", "value": str(MAX_BATCH_SIZE)},
        {"name": "MAX_NUM_TOKENS", "value": str(max_num_tokens(model))},
        {"name": "TRITON_MODEL", "value": model.triton_model_name},
        *OFFLINE_ENV,
    ]
    storage = {"ephemeral-storage": settings.build_disk}
    small = {"requests": {"cpu": "1", "memory": "2Gi", **storage}, "limits": {"memory": "4Gi", **storage}}
    gpu = resources(model)
    gpu = {"requests": {**gpu["requests"], **storage}, "limits": {**gpu["limits"], **storage}}
    work = [{"name": "work", "mountPath": "/work"}]
    image = serving_image(model, settings)
    # No pulumi.com/replaceUnready: a running build is unready too, and the next deploy must never replace it.
    # A failed one is retried once its TTL deletes it (FINISHED_BUILD_TTL_S).
    annotations = {"modelsvc.io/model": first.model}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(engine_job_name(key), lab, settings.namespace, annotations),
        "spec": {
            "backoffLimit": 1,  # one retry (a lost node); a deterministic failure should not burn GPU hours
            "activeDeadlineSeconds": BUILD_BUDGET_S,
            "ttlSecondsAfterFinished": FINISHED_BUILD_TTL_S,
            "template": {
                "metadata": {"labels": lab},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": BUILD_SERVICE_ACCOUNT,
                    **_placement(first),
                    "initContainers": [
                        {
                            "name": "fetch-checkpoint",
                            "image": settings.aws_cli_image,
                            "command": ["sh", "-c"],
                            "args": [scripts.FETCH_CHECKPOINT],
                            "env": env,
                            "resources": small,
                            "volumeMounts": work,
                        },
                        {
                            "name": "templates",
                            "image": image,
                            "command": ["sh", "-c"],
                            "args": [scripts.copy_templates(_templates_dir(model))],
                            "env": OFFLINE_ENV,
                            "resources": small,
                            "volumeMounts": work,
                        },
                        {
                            "name": "model-repo",
                            "image": settings.image("build-tools"),
                            "command": ["sh", "-c"],
                            "args": [scripts.MODEL_REPO],
                            "env": [
                                {"name": "MODEL_REPO_SPEC", "value": json.dumps(spec_json(model), sort_keys=True)},
                                *OFFLINE_ENV,
                            ],
                            "resources": small,
                            "volumeMounts": work,
                        },
                        {
                            "name": "build-engine",
                            "image": image,
                            "command": ["python3", "-c"],
                            "args": [scripts.BUILD_ENGINE],
                            "env": env,
                            "resources": gpu,
                            "volumeMounts": work + [{"name": "shm", "mountPath": "/dev/shm"}],
                        },
                    ],
                    "containers": [
                        {
                            "name": "upload-engine",
                            "image": settings.aws_cli_image,
                            "command": ["sh", "-c"],
                            "args": [scripts.UPLOAD_ENGINE],
                            "env": env,
                            "resources": small,
                            "volumeMounts": work,
                        },
                    ],
                    "volumes": [
                        {"name": "work", "emptyDir": {"sizeLimit": settings.build_disk}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
                    ],
                },
            },
        },
    }


def engine_jobs(catalog: Catalog, settings: Settings) -> list[dict]:
    return [engine_job(catalog, key, services, settings) for key, services in engine_builds(catalog, settings).items()]


def _engine_models(model: Model) -> list[str]:
    """The models that hold a TensorRT engine: the ones every MPI rank loads in leader mode."""
    return ["tensorrt_llm", "multimodal_encoders"] if model.task is Task.vision_chat else ["tensorrt_llm"]


def triton_command(model: Model) -> tuple[list[str], list[dict]]:
    """tritonserver command and extra env. With several GPUs: NVIDIA's leader mode, as its
    scripts/launch_triton_server.py does: one `mpirun` with a tritonserver per rank (`-n 1 tritonserver … : …`);
    rank 0 loads the whole repository and serves, the other ranks load only the engine models."""
    ports = [
        f"--grpc-port={TRITON_GRPC_PORT}",
        f"--http-port={TRITON_HTTP_PORT}",
        f"--metrics-port={TRITON_METRICS_PORT}",
        "--disable-auto-complete-config",
    ]

    def rank_args(rank: int) -> list[str]:
        if rank:
            only = ["--model-control-mode=explicit", *(f"--load-model={m}" for m in _engine_models(model))]
        elif model.task is Task.vision_chat:  # multimodal.md: GPU 0's CUDA pool carries the prompt tables
            only = [f"--cuda-memory-pool-byte-size=0:{MULTIMODAL_POOL_BYTES}"]
        else:
            only = []
        return [
            "tritonserver",
            "--model-repository=/models/repo",
            *only,
            *ports,
            f"--backend-config=python,shm-region-prefix-name=prefix{rank}_",
        ]

    if model.gpus == 1 or model.task is Task.image_generation:
        return rank_args(0), []
    cmd = ["mpirun", "--allow-run-as-root"]
    for rank in range(model.gpus):
        cmd += [*([":"] if rank else []), "-n", "1", *rank_args(rank)]
    return cmd, [{"name": "PMIX_MCA_gds", "value": "hash"}]  # NVIDIA's multimodal.md note for MPI_Init_thread


def scrape_annotations() -> dict:
    """The plain-Prometheus fallback (the `kubernetes-pods` job of the community chart): scrape Triton's metrics."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(TRITON_METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def rollout(catalog: Catalog, service: Service) -> dict:
    """A surge pod where the pool's validated headroom holds one: the validator keeps room for the pool's largest
    engine build beside every instance at its peak (modelsvc.catalog.capacity), and a rollout runs only after its
    build, so a new pod of this size fits there and the old ones serve until it is ready (no capacity lost, even at
    one instance). Without that room: one pod at a time, down first."""
    if service.pool is None:  # the validator refuses a triton service without a pool (modelsvc.catalog.rules)
        raise ValueError(f"service '{service.access_name}' runs on Triton but names no pool")
    if build_gpus(catalog, service.pool) >= catalog.model_of(service).gpus:
        return {"maxSurge": 1, "maxUnavailable": 0}
    return {"maxSurge": 0, "maxUnavailable": 1}


def serving_resources(model: Model) -> dict:
    """resources() plus the engine's ephemeral storage: the engine directory (an emptyDir) is tens to hundreds of
    GB; requested, the scheduler places the pod where it fits and the kubelet does not evict it first under disk
    pressure. No limit: an estimate must not kill a pod."""
    out = resources(model)
    out["requests"]["ephemeral-storage"] = disk.serving_request(model)
    return out


def deployment(catalog: Catalog, service: Service, settings: Settings) -> dict:
    model = catalog.model_of(service)
    name = k8s_name(service.access_name)
    key = service_cache_key(catalog, service, settings)
    lab = _labels(service, L.TRITON, {L.CACHE_KEY: key})
    cmd, extra_env = triton_command(model)
    models_mount = {"name": "models", "mountPath": "/models"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, lab, namespace_of(service, settings)),
        "spec": {
            # An autoscaled service leaves replicas to its HPA (min = instances): a replicas field here would reset
            # the HPA's choice on every deploy.
            **({} if service.autoscale else {"replicas": service.instances}),
            "selector": {"matchLabels": triton_selector(service)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rollout(catalog, service)},
            "template": {
                "metadata": {"labels": lab, "annotations": scrape_annotations()},
                "spec": {
                    "serviceAccountName": TRITON_SERVICE_ACCOUNT,
                    **_placement(service),
                    "terminationGracePeriodSeconds": 60,
                    "initContainers": [
                        {
                            "name": "fetch-engine",
                            "image": settings.aws_cli_image,
                            "command": ["sh", "-c"],
                            "args": [scripts.FETCH_ENGINE],
                            "env": _engine_env(key, settings),
                            "volumeMounts": [models_mount],
                        },
                    ],
                    "containers": [
                        {
                            "name": "triton",
                            "image": serving_image(model, settings),
                            "command": cmd,
                            "env": [*OFFLINE_ENV, {"name": "HF_HOME", "value": f"/models/{HF_CACHE}"}, *extra_env],
                            "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in PORTS],
                            "resources": serving_resources(model),
                            **probes(),
                            "volumeMounts": [models_mount, {"name": "shm", "mountPath": "/dev/shm"}],
                        }
                    ],
                    "volumes": [
                        {"name": "models", "emptyDir": {}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
                    ],
                },
            },
        },
    }


def headless_service(catalog: Catalog, service: Service, settings: Settings) -> dict:
    """clusterIP None: DNS returns every ready pod so the gateway keeps one gRPC channel per pod and balances."""
    name = k8s_name(service.access_name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, _labels(service, L.TRITON), namespace_of(service, settings)),
        "spec": {
            "clusterIP": "None",
            "selector": triton_selector(service),
            "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in PORTS],
        },
    }


def pod_disruption_budget(catalog: Catalog, service: Service, settings: Settings) -> dict:
    """Voluntary evictions (node drains, upgrades) take at most one instance at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(k8s_name(service.access_name), _labels(service, L.TRITON), namespace_of(service, settings)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": triton_selector(service)}},
    }


def service_objects(catalog: Catalog, service: Service, settings: Settings) -> list[dict]:
    return [
        deployment(catalog, service, settings),
        headless_service(catalog, service, settings),
        pod_disruption_budget(catalog, service, settings),
    ]
