"""The model-repository builder: a service's model + a TensorRT-LLM release's templates -> the filled Triton model
repository for the model's task. One recipe module per task (``chat``, ``vision``, ``diffusion``); ``fill`` has
``fill_template.py``'s semantics; every config is parsed with Triton's protobufs and every ensemble checked.

Plain importable Python, no network: run by the engine-build Job (on the image's own /app/all_models), by
``modelsvc model-repo``, by the stand-in engine (which serves the result) and by the tests (on NVIDIA's templates).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelsvc.catalog.model import Backend, Task

from . import chat, diffusion, vision
from .build import build, load
from .errors import RepoError
from .tokenizer import ChatTemplate
from .tokenizer import read as read_tokenizer_config

if TYPE_CHECKING:
    from modelsvc.catalog.model import Model

__all__ = ["TASKS", "RepoError", "RepoSpec", "build_repository", "has_recipe", "load", "spec_for"]

SERVED = {Task.chat: chat.SERVED, Task.vision_chat: vision.SERVED, Task.image_generation: ("stable_diffusion",)}
TASKS = tuple(t.value for t in SERVED)  # RepoSpec.task: the task's name (the spec travels as JSON)
# Parameters of the served models' configs that carry the checkpoint's chat template to the gateway.
CHAT_TEMPLATE_PARAMS = ("chat_template", "bos_token", "eos_token", "special_tokens")


@dataclass(frozen=True)
class RepoSpec:
    """Everything a recipe needs; JSON-serialisable (``dataclasses.asdict``). Paths are as the Triton pod sees them."""

    task: str  # "chat" | "vision-chat" | "image-generation"
    max_batch_size: int
    max_input_tokens: int
    max_output_tokens: int
    engine_dir: str = "/models/engine"
    tokenizer_dir: str = "/models/tokenizer"
    visual_engine_dir: str = "/models/visual_engine"
    chat_template: str | None = None  # services.yaml override; else taken from tokenizer_config.json
    served_name: str | None = None  # the model the gateway calls (default: ensemble / stable_diffusion)
    decoupled: bool = True  # streaming
    accumulate_tokens: bool = False  # BLS sends the cumulative text when streaming
    enable_chunked_context: bool = True  # prompts longer than max_num_tokens are scheduled in chunks
    # Prefix (system prompt) reuse: the backend's default and NVIDIA's advice (tensorrtllm_backend r25.10
    # docs/model_config.md); the engine is built with paged context FMHA, which it requires.
    enable_kv_cache_reuse: bool = True
    guided_decoding: bool = True  # xgrammar (structured outputs, forced tool calls; chat and vision-chat)
    # what the build Job writes with TensorRT-LLM's generate_xgrammar_tokenizer_info.py (infra/scripts/build_engine.py)
    xgrammar_tokenizer_info: str = "/models/tokenizer_info/xgrammar_tokenizer_info.json"
    kv_cache_free_gpu_mem_fraction: float = 0.9
    prompt_embedding_table_data_type: str = "TYPE_FP16"  # templates of TensorRT-LLM >= 1.2 take it as a key
    # tensorrtllm_backend r25.10 docs/model_config.md: "setting instance_count to 5 works well" for the Python
    # pre/postprocessing models; the decoupled BLS serves one request per instance, so as many as the batch
    # (bls_instance_count: "set the number of model instances to the maximum batch size"). None: max_batch_size.
    preprocessing_instances: int = 5
    postprocessing_instances: int = 5
    bls_instances: int | None = None
    # multimodal_encoders: at most the visual engine's batch (its optimisation profile's max, set at build time)
    visual_max_batch_size: int = 4
    diffusion_variant: str = "sd-1.5"  # "sd-1.5" | "sdxl" (the tutorial's two models)
    image_width: int | None = None  # diffusion: None keeps the tutorial's value
    image_height: int | None = None
    steps: int | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str = "spec") -> RepoSpec:
        if not isinstance(data, dict):
            raise RepoError(where, "expected a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RepoError(where, f"unknown key(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as e:
            raise RepoError(where, str(e)) from None


def spec_for(model: Model, *, max_batch_size: int = 64) -> RepoSpec:
    variant = diffusion.variant_of(model.source) if model.task is Task.image_generation else None
    return RepoSpec(
        task=model.task.value,
        max_batch_size=max_batch_size,
        max_input_tokens=model.max_input_tokens,
        max_output_tokens=model.max_output_tokens,
        chat_template=model.chat_template,
        served_name=model.triton_model_name,
        diffusion_variant=variant or "sd-1.5",
    )


def has_recipe(model: Model) -> str | None:
    """None when a recipe builds this model's repository; else why not (a sentence for ``validate``)."""
    if model.backend is not Backend.triton:
        return f"backend {model.backend.value}: the gateway forwards to its upstream; no model repository is built"
    task = model.task
    if task not in SERVED:
        return f"no model-repository recipe for task {task.value}"
    if model.triton_model_name not in SERVED[task]:
        return (
            f"triton_model {model.triton_model_name!r} is not served by the {task.value} recipe "
            f"(it serves {', '.join(SERVED[task])})"
        )
    if model.task is Task.vision_chat and vision.is_encoder_decoder(model.source):
        return (
            "mllama (Llama 3.2 Vision) is an encoder-decoder model: the vision-chat recipe fills the "
            "decoder-only multimodal path (LLaVA, VILA, Qwen2-VL, ...); serve it elsewhere with backend: openai"
        )
    if model.task is Task.image_generation and diffusion.variant_of(model.source) is None:
        return (
            "the image-generation recipe (Triton tutorials' Stable Diffusion) serves Stable Diffusion 1.5 and "
            f"XL only; source {model.source!r} names neither (e.g. .../stable-diffusion-v1-5 or "
            ".../stable-diffusion-xl-base-1.0)"
        )
    if model.task is Task.image_generation and model.gpus != 1:
        return (
            "the Triton tutorials' diffusion backend runs one pipeline on one GPU: set gpus: 1 "
            "(scale with instances instead)"
        )
    return None


