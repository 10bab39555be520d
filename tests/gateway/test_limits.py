"""Rate limits shared by two gateway processes through a real Redis, and usage totals that survive a restart."""

import asyncio
import signal
import time

import httpx
import pytest
import redis

from devtools.redis_server import RedisServer
from devtools.standin.testing import StandInThread

from .harness import DEMO_KEYS, Gateway, example_catalog

SVC = "u-8105f7322477/test"
MSG = [{"role": "user", "content": "limit me"}]


# Tests that count exactly through Redis give it a deadline a loaded machine cannot reach: at the default 0.25 s a
# descheduled redis-server would make the windows fail open (an extra 200) or a stream fail closed (503). The
# default deadline and the hang policy have their own test (SIGSTOP) below.
PATIENT = ("--redis-timeout", "5")


def catalog_with_service_limits(limits: str) -> str:
    return example_catalog().replace(
        "    model: llama-3.1-8b-instruct\n    instances: 1\n    pool: h100\n",
        f"    model: llama-3.1-8b-instruct\n    instances: 1\n    pool: h100\n    limits: {limits}\n",
        1,
    )


@pytest.fixture
def redis_server(e2e, tmp_path):
    r = RedisServer(tmp_path)
    yield r
    r.stop()


@pytest.fixture
def engine(e2e):
    t = StandInThread("chat").start()
    yield t
    t.stop()


def _not_near_a_minute_boundary():
    if time.time() % 60 > 45:  # fixed one-minute windows: don't straddle one
        time.sleep(61 - time.time() % 60)


def test_requests_per_minute_shared_by_two_replicas(tmp_path, redis_server, engine):
    cat = catalog_with_service_limits("{requests_per_minute: 10}")
    eps = {SVC: [f"127.0.0.1:{engine.server.port}"]}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Gateway(tmp_path / "a", eps, catalog_text=cat, args=("--redis-url", redis_server.url, *PATIENT)).start()
    b = Gateway(tmp_path / "b", eps, catalog_text=cat, args=("--redis-url", redis_server.url, *PATIENT)).start()
    try:
        _not_near_a_minute_boundary()
        results = [
            (a if i % 2 else b).post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 2})
            for i in range(16)
        ]
        codes = [r.status_code for r in results]
        assert codes.count(200) == 10 and codes.count(429) == 6, codes
        refused = next(r for r in results if r.status_code == 429)
        err = refused.json()["error"]
        assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-limit-requests"] == "10"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        ok = results[0]
        assert ok.headers["x-ratelimit-limit-requests"] == "10" and ok.headers["x-ratelimit-reset-requests"].endswith(
            "s"
        )
    finally:
        a.stop()
        b.stop()


def test_usage_totals_survive_a_restart(tmp_path, redis_server, engine):
    eps = {SVC: [f"127.0.0.1:{engine.server.port}"]}
    g = Gateway(tmp_path, eps, args=("--redis-url", redis_server.url, *PATIENT)).start()
    for _ in range(3):
        assert g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 3}).status_code == 200
    g.stop()
    g.start()  # same Redis, new process
    assert g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 3}).status_code == 200
    g.stop()
    r = redis.Redis.from_url(redis_server.url)
    prefix = "modelsvc:usage:ms-1d033c426254:k-local-demo"
    records = [u for u in g.usage() if u["status"] == "ok"]
    assert int(r.get(f"{prefix}:requests")) == len(records) == 4
    assert int(r.get(f"{prefix}:completion_tokens")) == sum(u["completion_tokens"] for u in records) == 12
    assert int(r.get(f"{prefix}:prompt_tokens")) == sum(u["prompt_tokens"] for u in records)


def test_tokens_per_minute_per_key_in_memory(tmp_path, engine):
    keys = [dict(DEMO_KEYS[0], limits={"tokens_per_minute": 40}), *DEMO_KEYS[1:]]
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, demo_keys=keys).start()
    try:
        _not_near_a_minute_boundary()
        codes = []
        for _ in range(6):
            r = g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 10})
            codes.append(r.status_code)
            time.sleep(0.05)  # token spend is recorded just after the response
        # each request uses ~17 tokens (prompt + 10): the third one still fits under 40, the fourth does not
        assert codes[:2] == [200, 200] and 429 in codes, codes
        refused = [c for c in codes if c == 429]
        assert len(refused) >= 2
        r = g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 1})
        assert r.status_code == 429 and r.headers["x-ratelimit-remaining-tokens"] == "0"
        assert "40 tokens per minute" in r.json()["error"]["message"]
    finally:
        g.stop()


