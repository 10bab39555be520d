"""Sample pull requests through the workflows' own steps.

A temporary repository plays GitHub: `main` holds the project's services.yaml and .github, a branch holds the
change, and `refs/pull/7/head` points at it (GitHub's ref for a pull request's head). As in the review workflow
(pull_request_target), the default branch is checked out in `base/` (whose `.venv` is this test's venv, running this
checkout's modelsvc) and the pull request is only fetched as git objects by the review script. The steps are read
from the workflow files and run with bash as the runner does, against a fake GitHub API that serves the pull
request (its current head, description and labels), its comments and check runs, and the deploy's head check.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from modelsvc.catalog import loads
from modelsvc.review import Confirm, diff

from . import octokit
from .workflow_steps import GITHUB, ROOT, run_step, step, workflow

# The scripts' own helper (stdlib only), loaded from the file the workflow runs.
_spec = importlib.util.spec_from_file_location("github_api", GITHUB / "scripts" / "github_api.py")
assert _spec is not None and _spec.loader is not None
github_api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(github_api)

MARKER = "<!-- modelsvc-review -->"
BASE_YAML = (ROOT / "services.yaml").read_text(encoding="utf-8")
CODE = workflow("pull-request.yml")
REVIEW = workflow("review.yml")
DEPLOY = workflow("deploy.yml")
HEAD_SHA = "a" * 40
PASTED_KEY = "sk-ms-" + "Q3x9" * 10


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def make_pr(e2e, tmp_path: Path, runner_env: dict[str, str]):
    """make_pr(new services.yaml text, files={path: text}, links={path: target}) → the workspace with base/ (the
    default branch, full history) and the pull request's head in the origin under refs/pull/7/head."""

    def make(head_yaml: str | None, files: dict[str, str] | None = None, links: dict[str, str] | None = None) -> Path:
        origin = tmp_path / "origin"
        origin.mkdir()
        _git(origin, "init", "-q", "-b", "main")
        _git(origin, "config", "user.email", "ci@example.com")
        _git(origin, "config", "user.name", "ci")
        (origin / "services.yaml").write_text(BASE_YAML, encoding="utf-8")
        shutil.copytree(GITHUB, origin / ".github")
        shutil.copy(ROOT / "Pulumi.prod.yaml", origin / "Pulumi.prod.yaml")
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "-m", "base")
        _git(origin, "switch", "-q", "-c", "change")
        if head_yaml is not None:
            (origin / "services.yaml").write_text(head_yaml, encoding="utf-8")
        for path, text in (files or {}).items():
            (origin / path).parent.mkdir(parents=True, exist_ok=True)
            (origin / path).write_text(text, encoding="utf-8")
        for path, target in (links or {}).items():
            (origin / path).unlink()
            (origin / path).symlink_to(target)
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "--allow-empty", "-m", "change services.yaml")
        _git(origin, "update-ref", "refs/pull/7/head", "HEAD")
        FakeGitHub.head = _git(origin, "rev-parse", "HEAD")
        _git(origin, "switch", "-q", "main")
        (origin / "NOTES").write_text("main moved on\n")  # main is ahead of the branch's fork point
        _git(origin, "add", "NOTES")
        _git(origin, "commit", "-q", "-m", "unrelated")

        work = Path(runner_env["GITHUB_WORKSPACE"])
        work.mkdir()
        _git(work, "clone", "-q", str(origin), "base")  # actions/checkout of the default branch, fetch-depth 0
        (work / "base" / ".venv").symlink_to(Path(sys.executable).parent.parent)  # what setup-locked makes
        return work

    return make


def _pr(labels=(), body="") -> dict:
    """The pull request as the API answers GET /repos/{owner}/{repo}/pulls/7 (from the description's example)."""
    pr = octokit.example("pull-request")
    pr.update(number=7, body=body, state="open")
    pr["labels"] = (
        [dict(pr["labels"][0], name=n) for n in labels] if pr.get("labels") else [{"name": n} for n in labels]
    )
    pr["head"]["sha"] = FakeGitHub.head
    pr["user"]["login"] = "author"
    return pr


def _listed(pr: dict) -> dict:
    """A pull request as GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls lists it (pull-request-simple)."""
    item = octokit.example("pull-request-simple")
    item.update(number=pr["number"], state=pr["state"])
    item["requested_teams"] = []  # the example's team predates the `type` and `parent` the schema now requires
    item["head"]["sha"] = pr["head"]["sha"]
    item["base"]["ref"] = pr["base"]["ref"]
    return item


def _context(runner_env, run_id: str = "1000"):
    return {
        "runner.temp": runner_env["RUNNER_TEMP"],
        "github.token": "test-token",
        "github.event.pull_request.number": "7",
        "github.event.pull_request.head.sha": FakeGitHub.head,
        "steps.review.outputs.head": FakeGitHub.head,
        "github.run_id": run_id,
    }


def validate(work: Path, runner_env) -> subprocess.CompletedProcess:
    """The code workflow's mask and validate steps, in a checkout of the pull request's head."""
    pr = work / "pr"
    if not pr.exists():
        _git(work, "clone", "-q", str(work.parent / "origin"), "pr")
        _git(pr, "fetch", "-q", "origin", "refs/pull/7/head")
        _git(pr, "checkout", "-q", "FETCH_HEAD")
    mask = run_step(step(CODE, "validate", "mask"), pr, {}, runner_env)
    proc = run_step(step(CODE, "validate", "validate"), pr, {}, runner_env)
    proc.stdout = mask.stdout + proc.stdout
    return proc


def review(
    work: Path, runner_env, tmp_path: Path, labels=(), body="", api=None
) -> tuple[subprocess.CompletedProcess, str]:
    """The review job's review step, against the fake API (which serves the pull request's current state)."""
    FakeGitHub.pr = _pr(labels, body)
    env = {**runner_env, "GITHUB_API_URL": api or FakeGitHub.url, "GITHUB_SERVER_URL": "https://github.invalid"}
    proc = run_step(step(REVIEW, "review", "review"), work, _context(runner_env), env)
    review_dir = Path(runner_env["RUNNER_TEMP"]) / "review"
    md_path = review_dir / "review.md"
    md = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    if md:
        assert md.startswith(MARKER + "\n"), "the sticky comment is found by its first line"
        assert md in Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
        assert md not in proc.stdout, "the review goes to the summary and the comment, not the log"
        assert (review_dir / "comment.md").read_text(encoding="utf-8") == md, "a small review is its own comment"
    return proc, md


