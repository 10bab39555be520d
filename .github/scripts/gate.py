#!/usr/bin/env python3
"""The one check branch protection requires: green only when the review passed AND the code checks of the head
commit succeeded.

    python3 .github/scripts/gate.py

A skipped or missing job is never success here (GitHub counts a skipped job as passing, so no skipped job is ever the
required check). The review runs on every pull-request event (pushes, labels, description edits); the code checks
(`validate services.yaml`, `tests`) run only on pushes, in the `pull request` workflow. So the gate reads those
checks' latest runs on HEAD_SHA through the checks API, waiting while they are queued or running: a label added
after the push re-evaluates the gate without re-running the tests, and can never turn it green on its own.

Environment: REVIEW_RESULT (needs.review.result), HEAD_SHA, REQUIRED_CHECKS (comma-separated check names),
GITHUB_TOKEN (`checks: read`), GITHUB_REPOSITORY, GITHUB_API_URL, GATE_WAIT_S (default 3600), GATE_POLL_S (default
20). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from typing import Any


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(
        url,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "modelsvc-gate",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def latest_run(api: str, repo: str, sha: str, name: str, token: str) -> dict[str, Any] | None:
    """The newest check run called `name` on commit `sha` (a re-run supersedes the run it repeats)."""
    q = urllib.parse.urlencode({"check_name": name, "filter": "latest", "per_page": 100})
    runs = _get(f"{api}/repos/{repo}/commits/{sha}/check-runs?{q}", token).get("check_runs") or []
    runs = [r for r in runs if r.get("name") == name]
    return max(runs, key=lambda r: (r.get("started_at") or "", r.get("id") or 0)) if runs else None


def main() -> int:
    env = os.environ
    if env.get("REVIEW_RESULT") != "success":
        print(
            f"::error title=gate::the review did not pass ({env.get('REVIEW_RESULT') or 'not run'}): see its "
            "comment or job summary"
        )
        return 1
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    repo, sha, token = env["GITHUB_REPOSITORY"], env["HEAD_SHA"], env["GITHUB_TOKEN"]
    names = [n.strip() for n in env.get("REQUIRED_CHECKS", "").split(",") if n.strip()]
    deadline = time.monotonic() + float(env.get("GATE_WAIT_S", "3600"))
    poll = float(env.get("GATE_POLL_S", "20"))
    pending = list(names)
    while pending:
        for name in list(pending):
            run = latest_run(api, repo, sha, name, token)
            if run is None or run.get("status") != "completed":
                continue
            if run.get("conclusion") != "success":
                print(f"::error title=gate::check '{name}' of {sha[:12]} concluded {run.get('conclusion')}")
                return 1
            print(f"{name}: success")
            pending.remove(name)
        if pending:
            if time.monotonic() >= deadline:
                print(
                    f"::error title=gate::checks not finished on {sha[:12]}: {', '.join(pending)} (re-run this job "
                    "once they are)"
                )
                return 1
            time.sleep(poll)
    print("gate: review passed and every code check succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
