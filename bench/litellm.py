"""LiteLLM proxy, the anchor: installed into its own venv (never a project dependency) and run offline on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .procs import ROOT, Proc

VERSION = "1.108.6"  # newer releases need packages the local registry lacks
VENV = ROOT / "bench" / ".venv-litellm"
MASTER_KEY = "sk-bench-litellm-master-0123456789"
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "NO_DOCS": "True",
    "DISABLE_SCHEMA_UPDATE": "True",
}


def ensure_venv() -> Path:
    """bench/.venv-litellm with litellm[proxy]==VERSION; installed on first use. Returns the `litellm` script."""
    exe = VENV / "bin" / "litellm"
    if exe.exists():
        probe = subprocess.run(
            [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m;print(m.version('litellm'))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == VERSION:
            return exe
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing litellm[proxy]=={VERSION} into {VENV} (once) ...", file=sys.stderr, flush=True)
    r = subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={VERSION}"], capture_output=True, text=True
    )
    if r.returncode != 0 or not exe.exists():
        tail = "\n".join((r.stderr or r.stdout).splitlines()[-15:])
        raise RuntimeError(f"pip install litellm[proxy]=={VERSION} failed ({r.returncode}):\n{tail}")
    return exe


def write_config(path: Path, models: dict[str, str]) -> None:
    """models: model name → api_base of the OpenAI-compatible upstream."""
    lines = ["model_list:"]
    for name, base in models.items():
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            "      model: openai/standin",
            f"      api_base: {base}",
            "      api_key: sk-upstream-unused",
        ]
    lines += [
        "litellm_settings:",
        "  drop_params: true",
        "  set_verbose: false",
        "  telemetry: false",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
        "  disable_spend_logs: true",
        "  disable_reset_budget: true",
        "",
    ]
    path.write_text("\n".join(lines))


def start(config: Path, port: int, workers: int, cpus, log_dir: Path) -> Proc:
    exe = ensure_venv()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(OFFLINE_ENV)
    os.environ.pop("DATABASE_URL", None)
    p = Proc(
        "litellm",
        [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)],
        cpus=cpus,
        env=env,
        log_dir=log_dir,
        cwd=config.parent,
    )
    p.wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
    return p
