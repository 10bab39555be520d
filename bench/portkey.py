"""Portkey's AI Gateway (Node), the second peer: installed from npm into bench/.portkey (git-ignored, never a
project dependency) and run headless on loopback, provider `openai` with a custom host = the same upstream."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .procs import ROOT, Proc

VERSION = "1.15.2"
DIR = ROOT / "bench" / ".portkey"
PACKAGE = DIR / "node_modules" / "@portkey-ai" / "gateway"
SERVER = PACKAGE / "build" / "start-server.js"
# Portkey mutates the upstream fetch() response's immutable headers on streamed requests (Portkey-AI/gateway#1389,
# #1550): every stream fails on Node without this shim (see the file).
SHIM = ROOT / "bench" / "portkey_shim.mjs"


def headers(upstream_base: str) -> dict:
    """What a Portkey caller sends to reach an OpenAI-compatible server of its own."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream_base,
        "authorization": "Bearer sk-upstream-unused",
    }


def installed_version() -> str | None:
    try:
        return json.loads((PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed() -> Path:
    """npm install @portkey-ai/gateway@VERSION into bench/.portkey on first use. Returns start-server.js."""
    if installed_version() == VERSION and SERVER.exists():
        return SERVER
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("Portkey needs node and npm on PATH")
    DIR.mkdir(parents=True, exist_ok=True)
    (DIR / "package.json").write_text(json.dumps({"private": True, "dependencies": {"@portkey-ai/gateway": VERSION}}))
    print(f"installing @portkey-ai/gateway@{VERSION} into {DIR} (once) ...", file=sys.stderr, flush=True)
    r = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--ignore-scripts"],
        cwd=DIR,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 or not SERVER.exists():
        tail = "\n".join((r.stderr or r.stdout).splitlines()[-15:])
        raise RuntimeError(f"npm install @portkey-ai/gateway@{VERSION} failed ({r.returncode}):\n{tail}")
    return SERVER


def start(port: int, cpus, log_dir: Path) -> Proc:
    server = ensure_installed()
    p = Proc(
        "portkey",
        [shutil.which("node") or "node", "--import", SHIM.as_uri(), str(server), f"--port={port}", "--headless"],
        cpus=cpus,
        log_dir=log_dir,
        cwd=DIR,
    )
    p.wait_http(f"http://127.0.0.1:{port}/", timeout=60)
    return p
