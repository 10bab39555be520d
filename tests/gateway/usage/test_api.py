"""The usage API through the official OpenAI SDK's admin usage client, on both stores (the local JSON-lines file and
PostgreSQL): the same answers, scoped to the caller's owner, sums equal to the stored records."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from devtools.standin.testing import StandInThread

from ..harness import DEMO_KEY, OTHER_KEY, Gateway

CHAT, IMAGES = "u-8105f7322477/test", "u-3f9a2c7e51d0/product-images"


@pytest.fixture(scope="module")
def api_engines(e2e):
    threads = [StandInThread("chat").start(), StandInThread("image").start()]
    yield threads
    for t in threads:
        t.stop()


@pytest.fixture(scope="module", params=["local", "postgres"])
def store_gw(e2e, request, api_engines, tmp_path_factory):
    chat, image = api_engines
    tmp = tmp_path_factory.mktemp(f"usage-{request.param}")
    args: tuple = ()
    pg = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres")
        pg.psql("DROP TABLE IF EXISTS usage_records, modelsvc_schema")
        args = ("--usage-store", pg.url, "--usage-spool", str(tmp / "spool"))
    g = Gateway(tmp, {CHAT: [chat.url], IMAGES: [image.url]}, args=args).start()
    g.pg = pg
    yield g
    g.stop()


def stored(g) -> list[dict]:
    if g.pg is None:
        return g.usage()
    out = g.pg.psql("SELECT row_to_json(u) FROM usage_records u")
    return [json.loads(line) for line in out.splitlines()]


def sdk(g, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=g.url + "/v1", api_key=key, admin_api_key=key, max_retries=0)


def test_sums_equal_the_records_and_owners_see_only_their_own(store_gw):
    g = store_gw
    t0 = int(time.time())
    client = sdk(g, DEMO_KEY)
    ids = set()
    for i in range(3):
        r = client.chat.completions.with_raw_response.create(
            model=CHAT, messages=[{"role": "user", "content": f"q{i}"}]
        )
        ids.add(r.headers["x-request-id"])
    with client.chat.completions.with_streaming_response.create(
        model=CHAT, stream=True, max_tokens=5, messages=[{"role": "user", "content": "stream"}]
    ) as s:
        s.read()
        ids.add(s.headers["x-request-id"])
    other = sdk(g, OTHER_KEY)
    img = other.images.with_raw_response.generate(model=IMAGES, prompt="a red bicycle")
    ids.add(img.headers["x-request-id"])
    assert g.wait_until(lambda: ids <= {r["request_id"] for r in stored(g)}, timeout=15), "records not stored"
    mine = [r for r in stored(g) if r["access_name"] == CHAT]

    page = client.admin.organization.usage.completions(
        start_time=t0 - 60, bucket_width="1m", group_by=["model", "api_key_id"]
    )
    assert page.object == "page" and not page.has_more and page.next_page is None
    results = [res for b in page.data for res in b.results]
    assert {(r.model, r.api_key_id) for r in results} == {(CHAT, "k-local-demo")}
    assert sum(r.num_model_requests for r in results) == len(mine)
    assert sum(r.input_tokens for r in results) == sum(r["prompt_tokens"] for r in mine)
    assert sum(r.output_tokens for r in results) == sum(r["completion_tokens"] for r in mine)
    for b in page.data:
        assert b.object == "bucket" and b.end_time - b.start_time <= 60 and b.start_time % 60 == 0

    only = client.admin.organization.usage.completions(start_time=t0 - 60, models=[CHAT], api_key_ids=["k-local-demo"])
    assert sum(r.num_model_requests for b in only.data for r in b.results) == len(mine)
    none = client.admin.organization.usage.completions(start_time=t0 - 60, api_key_ids=["k-someone-else"])
    assert all(b.results == [] for b in none.data)

    # Another owner's key sees none of it, and its own image request under /images.
    theirs = other.admin.organization.usage.completions(start_time=t0 - 60, group_by=["model"])
    assert all(res.model != CHAT for b in theirs.data for res in b.results)
    images = other.admin.organization.usage.images(start_time=t0 - 60, bucket_width="1h", group_by=["model"])
    got = [res for b in images.data for res in b.results]
    assert [(r.model, r.num_model_requests, r.object) for r in got] == [(IMAGES, 1, "organization.usage.images.result")]
    assert client.admin.organization.usage.images(start_time=t0 - 60).data[0].results == []


def test_pages_follow_next_page_to_the_same_totals(store_gw):
    g = store_gw
    client = sdk(g, DEMO_KEY)
    start = int(time.time()) - 5 * 60
    whole = client.admin.organization.usage.completions(start_time=start, bucket_width="1m", limit=10)
    buckets, cursor, pages = [], None, 0
    while True:
        p = client.admin.organization.usage.completions(
            start_time=start, bucket_width="1m", limit=2, **({"page": cursor} if cursor else {})
        )
        buckets += p.data
        pages += 1
        if not p.has_more:
            break
        cursor = p.next_page
    assert pages == 3 and [b.start_time for b in buckets] == [b.start_time for b in whole.data]
    total = lambda bs: sum(r.num_model_requests for b in bs for r in b.results)  # noqa: E731
    assert total(buckets) == total(whole.data) > 0


@pytest.mark.parametrize(
    "query, param",
    [
        ({}, "start_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": "100", "bucket_width": "2h"}, "bucket_width"),
        ({"start_time": "100", "group_by": "project_id"}, "group_by"),
        ({"start_time": "100", "bucket_width": "1h", "limit": "169"}, "limit"),
        ({"start_time": "100", "end_time": "50"}, "end_time"),
        ({"start_time": "100", "page": "not-a-cursor"}, "page"),
    ],
)
def test_bad_parameters_are_openai_errors(store_gw, query, param):
    r = httpx.get(store_gw.url + "/v1/organization/usage/completions", params=query, headers=store_gw.headers())
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_needs_a_key(store_gw):
    r = httpx.get(store_gw.url + "/v1/organization/usage/completions", params={"start_time": 0})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
