"""Build Job, GPU step: runs in NVIDIA's serving image (not ours), so it imports only what that image ships.

Chat and vision-chat run in nvcr.io/nvidia/tritonserver:<release>-trtllm-python-py3 (TensorRT-LLM 1.0.0 in 25.10);
image-generation runs in the Triton tutorials' Stable Diffusion image. Inputs: /work/checkpoint (or /work/hf-id),
/work/out/repo (the model repository the model-repo step wrote). Outputs under /work/out, then build.json.
Env: TASK, ENGINE_KEY, TP_SIZE, DTYPE, MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, MAX_BATCH_SIZE, MAX_NUM_TOKENS,
TRITON_MODEL; WORK (default /work); BUILD_HTTP_PORT, BUILD_POLL_SECONDS (the image-generation build's local server).
Recipes and their NVIDIA sources: docs/infra.md "Build recipes".
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

WORK = os.environ.get("WORK", "/work")
OUT = f"{WORK}/out"
# Files next to the weights that the tokenizer, the chat template and the multimodal processor read.
TOKENIZER_FILES = (
    "*token*",
    "*.model",
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "chat_template.json",
    "vocab.*",
    "merges.txt",
)
# Qwen2-VL (multimodal.md of the pinned release): image features per 504x504 image
QWEN2_VL_FEATURES_PER_IMAGE = 324


def source() -> str:
    hf_id = f"{WORK}/hf-id"
    return open(hf_id).read().strip() if os.path.exists(hf_id) else f"{WORK}/checkpoint"


def limits() -> dict:
    e = os.environ
    return {
        k: int(e[k.upper()])
        for k in ("tp_size", "max_input_tokens", "max_output_tokens", "max_batch_size", "max_num_tokens")
    }


def build_config(lim: dict, **extra):
    from tensorrt_llm.llmapi import BuildConfig

    cfg = BuildConfig(
        max_input_len=lim["max_input_tokens"],
        max_seq_len=lim["max_input_tokens"] + lim["max_output_tokens"],
        max_batch_size=lim["max_batch_size"],
        max_num_tokens=lim["max_num_tokens"],
        **extra,
    )
    cfg.plugin_config.use_paged_context_fmha = True  # lets the runtime enable chunked context
    return cfg


def copy_tokenizer(src: str) -> None:
    os.makedirs(f"{OUT}/tokenizer", exist_ok=True)
    if os.path.isdir(src):
        for pattern in TOKENIZER_FILES:
            for f in glob.glob(f"{src}/{pattern}"):
                shutil.copy(f, f"{OUT}/tokenizer/")
    else:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(src).save_pretrained(f"{OUT}/tokenizer")


def build_chat(src: str, lim: dict) -> None:
    """LLM API (TensorRT flow), quantised through QuantConfig for fp8/int8/int4."""
    from tensorrt_llm._tensorrt_engine import LLM
    from tensorrt_llm.llmapi import QuantAlgo, QuantConfig

    dtype = os.environ["DTYPE"]
    quant = {"fp8": QuantAlgo.FP8, "int8": QuantAlgo.W8A16, "int4": QuantAlgo.W4A16}.get(dtype)
    llm = LLM(
        model=src,
        tensor_parallel_size=lim["tp_size"],
        dtype="auto" if quant else dtype,
        quant_config=QuantConfig(quant_algo=quant) if quant else None,
        build_config=build_config(lim),
    )
    llm.save(f"{OUT}/engine")


def build_vision_chat(src: str, lim: dict) -> None:
    """Qwen2-VL as in triton_backend/docs/multimodal.md: the language model with a prompt-table input
    (convert_checkpoint + trtllm-build, here through the same Python API), then the visual encoder engine
    (build_multimodal_engine.py's VisionEngineBuilder)."""
    import argparse

    import tensorrt_llm
    from tensorrt_llm import Mapping
    from tensorrt_llm.models import QWenForCausalLM
    from tensorrt_llm.tools.multimodal_builder import VisionEngineBuilder, add_multimodal_arguments

    model_type = json.load(open(f"{src}/config.json")).get("model_type")
    if model_type != "qwen2_vl":
        sys.exit(f"vision-chat recipe supports Qwen2-VL checkpoints (model_type qwen2_vl), got {model_type!r}")
    dtype = os.environ["DTYPE"] if os.environ["DTYPE"] in ("float16", "bfloat16") else "float16"
    tp = lim["tp_size"]
    cfg = build_config(lim, max_prompt_embedding_table_size=lim["max_batch_size"] * QWEN2_VL_FEATURES_PER_IMAGE)
    for rank in range(tp):
        model = QWenForCausalLM.from_hugging_face(
            src, dtype=dtype, mapping=Mapping(world_size=tp, rank=rank, tp_size=tp)
        )
        tensorrt_llm.build(model, cfg).save(f"{OUT}/engine")
    args = add_multimodal_arguments(argparse.ArgumentParser()).parse_args(
        [
            "--model_type",
            "qwen2_vl",
            "--model_path",
            src,
            "--output_dir",
            f"{OUT}/visual_engine",
            "--max_batch_size",
            str(lim["max_batch_size"]),
        ]
    )
    VisionEngineBuilder(args).build()


def diffusion_version(config: str) -> str:
    """The `version` parameter of a diffusion model config (the tutorial's `value: {` or protobuf's `value {`)."""
    found = re.search(r'key:\s*"version"\s*value:?\s*\{\s*string_value:\s*"([^"]+)"', config)
    if not found:
        sys.exit("the diffusion model config has no `version` parameter")
    return found.group(1)


def build_image_generation(src: str) -> None:
    """Triton tutorials' Stable Diffusion: loading the model once in the diffusion image exports ONNX and builds the
    TensorRT engines into the model's version directory (what the tutorial's scripts/build_models.py does)."""
    name = os.environ["TRITON_MODEL"]
    model_dir = f"{OUT}/repo/{name}"
    version = diffusion_version(open(f"{model_dir}/config.pbtxt").read())
    os.makedirs(f"{model_dir}/1", exist_ok=True)
    if os.path.isdir(src):  # the TensorRT demo reads the diffusers checkpoint from <version>-pytorch_model
        shutil.move(src, f"{model_dir}/1/{version}-pytorch_model")
    port = int(os.environ.get("BUILD_HTTP_PORT", "18000"))
    server = subprocess.Popen(
        [
            "tritonserver",
            f"--model-repository={OUT}/repo",
            "--model-control-mode=explicit",
            f"--load-model={name}",
            f"--http-port={port}",
            f"--grpc-port={port + 1}",
            f"--metrics-port={port + 2}",
        ]
    )
    deadline = time.time() + 3 * 3600
    try:
        while time.time() < deadline:
            if server.poll() is not None:
                sys.exit(f"tritonserver exited with {server.returncode} while building {name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{name}/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(float(os.environ.get("BUILD_POLL_SECONDS", "10")))
        sys.exit(f"{name} did not become ready within 3 hours")
    finally:
        server.terminate()
        server.wait(timeout=120)


def main() -> None:
    if os.path.exists(f"{WORK}/cached"):
        return
    task, src = os.environ["TASK"], source()
    if task == "image-generation":
        build_image_generation(src)
        trtllm = None
    else:
        import tensorrt_llm

        trtllm = tensorrt_llm.__version__
        (build_vision_chat if task == "vision-chat" else build_chat)(src, limits())
        copy_tokenizer(src)
    json.dump({"key": os.environ["ENGINE_KEY"], "task": task, "trtllm": trtllm}, open(f"{OUT}/build.json", "w"))


if __name__ == "__main__":
    main()
