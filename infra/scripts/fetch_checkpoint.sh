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
  *)
    # builds have no internet (no Hugging Face Hub): the checkpoint comes from the model store only
    echo "model source $MODEL_SOURCE is not an s3:// checkpoint: engine builds run without internet access;" >&2
    echo "copy the checkpoint to the model store (aws s3 sync) and point the model's source at it" >&2
    exit 1
    ;;
esac
