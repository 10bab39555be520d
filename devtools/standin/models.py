"""The stand-in's models: NVIDIA's real model configs, as ``infra.modelrepo`` builds them from the pinned release's
templates (``MODELSVC_TRITON_TEMPLATES``), so the gateway is tested against the real tensor contract.

Profiles (one stand-in process serves one profile, like one Triton pod serves one model repository):

* ``chat``:   the ``chat`` recipe: ``ensemble`` and ``tensorrt_llm_bls`` run (the BLS model is built with
  ``accumulate_tokens: True``, so it sends the cumulative text in every streamed response), plus the composing
  models ``preprocessing``, ``tensorrt_llm``, ``postprocessing`` (config and metadata only).
* ``vision``: the ``vision-chat`` recipe: the multimodal ``ensemble`` (``image_url_input`` BYTES [1]: one image
  per request in this release; no ``exclude_input_in_output`` / ``return_num_*`` inputs) and the BLS model.
* ``image``:  the ``image-generation`` recipe (Triton tutorials' Stable Diffusion 1.5) served as ``stable_diffusion``:
  ``prompt`` BYTES [1], optional ``negative_prompt`` -> ``generated_image`` UINT8 [-1,-1,-1]; parameters
  ``image_width``, ``image_height``, ``steps``.

What Triton itself does at load time is done here too: an ensemble with a decoupled step is decoupled
(``model_transaction_policy.decoupled`` is reported true; unary ModelInfer is refused on it).

``family``: the chat template (and BOS/EOS) of a real checkpoint of that family is built into the served configs,
as the builder does from a checkpoint's tokenizer_config.json (devtools/standin/templates/; sources:
templates/PROVENANCE.md): ``llama3``, ``qwen2.5``, ``qwen3``, ``mistral``. Without one, no template (the gateway falls
back to ChatML).

Guided decoding: the chat recipe gives ``tensorrt_llm`` an xgrammar guided decoder (``guided=False`` builds it
without), and ``ModelDef.guided`` says whether the served model's engine has one, read from that config as Triton's
TensorRT-LLM backend reads it.

Variants of the contract for tests (emulating other releases, applied to the served LLM models' inputs only):
``seed_name="random_seed"`` renames the ``seed`` input (older releases), ``seed_name=None`` removes it,
``omit_inputs`` removes optional inputs.
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from infra import modelrepo
from infra.modelrepo import templates

PROFILES = ("chat", "vision", "image")
TEMPLATES = Path(__file__).resolve().parent / "templates"
# family → (template file, bos_token, eos_token) of the checkpoint it comes from (templates/PROVENANCE.md)
FAMILIES = {
    "llama3": ("llama-3.1-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5": ("qwen2.5-instruct.jinja", None, "<|im_end|>"),
    "qwen3": ("qwen3.jinja", None, "<|im_end|>"),
    "mistral": ("mistral-7b-instruct-v0.3.jinja", "<s>", "</s>"),
}
TASK_OF = {"chat": "chat", "vision": "vision-chat", "image": "image-generation"}
MAX_BATCH_SIZE = 8
_TRUE = {"true", "1", "yes", "on"}


def wire_type(config_type: int) -> str:
    name = mc.DataType.Name(config_type)[len("TYPE_") :]
    return "BYTES" if name == "STRING" else name


@dataclass(frozen=True)
class Tensor:
    name: str
    wire_type: str  # BYTES, INT32, ...
    dims: tuple[int, ...]
    optional: bool = False


@dataclass
class ModelDef:
    """One served model: its config (what ModelConfig returns) and what the stand-in derives from it."""

    name: str
    kind: str  # "llm" | "diffusion" | "step" (a composing model: config and metadata only)
    cfg: mc.ModelConfig
    decoupled: bool  # can stream (its own policy, or a decoupled step of an ensemble)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    cumulative: bool = False  # BLS accumulate_tokens
    vision: bool = False
    exclude_input_default: bool = False  # tensorrt_llm's exclude_input_in_output parameter
    guided: bool = False  # its engine (tensorrt_llm) has an xgrammar guided decoder

    @property
    def platform(self) -> str:
        return self.cfg.platform or self.cfg.backend

    @property
    def max_batch_size(self) -> int:
        return self.cfg.max_batch_size

    def input(self, name: str) -> Tensor | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> Tensor | None:
        return next((t for t in self.outputs if t.name == name), None)

    def config(self) -> mc.ModelConfig:
        return self.cfg


def tokenizer_config(family: str, directory: Path) -> Path:
    """A tokenizer_config.json carrying the family's chat template, bos and eos (what a checkpoint ships)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    name, bos, eos = FAMILIES[family]
    data = {"chat_template": (TEMPLATES / name).read_text(encoding="utf-8"), "bos_token": bos, "eos_token": eos}
    path = Path(directory) / "tokenizer_config.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}), encoding="utf-8")
    return path


@functools.lru_cache(maxsize=32)
def _built(spec: modelrepo.RepoSpec, family: str | None = None) -> dict[str, bytes]:
    """The builder's output for a spec on the fixture templates (serialized configs, cached per spec)."""
    with tempfile.TemporaryDirectory(prefix="standin-repo-") as tmp:
        tc = tokenizer_config(family, Path(tmp)) if family else None
        modelrepo.build_repository(spec, templates.for_task(spec.task), Path(tmp) / "repo", tokenizer_config=tc)
        return {name: cfg.SerializeToString() for name, cfg in modelrepo.load(Path(tmp) / "repo").items()}


