"""Build Job, GPU step: runs in NVIDIA's serving image (not ours), so it imports only what that image ships.

Chat runs in nvcr.io/nvidia/tritonserver:<release>-trtllm-python-py3 (TensorRT-LLM 1.0.0 in 25.10), vision-chat in
that image plus NVIDIA's per-model requirements (infra/docker/vision.Dockerfile), image-generation in the Triton
tutorials' Stable Diffusion image. Offline: everything comes from /work/checkpoint (the model store) and the image;
the Job sets HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/HF_DATASETS_OFFLINE, and so does main() before any import.

Inputs: /work/checkpoint, /work/out/repo (the model repository the model-repo step wrote). Outputs under /work/out
(engine, tokenizer, tokenizer_info for guided decoding), then build.json. Env: TASK, ENGINE_KEY, TP_SIZE, DTYPE,
MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, MAX_BATCH_SIZE, MAX_NUM_TOKENS, TRITON_MODEL; WORK (default /work);
BUILD_HTTP_PORT, BUILD_POLL_SECONDS (image generation's local server). Recipes and the NVIDIA files they follow:
docs/infra.md "Build recipes".
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from typing import Any, NoReturn

WORK = os.environ.get("WORK", "/work")
OUT = f"{WORK}/out"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
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
# fp8 needs activation calibration (ModelOpt); the LLM API's default dataset is cnn_dailymail from the Hub. Ours comes
# from the model store: <source>/calibration/, a datasets directory whose train split has a `text` column
# (TensorRT-LLM quantization/quantize_by_modelopt.py get_calib_dataloader: "Recognized local dataset repo").
CALIBRATION_DIR = "calibration"
# TensorRT-LLM's examples/generate_xgrammar_tokenizer_info.py, where the Triton TensorRT-LLM image has it
XGRAMMAR_SCRIPT = "/app/examples/generate_xgrammar_tokenizer_info.py"
# Qwen2-VL (docs/multimodal.md of the pinned release): image features per 504x504 image
QWEN2_VL_FEATURES_PER_IMAGE = 324
# The tutorial's versions and the TensorRT demo's pipeline for each (backend/diffusion/model.py _KNOWN_VERSIONS), the
# Hub repository the demo names for it (NVIDIA/TensorRT release/10.4 demo/Diffusion/models.py get_path), and the
# files it loads from <version>-pytorch_model/<version>/<pipeline>/ instead of downloading (models.py, get_model of
# CLIPModel, CLIPWithProjModel, UNet(XL)Model, VAEModel; make_tokenizer): fp16 variants where it builds in fp16.
DIFFUSION: dict[str, dict[str, Any]] = {
    "1.5": {
        "pipeline": "TXT2IMG",
        "hub": "benjamin-paine/stable-diffusion-v1-5",
        "needs": ("tokenizer", "text_encoder", "unet/diffusion_pytorch_model.fp16.safetensors", "vae"),
    },
    "xl-1.0": {
        "pipeline": "XL_BASE",
        "hub": "stabilityai/stable-diffusion-xl-base-1.0",
        "needs": (
            "tokenizer",
            "tokenizer_2",
            "text_encoder",
            "text_encoder_2/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae",
        ),
    },
}


def fail(message: str) -> NoReturn:
    sys.exit(f"engine build refused: {message}")


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
    # chunked context and KV-cache reuse (both on in the model repository) need paged context FMHA in the engine
    cfg.plugin_config.use_paged_context_fmha = True
    return cfg


def copy_tokenizer(src: str) -> None:
    os.makedirs(f"{OUT}/tokenizer", exist_ok=True)
    for pattern in TOKENIZER_FILES:
        for f in glob.glob(f"{src}/{pattern}"):
            shutil.copy(f, f"{OUT}/tokenizer/")


def tokenizer_info(src: str) -> None:
    """xgrammar's tokenizer information, which the C++ backend's guided decoder loads at start
    (tensorrt_llm/config.pbtxt xgrammar_tokenizer_info_path, /models/tokenizer_info/xgrammar_tokenizer_info.json once
    fetched): made with NVIDIA's own script from the checkpoint's tokenizer, as tensorrtllm_backend
    docs/guided_decoding.md ("C++ Backend") does; the Triton TensorRT-LLM image ships it at /app/examples (what
    Triton's OpenAI frontend tests run). Offline: the tokenizer is read from the checkpoint (HF_HUB_OFFLINE)."""
    script = os.environ.get("XGRAMMAR_TOKENIZER_INFO_SCRIPT", XGRAMMAR_SCRIPT)
    if not os.path.isfile(script):
        fail(
            f"{script} is missing: guided decoding needs it to write xgrammar's tokenizer info (the Triton "
            "TensorRT-LLM image ships it under /app/examples)"
        )
    out = f"{OUT}/tokenizer_info"
    subprocess.run([sys.executable, script, "--model_dir", src, "--output_dir", out], check=True)
    if not os.path.isfile(f"{out}/xgrammar_tokenizer_info.json"):
        fail(f"{script} wrote no {out}/xgrammar_tokenizer_info.json")


def build_chat(src: str, lim: dict) -> None:
    """LLM API, TensorRT flow (`tensorrt_llm._tensorrt_engine.LLM`: in 1.0 the top-level `LLM` is the PyTorch
    backend, which builds no engine), quantised through QuantConfig for fp8/int8/int4."""
    from tensorrt_llm._tensorrt_engine import LLM
    from tensorrt_llm.llmapi import CalibConfig, QuantAlgo, QuantConfig

    dtype = os.environ["DTYPE"]
    quant = {"fp8": QuantAlgo.FP8, "int8": QuantAlgo.W8A16, "int4": QuantAlgo.W4A16}.get(dtype)
    extra = {}
    if quant is QuantAlgo.FP8:  # weight-only int8/int4 need no activation calibration
        calibration = f"{src}/{CALIBRATION_DIR}"
        if not os.path.isdir(calibration):
            fail(
                f"fp8 needs calibration data and builds have no internet: put a datasets directory (train split, "
                f"a `text` column, e.g. train.jsonl) at <source>/{CALIBRATION_DIR}/ in the model store"
            )
        extra["calib_config"] = CalibConfig(calib_dataset=calibration)
    llm = LLM(
        model=src,
        tensor_parallel_size=lim["tp_size"],
        dtype="auto" if quant else dtype,
        quant_config=QuantConfig(quant_algo=quant) if quant else None,
        build_config=build_config(lim),
        **extra,
    )
    llm.save(f"{OUT}/engine")


def _offline_vision_info():
    """NVIDIA's Qwen2-VL visual-engine builder traces its ONNX graph on a demo image it downloads
    (multimodal_builder.py build_qwen2_vl_engine: an https URL through qwen_vl_utils.process_vision_info). The image
    only shapes the trace (the engine's profile comes from --min/--max_hw_dims), so an offline one of the size the
    recipe serves (504x504 after the builder halves it) takes its place."""
    import qwen_vl_utils
    from PIL import Image

    real = qwen_vl_utils.process_vision_info

    def offline(messages, *args, **kwargs):
        for message in messages:
            for part in message.get("content", []):
                if isinstance(part, dict) and str(part.get("image", "")).startswith(("http://", "https://")):
                    part["image"] = Image.new("RGB", (1008, 1008))
        return real(messages, *args, **kwargs)

    qwen_vl_utils.process_vision_info = offline


def build_vision_chat(src: str, lim: dict) -> None:
    """Qwen2-VL as triton_backend docs/multimodal.md (tensorrtllm_backend r25.10) builds it: the language model with a
    prompt-table input in float16 (convert_checkpoint.py --dtype float16 + trtllm-build --max_multimodal_len, here
    through the same Python API; the visual engine and the templates' prompt table are fp16), then the visual
    engine with build_multimodal_engine.py's MultimodalEngineBuilder at its default --max_batch_size (4: the
    profile is max_hw_dims × batch patches, and attention over them grows with its square)."""
    import argparse

    try:
        import qwen_vl_utils  # noqa: F401  (NVIDIA's requirements-qwen2vl.txt: in the vision image, never installed here)
    except ImportError:
        fail(
            "qwen-vl-utils is missing: NVIDIA's requirements-qwen2vl.txt must be in the image (the vision image, "
            "infra/docker/vision.Dockerfile, modelsvc:visionImage); builds install nothing"
        )
    import tensorrt_llm
    from tensorrt_llm import Mapping
    from tensorrt_llm.models import QWenForCausalLM
    from tensorrt_llm.tools.multimodal_builder import MultimodalEngineBuilder, add_multimodal_arguments

    model_type = json.load(open(f"{src}/config.json")).get("model_type")
    if model_type != "qwen2_vl":
        fail(f"the vision-chat recipe builds Qwen2-VL checkpoints (model_type qwen2_vl), got {model_type!r}")
    tp = lim["tp_size"]
    cfg = build_config(lim, max_prompt_embedding_table_size=lim["max_batch_size"] * QWEN2_VL_FEATURES_PER_IMAGE)
    for rank in range(tp):
        model = QWenForCausalLM.from_hugging_face(
            src, dtype="float16", mapping=Mapping(world_size=tp, rank=rank, tp_size=tp)
        )
        tensorrt_llm.build(model, cfg).save(f"{OUT}/engine")
    _offline_vision_info()
    args = add_multimodal_arguments(argparse.ArgumentParser()).parse_args(
        ["--model_type", "qwen2_vl", "--model_path", src, "--output_dir", f"{OUT}/visual_engine"]
    )
    MultimodalEngineBuilder(args).build()


def diffusion_version(config: str) -> str:
    """The `version` parameter of a diffusion model config (the tutorial's `value: {` or protobuf's `value {`)."""
    found = re.search(r'key:\s*"version"\s*value:?\s*\{\s*string_value:\s*"([^"]+)"', config)
    if not found:
        fail("the diffusion model config has no `version` parameter")
    return found.group(1)


def place_diffusion_checkpoint(src: str, model_dir: str, version: str) -> None:
    """The checkpoint where the TensorRT demo reads it: <model>/1/<version>-pytorch_model/<version>/<pipeline>/
    (the tutorial's framework_model_dir, then the demo's get_checkpoint_dir). Every file it would otherwise fetch
    from the Hub must be there."""
    spec = DIFFUSION[version]
    missing = [n for n in spec["needs"] if not os.path.exists(f"{src}/{n}")]
    if missing:
        fail(f"the checkpoint lacks {', '.join(missing)} (the demo would download them from the Hub)")
    target = f"{model_dir}/1/{version}-pytorch_model/{version}/{spec['pipeline']}"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(src, target)


def hub_cache(hub_repo: str, checkpoint: str, cache: str) -> None:
    """The demo builds its scheduler with `<Scheduler>.from_pretrained(<hub repo>, subfolder="scheduler")` on every
    start (stable_diffusion_pipeline.py makeScheduler): a Hub-layout cache holding the checkpoint's scheduler config
    answers it offline (HF_HOME=<cache>, HF_HUB_OFFLINE=1: huggingface_hub resolves refs/main to a snapshot)."""
    config = f"{checkpoint}/scheduler/scheduler_config.json"
    if not os.path.isfile(config):
        fail("the checkpoint has no scheduler/scheduler_config.json (the demo would fetch it from the Hub)")
    data = open(config, "rb").read()
    revision = hashlib.sha1(data).hexdigest()
    repo = f"{cache}/hub/models--{hub_repo.replace('/', '--')}"
    os.makedirs(f"{repo}/refs", exist_ok=True)
    os.makedirs(f"{repo}/snapshots/{revision}/scheduler", exist_ok=True)
    with open(f"{repo}/refs/main", "w") as f:
        f.write(revision)
    shutil.copy(config, f"{repo}/snapshots/{revision}/scheduler/scheduler_config.json")


def build_image_generation(src: str) -> None:
    """Triton tutorials' Stable Diffusion: loading the model once in the diffusion image exports ONNX and builds the
    TensorRT engines into the model's version directory (what the tutorial's scripts/build_models.py does), from the
    checkpoint placed where the demo reads it and the scheduler from a local Hub cache."""
    name = os.environ["TRITON_MODEL"]
    model_dir = f"{OUT}/repo/{name}"
    version = diffusion_version(open(f"{model_dir}/config.pbtxt").read())
    cache = f"{OUT}/hf"
    if version not in DIFFUSION:
        fail(f"diffusion version {version!r}: the recipe knows {', '.join(DIFFUSION)}")
    hub_cache(DIFFUSION[version]["hub"], src, cache)
    place_diffusion_checkpoint(src, model_dir, version)
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
        ],
        env={**os.environ, **OFFLINE, "HF_HOME": cache},
    )
    deadline = time.time() + 3 * 3600
    try:
        while time.time() < deadline:
            if server.poll() is not None:
                sys.exit(f"tritonserver exited with {server.returncode} while building {name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{name}/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(float(os.environ.get("BUILD_POLL_SECONDS", "10")))
        else:
            sys.exit(f"{name} did not become ready within 3 hours")
    finally:
        server.terminate()
        server.wait(timeout=120)
    # the engines are built; the ONNX export they came from is not read again (loadEngines builds only what is
    # missing) and would double the entry every pod downloads
    shutil.rmtree(f"{model_dir}/1/{version}-onnx", ignore_errors=True)


def main() -> None:
    os.environ.update(OFFLINE)  # before any Hugging Face library is imported
    if os.path.exists(f"{WORK}/cached"):
        return
    task, src = os.environ["TASK"], f"{WORK}/checkpoint"
    if not os.path.isdir(src):
        fail(f"no checkpoint at {src} (the fetch step syncs the model's s3:// source there)")
    if task == "image-generation":
        build_image_generation(src)
        trtllm = None
    else:
        import tensorrt_llm

        trtllm = tensorrt_llm.__version__
        (build_vision_chat if task == "vision-chat" else build_chat)(src, limits())
        copy_tokenizer(src)
        tokenizer_info(src)  # the recipe turns guided decoding on for chat and vision-chat
    json.dump({"key": os.environ["ENGINE_KEY"], "task": task, "trtllm": trtllm}, open(f"{OUT}/build.json", "w"))


if __name__ == "__main__":
    main()
