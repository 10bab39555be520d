# Triton pod init container (aws-cli image): wait for a complete engine (its marker), then copy it to /models.
# Env: ENGINE_URI, ENGINE_KEY; MODELS_DIR (default /models), POLL_SECONDS (default 30).
set -eu
models=${MODELS_DIR:-/models}
while :; do
  state=$(marker_state)  # an S3 error stops here (set -e): it never reads as "not built yet"
  if [ "$state" = present ]; then break; fi
  echo "waiting for engine $ENGINE_KEY at $ENGINE_URI (its build Job writes _COMPLETE when done)"
  sleep "${POLL_SECONDS:-30}"
done
aws s3 sync --only-show-errors "$ENGINE_URI/" "$models/"
