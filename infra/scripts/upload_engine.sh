# Build Job, last step (aws-cli image): upload the build, then write the marker LAST, so a present marker always
# means a complete entry (readers wait for it; a failed upload leaves no marker and the next Job redoes it).
# Env: ENGINE_URI, ENGINE_KEY; WORK (default /work).
set -eu
work=${WORK:-/work}
if [ -e "$work/cached" ]; then exit 0; fi
aws s3 sync --only-show-errors --delete --exclude '_COMPLETE' "$work/out/" "$ENGINE_URI/"
aws s3 cp --only-show-errors "$work/out/build.json" "$ENGINE_URI/_COMPLETE"
echo "engine $ENGINE_KEY uploaded to $ENGINE_URI"