def test_max_concurrent_streams(tmp_path, engine):
    cat = catalog_with_service_limits("{max_concurrent_streams: 2}")
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, catalog_text=cat).start()
    engine.server.token_delay = 0.05
    try:
        streams = [g.stream_in_background({"model": SVC, "max_tokens": 20, "messages": MSG}) for _ in range(2)]
        time.sleep(0.4)
        third = g.post("/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2})
        assert third.status_code == 429 and "concurrent streams" in third.json()["error"]["message"]
        plain = g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 2})
        assert plain.status_code == 200  # only streams are bounded
        assert [s.join(30)[0] for s in streams] == [200, 200]
        again = g.post("/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2})
        assert again.status_code == 200  # slots were given back
    finally:
        engine.server.token_delay = 0.0
        g.stop()


@pytest.mark.e2e
def test_refused_streams_give_their_slot_back(tmp_path):
    """A stream refused after admission (seed on a model without a seed input: 400) frees its slot at once."""
    t = StandInThread("chat", seed_name=None).start()
    cat = catalog_with_service_limits("{max_concurrent_streams: 2}")
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}, catalog_text=cat).start()
    try:
        for _ in range(2):
            r = g.post("/v1/chat/completions", {"model": SVC, "stream": True, "seed": 1, "messages": MSG})
            assert r.status_code == 400 and r.json()["error"]["param"] == "seed"
        r = g.post("/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2})
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    finally:
        g.stop()
        t.stop()


def test_a_killed_replicas_streams_stop_counting_on_their_own(tmp_path, redis_server, engine):
    """Stream slots are leases renewed by the replica holding them: SIGKILL it mid-stream and its slot frees itself
    (after --stream-lease), instead of locking the service."""
    cat = catalog_with_service_limits("{max_concurrent_streams: 1}")
    eps = {SVC: [f"127.0.0.1:{engine.server.port}"]}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    args = ("--redis-url", redis_server.url, "--stream-lease", "2", *PATIENT)
    a = Gateway(tmp_path / "a", eps, catalog_text=cat, args=args).start()
    b = Gateway(tmp_path / "b", eps, catalog_text=cat, args=args).start()
    engine.server.token_delay = 0.25  # the held stream lasts several lease periods (it is renewed meanwhile)
    try:
        held = a.stream_in_background({"model": SVC, "max_tokens": 40, "messages": MSG})
        assert engine.wait_for(lambda s: s.requests_started >= 1, 5)
        time.sleep(2.5)  # past one lease period: still counted, because a renews it
        r = b.post("/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2})
        assert r.status_code == 429 and "concurrent streams" in r.json()["error"]["message"]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(5)
        held.join(10)
        engine.server.token_delay = 0.0
        assert b.wait_until(
            lambda: (
                b.post(
                    "/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2}
                ).status_code
                == 200
            ),
            timeout=10,
            interval=0.5,
        )
    finally:
        engine.server.token_delay = 0.0
        a.stop()
        b.stop()


def test_redis_down_fails_open_for_windows_and_closed_for_streams(tmp_path, redis_server, engine):
    cat = catalog_with_service_limits("{requests_per_minute: 100, max_concurrent_streams: 2}")
    g = Gateway(
        tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, catalog_text=cat, args=("--redis-url", redis_server.url)
    ).start()
    try:
        assert g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 2}).status_code == 200
        redis_server.stop()
        r = g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 2})
        assert r.status_code == 200  # per-minute windows fail open
        r = g.post("/v1/chat/completions", {"model": SVC, "stream": True, "messages": MSG, "max_tokens": 2})
        assert r.status_code == 503, r.text  # stream leases fail closed, with a clear message
        err = r.json()["error"]
        assert err["code"] == "limit_store_unavailable" and "limit store" in err["message"]
        assert r.headers["retry-after"]
        assert "limit store unreachable" in g.logs()
    finally:
        g.stop()


