"""`modelsvc model-repo` and the recipe check of `modelsvc validate`, as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.modelrepo import RepoError, templates
from infra.modelrepo import load as load_repo
from modelsvc.catalog import load
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # every test here runs the CLI as a subprocess

MODELSVC = str(Path(sys.executable).parent / "modelsvc")
EXAMPLE = load(str(ROOT / "services.yaml"))


def run(*args):
    return subprocess.run([MODELSVC, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def tpl(task: str) -> Path:
    try:
        return templates.for_task(task)
    except RepoError as e:
        pytest.fail(str(e))


@pytest.mark.parametrize(
    "svc", [s for s in EXAMPLE.services if EXAMPLE.model_of(s).backend.value == "triton"], ids=lambda s: s.access_name
)
def test_every_example_service_builds_on_the_pinned_release(tmp_path, svc):
    model = EXAMPLE.model_of(svc)
    r = run("model-repo", svc.access_name, "--templates", tpl(model.task.value), "--out", tmp_path / "repo")
    assert r.returncode == 0, r.stderr
    written = [Path(line) for line in r.stdout.splitlines()]
    assert all("${" not in p.read_text() for p in written)
    assert model.triton_model_name in load_repo(tmp_path / "repo")


def test_a_template_lacking_a_key_is_a_located_failure(tmp_path):
    copy = tmp_path / "all_models"
    shutil.copytree(tpl("chat"), copy)
    cfg = copy / "inflight_batcher_llm" / "postprocessing" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("${skip_special_tokens}", "True"))
    r = run("model-repo", "u-8105f7322477/test", "--templates", copy, "--out", tmp_path / "repo")
    assert r.returncode == 1
    assert f"{cfg}: key 'skip_special_tokens' does not exist in the template" in r.stderr
    assert not (tmp_path / "repo").exists()


def test_openai_backend_services_have_no_repository(tmp_path):
    svc = next(s for s in EXAMPLE.services if EXAMPLE.model_of(s).backend.value == "openai")
    r = run("model-repo", svc.access_name, "--templates", tpl("chat"), "--out", tmp_path / "repo")
    assert r.returncode == 1 and "no model repository is built" in r.stderr


def test_validate_refuses_a_model_without_a_recipe(tmp_path):
    text = (ROOT / "services.yaml").read_text()
    text = text.replace("s3://example-models/stable-diffusion-xl-base-1.0", "s3://example-models/flux-1-dev")
    path = tmp_path / "services.yaml"
    path.write_text(text)
    line = text.splitlines().index("  stable-diffusion-xl:") + 1
    r = run("validate", path)
    assert r.returncode == 1
    assert f"{path}:{line}:3: model 'stable-diffusion-xl' cannot be deployed" in r.stderr
    assert "Stable Diffusion 1.5 and XL only" in r.stderr
