"""Engine cache: TensorRT-LLM engines are built once per key and stored under <engine_cache_uri>/engines/<key>/.

The key covers everything the engine binary depends on: the checkpoint (model source), the TensorRT-LLM release (the
Triton container version pins it), the GPU type (engines are built for one SM architecture), the tensor-parallel size
(model gpus), the dtype, the token limits the engine is built for, the task our build recipe and the model repository settings (batch size, decoupled mode), because the
filled model repository is cached next to the engine. It does NOT cover
instances, pool sizes, service names or anything else: those reuse the engine.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from .capacity import gpu_type
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Model, Service

BUILD_RECIPE = "1"  # bump when the build script changes in a way that changes the engine
MAX_BATCH_SIZE = 64  # engine max batch size and Triton max_batch_size
DECOUPLED = True  # the cached model repository is decoupled (streaming); the gateway uses stream_infer
COMPLETE_MARKER = "_COMPLETE"


def engine_key_fields(model: "Model", gpu: str, trtllm_version: str) -> dict:
    return {
        "source": model.source, "trtllm": trtllm_version, "gpu_type": gpu, "tp": model.gpus, "dtype": model.dtype,
        "max_input_tokens": model.max_input_tokens, "max_output_tokens": model.max_output_tokens,
        "task": model.task.value, "recipe": BUILD_RECIPE,
        "max_batch_size": MAX_BATCH_SIZE, "decoupled": DECOUPLED,
    }


def engine_cache_key(model: "Model", gpu: str, trtllm_version: str) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of engine_key_fields."""
    canonical = json.dumps(engine_key_fields(model, gpu, trtllm_version), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def service_cache_key(catalog: "Catalog", service: "Service", settings: Settings) -> str:
    return engine_cache_key(catalog.model_of(service), gpu_type(catalog, service.pool), settings.triton_version)


def engine_uri(settings: Settings, key: str) -> str:
    return f"{settings.engine_cache_uri.rstrip('/')}/engines/{key}"
