"""The rule that splits the suite (tests/conftest.py), run on a small suite of its own: what is e2e is decided at
collection, `-m "not e2e"` leaves only tests that start nothing, and the guard fails a test on either side of the
line that is on the wrong one."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.e2e  # every test here runs pytest as a subprocess

SUITE = """
import socket
import subprocess

import pytest


@pytest.fixture(scope="module")
def server(e2e):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def test_pure():
    assert sum([1, 2]) == 3


def test_uses_the_server(server):
    assert server.getsockname()[1] > 0


def test_uses_the_server_again(server):  # started by the test above: still e2e, through the fixture
    assert server.getsockname()[1] > 0


@pytest.mark.e2e
def test_marked_and_starts_a_process():
    assert subprocess.run(["true"]).returncode == 0


def test_unmarked_but_starts_a_process():
    assert subprocess.run(["true"]).returncode == 0


def test_unmarked_but_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()


@pytest.mark.e2e
def test_marked_but_starts_nothing():
    assert True
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n    e2e: starts something\n")
    return pytester


def _outcomes(result) -> dict[str, str]:
    """test name → PASSED/FAILED, from `-v` lines such as `test_suite.py::test_pure PASSED   [ 25%]`."""
    found = (re.match(r"\S+::(\w+) (PASSED|FAILED)", line) for line in result.outlines)
    return {m[1]: m[2] for m in found if m}


def test_the_fast_set_is_what_starts_nothing(suite):
    result = suite.runpytest_subprocess("-v", "-m", "not e2e", "-p", "no:cacheprovider")
    assert _outcomes(result) == {
        "test_pure": "PASSED",
        "test_unmarked_but_starts_a_process": "FAILED",
        "test_unmarked_but_listens": "FAILED",
    }
    assert "in the fast set but started the process ['true']" in result.stdout.str()
    assert "in the fast set but started a server listening on ('127.0.0.1', " in result.stdout.str()


def test_the_e2e_set_is_every_test_using_an_e2e_fixture_or_marked(suite):
    result = suite.runpytest_subprocess("-v", "-m", "e2e", "-p", "no:cacheprovider")
    assert _outcomes(result) == {
        "test_uses_the_server": "PASSED",
        "test_uses_the_server_again": "PASSED",
        "test_marked_and_starts_a_process": "PASSED",
        "test_marked_but_starts_nothing": "FAILED",
    }
    assert "marked e2e but neither it nor its fixtures started" in result.stdout.str()
