"""The gateway's live state: the current catalog, its key ring and one instance pool per service.

A reload builds the new catalog's state beside the old one: pools whose service, model and endpoints are unchanged
are carried over (connections and health intact), new ones are started, and retired ones close after their
in-flight requests. Requests hold a reference to the pool they started on, so a reload never cuts them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelsvc.catalog import Backend, Catalog, Model, Service, Task
from modelsvc.catalog.names import headless_service_host, placement_from_env

from .auth import KeyRing
from .backends.base import Backend as BackendProtocol
from .backends.openai import OpenAIUpstream
from .backends.triton import TritonInstance
from .balancer import DnsEndpoints, InstancePool, StaticEndpoints
from .config import LocalOverlay, Settings
from .image_fetch import ImageFetcher
from .instance_metrics import InstanceCollector
from .limits import Limiter, make_store
from .responses import ResponseStore
from .responses import make_store as make_responses_store
from .usage import Metrics, UsageLog

log = logging.getLogger("gateway.runtime")
# A model → how one of its instances (an endpoint) is reached.
BackendFactory = Callable[[Model], Callable[[str], BackendProtocol]]


class Runtime:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        overlay: LocalOverlay | None = None,
        usage: UsageLog | None = None,
        *,
        backends: BackendFactory | None = None,
    ):
        self.settings = settings
        self._backends = backends or self._default_backends
        # where infra put each service's headless Service: the same environment infra's manifest gave this pod
        self.placement = placement_from_env()
        self.usage = usage or UsageLog(None, Metrics())
        self.usage.metrics.registry.register(InstanceCollector(self))
        self.limiter = Limiter(
            make_store(settings.redis_url, settings.redis_timeout_s), lease_ttl=settings.stream_lease_s
        )
        self.images = ImageFetcher(settings.images)  # one HTTP client and one budget for every image URL
        # stored Responses API responses: in the usage database when it is PostgreSQL, else a local SQLite file
        self.responses: ResponseStore | None = make_responses_store(
            settings.responses_store, settings.usage_store, settings.responses_ttl_s
        )
        self.overlay = overlay or LocalOverlay()
        self.catalog = catalog
        self.keyring = KeyRing(list(catalog.keys) + self.overlay.keys())
        self.pools: dict[str, InstancePool] = {}
        self._pool_keys: dict[str, tuple] = {}
        self.requests: set[asyncio.Task] = set()  # admitted requests in flight (completions.admitted)
        self.cutting = False  # the shutdown grace is over: in-flight requests are being stopped
        self._retiring: set[asyncio.Task] = set()

    def cut(self) -> None:
        """End of the shutdown grace: stop every request still running; each answers 503 (or ends its stream with
        an error event) and is metered for what its engine did."""
        self.cutting = True
        if self.requests:
            log.warning("shutdown grace over: stopping %d requests still in flight", len(self.requests))
        for task in list(self.requests):
            task.cancel()

    def _endpoints(self, catalog: Catalog, service: Service, model: Model):
        listed = self.overlay.endpoints.get(service.access_name)
        if listed is not None:
            return StaticEndpoints(listed)
        if model.backend is Backend.openai:
            return StaticEndpoints([model.upstream] if model.upstream else [])  # validate requires one
        if self.settings.discovery == "dns":
            return DnsEndpoints(headless_service_host(service, self.placement), self.settings.dns_port)
        return StaticEndpoints([])

    def _default_backends(self, model: Model) -> Callable[[str], BackendProtocol]:
        s = self.settings
        if model.backend is Backend.openai:
            generates = "images" if model.task is Task.image_generation else "text"
            return lambda endpoint: OpenAIUpstream(
                endpoint,
                model.upstream_model,
                deadline_s=s.deadline_s,
                connect_timeout_s=s.connect_timeout_s,
                generates=generates,
                collect=s.non_streamed == "stream",
            )
        return lambda endpoint: TritonInstance(
            endpoint,
            model.triton_model_name,
            deadline_s=s.deadline_s,
            connect_timeout_s=s.connect_timeout_s,
            collect=s.non_streamed == "stream",
        )

    def _build(self, catalog: Catalog) -> tuple[dict[str, InstancePool], dict[str, tuple], list[InstancePool]]:
        pools, keys, new = {}, {}, []
        for svc in catalog.services:
            model = catalog.model_of(svc)
            discovery = self._endpoints(catalog, svc, model)
            identity = (svc.id, model, getattr(discovery, "endpoints", None), getattr(discovery, "host", None))
            if self._pool_keys.get(svc.access_name) == identity:
                pools[svc.access_name] = self.pools[svc.access_name]
            else:
                pool = InstancePool(
                    svc.access_name,
                    discovery,
                    self._backends(model),
                    probe_interval_s=self.settings.probe_interval_s,
                    refresh_interval_s=self.settings.refresh_interval_s,
                    health_interval_s=self.settings.health_interval_s,
                )
                pools[svc.access_name] = pool
                new.append(pool)
            keys[svc.access_name] = identity
        return pools, keys, new

    async def start(self) -> None:
        await self.images.start()
        self.pools, self._pool_keys, new = self._build(self.catalog)
        await asyncio.gather(*(p.start() for p in new))

    async def apply(self, catalog: Catalog) -> None:
        """Switch to a new (already validated) catalog."""
        pools, keys, new = self._build(catalog)
        await asyncio.gather(*(p.start() for p in new))
        retired = [p for name, p in self.pools.items() if pools.get(name) is not p]
        self.catalog, self.pools, self._pool_keys = catalog, pools, keys
        self.keyring = KeyRing(list(catalog.keys) + self.overlay.keys())
        for pool in retired:
            task = asyncio.create_task(_close_when_idle(pool))
            self._retiring.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._retiring.discard)
        log.info(
            "catalog applied: %d services (%d pools new, %d retired)", len(catalog.services), len(new), len(retired)
        )

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.pools.values()), return_exceptions=True)
        await self.images.close()
        await self.limiter.close()
        if self.responses is not None:
            await self.responses.close()

    def status(self, service: Service) -> str:
        ready, total = self.pools[service.access_name].counts()
        if total and ready == total:
            return "running"
        return "degraded" if ready else "unavailable"


async def _close_when_idle(pool: InstancePool) -> None:
    while any(i.outstanding for i in pool.instances):
        await asyncio.sleep(0.1)
    await pool.close()
