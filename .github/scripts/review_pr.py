#!/usr/bin/env python3
"""The review job of `review.yml`: the default branch's code reviewing a pull request's CURRENT state as data.

    base/.venv/bin/python base/.github/scripts/review_pr.py base

`base` is the checkout of the default branch this run's workflow comes from (pull_request_target). Nothing of the
pull request is checked out or executed:

1. the pull request is read from the API at run time (head SHA, description, labels), never from the event: a
   re-run of an old run reviews what the pull request is now, with the confirmations it has now;
2. its head commit is fetched as git objects, and the tree the merge would produce is computed with
   `git merge-tree --write-tree` (no work tree, no hooks, no filters);
3. the file the stack's `modelsvc:catalog` names (Pulumi.prod.yaml) is read from both trees as a regular-file blob
   (a symlink or any mode but 100644 is refused) and reviewed with `modelsvc.review`.

Writes REVIEW_DIR/review.md (the whole review) and REVIEW_DIR/comment.md (what fits a comment), appends the review
to the job summary, prints `head=<sha>` and `state=<digest of head, description and labels>` to GITHUB_OUTPUT and
exits 1 unless the review passes.

Environment: GITHUB_TOKEN (contents: read), PR_NUMBER, GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_SERVER_URL,
GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, REVIEW_DIR, STACK_FILE (default Pulumi.prod.yaml), HISTORY_DAYS (default 90).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from confirmations import confirmations
from github_api import Api, pr_state
from mask_secrets import values as secret_values

from modelsvc.catalog import Problem
from modelsvc.review import Confirm, Confirmation, Review, SourceError, catalog_path, review_git, review_invalid
from modelsvc.review.sources import git_blob

SUMMARY_LIMIT = 1024 * 1024 - 4096  # GitHub's per-step job summary limit is 1 MiB


def _git(repo: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, env=env)


def fetch_head(repo: str, number: str, sha: str) -> None:
    """The pull request's head commit as objects only. The token goes through git's environment configuration
    (never argv, never .git/config); `refs/pull/N/head` is GitHub's ref for forks and branches alike."""
    env = dict(os.environ)
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    auth = base64.b64encode(f"x-access-token:{os.environ['GITHUB_TOKEN']}".encode()).decode()
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{server}/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {auth}",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    proc = _git(
        repo, "fetch", "--no-tags", "--quiet", "origin", f"+refs/pull/{number}/head:refs/modelsvc/pr-head", env=env
    )
    if proc.returncode != 0:
        raise SourceError(f"cannot fetch the pull request's head: {proc.stderr.strip()}")
    fetched = _git(repo, "rev-parse", "refs/modelsvc/pr-head").stdout.strip()
    if fetched != sha:
        raise SourceError(
            f"the pull request moved while this run started ({sha[:12]} → {fetched[:12]}): its new run reviews it"
        )


def merged_tree(repo: str, base: str, head: str) -> str:
    """The tree the merge of head into base would produce (what lands with the merge), or SourceError on a
    conflict."""
    proc = _git(repo, "merge-tree", "--write-tree", "--no-messages", base, head)
    if proc.returncode != 0:
        raise SourceError("the pull request conflicts with the default branch: rebase or merge it first")
    return proc.stdout.split()[0]


def given_confirmations(pr: dict[str, object]) -> list[Confirmation]:
    out = []
    for kind, tokens in confirmations(pr).items():
        for t in tokens:
            out.append(Confirmation.parse(Confirm.delete if kind == "delete" else Confirm.change, t))
    return out


def run(repo: str) -> tuple[Review, str, str]:
    env = os.environ
    api = Api(env["GITHUB_TOKEN"], agent="modelsvc-review")
    number = env["PR_NUMBER"]
    pr = api.get(f"/repos/{{repo}}/pulls/{number}")  # now, not the event's copy: a re-run replays nothing
    head = pr["head"]["sha"]
    base = _git(repo, "rev-parse", "HEAD").stdout.strip()  # the default branch this workflow runs from
    fetch_head(repo, number, head)
    stack_file = env.get("STACK_FILE") or "Pulumi.prod.yaml"
    tree = merged_tree(repo, base, head)
    # Mask the secret-shaped values of the new catalog before anything else is printed.
    try:
        text = git_blob(tree, catalog_path(tree, stack_file, repo), repo).decode("utf-8", "replace")
    except SourceError:
        text = ""  # refused below, by the review itself
    for value in secret_values(text):
        print(f"::add-mask::{value}")
    where = (
        f"in this run's job summary and its artifact `review-{head}` "
        f"({env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}/actions/runs/"
        f"{env.get('GITHUB_RUN_ID', '')})"
    )
    r = review_git(
        base,
        tree,
        given_confirmations(pr),
        stack_file=stack_file,
        history_days=int(env.get("HISTORY_DAYS") or 90),
        cwd=repo,
        where=where,
    )
    return r, head, pr_state(pr)


def main(argv: list[str]) -> int:
    repo = argv[1] if len(argv) > 1 else "."
    out = Path(os.environ.get("REVIEW_DIR") or ".")
    out.mkdir(parents=True, exist_ok=True)
    head = state = ""
    try:
        r, head, state = run(repo)
    except SourceError as e:
        r = review_invalid(
            [Problem("services.yaml", 1, 1, str(e), "services.yaml must be a regular file")], "the pull request"
        )
    (out / "review.md").write_text(r.markdown, encoding="utf-8")
    (out / "comment.md").write_text(r.comment, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(r.markdown if len(r.markdown) <= SUMMARY_LIMIT else r.comment)
    output = os.environ.get("GITHUB_OUTPUT")
    if output and head:
        with open(output, "a", encoding="utf-8") as f:
            f.write(f"head={head}\nstate={state}\n")
    verdict = "passes" if r.ok else "fails"
    print(f"review of {head[:12] or 'the pull request'}: {verdict} (the review is in the job summary)")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