def digest_of(head_yaml: str, kind: Confirm, subject: str) -> str:
    """The digest the review names for that confirmation (what a person copies from the comment)."""
    return diff(loads(BASE_YAML), loads(head_yaml)).digests()[(kind, subject)]


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _without_service(text: str, access_name: str) -> str:
    """services.yaml without the list item whose access_name is given."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == f"access_name: {access_name}")
    start = at - 1
    assert lines[start].lstrip().startswith("- name:")
    end = at + 1
    while end < len(lines) and lines[end].startswith("    ") and not lines[end].lstrip().startswith("- "):
        end += 1
    return "".join(lines[:start] + lines[end:])


def test_unchanged_passes_with_no_deployed_change(make_pr, runner_env, tmp_path):
    work = make_pr("# a comment-only edit\n" + BASE_YAML)
    v = validate(work, runner_env)
    assert v.returncode == 0 and "::error" not in v.stdout and "::add-mask::" not in v.stdout
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "**No deployed change**" in md and "**Result: ✅ passes**" in md


def test_rename_needs_a_confirmation(make_pr, runner_env, tmp_path):
    head = _replace(BASE_YAML, "access_name: u-8105f7322477/test\n", "access_name: u-8105f7322477/test-v2\n")
    work = make_pr(head)
    digest = digest_of(head, Confirm.change, "u-8105f7322477/test")
    assert validate(work, runner_env).returncode == 0
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1
    assert "renamed `u-8105f7322477/test` → `u-8105f7322477/test-v2` (`ms-1d033c426254`)" in md
    assert f"`Confirm-Change: u-8105f7322477/test@{digest}`" in md and "**Result: ❌ blocked**" in md
    proc, md = review(work, runner_env, tmp_path, body="Confirm-Change: u-8105f7322477/test")
    assert proc.returncode == 1, "a bare access name no longer confirms: the confirmation names the change"
    proc, md = review(work, runner_env, tmp_path, body=f"Confirm-Change: u-8105f7322477/test@{digest}")
    assert proc.returncode == 0 and "passes with confirmed changes callers will notice" in md


DELETION = _without_service(BASE_YAML, "u-3f9a2c7e51d0/product-images")
DELETE = digest_of(DELETION, Confirm.delete, "u-3f9a2c7e51d0/product-images")


@pytest.fixture
def deletion(make_pr):
    return make_pr(DELETION)


def test_deletion_fails_without_confirmation(deletion, runner_env, tmp_path):
    assert validate(deletion, runner_env).returncode == 0
    proc, md = review(deletion, runner_env, tmp_path, labels=["infra"], body="Removing the image service.")
    assert proc.returncode == 1
    assert "❌ removed `u-3f9a2c7e51d0/product-images` (`ms-ab2970f31223`): callers get 404 — **not confirmed**" in md
    assert f"`confirm-delete:{DELETE}`" in md
    assert "**Result: ❌ blocked**" in md


def test_deletion_confirmed_by_label(deletion, runner_env, tmp_path):
    proc, md = review(deletion, runner_env, tmp_path, labels=[f"confirm-delete:{DELETE}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✅ removed `u-3f9a2c7e51d0/product-images` (`ms-ab2970f31223`): callers get 404 — confirmed" in md
    assert "blocked" not in md


def test_deletion_confirmed_by_description_line(deletion, runner_env, tmp_path):
    body = (
        f"Image generation moves to the new cluster.\r\n\r\nConfirm-Delete: u-3f9a2c7e51d0/product-images@{DELETE}\r\n"
    )
    proc, md = review(deletion, runner_env, tmp_path, body=body)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed `u-3f9a2c7e51d0/product-images` (`ms-ab2970f31223`): callers get 404 — confirmed" in md


@pytest.mark.parametrize(
    "labels, body",
    [
        # Another service's confirmation does not count, nor a Confirm-Change for a deletion.
        (["confirm-delete:0123456789"], f"Confirm-Delete: u-8105f7322477/test@{DELETE}"),
        ([f"confirm-change:{DELETE}"], ""),
        # The bare access name, as before digests: it names no change.
        (["confirm-delete:u-3f9a2c7e51d0/product-images"], "Confirm-Delete: u-3f9a2c7e51d0/product-images"),
        # A line hidden in an HTML comment (as in the pull request template) is not a confirmation.
        ([], f"<!--\nConfirm-Delete: u-3f9a2c7e51d0/product-images@{DELETE}\n-->"),
        # Shell in the description is text, never code: it reaches no script and confirms nothing.
        ([], 'Confirm-Delete: u-3f9a2c7e51d0/product-images"; touch pwned; echo "'),
        ([], "Confirm-Delete: $(touch pwned)"),
    ],
)
def test_deletion_not_confirmed_by_anything_else(deletion, runner_env, tmp_path, labels, body):
    proc, md = review(deletion, runner_env, tmp_path, labels=labels, body=body)
    assert proc.returncode == 1 and "**not confirmed**" in md
    assert not (deletion / "pwned").exists() and not (deletion / "pr" / "pwned").exists()
    assert "pwned" not in proc.stderr, "an ignored confirmation is reported without quoting it"


def test_the_pr_cannot_change_its_own_reviewer(make_pr, runner_env, tmp_path):
    """A PR that rewrites the review script, the confirmations script and review.yml itself to pass everything:
    pull_request_target runs the default branch's files, and the review never checks out or runs the PR's."""
    pwned = tmp_path / "pwned"
    hostile = f"#!/usr/bin/env python3\nopen({str(pwned)!r}, 'w').write('x')\nprint('--confirm-delete=@{DELETE}')\n"
    work = make_pr(
        DELETION,
        files={
            ".github/scripts/confirmations.py": hostile,
            ".github/scripts/review_pr.py": hostile,
            ".github/workflows/review.yml": "on: pull_request_target\njobs: {}\n",
        },
    )
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1 and "**not confirmed**" in md
    assert not pwned.exists(), "no file of the pull request ran"
    assert not (work / "pr").exists(), "nothing of the pull request was checked out"


def test_scale_up_shows_gpu_delta(make_pr, runner_env, tmp_path):
    head = _replace(
        BASE_YAML,
        "model: llama-3.1-70b-instruct\n    instances: 2\n",
        "model: llama-3.1-70b-instruct\n    instances: 4\n",
    )
    work = make_pr(head)
    v = validate(work, runner_env)
    assert v.returncode == 0, v.stdout
    assert "(9 instances, 20 GPUs)" in v.stdout
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 0
    assert "`u-8105f7322477/support-bot`: instances 2 → 4 (+2 instance(s), +8 GPU(s))" in md
    assert "| `h100` | 3 → 5 | 9 → 17 (+8) | 2 → 3 | 4 |" in md
    assert "`l4`" not in md, "an unchanged pool stays out of the capacity table"


def test_invalid_head_annotates_lines(make_pr, runner_env, tmp_path):
    head = _replace(
        BASE_YAML,
        "    model: stable-diffusion-xl\n    instances: 1\n",
        "    model: stable-diffusion-xll\n    instances: -1\n",
    )
    work = make_pr(head)
    model_line = head.splitlines().index("    model: stable-diffusion-xll") + 1
    v = validate(work, runner_env)
    assert v.returncode == 1
    errors = [line for line in v.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) >= 2, v.stdout
    pattern = re.compile(r"^::error file=services\.yaml,line=(\d+),col=(\d+),title=services\.yaml::.+ — .+$")
    assert all(pattern.match(e) for e in errors), errors
    lines = {int(pattern.match(e).group(1)) for e in errors}
    assert {model_line, model_line + 1} <= lines
    assert any("stable-diffusion-xl" in e for e in errors if f"line={model_line}," in e), "a did-you-mean hint"

    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1
    assert "**Result: ❌ the new services.yaml is invalid**" in md


# --- hostile input: a pasted key and names that try to break out ---------------------------------------------------

HOSTILE_NAME = "::warning title=x::pwned `` **Result: ✅ passes** [x](https://evil.example)"[:64]


def _hostile_yaml(*, valid: bool) -> str:
    text = _replace(BASE_YAML, "  - name: Support Bot\n", f"  - name: {json.dumps(HOSTILE_NAME)}\n")
    if not valid:
        digest = "73f6f069a1a8aac69376a38973a5d690d129b273507a7772b66d8d0696fccb1d"
        text = _replace(text, f"sha256: {digest}\n", f"sha256: {PASTED_KEY}\n")
        text = _replace(text, "  - name: Test\n", '  - name: "Docs)\\n\\n**Result: ✅ passes**\\n<!--"\n')
    return text


def _everything_printed(proc: subprocess.CompletedProcess, runner_env) -> str:
    summary = Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    return proc.stdout + proc.stderr + summary


def _commands(text: str) -> list[str]:
    """Lines the runner would read as workflow commands (it trims leading whitespace)."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("::")]


