"""Rate limits (per key and per service) and usage totals, in state that several gateway replicas share.

The store is aiocache: in memory by default (one replica), Redis when REDIS_URL is set (all replicas enforce one
limit together). Every update is a single atomic increment (Redis INCRBY): no read-modify-write races between
replicas. Windows are fixed calendar minutes; a key's counters expire two minutes after their window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from aiocache import Cache, SimpleMemoryCache

from modelsvc.catalog import Key, Limits, Service

from .errors import RateLimited

log = logging.getLogger("gateway.limits")
WINDOW_S = 60
STREAM_COUNTER_TTL_S = 6 * 3600  # a crashed replica's open streams stop counting after this


def make_store(redis_url: str | None):
    if redis_url:
        return Cache.from_url(redis_url)
    return SimpleMemoryCache()


@dataclass
class Admission:
    """What a request took from the limits; `release()` gives back its stream slots."""

    headers: dict = field(default_factory=dict)
    stream_keys: list[str] = field(default_factory=list)
    token_keys: list[str] = field(default_factory=list)


class Limiter:
    def __init__(self, store, namespace: str = "modelsvc"):
        self.store = store
        self.ns = namespace
        self._pending: set[asyncio.Task] = set()

    def _window(self, now: float) -> tuple[int, int]:
        window = int(now // WINDOW_S)
        return window, math.ceil((window + 1) * WINDOW_S - now)

    async def _incr(self, key: str, delta: int, ttl: int) -> int:
        value = await self.store.increment(key, delta)
        if value == delta:  # first touch of this counter: give it a lifetime
            await self.store.expire(key, ttl)
        return value

    async def admit(self, key: Key, service: Service, stream: bool) -> Admission:
        scopes = [(f"key:{key.id}", key.limits), (f"svc:{service.id}", service.limits)]
        scopes = [(name, lim) for name, lim in scopes if lim is not None]
        adm = Admission()
        if not scopes:
            return adm
        window, reset = self._window(time.time())
        try:
            for name, lim in scopes:
                await self._admit_one(adm, name, lim, window, reset, stream)
        except RateLimited:
            await self.release(adm)
            raise
        return adm

    async def _admit_one(self, adm: Admission, name: str, lim: Limits, window: int, reset: int,
                         stream: bool) -> None:
        what = "key" if name.startswith("key:") else "service"
        if lim.tokens_per_minute is not None:
            tkey = f"{self.ns}:tpm:{name}:{window}"
            used = int(await self.store.get(tkey) or 0)
            remaining = max(0, lim.tokens_per_minute - used)
            adm.headers.update({"x-ratelimit-limit-tokens": str(lim.tokens_per_minute),
                                "x-ratelimit-remaining-tokens": str(remaining),
                                "x-ratelimit-reset-tokens": f"{reset}s"})
            if remaining <= 0:
                raise RateLimited(f"rate limit reached for this {what}: {lim.tokens_per_minute} tokens per minute; "
                                  f"retry in {reset}s", headers={**adm.headers, "retry-after": str(reset)})
            adm.token_keys.append(tkey)
        if lim.requests_per_minute is not None:
            used = await self._incr(f"{self.ns}:rpm:{name}:{window}", 1, 2 * WINDOW_S)
            adm.headers.update({"x-ratelimit-limit-requests": str(lim.requests_per_minute),
                                "x-ratelimit-remaining-requests": str(max(0, lim.requests_per_minute - used)),
                                "x-ratelimit-reset-requests": f"{reset}s"})
            if used > lim.requests_per_minute:
                raise RateLimited(f"rate limit reached for this {what}: {lim.requests_per_minute} requests per "
                                  f"minute; retry in {reset}s", headers={**adm.headers, "retry-after": str(reset)})
        if stream and lim.max_concurrent_streams is not None:
            skey = f"{self.ns}:streams:{name}"
            open_now = await self._incr(skey, 1, STREAM_COUNTER_TTL_S)
            adm.stream_keys.append(skey)
            if open_now > lim.max_concurrent_streams:
                raise RateLimited(f"too many concurrent streams for this {what} (at most "
                                  f"{lim.max_concurrent_streams}); retry when one has finished",
                                  headers={**adm.headers, "retry-after": "1"})

    async def release(self, adm: Admission) -> None:
        keys, adm.stream_keys = adm.stream_keys, []
        for skey in keys:
            await self.store.increment(skey, -1)

    def spend(self, adm: Admission, key: Key, service: Service, prompt_tokens: int, completion_tokens: int) -> None:
        """After a request: count its tokens against the limits and add it to the usage totals (in the
        background, so the caller does not wait on the store; `drain()` waits for these at shutdown)."""
        task = asyncio.ensure_future(self._spend(adm, key, service, prompt_tokens, completion_tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _spend(self, adm, key, service, prompt_tokens, completion_tokens) -> None:
        tokens = prompt_tokens + completion_tokens
        prefix = f"{self.ns}:usage:{service.id}:{key.id}"
        try:
            await asyncio.gather(
                *(self._incr(k, tokens, 2 * WINDOW_S) for k in adm.token_keys if tokens),
                self.store.increment(f"{prefix}:requests", 1),
                self.store.increment(f"{prefix}:prompt_tokens", prompt_tokens),
                self.store.increment(f"{prefix}:completion_tokens", completion_tokens))
        except Exception as e:  # noqa: BLE001 - the usage log stays the record of truth; never fail a request here
            log.warning("could not update shared usage totals: %s", e)

    async def totals(self, service_id: str, key_id: str) -> dict[str, int]:
        prefix = f"{self.ns}:usage:{service_id}:{key_id}"
        names = ("requests", "prompt_tokens", "completion_tokens")
        values = await asyncio.gather(*(self.store.get(f"{prefix}:{n}") for n in names))
        return {n: int(v or 0) for n, v in zip(names, values)}

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self.store.close()
