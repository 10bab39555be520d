"""Disk per engine: what a build Job writes to its ephemeral storage, and what a Triton pod's engine takes.

Estimated from the parameter count the model's name or source carries (`…-70b-…`, `…-7B`, `…-8x7b`: the convention
of every Hugging Face model id), because `validate` runs without the model store. A model whose name carries none
gets no estimate: its build is not checked and its pods request the floor below.

Chat / vision-chat, TensorRT flow of the LLM API (TensorRT-LLM 1.0 `tensorrt_llm._tensorrt_engine.LLM`): the Hugging
Face checkpoint (bf16/fp16: 2 bytes a parameter), the TensorRT-LLM checkpoint it converts to and the engine it builds
in its workspace (each `bytes_per_param(dtype)` a parameter), and the engine `llm.save` copies out: so a 70B bf16
build needs 140 + 3 × 140 = 560 GB (4× the checkpoint), an fp8 one 140 + 3 × 70 = 350 GB. Image generation: the
Triton tutorials' SD 1.5 / SDXL pipeline (framework checkpoint, ONNX export, TensorRT engines).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from modelsvc.catalog.model import Task

if TYPE_CHECKING:
    from modelsvc.catalog import Model

GB = 10**9
GIB = 2**30
BYTES_PER_PARAM = {"float16": 2.0, "bfloat16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
CHECKPOINT_BYTES_PER_PARAM = 2.0  # Hugging Face checkpoints are published in bf16/fp16
MARGIN = 1.10  # tokenizer, repository, logs, allocation slack
VISUAL_ENGINE_GB = 3.0  # Qwen2-VL's 675M-parameter ViT: fp32 ONNX export + fp16 engine
DIFFUSION_GB = {  # (build, serve): checkpoint (both precisions) + ONNX + engines; served: engines + framework model
    "sd-1.5": (25.0, 8.0),
    "sdxl": (60.0, 20.0),
}
SERVE_FLOOR_GIB = 20  # the request of a pod whose engine size is unknown
_PARAMS = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z0-9])", re.I)


def parameters(model: Model) -> float | None:
    """Parameters (in billions) named by the model's source (or, failing that, nothing)."""
    name = (model.source or "").rstrip("/").rsplit("/", 1)[-1]
    found = _PARAMS.findall(name.replace("_", "-"))
    if not found:
        return None
    experts, size = found[-1]
    return float(size) * (int(experts) if experts else 1)


def _variant(model: Model) -> str | None:
    from .modelrepo import diffusion  # the recipe's own notion of which SD model it is

    return diffusion.variant_of(model.source)


def build_bytes(model: Model) -> int | None:
    """Ephemeral storage a build of this model writes, or None when its size is unknown."""
    if model.task is Task.image_generation:
        variant = _variant(model)
        return int(DIFFUSION_GB[variant][0] * GB) if variant else None
    params = parameters(model)
    if params is None:
        return None
    engine = params * 1e9 * BYTES_PER_PARAM[model.dtype]
    total = params * 1e9 * CHECKPOINT_BYTES_PER_PARAM + 3 * engine
    if model.task is Task.vision_chat:
        total += VISUAL_ENGINE_GB * GB
    return int(total * MARGIN)


def engine_bytes(model: Model) -> int | None:
    """What a Triton pod copies to its emptyDir: the engine (all ranks), tokenizer and repository."""
    if model.task is Task.image_generation:
        variant = _variant(model)
        return int(DIFFUSION_GB[variant][1] * GB) if variant else None
    params = parameters(model)
    if params is None:
        return None
    total = params * 1e9 * BYTES_PER_PARAM[model.dtype]
    if model.task is Task.vision_chat:
        total += VISUAL_ENGINE_GB * GB
    return int(total * MARGIN)


def gib(n_bytes: int) -> int:
    return math.ceil(n_bytes / GIB)


def serving_request(model: Model) -> str:
    """The Triton pod's ephemeral-storage request: its engine, so the scheduler places it where it fits and the
    kubelet does not pick it first under disk pressure."""
    size = engine_bytes(model)
    return f"{max(SERVE_FLOOR_GIB, gib(size) if size else 0)}Gi"


def quantity_bytes(q: str) -> int:
    """A Kubernetes quantity of bytes (Gi, G, Ti, …) as an int."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTPE]i?)?", q.strip())
    if not m:
        raise ValueError(f"not a storage quantity: {q!r}")
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
    units |= {k + "i": 2 ** (10 * (i + 1)) for i, k in enumerate("KMGTPE")}
    return int(float(m.group(1)) * units[m.group(2) or ""])


def build_disk_problem(model: Model, build_disk: str) -> str | None:
    """Why a build of this model would not fit the Job's ephemeral storage (None: it fits, or its size is unknown)."""
    need = build_bytes(model)
    if need is None or need <= quantity_bytes(build_disk):
        return None
    params = parameters(model)
    what = f"{params:g}B parameters at {model.dtype}" if params else model.task.value
    return (
        f"its engine build needs about {gib(need)} GiB of disk ({what}: checkpoint, converted checkpoint, engine and "
        f"its saved copy), more than the build Job's {build_disk}"
    )
