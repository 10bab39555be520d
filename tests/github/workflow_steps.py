"""Helpers for the workflow tests: load the workflow files and run their `run:` steps as GitHub would.

Steps are taken from the workflow files themselves (by job and step id), so a test exercises the script that CI
runs, not a copy of it. A step's `env:` may use `${{ ... }}` expressions; a test passes the value of each one it
expects, and an expression nobody gave a value for fails the test (it would be a silent empty string otherwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
VENV_BIN = Path(sys.executable).parent

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# What the runner runs for `shell: bash` (the default on Linux runners).
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def load_yaml(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in doc:  # YAML 1.1 reads the key `on` as the boolean true
        doc["on"] = doc.pop(True)
    return doc


def workflow(name: str) -> dict:
    return load_yaml(WORKFLOWS / name)


def step(wf: dict, job: str, step_id: str) -> dict:
    for s in wf["jobs"][job]["steps"]:
        if s.get("id") == step_id:
            return s
    raise KeyError(f"no step with id {step_id!r} in job {job!r}")


def resolve(value: str, context: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        expr = m.group(1)
        if expr not in context:
            raise AssertionError(f"the test gives no value for the expression ${{{{ {expr} }}}}")
        return context[expr]

    return _EXPR.sub(sub, str(value))


def run_step(s: dict, cwd: Path, context: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a workflow step's `run:` script with bash as the runner does; returns the finished process."""
    assert s.get("shell", "bash") == "bash", s
    script = s["run"]
    assert "${{" not in script, "run: scripts take their inputs from env:, never from ${{ }} (injection)"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    full_env.update(env)
    # As `.github/actions/setup` does with $GITHUB_PATH: the venv's python and modelsvc come first.
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update({k: resolve(v, context) for k, v in (s.get("env") or {}).items()})
    script_file = Path(env["RUNNER_TEMP"]) / f"step-{s.get('id', 'x')}.sh"
    script_file.write_text(script, encoding="utf-8")
    return subprocess.run([*BASH, str(script_file)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)
