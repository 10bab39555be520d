"""Recipe ``vision-chat``: NVIDIA's documented multimodal path for the pinned release —
triton-inference-server/tensorrtllm_backend, branch r25.10, docs/multimodal.md ("Prepare Tritonserver configs"):
the inflight-batcher models, the ensemble replaced by ``multimodal/ensemble``, plus ``multimodal/multimodal_encoders``
(the visual engine), filled as that document does. Two choices differ from its example and say why:
``decoupled_mode`` follows the spec (True: streaming, as its note allows), and ``cross_kv_cache_fraction`` is left
unset (it is for encoder-decoder models such as mllama only); chunked context follows the spec as in the document's
long-context variant.
"""

from __future__ import annotations

from . import chat
from .build import ModelFill

SERVED = ("ensemble", "tensorrt_llm_bls")


def is_encoder_decoder(source: str | None) -> bool:
    """mllama (Llama 3.2 Vision) needs cross-attention KV cache and BF16 encoder features: not this recipe."""
    s = (source or "").lower()
    return "mllama" in s or ("llama-3.2" in s and "vision" in s)


def encoders(spec) -> ModelFill:
    return ModelFill(
        "multimodal_encoders",
        "multimodal/multimodal_encoders",
        values={
            # the visual engine's batch (build_multimodal_engine.py's default, NVIDIA's documented Qwen2-VL build): a
            # larger Triton batch would exceed its optimisation profile
            "triton_max_batch_size": min(spec.visual_max_batch_size, spec.max_batch_size),
            "multimodal_model_path": spec.visual_engine_dir,
            "encoder_input_features_data_type": "TYPE_FP16",
            "hf_model_path": spec.tokenizer_dir,
            "max_queue_delay_microseconds": 20000,
            "max_queue_size": 0,
        },
        if_present={"prompt_embedding_table_data_type": spec.prompt_embedding_table_data_type},
    )


def models(spec, params: dict[str, str]) -> list[ModelFill]:
    return [
        chat.ensemble(spec, params, template="multimodal/ensemble"),
        chat.preprocessing(spec, visual=True),
        encoders(spec),
        chat.tensorrt_llm(spec),
        chat.postprocessing(spec),
        chat.bls(spec, params, visual=True),
    ]
