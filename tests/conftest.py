"""Shared by every test directory: the repository root on sys.path, small catalogs to build from, and the rule that
splits the suite into the fast set and the `e2e` tests (see "The fast set" below)."""

import _posixsubprocess
import os
import platform
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))

from modelsvc.catalog import Catalog, load, loads  # noqa: E402  (after the path is set)

SMALL = """\
version: 1
gateway:
  public_url: https://models.example.com/v1
  replicas: 3
pools:
  h100:
    instance_type: p5.48xlarge
    gpus_per_node: 8
    max_nodes: 4
  l4:
    instance_type: g6.12xlarge
    gpus_per_node: 4
    max_nodes: 6
    gpu_type: l4
  idle:
    instance_type: g6.xlarge
    gpus_per_node: 1
    max_nodes: 2
models:
  small:
    source: s3://example-models/small
    gpus: 1
  big:
    source: s3://example-models/big
    gpus: 4
    dtype: fp8
  remote:
    backend: openai
    upstream: http://vllm.example:8000/v1
keys:
  - id: k-alice
    owner: alice
    sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
  - id: k-bob
    owner: bob
    sha256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
services:
  - name: A
    access_name: alice/chat
    id: ms-000000000001
    model: small
    instances: 3
    pool: h100
  - name: B
    access_name: alice/big
    id: ms-000000000002
    model: big
    instances: 2
    pool: h100
  - name: C
    access_name: bob/chat
    id: ms-000000000003
    model: small
    instances: 2
    pool: l4
  - name: D
    access_name: bob/remote
    id: ms-000000000004
    model: remote
"""


def _make_catalog(text: str = SMALL) -> Catalog:
    return loads(text)


@pytest.fixture
def make_catalog():
    """make_catalog(text=SMALL) → Catalog; tests edit SMALL with str.replace."""
    return _make_catalog


@pytest.fixture
def small_text() -> str:
    return SMALL


@pytest.fixture
def small() -> Catalog:
    return _make_catalog()


@pytest.fixture
def example() -> Catalog:
    return load(str(ROOT / "services.yaml"))


# The fast set. A test is `e2e` when it starts a process, a server or a browser (a subprocess, the gateway harness, a
# stand-in engine thread, Redis, PostgreSQL, Chromium, Node, moto, promtool...); `./dev test --fast` runs the others.
# The rule is decided at collection, so `-m "not e2e"` can select before anything runs:
#   * a fixture that starts something takes the `e2e` fixture below, and every test using it (directly or through
#     other fixtures) is e2e;
#   * a test that starts something itself is marked `@pytest.mark.e2e` (or its module: `pytestmark = pytest.mark.e2e`).
# The guard makes the rule exact, in every run: a test that is not e2e and starts a process, listens on a socket or
# starts a gRPC server fails, naming what it started; a test marked e2e by hand that starts nothing fails too (so the
# fast set never shrinks by mistake).


@pytest.fixture(scope="session")
def e2e():
    """Taken by every fixture that starts a process, a server or a browser: the tests using it are e2e."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "e2e" in item.fixturenames:
            item.add_marker(pytest.mark.e2e)


class _Guard:
    """Records what the running test starts: in its own thread, or in threads it started (threads started by an
    earlier test's fixtures are that test's business)."""

    def __init__(self) -> None:
        self.owner: str | None = None  # the node id of the test whose setup or call is running
        self.started: list[str] = []
        self._undo: list = []

    def _mine(self) -> bool:
        t = threading.current_thread()
        owner = self.owner if t is threading.main_thread() else getattr(t, "_modelsvc_test", None)
        return owner is not None and owner == self.owner

    def record(self, what: str) -> None:
        if self._mine():
            self.started.append(what if len(what) <= 160 else what[:157] + "...")

    def patch(self, owner, name: str, describe) -> None:
        original = getattr(owner, name)
        guard = self

        def wrapper(*args, **kwargs):
            guard.record(describe(*args, **kwargs))
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)
        self._undo.append((owner, name, original))

    def install(self) -> None:
        guard = self
        thread_start = threading.Thread.start

        def start(thread, *args, **kwargs):
            t = threading.current_thread()
            thread._modelsvc_test = guard.owner if t is threading.main_thread() else getattr(t, "_modelsvc_test", None)
            return thread_start(thread, *args, **kwargs)

        setattr(threading.Thread, "start", start)  # noqa: B010  (mypy refuses assigning to a method)
        self._undo.append((threading.Thread, "start", thread_start))
        self.patch(subprocess.Popen, "_execute_child", lambda popen, args, *a, **k: f"the process {args!r}")
        self.patch(_posixsubprocess, "fork_exec", lambda args, *a, **k: f"the process {args!r}")  # multiprocessing
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            self.patch(os, name, lambda *a, name=name, **k: f"os.{name}{a[:1]!r}")
        self.patch(socket.socket, "listen", lambda sock, *a: f"a server listening on {sock.getsockname()!r}")
        try:
            import grpc._server
            import grpc.aio._server
        except ImportError:
            return
        self.patch(grpc._server._Server, "start", lambda *a: "a gRPC server")
        self.patch(grpc.aio._server.Server, "start", lambda *a: "a gRPC server (asyncio)")

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


_guard = _Guard()


def pytest_configure(config):
    platform.uname().processor  # noqa: B018  (computed by running `uname -p`, once per process: not in a test)
    _guard.install()


def pytest_unconfigure(config):
    _guard.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    _guard.owner, _guard.started = item.nodeid, []
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        result = yield
    finally:
        started, _guard.owner = _guard.started, None
    if item.get_closest_marker("e2e") is None and started:
        pytest.fail(
            f"this test is in the fast set but started {started[0]}: mark it @pytest.mark.e2e, or have the fixture "
            "that starts it take the `e2e` fixture (tests/conftest.py)",
            pytrace=False,
        )
    active = getattr(getattr(item, "_request", None), "fixturenames", item.fixturenames)  # + getfixturevalue()'s
    if item.get_closest_marker("e2e") is not None and "e2e" not in active and not started:
        pytest.fail(
            "this test is marked e2e but neither it nor its fixtures started a process, server or browser: remove "
            "the mark, or, if it uses a server an earlier test's fixture started, have that fixture take `e2e`",
            pytrace=False,
        )
    return result
