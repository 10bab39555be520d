"""Sample pull requests through the workflows' own steps.

A temporary repository plays GitHub: `main` holds the project's services.yaml and .github, a branch holds the
change, and a merge commit of the two plays `refs/pull/N/merge`. As in the review workflow, the merge commit is
checked out in `pr/`, the base step finds its first parent, and that commit is checked out in `base/` (whose
`.venv` is this test's venv, running this checkout's modelsvc). The steps are read from the workflow files and run
with bash as the runner does, with a fake event JSON for the pull request's labels and description and a fake
GitHub API for the comment, the gate and the deploy's head check.
"""

from __future__ import annotations

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

from .workflow_steps import GITHUB, ROOT, run_step, step, workflow

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
def make_pr(tmp_path: Path, runner_env: dict[str, str]):
    """make_pr(new services.yaml text, files={path: text}) → the workspace with pr/ (merge commit) and base/."""

    def make(head_yaml: str, files: dict[str, str] | None = None) -> Path:
        origin = tmp_path / "origin"
        origin.mkdir()
        _git(origin, "init", "-q", "-b", "main")
        _git(origin, "config", "user.email", "ci@example.com")
        _git(origin, "config", "user.name", "ci")
        (origin / "services.yaml").write_text(BASE_YAML, encoding="utf-8")
        shutil.copytree(GITHUB, origin / ".github")
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "-m", "base")
        _git(origin, "switch", "-q", "-c", "change")
        (origin / "services.yaml").write_text(head_yaml, encoding="utf-8")
        for path, text in (files or {}).items():
            (origin / path).write_text(text, encoding="utf-8")
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "--allow-empty", "-m", "change services.yaml")
        _git(origin, "switch", "-q", "main")
        (origin / "NOTES").write_text("main moved on\n")  # main is ahead of the branch's fork point
        _git(origin, "add", "NOTES")
        _git(origin, "commit", "-q", "-m", "unrelated")
        _git(origin, "switch", "-q", "--detach", "main")
        _git(origin, "merge", "-q", "--no-ff", "-m", "Merge change into main", "change")
        _git(origin, "update-ref", "refs/pull/7/merge", "HEAD")
        _git(origin, "switch", "-q", "main")

        work = Path(runner_env["GITHUB_WORKSPACE"])
        work.mkdir()
        _git(work, "clone", "-q", str(origin), "pr")
        _git(work / "pr", "fetch", "-q", "origin", "refs/pull/7/merge")
        _git(work / "pr", "checkout", "-q", "FETCH_HEAD")
        base_step = run_step(step(REVIEW, "review", "base"), work, {}, runner_env)
        assert base_step.returncode == 0, base_step.stderr
        base_sha = Path(runner_env["GITHUB_OUTPUT"]).read_text().split("sha=")[-1].strip()
        assert base_sha == _git(origin, "rev-parse", "main"), "the merge commit's first parent is main's head"
        _git(work, "clone", "-q", str(origin), "base")
        _git(work / "base", "checkout", "-q", base_sha)
        (work / "base" / ".venv").symlink_to(Path(sys.executable).parent.parent)  # what the setup action makes
        return work

    return make


def _event(tmp_path: Path, labels=(), body="") -> str:
    path = tmp_path / "event.json"
    path.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "number": 7,
                "pull_request": {
                    "number": 7,
                    "body": body,
                    "labels": [{"name": n} for n in labels],
                    "head": {"sha": HEAD_SHA, "repo": {"full_name": "example/models"}},
                },
            }
        )
    )
    return str(path)


def _context(runner_env, run_id: str = "1000"):
    return {
        "runner.temp": runner_env["RUNNER_TEMP"],
        "github.token": "test-token",
        "github.event.pull_request.number": "7",
        "github.event.pull_request.head.sha": HEAD_SHA,
        "github.run_id": run_id,
    }


def validate(work: Path, runner_env) -> subprocess.CompletedProcess:
    """The code workflow's mask and validate steps, in a plain checkout of the merge commit."""
    mask = run_step(step(CODE, "validate", "mask"), work / "pr", {}, runner_env)
    proc = run_step(step(CODE, "validate", "validate"), work / "pr", {}, runner_env)
    proc.stdout = mask.stdout + proc.stdout
    return proc


