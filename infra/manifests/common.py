"""Small helpers shared by the manifest builders."""

from __future__ import annotations

import hashlib

GPU_TAINT_KEY, GPU_TAINT_VALUE = "nvidia.com/gpu", "true"
BUILD_SERVICE_ACCOUNT = "modelsvc-engine-build"  # build Jobs: read checkpoints, write the engine cache (IRSA)
TRITON_SERVICE_ACCOUNT = "modelsvc-triton"  # Triton pods: read the engine cache only (IRSA)
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def meta(name: str, labels: dict, namespace: str | None = None, annotations: dict | None = None) -> dict:
    out: dict = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def gpu_toleration() -> dict:
    """Any value of the nvidia.com/gpu taint: our node groups set "true", most clusters (and NVIDIA's own manifests)
    taint with no value."""
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