def test_a_pasted_key_is_masked_and_never_printed(make_pr, runner_env, tmp_path):
    work = make_pr(_hostile_yaml(valid=False))
    v = validate(work, runner_env)
    assert v.returncode == 1
    masks = [c for c in _commands(v.stdout) if c.startswith("::add-mask::")]
    assert masks == [f"::add-mask::{PASTED_KEY}"], "masked before any other step prints"
    after_mask = v.stdout.split(masks[0], 1)[1]
    assert PASTED_KEY not in after_mask + v.stderr
    assert any("sha256" in c and c.startswith("::error ") for c in _commands(after_mask))

    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1 and "the new services.yaml is invalid" in md
    printed = _everything_printed(proc, runner_env)
    assert printed.count(PASTED_KEY) == 1 and f"::add-mask::{PASTED_KEY}" in printed
    assert PASTED_KEY not in md
    assert "<!--" not in md.replace(MARKER, ""), "no HTML comment can hide the rest of the review"


def test_hostile_names_reach_no_command_and_no_markdown(make_pr, runner_env, tmp_path):
    work = make_pr(_hostile_yaml(valid=True))
    v = validate(work, runner_env)
    assert v.returncode == 0 and _commands(v.stdout) == []
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 0, md
    assert _commands(_everything_printed(proc, runner_env)) == []
    assert [line for line in md.splitlines() if line.startswith("**Result:")] == ["**Result: ✅ passes**"]
    name_line = next(line for line in md.splitlines() if "pwned" in line)
    assert name_line.startswith("- `u-8105f7322477/support-bot`: display name `Support Bot` → ```::warning")


# --- what a pull request cannot steer -------------------------------------------------------------------------------


def test_a_symlinked_services_yaml_is_refused(make_pr, runner_env, tmp_path):
    """services.yaml as a link to a copy of main's file: the review read main's ("no deployed change") while the
    deploy read the PR's. Now the blob's mode is checked: only a regular file (100644) is reviewed."""
    work = make_pr(
        None, files={"main-copy.yaml": BASE_YAML, "services.yaml": DELETION}, links={"services.yaml": "main-copy.yaml"}
    )
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1
    assert "is a symlink: services.yaml must be a regular file (mode 100644)" in md
    assert "No deployed change" not in md


def test_a_re_run_replays_no_old_confirmation(deletion, runner_env, tmp_path):
    """A re-run of an old run carries the event of its time (a confirmation since removed): the review reads the
    pull request's current description and labels from the API, so the re-run is blocked like the comment."""
    event = Path(runner_env["RUNNER_TEMP"]) / "event.json"
    old = {"pull_request": {"number": 7, "body": f"Confirm-Delete: u-3f9a2c7e51d0/product-images@{DELETE}"}}
    event.write_text(json.dumps(old))
    proc, md = review(deletion, {**runner_env, "GITHUB_EVENT_PATH": str(event)}, tmp_path, body="removed it")
    assert proc.returncode == 1 and "**not confirmed**" in md


def test_the_review_follows_the_stacks_catalog_setting(make_pr, runner_env, tmp_path):
    """A PR pointing modelsvc:catalog at another file: the file the deploy would read is the one reviewed, and the
    change of the setting is itself a change to confirm."""
    stack = (
        (ROOT / "Pulumi.prod.yaml")
        .read_text()
        .replace("modelsvc:catalog: services.yaml", "modelsvc:catalog: other.yaml")
    )
    work = make_pr(BASE_YAML, files={"other.yaml": DELETION, "Pulumi.prod.yaml": stack})
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1
    assert "the stack's `modelsvc:catalog` changes `services.yaml` → `other.yaml`" in md
    assert "removed `u-3f9a2c7e51d0/product-images`" in md


