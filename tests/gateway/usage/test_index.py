"""The local usage store's SQLite index: the same answers as a scan of the log, from an index, reading only what
was appended since the previous query."""

from __future__ import annotations

import os
import random

from gateway.usage import Metrics, UsageLog, UsageRecord
from gateway.usage.index import UsageIndex
from gateway.usage.sink import scan_minute_rows

OWNERS = ("u-8105f7322477", "u-3f9a2c7e51d0", "team-search")


def record(i: int, rng: random.Random, ts: float) -> UsageRecord:
    owner = rng.choice(OWNERS)
    return UsageRecord(
        request_id=f"r{i:06d}",
        service_id=f"ms-{owner[-4:]}",
        access_name=f"{owner}/svc{rng.randint(0, 2)}",
        key_id=f"k-{rng.randint(0, 3)}",
        endpoint=rng.choice(("chat.completions", "completions", "images.generations")),
        stream=False,
        status="ok",
        prompt_tokens=rng.randint(0, 900),
        completion_tokens=rng.randint(0, 900),
        latency_ms=1.0,
        overhead_ms=0.1,
        ts=ts,
        images=rng.randint(0, 2),
    )


def fill(path: str, n: int, seed: int = 1, t0: float = 1_796_000_000.0) -> UsageLog:
    rng = random.Random(seed)
    log = UsageLog(path, Metrics())
    for i in range(n):
        log.record(record(i, rng, t0 + i * 7.3))
    return log


async def test_the_index_answers_what_a_scan_answers(tmp_path):
    path = str(tmp_path / "usage.jsonl")
    log = fill(path, 3000)
    with open(path, "ab") as f:  # what a full disk leaves (a fragment on its own line) and a repeated record
        f.write(b'{"request_id": "r0000\n')
        f.write(open(path, "rb").readline())
    t0, t1 = 1_796_000_000, 1_796_000_000 + 3000 * 7
    for owner in (None, *OWNERS):
        for start, end in ((t0, t1 + 100), (t0 + 1000, t0 + 5000), (t0 + 60, t0 + 61), (0, 1)):
            got = sorted(await log.minute_rows(owner, start, end))
            assert got == sorted(scan_minute_rows(path, owner, start, end)), (owner, start, end)
    assert log.metrics.corrupt._value.get() >= 1
    log.file.close()


async def test_a_query_reads_only_what_was_appended_since_the_previous_one(tmp_path):
    """Before, every query parsed the whole log. Proof that it no longer does: a record rewritten in place (same
    length) after the first query does not change the second answer, while the records appended meanwhile do."""
    path = str(tmp_path / "usage.jsonl")
    log = fill(path, 2000)
    everything = (0, 2**36)
    before = await log.minute_rows(None, *everything)
    data = open(path, "rb").read()
    first = data.split(b"\n", 1)[0]
    tokens = first.split(b'"prompt_tokens":', 1)[1].split(b",", 1)[0]
    changed = first.replace(b'"prompt_tokens":' + tokens, b'"prompt_tokens":' + b"9" * len(tokens), 1)
    with open(path, "r+b") as f:
        f.write(changed)  # same length, same place: only a scan would see it
    rng = random.Random(7)
    for i in range(3):
        log.record(record(10_000 + i, rng, 1_796_100_000.0))
    after = await log.minute_rows(None, *everything)
    requests = sum(r[5] for r in after)
    assert requests == sum(r[5] for r in before) + 3
    assert sum(r[6] for r in after) == sum(r[6] for r in before) + sum(r[6] for r in after if r[0] >= 1_796_100_000)
    index = UsageIndex(path)
    assert index.minute_rows(None, *everything) == after and index.lines_read == 0  # nothing new: nothing read
    log.file.close()


def test_queries_search_the_index_instead_of_scanning(tmp_path):
    path = str(tmp_path / "usage.jsonl")
    fill(path, 10).file.close()
    index = UsageIndex(path)
    index.minute_rows(None, 0, 1)
    for owner in (None, "u-8105f7322477"):
        plan = index.plan(owner)
        assert "SEARCH usage_records USING" in plan and "SCAN usage_records" not in plan, plan


def test_a_replaced_log_is_indexed_again(tmp_path):
    path = str(tmp_path / "usage.jsonl")
    fill(path, 50).file.close()
    assert sum(r[5] for r in UsageIndex(path).minute_rows(None, 0, 2**36)) == 50
    os.replace(str(fill(str(tmp_path / "other.jsonl"), 20, seed=2).path), path)  # another file: another inode
    assert sum(r[5] for r in UsageIndex(path).minute_rows(None, 0, 2**36)) == 20
