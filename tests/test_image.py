"""The gateway image, checked without a Docker engine: the locks (one resolution, every pin hashed, each the exact
closure of what pyproject.toml declares), what the Dockerfile installs (requirements/runtime.lock and nothing else),
what its build context holds (.dockerignore read the way Docker reads it: no stand-in, test, dev tool, bench or
Pulumi program), that the code it holds imports nothing outside that lock, and, end to end, the gateway serving
from a venv built from the runtime lock alone."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT
from tests.gateway.harness import free_port

LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
OURS = ("modelsvc", "gateway", "infra")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, str]:
    """name → version of a lock file; every entry must carry a hash (`pip install --require-hashes`)."""
    text = (LOCKS / name).read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert m, f"requirements/{name}: not an exact, hashed pin: {line[:80]!r}"
        pins[_norm(m[1])] = m[2]
    return pins


def _closure(requirements: list[str]) -> dict[str, str]:
    """The installed distributions these requirements pull in (this interpreter's markers, extras followed):
    name → version. The venv is installed from requirements/dev.lock, so this is what the locks resolve to."""
    found: dict[str, str] = {}
    done = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is declared but not installed: run ./dev lock, then ./dev setup")
        found[_norm(req.name)] = dist.version
        envs = [{"extra": ""}] + [{"extra": e} for e in req.extras]
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return found


def _declared(*extras: str) -> list[str]:
    return list(PROJECT["dependencies"]) + [r for e in extras for r in PROJECT["optional-dependencies"][e]]


def test_each_lock_is_the_exact_closure_of_what_pyproject_declares():
    extras = tuple(PROJECT["optional-dependencies"])
    for name, declared in (
        ("runtime.lock", _declared()),
        ("infra.lock", _declared("infra")),
        ("dev.lock", _declared(*extras)),
    ):
        closure = _closure(declared)
        closure.pop("pip", None)  # the venv's own installer: only dev.lock pins it (pip-tools needs it)
        lock = _lock(name)
        lock.pop("pip", None)
        assert lock == closure, f"requirements/{name} is stale: run ./dev lock"


def test_the_build_tools_lock_is_the_closure_of_what_the_build_step_imports():
    wanted = [line.strip() for line in (LOCKS / "build-tools.in").read_text().splitlines()]
    closure = _closure([w for w in wanted if w and not w.startswith("#")])
    assert _lock("build-tools.lock") == closure, "requirements/build-tools.lock is stale: run ./dev lock"
    dockerfile = (ROOT / "infra" / "docker" / "build-tools.Dockerfile").read_text()
    assert "pip install --no-cache-dir --require-hashes -r requirements/build-tools.lock" in dockerfile


def test_the_locks_are_one_resolution_and_keep_pyproject_pins():
    dev = _lock("dev.lock")
    for name in ("runtime.lock", "infra.lock", "build-tools.lock"):
        assert {k: dev[k] for k in _lock(name)} == _lock(name), f"{name} pins differ from dev.lock"
    for spec in _declared(*PROJECT["optional-dependencies"]):
        req = Requirement(spec)
        (pin,) = req.specifier
        assert pin.operator == "==" and dev[_norm(req.name)] == pin.version, spec


def test_the_runtime_lock_holds_no_test_infra_or_dev_dependency():
    runtime = _lock("runtime.lock")
    for extra in PROJECT["optional-dependencies"]:
        only_there = set(_closure(_declared(extra))) - set(_closure(_declared()))
        assert not only_there & set(runtime), f"the {extra} extra's packages in runtime.lock"
    assert not {"pytest", "playwright", "moto", "pulumi", "pulumi-aws", "hypothesis", "ruff", "mypy"} & set(runtime)


# --- The Dockerfile and its build context --------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]


def test_the_dockerfile_installs_the_runtime_lock_and_nothing_else():
    instructions = _instructions()
    assert not [arg for op, arg in instructions if op == "ADD"], "ADD fetches or unpacks: COPY only"
    copied = [arg.split()[:-1] for op, arg in instructions if op == "COPY"]
    assert sorted(src for srcs in copied for src in srcs) == sorted(
        ["requirements/runtime.lock", "pyproject.toml", "README.md", "modelsvc/", "gateway/", "infra/"]
    )
    installs = [part.strip() for op, arg in instructions if op == "RUN" for part in arg.split("&&") if "pip " in part]
    assert installs == [
        "pip install --no-cache-dir --require-hashes -r requirements/runtime.lock",
        "pip install --no-cache-dir --no-deps --no-build-isolation .",
    ]


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) per line; Docker's rules: `*` within a path segment, `**` across, `!` re-includes."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        rules.append((not include, re.compile(regex.replace(".*/", "(?:.*/)?"))))
    return rules


def _image_files() -> list[str]:
    """The tracked files the image receives: in the build context and under a COPY source."""
    rules = _dockerignore()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    sources = [s for op, arg in _instructions() if op == "COPY" for s in arg.split()[:-1]]
    out = []
    for path in tracked.splitlines():
        prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
        excluded = False
        for exclude, rx in rules:  # the last matching rule wins; a rule matching a parent folder matches the file
            if any(rx.fullmatch(p) for p in prefixes):
                excluded = exclude
        if not excluded and any(path == s or path.startswith(s) for s in sources):
            out.append(path)
    return out


@pytest.mark.e2e  # lists the tracked files with git
def test_the_image_holds_no_stand_in_test_tool_or_pulumi_program():
    files = _image_files()
    assert "gateway/app.py" in files and "modelsvc/cli/__init__.py" in files and "infra/render.py" in files
    assert "gateway/console/static/console.js" in files
    assert not [f for f in files if f.split("/")[0] in ("devtools", "tests", "bench", ".github", "docs")]
    pulumi = sorted(
        f
        for f in files
        if f.endswith(".py") and re.search(r"^\s*(import|from) pulumi", Path(ROOT / f).read_text(), re.M)
    )
    assert pulumi == []
    assert not {"infra/program.py", "infra/aws.py", "infra/k8s.py", "infra/__main__.py"} & set(files)


def _top_level_modules(dists: set[str]) -> set[str]:
    return {mod for mod, owners in metadata.packages_distributions().items() if {_norm(o) for o in owners} & dists}


@pytest.mark.e2e  # lists the tracked files with git
def test_the_image_code_imports_nothing_outside_the_runtime_lock():
    files = [f for f in _image_files() if f.endswith(".py") and not f.startswith("infra/scripts/")]
    modules = {f.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for f in files}
    allowed = set(sys.stdlib_module_names) | _top_level_modules(set(_lock("runtime.lock")))
    problems = []
    for f in files:
        for node in ast.walk(ast.parse((ROOT / f).read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in OURS:
                    if not any(name == m or name.startswith(m + ".") or m.startswith(name) for m in modules):
                        problems.append(f"{f}:{node.lineno}: {name} is not in the image")
                elif top not in allowed:
                    problems.append(f"{f}:{node.lineno}: {name} is not installed by runtime.lock")
    assert problems == []


@pytest.mark.e2e
def test_the_gateway_serves_from_a_venv_built_from_the_runtime_lock_alone(tmp_path):
    """What `docker build` does, minus Docker: a venv from the runtime lock, the image's files (the build context
    after .dockerignore) installed as a wheel, then `modelsvc serve` on the example catalog."""
    context = tmp_path / "context"
    for f in _image_files():
        (context / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, context / f)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the checkout must not leak in
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # A current pip, as the image's base has (this interpreter's bundled pip 23 refuses a dependency's extras in
    # hash-checking mode): the one dev.lock pins, hash-checked.
    text = (LOCKS / "dev.lock").read_text(encoding="utf-8")
    pip_pin = re.search(r"^pip==\S+(?: \\\n\s+--hash=sha256:[0-9a-f]{64})+", text, re.M)
    assert pip_pin, "dev.lock pins pip"
    (tmp_path / "pip.lock").write_text(pip_pin[0] + "\n")
    for args in (
        ["--require-hashes", "-r", str(tmp_path / "pip.lock")],
        ["--require-hashes", "-r", str(context / "requirements/runtime.lock")],
        ["--no-deps", "--no-build-isolation", str(context)],
    ):
        done = subprocess.run([*pip, *args], env=env, capture_output=True, text=True)
        problems = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location")]
        assert done.returncode == 0, "\n".join(problems[-40:])

    python = str(venv / "bin" / "python")
    for absent in ("pytest", "playwright", "moto", "pulumi", "devtools"):
        probe = subprocess.run([python, "-c", f"import {absent}"], cwd=tmp_path, env=env, capture_output=True)
        assert probe.returncode != 0, f"{absent} importable in the runtime venv"

    port = free_port()
    log = (tmp_path / "gateway.log").open("w")
    cmd = [str(venv / "bin" / "modelsvc"), "serve", "--config", str(ROOT / "services.yaml"), "--port", str(port)]
    cmd += ["--metrics-port", "0", "--usage-log", str(tmp_path / "usage.jsonl"), "--reload-poll", "0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
            time.sleep(0.1)
        console = httpx.get(url + "/console/", timeout=5)
        assert console.status_code == 200 and "/console/static/console.js" in console.text
        script = re.search(r'/console/static/console\.js\?v=[^"]+', console.text)
        assert script and httpx.get(url + script[0], timeout=5).status_code == 200
        refused = httpx.get(url + "/v1/models", timeout=5)
        assert refused.status_code == 401 and refused.json()["error"]["type"]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