# --- the fake API ---------------------------------------------------------------------------------------------------


class FakeGitHub(BaseHTTPRequestHandler):
    """Just enough of the REST API, answering with payloads shaped like the published description's: the pull
    request, its files, reviews and open siblings, issue comments (paginated), check runs of a commit (and the
    workflow run behind each check suite), check-run creation and update, a branch's ref, rules and protection."""

    url = ""
    comments: ClassVar[list[dict]] = []
    calls: ClassVar[list[tuple[str, str]]] = []
    head = HEAD_SHA
    pr: ClassVar[dict | None] = None
    open_prs: ClassVar[list[dict] | None] = None  # None: just this pull request
    files: ClassVar[list[dict]] = []
    reviews: ClassVar[list[dict]] = []
    check_runs: ClassVar[dict[str, list[list[dict]]]] = {}  # name → successive answers (the last one repeats)
    suites: ClassVar[dict[int, dict]] = {}  # check suite id → its workflow run
    created: ClassVar[list[dict]] = []  # check runs the gate created or updated, in order
    rules: ClassVar[list[dict]] = []
    protection: ClassVar[dict | None] = None
    main = "b" * 40

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self):
        assert self.headers["Authorization"] in ("Bearer test-token", "Bearer app-token")
        self.calls.append(("GET", self.path))
        repo = "/repos/example/models"
        path, _, query = self.path.partition("?")
        if path == f"{repo}/pulls/7":
            return self._send(200, self.pr or {"number": 7, "head": {"sha": self.head}})
        if re.fullmatch(rf"{repo}/commits/\w+/pulls", path):
            prs = [_listed(p) for p in (self.open_prs if self.open_prs is not None else [self.pr or _pr()])]
            octokit.validate_response(prs, "/repos/{owner}/{repo}/commits/{commit_sha}/pulls")
            return self._send(200, prs)
        if path == f"{repo}/pulls/7/files":
            return self._send(200, self.files)
        if path == f"{repo}/pulls/7/reviews":
            return self._send(200, self.reviews)
        if path == f"{repo}/git/ref/heads/main":
            return self._send(200, {"ref": "refs/heads/main", "object": {"sha": self.main}})
        if path == f"{repo}/rules/branches/main":
            return self._send(200, self.rules)
        if path == f"{repo}/branches/main/protection":
            return self._send(200, self.protection) if self.protection else self._send(404, {"message": "no"})
        m = re.fullmatch(rf"{repo}/commits/(\w+)/check-runs", path)
        if m:
            from urllib.parse import parse_qs

            q = parse_qs(query)
            assert q["filter"] == ["all"], "every run of the name, not GitHub's pick of the latest"
            answers = self.check_runs.get(q["check_name"][0], [[]])
            runs = answers.pop(0) if len(answers) > 1 else answers[0]
            return self._send(200, {"total_count": len(runs), "check_runs": runs})
        if path == f"{repo}/actions/runs":
            suite = int(query.split("check_suite_id=")[1])
            runs = [self.suites[suite]] if suite in self.suites else []
            return self._send(200, {"total_count": len(runs), "workflow_runs": runs})
        m = re.fullmatch(rf"{repo}/issues/7/comments", path)
        assert m, self.path
        per_page, page = (int(x) for x in re.fullmatch(r"per_page=(\d+)&page=(\d+)", query).groups())
        self._send(200, self.comments[(page - 1) * per_page : page * per_page])

    def do_POST(self):
        self.calls.append(("POST", self.path))
        if self.path == "/repos/example/models/check-runs":
            body = self._body()
            run = {**body, "id": 9000 + len(self.created), "token": self.headers["Authorization"]}
            self.created.append(run)
            return self._send(201, {"id": run["id"], **body})
        assert self.path == "/repos/example/models/issues/7/comments"
        c = {"id": 1000 + len(self.comments), "user": {"login": "github-actions[bot]"}, "body": self._body()["body"]}
        self.comments.append(c)
        self._send(201, c)

    def do_PATCH(self):
        self.calls.append(("PATCH", self.path))
        if self.path.startswith("/repos/example/models/check-runs/"):
            self.created.append({**self._body(), "id": int(self.path.rsplit("/", 1)[1])})
            return self._send(200, self.created[-1])
        cid = int(self.path.rsplit("/", 1)[1])
        c = next(c for c in self.comments if c["id"] == cid)
        c["body"] = self._body()["body"]
        self._send(200, c)


@pytest.fixture(scope="module")
def _server(e2e):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeGitHub.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield FakeGitHub.url
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def fake_github(_server):
    FakeGitHub.comments = [{"id": i, "user": {"login": f"user{i}"}, "body": f"comment {i}"} for i in range(150)]
    # A person quoting the marker does not own the sticky comment.
    FakeGitHub.comments.append({"id": 500, "user": {"login": "someone"}, "body": MARKER + "\nquoted"})
    FakeGitHub.calls, FakeGitHub.head, FakeGitHub.check_runs, FakeGitHub.suites = [], HEAD_SHA, {}, {}
    FakeGitHub.pr, FakeGitHub.open_prs, FakeGitHub.files, FakeGitHub.reviews = None, None, [], []
    FakeGitHub.created, FakeGitHub.rules, FakeGitHub.protection = [], [], None
    return _server


# --- the sticky comment -------------------------------------------------------------------------------------------


def _ours() -> list[dict]:
    return [c for c in FakeGitHub.comments if c["user"]["login"] == "github-actions[bot]"]


