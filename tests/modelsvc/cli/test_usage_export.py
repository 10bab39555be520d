"""`modelsvc usage export`: invoice lines per service id, from the local file and from PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys

import pytest

from devtools.postgres_server import PostgresServer
from gateway.usage import Metrics, UsageLog, UsageRecord

pytestmark = pytest.mark.e2e  # every test here runs the CLI as a subprocess (and PostgreSQL)

NOV = 1793491200  # 2026-11-01T00:00:00Z


def _rec(
    rid: str,
    ts: float,
    service_id: str,
    access_name: str,
    prompt: int,
    completion: int,
    endpoint: str = "chat.completions",
    images: int = 0,
) -> UsageRecord:
    return UsageRecord(
        request_id=rid,
        service_id=service_id,
        access_name=access_name,
        key_id="k1",
        endpoint=endpoint,
        stream=False,
        status="ok",
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=1.0,
        overhead_ms=0.1,
        ts=ts,
        images=images,
    )


RECORDS = [
    _rec("a", NOV + 10, "ms-aaaaaaaaaaaa", "u-1/chat", 10, 5),
    _rec("b", NOV + 86400 * 3, "ms-aaaaaaaaaaaa", "u-1/chat-renamed", 7, 3),
    _rec("c", NOV + 100, "ms-bbbbbbbbbbbb", "u-2/img", 0, 0, "images.generations", images=4),
    _rec("d", NOV - 1, "ms-aaaaaaaaaaaa", "u-1/chat", 1000, 1000),  # October: not on this invoice
    _rec("e", NOV + 86400 * 30, "ms-aaaaaaaaaaaa", "u-1/chat", 1000, 1000),
]  # December


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelsvc.cli", "usage", "export", *args], capture_output=True, text=True, timeout=60
    )


def _check_csv(out: str) -> None:
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {
            "service_id": "ms-aaaaaaaaaaaa",
            "access_names": "u-1/chat u-1/chat-renamed",
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-12-01T00:00:00Z",
            "requests": "2",
            "prompt_tokens": "17",
            "completion_tokens": "8",
            "total_tokens": "25",
            "images": "0",
        },
        {
            "service_id": "ms-bbbbbbbbbbbb",
            "access_names": "u-2/img",
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-12-01T00:00:00Z",
            "requests": "1",
            "prompt_tokens": "0",
            "completion_tokens": "0",
            "total_tokens": "0",
            "images": "4",
        },
    ]


def test_export_from_the_local_file(tmp_path):
    log = UsageLog(str(tmp_path / "usage.jsonl"), Metrics())
    for r in RECORDS:
        log.record(r)
    asyncio.run(log.close())
    r = _export("--from", "2026-11-01", "--to", "2026-12-01", "--usage-log", str(tmp_path / "usage.jsonl"))
    assert r.returncode == 0, r.stderr
    _check_csv(r.stdout)
    one = _export(
        "--from",
        str(NOV),
        "--to",
        "2026-12-01",
        "--usage-log",
        str(tmp_path / "usage.jsonl"),
        "--service",
        "ms-bbbbbbbbbbbb",
        "--format",
        "json",
    )
    assert [x["service_id"] for x in json.loads(one.stdout)] == ["ms-bbbbbbbbbbbb"]


def test_export_from_postgres(tmp_path):
    pg = PostgresServer()
    try:

        async def load():
            log = UsageLog(None, Metrics(), store_url=pg.url, spool_dir=str(tmp_path / "spool"))
            await log.start()
            for r in RECORDS:
                log.record(r)
            await log.close()  # delivers the spool

        asyncio.run(load())
        r = _export("--from", "2026-11-01", "--to", "2026-12-01", "--store", pg.url)
        assert r.returncode == 0, r.stderr
        _check_csv(r.stdout)
    finally:
        pg.close()


def test_bad_input_is_one_clear_line(tmp_path):
    r = _export("--from", "last tuesday", "--to", "2026-12-01")
    assert r.returncode != 0 and "is not a date" in r.stderr and "Traceback" not in r.stderr
    r = _export("--from", "2026-11-01", "--to", "2026-12-01", "--store", "postgresql://nobody@127.0.0.1:1/x")
    assert r.returncode == 1 and "cannot read the usage store" in r.stderr and "Traceback" not in r.stderr
