"""Every target is a ratio against each peer that ran (LiteLLM, Portkey), computed from one run's numbers."""

import pytest

from bench.cli import main
from bench.run import targets_status


def _result(peers):
    ov = [
        {"path": "gateway/openai", "offered_rps": 100, "added_p50_ms": 0.5, "added_p99_ms": 2.0},
        {"path": "gateway/triton", "offered_rps": 100, "added_p50_ms": 0.4, "added_p99_ms": 1.0},
    ]
    tp = [{"path": "gateway/openai", "throughput_rps": 1000.0}]
    so = [{"path": "gateway/openai", "added_ttft_p50_ms": 1.0}]
    for i, peer in enumerate(peers, 1):
        ov.append({"path": f"{peer}/openai", "offered_rps": 100, "added_p50_ms": 5.0 * i, "added_p99_ms": 40.0 * i})
        tp.append({"path": f"{peer}/openai", "throughput_rps": 100.0 / i})
        so.append({"path": f"{peer}/openai", "added_ttft_p50_ms": 10.0 * i})
    return {"overhead": ov, "throughput": tp, "stream_overhead": so}


def test_ratios_against_both_peers():
    t = targets_status(_result(["litellm", "portkey"]))
    assert t["added_p50_vs_litellm"]["ratio"] == 10.0 and t["added_p50_vs_portkey"]["ratio"] == 20.0
    assert t["added_p99_vs_litellm"]["ratio"] == 20.0 and t["added_p99_vs_portkey"]["ratio"] == 40.0
    assert t["throughput_vs_litellm"]["ratio"] == 10.0 and t["throughput_vs_portkey"]["ratio"] == 20.0
    assert t["added_ttft_p50_vs_portkey"] == {"ours_ms": 1.0, "portkey_ms": 20.0, "ratio": 20.0}


def test_a_peer_that_did_not_run_has_no_ratio():
    t = targets_status(_result(["litellm"]))
    assert "added_p50_vs_litellm" in t and not any("portkey" in k for k in t)
    assert t["added_p50_below_1ms"] == {"gateway/triton": 0.4, "gateway/openai": 0.5}


def test_short_and_quick_are_exclusive(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--quick", "--short"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_peers_too_slow_for_the_latency_rates_still_get_throughput_ratios():
    r = _result(["litellm", "portkey"])
    r["overhead"] = [o for o in r["overhead"] if o["path"].startswith("gateway/")]  # peers skipped: over capacity
    t = targets_status(r)
    assert t["throughput_vs_portkey"]["ratio"] == 20.0 and "added_p50_vs_portkey" not in t