def test_review_is_one_sticky_comment(deletion, runner_env, tmp_path, fake_github):
    env = {**runner_env, "GITHUB_API_URL": fake_github}
    comment = step(REVIEW, "review", "comment")

    review(deletion, runner_env, tmp_path)  # first push: unconfirmed
    FakeGitHub.calls.clear()
    first = run_step(comment, deletion, _context(runner_env, "1000"), env)
    assert first.returncode == 0, first.stderr
    assert "created comment" in first.stdout
    review(deletion, runner_env, tmp_path, labels=[f"confirm-delete:{DELETE}"])  # label added
    second = run_step(comment, deletion, _context(runner_env, "1001"), env)
    assert second.returncode == 0, second.stderr
    assert "updated comment" in second.stdout

    assert len(_ours()) == 1, "one comment, updated in place"
    body = _ours()[0]["body"]
    assert body.startswith(f"{MARKER}\n<!-- modelsvc-run head={FakeGitHub.head} run=1001 -->\n")
    assert "confirmed" in body and "blocked" not in body
    assert next(c for c in FakeGitHub.comments if c["id"] == 500)["body"] == MARKER + "\nquoted"
    # Found across pages: each run reads the head, lists page 1 and page 2 (where the comment is), then writes; the
    # review in between reads the pull request once.
    calls = [m for m, path in FakeGitHub.calls if "/comments" in path or path.endswith("/pulls/7")]
    assert calls == ["GET", "GET", "GET", "POST", "GET", "GET", "GET", "GET", "PATCH"], FakeGitHub.calls


def test_a_stale_run_never_overwrites_a_newer_review(deletion, runner_env, tmp_path, fake_github):
    env = {**runner_env, "GITHUB_API_URL": fake_github}
    comment = step(REVIEW, "review", "comment")
    review(deletion, runner_env, tmp_path, labels=[f"confirm-delete:{DELETE}"])
    assert "created comment" in run_step(comment, deletion, _context(runner_env, "2000"), env).stdout
    newest = _ours()[0]["body"]

    review(deletion, runner_env, tmp_path)  # an older event's run (label not yet there) finishing late
    late = run_step(comment, deletion, _context(runner_env, "1999"), env)
    assert late.returncode == 0 and "already posted a later review" in late.stdout
    assert _ours()[0]["body"] == newest

    FakeGitHub.pr["head"]["sha"] = "c" * 40  # a push moved the head: this run's review is of an old commit
    stale = run_step(comment, deletion, _context(runner_env, "2001"), env)
    assert stale.returncode == 0 and "not posting" in stale.stdout
    assert _ours()[0]["body"] == newest and [m for m, _ in FakeGitHub.calls].count("PATCH") == 0


def test_no_review_no_comment(make_pr, runner_env, tmp_path, fake_github):
    work = make_pr(BASE_YAML)
    FakeGitHub.calls.clear()
    ctx = {**_context(runner_env), "steps.review.outputs.head": ""}
    proc = run_step(step(REVIEW, "review", "comment"), work, ctx, {**runner_env, "GITHUB_API_URL": fake_github})
    assert proc.returncode == 0 and "::warning" in proc.stdout
    assert FakeGitHub.calls == []


# --- the gate: check runs shaped by GitHub's published description ---------------------------------------------

WORKFLOW = ".github/workflows/pull-request.yml"


def check_run(name: str, *, suite: int, status="completed", conclusion="success", started="2026-01-01T00:00:00Z",
              app="github-actions", sha=None, rid=None) -> dict:  # fmt: skip
    """A check run as GET /repos/{owner}/{repo}/commits/{ref}/check-runs lists it (the description's example)."""
    run = octokit.example("check-run")
    run.update(
        id=rid or abs(hash((name, suite, started))) % 10**9,
        name=name,
        head_sha=sha or FakeGitHub.head,
        status=status,
        conclusion=conclusion,
        started_at=started,
        check_suite={"id": suite},
    )
    run["app"]["slug"] = app
    octokit.validate(run, "check-run")
    return run


def workflow_run(suite: int, *, path=WORKFLOW, event="pull_request", sha=None) -> dict:
    """The workflow run of a check suite, as GET /repos/{owner}/{repo}/actions/runs?check_suite_id= lists it."""
    run = octokit.example("workflow-run")
    run.update(check_suite_id=suite, path=path, event=event, head_sha=sha or FakeGitHub.head)
    octokit.validate(run, "workflow-run")
    FakeGitHub.suites[suite] = run
    return run


def _gate(
    work: Path,
    runner_env,
    review_result: str = "success",
    wait: str = "20",
    app: bool = False,
    state: str | None = None,
):
    gate = step(REVIEW, "gate", "gate")
    if FakeGitHub.pr is None:
        FakeGitHub.pr = _pr()
    ctx = {
        "needs.review.result": review_result,
        "needs.review.outputs.state": github_api.pr_state(FakeGitHub.pr) if state is None else state,
        "needs.review.outputs.head || github.event.pull_request.head.sha": FakeGitHub.head,
        "github.event.pull_request.number": "7",
        "github.token": "test-token",
        "steps.app.outputs.token || github.token": "app-token" if app else "test-token",
        "github.server_url": "https://github.invalid",
        "github.repository": "example/models",
        "github.run_id": "4242",
    }
    env = {**runner_env, "GITHUB_API_URL": FakeGitHub.url, "GATE_POLL_S": "0.05", "GATE_WAIT_S": wait}
    return run_step(gate, work / "base", ctx, env)


def _verdict() -> dict:
    """The gate's check run as it stands (created in progress, then completed)."""
    assert FakeGitHub.created[0]["status"] == "in_progress" and FakeGitHub.created[0]["name"] == "modelsvc gate"
    assert FakeGitHub.created[0]["head_sha"] == FakeGitHub.head
    final = FakeGitHub.created[-1]
    octokit.validate_response(
        {**octokit.example("check-run"), **{k: v for k, v in final.items() if k not in ("output", "token")}},
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
    )
    return final


def _genuine(name: str, suite: int, **kw) -> dict:
    workflow_run(suite)
    return check_run(name, suite=suite, **kw)


@pytest.mark.parametrize(
    "case, review_result, ok, says",
    [
        ("both succeed", "success", True, "every code check succeeded"),
        ("review failed", "failure", False, "the review did not pass (failure)"),
        ("review skipped", "skipped", False, "the review did not pass (skipped)"),
        ("tests skipped", "success", False, "check 'tests' of"),
        ("re-run after a failure", "success", True, "every code check succeeded"),
        ("still running, then done", "success", True, "every code check succeeded"),
    ],
)
def test_gate(make_pr, runner_env, case, review_result, ok, says):
    work = make_pr(BASE_YAML)
    v = [[_genuine("validate services.yaml", 1)]]
    t = [[_genuine("tests", 2)]]
    if case == "tests skipped":
        t = [[_genuine("tests", 2, conclusion="skipped")]]
    if case == "re-run after a failure":
        t = [[_genuine("tests", 2, conclusion="failure"), _genuine("tests", 3, started="2026-01-01T01:00:00Z")]]
    if case == "still running, then done":
        v = [[], [_genuine("validate services.yaml", 1, status="in_progress", conclusion=None)], v[0]]
        t = [[_genuine("tests", 2, status="queued", conclusion=None)], t[0]]
    FakeGitHub.check_runs = {"validate services.yaml": v, "tests": t, "lint": [[_genuine("lint", 4)]]}
    proc = _gate(work, runner_env, review_result)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    assert says in proc.stdout
    assert _verdict()["conclusion"] == ("success" if ok else "failure")


