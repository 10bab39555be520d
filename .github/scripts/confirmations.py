#!/usr/bin/env python3
"""Print the `--confirm-delete=<access name>` arguments of a pull request, one per line.

A pull request confirms the removal of a service in either of two ways:
  - a label `confirm-delete:<access name>`
  - a line `Confirm-Delete: <access name>` in its description (case-insensitive key, one name per line; lines
    inside HTML comments, which the rendered description hides, do not count)

The pull request comes from the event JSON GitHub writes for the run (path in $GITHUB_EVENT_PATH, or the first
argument), never from `${{ github.event.pull_request.body }}` pasted into a shell script: the body is text anyone
opening a pull request controls. Each name is checked against the access-name syntax; anything else is reported as
a warning annotation and ignored, so only well-formed names ever reach `modelsvc review`.

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

from modelsvc.catalog.model import ACCESS_NAME_RE

LABEL_PREFIX = "confirm-delete:"
HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)  # invisible in the rendered description: never a confirmation
BODY_LINE = re.compile(r"^[ \t>*-]*confirm-delete:[ \t]*(\S+)[ \t]*$", re.I | re.M)
_ACCESS_NAME = re.compile(ACCESS_NAME_RE)


def confirmations(event: dict) -> list[str]:
    """Access names confirmed for deletion by the pull request of a `pull_request` event, in order, no repeats."""
    pr = event.get("pull_request") or {}
    found: list[str] = []
    for label in pr.get("labels") or []:
        name = (label.get("name") or "").strip()
        if name.lower().startswith(LABEL_PREFIX):
            found.append(name[len(LABEL_PREFIX):].strip())
    body = HTML_COMMENT.sub("", (pr.get("body") or "").replace("\r\n", "\n"))
    found += BODY_LINE.findall(body)
    names: list[str] = []
    for name in found:
        name = name.strip("`")
        if not _ACCESS_NAME.match(name):
            print(f"::warning title=Confirm-Delete::ignored {name[:80]!r}: not an access name (<owner>/<name>)",
                  file=sys.stderr)
        elif name not in names:
            names.append(name)
    return names


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        print("confirmations.py: no event file (set GITHUB_EVENT_PATH or pass a path)", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        event = json.load(f)
    for name in confirmations(event):
        print(f"--confirm-delete={name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