def test_several_workers_share_limits_and_metrics(tmp_path, redis_server, engine):
    cat = catalog_with_service_limits("{requests_per_minute: 5}")
    eps = {SVC: [f"127.0.0.1:{engine.server.port}"], "u-8105f7322477/support-bot": [f"127.0.0.1:{engine.server.port}"]}
    alone = Gateway(tmp_path, eps, catalog_text=cat, args=("--workers", "2"))
    with pytest.raises(RuntimeError, match="needs --redis-url"):
        alone.start()  # in-memory limits would be per worker: refused, not pretended
    g = Gateway(
        tmp_path, eps, catalog_text=cat, args=("--workers", "2", "--redis-url", redis_server.url, *PATIENT)
    ).start()
    try:
        _not_near_a_minute_boundary()
        codes = [
            g.post("/v1/chat/completions", {"model": SVC, "messages": MSG, "max_tokens": 2}).status_code
            for _ in range(14)
        ]
        assert codes.count(200) == 5 and codes.count(429) == 9, codes
        # other services are unlimited: enough requests that both workers serve some
        for _ in range(30):
            assert (
                g.post(
                    "/v1/chat/completions", {"model": "u-8105f7322477/support-bot", "messages": MSG, "max_tokens": 2}
                ).status_code
                == 200
            )
        for _ in range(4):  # the worker serving the internal port reports every worker's requests
            text = httpx.get(g.internal_url + "/metrics", timeout=10).text
            ok = [
                line
                for line in text.splitlines()
                if line.startswith("modelsvc_requests_total{") and 'status="ok"' in line
            ]
            assert sum(float(line.rsplit(" ", 1)[1]) for line in ok) == 35, ok
    finally:
        g.stop()


def test_a_hanging_redis_fails_open_for_windows_and_closed_for_streams_within_the_bound(tmp_path, redis_server, engine):
    """SIGSTOP: Redis accepts connections and never answers. Before, a rate-limited request stalled 5 s (aiocache's
    own timeout) and stream admission had no deadline at all (no answer in 60 s). Now the outage policy applies
    within one Redis deadline (--redis-timeout, 0.25 s), then at once while the store is known to be down."""
    cat = catalog_with_service_limits("{requests_per_minute: 100, max_concurrent_streams: 2}")
    g = Gateway(
        tmp_path, {SVC: [f"127.0.0.1:{engine.server.port}"]}, catalog_text=cat, args=("--redis-url", redis_server.url)
    ).start()
    chat = {"model": SVC, "messages": MSG, "max_tokens": 2}
    try:
        assert g.post("/v1/chat/completions", chat).status_code == 200
        redis_server.pause()
        t = time.monotonic()
        for _ in range(3):
            r = g.post("/v1/chat/completions", chat, timeout=30)
            assert r.status_code == 200, r.text
            r = g.post("/v1/chat/completions", {**chat, "stream": True}, timeout=30)  # before: no answer at all
            assert r.status_code == 503 and r.json()["error"]["code"] == "limit_store_unavailable", r.text
        # six requests: at most one store deadline each (0.25 s), most none (the store is known to be down);
        # before, the three rate-limited ones alone took 3 x 5 s
        assert time.monotonic() - t < 6, time.monotonic() - t
        assert "limit store unreachable (TimeoutError" in g.logs()
        redis_server.resume()
        assert g.wait_until(
            lambda: g.post("/v1/chat/completions", {**chat, "stream": True}).status_code == 200, timeout=10
        )
    finally:
        redis_server.resume()
        g.stop()


async def test_leases_come_back_after_redis_loses_its_data(redis_server):
    """Redis restarted without persistence forgets every lease: before, renewals only refreshed leases still
    present (ZADD XX), so 6 streams ran on a limit of 3. The renewal re-adds the running streams' leases."""
    from gateway.errors import RateLimited
    from gateway.limits import Limiter, make_store
    from modelsvc.catalog import Key, loads

    service = loads(catalog_with_service_limits("{max_concurrent_streams: 3}")).service(SVC)
    key = Key(id="k-test", owner="u-8105f7322477", sha256="0" * 64)
    limiter = Limiter(make_store(redis_server.url), lease_ttl=1.5)  # renewed every 0.5 s
    client = redis.Redis.from_url(redis_server.url)
    leases = "modelsvc:streams:svc:" + service.id
    try:
        held = [await limiter.admit(key, service, stream=True) for _ in range(3)]
        with pytest.raises(RateLimited):
            await limiter.admit(key, service, stream=True)
        redis_server.stop()
        redis_server.start()  # same port, no data
        assert client.zcard(leases) == 0
        deadline = time.monotonic() + 10
        while client.zcard(leases) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert client.zcard(leases) == 3  # the three running streams count again
        with pytest.raises(RateLimited):
            await limiter.admit(key, service, stream=True)
        await limiter.release(held[0])
        await asyncio.sleep(1.2)  # two renewals: the released lease stays released
        assert client.zcard(leases) == 2
        assert (await limiter.admit(key, service, stream=True)).stream_keys == [leases]
    finally:
        await limiter.close()


