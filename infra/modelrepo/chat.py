"""Recipe ``chat``: TensorRT-LLM's inflight-batcher ensemble (preprocessing -> tensorrt_llm -> postprocessing) and
the BLS model, decoupled (streaming), filled as the pinned release's documentation does it:
triton-inference-server/tensorrtllm_backend, branch r25.10, README.md "Modify the Model Configuration" and
docs/model_config.md (templates: NVIDIA/TensorRT-LLM ``triton_backend/all_models/inflight_batcher_llm``).

Keys the documentation marks optional and we do not set are filled with "" (``unset``): the backend reads an empty
value as "not set" and uses its default, as it does for the ``${key}`` NVIDIA's quick start leaves in place.
"""

from __future__ import annotations

from .build import ModelFill

IFB = "inflight_batcher_llm"
SERVED = ("ensemble", "tensorrt_llm_bls")

TRTLLM_UNSET = (
    "cancellation_check_period_ms",
    "cross_kv_cache_fraction",
    "cuda_graph_cache_size",
    "cuda_graph_mode",
    "decoding_mode",
    "eagle_choices",
    "enable_context_fmha_fp32_acc",
    "enable_trt_overlap",
    "encoder_engine_dir",
    "gpu_device_ids",
    "gpu_weights_percent",
    "iter_stats_max_iterations",
    "kv_cache_host_memory_bytes",
    "kv_cache_onboard_blocks",
    "lookahead_ngram_size",
    "lookahead_verification_set_size",
    "lookahead_window_size",
    "lora_cache_gpu_memory_fraction",
    "lora_cache_host_memory_bytes",
    "lora_cache_max_adapter_size",
    "lora_cache_optimal_adapter_size",
    "lora_prefetch_dir",
    "max_attention_window_size",
    "max_tokens_in_paged_kv_cache",
    "medusa_choices",
    "multi_block_mode",
    "normalize_log_probs",
    "num_nodes",
    "participant_ids",
    "request_stats_max_iterations",
    "sink_token_length",
    "speculative_decoding_fast_logits",
    "stats_check_period_ms",
)
# Guided decoding (structured outputs, forced tool calls): xgrammar is the only backend TensorRT-LLM's Triton backend
# accepts, and the C++ backend (triton_backend "tensorrtllm") needs xgrammar's tokenizer-info JSON, made once per
# tokenizer by TensorRT-LLM's examples/generate_xgrammar_tokenizer_info.py (tensorrtllm_backend
# docs/guided_decoding.md, "C++ Backend"; with either parameter empty, model_instance_state.cc
# getGuidedDecodingConfigFromParams sets up no guided decoder at all).
GUIDED_DECODING = ("guided_decoding_backend", "xgrammar_tokenizer_info_path")


def _flag(v: bool) -> str:
    return "True" if v else "False"


def _guided(spec) -> dict[str, str]:
    if not spec.guided_decoding:
        return {}
    return {"guided_decoding_backend": "xgrammar", "xgrammar_tokenizer_info_path": spec.xgrammar_tokenizer_info}


def tensorrt_llm(spec) -> ModelFill:
    guided = _guided(spec)
    return ModelFill(
        "tensorrt_llm",
        f"{IFB}/tensorrt_llm",
        values={
            "triton_backend": "tensorrtllm",
            "triton_max_batch_size": spec.max_batch_size,
            "decoupled_mode": _flag(spec.decoupled),
            "max_beam_width": 1,
            "engine_dir": spec.engine_dir,
            "tokenizer_dir": spec.tokenizer_dir,
            "batching_strategy": "inflight_fused_batching",
            "batch_scheduler_policy": "guaranteed_no_evict",
            "kv_cache_free_gpu_mem_fraction": spec.kv_cache_free_gpu_mem_fraction,
            "enable_chunked_context": _flag(spec.enable_chunked_context),
            "enable_kv_cache_reuse": _flag(spec.enable_kv_cache_reuse),
            "exclude_input_in_output": "True",
            "max_queue_delay_microseconds": 0,
            "max_queue_size": 0,
            "encoder_input_features_data_type": "TYPE_FP16",
            "logits_datatype": "TYPE_FP32",
            **guided,
        },
        if_present={"prompt_embedding_table_data_type": spec.prompt_embedding_table_data_type},
        unset=TRTLLM_UNSET + tuple(k for k in GUIDED_DECODING if k not in guided),
    )


def preprocessing(spec, *, visual: bool) -> ModelFill:
    return ModelFill(
        "preprocessing",
        f"{IFB}/preprocessing",
        values={
            "tokenizer_dir": spec.tokenizer_dir,
            "triton_max_batch_size": spec.max_batch_size,
            "preprocessing_instance_count": spec.preprocessing_instances,
            # Triton's preprocessing adds the tokenizer's special tokens (BOS); the gateway strips the BOS a chat
            # template renders, so a chat prompt and a raw completion prompt both get exactly one.
            "add_special_tokens": "True",
            "engine_dir": spec.engine_dir,
            "multimodal_model_path": spec.visual_engine_dir if visual else "",
            "max_num_images": 1,
            "max_queue_delay_microseconds": 20000 if visual else 0,
            "max_queue_size": 0,
        },
        if_present={"hf_model_path": spec.tokenizer_dir},
    )


def postprocessing(spec) -> ModelFill:
    return ModelFill(
        "postprocessing",
        f"{IFB}/postprocessing",
        values={
            "tokenizer_dir": spec.tokenizer_dir,
            "triton_max_batch_size": spec.max_batch_size,
            "postprocessing_instance_count": spec.postprocessing_instances,
            "skip_special_tokens": "True",
        },
    )


def bls(spec, params: dict[str, str], *, visual: bool) -> ModelFill:
    return ModelFill(
        "tensorrt_llm_bls",
        f"{IFB}/tensorrt_llm_bls",
        values={
            "triton_max_batch_size": spec.max_batch_size,
            "decoupled_mode": _flag(spec.decoupled),
            "bls_instance_count": spec.bls_instances or spec.max_batch_size,
            "accumulate_tokens": _flag(spec.accumulate_tokens),
            "tensorrt_llm_model_name": "tensorrt_llm",
            "multimodal_encoders_name": "multimodal_encoders" if visual else "",
            "logits_datatype": "TYPE_FP32",
        },
        if_present={"prompt_embedding_table_data_type": spec.prompt_embedding_table_data_type},
        unset=("tensorrt_llm_draft_model_name",),
        parameters=params,
    )


def ensemble(spec, params: dict[str, str], template: str = f"{IFB}/ensemble") -> ModelFill:
    return ModelFill(
        "ensemble",
        template,
        values={"triton_max_batch_size": spec.max_batch_size, "logits_datatype": "TYPE_FP32"},
        parameters=params,
    )


def models(spec, params: dict[str, str]) -> list[ModelFill]:
    return [
        ensemble(spec, params),
        preprocessing(spec, visual=False),
        tensorrt_llm(spec),
        postprocessing(spec),
        bls(spec, params, visual=False),
    ]
