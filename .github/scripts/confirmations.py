#!/usr/bin/env python3
"""The confirmations a pull request gives: `--confirm-delete=…` / `--confirm-change=…` arguments, one per line.

A pull request confirms a change callers will notice, as its review names it (each confirmation carries the digest
of the change it confirms, so it confirms that change and no later one), in either of two ways:
  - a line `Confirm-Delete: <access name>@<digest>` / `Confirm-Change: <subject>@<digest>` in its description
    (case-insensitive key, one per line; lines inside HTML comments, which the rendered description hides, do not
    count)
  - a label `confirm-delete:<digest>` / `confirm-change:<digest>` (labels are at most 50 characters: the digest alone)

The review job reads the pull request from the API at run time (review_pr.py), never from the event a run was
started with, nor from `${{ github.event.pull_request.body }}` pasted into a script: the body is text anyone
opening a pull request controls, and a re-run must not replay old labels. Anything that is not `<subject>@<digest>`
is reported (without quoting it) as a warning annotation and ignored.

    python .github/scripts/confirmations.py PR.json     # the API's pull-request object (or an event holding one)
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


def confirmations(pr: dict[str, Any]) -> dict[str, list[str]]:
    """kind → `subject@digest` / `@digest` tokens the pull request (the API's pull-request object, or an event
    holding one) confirms, in order, no repeats."""
    pr = pr.get("pull_request") or pr
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
        print("confirmations.py: no pull request file (pass a path)", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        event = json.load(f)
    for kind, names in confirmations(event).items():
        for name in names:
            print(f"--confirm-{kind}={name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