async def test_the_in_memory_store_runs_no_deadline_and_redis_keeps_its_own(monkeypatch):
    """aiocache wraps each operation in asyncio.wait_for when it has a timeout (a task and a timer per increment);
    the in-memory store cannot hang, so it has none, while the Redis store keeps the --redis-timeout deadline."""
    from gateway.limits import make_store

    def no_wait_for(*args, **kwargs):
        raise AssertionError("an in-memory operation went through asyncio.wait_for")

    memory = make_store(None)
    monkeypatch.setattr(asyncio, "wait_for", no_wait_for)
    assert await memory.increment("k", 2) == 2 and await memory.get("k") == 2
    monkeypatch.undo()
    remote = make_store("redis://127.0.0.1:1/0", timeout_s=0.25)  # built, never connected
    assert memory.timeout is None and remote.timeout == 0.25


@pytest.mark.parametrize("shared", [False, True])
async def test_a_requests_usage_and_token_counts_in_one_round_trip(shared, redis_server, monkeypatch):
    """spend() adds the usage totals and the token windows' counts: over Redis in one pipeline (INCRBY, and EXPIRE
    for a window's counter, so none is left without its lifetime), in memory one by one; the totals read back the
    same either way."""
    from gateway.limits import WINDOW_S, Limiter, make_store
    from modelsvc.catalog import Key, loads

    service = loads(catalog_with_service_limits("{tokens_per_minute: 1000}")).service(SVC)
    key = Key(id="k-test", owner="u-8105f7322477", sha256="0" * 64)
    limiter = Limiter(make_store(redis_server.url if shared else None))
    if shared:  # every count goes through the pipeline: aiocache's own increment is not called
        monkeypatch.setattr(limiter.store, "increment", None)
    try:
        adm = await limiter.admit(key, service, stream=False)
        assert len(adm.token_keys) == 1
        for prompt, completion in ((3, 4), (10, 20)):
            limiter.spend(adm, key, service, prompt, completion)
            await limiter.drain()
        totals = await limiter.totals(service.id, key.id)
        assert totals == {"requests": 2, "prompt_tokens": 13, "completion_tokens": 24}
        assert int(await limiter.store.get(adm.token_keys[0])) == 37
        if shared:
            ttl = redis.Redis.from_url(redis_server.url).ttl(adm.token_keys[0])
            assert 0 < ttl <= 2 * WINDOW_S
    finally:
        await limiter.close()


@pytest.mark.parametrize("shared", [False, True])
async def test_admission_counts_a_scopes_windows_in_one_round_trip(shared, redis_server, monkeypatch):
    """admit() reads the token window and counts the request in one Redis round trip per scope (in memory: two
    lookups), with the same answers: remaining counts in the headers, 429 past either window, and a request the
    token window refuses still counted in the request window (OpenAI counts unsuccessful requests too)."""
    from gateway.errors import RateLimited
    from gateway.limits import WINDOW_S, Limiter, make_store
    from modelsvc.catalog import Key, loads

    service = loads(catalog_with_service_limits("{requests_per_minute: 3, tokens_per_minute: 10}")).service(SVC)
    key = Key(id="k-test", owner="u-8105f7322477", sha256="0" * 64)
    limiter = Limiter(make_store(redis_server.url if shared else None))
    if shared:  # every count goes through the pipeline: aiocache's own calls are not made
        monkeypatch.setattr(limiter.store, "get", None)
        monkeypatch.setattr(limiter.store, "increment", None)
    _not_near_a_minute_boundary()
    window, _ = limiter._window(time.time())
    rkey = f"modelsvc:rpm:svc:{service.id}:{window}"
    try:
        adm = await limiter.admit(key, service, stream=False)
        assert adm.headers["x-ratelimit-remaining-requests"] == "2"
        assert adm.headers["x-ratelimit-remaining-tokens"] == "10"
        limiter.spend(adm, key, service, 4, 6)  # the token window is spent
        await limiter.drain()
        with pytest.raises(RateLimited, match="10 tokens per minute") as refused:
            await limiter.admit(key, service, stream=False)
        assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
        with pytest.raises(RateLimited, match="10 tokens per minute"):
            await limiter.admit(key, service, stream=False)
        client = redis.Redis.from_url(redis_server.url) if shared else None
        counted = int(client.get(rkey)) if client else await limiter.store.get(rkey)
        assert counted == 3
        if client:
            assert 0 < client.ttl(rkey) <= 2 * WINDOW_S
    finally:
        await limiter.close()
