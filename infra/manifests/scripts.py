"""Shell/Python scripts the build Job and the Triton init container run (kept here so tests can read them)."""

from __future__ import annotations

from ..cache import COMPLETE_MARKER

# Step 1 of the build Job (aws-cli image): stop early when the engine is cached, else fetch the checkpoint.
FETCH_CHECKPOINT = f"""set -eu
if aws s3 ls "$ENGINE_URI/{COMPLETE_MARKER}" >/dev/null 2>&1; then
  echo "engine $ENGINE_KEY is cached at $ENGINE_URI: nothing to build"; touch /work/cached; exit 0
fi
case "$MODEL_SOURCE" in
  s3://*) aws s3 sync --only-show-errors "$MODEL_SOURCE" /work/checkpoint ;;
  *) echo "$MODEL_SOURCE" > /work/hf-id ;;
esac
"""

# Step 2 (Triton TensorRT-LLM image, on a GPU of the pool's type): build the engine with the LLM API, copy the
# tokenizer, and fill the TensorRT-LLM ensemble model repository (decoupled mode on) from the templates of the
# TensorRT-LLM release the image ships (triton_backend/all_models, moved there from tensorrtllm_backend in 2025).
BUILD_ENGINE = r'''
import glob, io, json, os, shutil, subprocess, sys, tarfile, urllib.request
if os.path.exists("/work/cached"):
    sys.exit(0)
env = os.environ
src = open("/work/hf-id").read().strip() if os.path.exists("/work/hf-id") else "/work/checkpoint"
out = "/work/out"
tp, dtype = int(env["TP_SIZE"]), env["DTYPE"]
max_in, max_out, batch = int(env["MAX_INPUT_TOKENS"]), int(env["MAX_OUTPUT_TOKENS"]), int(env["MAX_BATCH_SIZE"])
import tensorrt_llm
try:
    from tensorrt_llm._tensorrt_engine import LLM  # TensorRT engine flavour (tensorrt_llm >= 1.0)
except ImportError:
    from tensorrt_llm import LLM
from tensorrt_llm.llmapi import BuildConfig, QuantAlgo, QuantConfig
quant = {"fp8": QuantConfig(quant_algo=QuantAlgo.FP8), "int8": QuantConfig(quant_algo=QuantAlgo.W8A16),
         "int4": QuantConfig(quant_algo=QuantAlgo.W4A16)}.get(dtype)
build = BuildConfig(max_input_len=max_in, max_seq_len=max_in + max_out, max_batch_size=batch)
llm = LLM(model=src, tensor_parallel_size=tp, dtype=dtype if quant is None else "auto",
          quant_config=quant, build_config=build)
llm.save(f"{out}/engine")
os.makedirs(f"{out}/tokenizer", exist_ok=True)
if os.path.isdir(src):
    for f in glob.glob(f"{src}/*token*") + glob.glob(f"{src}/*.model") + glob.glob(f"{src}/config.json") \
            + glob.glob(f"{src}/generation_config.json") + glob.glob(f"{src}/special_tokens_map.json"):
        shutil.copy(f, f"{out}/tokenizer/")
else:
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(src).save_pretrained(f"{out}/tokenizer")
# Model repository templates of the exact TensorRT-LLM release in this image.
version = tensorrt_llm.__version__
url = env.get("TRTLLM_TEMPLATES_URL") or f"https://codeload.github.com/NVIDIA/TensorRT-LLM/tar.gz/refs/tags/v{version}"
with urllib.request.urlopen(url) as r, tarfile.open(fileobj=io.BytesIO(r.read()), mode="r:gz") as tar:
    members = [m for m in tar.getmembers() if "/triton_backend/" in m.name]
    tar.extractall("/work/src", members=members, filter="data")
tb = glob.glob("/work/src/*/triton_backend")[0]
shutil.copytree(f"{tb}/all_models/inflight_batcher_llm", f"{out}/repo")
common = f"triton_max_batch_size:{batch},logits_datatype:TYPE_FP32"
fills = {
    "preprocessing": f"{common},tokenizer_dir:/models/tokenizer,preprocessing_instance_count:1",
    "postprocessing": f"{common},tokenizer_dir:/models/tokenizer,postprocessing_instance_count:1",
    "tensorrt_llm": f"{common},triton_backend:tensorrtllm,decoupled_mode:true,engine_dir:/models/engine,"
                    "batching_strategy:inflight_fused_batching,max_queue_delay_microseconds:0,"
                    "exclude_input_in_output:true,encoder_input_features_data_type:TYPE_FP16",
    "tensorrt_llm_bls": f"{common},decoupled_mode:true,bls_instance_count:1,accumulate_tokens:false",
    "ensemble": common,
}
for model, params in fills.items():
    subprocess.run([sys.executable, f"{tb}/tools/fill_template.py", "-i", f"{out}/repo/{model}/config.pbtxt",
                    params], check=True)
json.dump({"key": env["ENGINE_KEY"], "trtllm": version}, open(f"{out}/build.json", "w"))
'''

# Step 3 (aws-cli image): upload, then write the marker last, so a present marker means a complete engine.
UPLOAD_ENGINE = f"""set -eu
if [ -e /work/cached ]; then exit 0; fi
aws s3 sync --only-show-errors /work/out "$ENGINE_URI/"
aws s3 cp /work/out/build.json "$ENGINE_URI/{COMPLETE_MARKER}"
"""

# Triton pod init container (aws-cli image): wait for the engine, then pull engine + tokenizer + model repository.
FETCH_ENGINE = f"""set -eu
until aws s3 ls "$ENGINE_URI/{COMPLETE_MARKER}" >/dev/null 2>&1; do
  echo "waiting for engine $ENGINE_KEY at $ENGINE_URI"; sleep 30
done
aws s3 sync --only-show-errors "$ENGINE_URI/" /models/
"""
