"""Fixtures for the workflow tests (helpers in workflow_steps.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runner_env(tmp_path: Path) -> dict[str, str]:
    """The variables the runner sets for every step, pointing at files under a temporary folder."""
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    summary = temp / "step-summary.md"
    output = temp / "step-output"
    summary.touch()
    output.touch()
    return {
        "RUNNER_TEMP": str(temp),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_WORKSPACE": str(tmp_path / "work"),
        "GITHUB_REPOSITORY": "example/models",
        "CI": "true",
    }
