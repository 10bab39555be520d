"""The lint set-up holds: mypy strict where pyproject.toml says (every flag `--strict` turns on, read from mypy
itself), and `./dev lint`, .ci/run, the PR workflow's lint job and the pre-commit hooks run the same tools."""

from __future__ import annotations

import tomllib

import mypy.main
import yaml
from pre_commit.clientlib import load_config

from tests.conftest import ROOT

STRICT = ["modelsvc.catalog.*", "gateway.backends.*", "modelsvc.review.*"]


def _mypy() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def test_the_strict_modules_get_every_flag_of_mypy_strict():
    config = _mypy()
    (strict,) = [o for o in config["overrides"] if o["module"] == STRICT]
    _, _, assignments = mypy.main.define_options()
    for flag, value in assignments:
        where = config if flag in ("warn_unused_configs", "warn_unused_ignores", "warn_redundant_casts") else strict
        assert where.get(flag) is value, f"{flag} = {str(value).lower()} is missing"
    assert "strict" not in config  # it would apply to every module


def test_ci_the_pr_workflow_and_the_hooks_run_the_same_lint():
    dev = (ROOT / "dev").read_text()
    for command in (".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy"):
        assert command in dev
    assert "./dev lint" in (ROOT / ".ci" / "run").read_text()
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]["lint"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs == ["ruff check --output-format github .", "ruff format --check .", "mypy"]
    hooks = {h["id"]: h for repo in load_config(str(ROOT / ".pre-commit-config.yaml"))["repos"] for h in repo["hooks"]}
    assert [h["entry"].split()[0] for h in hooks.values()] == [".venv/bin/ruff", ".venv/bin/ruff", ".venv/bin/mypy"]
    assert hooks["mypy"]["pass_filenames"] is False
