"""Stand-in for TensorRT-LLM's examples/generate_xgrammar_tokenizer_info.py (the CLI the build Job runs): the same
arguments (--model_dir, --output_dir) and output file; refuses to run unless the Hugging Face libraries are offline,
as the real one would reach the Hub for a tokenizer it cannot find locally."""

import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", type=Path, required=True)
parser.add_argument("--output_dir", type=Path, required=True)
args = parser.parse_args()
if os.environ.get("HF_HUB_OFFLINE") != "1":
    raise SystemExit("HF_HUB_OFFLINE is not set: the tokenizer could be fetched from the Hub")
if not (args.model_dir / "tokenizer_config.json").exists():
    raise SystemExit(f"no tokenizer in {args.model_dir}")
with open(os.environ["FAKE_TRTLLM_LOG"], "a") as log:
    log.write(json.dumps({"call": "generate_xgrammar_tokenizer_info", "model_dir": str(args.model_dir)}) + "\n")
os.makedirs(args.output_dir, exist_ok=True)
(args.output_dir / "xgrammar_tokenizer_info.json").write_text(json.dumps({"vocab_type": 2, "encoded_vocab": []}))
