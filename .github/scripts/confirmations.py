#!/usr/bin/env python3
"""Print the `--confirm-delete=…` / `--confirm-change=…` arguments of a pull request, one per line.

A pull request confirms a change callers will notice in either of two ways:
  - a label `confirm-delete:<access name>` / `confirm-change:<access name or key id>`
  - a line `Confirm-Delete: <access name>` / `Confirm-Change: <access name or key id>` in its description
    (case-insensitive key, one name per line; lines inside HTML comments, which the rendered description hides,
    do not count)

Confirm-Delete confirms removing a service; Confirm-Change confirms every other change callers notice (a rename, another
model, token limits, template, task, instances 0; a key revoked, rotated or given to another owner): see
docs/changing-a-service.md.

The pull request comes from the event JSON GitHub writes for the run (path in $GITHUB_EVENT_PATH, or the first
argument), never from `${{ github.event.pull_request.body }}` pasted into a shell script: the body is text anyone
opening a pull request controls. Each name is checked against the access-name or key-id syntax; anything else is
reported (without quoting it) as a warning annotation and ignored, so only well-formed names reach `modelsvc review`.

Usage in a workflow step:
    python .github/scripts/confirmations.py > "$RUNNER_TEMP/confirm.args"
    mapfile -t confirm < "$RUNNER_TEMP/confirm.args"
    modelsvc review BASE HEAD "${confirm[@]}"
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from modelsvc.review.changes import CONFIRMATION_RE

KINDS = ("delete", "change")
HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)  # invisible in the rendered description: never a confirmation
BODY_LINE = re.compile(r"^[ \t>*-]*confirm-(delete|change):[ \t]*(\S+)[ \t]*$", re.I | re.M)
LABEL_DIGEST = re.compile(r"^[0-9a-f]+$")


def confirmations(event: dict[str, Any]) -> dict[str, list[str]]:
    """kind → names confirmed by the pull request of a `pull_request` event, in order, no repeats."""
    pr = event.get("pull_request") or {}
    found: list[tuple[str, str]] = []
    for label in pr.get("labels") or []:
        name = (label.get("name") or "").strip()
        for kind in KINDS:
            prefix = f"confirm-{kind}:"
            if name.lower().startswith(prefix):  # a label holds the digest alone (labels are <= 50 characters)
                value = name[len(prefix) :].strip()
                found.append((kind, f"@{value}" if LABEL_DIGEST.match(value) else value))
    body = HTML_COMMENT.sub("", (pr.get("body") or "").replace("\r\n", "\n"))
    found += [(kind.lower(), name) for kind, name in BODY_LINE.findall(body)]
    names: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind, name in found:
        name = name.strip("`")
        if not CONFIRMATION_RE.match(name):
            # Never quote it: it is text from the pull request, and this line goes to the log as a workflow command.
            print(
                f"::warning title=Confirm-{kind.capitalize()}::ignored a value that is not '<subject>@<digest>' "
                "as the review names it",
                file=sys.stderr,
            )
        elif name not in names[kind]:
            names[kind].append(name)
    return names


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        print("confirmations.py: no event file (set GITHUB_EVENT_PATH or pass a path)", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        event = json.load(f)
    for kind, names in confirmations(event).items():
        for name in names:
            print(f"--confirm-{kind}={name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
