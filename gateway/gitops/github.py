"""The repository the catalog lives in, through githubkit (a client generated from GitHub's OpenAPI description):
each call the console's actions make, as a plain async function over one `Repo`.

Identity: a GitHub App (its JWT finds the repository's installation and checks its permissions; each installation
token is asked for the one repository and permissions.TOKEN only), or a fine-grained personal access token as the
documented fallback. githubkit is imported only when the feature is configured.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx

from ..errors import Conflict, GitHubUnavailable
from . import permissions

if TYPE_CHECKING:
    from githubkit_schemas.latest.types import AppPermissionsType

log = logging.getLogger("gateway.gitops")
TIMEOUT_S = 15.0


class SetupError(Exception):
    """The configured GitHub identity cannot be used (wrong permissions, not installed, unreachable)."""


@dataclass
class Repo:
    gh: Any  # githubkit.GitHub, authenticated as the installation (or the token)
    owner: str
    name: str
    base: str  # the branch pull requests target (main)
    path: str  # services.yaml's path in the repository
    author: str  # the login our pull requests are opened by ("<app slug>[bot]" or the token's user)
    can_read_checks: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _client(auth: Any, api_url: str, transport: httpx.AsyncBaseTransport | None, cache: Any):
    from githubkit import GitHub

    return GitHub(
        auth,
        base_url=api_url,
        cache_strategy=cache,  # this gateway's own (githubkit's default is one per process, shared)
        timeout=TIMEOUT_S,
        auto_retry=False,  # a console request never sleeps on GitHub's rate limit: it answers at once
        http_cache=False,
        user_agent="modelsvc-console",
        async_transport=transport,
    )


def _failed(what: str, e: Exception) -> GitHubUnavailable:
    status = getattr(getattr(e, "response", None), "status_code", None)
    detail = f"HTTP {status}" if status else type(e).__name__
    log.warning("GitHub call failed: %s: %s (%r)", what, detail, e)
    return GitHubUnavailable(f"GitHub refused or failed to {what} ({detail}); nothing was changed, retry later")


def _status(e: Exception) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


async def connect(
    *,
    repo: str,
    base: str,
    path: str,
    api_url: str,
    app_id: str | None,
    app_key: str | None,
    token: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Repo:
    """Check the identity (least privilege) and return the repository handle. Raises SetupError."""
    from githubkit import AppAuthStrategy, AppInstallationAuthStrategy
    from githubkit.cache import MemCacheStrategy
    from githubkit.exception import GitHubException

    owner, _, name = repo.partition("/")
    cache = MemCacheStrategy()  # the JWT and the installation token, until they expire
    if app_id and app_key:
        app = _client(AppAuthStrategy(app_id, app_key), api_url, transport, cache)
        try:
            inst = (await app.rest.apps.async_get_repo_installation(owner, name)).json()
            slug = (await app.rest.apps.async_get_authenticated()).json()["slug"]
        except GitHubException as e:
            raise SetupError(
                f"the GitHub App {app_id} is not installed on {repo} or cannot be reached ({_status(e) or e!r})"
            ) from None
        problems, token_permissions = permissions.check_installation(
            inst.get("permissions") or {}, inst.get("repository_selection", "")
        )
        if problems:
            raise SetupError("; ".join(problems))
        # check_installation's names and levels (contents, pull_requests, checks: read/write) are keys of GitHub's
        # app-permissions object, which githubkit types as a TypedDict of every permission
        asked = cast("AppPermissionsType", token_permissions)
        auth = AppInstallationAuthStrategy(app_id, app_key, inst["id"], repositories=[name], permissions=asked)
        return Repo(
            _client(auth, api_url, transport, cache),
            owner,
            name,
            base,
            path,
            f"{slug}[bot]",
            can_read_checks="checks" in token_permissions,
        )
    if token:
        problems = permissions.check_token(token)
        if problems:
            raise SetupError("; ".join(problems))
        gh = _client(token, api_url, transport, cache)
        try:
            login = (await gh.rest.users.async_get_authenticated()).json()["login"]
            await gh.rest.repos.async_get(owner, name)
        except GitHubException as e:
            raise SetupError(f"the GitHub token cannot read {repo} ({_status(e) or e!r})") from None
        # GitHub offers fine-grained tokens no Checks permission: the gate's conclusion stays on the pull request
        return Repo(gh, owner, name, base, path, login, can_read_checks=False)
    raise SetupError("no GitHub identity: set the App id and private key file, or a token file")


# -- what an action does ----------------------------------------------------------------------------------------------


async def base_head(r: Repo) -> str:
    """The commit at the head of the base branch."""
    from githubkit.exception import GitHubException

    try:
        return (await r.gh.rest.git.async_get_ref(r.owner, r.name, f"heads/{r.base}")).json()["object"]["sha"]
    except GitHubException as e:
        raise _failed(f"read the head of {r.base}", e) from None


async def read_catalog(r: Repo, sha: str) -> tuple[str, str]:
    """(text, blob sha) of services.yaml at that commit; only a regular file (never a symlink or a directory)."""
    from githubkit.exception import GitHubException

    try:
        data = (await r.gh.rest.repos.async_get_content(r.owner, r.name, r.path, ref=sha)).json()
    except GitHubException as e:
        raise _failed(f"read {r.path}", e) from None
    if not isinstance(data, dict) or data.get("type") != "file" or data.get("encoding") != "base64":
        raise GitHubUnavailable(f"{r.path} on {r.base} is not a regular file; the console edits only a regular file")
    try:
        text = base64.b64decode(data["content"]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise GitHubUnavailable(f"{r.path} on {r.base} is not UTF-8 text") from None
    return text, data["sha"]


async def open_pull_request(
    r: Repo, *, base_sha: str, blob_sha: str, branch: str, text: str, title: str, body: str, message: str
) -> dict[str, Any]:
    """A branch from the base's head, one commit that replaces services.yaml, the pull request. Returns the pull
    request (GitHub's JSON). If a step fails after the branch exists, the branch is deleted again (best effort), so
    a refused action leaves nothing behind."""
    from githubkit.exception import GitHubException

    try:
        await r.gh.rest.git.async_create_ref(r.owner, r.name, ref=f"refs/heads/{branch}", sha=base_sha)
    except GitHubException as e:
        raise _failed("create the branch", e) from None
    try:
        await r.gh.rest.repos.async_create_or_update_file_contents(
            r.owner,
            r.name,
            r.path,
            message=message,
            content=base64.b64encode(text.encode("utf-8")).decode("ascii"),
            sha=blob_sha,  # GitHub refuses the commit if the file changed since we read it
            branch=branch,
        )
        pr = await r.gh.rest.pulls.async_create(r.owner, r.name, title=title, head=branch, base=r.base, body=body)
    except GitHubException as e:
        await _delete_branch(r, branch)
        if _status(e) == 409:
            raise Conflict(
                f"{r.path} changed on {r.base} while the action was prepared; nothing was opened, try again"
            ) from None
        raise _failed("open the pull request", e) from None
    return pr.json()


async def _delete_branch(r: Repo, branch: str) -> None:
    from githubkit.exception import GitHubException

    try:
        await r.gh.rest.git.async_delete_ref(r.owner, r.name, f"heads/{branch}")
    except GitHubException as e:
        log.warning("could not delete the branch %s of a refused action (%r); delete it by hand", branch, e)


# -- follow-through ---------------------------------------------------------------------------------------------------


async def pulls(r: Repo, state: str, per_page: int) -> list[dict[str, Any]]:
    from githubkit.exception import GitHubException

    try:
        resp = await r.gh.rest.pulls.async_list(
            r.owner, r.name, state=state, base=r.base, sort="updated", direction="desc", per_page=per_page
        )
    except GitHubException as e:
        raise _failed("list pull requests", e) from None
    return resp.json()


async def gate(r: Repo, sha: str, check_name: str) -> dict[str, Any] | None:
    """The latest `check_name` check run on the commit ({status, conclusion, url}), or None if there is none or the
    identity may not read checks."""
    from githubkit.exception import GitHubException

    if not r.can_read_checks:
        return None
    try:
        runs = (
            await r.gh.rest.checks.async_list_for_ref(r.owner, r.name, sha, check_name=check_name, filter_="latest")
        ).json()["check_runs"]
    except GitHubException as e:
        raise _failed("read the gate's check run", e) from None
    if not runs:
        return None
    run = runs[0]
    return {"status": run["status"], "conclusion": run.get("conclusion"), "url": run.get("html_url")}


async def comments(r: Repo, number: int) -> list[dict[str, Any]]:
    from githubkit.exception import GitHubException

    try:
        return (await r.gh.rest.issues.async_list_comments(r.owner, r.name, number, per_page=100)).json()
    except GitHubException as e:
        raise _failed("read the review comment", e) from None
