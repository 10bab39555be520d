"""The paired comparison's statistics (bench/paired.py): a 10% change over a few rounds is called, noise is not."""

import math
import random

from bench.paired import ratio_interval, report, spread, t975, triton_vs_openai, verdict


def test_a_ten_percent_change_with_two_percent_noise_is_called():
    rnd = random.Random(7)
    ratios = [1.10 * math.exp(rnd.gauss(0, 0.02)) for _ in range(6)]
    iv = ratio_interval(ratios)
    assert iv["low"] > 1.05 and iv["high"] < 1.15, iv
    assert verdict(iv).startswith("costlier by ")


def test_noise_alone_is_no_change():
    iv = ratio_interval([0.99, 1.02, 1.0, 0.98, 1.01, 1.0])
    assert iv["low"] < 1 < iv["high"]
    assert verdict(iv) == "no change detected"
    assert verdict(ratio_interval([0.8, 0.81, 0.79])) == "cheaper by 20%"


def test_one_round_has_no_bound():
    iv = ratio_interval([1.3])
    assert iv["low"] == 0 and math.isinf(iv["high"]) and verdict(iv) == "no change detected"


def test_t_quantiles_and_spread():
    assert t975(1) == 12.71 and t975(5) == 2.571 and t975(100) == 1.96
    s = spread([1.0, 2.0, 3.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3) and s["cv_pct"] == 50.0


def _row(median):
    return {"this": spread([median])}


def test_triton_against_openai_with_the_reads_each_took():
    r = {
        "cpu_ms_per_request": {
            "gateway/triton": _row(1.5),
            "gateway/openai": _row(1.0),
            "gateway/triton paced": _row(1.8),
            "gateway/openai paced": _row(1.6),
        },
        "reads_per_request": {
            "gateway/triton": _row(26.0),
            "gateway/openai": _row(6.5),
            "gateway/triton paced": _row(25.4),
            "gateway/openai paced": _row(26.4),
        },
    }
    assert triton_vs_openai(r) == {
        "fast": {"cpu_ratio": 1.5, "reads": [26.0, 6.5]},
        "paced": {"cpu_ratio": 1.125, "reads": [25.4, 26.4]},
    }
    del r["reads_per_request"]["gateway/openai paced"]  # a row not measured: no comparison for it
    assert set(triton_vs_openai(r)) == {"fast"}
    full = {
        **r,
        "pairs": 1,
        "rate": 200,
        "against": None,
        "user_pct": {k: _row(80.0) for k in r["cpu_ms_per_request"]},
        "ratio_vs_against": {},
        "per_chunk": {},
        "peers": {},
        "against_errors": {},
        "errors": {},
    }
    text = report(full)
    assert "fast   1.50× the CPU; 26.0 reads against 6.5" in text and "[26.0 reads, 80% user]" in text
