#!/usr/bin/env python3
"""Warn when a repository setting the GitOps trust model relies on is off (docs/changing-a-service.md).

    python3 .github/scripts/settings_check.py

Reads the rules in force on the default branch, `GET /repos/{repo}/rules/branches/{branch}` (rulesets: readable with
`contents: read`), and, when SETTINGS_TOKEN (a token with administration: read) is set, the classic branch
protection, `GET /repos/{repo}/branches/{branch}/protection`. Prints one `::warning` per setting that is off or
cannot be read: an approval that a new push does not dismiss, or that the last pusher can give, lets a reviewed
change be swapped for an unreviewed one; a gate check required by name from any source can be forged by any
workflow. Never fails the job: settings are the repository admin's, the warning is the deploy's to give.

Environment: GITHUB_TOKEN, SETTINGS_TOKEN (optional), GITHUB_REPOSITORY, GITHUB_API_URL, BRANCH (default main),
GATE_CHECK (default `modelsvc gate`). Standard library only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from github_api import Api, HTTPError


@dataclass
class Settings:
    source: str
    reviews: int = 0
    dismiss_stale: bool = False
    last_push_approval: bool = False
    code_owners: bool = False
    gate_required: bool = False
    gate_app: int | None = None  # the app the gate check must come from; None: any source
    strict: bool = False


def from_rules(rules: list[dict[str, Any]], gate: str) -> Settings | None:
    """Settings from the rules a branch is subject to (rulesets), or None when none apply."""
    if not rules:
        return None
    s = Settings("rulesets")
    for rule in rules:
        p = rule.get("parameters") or {}
        if rule.get("type") == "pull_request":
            s.reviews = max(s.reviews, int(p.get("required_approving_review_count") or 0))
            s.dismiss_stale |= bool(p.get("dismiss_stale_reviews_on_push"))
            s.last_push_approval |= bool(p.get("require_last_push_approval"))
            s.code_owners |= bool(p.get("require_code_owner_review"))
        elif rule.get("type") == "required_status_checks":
            s.strict |= bool(p.get("strict_required_status_checks_policy"))
            for check in p.get("required_status_checks") or []:
                if check.get("context") == gate:
                    s.gate_required, s.gate_app = True, check.get("integration_id")
    return s


def from_protection(protection: dict[str, Any], gate: str) -> Settings:
    """Settings from classic branch protection."""
    s = Settings("branch protection")
    reviews = protection.get("required_pull_request_reviews") or {}
    s.reviews = int(reviews.get("required_approving_review_count") or 0)
    s.dismiss_stale = bool(reviews.get("dismiss_stale_reviews"))
    s.last_push_approval = bool(reviews.get("require_last_push_approval"))
    s.code_owners = bool(reviews.get("require_code_owner_reviews"))
    checks = protection.get("required_status_checks") or {}
    s.strict = bool(checks.get("strict"))
    for check in checks.get("checks") or []:
        if check.get("context") == gate:
            s.gate_required, s.gate_app = True, check.get("app_id")
    if not s.gate_required and gate in (checks.get("contexts") or []):
        s.gate_required = True
    return s


def combined(found: list[Settings]) -> Settings:
    """Rulesets and branch protection both apply: a setting is on when either turns it on."""
    s = Settings(" + ".join(f.source for f in found))
    for f in found:
        s.reviews = max(s.reviews, f.reviews)
        s.dismiss_stale |= f.dismiss_stale
        s.last_push_approval |= f.last_push_approval
        s.code_owners |= f.code_owners
        s.strict |= f.strict
        if f.gate_required and (not s.gate_required or s.gate_app in (None, -1)):
            s.gate_required, s.gate_app = True, f.gate_app
    return s


def warnings(s: Settings, gate: str) -> list[str]:
    out = []
    if s.reviews < 1:
        out.append("no approving review is required before merging")
    if not s.dismiss_stale:
        out.append('"dismiss stale pull request approvals when new commits are pushed" is off')
    if not s.last_push_approval:
        out.append('"require approval of the most recent reviewable push" is off')
    if not s.code_owners:
        out.append('"require review from Code Owners" is off')
    if not s.gate_required:
        out.append(f"the check {gate!r} is not required")
    elif s.gate_app is None or s.gate_app == -1:
        out.append(f"the check {gate!r} is required from any source: require it from the gate's GitHub App")
    if not s.strict:
        out.append('"require branches to be up to date before merging" is off')
    return [f"{s.source}: {w}" for w in out]


def main() -> int:
    env = os.environ
    branch = env.get("BRANCH") or "main"
    gate = env.get("GATE_CHECK") or "modelsvc gate"
    found: list[Settings] = []
    try:
        rules = from_rules(
            Api(env["GITHUB_TOKEN"]).pages(f"/repos/{{repo}}/rules/branches/{branch}?per_page=100"), gate
        )
        if rules:
            found.append(rules)
    except HTTPError as e:
        print(f"::warning title=repository settings::cannot read the rules of {branch} (HTTP {e.code})")
    if env.get("SETTINGS_TOKEN"):
        try:
            found.append(
                from_protection(Api(env["SETTINGS_TOKEN"]).get(f"/repos/{{repo}}/branches/{branch}/protection"), gate)
            )
        except HTTPError as e:
            if e.code != 404:  # 404: no classic protection (the rulesets above may protect the branch)
                print(f"::warning title=repository settings::cannot read the protection of {branch} (HTTP {e.code})")
    if not found:
        print(
            f"::warning title=repository settings::no ruleset applies to {branch} and classic branch protection "
            "cannot be read (set SETTINGS_TOKEN): the approvals the trust model relies on are not checked"
        )
        return 0
    best = combined(found)
    problems = warnings(best, gate)
    for w in problems:
        print(f"::warning title=repository settings::{w} (docs/changing-a-service.md, 'Setting it up')")
    if not problems:
        print(f"{best.source} on {branch}: every setting the trust model relies on is on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
