"""`./dev`'s set-up of what the end-to-end tests start outside Python, on a PATH where some of it is missing (the
real machine has it all): quiet and untouched when everything is there, one apt-get install of exactly what is
missing otherwise, with sudo when not root, and a clear instruction when it cannot install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # every test here runs ./dev

TOOLS = ("bash", "dirname", "ls", "node", "npm", "chromium", "curl", "promtool", "redis-server")
# an installer that only records how it was called
RECORDER = '#!/bin/sh\necho "${0##*/} $*" >> "$CALLS"\n'


def _bin(tmp_path: Path, *, missing: tuple[str, ...] = (), uid: int = 0, sudo: bool = False) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if tool not in missing:
            found = shutil.which(tool)
            assert found, f"{tool} is required on this machine: ./dev test installs it"
            (bin_dir / tool).symlink_to(found)
    scripts = {"id": f"#!/bin/sh\necho {uid}\n", "apt-get": RECORDER}
    if sudo:  # passwordless sudo that runs the command it is given (and records itself)
        scripts["sudo"] = RECORDER + '[ "$1" = -n ] && exit 0\nexec "$@"\n'
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _checkout(tmp_path: Path) -> Path:
    """A copy of `dev` in a checkout whose venv and Node client are set up (stamps newer than the locks), so only
    the system packages are left to decide: the real checkout's venv is never touched."""
    work = tmp_path / "checkout"
    for path in ("requirements/dev.lock", "pyproject.toml", "tests/node/package-lock.json", "tests/node/package.json"):
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text("")
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (work / "tests" / "node" / "node_modules").mkdir()
    (work / "tests" / "node" / "node_modules" / ".package-lock.json").write_text("")  # what npm ci leaves
    shutil.copy2(ROOT / "dev", work / "dev")
    stamp = work / ".venv" / ".installed"
    stamp.write_text("")
    later = time.time() + 5
    os.utime(stamp, (later, later))
    os.utime(work / "tests" / "node" / "node_modules" / ".package-lock.json", (later, later))
    return work


def _setup(tmp_path: Path, bin_dir: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    calls = tmp_path / "calls"
    env = {"PATH": str(bin_dir), "CALLS": str(calls), "HOME": os.environ.get("HOME", "/root")}
    dev = _checkout(tmp_path) / "dev"
    proc = subprocess.run([str(dev), "setup"], env=env, capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_everything_present_is_quiet_and_installs_nothing(tmp_path):
    proc, calls = _setup(tmp_path, _bin(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr, calls) == (0, "", "", [])


def test_what_is_missing_is_installed_in_one_apt_get_as_root(tmp_path):
    proc, calls = _setup(tmp_path, _bin(tmp_path, missing=("redis-server", "promtool", "chromium")))
    assert proc.returncode == 0, proc.stderr
    assert calls == ["apt-get update -qq", "apt-get install -y -qq redis-server chromium prometheus"]
    assert "installing redis-server chromium prometheus" in proc.stderr


def test_not_root_uses_sudo(tmp_path):
    proc, calls = _setup(tmp_path, _bin(tmp_path, missing=("curl",), uid=1000, sudo=True))
    assert proc.returncode == 0, proc.stderr
    assert [c for c in calls if c.startswith("apt-get")] == ["apt-get update -qq", "apt-get install -y -qq curl"]
    assert "sudo apt-get install -y -qq curl" in calls


def test_not_root_without_sudo_says_what_to_run(tmp_path):
    proc, calls = _setup(tmp_path, _bin(tmp_path, missing=("node", "npm"), uid=1000))
    assert proc.returncode == 1 and calls == []
    assert "sudo apt-get install -y nodejs npm" in proc.stderr
    assert "./dev test --fast" in proc.stderr
