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

import json
import os
import re
import sys
import urllib.request
from typing import Any

PER_PAGE = 100
META = re.compile(r"^<!-- modelsvc-run head=([0-9a-f]{40}) run=([0-9]+) -->$", re.M)


def _call(method: str, url: str, token: str, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "modelsvc-sticky-comment",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def find_comment(api: str, repo: str, pr: str, token: str, marker: str, author: str) -> dict[str, Any] | None:
    page = 1
    while True:
        comments = _call("GET", f"{api}/repos/{repo}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}", token)
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
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    repo, pr, token = env["GITHUB_REPOSITORY"], env["PR_NUMBER"], env["GITHUB_TOKEN"]
    author = env.get("COMMENT_AUTHOR") or "github-actions[bot]"
    head, run = env.get("HEAD_SHA", ""), env.get("RUN_ID", "")
    if not (re.fullmatch(r"[0-9a-f]{40}", head) and run.isdigit()):
        print("sticky_comment.py: HEAD_SHA (40 hex) and RUN_ID (digits) are required", file=sys.stderr)
        return 2

    current = (_call("GET", f"{api}/repos/{repo}/pulls/{pr}", token).get("head") or {}).get("sha")
    if current != head:
        print(
            f"not posting: this run reviewed {head[:12]}, the pull request's head is now {str(current)[:12]} "
            "(its own run posts that review)"
        )
        return 0
    existing = find_comment(api, repo, pr, token, marker, author)
    if existing is not None:
        m = META.search(existing.get("body") or "")
        if m and m.group(1) == head and int(m.group(2)) > int(run):
            print(f"not posting: run {m.group(2)} already posted a later review of {head[:12]}")
            return 0
    marker_line, _, rest = body.partition("\n")
    body = f"{marker_line}\n<!-- modelsvc-run head={head} run={run} -->\n{rest}"
    if existing is None:
        c = _call("POST", f"{api}/repos/{repo}/issues/{pr}/comments", token, {"body": body})
        print(f"created comment {c.get('html_url', c.get('id'))}")
    else:
        c = _call("PATCH", f"{api}/repos/{repo}/issues/comments/{existing['id']}", token, {"body": body})
        print(f"updated comment {c.get('html_url', existing['id'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
