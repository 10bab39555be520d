#!/usr/bin/env python3
"""Create or update ONE pull-request comment: the one whose body starts with a marker.

    python .github/scripts/sticky_comment.py FILE

FILE is the Markdown to post; its first line is the marker (`modelsvc review` starts with
`<!-- modelsvc-review -->`). The script lists the pull request's comments, and if one written by the workflow's
own identity starts with that marker it is edited in place, otherwise a new comment is created: every push updates
the same comment instead of adding one.

A stale run never overwrites a newer one. The script adds a second line `<!-- modelsvc-run head=SHA run=ID -->` and
writes only when HEAD_SHA is still the pull request's head, and the comment does not already hold the review of that
head by a later run (run ids grow; a re-run keeps its id, so a re-run of an old run loses to a newer run).

Environment: GITHUB_TOKEN (needs `pull-requests: write`), GITHUB_REPOSITORY (owner/name), PR_NUMBER, HEAD_SHA (the
head commit reviewed), RUN_ID (github.run_id),
GITHUB_API_URL (set by the runner; GitHub Enterprise works as is), COMMENT_AUTHOR (default github-actions[bot],
the login behind GITHUB_TOKEN). Standard library only.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from github_api import Api

PER_PAGE = 100
META = re.compile(r"^<!-- modelsvc-run head=([0-9a-f]{40}) run=([0-9]+) -->$", re.M)


def find_comment(api: Api, pr: str, marker: str, author: str) -> dict[str, Any] | None:
    page = 1
    while True:
        comments = api.get(f"/repos/{{repo}}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}")
        for c in comments:
            if (c.get("user") or {}).get("login") == author and (c.get("body") or "").startswith(marker):
                return dict(c)
        if len(comments) < PER_PAGE:
            return None
        page += 1


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        body = f.read()
    marker = body.split("\n", 1)[0].strip()
    if not (marker.startswith("<!--") and marker.endswith("-->")):
        print(f"sticky_comment.py: {argv[1]} must start with an HTML comment marker line", file=sys.stderr)
        return 2
    env = os.environ
    api = Api(env["GITHUB_TOKEN"], agent="modelsvc-sticky-comment")
    pr = env["PR_NUMBER"]
    author = env.get("COMMENT_AUTHOR") or "github-actions[bot]"
    head, run = env.get("HEAD_SHA", ""), env.get("RUN_ID", "")
    if not (re.fullmatch(r"[0-9a-f]{40}", head) and run.isdigit()):
        print("sticky_comment.py: HEAD_SHA (40 hex) and RUN_ID (digits) are required", file=sys.stderr)
        return 2

    current = (api.get(f"/repos/{{repo}}/pulls/{pr}").get("head") or {}).get("sha")
    if current != head:
        print(
            f"not posting: this run reviewed {head[:12]}, the pull request's head is now {str(current)[:12]} "
            "(its own run posts that review)"
        )
        return 0
    existing = find_comment(api, pr, marker, author)
    if existing is not None:
        m = META.search(existing.get("body") or "")
        if m and m.group(1) == head and int(m.group(2)) > int(run):
            print(f"not posting: run {m.group(2)} already posted a later review of {head[:12]}")
            return 0
    marker_line, _, rest = body.partition("\n")
    body = f"{marker_line}\n<!-- modelsvc-run head={head} run={run} -->\n{rest}"
    if existing is None:
        c = api.call("POST", f"/repos/{{repo}}/issues/{pr}/comments", {"body": body})[0]
        print(f"created comment {c.get('html_url', c.get('id'))}")
    else:
        c = api.call("PATCH", f"/repos/{{repo}}/issues/comments/{existing['id']}", {"body": body})[0]
        print(f"updated comment {c.get('html_url', existing['id'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
