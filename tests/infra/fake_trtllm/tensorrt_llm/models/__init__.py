"""Stand-in for tensorrt_llm.models (TensorRT-LLM 1.0.0): the Qwen family's model class."""

import os

from tensorrt_llm import Mapping, record


class QWenForCausalLM:
    def __init__(self, mapping: Mapping, dtype: str):
        self.mapping, self.dtype = mapping, dtype

    @classmethod
    def from_hugging_face(cls, hf_model_or_dir, dtype="auto", mapping=None, quant_config=None, **kwargs):
        if not os.path.isdir(hf_model_or_dir):
            raise RuntimeError(f"{hf_model_or_dir!r} is no local checkpoint: it would come from the Hub")
        record("QWenForCausalLM.from_hugging_face", dir=hf_model_or_dir, dtype=dtype, rank=(mapping or Mapping()).rank)
        return cls(mapping or Mapping(), dtype)
