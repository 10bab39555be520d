"""Stand-in for tensorrt_llm.llmapi (TensorRT-LLM 1.0.0): the build and quantisation configs."""

from dataclasses import dataclass, field
from enum import Enum


class QuantAlgo(str, Enum):
    W8A16 = "W8A16"
    W4A16 = "W4A16"
    W4A16_AWQ = "W4A16_AWQ"
    W4A8_AWQ = "W4A8_AWQ"
    W8A16_GPTQ = "W8A16_GPTQ"
    W4A16_GPTQ = "W4A16_GPTQ"
    W8A8_SQ_PER_CHANNEL = "W8A8_SQ_PER_CHANNEL"
    FP8 = "FP8"
    FP8_BLOCK_SCALES = "FP8_BLOCK_SCALES"
    NVFP4 = "NVFP4"
    NO_QUANT = "NO_QUANT"


@dataclass
class QuantConfig:
    quant_algo: QuantAlgo | None = None
    kv_cache_quant_algo: QuantAlgo | None = None
    group_size: int = 128
    exclude_modules: list | None = None

    @property
    def requires_calibration(self) -> bool:  # activation scales: weight-only formats need none
        return self.quant_algo in (QuantAlgo.FP8, QuantAlgo.W8A8_SQ_PER_CHANNEL, QuantAlgo.NVFP4, QuantAlgo.W4A8_AWQ)


@dataclass
class CalibConfig:
    device: str = "cuda"
    calib_dataset: str = "cnn_dailymail"
    calib_batches: int = 512
    calib_batch_size: int = 1
    calib_max_seq_length: int = 512
    random_seed: int = 1234
    tokenizer_max_seq_length: int = 2048


@dataclass
class PluginConfig:
    use_paged_context_fmha: bool = True
    gemm_plugin: str | None = None


@dataclass
class BuildConfig:
    max_input_len: int = 1024
    max_seq_len: int | None = None
    opt_batch_size: int = 8
    max_batch_size: int = 2048
    max_beam_width: int = 1
    max_num_tokens: int = 8192
    opt_num_tokens: int | None = None
    max_prompt_embedding_table_size: int = 0
    kv_cache_type: str | None = None
    gather_context_logits: bool = False
    gather_generation_logits: bool = False
    strongly_typed: bool = True
    plugin_config: PluginConfig = field(default_factory=PluginConfig)