@pytest.mark.parametrize(
    "forgery, why",
    [
        # A job called `tests` in a workflow the pull request adds: GitHub Actions, the right commit, another file.
        ("another workflow", "from workflow .github/workflows/evil.yml, not .github/workflows/pull-request.yml"),
        # Any app (or integration token) with checks:write can create a check run of any name.
        ("another app", "created by app evil-ci, not by GitHub Actions"),
        # A run of the expected file for another commit (an older push).
        ("another commit", "another commit"),
        # A required workflow pinned to a branch the pull request controls.
        (
            "another ref",
            "from workflow example/models/.github/workflows/pull-request.yml@refs/heads/attacker, not "
            ".github/workflows/pull-request.yml",
        ),
        # The expected file, run by a `push` of the branch (definitions of the branch itself).
        ("a push run", "a push run of another commit"),
    ],
)
def test_the_gate_accepts_a_check_only_from_the_expected_workflow(make_pr, runner_env, forgery, why):
    """The genuine `tests` failed; a forged green `tests` newer than it must not turn the gate green."""
    work = make_pr(BASE_YAML)
    genuine = _genuine("tests", 2, conclusion="failure")
    kw: dict = {"started": "2026-01-01T02:00:00Z"}
    if forgery == "another workflow":
        workflow_run(66, path=".github/workflows/evil.yml")
    elif forgery == "another app":
        workflow_run(66)
        kw["app"] = "evil-ci"
    elif forgery == "another commit":
        workflow_run(66, sha="e" * 40)
        kw["sha"] = "e" * 40
    elif forgery == "another ref":
        workflow_run(66, path="example/models/.github/workflows/pull-request.yml@refs/heads/attacker")
    else:
        workflow_run(66, event="push")
    forged = check_run("tests", suite=66, **kw)
    FakeGitHub.check_runs = {
        "validate services.yaml": [[_genuine("validate services.yaml", 1)]],
        "tests": [[forged, genuine]],
        "lint": [[_genuine("lint", 3)]],
    }
    proc = _gate(work, runner_env)
    assert proc.returncode == 1, proc.stdout
    assert "check 'tests' of" in proc.stdout and "concluded failure" in proc.stdout
    assert f"'tests': ignored check run {forged['id']}: {why}" in proc.stdout
    assert _verdict()["conclusion"] == "failure"


def test_a_forged_check_alone_leaves_the_gate_waiting_then_failing(make_pr, runner_env):
    work = make_pr(BASE_YAML)
    workflow_run(66, path=".github/workflows/evil.yml")
    FakeGitHub.check_runs = {
        "validate services.yaml": [[_genuine("validate services.yaml", 1)]],
        "tests": [[check_run("tests", suite=66)]],
    }
    proc = _gate(work, runner_env, wait="0.3")
    assert proc.returncode == 1 and "checks not finished on" in proc.stdout and ": tests" in proc.stdout


def test_a_commit_status_named_like_a_check_is_never_read(make_pr, runner_env):
    """A status posted through the statuses API (a recorded real exchange, renamed `tests`) is not a check run:
    the gate reads check runs of the expected workflow only."""
    work = make_pr(BASE_YAML)
    [posted] = [
        x for x in octokit.recorded("create-status") if x["method"] == "post" and x["body"]["state"] == "success"
    ]
    status = dict(posted["response"], context="tests", state="success")
    octokit.validate(status, "status")
    FakeGitHub.check_runs = {"validate services.yaml": [[_genuine("validate services.yaml", 1)]], "tests": [[]]}
    proc = _gate(work, runner_env, wait="0.3")
    assert proc.returncode == 1 and ": tests" in proc.stdout
    assert not [p for _, p in FakeGitHub.calls if "/status" in p], "no statuses endpoint is read"


def test_a_second_pull_request_on_the_same_head_makes_the_checks_unattributable(make_pr, runner_env):
    """The same branch opened into another base: its `pull_request` runs use that merge's definitions."""
    work = make_pr(BASE_YAML)
    FakeGitHub.pr = _pr()
    other = _pr()
    other.update(number=8)
    other["base"]["ref"] = "release"
    FakeGitHub.open_prs = [FakeGitHub.pr, other]
    FakeGitHub.check_runs = {
        n: [[_genuine(n, i)]] for i, n in enumerate(["validate services.yaml", "tests", "lint"], 1)
    }
    proc = _gate(work, runner_env)
    assert proc.returncode == 1 and "open pull request(s) #8 share head" in proc.stdout
    assert _verdict()["conclusion"] == "failure"


def _review(login: str, state: str, sha: str, association: str = "MEMBER") -> dict:
    r = octokit.example("pull-request-review")
    r.update(state=state, commit_id=sha, author_association=association)
    r["user"]["login"] = login
    octokit.validate(r, "pull-request-review")
    return r


def _file(name: str) -> dict:
    f = octokit.example("diff-entry-items")[0]
    f["filename"] = name
    octokit.validate(f, "diff-entry")
    return f


