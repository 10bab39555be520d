#!/usr/bin/env python3
"""The one check branch protection requires: `modelsvc gate`, green only when the review passed AND the code checks
of the pull request's head commit succeeded in the expected workflow.

    python3 .github/scripts/gate.py

It runs in `review.yml` (pull_request_target: the default branch's definitions and code, nothing of the pull
request) and publishes its verdict as a check run on the head commit, created with CHECK_TOKEN: the token of the
gate's GitHub App when it is set up, so that branch protection can require `modelsvc gate` *from that App* (any
workflow can create a check run of any name with its own token; only the holder of the App's key can create one as
the App, and that key lives in the `gate` environment, which admits the default branch only).

A code check counts only from the expected source, never by its name alone: a check run named like a required one
is accepted when it was created by GitHub Actions for a run of CHECKS_WORKFLOW (the workflow file path), triggered by
`pull_request`, for this very head commit. Check runs of the same name from any other workflow, app or commit are
ignored and listed (a forged `tests` job in a workflow the pull request adds, a status posted through the statuses
API). When another open pull request shares this head commit (the same branch into another base, whose
`pull_request` runs use that merge's definitions), the code checks cannot be attributed and the gate fails. When
the pull request changes the definitions those checks ran (CHECKS_WORKFLOW itself or DEFINITIONS, e.g. the local
actions it uses: `pull_request` runs the merge commit's files), they count only with an approving review of this
head commit by someone other than its author.

A skipped or missing check is never success. The gate waits while the code checks are queued or running (a label
added during the tests re-evaluates the gate without re-running them, and can never turn it green on its own).

Environment: REVIEW_RESULT (needs.review.result), REVIEW_STATE (needs.review.outputs.state: the digest of the head,
description and labels the review saw; github_api.pr_state), HEAD_SHA, PR_NUMBER, REQUIRED_CHECKS (comma-separated check
names), CHECKS_WORKFLOW (default .github/workflows/pull-request.yml), DEFINITIONS (comma-separated path prefixes,
default .github/actions/), GITHUB_TOKEN (checks, actions and pull-requests read), CHECK_TOKEN (checks: write;
default GITHUB_TOKEN), CHECK_NAME (default `modelsvc gate`), DETAILS_URL, GITHUB_REPOSITORY, GITHUB_API_URL,
DEFAULT_BRANCH (default main), GATE_WAIT_S (default 3600), GATE_POLL_S (default 20). Standard library only.
"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from github_api import Api, pr_state

Json = dict[str, Any]
ACTIONS_APP = "github-actions"
TRUSTED_REVIEWERS = ("OWNER", "MEMBER", "COLLABORATOR")


def _plain(text: object) -> str:
    """A value from the API as it may appear in the check run's summary and the log (no Markdown, no commands)."""
    return re.sub(r"[^A-Za-z0-9._/@ -]", "?", str(text))[:120]


def workflow_path(run: Json, repo: str) -> tuple[str, str | None]:
    """(path in the repository, ref or None) of a workflow run's `path`, which is `.github/workflows/x.yml` for a
    run of the repository's own file and `owner/repo/.github/workflows/x.yml@ref` for one from elsewhere (a
    required-workflow ruleset)."""
    path, _, ref = str(run.get("path") or "").partition("@")
    if path.startswith(repo + "/"):
        path = path[len(repo) + 1 :]
    return path, ref or None


@dataclass
class Verdict:
    accepted: Json | None = None  # the check run that counts
    ignored: list[str] = field(default_factory=list)  # why the others do not


