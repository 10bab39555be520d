"""A simulation of the Kubernetes HPA controller on our rendered HPA, under a synthetic load trace.

No cluster runs here, so this drives the controller's documented algorithm (kubernetes.io, "Horizontal Pod
Autoscaling": desired = ceil(current × metric / target), 10% tolerance, pods not yet ready count as 0 on scale-up,
stabilisation windows over past recommendations, rate policies per period, min/max clamps) with the HPA object that
`infra.manifests.autoscaling.hpa` renders. The load side is a queueing model of one Triton pod running TensorRT-LLM:
in-flight batching serves up to `slots` requests at once (M/M/c, c = slots), the rest wait in the executor. At
utilisation ρ (offered load / ready pods, 1.0 = one pod's capacity) the executor holds Lq = C(c, cρ)·ρ/(1−ρ) waiting
(Erlang C) beside Ls = cρ in flight, and the recording rule's queue_ratio is Lq / Ls (infra/observability/rules.py):
what the HPA reads. Triton's own queue/compute ratio (NVIDIA's guide's signal) reads ~0 on such a pod at any load,
the decoupled backend taking every request at once: `signal=triton_core_ratio` shows what that would do.

    python -m devtools.hpa_sim            # the example catalog's autoscaled service under the standard trace
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance default
SYNC_S = 15  # --horizontal-pod-autoscaler-sync-period default
RATIO_CAP = 20.0  # an overloaded pod's ratio keeps growing; cap it like a full queue would


SLOTS = 8  # requests a pod serves at once before the executor queues (KV cache / max batch bound)


def queue_compute_ratio(utilisation: float) -> float:
    """One server (c = 1): waiting/serving = ρ/(1−ρ)."""
    return executor_ratio(utilisation, slots=1)


def erlang_c(c: int, a: float) -> float:
    """Probability an arrival waits in an M/M/c queue with offered load a = λ/μ (< c)."""
    term, total = 1.0, 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1 - a / c)
    return last / (total + last)


def executor_ratio(utilisation: float, slots: int = SLOTS) -> float:
    """TensorRT-LLM's waiting / active on one pod (the recorded queue_ratio), capped like a full queue."""
    if utilisation <= 0:
        return 0.0
    if utilisation >= 0.97:
        return RATIO_CAP
    a = slots * utilisation
    waiting = erlang_c(slots, a) * utilisation / (1 - utilisation)
    return min(RATIO_CAP, waiting / a)


def requests_in_pod(utilisation: float, slots: int = SLOTS) -> float:
    """pending_requests as recorded: requests a pod holds, in flight (cρ) and waiting (Lq): proportional to the
    load below saturation, growing with the queue above it."""
    if utilisation <= 0:
        return 0.0
    if utilisation >= 0.97:
        return slots * RATIO_CAP
    a = slots * utilisation
    return a + erlang_c(slots, a) * utilisation / (1 - utilisation)


def triton_core_ratio(utilisation: float) -> float:
    """Triton's queue/compute ratio on a decoupled TensorRT-LLM pod: the backend takes each request at once, so
    Triton's queue stays empty whatever the load (the executor's wait counts as compute)."""
    return 0.0


