"""The README's first command: `./dev serve` (`python -m devtools.dev`, or `modelsvc dev` from the checkout) starts
the stand-ins and the gateway from local.yaml, and the seed's curl request with the printed demo key gets an answer of
the seed's shape."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.gateway.harness import free_port

pytestmark = pytest.mark.e2e  # every test here runs `modelsvc dev` and the stand-in CLI as processes

MODELSVC = str(Path(sys.executable).parent / "modelsvc")


def test_dev_serves_the_example_catalog_over_stand_ins(tmp_path):
    overlay = yaml.safe_load((ROOT / "local.yaml").read_text())
    remap = {s["port"]: free_port() for s in overlay["standins"]}  # the real ports may be taken on this machine
    for s in overlay["standins"]:
        s["port"] = remap[s["port"]]
    overlay["endpoints"] = {
        name: [re.sub(r":(\d+)", lambda m: f":{remap.get(int(m.group(1)), m.group(1))}", ep) for ep in eps]
        for name, eps in overlay["endpoints"].items()
    }
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(overlay))
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            MODELSVC,
            "dev",
            "--config",
            str(ROOT / "services.yaml"),
            "--local",
            str(tmp_path / "local.yaml"),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--usage-log",
            str(tmp_path / "usage.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,  # where ./dev runs it: the checkout's devtools are found from there
    )
    try:
        lines = []
        while not any("Try it:" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        key = re.search(r"\(local only\): (\S+)", "".join(lines)).group(1)
        assert key == "sk-ms-local-demo-8105f7322477"
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = json.dumps(
            {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0.7}
        )
        r = subprocess.run(
            [
                shutil.which("curl"),
                "-sS",
                f"{url}/v1/chat/completions",
                "-H",
                "Content-Type: application/json",
                "-H",
                f"Authorization: Bearer {key}",
                "-d",
                body,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        data = json.loads(r.stdout)
        assert data["object"] == "chat.completion" and data["model"] == "u-8105f7322477/test"
        assert data["choices"][0]["message"]["content"] and data["usage"]["total_tokens"] > 0
        # the openai-backed service runs over the stand-in OpenAI-compatible upstream
        r = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": "Bearer sk-ms-local-demo-team-search"},
            json={"model": "team-search/query-rewriter", "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        # the chat stand-ins serve Llama 3.1's real template (local.yaml `family`): a forced tool call works locally
        weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        r = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "u-8105f7322477/test",
                "messages": [{"role": "user", "content": "Weather in Paris?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        (call,) = r.json()["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather" and isinstance(json.loads(call["function"]["arguments"]), dict)
        assert httpx.get(url + "/readyz").json() == {"ready": True}  # the public port names no services
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/readyz").json()["services"] == {
            "u-8105f7322477/test": "running",
            "u-8105f7322477/support-bot": "running",
            "u-3f9a2c7e51d0/receipts": "running",
            "u-3f9a2c7e51d0/product-images": "running",
            "team-search/query-rewriter": "running",
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_standin_subcommand_starts_an_engine():
    port = free_port()
    proc = subprocess.Popen(
        [MODELSVC, "standin", "--port", str(port), "--profile", "image"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        assert "stand-in Triton engine ready: profile=image models=stable_diffusion" in line
        assert f"grpc=127.0.0.1:{port}" in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_dev_tools_are_refused_outside_a_checkout(tmp_path):
    """The shipped CLI does not carry the stand-ins: outside the checkout it says where to run them."""
    r = subprocess.run([MODELSVC, "standin", "--port", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "development tool of the source checkout" in r.stderr
