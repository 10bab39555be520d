"""CPU per request, paired: `python -m bench --cpu` and `python -m bench --against REV`.

A wall-clock number on a shared 2-core box moves by more than the changes worth catching; the CPU time the gateway
process spends per request moves far less, and what still drifts (another process's cache and frequency effects,
the load of the moment) drifts for both sides alike when the two run in alternation. So:

* `--cpu`: our gateway alone, `--pairs` rounds of every path; CPU ms per request with its median and spread.
* `--against REV`: REV is checked out into a temporary worktree; its gateway and ours run side by side (same
  upstreams, same core, same catalog), and each round measures every path on both, in ABBA order (A first in odd
  rounds, B first in even ones, so a trend within a round cancels too). Each round gives one ratio per path
  (ours / REV); the report is their geometric mean with a 95% t-interval over the rounds. A change is called only
  when the interval excludes 1.

Load is open loop at a fixed rate (`--rate`, below every path's capacity), so each request is served the same way
on both sides (no batching that a saturated loop would add). CPU is utime+stime of the gateway's process tree from
/proc. Streams: CPU per chunk is the difference between a stream of `TOKENS` chunks and one of `SHORT_TOKENS`,
divided by the chunks between them, with the upstream pacing tokens (2 ms apart) so that chunks arrive one by one
as from a real engine.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean, median, stdev

from . import litellm as L
from . import portkey as PK
from .floor import relay_floor_ms
from .procs import BENCH_KEY, ROOT, Proc
from .run import TOKENS, TOOL_ASK, TOOLS, Bench, LoadGen, _machine, _prompt

SHORT_TOKENS = 4  # the short stream the per-chunk cost is measured against
# two-sided 95% t quantiles by degrees of freedom (1..30); above, the normal's
_T975 = [12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131]
_T975 += [2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def ratio_interval(ratios: list[float]) -> dict:
    """Geometric mean of per-round ratios with a 95% t-interval on their logarithms."""
    logs = [math.log(r) for r in ratios]
    m = mean(logs)
    half = t975(len(logs) - 1) * stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else math.inf
    return {
        "ratio": round(math.exp(m), 4),
        "low": round(math.exp(m - half), 4),
        "high": round(math.exp(m + half), 4),
        "rounds": len(ratios),
    }


def spread(values: list[float]) -> dict:
    return {
        "median": round(median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "cv_pct": round(100 * stdev(values) / mean(values), 1) if len(values) > 1 and mean(values) else 0.0,
        "n": len(values),
    }


def verdict(iv: dict) -> str:
    if iv["high"] < 1:
        return f"cheaper by {100 * (1 - iv['ratio']):.0f}%"
    if iv["low"] > 1:
        return f"costlier by {100 * (iv['ratio'] - 1):.0f}%"
    return "no change detected"


class Paired:
    def __init__(self, args):
        self.args = args
        self.bench = Bench(argparse.Namespace(quick=True, short=False))
        self.tmp = self.bench.tmp
        self.worktree: Path | None = None
        self.sides: list[tuple[str, Path]] = [("this", ROOT)]
        self.gw: dict[str, tuple[Proc, int]] = {}
        self.peers: dict[str, tuple[Proc, dict]] = {}

    def _checkout(self, rev: str) -> Path:
        sha = subprocess.run(
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
        )
        if sha.returncode:
            raise SystemExit(f"--against {rev}: not a commit here ({sha.stderr.strip()})")
        path = Path(tempfile.mkdtemp(prefix="modelsvc-against-")) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(path), sha.stdout.strip()], cwd=ROOT, check=True
        )
        self.worktree = path
        return path

    def _drop_checkout(self) -> None:
        if self.worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(self.worktree)], cwd=ROOT)
            shutil.rmtree(self.worktree.parent, ignore_errors=True)

    # -- what is measured -----------------------------------------------------------------------------------------
    def _body(self, model: str, **extra) -> dict:
        return {"model": model, "messages": self.messages, "max_tokens": TOKENS, **extra}

    def jobs(self, port: int) -> dict[str, dict]:
        """path → loadgen job against the gateway at `port`."""
        a = self.args
        auth = {"authorization": f"Bearer {BENCH_KEY}"}

        def job(body: dict, rate: int) -> dict:
            target = {
                "kind": "http",
                "host": "127.0.0.1",
                "port": port,
                "path": "/v1/chat/completions",
                "headers": auth,
                "body": body,
            }
            return {"mode": "open", "target": target, "rate": rate, "duration": a.seconds, "warmup": 0.5}

        out = {
            "gateway/triton": job(self._body("bench/triton-fast"), a.rate),
            "gateway/openai": job(self._body("bench/openai-fast"), a.rate),
            "gateway/triton+tools": job(
                {"model": "bench/llama-fast", "messages": TOOL_ASK, "max_tokens": TOKENS, "tools": TOOLS}, a.rate
            ),
            "gateway/triton+json": job(
                self._body("bench/triton-fast", response_format={"type": "json_object"}), a.rate
            ),
        }
        for backend in ("triton", "openai"):
            # non-streamed, tokens 2 ms apart from both upstreams (one message per token, as a real engine sends
            # them; the 0 ms upstreams differ in how they batch writes): Triton against OpenAI like for like
            out[f"gateway/{backend} paced"] = job(self._body(f"bench/{backend}-delay"), a.stream_rate)
        for backend in ("triton", "openai"):
            for n in (TOKENS, SHORT_TOKENS):
                body = self._body(f"bench/{backend}-delay", stream=True, max_tokens=n)
                out[f"stream/{backend} x{n}"] = job(body, a.stream_rate)
            # from the 0 ms upstream: the OpenAI-compatible one's events come several to a read, and are written so
            out[f"stream/{backend} burst"] = job(self._body(f"bench/{backend}-fast", stream=True), a.stream_rate)
        wanted = a.paths.split(",") if a.paths else None
        return {k: v for k, v in out.items() if not wanted or any(k.startswith(w) for w in wanted)}

    def measure(self, proc: Proc, job: dict) -> dict:
        user0, sys0, reads0 = proc.counters()
        res = self.lg.run(job)
        user1, sys1, reads1 = proc.counters()
        cpu = (user1 - user0) + (sys1 - sys0)
        sent = res["requests"] + int(job["rate"] * job["warmup"])  # warm-up requests cost CPU too
        return {
            "cpu_ms": cpu * 1000 / sent,
            "user_pct": round(100 * (user1 - user0) / cpu, 1) if cpu else 0.0,
            "reads": (reads1 - reads0) / sent,  # the caller's and the upstream's reads (and the usage log's none)
            "errors": res["errors"],
            "events": res["events_mean"],
            "p50_ms": res["p50_ms"],
        }

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self) -> int:
        a = self.args
        t0 = time.time()
        self.messages, _ = _prompt()
        if a.against:
            self.sides.append((a.against, self._checkout(a.against)))
        b = self.bench
        floors: list[float] = []
        try:
            print(f"bench (cpu{', against ' + a.against if a.against else ''}): logs in {self.tmp}", flush=True)
            b.start_upstreams()
            for i, (name, tree) in enumerate(self.sides):
                self.gw[name] = b.start_gateway(1, b.gw_cpus, tree=tree, tag=f"-{i}", shared=a.redis)
            if a.peers:
                self._start_peers()
            self.lg = LoadGen(b.lg_cpu, self.tmp)
            rows: dict[str, dict[str, list[dict]]] = {}
            jobs = {name: self.jobs(port) for name, (_, port) in self.gw.items()}
            for rnd in range(a.pairs):
                order = self.sides if rnd % 2 == 0 else self.sides[::-1]
                for path in jobs["this"]:
                    for name, _ in order:
                        m = self.measure(self.gw[name][0], jobs[name][path])
                        rows.setdefault(path, {}).setdefault(name, []).append(m)
                for peer, (proc, job) in self.peers.items():
                    for name, pr, jb in (
                        ("this", self.gw["this"][0], self._peer_job(self.gw["this"][1])),
                        (peer, proc, job),
                    ):
                        m = self.measure(pr, jb)
                        rows.setdefault(f"peer-rate/{peer}", {}).setdefault(name, []).append(m)
                print(f"  round {rnd + 1}/{a.pairs} done ({time.time() - t0:.0f} s)", flush=True)
            self.lg.close()
            if any(path.startswith("stream/") for path in jobs["this"]):
                n = max(200, int(a.seconds * 400))  # as many seconds as a measured path
                floors = [relay_floor_ms(b.gw_cpus, b.side_cpus, n) for _ in range(3)]
        finally:
            b.stop_all()
            self._drop_checkout()
        result = self.summarise(rows)
        result["triton_vs_openai"] = triton_vs_openai(result)
        if floors:
            result["relay_floor_ms_per_chunk"] = spread(floors)
        result["wall_s"] = round(time.time() - t0, 1)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print()
        print(report(result))
        print(f"\nwrote {out} in {result['wall_s']} s")
        if result["errors"]:
            print(f"ERRORS: {result['errors']}", file=sys.stderr)
            return 1
        shutil.rmtree(self.tmp, ignore_errors=True)
        return 0

    def _peer_job(self, port: int, headers: dict | None = None, model: str = "bench/openai-fast") -> dict:
        target = {
            "kind": "http",
            "host": "127.0.0.1",
            "port": port,
            "path": "/v1/chat/completions",
            "headers": headers or {"authorization": f"Bearer {BENCH_KEY}"},
            "body": self._body(model),
        }
        return {
            "mode": "open",
            "target": target,
            "rate": self.args.peer_rate,
            "duration": self.args.seconds,
            "warmup": 0.5,
        }

    def _start_peers(self) -> None:
        b = self.bench
        b.llm = b.llm_port = b.pk = b.pk_port = None
        got = b.start_portkey()
        if got:
            _, oep = b.up["openai-fast"]
            self.peers["portkey"] = (got[0], self._peer_job(got[1], PK.headers(oep), "standin"))
        got = b.start_litellm(1)
        if got:
            auth = {"authorization": f"Bearer {L.MASTER_KEY}"}
            self.peers["litellm"] = (got[0], self._peer_job(got[1], auth, "bench-openai-fast"))

    def summarise(self, rows: dict[str, dict[str, list[dict]]]) -> dict:
        a = self.args
        names = [n for n, _ in self.sides]
        out: dict = {
            "machine": _machine(),
            "against": a.against,
            "redis": bool(getattr(a, "redis", False)),
            "rate": a.rate,
            "stream_rate": a.stream_rate,
            "peer_rate": a.peer_rate,
            "seconds": a.seconds,
            "pairs": a.pairs,
            "cpu_ms_per_request": {},
            "reads_per_request": {},
            "user_pct": {},
            "ratio_vs_against": {},
            "per_chunk": {},
            "peers": {},
            "errors": {},
            "against_errors": {},
        }
        for path, by in rows.items():
            for name, ms in by.items():
                errs = sum(m["errors"] for m in ms)
                if errs and name == "this":
                    out["errors"][path] = errs
                elif errs:  # REV may predate the path (tools, JSON mode): reported, not compared, not a failure
                    out["against_errors"][path] = errs
                out["cpu_ms_per_request"].setdefault(path, {})[name] = spread([m["cpu_ms"] for m in ms])
                out["reads_per_request"].setdefault(path, {})[name] = spread([m["reads"] for m in ms])
                out["user_pct"].setdefault(path, {})[name] = spread([m["user_pct"] for m in ms])
            if len(names) > 1 and all(n in by for n in names) and not any(m["errors"] for n in names for m in by[n]):
                ratios = [x["cpu_ms"] / y["cpu_ms"] for x, y in zip(by[names[0]], by[names[1]], strict=True)]
                out["ratio_vs_against"][path] = ratio_interval(ratios)
        for backend in ("triton", "openai"):
            long, short = rows.get(f"stream/{backend} x{TOKENS}"), rows.get(f"stream/{backend} x{SHORT_TOKENS}")
            if not long or not short:
                continue
            for name in names:
                per = [
                    (lg["cpu_ms"] - sh["cpu_ms"]) / max(lg["events"] - sh["events"], 1)
                    for lg, sh in zip(long[name], short[name], strict=True)
                ]
                out["per_chunk"].setdefault(f"stream/{backend}", {})[name] = {
                    **spread(per),
                    "chunks": round(long[name][0]["events"], 1),
                    "short_chunks": round(short[name][0]["events"], 1),
                }
        for key, by in rows.items():
            if key.startswith("peer-rate/"):
                peer = key.split("/", 1)[1]
                ours, theirs = by["this"], by[peer]
                ratios = [t["cpu_ms"] / o["cpu_ms"] for o, t in zip(ours, theirs, strict=True)]
                out["peers"][peer] = {
                    "ours_cpu_ms": spread([o["cpu_ms"] for o in ours]),
                    f"{peer}_cpu_ms": spread([t["cpu_ms"] for t in theirs]),
                    "their_cost_over_ours": ratio_interval(ratios),
                }
        return out


def report(r: dict) -> str:
    names = ["this"] + ([r["against"]] if r["against"] else [])
    store = "; limits and usage totals in Redis" if r.get("redis") else ""
    lines = [f"CPU ms per request (median [min–max], cv) over {r['pairs']} rounds; {r['rate']} req/s open loop{store}"]
    for path, by in r["cpu_ms_per_request"].items():
        if path.startswith("peer-rate/"):
            continue
        cells = [
            f"{n}: {s['median']:.3f} [{s['min']:.3f}–{s['max']:.3f}] cv {s['cv_pct']}%"
            for n in names
            if (s := by.get(n))
        ]
        line = f"  {path:<22} " + "   ".join(cells)
        iv = r["ratio_vs_against"].get(path)
        if iv:
            line += f"   ratio {iv['ratio']:.3f} (95% CI {iv['low']:.3f}–{iv['high']:.3f}): {verdict(iv)}"
        if reads := r.get("reads_per_request", {}).get(path, {}).get("this"):
            line += f"   [{reads['median']:.1f} reads, {r['user_pct'][path]['this']['median']:.0f}% user]"
        lines.append(line)
    lines.extend(_triton_vs_openai(r))
    if r["per_chunk"]:
        lines.append(f"stream CPU ms per chunk ({TOKENS} vs {SHORT_TOKENS} tokens, 2 ms/token upstream)")
        for path, by in r["per_chunk"].items():
            cells = [
                f"{n}: {s['median']:.4f} [{s['min']:.4f}–{s['max']:.4f}] ({s['chunks']} events)" for n, s in by.items()
            ]
            lines.append(f"  {path:<22} " + "   ".join(cells))
        if floor := r.get("relay_floor_ms_per_chunk"):
            over = ", ".join(
                f"{path} {by['this']['median'] / floor['median']:.1f}×" for path, by in r["per_chunk"].items()
            )
            lines.append(
                f"  relay floor (uvloop: read one chunk, write one chunk, nothing else) {floor['median']:.4f} "
                f"[{floor['min']:.4f}–{floor['max']:.4f}]; this over the floor: {over}"
            )
    for peer, p in r["peers"].items():
        iv = p["their_cost_over_ours"]
        lines.append(
            f"{peer} at {r['peer_rate']} req/s: {p[peer + '_cpu_ms']['median']:.3f} ms vs ours "
            f"{p['ours_cpu_ms']['median']:.3f} ms per request: {iv['ratio']:.1f}× "
            f"(95% CI {iv['low']:.1f}–{iv['high']:.1f})"
        )
    for k, v in r["against_errors"].items():
        lines.append(f"{r['against']} answered {v} errors on {k} (not compared: it may predate that path)")
    for k, v in r["errors"].items():
        lines.append(f"ERRORS {k}: {v}")
    return "\n".join(lines)


def triton_vs_openai(r: dict) -> dict[str, dict]:
    """This gateway's Triton rows against its OpenAI rows of the same run: the CPU ratio and the read syscalls each
    takes per request (each read is a wake-up of the gateway; how many an answer takes is the upstream's framing:
    the 0 ms Triton stand-in flushes a gRPC message per token, the 0 ms OpenAI one a few writes per answer, and
    paced both send a token per read)."""
    cpu, reads = r["cpu_ms_per_request"], r.get("reads_per_request", {})
    out = {}
    for kind in ("", " paced"):
        t, o = cpu.get(f"gateway/triton{kind}", {}).get("this"), cpu.get(f"gateway/openai{kind}", {}).get("this")
        tr, orr = reads.get(f"gateway/triton{kind}", {}).get("this"), reads.get(f"gateway/openai{kind}", {}).get("this")
        if not (t and o and tr and orr):
            continue
        out[kind.strip() or "fast"] = {
            "cpu_ratio": round(t["median"] / o["median"], 3),
            "reads": [round(tr["median"], 1), round(orr["median"], 1)],
        }
    return out


def _triton_vs_openai(r: dict) -> list[str]:
    rows = triton_vs_openai(r)
    if not rows:
        return []
    lines = ["Triton over OpenAI-compatible (this gateway): CPU per request, and read syscalls per request"]
    for kind, v in rows.items():
        lines.append(f"  {kind:<6} {v['cpu_ratio']:.2f}× the CPU; {v['reads'][0]} reads against {v['reads'][1]}")
    return lines


def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("CPU per request (--cpu, --against)")
    g.add_argument("--against", metavar="REV", help="paired comparison with the gateway at git revision REV")
    g.add_argument("--pairs", type=int, default=6, help="rounds (each measures every path on every side)")
    g.add_argument("--rate", type=int, default=200, help="open-loop req/s of the non-streamed paths (below capacity)")
    g.add_argument("--stream-rate", type=int, default=60, help="open-loop streams/s")
    g.add_argument("--peer-rate", type=int, default=40, help="req/s at which ours and the peers are compared")
    g.add_argument("--seconds", type=float, default=2.5, help="measured seconds per path per round")
    g.add_argument("--paths", help="comma-separated prefixes of the paths to measure (default: all)")
    g.add_argument("--peers", action="store_true", help="also measure LiteLLM and Portkey (CPU per request)")
    g.add_argument(
        "--redis",
        action="store_true",
        help="each gateway with a Redis of its own for limits and usage totals (as replicas or --workers run)",
    )