def quantity(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


@dataclass
class Row:
    t: int
    load: float
    ready: int
    replicas: int
    metric: float  # what the HPA read (average over ready pods)
    desired: int  # after stabilisation, policies and clamps


def _limit(rules: dict, events: list[tuple[int, int]], now: int, current: int, up: bool) -> int:
    """The rate policies: change allowed relative to the replica count at the start of each policy's period."""
    limits = []
    for p in rules["policies"]:
        changed = sum(d for t, d in events if now - t < p["periodSeconds"] and (d > 0) == up)
        start = current - changed  # changed is negative on the way down
        if p["type"] == "Pods":
            limits.append(start + p["value"] if up else start - p["value"])
        else:
            limits.append(
                math.ceil(start * (1 + p["value"] / 100)) if up else math.floor(start * (1 - p["value"] / 100))
            )
    most_change = max if up else min
    least_change = min if up else max
    return (most_change if rules.get("selectPolicy", "Max") == "Max" else least_change)(limits)


def simulate(
    hpa_spec: dict,
    load,
    duration_s: int,
    *,
    startup_s: int = 240,
    metric_window_s: int = 60,
    initial: int | None = None,
    signal=executor_ratio,
) -> list[Row]:
    """load(t) → offered load in pods' worth of capacity. Returns one Row per HPA sync."""
    lo, hi = hpa_spec["minReplicas"], hpa_spec["maxReplicas"]
    target = quantity(hpa_spec["metrics"][0]["pods"]["target"]["averageValue"])
    up_rules, down_rules = hpa_spec["behavior"]["scaleUp"], hpa_spec["behavior"]["scaleDown"]
    replicas = initial or lo
    pods_ready_at = [0] * replicas  # one entry per pod: when it becomes ready
    samples: list[float] = []  # per-second true ratio of ready pods
    recommendations: list[tuple[int, int]] = []
    events: list[tuple[int, int]] = []
    rows = []
    for t in range(duration_s):
        ready = sum(1 for r in pods_ready_at if r <= t)
        samples.append(signal(load(t) / ready) if ready else RATIO_CAP)
        if t % SYNC_S:
            continue
        metric = sum(samples[-metric_window_s:]) / len(samples[-metric_window_s:])
        ratio = metric / target
        if abs(ratio - 1) <= TOLERANCE:
            rec = replicas
        elif ratio > 1:
            # unready pods count as 0: the average over all pods, then the usual formula
            new_ratio = metric * ready / (target * replicas)
            rec = math.ceil(replicas * new_ratio) if new_ratio > 1 + TOLERANCE else replicas
        else:
            rec = math.ceil(replicas * ratio)
        recommendations.append((t, rec))
        up_window = [r for ts, r in recommendations if t - ts <= up_rules["stabilizationWindowSeconds"]]
        down_window = [r for ts, r in recommendations if t - ts <= down_rules["stabilizationWindowSeconds"]]
        up_rec, down_rec = min(up_window), max(down_window)
        desired = up_rec if replicas < up_rec else down_rec if replicas > down_rec else replicas
        if desired > replicas:
            desired = min(desired, _limit(up_rules, events, t, replicas, up=True))
        elif desired < replicas:
            desired = max(desired, _limit(down_rules, events, t, replicas, up=False))
        desired = max(lo, min(hi, desired))
        if desired != replicas:
            events.append((t, desired - replicas))
            if desired > replicas:
                pods_ready_at += [t + startup_s] * (desired - replicas)
            else:  # the newest pods go first
                pods_ready_at = sorted(pods_ready_at)[:desired]
            replicas = desired
        rows.append(Row(t, round(load(t), 3), ready, replicas, round(metric, 3), desired))
    return rows


# The standard trace (seconds): steady, a burst beyond max, a noisy plateau, a quiet night, a short spike.
PHASES = [(0, 600, 0.9), (600, 2400, 2.6), (2400, 4200, 1.5), (4200, 6600, 0.5), (6600, 6720, 1.6), (6720, 8400, 0.5)]


def standard_load(seed: int = 7):
    rng = random.Random(seed)
    noise = [rng.uniform(-0.1, 0.1) for _ in range(PHASES[-1][1])]

    def load(t: int) -> float:
        base = next(v for start, end, v in PHASES if start <= t < end)
        return max(0.0, base * (1 + noise[t]))  # ±10% jitter every second

    return load, PHASES[-1][1]


def flaps(rows: list[Row], window_s: int) -> list[tuple[int, int]]:
    """Direction reversals (down then up, or up then down) closer together than window_s."""
    changes = [(b.t, b.replicas - a.replicas) for a, b in itertools.pairwise(rows) if b.replicas != a.replicas]
    return [
        (t1, t2) for (t1, d1), (t2, d2) in itertools.pairwise(changes) if (d1 > 0) != (d2 > 0) and t2 - t1 < window_s
    ]


def main() -> None:
    from infra.manifests.autoscaling import autoscaled, hpa
    from infra.settings import Settings
    from modelsvc.catalog import load as load_catalog

    catalog = load_catalog("services.yaml")
    svc = autoscaled(catalog)[0]
    spec = hpa(catalog, svc, Settings())["spec"]
    load, duration = standard_load()
    rows = simulate(spec, load, duration)
    print(
        f"{svc.access_name}: min {spec['minReplicas']}, max {spec['maxReplicas']}, target "
        f"{spec['metrics'][0]['pods']['target']['averageValue']}, scale-down window "
        f"{spec['behavior']['scaleDown']['stabilizationWindowSeconds']} s"
    )
    print("| t (min) | load | ready | replicas | ratio seen |")
    print("|---|---|---|---|---|")
    last = None
    for r in rows:
        if r.t % 300 == 0 or r.replicas != last:
            print(f"| {r.t / 60:.2f} | {r.load:.2f} | {r.ready} | {r.replicas} | {r.metric:.2f} |")
        last = r.replicas
    print(f"flaps: {flaps(rows, spec['behavior']['scaleDown']['stabilizationWindowSeconds'])}")
    core = simulate(spec, load, duration, signal=triton_core_ratio)
    print(f"on Triton's own queue/compute ratio instead: replicas {sorted({r.replicas for r in core})} all along")


if __name__ == "__main__":
    main()