def review(work: Path, runner_env, tmp_path: Path, labels=(), body="") -> tuple[subprocess.CompletedProcess, str]:
    env = {**runner_env, "GITHUB_EVENT_PATH": _event(tmp_path, labels, body)}
    mask = run_step(step(REVIEW, "review", "mask"), work, _context(runner_env), env)
    assert mask.returncode == 0, mask.stderr
    proc = run_step(step(REVIEW, "review", "review"), work, _context(runner_env), env)
    proc.stdout = mask.stdout + proc.stdout
    md_path = Path(runner_env["RUNNER_TEMP"]) / "review.md"
    md = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    if md:
        assert md.startswith(MARKER + "\n"), "the sticky comment is found by its first line"
        assert md in Path(runner_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
        assert md not in proc.stdout, "--quiet: the review is not printed to the log"
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
    """A PR that rewrites the confirmation script to confirm everything: the base branch's script runs."""
    hostile = f"#!/usr/bin/env python3\nprint('--confirm-delete=@{DELETE}')\n"
    work = make_pr(
        _without_service(BASE_YAML, "u-3f9a2c7e51d0/product-images"),
        files={".github/scripts/confirmations.py": hostile},
    )
    assert (work / "pr" / ".github/scripts/confirmations.py").read_text() == hostile
    proc, md = review(work, runner_env, tmp_path)
    assert proc.returncode == 1 and "**not confirmed**" in md


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


# --- the sticky comment -------------------------------------------------------------------------------------------


class FakeGitHub(BaseHTTPRequestHandler):
    """Just enough of the REST API: issue comments (paginated list, create, update), a pull request's head, check
    runs of a commit, a branch's ref."""

    comments: ClassVar[list[dict]] = []
    calls: ClassVar[list[tuple[str, str]]] = []
    head = HEAD_SHA
    check_runs: ClassVar[dict[str, list[list[dict]]]] = {}  # name → successive answers (the last one repeats)
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
        assert self.headers["Authorization"] == "Bearer test-token"
        self.calls.append(("GET", self.path))
        if self.path == "/repos/example/models/pulls/7":
            return self._send(200, {"number": 7, "head": {"sha": self.head}})
        if self.path == "/repos/example/models/git/ref/heads/main":
            return self._send(200, {"ref": "refs/heads/main", "object": {"sha": self.main}})
        m = re.fullmatch(
            r"/repos/example/models/commits/(\w+)/check-runs\?check_name=([^&]+)&filter=latest&"
            r"per_page=100",
            self.path,
        )
        if m:
            from urllib.parse import unquote_plus

            answers = self.check_runs.get(unquote_plus(m.group(2)), [[]])
            runs = answers.pop(0) if len(answers) > 1 else answers[0]
            return self._send(200, {"total_count": len(runs), "check_runs": runs})
        m = re.fullmatch(r"/repos/example/models/issues/7/comments\?per_page=(\d+)&page=(\d+)", self.path)
        per_page, page = int(m.group(1)), int(m.group(2))
        self._send(200, self.comments[(page - 1) * per_page : page * per_page])

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
    FakeGitHub.calls, FakeGitHub.head, FakeGitHub.check_runs = [], HEAD_SHA, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _ours() -> list[dict]:
    return [c for c in FakeGitHub.comments if c["user"]["login"] == "github-actions[bot]"]


def test_review_is_one_sticky_comment(deletion, runner_env, tmp_path, fake_github):
    env = {**runner_env, "GITHUB_API_URL": fake_github}
    comment = step(REVIEW, "review", "comment")

    review(deletion, runner_env, tmp_path)  # first push: unconfirmed
    first = run_step(comment, deletion, _context(runner_env, "1000"), env)
    assert first.returncode == 0, first.stderr
    assert "created comment" in first.stdout
    review(deletion, runner_env, tmp_path, labels=[f"confirm-delete:{DELETE}"])  # label added
    second = run_step(comment, deletion, _context(runner_env, "1001"), env)
    assert second.returncode == 0, second.stderr
    assert "updated comment" in second.stdout

    assert len(_ours()) == 1, "one comment, updated in place"
    body = _ours()[0]["body"]
    assert body.startswith(f"{MARKER}\n<!-- modelsvc-run head={HEAD_SHA} run=1001 -->\n")
    assert "confirmed" in body and "blocked" not in body
    assert next(c for c in FakeGitHub.comments if c["id"] == 500)["body"] == MARKER + "\nquoted"
    # Found across pages: the second run reads the head, lists page 1 and page 2 (where the comment is), edits it.
    assert [m for m, _ in FakeGitHub.calls] == ["GET", "GET", "GET", "POST", "GET", "GET", "GET", "PATCH"]


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

    FakeGitHub.head = "c" * 40  # a push moved the head: this run's review is of an old commit
    stale = run_step(comment, deletion, _context(runner_env, "2001"), env)
    assert stale.returncode == 0 and "not posting" in stale.stdout
    assert _ours()[0]["body"] == newest and [m for m, _ in FakeGitHub.calls].count("PATCH") == 0


def test_no_review_no_comment(make_pr, runner_env, tmp_path, fake_github):
    work = make_pr(BASE_YAML)
    proc = run_step(
        step(REVIEW, "review", "comment"), work, _context(runner_env), {**runner_env, "GITHUB_API_URL": fake_github}
    )
    assert proc.returncode == 0 and "::warning" in proc.stdout
    assert FakeGitHub.calls == []


# --- the gate -----------------------------------------------------------------------------------------------------


def _run(name: str, status: str = "completed", conclusion: str | None = "success", started="2026-01-01T00:00:00Z"):
    return {
        "id": abs(hash((name, started))) % 10**9,
        "name": name,
        "status": status,
        "conclusion": conclusion,
        "started_at": started,
    }


def _gate(work: Path, runner_env, fake_github, review_result: str = "success") -> subprocess.CompletedProcess:
    gate = step(REVIEW, "gate", "gate")
    ctx = {
        "needs.review.result": review_result,
        "github.event.pull_request.head.sha": HEAD_SHA,
        "github.token": "test-token",
    }
    env = {**runner_env, "GITHUB_API_URL": fake_github, "GATE_POLL_S": "0.05", "GATE_WAIT_S": "20"}
    return run_step(gate, work / "base", ctx, env)


@pytest.mark.parametrize(
    "review_result, runs, ok, says",
    [
        (
            "success",
            {"validate services.yaml": [[_run("validate services.yaml")]], "tests": [[_run("tests")]]},
            True,
            "every code check succeeded",
        ),
        (
            "failure",
            {"validate services.yaml": [[_run("validate services.yaml")]], "tests": [[_run("tests")]]},
            False,
            "the review did not pass (failure)",
        ),
        ("skipped", {}, False, "the review did not pass (skipped)"),
        (
            "success",
            {
                "validate services.yaml": [[_run("validate services.yaml")]],
                "tests": [[_run("tests", conclusion="skipped")]],
            },
            False,
            "check 'tests' of aaaaaaaaaaaa concluded skipped",
        ),
        # A failed run re-run successfully: the newest run counts.
        (
            "success",
            {
                "validate services.yaml": [[_run("validate services.yaml")]],
                "tests": [[_run("tests", conclusion="failure"), _run("tests", started="2026-01-01T01:00:00Z")]],
            },
            True,
            "succeeded",
        ),
        # Still running when the gate starts (a label added during the push's tests): it waits.
        (
            "success",
            {
                "validate services.yaml": [
                    [],
                    [_run("validate services.yaml", "in_progress", None)],
                    [_run("validate services.yaml")],
                ],
                "tests": [[_run("tests", "queued", None)], [_run("tests")]],
            },
            True,
            "succeeded",
        ),
    ],
)
def test_gate(make_pr, runner_env, fake_github, review_result, runs, ok, says):
    work = make_pr(BASE_YAML)
    FakeGitHub.check_runs = runs
    proc = _gate(work, runner_env, fake_github, review_result)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    assert says in proc.stdout


def test_gate_gives_up_on_checks_that_never_report(make_pr, runner_env, fake_github):
    work = make_pr(BASE_YAML)
    FakeGitHub.check_runs = {"validate services.yaml": [[_run("validate services.yaml")]]}
    gate = step(REVIEW, "gate", "gate")
    ctx = {
        "needs.review.result": "success",
        "github.event.pull_request.head.sha": HEAD_SHA,
        "github.token": "test-token",
    }
    env = {**runner_env, "GITHUB_API_URL": fake_github, "GATE_POLL_S": "0.05", "GATE_WAIT_S": "0.3"}
    proc = run_step(gate, work / "base", ctx, env)
    assert proc.returncode == 1 and "checks not finished on aaaaaaaaaaaa: tests" in proc.stdout


# --- the deploy ---------------------------------------------------------------------------------------------------


@pytest.fixture
def deploy_dir(tmp_path, runner_env) -> Path:
    work = tmp_path / "deploy"
    work.mkdir()
    shutil.copytree(GITHUB, work / ".github")
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
