"""Engine cache: TensorRT-LLM engines are built once per key and stored under <engine_cache_uri>/engines/<key>/.

The key covers everything the engine binary depends on: the checkpoint (model source), the TensorRT-LLM release (the
Triton container version pins it), the GPU type (engines are built for one SM architecture), the tensor-parallel size
(model gpus), the dtype, the token limits the engine is built for, the task, our build recipe, and what the model
repository cached next to the engine depends on (batch size, decoupled mode, the catalog's chat_template). It does
NOT cover instances, pool sizes, service names or anything else: those reuse the engine. Services whose keys are
equal share one build Job and one cache entry (`engine_builds`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

from modelsvc.catalog.capacity import deployed_services, gpu_type
from modelsvc.catalog.model import Task

from .modelrepo import spec_for
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Model, Service

# bump when the build recipe changes what it writes (2: per-task recipes, infra.modelrepo; 3: TensorRT-LLM 1.0 API,
# offline builds, NVIDIA's visual-engine batch, the demo's checkpoint layout, KV-cache reuse and instance counts;
# 4: guided decoding, the xgrammar tokenizer info the repository's tensorrt_llm now loads at start)
BUILD_RECIPE = "4"
MAX_BATCH_SIZE = 64  # engine max batch size and Triton max_batch_size
DECOUPLED = True  # the cached model repository is decoupled (streaming); the gateway uses stream_infer
COMPLETE_MARKER = "_COMPLETE"
DEFAULT_MAX_NUM_TOKENS = 8192  # TensorRT-LLM's default token budget per engine step
TOKENS_PER_BLOCK = 64  # TensorRT-LLM's default KV-cache block size; max_num_tokens is kept a multiple of it


def engine_key_fields(model: Model, gpu: str, trtllm_version: str) -> dict:
    return {
        "source": model.source,
        "trtllm": trtllm_version,
        "gpu_type": gpu,
        "tp": model.gpus,
        "dtype": model.dtype,
        "max_input_tokens": model.max_input_tokens,
        "max_output_tokens": model.max_output_tokens,
        "task": model.task.value,
        "recipe": BUILD_RECIPE,
        "max_batch_size": MAX_BATCH_SIZE,
        "decoupled": DECOUPLED,
        "chat_template": hashlib.sha256(model.chat_template.encode()).hexdigest() if model.chat_template else None,
    }


def max_num_tokens(model: Model) -> int:
    """Tokens one engine step may schedule: at least the longest prompt, so every prompt the catalog admits fits one
    context step without relying on chunked context (which the engine also supports: paged context FMHA is built
    in). Never below TensorRT-LLM's default of 8192, rounded up to whole KV-cache blocks."""
    wanted = max(DEFAULT_MAX_NUM_TOKENS, model.max_input_tokens)
    return -(-wanted // TOKENS_PER_BLOCK) * TOKENS_PER_BLOCK


def spec_json(model: Model) -> dict:
    """What infra.modelrepo needs to write this model's repository (infra.modelrepo.RepoSpec as a dict)."""
    return dataclasses.asdict(spec_for(model, max_batch_size=MAX_BATCH_SIZE))


def engine_cache_key(model: Model, gpu: str, trtllm_version: str) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of engine_key_fields."""
    canonical = json.dumps(engine_key_fields(model, gpu, trtllm_version), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def service_cache_key(catalog: Catalog, service: Service, settings: Settings) -> str:
    model = catalog.model_of(service)
    if service.pool is None:
        raise ValueError(f"service '{service.access_name}' names no pool: nothing is deployed, nothing is built")
    # the serving image pins the engine format: the Triton release for TensorRT-LLM, the diffusion image for images
    release = settings.image("diffusion") if model.task is Task.image_generation else settings.triton_version
    return engine_cache_key(model, gpu_type(catalog, service.pool), release)


def engine_builds(catalog: Catalog, settings: Settings) -> dict[str, list[Service]]:
    """cache key → the deployed services using it (catalog order): one build Job per key."""
    out: dict[str, list[Service]] = {}
    for s in deployed_services(catalog):
        out.setdefault(service_cache_key(catalog, s, settings), []).append(s)
    return out


def engine_uri(settings: Settings, key: str) -> str:
    return f"{settings.engine_cache_uri.rstrip('/')}/engines/{key}"
