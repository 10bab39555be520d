"""Chaos under load, on a real PostgreSQL: every request a caller got an answer for is billed exactly once.

Timeline (load runs throughout; MODELSVC_CHAOS_PHASE_S and MODELSVC_CHAOS_DB_DOWN_S stretch it for the long run
recorded in docs/reliability.md):
  A serves → SIGKILL A → A' starts on A's spool volume (a container restart) → B starts in a fresh directory and
  takes the traffic, A' gets SIGTERM (a rolling update deletes its pod) → the database stops → SIGKILL B while its
  records wait in the spool → B' restarts on B's volume → the database comes back → load stops, B' gets SIGTERM.
Then: every answered request id is in the table exactly once, and the usage API's sums equal the table's.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx

from devtools.standin.testing import StandInThread

from ..harness import DEMO_KEY, Gateway

SVC = "u-8105f7322477/test"
PHASE_S = float(os.environ.get("MODELSVC_CHAOS_PHASE_S", "1.0"))
DB_DOWN_S = float(os.environ.get("MODELSVC_CHAOS_DB_DOWN_S", "5"))
CLIENTS = int(os.environ.get("MODELSVC_CHAOS_CLIENTS", "4"))


class Load:
    """Callers in threads; `answered` holds the request ids of complete answers (a 200 with the whole body)."""

    def __init__(self, url: str):
        self.url = url
        self.answered: set[str] = set()
        self.failed = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def _run(self, n: int) -> None:
        headers = {"authorization": f"Bearer {DEMO_KEY}"}
        i = 0
        while not self.stop.is_set():
            i += 1
            body = {"model": SVC, "max_tokens": 8, "messages": [{"role": "user", "content": f"c{n} r{i}"}]}
            try:
                if i % 3 == 0:
                    with httpx.stream(
                        "POST",
                        self.url + "/v1/chat/completions",
                        json={**body, "stream": True},
                        headers=headers,
                        timeout=10,
                    ) as r:
                        text = r.read().decode()
                        ok = r.status_code == 200 and text.endswith("data: [DONE]\n\n") and '"error"' not in text
                        rid = r.headers.get("x-request-id")
                else:
                    r = httpx.post(self.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
                    ok, rid = (
                        r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0,
                        r.headers.get("x-request-id"),
                    )
            except (httpx.HTTPError, ValueError):
                ok = False
            if ok:
                self.answered.add(rid)
            else:
                self.failed += 1
                time.sleep(0.05)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def _during(load: Load, seconds: float, answers: int = 5, deadline_s: float = 90) -> None:
    """Keep the current state for at least `seconds`, and until `answers` more requests got through: each phase
    really happens under load, however slow the machine (a deadline, never a bare sleep, decides)."""
    n, start = len(load.answered), time.time()
    time.sleep(seconds)
    while len(load.answered) < n + answers:
        assert time.time() - start < deadline_s, "no request was answered in this phase: the load stalled"
        time.sleep(0.05)


def test_sigkill_pod_deletion_and_database_outage_lose_and_double_nothing(tmp_path, postgres):
    engine = StandInThread("chat").start()
    eps = {SVC: [engine.url]}
    gws: list[Gateway] = []

    def gateway(name: str, spool: str) -> Gateway:
        (tmp_path / name).mkdir()
        g = Gateway(
            tmp_path / name,
            eps,
            args=("--usage-store", postgres.url, "--usage-spool", str(tmp_path / spool), "--grace", "10"),
        )
        gws.append(g)
        return g.start(timeout=60)

    t0 = int(time.time())
    try:
        a = gateway("a", "pod-a")
        with Load(a.url) as load:
            _during(load, PHASE_S)
            a.stop(signal.SIGKILL)
            load.url = gateway("a2", "pod-a").url  # the container restarts: same pod, same spool volume
            _during(load, PHASE_S)
            a2_url = load.url
            b = gateway("b", "pod-b")  # rolling update: a new pod in a fresh directory takes the traffic ...
            load.url = b.url
            gws[1].stop(signal.SIGTERM)  # ... and the old pod is deleted (graceful stop delivers its spool)
            assert a2_url != b.url
            _during(load, PHASE_S)
            postgres.stop()  # the database goes away under load
            down = time.time()
            _during(load, DB_DOWN_S / 2)
            b.stop(signal.SIGKILL)  # and a gateway dies while its records wait in the spool
            load.url = gateway("b2", "pod-b").url
            _during(load, max(0.0, DB_DOWN_S - (time.time() - down)))
            spooled = sum(p.stat().st_size for p in (tmp_path / "pod-b").glob("*.jsonl"))
            postgres.start()
            _during(load, PHASE_S)
        gws[-1].stop(signal.SIGTERM)
        answered = load.answered

        stored = postgres.psql("SELECT request_id FROM usage_records").split()
        assert len(stored) == len(set(stored))
        missing = answered - set(stored)
        assert not missing, f"{len(missing)} of {len(answered)} answered requests were not billed"
        assert spooled > 0, "the outage spooled nothing: the test did not exercise the spool"
        for pod in ("pod-a", "pod-b"):  # both pods' last gateways stopped gracefully: nothing may stay behind
            left = [p.name for p in (tmp_path / pod).glob("*.jsonl") if p.stat().st_size]
            assert not left, f"{pod}: records left undelivered in {left}"

        # The usage API (a fresh gateway on the same database) sums exactly what the table holds.
        reader = gateway("reader", "pod-reader")
        r = httpx.get(
            reader.url + "/v1/organization/usage/completions",
            headers=reader.headers(),
            params={"start_time": t0 - 60, "bucket_width": "1h", "group_by": "model"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        got = [res for b in r.json()["data"] for res in b["results"]]
        totals = [sum(res[k] for res in got) for k in ("num_model_requests", "input_tokens", "output_tokens")]
        want = (
            postgres.psql(
                f"SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM usage_records "
                f"WHERE owner = 'u-8105f7322477' AND ts_s >= {t0 - 60}"
            )
            .strip()
            .split("|")
        )
        assert totals == [int(v) for v in want]
        print(
            json.dumps(
                {
                    "answered": len(answered),
                    "stored": len(stored),
                    "failed_during_chaos": load.failed,
                    "spooled_bytes_during_outage": spooled,
                    "db_down_s": DB_DOWN_S,
                    "phase_s": PHASE_S,
                }
            )
        )
    finally:
        for g in gws:
            if g.proc and g.proc.poll() is None:
                g.stop(signal.SIGKILL)
        engine.stop()
