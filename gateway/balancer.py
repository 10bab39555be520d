"""A service's instances: discovery, least-outstanding picking, failure ejection and health probing.

An instance that fails is taken out of rotation and probed (the backend's own readiness: Triton's ServerReady and
ModelReady) until it answers again. Discovery is an explicit endpoint list locally, or the headless Kubernetes
Service's DNS name resolved to every pod IP and re-resolved periodically.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .backends.base import Backend
from .errors import BackendUnavailable

log = logging.getLogger("gateway.balancer")
_R = TypeVar("_R")  # what a call on an instance returns


@dataclass(eq=False)
class Instance:
    endpoint: str
    backend: Backend
    healthy: bool = False
    started: bool = False
    outstanding: int = 0
    served: int = 0
    probe: asyncio.Task | None = field(default=None, repr=False)


class StaticEndpoints:
    def __init__(self, endpoints: list[str]):
        self.endpoints = list(endpoints)

    async def resolve(self) -> list[str]:
        return self.endpoints


class DnsEndpoints:
    """Every A/AAAA record of a headless Service: one per ready pod."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def resolve(self) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        # a host name resolves to AF_INET/AF_INET6 records, whose sockaddr starts with the address as a string
        addrs = sorted({addr for *_, sockaddr in infos if isinstance(addr := sockaddr[0], str)})
        return [f"[{a}]:{self.port}" if ":" in a else f"{a}:{self.port}" for a in addrs]


class InstancePool:
    def __init__(
        self,
        name: str,
        discovery,
        make_backend: Callable[[str], Backend],
        *,
        probe_interval_s: float = 1.0,
        refresh_interval_s: float = 10.0,
        health_interval_s: float = 5.0,
    ):
        self.name = name
        self.discovery = discovery
        self.make_backend = make_backend
        self.probe_interval_s = probe_interval_s
        self.refresh_interval_s = refresh_interval_s
        self.health_interval_s = health_interval_s
        self._health: asyncio.Task | None = None
        self.instances: list[Instance] = []
        self._rr = itertools.count()
        self._refresher: asyncio.Task | None = None
        self._closed = False
        self._retiring: set[asyncio.Task] = set()
        # Changes in the discovered instance count (pods added or removed by scaling, rollouts, failures), newest
        # last: what the console shows as recent scaling events. Only what this gateway replica saw since it started.
        self.events: collections.deque[dict] = collections.deque(maxlen=20)

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.refresh()
        if isinstance(self.discovery, DnsEndpoints):
            self._refresher = asyncio.create_task(self._refresh_loop())
        if self.health_interval_s:
            self._health = asyncio.create_task(self._health_loop())

    async def refresh(self) -> None:
        try:
            endpoints = await self.discovery.resolve()
        except OSError as e:
            log.warning("%s: cannot resolve instances: %s", self.name, e)
            return
        current = {i.endpoint: i for i in self.instances}
        added = [Instance(ep, self.make_backend(ep)) for ep in endpoints if ep not in current]
        gone = [i for ep, i in current.items() if ep not in endpoints]
        self.instances = [i for i in self.instances if i.endpoint in endpoints] + added
        if added or gone:
            self.events.append(
                {
                    "at": time.time(),
                    "from": len(current),
                    "to": len(self.instances),
                    "added": len(added),
                    "removed": len(gone),
                }
            )
        await asyncio.gather(*(self._start_instance(i) for i in added))
        for i in gone:
            task = asyncio.create_task(self._retire(i))
            self._retiring.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._retiring.discard)

    async def _start_instance(self, inst: Instance) -> None:
        try:
            await inst.backend.start()
            inst.started = inst.healthy = True
        except Exception as e:
            log.warning("%s: instance %s not usable yet: %s", self.name, inst.endpoint, e)
            self._eject(inst)

    async def _retire(self, inst: Instance) -> None:
        inst.healthy = False
        while inst.outstanding:  # let in-flight requests finish on a pod that is going away
            await asyncio.sleep(0.1)
        if inst.probe:
            inst.probe.cancel()
        await inst.backend.close()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            await self.refresh()

    async def _health_loop(self) -> None:
        """Healthy instances are checked too, so that status is live even without traffic."""
        while True:
            await asyncio.sleep(self.health_interval_s)
            healthy = [i for i in self.instances if i.healthy]
            results = await asyncio.gather(*(i.backend.ready() for i in healthy))
            for inst, ok in zip(healthy, results):
                if not ok:
                    self.failed(inst)

    async def close(self) -> None:
        self._closed = True
        for task in (self._refresher, self._health):
            if task:
                task.cancel()
        for inst in self.instances:
            if inst.probe:
                inst.probe.cancel()
        await asyncio.gather(*(i.backend.close() for i in self.instances), return_exceptions=True)

    # -- picking ------------------------------------------------------------------------------------------------------
    def pick(self, exclude: tuple[Instance, ...] = ()) -> Instance:
        candidates = [i for i in self.instances if i.healthy and i not in exclude]
        if not candidates:
            # Panic mode (as Envoy does): with no healthy instance left, trying one that failed beats refusing;
            # it may have recovered since its last probe.
            candidates = [i for i in self.instances if i.started and i not in exclude]
        if not candidates:
            raise BackendUnavailable(f"no instance of '{self.name}' is available right now; try again shortly")
        # Least outstanding; ties broken round-robin so idle instances share the load evenly.
        start = next(self._rr) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda i: i.outstanding)

    def failed(self, inst: Instance) -> None:
        if inst.healthy:
            log.warning("%s: instance %s failed; out of rotation until it is ready again", self.name, inst.endpoint)
        self._eject(inst)

    def _eject(self, inst: Instance) -> None:
        inst.healthy = False
        if not self._closed and (inst.probe is None or inst.probe.done()):
            inst.probe = asyncio.create_task(self._probe(inst))

    async def _probe(self, inst: Instance) -> None:
        while inst in self.instances:
            await asyncio.sleep(self.probe_interval_s)
            if not await inst.backend.ready():
                continue
            if not inst.started:
                await self._start_instance(inst)
                if not inst.started:
                    continue
            inst.healthy = True
            log.info("%s: instance %s is ready again", self.name, inst.endpoint)
            return

    # -- status -------------------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        return sum(i.healthy for i in self.instances), len(self.instances)

    async def run(
        self, call: Callable[[Instance], Awaitable[_R]], *, retryable: Callable[[Exception], bool], hold: bool = False
    ) -> _R:
        """Run call on an instance; on a retryable failure, once more on another instance. With hold, the instance
        stays counted as busy after success (a stream still open on it): the caller decrements `outstanding`."""
        tried: tuple[Instance, ...] = ()
        while True:
            inst = self.pick(exclude=tried)
            inst.outstanding += 1
            try:
                result = await call(inst)
            except BaseException as e:
                inst.outstanding -= 1
                if not isinstance(e, Exception) or not retryable(e):
                    raise
                self.failed(inst)
                tried += (inst,)
                if len(tried) >= 2 or not any(i.healthy and i not in tried for i in self.instances):
                    raise  # retried once already, or no healthy instance left to retry on
                log.info("%s: retrying on another instance after %s", self.name, type(e).__name__)
            else:
                if not hold:
                    inst.outstanding -= 1
                inst.served += 1
                return result
