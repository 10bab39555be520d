"""Small helpers shared by the manifest builders."""

from __future__ import annotations

import hashlib

GPU_TAINT_KEY, GPU_TAINT_VALUE = "nvidia.com/gpu", "true"
ENGINE_SERVICE_ACCOUNT = "modelsvc-engine"  # reads/writes the engine cache (IRSA role on eks)
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# pulumi-kubernetes await: GPU nodes join, images are large (~20 GB) and engines load slowly.
PULUMI_TIMEOUT = "pulumi.com/timeoutSeconds"


def meta(name: str, labels: dict, namespace: str | None = None, annotations: dict | None = None) -> dict:
    out: dict = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def gpu_toleration() -> dict:
    return {"key": GPU_TAINT_KEY, "operator": "Equal", "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