@pytest.mark.parametrize(
    "reviews, ok",
    [
        ([], False),
        ([("author", "APPROVED", "head")], False),  # the author approving their own workflow change
        ([("maintainer", "APPROVED", "old")], False),  # an approval of an earlier push
        ([("maintainer", "APPROVED", "head", "CONTRIBUTOR")], False),  # no write association
        ([("maintainer", "APPROVED", "head"), ("maintainer", "CHANGES_REQUESTED", "head")], False),  # withdrawn
        ([("maintainer", "APPROVED", "head")], True),
    ],
)
def test_a_change_to_the_code_checks_definitions_needs_an_approval_of_the_head(make_pr, runner_env, reviews, ok):
    """`pull_request` runs the merge commit's pull-request.yml: a PR that edits it gets green `tests` for free, so
    those checks count only once someone else approved exactly this head commit."""
    hostile = (GITHUB / "workflows" / "pull-request.yml").read_text().replace("python -m pytest", "true")
    work = make_pr(BASE_YAML, files={".github/workflows/pull-request.yml": hostile})
    FakeGitHub.files = [_file(".github/workflows/pull-request.yml"), _file("services.yaml")]
    FakeGitHub.reviews = [_review(r[0], r[1], FakeGitHub.head if r[2] == "head" else "f" * 40, *r[3:]) for r in reviews]
    FakeGitHub.check_runs = {
        n: [[_genuine(n, i)]] for i, n in enumerate(["validate services.yaml", "tests", "lint"], 1)
    }
    proc = _gate(work, runner_env)
    assert (proc.returncode == 0) is ok, proc.stdout
    if not ok:
        assert "changes the definitions the code checks run with (.github/workflows/pull-request.yml)" in proc.stdout


def test_the_gate_publishes_its_verdict_with_the_app_token(make_pr, runner_env):
    work = make_pr(BASE_YAML)
    FakeGitHub.check_runs = {
        n: [[_genuine(n, i)]] for i, n in enumerate(["validate services.yaml", "tests", "lint"], 1)
    }
    proc = _gate(work, runner_env, app=True)
    assert proc.returncode == 0, proc.stdout
    assert FakeGitHub.created[0]["token"] == "Bearer app-token", "the check run is the App's, not GitHub Actions'"
    final = _verdict()
    assert final["conclusion"] == "success" and "tests: success" in final["output"]["summary"]
    assert final["details_url"] == "https://github.invalid/example/models/actions/runs/4242"


def test_a_re_run_of_the_gate_cannot_reuse_an_old_review(make_pr, runner_env):
    """Re-running the gate of an old run reuses that run's review result: the gate compares what the review saw
    (head, description, labels) with the pull request now, and refuses when a confirmation has gone since."""
    work = make_pr(BASE_YAML)
    FakeGitHub.pr = _pr(body=f"Confirm-Delete: u-3f9a2c7e51d0/product-images@{DELETE}")
    seen = github_api.pr_state(FakeGitHub.pr)
    FakeGitHub.pr["body"] = "confirmation removed"
    FakeGitHub.check_runs = {
        n: [[_genuine(n, i)]] for i, n in enumerate(["validate services.yaml", "tests", "lint"], 1)
    }
    proc = _gate(work, runner_env, state=seen)
    assert proc.returncode == 1 and "description or labels changed since this run's review" in proc.stdout
    assert _verdict()["conclusion"] == "failure"
    assert _gate(work, runner_env).returncode == 0, "the run for the newest state decides"


def test_a_re_run_judges_the_current_head(make_pr, runner_env):
    """A re-run of an old run carries the old head in its event; the gate asks the API and refuses the old one."""
    work = make_pr(BASE_YAML)
    FakeGitHub.pr = _pr()
    FakeGitHub.pr["head"]["sha"] = "c" * 40
    proc = _gate(work, runner_env)
    assert proc.returncode == 1 and "the pull request moved on to cccccccccccc" in proc.stdout


# --- the deploy ---------------------------------------------------------------------------------------------------


@pytest.fixture
def deploy_dir(tmp_path, runner_env) -> Path:
    work = tmp_path / "deploy"
    work.mkdir()
    shutil.copytree(GITHUB, work / ".github")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # what setup-locked makes
    return work


@pytest.mark.parametrize("job", ["plan", "up"])
def test_deploy_refuses_a_commit_that_is_not_mains_head(deploy_dir, runner_env, fake_github, job):
    head = step(DEPLOY, job, "head")
    env = {**runner_env, "GITHUB_API_URL": fake_github, "GITHUB_SHA": "d" * 40}
    proc = run_step(head, deploy_dir, {"github.token": "test-token"}, env)
    assert proc.returncode == 1
    assert "::error title=deploy refused::this run is for dddddddddddd, but main is at bbbbbbbbbbbb" in proc.stdout
    proc = run_step(head, deploy_dir, {"github.token": "test-token"}, {**env, "GITHUB_SHA": "b" * 40})
    assert proc.returncode == 0, proc.stdout + proc.stderr


FAKE_PULUMI = r"""#!/bin/sh
echo "$*" >> "$PLAN_LOG"
case "$1" in
  preview) plan=$(echo "$*" | sed -n 's/.*--save-plan \([^ ]*\).*/\1/p'); echo '{"resourcePlans": {}}' > "$plan" ;;
  up) echo "$*" | grep -q -- "--plan $PLAN_DIR/plan.json" || exit 9 ;;
esac
echo "  ~ kubernetes:core/v1:ConfigMap modelsvc-catalog"
echo "      - name: ::error title=x::pwned"
echo "::set-env name=A::b"
echo '      ````` **x** `````'
exit "${FAKE_RC:-0}"
"""


def _pulumi_env(tmp_path: Path, runner_env, **extra) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    return {
        **runner_env,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PLAN_LOG": str(tmp_path / "pulumi.log"),
        "GITHUB_SHA": "b" * 40,
        **extra,
    }


def test_plan_then_up_applies_the_saved_plan_with_commands_stopped(deploy_dir, tmp_path, runner_env):
    plan_dir = str(Path(runner_env["RUNNER_TEMP"]) / "plan")
    env = _pulumi_env(tmp_path, runner_env)
    ctx = {
        "secrets.PULUMI_ACCESS_TOKEN": "t",
        "runner.temp": runner_env["RUNNER_TEMP"],
        "github.sha": "b" * 40,
        "github.event_name": "push",
    }
    preview = run_step(step(DEPLOY, "plan", "preview"), deploy_dir, ctx, env)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert Path(plan_dir, "plan.json").exists() and Path(plan_dir, "preview.txt").exists()
    up = run_step(step(DEPLOY, "up", "up"), deploy_dir, ctx, env)
    assert up.returncode == 0, up.stdout + up.stderr

    calls = Path(env["PLAN_LOG"]).read_text().splitlines()
    assert (
        calls[0].startswith("preview --stack prod --refresh --diff") and f"--save-plan {plan_dir}/plan.json" in calls[0]
    )
    assert calls[1].startswith(f"up --stack prod --plan {plan_dir}/plan.json --yes")
    for proc in (preview, up):
        lines = proc.stdout.splitlines()
        m = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[0])
        assert m, lines[0]
        end = lines.index(f"::{m.group(1)}::")
        assert any("::error title=x::pwned" in line for line in lines[:end]), "hostile lines only while stopped"
        assert _commands("\n".join(lines[end + 1 :])) == []
    summary = Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### pulumi preview (prod) of bbbbbbbbbbbb" in summary.replace("b" * 40, "b" * 12)
    assert "\n``````text\n" in summary, "the fence is longer than the longest backtick run in the diff"


