"""A sample pull request through the workflow's own steps.

A temporary repository plays the checkout CI makes: `origin/main` holds the project's services.yaml, a branch
holds the change. The validate, review and comment steps are read from .github/workflows/pull-request.yml and run
with bash as the runner does, with a fake event JSON for the pull request's labels and description.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .workflow_steps import GITHUB, ROOT, run_step, step, workflow

MARKER = "<!-- modelsvc-review -->"
BASE_YAML = (ROOT / "services.yaml").read_text(encoding="utf-8")
PR = workflow("pull-request.yml")
DEPLOY = workflow("deploy.yml")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def make_pr(tmp_path: Path, runner_env: dict[str, str]):
    """make_pr(new services.yaml text) → the working tree of a checkout of the PR branch, with origin/main."""

    def make(head_yaml: str) -> Path:
        origin = tmp_path / "origin"
        origin.mkdir()
        _git(origin, "init", "-q", "-b", "main")
        _git(origin, "config", "user.email", "ci@example.com")
        _git(origin, "config", "user.name", "ci")
        (origin / "services.yaml").write_text(BASE_YAML, encoding="utf-8")
        shutil.copytree(GITHUB, origin / ".github")
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "-m", "base")
        work = Path(runner_env["GITHUB_WORKSPACE"])
        _git(tmp_path, "clone", "-q", str(origin), str(work))
        _git(work, "config", "user.email", "dev@example.com")
        _git(work, "config", "user.name", "dev")
        _git(work, "switch", "-q", "-c", "change")
        (work / "services.yaml").write_text(head_yaml, encoding="utf-8")
        _git(work, "commit", "-q", "--allow-empty", "-am", "change services.yaml")
        return work

    return make


def _event(tmp_path: Path, labels=(), body="") -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"action": "synchronize", "number": 7, "pull_request": {
        "number": 7, "body": body, "labels": [{"name": n} for n in labels],
        "head": {"repo": {"full_name": "example/models"}}}}))
    return str(path)


def _context(runner_env):
    return {"github.base_ref": "main", "runner.temp": runner_env["RUNNER_TEMP"], "github.token": "test-token",
            "github.event.pull_request.number": "7"}


def validate(work: Path, runner_env) -> subprocess.CompletedProcess:
    return run_step(step(PR, "review", "validate"), work, _context(runner_env), runner_env)


def review(work: Path, runner_env, tmp_path: Path, labels=(), body="") -> tuple[subprocess.CompletedProcess, str]:
    env = {**runner_env, "GITHUB_EVENT_PATH": _event(tmp_path, labels, body)}
    proc = run_step(step(PR, "review", "review"), work, _context(runner_env), env)
    md_path = Path(runner_env["RUNNER_TEMP"]) / "review.md"
    md = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    if md:
        assert md.startswith(MARKER + "\n"), "the sticky comment is found by its first line"
        assert md in Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    return proc, md


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


def test_unchanged_passes(make_pr, runner_env, tmp_path):
    work = make_pr(BASE_YAML)
    v = validate(work, runner_env)
    assert v.returncode == 0 and "::error" not in v.stdout
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "**Result: ✅ passes**" in md


def test_rename_is_flagged_breaking(make_pr, runner_env, tmp_path):
    work = make_pr(_replace(BASE_YAML, "access_name: u-8105f7322477/test\n", "access_name: u-8105f7322477/test-v2\n"))
    assert validate(work, runner_env).returncode == 0
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 0, "a rename passes, loudly"
    assert "⚠️ **renamed** `u-8105f7322477/test` → `u-8105f7322477/test-v2` (ms-1d033c426254)" in md
    assert "**breaking**" in md and "will get 404" in md
    assert "passes with breaking changes" in md


@pytest.fixture
def deletion(make_pr):
    return make_pr(_without_service(BASE_YAML, "u-3f9a2c7e51d0/product-images"))


def test_deletion_fails_without_confirmation(deletion, runner_env, tmp_path):
    assert validate(deletion, runner_env).returncode == 0
    proc, md = review(deletion, runner_env, tmp_path, labels=["infra"], body="Removing the image service.")
    assert proc.returncode == 1
    assert "❌ removed `u-3f9a2c7e51d0/product-images` (ms-ab2970f31223): **not confirmed**" in md
    assert "`confirm-delete:u-3f9a2c7e51d0/product-images`" in md
    assert "**Result: ❌ blocked**" in md


def test_deletion_confirmed_by_label(deletion, runner_env, tmp_path):
    proc, md = review(deletion, runner_env, tmp_path, labels=["confirm-delete:u-3f9a2c7e51d0/product-images"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "🗑️ removed `u-3f9a2c7e51d0/product-images` (ms-ab2970f31223): confirmed" in md
    assert "blocked" not in md


def test_deletion_confirmed_by_description_line(deletion, runner_env, tmp_path):
    body = "Image generation moves to the new cluster.\r\n\r\nConfirm-Delete: u-3f9a2c7e51d0/product-images\r\n"
    proc, md = review(deletion, runner_env, tmp_path, body=body)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed `u-3f9a2c7e51d0/product-images` (ms-ab2970f31223): confirmed" in md


@pytest.mark.parametrize("labels, body", [
    # Another service's confirmation does not count.
    (["confirm-delete:u-3f9a2c7e51d0/receipts"], "Confirm-Delete: u-8105f7322477/test"),
    # A line hidden in an HTML comment (as in the pull request template) is not a confirmation.
    ([], "<!--\nConfirm-Delete: u-3f9a2c7e51d0/product-images\n-->"),
    # Shell in the description is text, never code: it reaches no script and confirms nothing.
    ([], 'Confirm-Delete: u-3f9a2c7e51d0/product-images"; touch pwned; echo "'),
    ([], "Confirm-Delete: $(touch pwned)"),
])
def test_deletion_not_confirmed_by_anything_else(deletion, runner_env, tmp_path, labels, body):
    proc, md = review(deletion, runner_env, tmp_path, labels=labels, body=body)
    assert proc.returncode == 1 and "**not confirmed**" in md
    assert not (deletion / "pwned").exists()


def test_scale_up_shows_gpu_delta(make_pr, runner_env, tmp_path):
    head = _replace(BASE_YAML, "model: llama-3.1-70b-instruct\n    instances: 2\n",
                    "model: llama-3.1-70b-instruct\n    instances: 4\n")
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
    head = _replace(BASE_YAML, "    model: stable-diffusion-xl\n    instances: 1\n",
                    "    model: stable-diffusion-xll\n    instances: -1\n")
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


def test_missing_base_branch_fails_the_step(make_pr, runner_env, tmp_path):
    work = make_pr(BASE_YAML)
    _git(work, "update-ref", "-d", "refs/remotes/origin/main")
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 2 and md == ""
    assert "cannot read origin/main:services.yaml" in proc.stderr


# --- the sticky comment -------------------------------------------------------------------------------------------


class FakeGitHub(BaseHTTPRequestHandler):
    """Just enough of the issue-comments REST API: list (paginated), create, update."""

    comments: list[dict] = []
    calls: list[tuple[str, str]] = []

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
        assert self.headers["Authorization"] == "Bearer test-token"
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self):
        self.calls.append(("GET", self.path))
        m = re.fullmatch(r"/repos/example/models/issues/7/comments\?per_page=(\d+)&page=(\d+)", self.path)
        per_page, page = int(m.group(1)), int(m.group(2))
        self._send(200, self.comments[(page - 1) * per_page: page * per_page])

    def do_POST(self):
        self.calls.append(("POST", self.path))
        assert self.path == "/repos/example/models/issues/7/comments"
        c = {"id": 1000 + len(self.comments), "user": {"login": "github-actions[bot]"}, "body": self._body()["body"]}
        self.comments.append(c)
        self._send(201, c)

    def do_PATCH(self):
        self.calls.append(("PATCH", self.path))
        cid = int(self.path.rsplit("/", 1)[1])
        c = next(c for c in self.comments if c["id"] == cid)
        c["body"] = self._body()["body"]
        self._send(200, c)


@pytest.fixture
def fake_github():
    FakeGitHub.comments = [{"id": i, "user": {"login": f"user{i}"}, "body": f"comment {i}"} for i in range(150)]
    # A person quoting the marker does not own the sticky comment.
    FakeGitHub.comments.append({"id": 500, "user": {"login": "someone"}, "body": MARKER + "\nquoted"})
    FakeGitHub.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_review_is_one_sticky_comment(make_pr, runner_env, tmp_path, fake_github):
    work = make_pr(_without_service(BASE_YAML, "u-3f9a2c7e51d0/product-images"))
    env = {**runner_env, "GITHUB_API_URL": fake_github}
    comment = step(PR, "review", "comment")

    review(work, runner_env, tmp_path)  # first push: unconfirmed
    first = run_step(comment, work, _context(runner_env), env)
    assert first.returncode == 0, first.stderr
    assert "created comment" in first.stdout
    review(work, runner_env, tmp_path, labels=["confirm-delete:u-3f9a2c7e51d0/product-images"])  # label added
    second = run_step(comment, work, _context(runner_env), env)
    assert second.returncode == 0, second.stderr
    assert "updated comment" in second.stdout

    ours = [c for c in FakeGitHub.comments if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1, "one comment, updated in place"
    assert ours[0]["body"].startswith(MARKER) and "confirmed" in ours[0]["body"] and "blocked" not in ours[0]["body"]
    assert next(c for c in FakeGitHub.comments if c["id"] == 500)["body"] == MARKER + "\nquoted"
    # Found across pages: the second run lists page 1 and page 2 (where the comment is), then edits it.
    assert [m for m, _ in FakeGitHub.calls] == ["GET", "GET", "POST", "GET", "GET", "PATCH"]


def test_no_review_no_comment(make_pr, runner_env, tmp_path, fake_github):
    work = make_pr(BASE_YAML)
    proc = run_step(step(PR, "review", "comment"), work, _context(runner_env),
                    {**runner_env, "GITHUB_API_URL": fake_github})
    assert proc.returncode == 0 and "::warning" in proc.stdout
    assert FakeGitHub.calls == []


# --- the deploy's stack outputs ----------------------------------------------------------------------------------


def test_stack_outputs_go_to_the_job_summary(tmp_path, runner_env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text('#!/bin/sh\n[ "$*" = "stack output --json --stack prod" ] || exit 3\n'
                    'echo \'{"gatewayUrl": "https://models.example.com/v1", "kubeconfig": "[secret]", '
                    '"services": {"u-a/b": "ms-1"}}\'\n')
    fake.chmod(0o755)
    s = next(s for s in DEPLOY["jobs"]["deploy"]["steps"] if "pulumi stack output" in s.get("run", ""))
    env = {**runner_env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    (tmp_path / "work").mkdir()
    shutil.copytree(GITHUB, tmp_path / "work" / ".github")
    proc = run_step(s, tmp_path / "work", {"secrets.PULUMI_ACCESS_TOKEN": "t"}, env)
    assert proc.returncode == 0, proc.stderr
    summary = Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### Stack outputs: `prod`" in summary
    assert "| `gatewayUrl` | `https://models.example.com/v1` |" in summary
    assert "| `kubeconfig` | `[secret]` |" in summary
    assert '| `services` | `{"u-a/b": "ms-1"}` |' in summary
