"""The HPA algorithm, simulated on the HPA we render for the example catalog's autoscaled service: scale-up within a
few sync periods of a burst, no flapping under noisy load, the scale-down delay honoured, min/max respected."""

from __future__ import annotations

import copy

import pytest

from devtools.hpa_sim import PHASES, SYNC_S, flaps, queue_compute_ratio, simulate, standard_load
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
    rows = simulate(flat, lambda t: 1.5, 61, initial=2)
    assert queue_compute_ratio(0.75) == pytest.approx(3.0)
    assert rows[-1].replicas == 6
    # ratio 1.05 (inside the 10% tolerance) never moves it: ρ = 0.5122 → 1.05
    rows = simulate(flat, lambda t: 2 * 0.5122, 600, initial=2)
    assert {r.replicas for r in rows} == {2}


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
    quiet = PHASES[3][0]
    before = at(run, quiet - SYNC_S).replicas
    first_down = next(r.t for r in run if r.t >= quiet and r.replicas < before)
    assert first_down - quiet >= spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    assert at(run, PHASES[3][1] - SYNC_S).replicas == spec["minReplicas"]
    assert run[-1].replicas == spec["minReplicas"]


def test_without_the_scale_down_window_the_spike_flaps(spec):
    """The counterfactual: our window is what prevents it."""
    eager = copy.deepcopy(spec)
    eager["behavior"]["scaleDown"] = {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
    }
    load, duration = standard_load()
    assert flaps(simulate(eager, load, duration), 600)
