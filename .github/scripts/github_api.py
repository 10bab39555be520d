#!/usr/bin/env python3
"""The few REST calls the workflow scripts make, with GitHub's headers, JSON bodies and `Link` pagination.

Environment: GITHUB_API_URL (set by the runner; GitHub Enterprise works as is), GITHUB_REPOSITORY. Standard
library only: the scripts run in jobs that install nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

API_VERSION = "2022-11-28"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class Api:
    def __init__(self, token: str, api: str | None = None, repo: str | None = None, agent: str = "modelsvc") -> None:
        self.token = token
        self.api = (api or os.environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
        self.repo = repo or os.environ["GITHUB_REPOSITORY"]
        self.agent = agent

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[Any, str | None]:
        """(decoded JSON, URL of the next page or None). path is relative to the API root, or a full URL."""
        url = path if path.startswith("http") else f"{self.api}{path.replace('{repo}', self.repo)}"
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": self.agent,
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            link = resp.headers.get("Link") or ""
        m = _NEXT.search(link)
        return (json.loads(body) if body else None), (m.group(1) if m else None)

    def get(self, path: str) -> Any:
        return self.call("GET", path)[0]

    def pages(self, path: str, key: str | None = None) -> list[Any]:
        """Every item of a paginated list (key: the list's field in an object answer, e.g. `check_runs`)."""
        out: list[Any] = []
        url: str | None = path
        while url:
            page, url = self.call("GET", url)
            out += (page.get(key) or []) if key else (page or [])
        return out


HTTPError = urllib.error.HTTPError


def pr_state(pr: dict[str, Any]) -> str:
    """A digest of what a review depends on in a pull request: its head, description and labels. The review job
    outputs it; the gate recomputes it from the API, so a re-run that reuses an old review result cannot pass on a
    pull request that has changed since (a confirmation removed, a label dropped, a push)."""
    labels = sorted(str(label.get("name") or "") for label in pr.get("labels") or [])
    facts = [str((pr.get("head") or {}).get("sha") or ""), str(pr.get("body") or ""), labels]
    return hashlib.sha256(json.dumps(facts, ensure_ascii=True).encode()).hexdigest()[:16]
