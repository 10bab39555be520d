"""Stand-in for tensorrt_llm._tensorrt_engine (TensorRT-LLM 1.0.0): `LLM` is the TensorRT-flow LLM (_TrtLLM)."""

import os

from tensorrt_llm import record

# TrtLlmArgs fields the build script may pass (others exist; an unknown keyword is refused, as pydantic does)
_ARGS = {
    "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size", "dtype",
    "revision", "tokenizer_revision", "pipeline_parallel_size", "context_parallel_size", "gpus_per_node",
    "load_format", "enable_lora", "kv_cache_config", "enable_chunked_prefill", "workspace", "build_config",
    "quant_config", "calib_config", "embedding_parallel_mode", "fast_build", "enable_build_cache",
}  # fmt: skip


class LLM:
    def __init__(self, model: str, **kwargs):
        unknown = sorted(set(kwargs) - _ARGS)
        if unknown:
            raise TypeError(f"TrtLlmArgs: unexpected field(s) {unknown}")
        if not os.path.isdir(model):
            raise RuntimeError(f"{model!r} is not a local checkpoint: it would be downloaded from the Hugging Face Hub")
        quant = kwargs.get("quant_config")
        if quant is not None and quant.requires_calibration:
            from tensorrt_llm.llmapi import CalibConfig

            calib = kwargs.get("calib_config") or CalibConfig()
            if not os.path.isdir(calib.calib_dataset):
                raise RuntimeError(
                    f"calibration dataset {calib.calib_dataset!r} is no local directory: load_dataset would fetch "
                    "it from the Hugging Face Hub"
                )
        self.model, self.kwargs = model, kwargs
        record("LLM", model=model, **{k: getattr(v, "__dict__", v) for k, v in kwargs.items()})

    def save(self, engine_dir: str) -> None:
        os.makedirs(engine_dir, exist_ok=True)
        for rank in range(self.kwargs.get("tensor_parallel_size", 1)):
            open(os.path.join(engine_dir, f"rank{rank}.engine"), "w").write("engine")
        record("LLM.save", dir=engine_dir)
