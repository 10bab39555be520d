# Build Job, step 1 (aws-cli image): stop early when the engine is cached, else fetch the checkpoint.
# Env: ENGINE_URI, ENGINE_KEY, MODEL_SOURCE; WORK (default /work).
set -eu
work=${WORK:-/work}
state=$(marker_state)
if [ "$state" = present ]; then
  echo "engine $ENGINE_KEY is cached at $ENGINE_URI: nothing to build"
  touch "$work/cached"
  exit 0
fi
case "$MODEL_SOURCE" in
  s3://*)
    # Only what the engine build reads: Hugging Face layout (config, tokenizer, *.safetensors / diffusers
    # subfolders). Meta's original/*.pth, Mistral's consolidated weights and other frameworks' copies are skipped.
    aws s3 sync --only-show-errors \
      --exclude 'original/*' --exclude '*.pth' --exclude '*.pt' --exclude 'consolidated*' \
      --exclude '*.msgpack' --exclude '*.h5' --exclude '*.ckpt' --exclude '*.onnx' --exclude '*.onnx_data' \
      --exclude '.git*' \
      "${MODEL_SOURCE%/}/" "$work/checkpoint/"
    if [ ! -f "$work/checkpoint/config.json" ] && [ ! -f "$work/checkpoint/model_index.json" ]; then
      echo "no config.json or model_index.json under $MODEL_SOURCE: not a Hugging Face checkpoint" >&2
      exit 1
    fi
    ;;
  *) printf '%s\n' "$MODEL_SOURCE" > "$work/hf-id" ;;
esac
