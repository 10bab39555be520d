"""Rate limits (per key and per service) and usage totals, in state that several gateway replicas share.

The store is aiocache: in memory by default (one replica), Redis when REDIS_URL is set (all replicas enforce one
limit together). Every update is an atomic increment (Redis INCRBY): no read-modify-write races between replicas;
over Redis a request's counts go in one round trip per scope at admission and one after it (pipelines). Windows are
fixed calendar minutes; a window's counters expire two minutes after they were last counted (in memory: first).

Concurrent streams are leases, not a counter: one member per open stream in a sorted set scored by its last
heartbeat. The replica holding a stream renews it every LEASE_TTL_S / 3; a lease not renewed for LEASE_TTL_S (its
replica was killed) stops counting on its own. Admission prunes stale leases, counts and adds atomically (Lua).

Redis unreachable or hanging (docs/reliability.md): the per-minute windows fail open (served, logged), the stream
leases fail closed (503 limit_store_unavailable): an unbounded number of long streams is what the limit exists to
stop. Every Redis call has a deadline (`--redis-timeout`, 0.25 s: connect, socket reads and writes, scripts), and
after a failure the store is left alone for STORE_RETRY_S, so the policy applies at once instead of costing every
request its own timeout; a request waits on a broken store at most one deadline.

A Redis that lost its data (restarted without persistence) forgets the leases: the renewal re-adds this replica's
running streams (and says so), so they count again within one renewal period.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiocache import Cache, SimpleMemoryCache
from redis.exceptions import RedisError

from modelsvc.catalog import Key, Limits, Service

from .errors import LimitStoreUnavailable, RateLimited

log = logging.getLogger("gateway.limits")
WINDOW_S = 60
LEASE_TTL_S = 45.0  # a stream lease not renewed for this long (its replica died) stops counting
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
STORE_TIMEOUT_S = 0.25  # every Redis call (connect, command, script): the bound on a request's wait for the store
STORE_RETRY_S = 1.0  # after a failure, the store is not tried again for this long (the policy applies at once)

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
# KEYS: lease sets, ARGV: ttl, then their members (pairwise). Re-adds what is missing (a Redis that lost its data
# forgot the leases of streams still running) and returns how many were; a lease released while its renewal was in
# flight is removed again by the releasing side (Limiter._renew_loop).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local added = 0
for i, key in ipairs(KEYS) do
  added = added + redis.call('ZADD', key, now, ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[1]) * 2))
end
return added
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

    async def renew(self, held: list[tuple[str, str]]) -> int:
        now = time.monotonic()
        for key, member in held:
            self.sets.setdefault(key, {})[member] = now
        return 0

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

    async def renew(self, held: list[tuple[str, str]]) -> int:
        """Renew (re-adding any the store lost); returns how many had to be re-added."""
        if not held:
            return 0
        return int(await self._renew(keys=[k for k, _ in held], args=[self.ttl, *(m for _, m in held)]))

    async def release(self, key: str, member: str) -> None:
        await self.client.zrem(key, member)


def make_store(redis_url: str | None, timeout_s: float = STORE_TIMEOUT_S):
    """aiocache over Redis with a deadline on everything: aiocache's own per-operation timeout (5 s by default: every
    rate-limited request stalled that long on a hung Redis) and redis-py's connect and socket timeouts, which the
    lease scripts (called on the client directly) need too."""
    if not redis_url:
        # no deadline: an operation on a dict cannot hang, and aiocache runs each one it has a deadline for through
        # asyncio.wait_for (a task and a timer: 14 µs an increment against 4 µs without; six a request)
        return SimpleMemoryCache(timeout=None)
    store = Cache.from_url(redis_url)  # parses host, port, db and password as before
    return Cache(
        Cache.REDIS,
        endpoint=store.endpoint,
        port=store.port,
        db=store.db,
        password=store.password,
        timeout=timeout_s,
        create_connection_timeout=timeout_s,
        connection_pool_kwargs={"socket_timeout": timeout_s},
    )


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
        self._redis = getattr(store, "client", None)  # the Redis client under the store; None in memory
        self.leases = RedisLeases(self._redis, lease_ttl) if self._redis is not None else MemoryLeases(lease_ttl)
        self._held: dict[tuple[str, str], None] = {}  # leases of this process, renewed by the heartbeat
        self._heartbeat: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()
        self._warned = 0.0
        self._down_until = 0.0  # the store failed: not tried again before this (monotonic)

    @property
    def store_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _store_down(self, e: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + STORE_RETRY_S
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

    async def _add(self, counts: list[tuple[str, int, int | None]]) -> None:
        """(key, delta, ttl or None) counters added to. Over Redis in one round trip, a pipeline of INCRBY and, where
        a ttl is given, EXPIRE (three aiocache increments cost 260 µs of the gateway's CPU gathered, the pipeline
        130 µs; and a window's counter can no longer be left without its expiry by a failure between the two). In
        memory one after another (gather() would make each a task)."""
        if self._redis is None:
            for key, delta, ttl in counts:
                if ttl is None:
                    await self.store.increment(key, delta)
                else:
                    await self._incr(key, delta, ttl)
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, delta, ttl in counts:
            name = self._key(key)
            pipe.incrby(name, delta)
            if ttl is not None:
                pipe.expire(name, ttl)
        await self._execute(pipe)

    async def admit(self, key: Key, service: Service, stream: bool) -> Admission:
        declared = [(f"key:{key.id}", key.limits), (f"svc:{service.id}", service.limits)]
        scopes = [(name, lim) for name, lim in declared if lim is not None]
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
        if not self.store_down:
            try:
                await self._windows(adm, name, what, lim, window, reset)
            except STORE_ERRORS as e:  # fail open: a Redis outage must not take the API down with it
                self._store_down(e)
        if stream and lim.max_concurrent_streams is not None:
            skey = f"{self.ns}:streams:{name}"
            adm.lease_id = adm.lease_id or uuid.uuid4().hex
            unavailable = LimitStoreUnavailable(
                f"this {what} limits concurrent streams and the gateway cannot reach its limit store right now; "
                "retry shortly, or send the request without 'stream'",
                headers={"retry-after": "5"},
            )
            if self.store_down:  # fail closed at once: it failed moments ago
                raise unavailable
            try:
                ok = await self.leases.acquire(skey, adm.lease_id, lim.max_concurrent_streams)
            except STORE_ERRORS as e:  # fail closed: no lease others can see, no stream
                self._store_down(e)
                raise unavailable from None
            if not ok:
                raise RateLimited(
                    f"too many concurrent streams for this {what} (at most "
                    f"{lim.max_concurrent_streams}); retry when one has finished",
                    headers={**adm.headers, "retry-after": "1"},
                )
            adm.stream_keys.append(skey)
            self._held[(skey, adm.lease_id)] = None
            self._ensure_heartbeat()

    async def _counts(self, tkey: str | None, rkey: str | None) -> tuple[int, int]:
        """A scope's window counts for one request: the tokens spent so far (tkey) and this request counted into
        the requests (rkey). Over Redis one round trip (GET, INCR, EXPIRE in a pipeline), in memory two lookups."""
        if self._redis is None:
            tokens = int(await self.store.get(tkey) or 0) if tkey is not None else 0
            requests = await self._incr(rkey, 1, 2 * WINDOW_S) if rkey is not None else 0
            return tokens, requests
        pipe = self._redis.pipeline(transaction=False)
        if tkey is not None:
            pipe.get(self._key(tkey))
        if rkey is not None:
            pipe.incr(self._key(rkey))
            pipe.expire(self._key(rkey), 2 * WINDOW_S)
        replies = await self._execute(pipe)
        tokens = int(replies[0] or 0) if tkey is not None else 0
        requests = int(replies[-2]) if rkey is not None else 0
        return tokens, requests

    async def _execute(self, pipe: Any) -> list[Any]:
        """A pipeline's replies, within the store's deadline (--redis-timeout) like aiocache's own calls."""
        async with asyncio.timeout(self.store.timeout or None):
            return await pipe.execute()

    def _key(self, key: str) -> str:
        return self.store.build_key(key, namespace=self.store.namespace)  # the key aiocache's own calls use

    async def _windows(self, adm: Admission, name: str, what: str, lim: Limits, window: int, reset: int) -> None:
        """The scope's per-minute windows. A request refused by the token window still counts in the request
        window, as OpenAI counts unsuccessful requests against a per-minute limit."""
        tkey = f"{self.ns}:tpm:{name}:{window}" if lim.tokens_per_minute is not None else None
        rkey = f"{self.ns}:rpm:{name}:{window}" if lim.requests_per_minute is not None else None
        if tkey is None and rkey is None:
            return
        spent, used = await self._counts(tkey, rkey)
        if tkey is not None and lim.tokens_per_minute is not None:
            remaining = max(0, lim.tokens_per_minute - spent)
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
        if rkey is not None and lim.requests_per_minute is not None:
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

    async def throttle(self, name: str, per_minute: int, what: str) -> None:
        """At most per_minute calls per calendar minute for `name` (0: unlimited): 429 past it. Fails open, like the
        request windows."""
        if not per_minute or self.store_down:
            return
        window, reset = self._window(time.time())
        try:
            used = await self._incr(f"{self.ns}:throttle:{name}:{window}", 1, 2 * WINDOW_S)
        except STORE_ERRORS as e:
            self._store_down(e)
            return
        if used > per_minute:
            raise RateLimited(
                f"rate limit reached for {what}: {per_minute} per minute per API key; retry in {reset}s",
                headers={
                    "retry-after": str(reset),
                    "x-ratelimit-limit-requests": str(per_minute),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{reset}s",
                },
            )

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._renew_loop())

    async def _renew_loop(self) -> None:
        """Renew this process's stream leases while it holds any (a killed process stops renewing: they expire)."""
        while self._held:
            await asyncio.sleep(self.leases.ttl / 3)
            held = list(self._held)
            try:
                added = await self.leases.renew(held)
            except STORE_ERRORS as e:
                self._store_down(e)
                continue
            if added:
                log.warning(
                    "limit store had lost %d of this replica's %d stream leases (restarted without its data?); "
                    "added them back",
                    added,
                    len(held),
                )
            for skey, lease in held:  # released while the renewal was in flight: the renewal may have re-added it
                if (skey, lease) not in self._held:
                    try:
                        await self.leases.release(skey, lease)
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
        if self.store_down:
            log.warning("shared usage totals not updated: the limit store failed moments ago")
            return
        counts: list[tuple[str, int, int | None]] = [(k, tokens, 2 * WINDOW_S) for k in adm.token_keys if tokens]
        counts += [
            (f"{prefix}:requests", 1, None),
            (f"{prefix}:prompt_tokens", prompt_tokens, None),
            (f"{prefix}:completion_tokens", completion_tokens, None),
        ]
        try:
            await self._add(counts)
        except Exception as e:
            if isinstance(e, STORE_ERRORS):
                self._store_down(e)
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