def _task(spec: RepoSpec) -> Task:
    if spec.task not in TASKS:
        raise RepoError("spec", f"task {spec.task!r}: no recipe (known: {', '.join(TASKS)})")
    return Task(spec.task)


def _check(spec: RepoSpec) -> Task:
    task = _task(spec)
    for name in (
        "max_batch_size",
        "max_input_tokens",
        "max_output_tokens",
        "preprocessing_instances",
        "postprocessing_instances",
        "bls_instances",
        "visual_max_batch_size",
    ):
        value = getattr(spec, name)
        if name == "bls_instances" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RepoError("spec", f"{name} must be a positive integer, not {value!r}")
    served = spec.served_name or SERVED[task][0]
    if served not in SERVED[task]:
        raise RepoError("spec", f"served_name {served!r}: the {spec.task} recipe serves {', '.join(SERVED[task])}")
    if task is Task.image_generation and spec.diffusion_variant not in diffusion.VARIANTS:
        raise RepoError("spec", f"diffusion_variant {spec.diffusion_variant!r}: one of {', '.join(diffusion.VARIANTS)}")
    return task


def chat_parameters(spec: RepoSpec, tokenizer_config: Path | None) -> dict[str, str]:
    """The chat template (services.yaml override, else the checkpoint's) and BOS/EOS text, as config parameters."""
    found = read_tokenizer_config(Path(tokenizer_config)) if tokenizer_config else ChatTemplate(None)
    template = spec.chat_template or found.template
    special = found.special_tokens(template)  # a JSON list: the gateway cleans caller text of them
    values = {
        "chat_template": template,
        "bos_token": found.bos_token,
        "eos_token": found.eos_token,
        "special_tokens": json.dumps(list(special), ensure_ascii=False) if special else None,
    }
    return {k: v for k, v in values.items() if v}


def build_repository(spec: RepoSpec, templates: Path, out: Path, *, tokenizer_config: Path | None = None) -> list[Path]:
    """Write the filled model repository for ``spec.task`` into ``out`` (new or empty) from ``templates`` (a
    release's ``all_models``; for image-generation the tutorial's ``diffusion-models``). Returns the configs
    written; RepoError (located) when anything would not load in Triton."""
    task = _check(spec)
    if task is Task.image_generation:
        models = diffusion.models(spec)
    else:
        params = chat_parameters(spec, tokenizer_config)
        models = (chat.models if task is Task.chat else vision.models)(spec, params)
    return build(models, Path(templates), Path(out))
