"""The build Job's template and model-repository steps, run as the Job carries them, on NVIDIA's real templates.

The serving image's template directory (/app/all_models, or the diffusion image's models) is stood in for by the
fixture tree; /work becomes a temp dir. Everything else (the shell, the spec JSON, `python -m infra.modelrepo`) is the
Job's own text, so a recipe the Job cannot build fails here rather than in a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from infra.cache import engine_builds
from infra.manifests import triton
from infra.modelrepo import templates
from infra.modelrepo.errors import RepoError
from infra.settings import Settings

pytestmark = pytest.mark.e2e  # every test here runs the build Job's shell steps

S = Settings()


def _steps(job: dict) -> dict:
    return {c["name"]: c for c in job["spec"]["template"]["spec"]["initContainers"]}


def _run(script: str, env: dict, work, image_templates: tuple[str, str] = ("", "")) -> subprocess.CompletedProcess:
    # the Job's paths, moved under the test's temp dir; python is this interpreter (the gateway image's); the
    # serving image's template directory becomes the fixture release
    script = script.replace("/work/", f"{work}/").replace("exec python ", f"exec {sys.executable} ")
    script = script.replace(*image_templates)
    return subprocess.run(["sh", "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("task", ["chat", "vision-chat", "image-generation"])
def test_every_example_build_writes_a_parsing_repository(example, task, tmp_path):
    jobs = [
        (key, services)
        for key, services in engine_builds(example, S).items()
        if example.model_of(services[0]).task.value == task
    ]
    assert jobs, f"the example catalog has no {task} service"
    try:
        source = templates.for_task(task)
    except RepoError as e:
        pytest.fail(str(e))
    for key, services in jobs:
        work = tmp_path / key
        (work / "templates").mkdir(parents=True)
        steps = _steps(triton.engine_job(example, key, services, S))
        image_dir = triton._templates_dir(example.model_of(services[0]))
        done = _run(steps["templates"]["args"][0], {}, work, (image_dir, str(source)))
        assert done.returncode == 0, done.stderr
        repo_step = steps["model-repo"]
        env = {e["name"]: e["value"] for e in repo_step["env"]}
        done = _run(repo_step["args"][0], env, work)
        assert done.returncode == 0, done.stderr
        configs = sorted((work / "out" / "repo").glob("*/config.pbtxt"))
        assert configs, "the step wrote no model"
        served = example.model_of(services[0]).triton_model_name
        assert served in {c.parent.name for c in configs}
        for path in configs:
            text = path.read_text()
            assert "${" not in text, f"{path}: placeholder left"
            text_format.Parse(text, model_config_pb2.ModelConfig())


def test_a_template_missing_a_key_fails_the_step(example, tmp_path):
    key, services = next(
        (k, s) for k, s in engine_builds(example, S).items() if example.model_of(s[0]).task.value == "chat"
    )
    work = tmp_path / "w"
    (work / "templates").mkdir(parents=True)
    steps = _steps(triton.engine_job(example, key, services, S))
    assert (
        _run(steps["templates"]["args"][0], {}, work, ("/app/all_models", str(templates.for_task("chat")))).returncode
        == 0
    )
    pre = work / "templates" / "inflight_batcher_llm" / "preprocessing" / "config.pbtxt"
    pre.write_text(pre.read_text().replace("${tokenizer_dir}", "/fixed"))
    env = {e["name"]: e["value"] for e in steps["model-repo"]["env"]}
    done = _run(steps["model-repo"]["args"][0], env, work)
    assert done.returncode != 0
    assert "tokenizer_dir" in done.stderr and "preprocessing" in done.stderr
    assert not (work / "out" / "repo" / "ensemble").exists()  # nothing half-written for the upload step
