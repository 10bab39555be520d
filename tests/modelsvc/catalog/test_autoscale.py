"""services.yaml `autoscale`: typed values, located errors, and capacity checked at max_instances."""

import pytest

from modelsvc.catalog import CatalogError, loads
from modelsvc.catalog.model import duration_seconds

from .samples import VALID

TEST_SVC = "    model: chat-8b\n    instances: 1\n    pool: h100\n"


def with_autoscale(block: str) -> str:
    assert TEST_SVC in VALID
    return VALID.replace(
        TEST_SVC, TEST_SVC + "    autoscale:\n" + "".join(f"      {line}\n" for line in block.splitlines())
    )


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def test_autoscale_loads_with_defaults():
    c = loads(with_autoscale("max_instances: 4"))
    svc = c.service("u-a/test")
    assert svc.instances == 1 and svc.peak_instances == 4
    assert svc.autoscale.metric.value == "queue_ratio" and svc.autoscale.target == 1.0
    assert svc.autoscale.scale_down_delay_s == 300
    assert c.service("u-b/big").autoscale is None and c.service("u-b/big").peak_instances == 2


def test_all_fields():
    c = loads(with_autoscale("max_instances: 3\nmetric: pending_requests\ntarget: 8\nscale_down_delay: 1h"))
    a = c.service("u-a/test").autoscale
    assert (a.max_instances, a.metric.value, a.target, a.scale_down_delay_s) == (3, "pending_requests", 8.0, 3600)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1m30s", 90), ("0s", 0)])
def test_duration_syntax(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "5 m", "1d", "m", "-5m", "1.5h", "10M"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        duration_seconds(text)


CASES = [
    (
        "target out of range",
        "max_instances: 2\ntarget: 50",
        "services.yaml:36:15: target 50 is outside 0.05–10 for metric queue_ratio — use a value between 0.05 and 10 "
        "(queue time / compute time per instance; 1 means requests wait as long as they run)",
    ),
    (
        "pending target out of range",
        "max_instances: 2\nmetric: pending_requests\ntarget: 0.5",
        "services.yaml:37:15: target 0.5 is outside 1–1000 for metric pending_requests — "
        "use a value between 1 and 1000 "
        "(requests waiting per instance)",
    ),
    (
        "target not a number",
        "max_instances: 2\ntarget: high",
        "services.yaml:36:15: 'target' must be a number, not the text 'high' — write a number without quotes, e.g. 0.5",
    ),
    (
        "bad duration",
        "max_instances: 2\nscale_down_delay: 10 minutes",
        "services.yaml:36:25: 'scale_down_delay' is '10 minutes', not a duration: write e.g. 300s, 5m or 1h — fix the "
        "value",
    ),
    (
        "duration too long",
        "max_instances: 2\nscale_down_delay: 2h",
        "services.yaml:36:25: 'scale_down_delay' is '2h', longer than the 1h the Kubernetes HPA allows — fix the value",
    ),
    (
        "unknown field",
        "max_instance: 2",
        "services.yaml:35:7: unknown field 'max_instance' — did you mean 'max_instances'?",
    ),
    (
        "bad metric",
        "max_instances: 2\nmetric: queue",
        "services.yaml:36:15: 'metric' is 'queue', must be one of queue_ratio, pending_requests — did you mean "
        "'queue_ratio'?",
    ),
    (
        "capacity at max",
        "max_instances: 5",
        "services.yaml:9:16: pool 'h100' needs 3 nodes for 7 instances (13 GPUs) "
        "and room to build a 4-GPU engine beside "
        "them, but max_nodes is 2 — raise max_nodes to 3 or lower the instances of the services using it",
    ),
]


@pytest.mark.parametrize("what,block,expected", CASES, ids=[c[0] for c in CASES])
def test_located_errors(what, block, expected):
    assert expected in problems(with_autoscale(block))


def test_max_below_instances():
    text = with_autoscale("max_instances: 2").replace(
        "    instances: 1\n    pool: h100\n    autoscale", "    instances: 3\n    pool: h100\n    autoscale"
    )
    assert problems(text) == [
        "services.yaml:35:22: max_instances is 2, below the service's instances (3) — raise max_instances to at least "
        "3: instances is the minimum the autoscaler keeps"
    ]


def test_autoscale_needs_a_running_minimum():
    text = with_autoscale("max_instances: 2").replace(
        "    instances: 1\n    pool: h100\n    autoscale", "    instances: 0\n    pool: h100\n    autoscale"
    )
    assert problems(text) == [
        "services.yaml:32:16: an autoscaled service needs instances >= 1 (the HPA's minimum) — set instances to 1 or "
        "more, or remove 'autoscale' to stop the service with instances: 0"
    ]


def test_capacity_fits_exactly_at_max():
    # 4×1 + 2×4 + a 4-GPU build beside them = 16 GPUs = 2 nodes of 8
    assert loads(with_autoscale("max_instances: 4")).service("u-a/test").peak_instances == 4


def test_every_autoscale_mistake_at_once():
    found = problems(with_autoscale("max_instances: 0\ntarget: 99\nscale_down_delay: soon"))
    assert len(found) == 3, found
