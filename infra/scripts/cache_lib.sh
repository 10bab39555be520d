# Shared by the engine-cache scripts (prepended to each by infra/manifests/scripts.py). POSIX sh.
# Needs ENGINE_URI (s3://bucket/prefix/engines/<key>) and ENGINE_KEY.

# marker_state: prints "present" or "absent"; any other answer from S3 (AccessDenied, a missing bucket, no
# credentials, no network) is an error that stops the script: it must never read as "not built yet".
marker_state() {
  rest=${ENGINE_URI#s3://}
  bucket=${rest%%/*}
  key=${rest#*/}/_COMPLETE
  if err=$(aws s3api head-object --bucket "$bucket" --key "$key" 2>&1 >/dev/null); then
    echo present
  elif printf '%s' "$err" | grep -q '(404)'; then
    echo absent
  else
    echo "cannot read the engine cache at $ENGINE_URI: $err" >&2
    echo "the service account needs s3:GetObject and s3:ListBucket on it (without ListBucket S3 answers 403, not 404)" >&2
    return 1
  fi
}
