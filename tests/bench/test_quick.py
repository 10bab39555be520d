"""`python -m bench --quick` end to end: every one of our paths measured, none with an error, numbers that make
sense."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # every test here runs the benchmark as a subprocess

ROOT = Path(__file__).resolve().parents[2]
PATHS = ("direct/triton", "direct/openai", "gateway/triton", "gateway/openai")


def test_quick_bench(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["failures"] == []
    assert set(PATHS) <= set(r["paths"]), r["paths"]
    assert "litellm/openai" not in r["paths"]  # the quick run measures our paths only
    for path in PATHS:
        assert r["paths"][path]["requests"] > 0 and r["paths"][path]["errors"] == 0, (path, r["paths"][path])

    lat = {x["path"]: x for x in r["latency"] if "skipped" not in x}
    for path in PATHS:
        x = lat[path]
        assert x["ok"] > 50 and x["errors"] == 0
        assert 0 < x["p50_ms"] <= x["p99_ms"] < 5000, x
    tp = {x["path"]: x for x in r["throughput"]}
    for path in PATHS:
        assert tp[path]["throughput_rps"] > 10 and tp[path]["errors"] == 0
    assert tp["gateway/openai"]["cpu_s_per_1k"] > 0
    streams = {x["path"]: x for x in r["streams"]}
    for path in PATHS:
        assert streams[path]["errors"] == 0 and 0 < streams[path]["ttft_p50_ms"] <= streams[path]["p50_ms"]
    # every stream carried the same tokens: the gateway's SSE adds role, finish and [DONE] events around them
    assert streams["gateway/openai"]["events_mean"] >= r["tokens_per_request"]
    overhead = {x["path"] for x in r["overhead"]}
    assert {"gateway/triton", "gateway/openai"} <= overhead
    rss = {x["path"]: x for x in r["rss"]}
    for path in ("gateway/triton", "gateway/openai"):
        assert rss[path]["streams_open_at_once"] == r["profile"]["hold"] and rss[path]["errors"] == 0
        assert 10 < rss[path]["rss_idle_mb"] <= rss[path]["rss_mb"] < 4000
