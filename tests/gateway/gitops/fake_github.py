"""A fake GitHub (api.github.com) holding one repository: branches, files, pull requests, comments, check runs, and
a GitHub App installed on it. A stand-in for tests, never shipped.

Every request is checked against GitHub's published REST description (npm @octokit/openapi; tests/gateway/gitops/
octokit.py): the operation exists, every path and query parameter is declared and valid, the body matches its
schema. Every answer is built from a recorded real exchange (npm @octokit/fixtures) where one exists for the
operation (git-refs: create a reference; create-file: put a file; errors: a validation failure), else from the
description's own example for it, with this fake's state filled in, and is itself validated against the
operation's response schema. A request the description does not allow gets 500 and is kept in `violations`, so a
test fails on it.

Auth as GitHub does it: the App's JWT (RS256, iss = the App id, at most 10 minutes) for /app/... and the
repository's installation; installation tokens (ghs_...) carry the permissions and repositories asked for (a
subset of the installation's, else 422), and each call needs the permission GitHub documents for it (403 without).
Served in process (`transport()`: an httpx ASGI transport) or over HTTP (`serve()`: a thread on 127.0.0.1).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import jwt

from . import octokit

API = "https://api.github.com"
WEB = "https://github.com"
# permission each operation needs (GitHub's docs, "Fine-grained access tokens" section of each endpoint)
NEEDS = {
    ("get", "/repos/{owner}/{repo}"): ("metadata", "read"),
    ("get", "/user"): ("metadata", "read"),  # any token may read its own user
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"): ("contents", "read"),
    ("post", "/repos/{owner}/{repo}/git/refs"): ("contents", "write"),
    ("delete", "/repos/{owner}/{repo}/git/refs/{ref}"): ("contents", "write"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"): ("contents", "read"),
    ("put", "/repos/{owner}/{repo}/contents/{path}"): ("contents", "write"),
    ("post", "/repos/{owner}/{repo}/pulls"): ("pull_requests", "write"),
    ("get", "/repos/{owner}/{repo}/pulls"): ("pull_requests", "read"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"): ("checks", "read"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): ("pull_requests", "read"),
}
JWT_ROUTES = {
    ("get", "/app"),
    ("get", "/repos/{owner}/{repo}/installation"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
}
LEVEL = {"read": 1, "write": 2}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(data: str) -> str:
    return hashlib.sha1(data.encode()).hexdigest()


@dataclass
class Token:
    permissions: dict[str, str]
    repositories: list[str] | None  # None: all of the installation's
    login: str


@dataclass
class Pull:
    number: int
    title: str
    body: str
    head: str
    base: str
    login: str
    created_at: str
    state: str = "open"
    merged_at: str | None = None
    closed_at: str | None = None
    updated_at: str = ""


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    auth: str


class FakeGitHub:
    def __init__(
        self,
        owner: str,
        repo: str,
        files: dict[str, str],
        *,
        app_id: int = 424242,
        public_key: str = "",
        installation_permissions: dict[str, str] | None = None,
        repository_selection: str = "selected",
        pat: str | None = None,
        pat_permissions: dict[str, str] | None = None,
    ) -> None:
        self.owner, self.repo = owner, repo
        self.app_id, self.public_key = app_id, public_key
        self.slug = "modelsvc-console-test"
        self.installation_id = 7101
        self.installation_permissions = installation_permissions or {
            "contents": "write",
            "pull_requests": "write",
            "checks": "read",
            "metadata": "read",
        }
        self.repository_selection = repository_selection
        self.pat, self.pat_permissions = pat, pat_permissions or {}
        self.tokens: dict[str, Token] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, str] = {}
        self.pulls: list[Pull] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.exchanges: list[Exchange] = []
        self.violations: list[str] = []
        self.refuse: dict[tuple[str, str], int] = {}  # (method, template) → status to answer instead, once
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self.refs["main"] = self._commit(None, files, "initial")

    # -- state ------------------------------------------------------------------------------------------------------
    def _commit(self, parent: str | None, files: dict[str, str], message: str) -> str:
        sha = _sha(f"{parent}\n{message}\n{json.dumps(files, sort_keys=True)}\n{next(self._ids)}")
        self.commits[sha] = {"parent": parent, "files": dict(files), "message": message}
        return sha

    def file(self, ref: str, path: str) -> str:
        sha = self.refs.get(ref, ref)
        return self.commits[sha]["files"][path]

    def pull(self, number: int) -> Pull:
        return next(p for p in self.pulls if p.number == number)

    def merge(self, number: int) -> str:
        """Merge a pull request the way GitHub's merge button does (a merge commit on the base)."""
        with self._lock:
            p = self.pull(number)
            head = self.commits[self.refs[p.head]]
            sha = self._commit(self.refs[p.base], head["files"], f"Merge pull request #{number}")
            self.refs[p.base] = sha
            p.state, p.merged_at, p.closed_at, p.updated_at = "closed", _now(), _now(), _now()
            return sha

    def close(self, number: int) -> None:
        with self._lock:
            p = self.pull(number)
            p.state, p.closed_at, p.updated_at = "closed", _now(), _now()

    def review(self, number: int, result: str, conclusion: str) -> None:
        """What the review and gate jobs leave on a pull request: the sticky comment and the gate's check run."""
        from modelsvc.review import MARKER

        with self._lock:
            p = self.pull(number)
            self.comments.setdefault(number, []).append(
                {"login": "github-actions[bot]", "body": f"{MARKER}\n## services.yaml review\n\n**Result: {result}**\n"}
            )
            self.check_runs.setdefault(self.refs[p.head], []).append(
                {"name": "modelsvc gate", "status": "completed", "conclusion": conclusion, "id": next(self._ids)}
            )
            p.updated_at = _now()

    # -- transport --------------------------------------------------------------------------------------------------
    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.asgi)

    async def asgi(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, out_headers, body = self.handle(
            scope["method"], scope["path"], scope.get("query_string", b"").decode(), headers, b"".join(chunks)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def serve(self) -> tuple[str, ThreadingHTTPServer]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                url = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out, body = fake.handle(self.command, url.path, url.query, headers, raw)
                self.send_response(status)
                for k, v in out.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    # -- requests ---------------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes):
        q = dict(parse_qsl(query, keep_blank_values=True))
        body = json.loads(raw) if raw else None
        path = unquote(path)
        auth = headers.get("authorization", "")
        try:
            template, op = octokit.check_request(method, path, q, body)
        except octokit.ContractError as e:
            self.violations.append(str(e))
            return self._json(500, {"message": f"fake GitHub: {e}"}, method, path, q, body, auth)
        with self._lock:
            refused = self.refuse.pop((method.upper(), template), None)
            if refused is not None:
                status, payload = self._error(refused, "refused by the test")
            else:
                status, payload = self._route(method.lower(), template, path, q, body, auth)
        # (an error a test asked for is not checked: the description's 409 is a oneOf that any error body matches twice)
        if refused is None and (status < 400 or str(status) in op["responses"]):
            try:
                octokit.check_response(op, status, payload, f"{method} {template}")
            except octokit.ContractError as e:
                self.violations.append(f"fake GitHub answered outside the description: {e}")
        return self._json(status, payload, method, path, q, body, auth)

    def _json(self, status: int, payload: Any, method: str, path: str, q: dict, body: Any, auth: str):
        self.exchanges.append(Exchange(method, path, q, body, status, auth.split(" ")[0] if auth else ""))
        data = b"" if payload is None else json.dumps(payload).encode()
        return (
            status,
            {"content-type": "application/json; charset=utf-8", "x-github-api-version-selected": "2022-11-28"},
            data,
        )

    def _error(self, status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}

    def _authenticate(self, method: str, template: str, auth: str) -> tuple[int, dict[str, Any]] | Token | str:
        _, _, credential = auth.partition(" ")
        if (method, template) in JWT_ROUTES:
            try:
                claims = jwt.decode(
                    credential, self.public_key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]}
                )
            except jwt.PyJWTError as e:
                return self._error(401, f"A JSON web token could not be decoded ({type(e).__name__})")
            if str(claims["iss"]) != str(self.app_id) or claims["exp"] - claims["iat"] > 660:
                return self._error(401, "'Expiration time' claim ('exp') is too far in the future")
            return "app"
        if credential in self.tokens:
            return self.tokens[credential]
        if self.pat and credential == self.pat:
            return Token(self.pat_permissions, [self.repo], "octocat")
        return self._error(401, "Bad credentials")

    def _route(self, method: str, template: str, path: str, q: dict, body: Any, auth: str):
        who = self._authenticate(method, template, auth)
        if isinstance(who, tuple):
            return who
        parts = path.strip("/").split("/")
        if template.startswith("/repos/{owner}/{repo}") and (parts[1], parts[2]) != (self.owner, self.repo):
            return self._error(404, "Not Found")
        if isinstance(who, Token):
            need = NEEDS.get((method, template))
            if need is None:
                return self._error(
                    403, f"fake GitHub: {method.upper()} {template} is not an endpoint the console needs"
                )
            name, level = need
            if who.repositories is not None and self.repo not in who.repositories:
                return self._error(404, "Not Found")
            if name != "metadata" and LEVEL.get(who.permissions.get(name, ""), 0) < LEVEL[level]:
                return self._error(403, "Resource not accessible by integration")
        handler = getattr(
            self, "_" + method + template.replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
        )
        return handler(parts, q, body, who)

    # -- the App ----------------------------------------------------------------------------------------------------
    def _get_app(self, parts, q, body, who):
        app = octokit.example("integration")
        app.update(
            id=self.app_id, slug=self.slug, name="modelsvc console (test)", permissions=self.installation_permissions
        )
        return 200, app

    def _get_repos_owner_repo_installation(self, parts, q, body, who):
        inst = octokit.example("installation")
        inst.update(
            id=self.installation_id,
            app_id=self.app_id,
            app_slug=self.slug,
            permissions=self.installation_permissions,
            repository_selection=self.repository_selection,
        )
        inst["account"]["login"] = self.owner
        return 200, inst

    def _post_app_installations_installation_id_access_tokens(self, parts, q, body, who):
        if int(parts[2]) != self.installation_id:
            return self._error(404, "Not Found")
        asked = (body or {}).get("permissions") or dict(self.installation_permissions)
        for name, level in asked.items():
            if LEVEL.get(self.installation_permissions.get(name, ""), 0) < LEVEL.get(level, 3):
                return 422, {
                    "message": f"The permissions requested are not granted to this installation ({name})",
                    "documentation_url": "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
                }
        repos = (body or {}).get("repositories")
        token = "ghs_" + secrets.token_hex(18)
        self.tokens[token] = Token(dict(asked), repos, f"{self.slug}[bot]")
        t = octokit.example("installation-token")
        t.update(token=token, expires_at=datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        t["permissions"] = asked
        t["repository_selection"] = "selected"
        t.pop("repositories", None)
        return 201, t

    # -- repository -------------------------------------------------------------------------------------------------
    def _get_repos_owner_repo(self, parts, q, body, who):
        repo = octokit.example("full-repository-default-response")
        repo.update(name=self.repo, full_name=f"{self.owner}/{self.repo}", default_branch="main", fork=False)
        # (the description's example is of a fork, and lacks the `language` its schema requires; ours is no fork)
        repo.pop("source", None)
        repo.pop("parent", None)
        repo["language"] = None
        return 200, repo

    def _get_user(self, parts, q, body, who):
        user = octokit.example("private-user-response-with-public-profile-information")
        user["login"] = who.login
        return 200, user

    def _ref_json(self, ref: str, sha: str) -> dict[str, Any]:
        # the recorded answer of GitHub creating a reference (@octokit/fixtures git-refs), with our values
        r = octokit.recorded("git-refs", 1)["response"]
        base = f"{API}/repos/{self.owner}/{self.repo}"
        r.update(ref=f"refs/heads/{ref}", url=f"{base}/git/refs/heads/{ref}")
        r["object"].update(sha=sha, url=f"{base}/git/commits/{sha}")
        return r

    def _get_repos_owner_repo_git_ref_ref(self, parts, q, body, who):
        ref = "/".join(parts[5:])
        if not ref.startswith("heads/") or ref[6:] not in self.refs:
            return self._error(404, "Not Found")
        return 200, self._ref_json(ref[6:], self.refs[ref[6:]])

    def _post_repos_owner_repo_git_refs(self, parts, q, body, who):
        ref, sha = body["ref"], body["sha"]
        if not ref.startswith("refs/heads/") or sha not in self.commits:
            return 422, {
                "message": "Reference update failed",
                "documentation_url": "https://docs.github.com/rest/git/refs#create-a-reference",
            }
        name = ref[len("refs/heads/") :]
        if name in self.refs:
            return 422, {
                "message": "Reference already exists",
                "documentation_url": "https://docs.github.com/rest/git/refs#create-a-reference",
            }
        self.refs[name] = sha
        return 201, self._ref_json(name, sha)

    def _delete_repos_owner_repo_git_refs_ref(self, parts, q, body, who):
        ref = "/".join(parts[5:])
        if not ref.startswith("heads/") or ref[6:] not in self.refs or ref[6:] == "main":
            return 422, {
                "message": "Reference does not exist",
                "documentation_url": "https://docs.github.com/rest/git/refs#delete-a-reference",
            }
        del self.refs[ref[6:]]
        return 204, None

    def _content_json(self, path: str, text: str, ref: str) -> dict[str, Any]:
        c = octokit.example("content-file-response-if-content-is-a-file")
        blob = _sha("blob " + text)
        base = f"{API}/repos/{self.owner}/{self.repo}"
        c.update(
            name=path.rsplit("/", 1)[-1],
            path=path,
            sha=blob,
            size=len(text.encode()),
            content=base64.encodebytes(text.encode()).decode(),
            encoding="base64",
            url=f"{base}/contents/{path}?ref={ref}",
            git_url=f"{base}/git/blobs/{blob}",
            html_url=f"{WEB}/{self.owner}/{self.repo}/blob/{ref}/{path}",
            download_url=f"https://raw.githubusercontent.com/{self.owner}/{self.repo}/{ref}/{path}",
        )
        c["_links"] = {"self": c["url"], "git": c["git_url"], "html": c["html_url"]}
        return c

    def _get_repos_owner_repo_contents_path(self, parts, q, body, who):
        path = "/".join(parts[4:])
        ref = q.get("ref", "main")
        sha = self.refs.get(ref, ref)
        files = self.commits.get(sha, {}).get("files", {})
        if path not in files:
            return self._error(404, "Not Found")
        return 200, self._content_json(path, files[path], ref)

    def _put_repos_owner_repo_contents_path(self, parts, q, body, who):
        path = "/".join(parts[4:])
        branch = body.get("branch", "main")
        if branch not in self.refs:
            return self._error(404, "Branch not found")
        head = self.commits[self.refs[branch]]
        current = head["files"].get(path)
        if current is not None and body.get("sha") != _sha("blob " + current):
            return 409, {
                "message": f"{path} does not match {body.get('sha')}",
                "documentation_url": "https://docs.github.com/rest/repos/contents#create-or-update-file-contents",
            }
        text = base64.b64decode(body["content"]).decode()
        files = {**head["files"], path: text}
        sha = self._commit(self.refs[branch], files, body["message"])
        self.refs[branch] = sha
        # the recorded answer of GitHub putting a file (@octokit/fixtures create-file), with our values
        r = octokit.recorded("create-file")["response"]
        r["content"].update(self._content_json(path, text, branch))
        r["content"].pop("content", None)
        r["content"].pop("encoding", None)
        base = f"{API}/repos/{self.owner}/{self.repo}"
        r["commit"].update(
            sha=sha,
            url=f"{base}/git/commits/{sha}",
            html_url=f"{WEB}/{self.owner}/{self.repo}/commit/{sha}",
            message=body["message"],
        )
        r["commit"]["parents"] = [
            {
                "sha": head_sha,
                "url": f"{base}/git/commits/{head_sha}",
                "html_url": f"{WEB}/{self.owner}/{self.repo}/commit/{head_sha}",
            }
            for head_sha in [self.commits[sha]["parent"]]
        ]
        return (200 if current is not None else 201), r

    # -- pull requests ----------------------------------------------------------------------------------------------
    def _pull_json(self, p: Pull, simple: bool) -> dict[str, Any]:
        pr = octokit.example("pull-request-simple-items")[0] if simple else octokit.example("pull-request")
        base = f"{API}/repos/{self.owner}/{self.repo}"
        html = f"{WEB}/{self.owner}/{self.repo}/pull/{p.number}"
        pr.update(
            number=p.number,
            id=100000 + p.number,
            title=p.title,
            body=p.body,
            state=p.state,
            html_url=html,
            url=f"{base}/pulls/{p.number}",
            created_at=p.created_at,
            updated_at=p.updated_at or p.created_at,
            closed_at=p.closed_at,
            merged_at=p.merged_at,
            draft=False,
            labels=[],
            # (the description's own example lists a team without the `type` its schema requires; ours have none)
            requested_teams=[],
            requested_reviewers=[],
            assignees=[],
            assignee=None,
            milestone=None,
        )
        pr["user"] = {**pr["user"], "login": p.login, "type": "Bot" if p.login.endswith("[bot]") else "User"}
        for side, ref in (("head", p.head), ("base", p.base)):
            pr[side] = {**pr[side], "ref": ref, "sha": self.refs[ref], "label": f"{self.owner}:{ref}"}
            pr[side]["repo"] = {**pr[side]["repo"], "name": self.repo, "full_name": f"{self.owner}/{self.repo}"}
        if not simple:
            pr.update(
                merged=p.merged_at is not None,
                mergeable=None,
                mergeable_state="unknown",
                merged_by=None,
                comments=len(self.comments.get(p.number, [])),
            )
        return pr

    def _post_repos_owner_repo_pulls(self, parts, q, body, who):
        head, base = body["head"], body["base"]
        if head not in self.refs or base not in self.refs:
            return 422, {
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "invalid", "field": "head"}],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            }
        if self.refs[head] == self.refs[base]:
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head}"}
                ],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            }
        p = Pull(len(self.pulls) + 1, body["title"], body.get("body", ""), head, base, who.login, _now())
        self.pulls.append(p)
        return 201, self._pull_json(p, simple=False)

    def _get_repos_owner_repo_pulls(self, parts, q, body, who):
        state = q.get("state", "open")
        found = [p for p in self.pulls if state == "all" or p.state == state]
        if "base" in q:
            found = [p for p in found if p.base == q["base"]]
        found.sort(key=lambda p: p.updated_at or p.created_at, reverse=q.get("direction", "desc") == "desc")
        return 200, [self._pull_json(p, simple=True) for p in found[: int(q.get("per_page", 30))]]

    def _get_repos_owner_repo_commits_ref_check_runs(self, parts, q, body, who):
        sha = parts[4]
        runs = [r for r in self.check_runs.get(sha, []) if "check_name" not in q or r["name"] == q["check_name"]]
        out = []
        for r in reversed(runs):
            item = octokit.example("check-run-paginated")["check_runs"][0]
            item.update(
                id=r["id"],
                name=r["name"],
                head_sha=sha,
                status=r["status"],
                conclusion=r["conclusion"],
                html_url=f"{WEB}/{self.owner}/{self.repo}/runs/{r['id']}",
            )
            out.append(item)
        return 200, {"total_count": len(out), "check_runs": out}

    def _get_repos_owner_repo_issues_issue_number_comments(self, parts, q, body, who):
        number = int(parts[4])
        out = []
        for i, c in enumerate(self.comments.get(number, [])):
            item = octokit.example("issue-comment-items")[0]
            item.update(id=5000 + i, body=c["body"])
            item["user"] = {**item["user"], "login": c["login"], "type": "Bot"}
            out.append(item)
        return 200, out
