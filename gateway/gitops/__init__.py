"""The console's actions as pull requests: Deploy, Scale and Delete each open a reviewed pull request that edits
services.yaml on GitHub, and the console follows it through review, merge and deploy (docs/console.md).

Off unless `--github-repo` is set (then the console shows the commands instead). The GitHub identity is checked at
start-up and again every RECHECK_S until it passes (least privilege: gitops/permissions.py); until then the actions
answer 503 with the reason, and the rest of the gateway serves as usual.

* proposal.py: action → the edit (modelsvc.catalog.edit), the review's confirmations (modelsvc.review), the
  description; pure.
* github.py: the calls, through githubkit.
* here: the flow (owner scope, one pending change per service, the per-owner rate limit, logging and metering) and
  the pending pull requests' status, cached so that polling consoles do not spend GitHub's rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sanic import Sanic

from modelsvc.catalog import Catalog
from modelsvc.review import MARKER as REVIEW_MARKER

from ..errors import ActionsUnavailable, Conflict, GatewayError, GitHubUnavailable, RateLimited
from ..limits import STORE_ERRORS
from . import github
from .proposal import (
    Proposal,
    Who,
    branch_owner,
    is_live,
    own_service,
    parse_marker,
    propose_delete,
    propose_deploy,
    propose_scale,
)

log = logging.getLogger("gateway.gitops")
RECHECK_S = 60.0  # a refused or unreachable identity is checked again this often (a fixed App needs no restart)
CLOSED_SHOWN_S = 86400  # a pull request closed without merging stays visible (not blocking) for a day
REVIEW_AUTHOR = "github-actions[bot]"  # the review job posts its sticky comment with the workflow's GITHUB_TOKEN


@dataclass
class _Cached:
    at: float
    value: Any


class GitOps:
    def __init__(self, settings: Any, registry: CollectorRegistry, store: Any, transport: Any = None) -> None:
        self.settings = settings
        self.store = store  # the runtime's limit store (aiocache: memory, or Redis shared by every replica)
        self.transport = transport  # tests: an httpx transport to the fake GitHub
        self.repo: github.Repo | None = None
        self.problem = "checking the GitHub access"
        self._task: asyncio.Task | None = None
        self._list: _Cached | None = None
        self._list_lock = asyncio.Lock()
        self._details: dict[int, _Cached] = {}
        self._opened: dict[int, dict[str, Any]] = {}  # opened by this replica, shown before GitHub lists them
        self._live: set[int] = set()  # merged pull requests seen live
        self._service_locks: dict[str, asyncio.Lock] = {}
        self.actions = Counter(
            "modelsvc_console_actions",
            "Console actions (pull requests) by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )

    # -- start-up: the identity, checked until it passes -------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._connect_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _secrets(self) -> tuple[str | None, str | None]:
        s = self.settings
        key = Path(s.github_app_key_file).read_text() if s.github_app_key_file else None
        token = Path(s.github_token_file).read_text().strip() if s.github_token_file else None
        return key, token

    async def connect_once(self) -> bool:
        s = self.settings
        try:
            key, token = self._secrets()
            self.repo = await github.connect(
                repo=s.github_repo,
                base=s.github_base,
                path=s.github_catalog_path,
                api_url=s.github_api_url,
                app_id=s.github_app_id,
                app_key=key,
                token=token,
                transport=self.transport,
            )
        except (github.SetupError, OSError) as e:
            self.problem = str(e) if isinstance(e, github.SetupError) else f"cannot read a GitHub secret file: {e}"
            log.error("console actions off: %s (checked again in %.0fs)", self.problem, RECHECK_S)
            return False
        self.problem = ""
        log.info(
            "console actions on: pull requests on %s (base %s, file %s) as %s%s",
            self.repo.full_name,
            self.repo.base,
            self.repo.path,
            self.repo.author,
            "" if self.repo.can_read_checks else "; the gate's conclusion is not readable (no Checks: read)",
        )
        return True

    async def _connect_loop(self) -> None:
        while not await self.connect_once():
            await asyncio.sleep(RECHECK_S)

    def ready(self) -> github.Repo:
        if self.repo is None:
            raise ActionsUnavailable(f"the console's actions are unavailable: {self.problem}")
        return self.repo

    # -- actions ----------------------------------------------------------------------------------------------------
    async def _rate_limit(self, owner: str) -> None:
        limit = self.settings.console_actions_per_minute
        now = time.time()
        window = int(now // 60)
        key = f"modelsvc:console-actions:{owner}:{window}"
        try:
            used = await self.store.increment(key, 1)
            if used == 1:
                await self.store.expire(key, 120)
        except STORE_ERRORS as e:  # like the API's per-minute windows: a Redis outage does not stop the console
            log.warning("limit store unreachable (%s): console actions are not rate-limited", type(e).__name__)
            return
        if used > limit:
            reset = math.ceil((window + 1) * 60 - now)
            raise RateLimited(
                f"at most {limit} console actions per minute for this owner; retry in {reset}s",
                headers={"retry-after": str(reset)},
            )

    async def act(self, who: Who, action: str, catalog: Catalog, subject: str | None, form: dict[str, Any]) -> dict:
        """Open the pull request of one action; every outcome is logged and counted."""
        t0 = time.monotonic()
        try:
            result = await self._act(who, action, catalog, subject, form)
        except GatewayError as e:
            self.actions.labels(action, e.code or type(e).__name__).inc()
            log.info(
                "console %s %s by owner %s key %s refused: %s %s",
                action,
                subject or repr(str(form.get("name", ""))[:64]),  # typed text: repr, so it cannot forge a line
                who.owner,
                who.key_id,
                e.status,
                e.code,
            )
            raise
        self.actions.labels(action, "opened").inc()
        log.info(
            "console %s %s by owner %s key %s: pull request #%s %s (%.0f ms)",
            action,
            result["access_name"],
            who.owner,
            who.key_id,
            result["number"],
            result["url"],
            (time.monotonic() - t0) * 1000,
        )
        return result

    async def _act(self, who: Who, action: str, catalog: Catalog, subject: str | None, form: dict[str, Any]) -> dict:
        repo = self.ready()
        if subject is not None:  # scale / delete: the owner's own service, as the gateway knows it (else 404)
            own_service(catalog, subject, who.owner)
        await self._rate_limit(who.owner)
        lock_key = subject or f"{who.owner}/new"
        lock = self._service_locks.setdefault(lock_key, asyncio.Lock())
        async with lock:  # two clicks on one replica open one pull request
            sha = await github.base_head(repo)
            text, blob = await github.read_catalog(repo, sha)
            path = repo.path
            if action == "deploy":
                p = propose_deploy(text, path, who, form)
            elif action == "scale":
                assert subject is not None
                p = propose_scale(text, path, who, subject, form)
            else:
                assert subject is not None
                p = propose_delete(text, path, who, subject, form.get("confirm", ""))
            await self._refuse_second(p, catalog)
            pr = await github.open_pull_request(
                repo,
                base_sha=sha,
                blob_sha=blob,
                branch=p.branch,
                text=p.text,
                title=p.title,
                body=p.body,
                message=f"{p.title}\n\nRequested in the modelsvc console by owner {who.owner} (key {who.key_id}).",
            )
            entry = self._entry(pr, p.marker(), opened=True)
            self._opened[pr["number"]] = entry
            return {**entry, **_stage(entry), "blocking": True, "confirmations": list(p.confirmations)}

    async def _refuse_second(self, p: Proposal, catalog: Catalog) -> None:
        for e in await self.pending(catalog, force=True):
            if not e["blocking"]:
                continue
            same = e["service_id"] == p.service_id or (p.action == "deploy" and e["access_name"] == p.access_name)
            if same:
                raise Conflict(
                    f"'{e['access_name']}' already has a pending change: pull request #{e['number']} ({e['title']}, "
                    f"{e['stage_text']}). Wait until it is live, or close it on GitHub, before asking for another."
                )

    # -- follow-through ---------------------------------------------------------------------------------------------
    def _entry(self, pr: dict[str, Any], marker: dict[str, Any], opened: bool = False) -> dict[str, Any]:
        state = "open" if pr["state"] == "open" else ("merged" if pr.get("merged_at") else "closed")
        return {
            "number": pr["number"],
            "url": pr["html_url"],
            "title": pr["title"],
            "action": marker.get("action"),
            "access_name": marker.get("access_name"),
            "service_id": marker.get("service_id"),
            "owner": marker.get("owner"),
            "expect": marker.get("expect") or {},
            "state": state,
            "head_sha": pr["head"]["sha"],
            "created_at": pr.get("created_at"),
            "merged_at": pr.get("merged_at"),
            "closed_at": pr.get("closed_at"),
            "updated_at": pr.get("updated_at"),
            "listed_at": time.time() if opened else None,
        }

    def _ours(self, pr: dict[str, Any]) -> dict[str, Any] | None:
        """A pull request this console opened (its author is our identity, its branch ours in this repository),
        with the marker its description carries, bound to the branch's owner and service id."""
        repo = self.repo
        assert repo is not None
        head = pr.get("head") or {}
        found = branch_owner(head.get("ref") or "")
        if found is None or (pr.get("user") or {}).get("login") != repo.author:
            return None
        if ((head.get("repo") or {}).get("full_name") or "") != repo.full_name:
            return None
        marker = parse_marker(pr.get("body"))
        if not marker or (marker.get("owner"), marker.get("service_id")) != found:
            return None
        return self._entry(pr, marker)

    async def _listed(self, force: bool) -> list[dict[str, Any]]:
        repo = self.ready()
        ttl = self.settings.github_poll_s
        async with self._list_lock:  # one read of GitHub at a time, whoever polls
            if self._list is not None and not force and time.monotonic() - self._list.at < ttl:
                return self._list.value
            found: dict[int, dict[str, Any]] = {}
            for state, n in (("open", 100), ("closed", 30)):
                for pr in await github.pulls(repo, state, n):
                    entry = self._ours(pr)
                    if entry is not None:
                        found[entry["number"]] = entry
            for number, entry in list(self._opened.items()):
                if number in found or time.time() - entry["listed_at"] > 600:
                    self._opened.pop(number)  # GitHub lists it now (or it was closed long ago)
                else:
                    found[number] = entry
            self._list = _Cached(time.monotonic(), sorted(found.values(), key=lambda e: -e["number"]))
            return self._list.value

    async def pending(self, catalog: Catalog, force: bool = False) -> list[dict[str, Any]]:
        """Every pull request of this console that is not live yet: open ones, merged ones the gateway's catalog
        does not show yet, and (not blocking) ones closed without merging in the last day. A merged one is live
        once the catalog holds what it asked for, or once a later merged one of the same service supersedes it;
        once seen live it stays so (a later change of the same service does not bring it back)."""
        out = []
        now = time.time()
        entries = await self._listed(force)
        latest_merge: dict[str, str] = {}
        for e in entries:
            if e["state"] == "merged" and e["merged_at"] > latest_merge.get(e["service_id"], ""):
                latest_merge[e["service_id"]] = e["merged_at"]
        for e in entries:
            if e["state"] == "merged":
                superseded = e["merged_at"] < latest_merge[e["service_id"]]
                if e["number"] in self._live or superseded or is_live(e, catalog):
                    self._live.add(e["number"])
                    continue
            ended = e["closed_at"] if e["state"] != "open" else None
            if ended and now - _epoch(ended) > CLOSED_SHOWN_S:
                continue
            out.append({**e, **_stage(e), "blocking": e["state"] != "closed"})
        return out

    async def details(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The review result of an open pull request: the gate's conclusion and the review comment's summary
        (cached per pull request for the poll interval)."""
        repo = self.ready()
        key = entry["number"]
        cached = self._details.get(key)
        if cached and cached.value["head_sha"] == entry["head_sha"]:
            if time.monotonic() - cached.at < self.settings.github_poll_s:
                return cached.value
        value: dict[str, Any] = {"head_sha": entry["head_sha"], "gate_visible": repo.can_read_checks}
        try:
            value["gate"] = await github.gate(repo, entry["head_sha"], self.settings.github_gate_check)
            value["review"] = None
            for c in await github.comments(repo, entry["number"]):
                if (c.get("user") or {}).get("login") == REVIEW_AUTHOR and REVIEW_MARKER in (c.get("body") or ""):
                    value["review"] = _result_line(c["body"])
        except GitHubUnavailable as e:  # the panel still shows the pull request; its status says why no result
            return {**value, "gate": None, "review": None, "details_error": e.message}
        self._details[key] = _Cached(time.monotonic(), value)
        return value


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _stage(e: dict[str, Any]) -> dict[str, str]:
    if e["state"] == "open":
        return {"stage": "review", "stage_text": "open: in review, waiting for the gate and an approval to merge"}
    if e["state"] == "merged":
        return {
            "stage": "deploying",
            "stage_text": "merged: the deploy plans it, an approver applies the plan; live once the gateway loads "
            "the new catalog",
        }
    return {"stage": "closed", "stage_text": "closed without merging: nothing changed"}


def _result_line(body: str) -> str | None:
    """The review comment's result ("Result: ✅ passes", "Result: ❌ blocked — …") as plain text."""
    for line in body.splitlines():
        if line.startswith("**Result:"):
            return line.replace("**", "").strip()
    return None


def setup_gitops(app: Sanic, transport: Any = None) -> None:
    """The actions, when `--github-repo` is set; app.ctx.gitops is None otherwise (the console shows commands)."""

    @app.before_server_start
    async def start_gitops(app: Sanic) -> None:
        settings = app.ctx.settings
        app.ctx.gitops = None
        if not settings.github_repo:
            return
        rt = app.ctx.runtime
        gitops = GitOps(settings, rt.usage.metrics.registry, rt.limiter.store, transport)
        gitops.start()
        app.ctx.gitops = gitops

    @app.after_server_stop
    async def stop_gitops(app: Sanic) -> None:
        if app.ctx.gitops is not None:
            await app.ctx.gitops.close()
