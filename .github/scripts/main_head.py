#!/usr/bin/env python3
"""Refuse to deploy a commit that is not the head of main.

    python3 .github/scripts/main_head.py

A deploy run waits (for the plan, for the `production` approval); main may move meanwhile, and an old run can be
re-run by hand. Either would deploy an old commit over a newer one. Only the head of main is deployed: the run for
that head deploys it. Asks the API (the checkout keeps no credentials, so no `git ls-remote` on a private repository).

Environment: GITHUB_SHA (the commit this run deploys), GITHUB_TOKEN (`contents: read`), GITHUB_REPOSITORY,
GITHUB_API_URL, BRANCH (default main). Standard library only.
"""

from __future__ import annotations

import os
import sys

from github_api import Api


def main() -> int:
    env = os.environ
    branch = env.get("BRANCH") or "main"
    head = Api(env["GITHUB_TOKEN"], agent="modelsvc-deploy").get(f"/repos/{{repo}}/git/ref/heads/{branch}")["object"][
        "sha"
    ]
    sha = env["GITHUB_SHA"]
    if head != sha:
        print(
            f"::error title=deploy refused::this run is for {sha[:12]}, but {branch} is at {head[:12]}: only the "
            f"head of {branch} is deployed (the run for {head[:12]} deploys it)"
        )
        return 1
    print(f"{sha[:12]} is the head of {branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
