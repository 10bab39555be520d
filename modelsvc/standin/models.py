"""Model definitions per profile: the same names, types and shapes as the real Triton / TensorRT-LLM models.

Profiles (one stand-in process serves one profile, like one Triton pod serves one model):

* ``chat``:   ``ensemble`` (TensorRT-LLM ensemble) and ``tensorrt_llm_bls`` (BLS with ``accumulate_tokens``:
  sends the cumulative text in every streamed response; its config has parameter ``accumulate_tokens: "true"``).
* ``vision``: ``ensemble`` with the chat tensors plus ``image_url_input`` BYTES [-1].
* ``image``:  ``stable_diffusion``: ``prompt`` BYTES [1], optional ``negative_prompt`` BYTES [1] ->
  ``generated_image`` UINT8 [-1,-1,3]; config parameters ``image_width``, ``image_height``, ``steps``
  (string values, like every Triton model-config parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tritonclient.grpc import model_config_pb2 as mc

MAX_BATCH_SIZE = 8
PROFILES = ("chat", "vision", "image")

# config data type -> wire data type
WIRE_TYPE = {
    "TYPE_STRING": "BYTES",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP32": "FP32",
    "TYPE_UINT64": "UINT64",
    "TYPE_UINT8": "UINT8",
    "TYPE_BOOL": "BOOL",
}


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # config type, e.g. TYPE_STRING
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def wire_type(self) -> str:
        return WIRE_TYPE[self.dtype]


@dataclass
class ModelDef:
    name: str
    kind: str  # "llm" | "diffusion"
    inputs: list[Tensor]
    outputs: list[Tensor]
    decoupled: bool
    platform: str = ""
    backend: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    cumulative: bool = False  # BLS accumulate_tokens
    vision: bool = False

    def input(self, name: str) -> Tensor | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> Tensor | None:
        return next((t for t in self.outputs if t.name == name), None)

    def config(self) -> mc.ModelConfig:
        cfg = mc.ModelConfig(
            name=self.name,
            platform=self.platform,
            backend=self.backend,
            max_batch_size=MAX_BATCH_SIZE,
            model_transaction_policy=mc.ModelTransactionPolicy(decoupled=self.decoupled),
        )
        for t in self.inputs:
            cfg.input.append(
                mc.ModelInput(name=t.name, data_type=mc.DataType.Value(t.dtype), dims=list(t.dims), optional=t.optional)
            )
        for t in self.outputs:
            cfg.output.append(mc.ModelOutput(name=t.name, data_type=mc.DataType.Value(t.dtype), dims=list(t.dims)))
        for k, v in self.parameters.items():
            cfg.parameters[k].string_value = v
        return cfg


def _llm_inputs(seed_name: str | None, omit: tuple[str, ...], vision: bool) -> list[Tensor]:
    ins = [
        Tensor("text_input", "TYPE_STRING", (1,)),
        Tensor("max_tokens", "TYPE_INT32", (1,)),
        Tensor("bad_words", "TYPE_STRING", (-1,), True),
        Tensor("stop_words", "TYPE_STRING", (-1,), True),
        Tensor("end_id", "TYPE_INT32", (1,), True),
        Tensor("temperature", "TYPE_FP32", (1,), True),
        Tensor("top_k", "TYPE_INT32", (1,), True),
        Tensor("top_p", "TYPE_FP32", (1,), True),
        Tensor("length_penalty", "TYPE_FP32", (1,), True),
        Tensor("repetition_penalty", "TYPE_FP32", (1,), True),
        Tensor("min_tokens", "TYPE_INT32", (1,), True),
        Tensor("presence_penalty", "TYPE_FP32", (1,), True),
        Tensor("frequency_penalty", "TYPE_FP32", (1,), True),
    ]
    if seed_name:
        ins.append(Tensor(seed_name, "TYPE_UINT64", (1,), True))
    ins += [
        Tensor("stream", "TYPE_BOOL", (1,), True),
        Tensor("exclude_input_in_output", "TYPE_BOOL", (1,), True),
        Tensor("return_num_input_tokens", "TYPE_BOOL", (1,), True),
        Tensor("return_num_output_tokens", "TYPE_BOOL", (1,), True),
        Tensor("return_log_probs", "TYPE_BOOL", (1,), True),
        Tensor("beam_width", "TYPE_INT32", (1,), True),
    ]
    if vision:
        ins.append(Tensor("image_url_input", "TYPE_STRING", (-1,), True))
    return [t for t in ins if t.name not in omit or t.name in ("text_input", "max_tokens")]


def _llm_outputs(omit: tuple[str, ...]) -> list[Tensor]:
    outs = [
        Tensor("text_output", "TYPE_STRING", (-1,)),
        Tensor("cum_log_probs", "TYPE_FP32", (-1,)),
        Tensor("output_log_probs", "TYPE_FP32", (-1, -1)),
        Tensor("num_input_tokens", "TYPE_INT32", (1,)),
        Tensor("num_output_tokens", "TYPE_INT32", (1,)),
    ]
    return [t for t in outs if t.name not in omit or t.name == "text_output"]


def build_models(
    profile: str,
    *,
    decoupled: bool = True,
    seed_name: str | None = "seed",
    omit_inputs: tuple[str, ...] = (),
    image_width: int = 64,
    image_height: int = 64,
    steps: int = 4,
) -> dict[str, ModelDef]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    omit = tuple(omit_inputs)
    if profile in ("chat", "vision"):
        vision = profile == "vision"
        models = {
            "ensemble": ModelDef(
                name="ensemble",
                kind="llm",
                platform="ensemble",
                inputs=_llm_inputs(seed_name, omit, vision),
                outputs=_llm_outputs(omit),
                decoupled=decoupled,
                vision=vision,
            )
        }
        if profile == "chat":
            models["tensorrt_llm_bls"] = ModelDef(
                name="tensorrt_llm_bls",
                kind="llm",
                backend="python",
                inputs=_llm_inputs(seed_name, omit, False),
                outputs=_llm_outputs(omit),
                decoupled=decoupled,
                parameters={"accumulate_tokens": "true"},
                cumulative=True,
            )
        return models
    return {
        "stable_diffusion": ModelDef(
            name="stable_diffusion",
            kind="diffusion",
            backend="python",
            inputs=[Tensor("prompt", "TYPE_STRING", (1,)), Tensor("negative_prompt", "TYPE_STRING", (1,), True)],
            outputs=[Tensor("generated_image", "TYPE_UINT8", (-1, -1, 3))],
            decoupled=False,
            parameters={"image_width": str(image_width), "image_height": str(image_height), "steps": str(steps)},
        )
    }
