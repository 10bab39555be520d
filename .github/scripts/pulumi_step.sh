#!/usr/bin/env bash
# The deploy's two Pulumi commands on stack prod (STACK), with their output made safe to show:
#
#   bash .github/scripts/pulumi_step.sh preview   # refresh + preview, saves $PLAN_DIR/plan.json
#   bash .github/scripts/pulumi_step.sh up        # applies $PLAN_DIR/plan.json, nothing else
#
# Pulumi's diff quotes values from services.yaml (the catalog ConfigMap, names, labels). While it prints, workflow
# commands are stopped with a random token, so no value can act as `::error`/`::add-mask`/`::set-env` on the runner;
# the diff goes to the job summary inside a code fence longer than any backtick run in it.
set -euo pipefail

mode=${1:?usage: pulumi_step.sh preview|up}
stack=${STACK:-prod}
mkdir -p "$PLAN_DIR"
out="$PLAN_DIR/$mode.txt"
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

echo "::stop-commands::$token"
rc=0
case "$mode" in
  preview)
    pulumi preview --stack "$stack" --refresh --diff --color never --non-interactive \
      --save-plan "$PLAN_DIR/plan.json" 2>&1 | tee "$out" || rc=$? ;;
  up)
    pulumi up --stack "$stack" --plan "$PLAN_DIR/plan.json" --yes --diff --color never --non-interactive \
      --message "${MESSAGE:-deploy}" 2>&1 | tee "$out" || rc=$? ;;
  *)
    echo "unknown mode: $mode" >&2; rc=2 ;;
esac
echo "::$token::"

title="pulumi $mode ($stack) of ${GITHUB_SHA:-this commit}"
[ "$mode" = preview ] && title="$title: the plan the \`production\` approval applies"
python3 "$(dirname "$0")/fenced.py" "$title" "$out" >> "$GITHUB_STEP_SUMMARY"
if [ "$rc" -ne 0 ]; then
  echo "::error title=pulumi $mode::pulumi $mode failed (exit $rc): see the log and the job summary"
fi
exit "$rc"
