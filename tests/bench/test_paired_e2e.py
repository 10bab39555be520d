"""`python -m bench --against HEAD` end to end, small: both gateways measured in alternation, a ratio with its
interval per path, CPU per chunk of streams, and the temporary worktree gone afterwards."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs the benchmark as a subprocess

ROOT = Path(__file__).resolve().parents[2]


def bench(tmp_path, *args: str) -> tuple[dict, str]:
    """`python -m bench ARGS`, small (0.5 s a measurement at 100 req/s): its JSON result and its stdout."""
    out = tmp_path / "cpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--seconds", "0.5", "--rate", "100", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_against_head(tmp_path):
    r, stdout = bench(
        tmp_path, "--against", "HEAD", "--pairs", "2", "--stream-rate", "20", "--paths", "gateway/openai,stream/openai"
    )
    assert r["errors"] == {} and r["against"] == "HEAD"
    cpu = r["cpu_ms_per_request"]
    assert set(cpu) == {
        "gateway/openai",
        "gateway/openai paced",
        "stream/openai x24",
        "stream/openai x4",
        "stream/openai burst",
    }
    for by in cpu.values():
        assert set(by) == {"this", "HEAD"} and all(s["n"] == 2 and s["median"] > 0 for s in by.values())
    for path, by in r["reads_per_request"].items():  # every request reads its caller and its upstream at least
        assert by["this"]["median"] >= 2 and 0 < r["user_pct"][path]["this"]["median"] <= 100, path
    iv = r["ratio_vs_against"]["gateway/openai"]
    assert iv["rounds"] == 2 and iv["low"] <= iv["ratio"] <= iv["high"]
    chunk = r["per_chunk"]["stream/openai"]["this"]
    assert chunk["chunks"] > chunk["short_chunks"] > 0
    floor = r["relay_floor_ms_per_chunk"]
    assert floor["n"] == 3 and 0 < floor["min"] <= floor["median"] <= floor["max"]
    assert "ratio" in stdout and "per chunk" in stdout and "relay floor" in stdout
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "modelsvc-against-" not in worktrees


def test_cpu_with_a_redis_store(tmp_path):
    """--redis: the gateway is started with a Redis of its own for limits and usage totals (as replicas run; the
    bench waits for that Redis to accept connections first), and its requests are measured without errors."""
    r, stdout = bench(tmp_path, "--cpu", "--redis", "--pairs", "1", "--paths", "gateway/openai")
    assert r["redis"] is True and r["errors"] == {}
    assert r["cpu_ms_per_request"]["gateway/openai"]["this"]["median"] > 0
    assert "usage totals in Redis" in stdout