def select(
    runs: list[Json],
    name: str,
    head: str,
    repo: str,
    expected_workflow: str,
    workflow_of: Callable[[int], Json | None],
    default_branch: str = "main",
) -> Verdict:
    """The newest check run called `name` that comes from the expected source; every other one, and why not."""
    v = Verdict()
    candidates = []
    for run in runs:
        if run.get("name") != name:
            continue
        rid = run.get("id")
        app = (run.get("app") or {}).get("slug")
        suite = (run.get("check_suite") or {}).get("id")
        if run.get("head_sha") != head:
            v.ignored.append(f"check run {rid}: another commit")
            continue
        if app != ACTIONS_APP:
            v.ignored.append(f"check run {rid}: created by app {_plain(app)}, not by GitHub Actions")
            continue
        wf = workflow_of(suite) if isinstance(suite, int) else None
        if wf is None:
            v.ignored.append(f"check run {rid}: no workflow run behind it")
            continue
        path, ref = workflow_path(wf, repo)
        if path != expected_workflow or ref not in (None, default_branch, f"refs/heads/{default_branch}"):
            v.ignored.append(f"check run {rid}: from workflow {_plain(wf.get('path'))}, not {expected_workflow}")
            continue
        if wf.get("event") != "pull_request" or wf.get("head_sha") != head:
            v.ignored.append(f"check run {rid}: a {_plain(wf.get('event'))} run of another commit")
            continue
        candidates.append(run)
    if candidates:
        v.accepted = max(candidates, key=lambda r: (r.get("started_at") or "", r.get("id") or 0))
    return v


def definitions_changed(files: list[Json], expected_workflow: str, prefixes: list[str]) -> list[str]:
    """The files of the pull request that change the definitions the code checks run with."""
    out = []
    for f in files:
        for name in (f.get("filename"), f.get("previous_filename")):
            if isinstance(name, str) and (name == expected_workflow or any(name.startswith(p) for p in prefixes)):
                out.append(name)
    return sorted(set(out))


def approved_by_another(reviews: list[Json], head: str, author: str) -> str | None:
    """The login of someone other than the author whose latest review approves this head commit, if any."""
    latest: dict[str, Json] = {}
    for r in reviews:
        login = (r.get("user") or {}).get("login")
        if login and r.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = r  # the API lists reviews oldest first
    for login, r in latest.items():
        ok = r.get("state") == "APPROVED" and r.get("commit_id") == head
        if ok and login != author and r.get("author_association") in TRUSTED_REVIEWERS:
            return login
    return None


