"""InstancePool with fake backends: picking, ejection, probing, panic mode, DNS discovery."""

import asyncio

import pytest

from gateway.balancer import DnsEndpoints, InstancePool, StaticEndpoints
from gateway.errors import BackendUnavailable


class Fake:
    def __init__(self, endpoint):
        self.endpoint, self.up, self.calls = endpoint, True, 0

    async def start(self):
        if not self.up:
            raise BackendUnavailable("down")

    async def ready(self):
        return self.up

    async def close(self):
        pass


async def pool_of(*endpoints, **kw):
    made = {}

    def make(ep):
        made[ep] = Fake(ep)
        return made[ep]

    pool = InstancePool("svc", StaticEndpoints(list(endpoints)), make, probe_interval_s=0.02, health_interval_s=0, **kw)
    await pool.start()
    return pool, made


async def test_least_outstanding_then_round_robin():
    pool, _ = await pool_of("a", "b", "c")
    picks = [pool.pick().endpoint for _ in range(6)]
    assert sorted(picks) == ["a", "a", "b", "b", "c", "c"]
    busy = pool.instances[0]
    busy.outstanding = 5
    assert all(pool.pick() is not busy for _ in range(10))
    await pool.close()


async def test_ejection_probe_and_recovery():
    pool, made = await pool_of("a", "b")
    a = pool.instances[0]
    made["a"].up = False
    pool.failed(a)
    assert pool.counts() == (1, 2)
    assert all(pool.pick().endpoint == "b" for _ in range(5))
    made["a"].up = True
    for _ in range(50):
        await asyncio.sleep(0.02)
        if a.healthy:
            break
    assert pool.counts() == (2, 2)
    await pool.close()


async def test_retry_once_on_another_instance():
    pool, _ = await pool_of("a", "b", "c")
    seen = []

    async def call(inst):
        seen.append(inst.endpoint)
        raise BackendUnavailable("nope")

    with pytest.raises(BackendUnavailable):
        await pool.run(call, retryable=lambda e: True)
    assert len(seen) == 2 and len(set(seen)) == 2  # exactly one retry, elsewhere
    await pool.close()


async def test_panic_mode_and_empty_pool():
    pool, _ = await pool_of("a")
    pool.failed(pool.instances[0])
    assert pool.pick().endpoint == "a"  # better to try than to refuse
    await pool.close()
    empty, _ = await pool_of()
    with pytest.raises(BackendUnavailable):
        empty.pick()


async def test_instance_down_at_start_joins_when_ready():
    made = {}

    def make(ep):
        made[ep] = Fake(ep)
        made[ep].up = False
        return made[ep]

    pool = InstancePool("svc", StaticEndpoints(["a"]), make, probe_interval_s=0.02, health_interval_s=0)
    await pool.start()
    assert pool.counts() == (0, 1)
    made["a"].up = True
    for _ in range(50):
        await asyncio.sleep(0.02)
        if pool.counts() == (1, 1):
            break
    assert pool.counts() == (1, 1) and pool.instances[0].started
    await pool.close()


async def test_dns_discovery_lists_every_address():
    eps = await DnsEndpoints("localhost", 8001).resolve()
    assert "127.0.0.1:8001" in eps and all(e.endswith(":8001") for e in eps)