def repo_spec(
    profile: str,
    *,
    decoupled: bool = True,
    image_width: int = 64,
    image_height: int = 64,
    steps: int = 4,
    guided: bool = True,
) -> modelrepo.RepoSpec:
    task = TASK_OF[profile]
    if task == "image-generation":
        return modelrepo.RepoSpec(
            task=task,
            max_batch_size=1,
            max_input_tokens=77,
            max_output_tokens=1,
            image_width=image_width,
            image_height=image_height,
            steps=steps,
        )
    return modelrepo.RepoSpec(
        task=task,
        max_batch_size=MAX_BATCH_SIZE,
        max_input_tokens=4096,
        max_output_tokens=1024,
        decoupled=decoupled,
        accumulate_tokens=True,
        guided_decoding=guided,
    )


def _tensors(items) -> list[Tensor]:
    return [Tensor(t.name, wire_type(t.data_type), tuple(t.dims), bool(getattr(t, "optional", False))) for t in items]


def _variant(cfg: mc.ModelConfig, seed_name: str | None, omit: tuple[str, ...]) -> None:
    keep = []
    for t in cfg.input:
        if t.name in ("text_input", "max_tokens"):
            keep.append(t)
        elif t.name == "seed" and seed_name != "seed":
            if seed_name:
                renamed = mc.ModelInput()
                renamed.CopyFrom(t)
                renamed.name = seed_name
                keep.append(renamed)
        elif t.name not in omit:
            keep.append(t)
    del cfg.input[:]
    cfg.input.extend(keep)


def models_from_configs(
    configs: dict[str, mc.ModelConfig], *, seed_name: str | None = "seed", omit_inputs: tuple[str, ...] = ()
) -> dict[str, ModelDef]:
    trtllm = configs.get("tensorrt_llm")
    exclude = trtllm is not None and trtllm.parameters["exclude_input_in_output"].string_value.lower() in _TRUE
    guided = trtllm is not None and _has_guided_decoder(trtllm)
    out: dict[str, ModelDef] = {}
    for name, cfg in configs.items():
        ins, outs = {t.name for t in cfg.input}, {t.name for t in cfg.output}
        if "text_input" in ins and "text_output" in outs:
            kind = "llm"
            cfg = _copy(cfg)
            _variant(cfg, seed_name, tuple(omit_inputs))
        elif "prompt" in ins and "generated_image" in outs:
            kind = "diffusion"
        else:
            kind = "step"
        decoupled = cfg.model_transaction_policy.decoupled
        if cfg.platform == "ensemble":
            steps = [configs.get(s.model_name) for s in cfg.ensemble_scheduling.step]
            decoupled = any(s is not None and s.model_transaction_policy.decoupled for s in steps)
            if decoupled != cfg.model_transaction_policy.decoupled:  # Triton marks it so when it loads the ensemble
                cfg = _copy(cfg)
                cfg.model_transaction_policy.decoupled = decoupled
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        out[name] = ModelDef(
            name=name,
            kind=kind,
            cfg=cfg,
            decoupled=decoupled,
            inputs=_tensors(cfg.input),
            outputs=_tensors(cfg.output),
            parameters=params,
            cumulative=params.get("accumulate_tokens", "").lower() in _TRUE,
            vision="image_url_input" in {t.name for t in cfg.input},
            exclude_input_default=exclude,
            guided=guided,
        )
    # served models first (the ones a client calls), then the composing ones
    return dict(sorted(out.items(), key=lambda kv: (kv[1].kind == "step", list(configs).index(kv[0]))))


def _has_guided_decoder(cfg: mc.ModelConfig) -> bool:
    """What Triton's TensorRT-LLM backend checks at load (model_instance_state.cc getGuidedDecodingConfigFromParams;
    the Python backend's model.py wants tokenizer_dir instead of the tokenizer-info file)."""
    params = {k: v.string_value.strip() for k, v in cfg.parameters.items()}

    def filled(name: str) -> bool:
        return bool(params.get(name)) and not params[name].startswith("${")

    if params.get("guided_decoding_backend") != "xgrammar":
        return False
    return filled("tokenizer_dir") if cfg.backend == "python" else filled("xgrammar_tokenizer_info_path")


def _copy(cfg: mc.ModelConfig) -> mc.ModelConfig:
    c = mc.ModelConfig()
    c.CopyFrom(cfg)
    return c


def build_models(
    profile: str,
    *,
    decoupled: bool = True,
    seed_name: str | None = "seed",
    omit_inputs: tuple[str, ...] = (),
    image_width: int = 64,
    image_height: int = 64,
    steps: int = 4,
    model_repo: str | Path | None = None,
    family: str | None = None,
    guided: bool = True,
) -> dict[str, ModelDef]:
    """The models of a profile, from the builder's output on the pinned release (or from ``model_repo``, a
    repository written by ``modelsvc model-repo``). RepoError when the templates are missing or do not build."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if model_repo is not None:
        configs = modelrepo.load(Path(model_repo))
    else:
        spec = repo_spec(
            profile, decoupled=decoupled, image_width=image_width, image_height=image_height, steps=steps, guided=guided
        )
        configs = {n: mc.ModelConfig.FromString(b) for n, b in _built(spec, family).items()}
    return models_from_configs(configs, seed_name=seed_name, omit_inputs=tuple(omit_inputs))


__all__ = [
    "FAMILIES",
    "PROFILES",
    "ModelDef",
    "Tensor",
    "build_models",
    "models_from_configs",
    "repo_spec",
    "tokenizer_config",
]
