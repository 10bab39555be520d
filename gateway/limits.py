"""Rate limits (per key and per service) and usage totals, in state that several gateway replicas share.

The store is aiocache: in memory by default (one replica), Redis when REDIS_URL is set (all replicas enforce one
limit together). Every update is a single atomic increment (Redis INCRBY): no read-modify-write races between
replicas. Windows are fixed calendar minutes; a key's counters expire two minutes after their window.

Concurrent streams are leases, not a counter: one member per open stream in a sorted set scored by its last
heartbeat. The replica holding a stream renews it every LEASE_TTL_S / 3; a lease not renewed for LEASE_TTL_S (its
replica was killed) stops counting on its own. Admission prunes stale leases, counts and adds atomically (Lua).

Redis unreachable (docs/reliability.md): the per-minute windows fail open (served, logged), the stream leases
fail closed (503 limit_store_unavailable): an unbounded number of long streams is what the limit exists to stop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field

from aiocache import Cache, SimpleMemoryCache
from redis.exceptions import RedisError

from modelsvc.catalog import Key, Limits, Service

from .errors import LimitStoreUnavailable, RateLimited

log = logging.getLogger("gateway.limits")
WINDOW_S = 60
LEASE_TTL_S = 45.0  # a stream lease not renewed for this long (its replica died) stops counting
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

# KEYS[1] the lease set; ARGV: ttl, limit, member. Scores are Redis's own clock: replicas' clocks never matter.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 2))
return 1
"""
# KEYS: lease sets, ARGV: their members (pairwise); only leases still present are renewed (XX).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for i, key in ipairs(KEYS) do redis.call('ZADD', key, 'XX', now, ARGV[i]) end
return #KEYS
"""


class MemoryLeases:
    """Stream leases of one process (no Redis)."""

    def __init__(self, ttl: float = LEASE_TTL_S):
        self.ttl = ttl
        self.sets: dict[str, dict[str, float]] = {}

    async def acquire(self, key: str, member: str, limit: int) -> bool:
        now = time.monotonic()
        leases = self.sets.setdefault(key, {})
        for m in [m for m, ts in leases.items() if ts < now - self.ttl]:
            del leases[m]
        if len(leases) >= limit:
            return False
        leases[member] = now
        return True

    async def renew(self, held: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        for key, member in held:
            if member in self.sets.get(key, {}):
                self.sets[key][member] = now

    async def release(self, key: str, member: str) -> None:
        self.sets.get(key, {}).pop(member, None)


class RedisLeases:
    def __init__(self, client, ttl: float = LEASE_TTL_S):
        self.ttl = ttl
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    async def acquire(self, key: str, member: str, limit: int) -> bool:
        return bool(await self._acquire(keys=[key], args=[self.ttl, limit, member]))

    async def renew(self, held: list[tuple[str, str]]) -> None:
        if held:
            await self._renew(keys=[k for k, _ in held], args=[m for _, m in held])

    async def release(self, key: str, member: str) -> None:
        await self.client.zrem(key, member)


def make_store(redis_url: str | None):
    if redis_url:
        return Cache.from_url(redis_url)
    return SimpleMemoryCache()


@dataclass
class Admission:
    """What a request took from the limits; `release()` gives back its stream slots."""

    headers: dict = field(default_factory=dict)
    stream_keys: list[str] = field(default_factory=list)  # lease sets this request holds a lease in
    token_keys: list[str] = field(default_factory=list)
    lease_id: str = ""


class Limiter:
    def __init__(self, store, namespace: str = "modelsvc", lease_ttl: float = LEASE_TTL_S):
        self.store = store
        self.ns = namespace
        client = getattr(store, "client", None)
        self.leases = RedisLeases(client, lease_ttl) if client is not None else MemoryLeases(lease_ttl)
        self._held: dict[tuple[str, str], None] = {}  # leases of this process, renewed by the heartbeat
        self._heartbeat: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()
        self._warned = 0.0

    def _store_down(self, e: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned > 10:  # one line per 10 s, not one per request
            self._warned = now
            log.warning(
                "limit store unreachable (%s: %s): per-minute limits are not enforced, streams on "
                "services with a concurrency limit are refused",
                type(e).__name__,
                e,
            )

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
        except (RateLimited, LimitStoreUnavailable):
            await self.release(adm)
            raise
        return adm

    async def _admit_one(self, adm: Admission, name: str, lim: Limits, window: int, reset: int, stream: bool) -> None:
        what = "key" if name.startswith("key:") else "service"
        try:
            await self._windows(adm, name, what, lim, window, reset)
        except STORE_ERRORS as e:  # fail open: a Redis outage must not take the API down with it
            self._store_down(e)
        if stream and lim.max_concurrent_streams is not None:
            skey = f"{self.ns}:streams:{name}"
            adm.lease_id = adm.lease_id or uuid.uuid4().hex
            try:
                ok = await self.leases.acquire(skey, adm.lease_id, lim.max_concurrent_streams)
            except STORE_ERRORS as e:  # fail closed: no lease others can see, no stream
                self._store_down(e)
                raise LimitStoreUnavailable(
                    f"this {what} limits concurrent streams and the gateway cannot reach its limit store right now; "
                    "retry shortly, or send the request without 'stream'",
                    headers={"retry-after": "5"},
                ) from None
            if not ok:
                raise RateLimited(
                    f"too many concurrent streams for this {what} (at most "
                    f"{lim.max_concurrent_streams}); retry when one has finished",
                    headers={**adm.headers, "retry-after": "1"},
                )
            adm.stream_keys.append(skey)
            self._held[(skey, adm.lease_id)] = None
            self._ensure_heartbeat()

    async def _windows(self, adm: Admission, name: str, what: str, lim: Limits, window: int, reset: int) -> None:
        if lim.tokens_per_minute is not None:
            tkey = f"{self.ns}:tpm:{name}:{window}"
            used = int(await self.store.get(tkey) or 0)
            remaining = max(0, lim.tokens_per_minute - used)
            adm.headers.update(
                {
                    "x-ratelimit-limit-tokens": str(lim.tokens_per_minute),
                    "x-ratelimit-remaining-tokens": str(remaining),
                    "x-ratelimit-reset-tokens": f"{reset}s",
                }
            )
            if remaining <= 0:
                raise RateLimited(
                    f"rate limit reached for this {what}: {lim.tokens_per_minute} tokens per minute; retry in {reset}s",
                    headers={**adm.headers, "retry-after": str(reset)},
                )
            adm.token_keys.append(tkey)
        if lim.requests_per_minute is not None:
            used = await self._incr(f"{self.ns}:rpm:{name}:{window}", 1, 2 * WINDOW_S)
            adm.headers.update(
                {
                    "x-ratelimit-limit-requests": str(lim.requests_per_minute),
                    "x-ratelimit-remaining-requests": str(max(0, lim.requests_per_minute - used)),
                    "x-ratelimit-reset-requests": f"{reset}s",
                }
            )
            if used > lim.requests_per_minute:
                raise RateLimited(
                    f"rate limit reached for this {what}: {lim.requests_per_minute} requests per "
                    f"minute; retry in {reset}s",
                    headers={**adm.headers, "retry-after": str(reset)},
                )

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._renew_loop())

    async def _renew_loop(self) -> None:
        """Renew this process's stream leases while it holds any (a killed process stops renewing: they expire)."""
        while self._held:
            await asyncio.sleep(self.leases.ttl / 3)
            try:
                await self.leases.renew(list(self._held))
            except STORE_ERRORS as e:
                self._store_down(e)

    async def release(self, adm: Admission) -> None:
        keys, adm.stream_keys = adm.stream_keys, []
        for skey in keys:
            self._held.pop((skey, adm.lease_id), None)
            try:
                await self.leases.release(skey, adm.lease_id)
            except STORE_ERRORS as e:  # the lease expires on its own
                self._store_down(e)

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
                self.store.increment(f"{prefix}:completion_tokens", completion_tokens),
            )
        except Exception as e:
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
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.drain()
        await self.store.close()
