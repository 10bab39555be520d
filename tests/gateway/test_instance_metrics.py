"""What the gateway knows about scaling: discovery events per service and instance gauges."""

from __future__ import annotations

from prometheus_client import generate_latest

from gateway.instance_metrics import InstanceCollector
from gateway.usage import Metrics
from modelsvc.catalog import loads

from .harness import example_catalog
from .test_balancer_unit import pool_of


async def test_discovery_changes_are_recorded_as_scaling_events():
    pool, _made = await pool_of("a", "b")
    assert [(e["from"], e["to"], e["added"], e["removed"]) for e in pool.events] == [(0, 2, 2, 0)]
    pool.discovery.endpoints = ["a", "b", "c", "d"]  # the HPA added two pods
    await pool.refresh()
    pool.discovery.endpoints = ["b", "c", "d"]  # one scaled away
    await pool.refresh()
    await pool.refresh()  # nothing changed: no event
    assert [(e["from"], e["to"], e["added"], e["removed"]) for e in pool.events] == [
        (0, 2, 2, 0),
        (2, 4, 2, 0),
        (4, 3, 0, 1),
    ]
    assert pool.events[-1]["at"] >= pool.events[0]["at"]
    await pool.close()


async def test_events_are_bounded():
    pool, _ = await pool_of("a")
    for i in range(50):
        pool.discovery.endpoints = ["a"] if i % 2 else ["a", "b"]
        await pool.refresh()
    assert len(pool.events) == 20
    await pool.close()


async def test_instance_gauges_per_service():
    catalog = loads(example_catalog())
    pool, made = await pool_of("a", "b")
    made["b"].up = False
    pool.failed(pool.instances[1])

    class Rt:
        pass

    rt = Rt()
    rt.catalog, rt.pools = catalog, {"u-8105f7322477/support-bot": pool}
    metrics = Metrics()
    metrics.registry.register(InstanceCollector(rt))
    text = generate_latest(metrics.registry).decode()
    sb = 'access_name="u-8105f7322477/support-bot",service_id="ms-a2547eda8901"'
    assert f'modelsvc_instances{{{sb},state="ready"}} 1.0' in text
    assert f'modelsvc_instances{{{sb},state="discovered"}} 2.0' in text
    assert (
        'modelsvc_instances{access_name="u-8105f7322477/test",service_id="ms-1d033c426254",state="ready"} 0.0' in text
    )
    await pool.close()
