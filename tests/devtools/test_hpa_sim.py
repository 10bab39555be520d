"""The HPA algorithm, simulated on the HPA we render for the example catalog's autoscaled service, on the signal the
recording rules give it (TensorRT-LLM's executor queue: devtools/hpa_sim.py's in-flight batching model): scale-up
within a few sync periods of a burst, no flapping under noisy load, the scale-down delay honoured, min/max
respected; Triton's own queue/compute ratio, the old signal, would never scale at all."""

from __future__ import annotations

import copy
import itertools

import pytest

from devtools.hpa_sim import (
    PHASES,
    SLOTS,
    SYNC_S,
    executor_ratio,
    flaps,
    queue_compute_ratio,
    requests_in_pod,
    simulate,
    standard_load,
    triton_core_ratio,
)
from infra.manifests.autoscaling import autoscaled, hpa
from infra.settings import Settings


@pytest.fixture(scope="module")
def spec(example):
    svc = autoscaled(example)[0]
    return hpa(example, svc, Settings())["spec"]


@pytest.fixture(scope="module")
def example():
    from modelsvc.catalog import load
    from tests.conftest import ROOT

    return load(str(ROOT / "services.yaml"))


@pytest.fixture(scope="module")
def run(spec):
    load, duration = standard_load()
    return simulate(spec, load, duration)


def at(rows, t):
    return next(r for r in rows if r.t >= t)


def test_formula_and_tolerance(spec):
    flat = copy.deepcopy(spec)
    flat["minReplicas"], flat["maxReplicas"] = 1, 50
    flat["behavior"]["scaleUp"]["policies"] = [{"type": "Pods", "value": 100, "periodSeconds": 15}]
    # ρ = 0.75 on 2 pods → ratio 3 at target 1: desired = ceil(2 × 3 / 1) = 6 at the first sync with a full window
    rows = simulate(flat, lambda t: 1.5, 61, initial=2, signal=queue_compute_ratio)
    assert queue_compute_ratio(0.75) == pytest.approx(3.0)
    assert rows[-1].replicas == 6
    # ratio 1.05 (inside the 10% tolerance) never moves it: ρ = 0.5122 → 1.05
    rows = simulate(flat, lambda t: 2 * 0.5122, 600, initial=2, signal=queue_compute_ratio)
    assert {r.replicas for r in rows} == {2}


def test_the_executor_model():
    """Erlang C: one slot is M/M/1; with the batch's slots the queue stays empty until the batch is nearly full."""
    assert executor_ratio(0.75, slots=1) == pytest.approx(3.0)
    assert executor_ratio(0.5) < 0.02 and executor_ratio(0.9) > 0.8 and executor_ratio(0.95) > 2
    assert requests_in_pod(0.5) == pytest.approx(SLOTS * 0.5, rel=0.02)  # in flight, nothing waiting
    assert requests_in_pod(0.9) > SLOTS * 0.9


def test_scale_up_within_four_periods_of_the_burst(spec, run):
    burst = PHASES[1][0]
    first_up = next(r.t for r in run if r.t >= burst and r.replicas > spec["minReplicas"])
    at_max = next(r.t for r in run if r.t >= burst and r.replicas == spec["maxReplicas"])
    assert first_up - burst <= 2 * SYNC_S
    assert at_max - burst <= 4 * SYNC_S


def test_never_outside_min_max(spec, run):
    assert all(spec["minReplicas"] <= r.replicas <= spec["maxReplicas"] for r in run)
    assert max(r.replicas for r in run) == spec["maxReplicas"]  # the burst needs more than max: clamped


def test_no_flapping_under_noise_and_a_short_spike(spec, run):
    window = spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    assert window == 600  # scale_down_delay: 10m in services.yaml
    assert flaps(run, window) == []
    plateau = [r.replicas for r in run if PHASES[2][0] + 900 <= r.t < PHASES[2][1]]
    assert len(set(plateau)) == 1  # ±10% jitter every second, one replica count


def test_scale_down_waits_for_the_delay_then_steps_down(spec, run):
    """Every step down comes a full window after the load last asked for more (metric above target and its
    tolerance), one pod at a time."""
    window = spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    target = float(spec["metrics"][0]["pods"]["target"]["averageValue"].rstrip("m")) / 1000
    downs = [(a, b) for a, b in itertools.pairwise(run) if b.replicas < a.replicas]
    assert downs
    for before, after in downs:
        assert before.replicas - after.replicas == 1
        busy = [r.t for r in run if r.t < after.t and r.metric > target * 1.1]
        assert after.t - max(busy) >= window - SYNC_S
    assert at(run, PHASES[3][1] - SYNC_S).replicas == spec["minReplicas"]
    assert run[-1].replicas == spec["minReplicas"]


def test_tritons_own_ratio_never_sees_the_executor_queue(spec):
    """The counterfactual: NVIDIA's guide's signal on a decoupled TensorRT-LLM pod reads idle through the burst."""
    load, duration = standard_load()
    rows = simulate(spec, load, duration, signal=triton_core_ratio)
    assert {r.replicas for r in rows} == {spec["minReplicas"]}


def test_requests_in_the_pod_scale_in_proportion(spec):
    """pending_requests (requests a pod holds) at 75% of its slots: the HPA's proportional rule sizes the burst in
    one step and holds each plateau without hunting."""
    pending = copy.deepcopy(spec)
    pending["metrics"][0]["pods"]["target"]["averageValue"] = f"{round(0.75 * SLOTS * 1000)}m"
    load, duration = standard_load()
    rows = simulate(pending, load, duration, signal=requests_in_pod)
    assert flaps(rows, 600) == []
    burst = [r.replicas for r in rows if PHASES[1][0] + 300 <= r.t < PHASES[1][1]]
    assert set(burst) == {4}  # 2.6 pods of load at 75%: ceil(2.6 / 0.75) = 4


def test_without_the_scale_down_window_the_spike_flaps(spec):
    """The counterfactual: our window is what prevents it."""
    eager = copy.deepcopy(spec)
    eager["behavior"]["scaleDown"] = {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
    }
    load, duration = standard_load()
    assert flaps(simulate(eager, load, duration, signal=queue_compute_ratio), 600)