def test_a_failed_preview_fails_the_step_and_keeps_the_summary(deploy_dir, tmp_path, runner_env):
    env = _pulumi_env(tmp_path, runner_env, FAKE_RC="3")
    ctx = {"secrets.PULUMI_ACCESS_TOKEN": "t", "runner.temp": runner_env["RUNNER_TEMP"]}
    proc = run_step(step(DEPLOY, "plan", "preview"), deploy_dir, ctx, env)
    assert proc.returncode == 3 and "::error title=pulumi preview::pulumi preview failed (exit 3)" in proc.stdout
    assert "ConfigMap modelsvc-catalog" in Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text()


def test_stack_outputs_go_to_the_job_summary(tmp_path, runner_env, deploy_dir):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(
        '#!/bin/sh\n[ "$*" = "stack output --json --stack prod" ] || exit 3\n'
        'echo \'{"gatewayUrl": "https://models.example.com/v1", "kubeconfig": "[secret]", '
        '"services": {"u-a/b": "ms-1"}}\'\n'
    )
    fake.chmod(0o755)
    s = next(s for s in DEPLOY["jobs"]["up"]["steps"] if "pulumi stack output" in s.get("run", ""))
    env = {**runner_env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = run_step(s, deploy_dir, {"secrets.PULUMI_ACCESS_TOKEN": "t"}, env)
    assert proc.returncode == 0, proc.stderr
    summary = Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### Stack outputs: `prod`" in summary
    assert "| `gatewayUrl` | `https://models.example.com/v1` |" in summary
    assert "| `kubeconfig` | `[secret]` |" in summary
    assert '| `services` | `{"u-a/b": "ms-1"}` |' in summary


def test_the_deploy_refuses_a_symlinked_catalog(tmp_path, runner_env):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    shutil.copytree(GITHUB, repo / ".github")
    shutil.copy(ROOT / "Pulumi.prod.yaml", repo / "Pulumi.prod.yaml")
    (repo / "real.yaml").write_text(BASE_YAML)
    (repo / "services.yaml").symlink_to("real.yaml")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "x")
    stack = step(DEPLOY, "validate", "stack")
    proc = run_step(stack, repo, {}, runner_env)
    assert proc.returncode == 1 and "services.yaml is a symlink" in proc.stderr
    (repo / "services.yaml").unlink()
    (repo / "services.yaml").write_text(BASE_YAML)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "regular")
    proc = run_step(stack, repo, {}, runner_env)
    assert proc.returncode == 0, proc.stderr
    assert Path(runner_env["GITHUB_OUTPUT"]).read_text().splitlines()[-2:] == [
        "catalog=services.yaml",
        "target=kubeconfig",
    ]


def _rules(**pull_request) -> list[dict]:
    """The rules of a branch as GET /repos/{owner}/{repo}/rules/branches/{branch} answers (description examples)."""
    review = {
        "required_approving_review_count": 1,
        "dismiss_stale_reviews_on_push": True,
        "require_code_owner_review": True,
        "require_last_push_approval": True,
        "required_review_thread_resolution": False,
    }
    rules: list[dict[str, object]] = [
        {"type": "pull_request", "parameters": {**review, **pull_request}},
        {"type": "required_status_checks", "parameters": {"strict_required_status_checks_policy": True,
            "required_status_checks": [{"context": "modelsvc gate", "integration_id": 4242}]}},
    ]  # fmt: skip
    for rule in rules:
        rule.update(ruleset_source_type="Repository", ruleset_source="example/models", ruleset_id=7)
    octokit.validate_response(rules, "/repos/{owner}/{repo}/rules/branches/{branch}")
    return rules


@pytest.mark.parametrize(
    "change, warns",
    [
        ({}, []),
        (
            {"dismiss_stale_reviews_on_push": False},
            ['"dismiss stale pull request approvals when new commits are pushed" is off'],
        ),
        ({"require_last_push_approval": False}, ['"require approval of the most recent reviewable push" is off']),
    ],
)
def test_the_deploy_warns_when_a_setting_the_trust_model_relies_on_is_off(deploy_dir, runner_env, change, warns):
    FakeGitHub.rules = _rules(**change)
    settings = step(DEPLOY, "plan", "settings")
    ctx = {"github.token": "test-token", "secrets.SETTINGS_TOKEN": ""}
    proc = run_step(settings, deploy_dir, ctx, {**runner_env, "GITHUB_API_URL": FakeGitHub.url})
    assert proc.returncode == 0, "a warning, never a failed deploy"
    got = [line.split("::", 2)[2] for line in proc.stdout.splitlines() if line.startswith("::warning")]
    assert got == [f"rulesets: {w} (docs/changing-a-service.md, 'Setting it up')" for w in warns]


def test_classic_protection_from_a_recorded_exchange_is_read_with_the_settings_token(deploy_dir, runner_env):
    """The protection GitHub answered in a recorded exchange (@octokit/fixtures `branch-protection`): one review
    required, stale approvals dismissed, but no approval of the last push, no code owners and no gate check."""
    [put] = [x for x in octokit.recorded("branch-protection") if x["method"] == "put" and x["status"] == 200 and
             (x["response"].get("required_pull_request_reviews") or {})]  # fmt: skip
    FakeGitHub.protection = put["response"]
    settings = step(DEPLOY, "plan", "settings")
    ctx = {"github.token": "test-token", "secrets.SETTINGS_TOKEN": "test-token"}
    proc = run_step(settings, deploy_dir, ctx, {**runner_env, "GITHUB_API_URL": FakeGitHub.url})
    assert proc.returncode == 0
    assert '"dismiss stale pull request approvals' not in proc.stdout, "on in the recorded protection"
    assert '"require approval of the most recent reviewable push" is off' in proc.stdout
    assert '"require review from Code Owners" is off' in proc.stdout
    assert "the check 'modelsvc gate' is not required" in proc.stdout
