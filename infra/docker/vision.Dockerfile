# vision-chat (Qwen2-VL) serving and build image: NVIDIA's Triton TensorRT-LLM image plus the per-model requirements
# its multimodal guide installs by hand (triton-inference-server/tensorrtllm_backend r25.10 docs/multimodal.md:
# `pip install -r all_models/multimodal/requirements-qwen2vl.txt`, NVIDIA/TensorRT-LLM
# triton_backend/all_models/multimodal/requirements-qwen2vl.txt: accelerate, qwen-vl-utils==0.0.8), so neither the
# build nor the serving pod installs anything at run time. Built by .github/workflows/images.yml.
ARG TRITON_VERSION=25.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-trtllm-python-py3
# accelerate ships with TensorRT-LLM's own requirements; pip leaves a satisfied requirement as it is
RUN pip install --no-cache-dir accelerate qwen-vl-utils==0.0.8 \
    && python3 -c "import accelerate, qwen_vl_utils, tensorrt_llm; print(tensorrt_llm.__version__)"
