"""infra/scripts/build_engine.py, the build Job's GPU step, where it can run without a GPU: the image-generation
path (start tritonserver on the filled repository, wait until the model is ready, stop) with a stand-in
`tritonserver` on PATH, and the config parsing on the Triton tutorials' real Stable Diffusion configs."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from infra.manifests import scripts
from infra.modelrepo import templates
from infra.modelrepo.errors import RepoError

# A stand-in for tritonserver: records its arguments, "builds" an engine file into the model's version directory,
# answers /v2/models/<name>/ready with 200 once that is done (or exits 1 when FAKE_FAIL is set).
FAKE_TRITONSERVER = r"""#!PYTHON
import http.server, json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
json.dump(sys.argv[1:], open(os.environ["FAKE_ARGS"], "w"))
if os.environ.get("FAKE_FAIL"):
    sys.exit(1)
name = args["load-model"]
open(os.path.join(args["model-repository"], name, "1", "engine.plan"), "w").write("built")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == f"/v2/models/{name}/ready" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(args["http-port"])), H).serve_forever()
"""


def _templates() -> Path:
    try:
        return templates.for_task("image-generation")
    except RepoError as e:
        pytest.fail(str(e))


def _load_script():
    spec = importlib.util.spec_from_file_location("build_engine", scripts.SCRIPTS_DIR / "build_engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # top level imports only the standard library: it runs in NVIDIA's image
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("variant, version", [("stable_diffusion_1_5", "1.5"), ("stable_diffusion_xl", "xl-1.0")])
def test_diffusion_version_from_the_tutorial_config_and_from_protobuf_text(variant, version):
    build_engine = _load_script()
    text = (_templates() / variant / "config.pbtxt").read_text()
    assert build_engine.diffusion_version(text) == version  # the tutorial writes `value: {`
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert build_engine.diffusion_version(text_format.MessageToString(config)) == version  # protobuf: `value {`


def _work(tmp_path: Path) -> tuple[Path, dict]:
    work = tmp_path / "work"
    model = work / "out" / "repo" / "stable_diffusion"
    model.mkdir(parents=True)
    (model / "config.pbtxt").write_text((_templates() / "stable_diffusion_xl" / "config.pbtxt").read_text())
    (work / "checkpoint" / "unet").mkdir(parents=True)
    (work / "checkpoint" / "model_index.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tritonserver"
    fake.write_text(FAKE_TRITONSERVER.replace("PYTHON", sys.executable))
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "WORK": str(work),
        "TASK": "image-generation",
        "ENGINE_KEY": "k1",
        "TRITON_MODEL": "stable_diffusion",
        "BUILD_HTTP_PORT": str(_free_port()),
        "BUILD_POLL_SECONDS": "0.1",
        "FAKE_ARGS": str(tmp_path / "args.json"),
    }
    return work, env


def test_image_generation_builds_by_loading_the_model_once(tmp_path):
    work, env = _work(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", scripts.BUILD_ENGINE], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    model = work / "out" / "repo" / "stable_diffusion"
    # the checkpoint is where the TensorRT demo looks for the framework model, the engines land beside it
    assert (model / "1" / "xl-1.0-pytorch_model" / "model_index.json").exists()
    assert (model / "1" / "engine.plan").read_text() == "built"
    args = json.loads((tmp_path / "args.json").read_text())
    assert f"--model-repository={work}/out/repo" in args
    assert "--model-control-mode=explicit" in args and "--load-model=stable_diffusion" in args
    assert json.loads((work / "out" / "build.json").read_text()) == {
        "key": "k1",
        "task": "image-generation",
        "trtllm": None,
    }


def test_image_generation_build_fails_when_the_server_does(tmp_path):
    work, env = _work(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", scripts.BUILD_ENGINE],
        env={**env, "FAKE_FAIL": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "tritonserver exited with 1" in proc.stderr
    assert not (work / "out" / "build.json").exists()  # no build.json, so the upload step cannot write a marker


def test_a_cached_entry_builds_nothing(tmp_path):
    work, env = _work(tmp_path)
    (work / "cached").touch()
    proc = subprocess.run(
        [sys.executable, "-c", scripts.BUILD_ENGINE],
        env={**env, "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not (work / "out" / "build.json").exists()