class Gate:
    def __init__(self, env: os._Environ[str] | dict[str, str]) -> None:
        self.env = env
        self.read = Api(env["GITHUB_TOKEN"], agent="modelsvc-gate")
        self.write = Api(env.get("CHECK_TOKEN") or env["GITHUB_TOKEN"], agent="modelsvc-gate")
        self.repo = self.read.repo
        self.head = env["HEAD_SHA"]
        self.number = env["PR_NUMBER"]
        self.workflow = env.get("CHECKS_WORKFLOW") or ".github/workflows/pull-request.yml"
        self.prefixes = [p.strip() for p in (env.get("DEFINITIONS") or ".github/actions/").split(",") if p.strip()]
        self.default_branch = env.get("DEFAULT_BRANCH") or "main"
        self.names = [n.strip() for n in env.get("REQUIRED_CHECKS", "").split(",") if n.strip()]
        self._suites: dict[int, Json | None] = {}
        self.check_id: int | None = None

    def workflow_of(self, suite: int) -> Json | None:
        if suite not in self._suites:
            runs = self.read.get(f"/repos/{{repo}}/actions/runs?check_suite_id={suite}").get("workflow_runs") or []
            self._suites[suite] = runs[0] if runs else None
        return self._suites[suite]

    def publish(self, status: str, conclusion: str | None = None, summary: str = "") -> None:
        name = self.env.get("CHECK_NAME") or "modelsvc gate"
        body: Json = {"name": name, "head_sha": self.head, "status": status}
        if self.env.get("DETAILS_URL"):
            body["details_url"] = self.env["DETAILS_URL"]
        if conclusion:
            body |= {"conclusion": conclusion, "output": {"title": f"{name}: {conclusion}", "summary": summary}}
        if self.check_id is None:
            self.check_id = self.write.call("POST", "/repos/{repo}/check-runs", body)[0]["id"]
        else:
            self.write.call("PATCH", f"/repos/{{repo}}/check-runs/{self.check_id}", body)

    def fail(self, why: str) -> int:
        print(f"::error title=gate::{why}")
        self.publish("completed", "failure", why)
        return 1

    def run(self) -> int:
        self.publish("in_progress")
        result = self.env.get("REVIEW_RESULT")
        if result != "success":
            return self.fail(f"the review did not pass ({_plain(result or 'not run')}): see its comment or job summary")
        pr = self.read.get(f"/repos/{{repo}}/pulls/{self.number}")
        if pr["head"]["sha"] != self.head:
            return self.fail(f"the pull request moved on to {pr['head']['sha'][:12]}: its own run decides")
        if pr_state(pr) != self.env.get("REVIEW_STATE"):
            return self.fail(
                "the pull request's description or labels changed since this run's review (a re-run reuses the "
                "old review's result): the run for the newest change decides"
            )
        others = [  # the pull requests whose head is this commit (GitHub's list for a commit)
            p["number"]
            for p in self.read.pages(f"/repos/{{repo}}/commits/{self.head}/pulls?per_page=100")
            if p.get("state") == "open"
            and (p.get("head") or {}).get("sha") == self.head
            and str(p["number"]) != self.number
        ]
        if others:
            return self.fail(
                f"open pull request(s) {', '.join(f'#{n}' for n in others)} share head {self.head[:12]}: their "
                "`pull_request` runs land check runs on the same commit, so the code checks cannot be attributed"
            )
        changed = definitions_changed(
            self.read.pages(f"/repos/{{repo}}/pulls/{self.number}/files?per_page=100"), self.workflow, self.prefixes
        )
        if changed:
            files = ", ".join(map(_plain, changed))
            reviews = self.read.pages(f"/repos/{{repo}}/pulls/{self.number}/reviews?per_page=100")
            approver = approved_by_another(reviews, self.head, pr["user"]["login"])
            if approver is None:
                return self.fail(
                    f"this pull request changes the definitions the code checks run with ({files}): they count "
                    f"only once someone other than the author approves {self.head[:12]}; then re-run this job"
                )
            print(f"definitions changed ({files}); {self.head[:12]} approved by {_plain(approver)}")
        return self.wait()

    def wait(self) -> int:
        deadline = time.monotonic() + float(self.env.get("GATE_WAIT_S", "3600"))
        poll = float(self.env.get("GATE_POLL_S", "20"))
        pending = list(self.names)
        lines = []
        while pending:
            for name in list(pending):
                runs = self.read.pages(
                    f"/repos/{{repo}}/commits/{self.head}/check-runs?check_name={_quote(name)}&filter=all&per_page=100",
                    key="check_runs",
                )
                v = select(runs, name, self.head, self.repo, self.workflow, self.workflow_of, self.default_branch)
                for why in v.ignored:
                    print(f"::warning title=gate::'{_plain(name)}': ignored {why}")
                run = v.accepted
                if run is None or run.get("status") != "completed":
                    continue
                if run.get("conclusion") != "success":
                    return self.fail(
                        f"check '{_plain(name)}' of {self.head[:12]} concluded {_plain(run.get('conclusion'))}"
                    )
                lines.append(f"- {_plain(name)}: success ({self.workflow}, check run {run.get('id')})")
                print(f"{name}: success")
                pending.remove(name)
            if pending:
                if time.monotonic() >= deadline:
                    return self.fail(
                        f"checks not finished on {self.head[:12]}: {', '.join(pending)} (re-run this job once they are)"
                    )
                time.sleep(poll)
        self.publish("completed", "success", "The review passed and every code check succeeded:\n" + "\n".join(lines))
        print("gate: review passed and every code check succeeded")
        return 0


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def main() -> int:
    return Gate(os.environ).run()


if __name__ == "__main__":
    sys.exit(main())
