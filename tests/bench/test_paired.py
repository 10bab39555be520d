"""The paired comparison's statistics (bench/paired.py): a 10% change over a few rounds is called, noise is not."""

import math
import random

from bench.paired import ratio_interval, spread, t975, verdict


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
