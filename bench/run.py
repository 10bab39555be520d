"""`python -m bench [--quick | --short | --cpu | --against REV] [--out PATH] [--no-litellm] [--no-portkey]
[--workers-scaling]`: the whole benchmark on loopback (`--cpu` and `--against`: bench/paired.py).

Starts the stand-in upstreams (Triton gRPC with 0 / fixed / slow per-token delay; the OpenAI-compatible one likewise),
our gateway over a bench catalog, the peers over the same OpenAI-compatible upstream (LiteLLM proxy and Portkey's AI
Gateway; full and short runs), and the load generator in its own process on its own core; measures every path in the
same run; prints a table; writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import litellm as L
from . import portkey as PK
from .procs import BENCH_KEY, PY, ROOT, Proc, bench_catalog, free_port

# The tool-call rows' request (run.py's agent targets and paired.py's gateway/triton+tools)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOL_ASK = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
TOKENS = 24  # max_tokens of every request; the prompt is chosen so that every upstream generates exactly this many


@dataclass(frozen=True)
class Profile:
    rates: tuple[int, ...]
    duration: float
    warmup: float
    concurrency: int  # closed loop, max throughput
    tp_duration: float
    stream_rate: int
    stream_delay: float  # s/token of the "fixed delay" upstreams
    hold: int  # concurrent streams for RSS
    slow_delay: float  # s/token of the upstream the held streams use


QUICK = Profile(
    rates=(100,),
    duration=2.0,
    warmup=0.5,
    concurrency=16,
    tp_duration=2.0,
    stream_rate=50,
    stream_delay=0.002,
    hold=100,
    slow_delay=0.05,
)
SHORT = Profile(
    rates=(5, 50),
    duration=4.0,
    warmup=0.5,
    concurrency=16,
    tp_duration=2.0,
    stream_rate=20,
    stream_delay=0.002,
    hold=100,
    slow_delay=0.05,
)  # quick loads that the peers can take on a busy box
FULL = Profile(
    rates=(50, 100, 500, 1000),
    duration=5.0,
    warmup=1.0,
    concurrency=64,
    tp_duration=5.0,
    stream_rate=25,
    stream_delay=0.002,
    hold=1000,
    slow_delay=0.25,
)


def _prompt() -> tuple[list[dict], str]:
    """A user message for which both the Triton stand-in (on the rendered chat prompt) and the OpenAI-compatible
    stand-in (on its own rendering) generate at least TOKENS tokens, so every path streams the same count."""
    from devtools.standin.engine import generate_tokens
    from devtools.standin.openai_upstream import _render
    from gateway.prompt import render_chat

    for i in range(10_000):
        messages = [{"role": "user", "content": f"Benchmark request {i}: say something."}]
        rendered = render_chat(messages, None)
        if len(generate_tokens(rendered)) >= TOKENS and len(generate_tokens(_render(messages))) >= TOKENS:
            return messages, rendered
    raise RuntimeError("no prompt long enough")


class LoadGen:
    """The load generator process (bench.loadgen), pinned to its own core, warm across jobs."""

    def __init__(self, cpu: int | None, log_dir: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if cpu is not None:
            env["BENCH_LOADGEN_CPU"] = str(cpu)
        self._err = open(log_dir / "loadgen.log", "ab")
        self.p = subprocess.Popen(
            [PY, "-m", "bench.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            cwd=ROOT,
            env=env,
            text=True,
            start_new_session=True,
        )
        assert self.p.stdin is not None and self.p.stdout is not None  # both PIPE
        self.stdin, self.stdout = self.p.stdin, self.p.stdout

    def _send(self, obj) -> None:
        self.stdin.write(json.dumps(obj) + "\n")
        self.stdin.flush()

    def _read(self) -> str:
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator died (rc={self.p.poll()}); see loadgen.log")
        return line

    def run(self, job: dict) -> dict:
        self._send(job)
        out = json.loads(self._read())
        if "fatal" in out:
            raise RuntimeError(f"load generator: {out['fatal']}")
        return out

    def hold(self, job: dict, at_peak) -> dict:
        """Open job['concurrency'] streams; call at_peak() once all have their first byte; then let them finish."""
        self._send({**job, "mode": "hold"})
        line = self._read()
        if not line.startswith("ready"):
            out = json.loads(line)
            raise RuntimeError(f"load generator: {out.get('fatal', out)}")
        peak = at_peak()
        self.stdin.write("go\n")
        self.stdin.flush()
        out = json.loads(self._read())
        if "fatal" in out:
            raise RuntimeError(f"load generator: {out['fatal']}")
        return {**out, **peak}

    def close(self) -> None:
        try:
            self.stdin.close()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
        self._err.close()


def _machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.prof = QUICK if args.quick else SHORT if args.short else FULL
        self.tmp = Path(tempfile.mkdtemp(prefix="modelsvc-bench-"))
        self.procs: list[Proc] = []
        self.failures: list[str] = []
        cpus = sorted(os.sched_getaffinity(0))
        # Gateway (and LiteLLM, in turn) on one core; load generator and upstreams on the other.
        self.gw_cpus = {cpus[0]} if len(cpus) > 1 else None
        self.side_cpus = set(cpus[1:]) if len(cpus) > 1 else None
        if len(cpus) >= 4:  # the third core stays free for the second gateway worker (--workers-scaling)
            self.side_cpus = set(cpus[1:]) - {cpus[2]}
        self.lg_cpu = cpus[1] if len(cpus) > 1 else None
        self.result: dict = {
            "machine": _machine(),
            "quick": args.quick,
            "tokens_per_request": TOKENS,
            "profile": self.prof.__dict__,
            "placement": {
                "gateway_cpus": sorted(self.gw_cpus or cpus),
                "loadgen_cpu": self.lg_cpu,
                "upstream_cpus": sorted(self.side_cpus or cpus),
            },
            "latency": [],
            "throughput": [],
            "streams": [],
            "rss": [],
            "overhead": [],
            "stream_overhead": [],
            "paths": {},
            "failures": self.failures,
        }

    # -- processes ------------------------------------------------------------------------------------------------
    def _spawn(self, name, cmd, *, cpus=None, env=None, cwd=None) -> Proc:
        p = Proc(name, cmd, cpus=cpus, env=env, log_dir=self.tmp, cwd=cwd)
        self.procs.append(p)
        return p

    def start_upstreams(self) -> None:
        p = self.prof
        self.up = {}
        for name, delay in (("fast", 0.0), ("delay", p.stream_delay), ("slow", p.slow_delay)):
            port = free_port()
            proc = self._spawn(
                f"triton-{name}",
                [
                    PY,
                    "-m",
                    "devtools.standin",
                    "--port",
                    str(port),
                    "--profile",
                    "chat",
                    "--token-delay",
                    str(delay),
                    "--log-level",
                    "WARNING",
                ],
                cpus=self.side_cpus,
            )
            self.up[f"triton-{name}"] = (proc, f"127.0.0.1:{port}")
            port = free_port()
            proc = self._spawn(
                f"openai-{name}",
                [PY, "-m", "devtools.standin.openai_upstream", "--port", str(port), "--token-delay", str(delay)],
                cpus=self.side_cpus,
            )
            self.up[f"openai-{name}"] = (proc, f"http://127.0.0.1:{port}/v1")
        # the agents rows: the fast stand-in with Llama 3.1's chat template (tool calls, end tokens)
        port = free_port()
        proc = self._spawn(
            "llama-fast",
            [
                PY,
                "-m",
                "devtools.standin",
                "--port",
                str(port),
                "--profile",
                "chat",
                "--family",
                "llama3",
                "--log-level",
                "WARNING",
            ],
            cpus=self.side_cpus,
        )
        self.up["llama-fast"] = (proc, f"127.0.0.1:{port}")
        for proc, _ in self.up.values():
            proc.wait_log("ready", 30)

    def start_gateway(
        self, workers: int, cpus, tree: Path = ROOT, tag: str = "", shared: bool = False
    ) -> tuple[Proc, int]:
        """Our gateway from the checkout at `tree` (this one, or --against's), run as `python -m modelsvc.cli` with
        that checkout first on the path: a venv's `modelsvc` script would run whatever checkout it was installed
        from (an editable install points at one worktree). `shared`: with a Redis of its own for limits and usage
        totals even with one worker (as replicas run)."""
        services = [(n, n.split("-")[0]) for n in self.up]
        d = self.tmp / f"gw{workers}{tag}"
        d.mkdir(exist_ok=True)
        (d / "services.yaml").write_text(bench_catalog(services))
        (d / "local.yaml").write_text(
            yaml.safe_dump({"endpoints": {f"bench/{n}": [ep] for n, (_, ep) in self.up.items()}})
        )
        store = []
        if workers > 1 or shared:  # workers share limits through Redis (`modelsvc serve` refuses several without it)
            rport = free_port()
            redis = self._spawn(
                f"redis-w{workers}{tag}",
                [
                    "redis-server",
                    "--port",
                    str(rport),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(d),
                ],
                cpus=self.side_cpus,
            )
            redis.wait_log("Ready to accept", 30)
            store = ["--redis-url", f"redis://127.0.0.1:{rport}/0"]
        port = free_port()
        proc = self._spawn(
            f"gateway-w{workers}{tag}",
            [
                PY,
                "-m",
                "modelsvc.cli",
                "serve",
                "--config",
                str(d / "services.yaml"),
                "--local",
                str(d / "local.yaml"),
                "--port",
                str(port),
                "--usage-log",
                str(d / "usage.jsonl"),
                "--workers",
                str(workers),
                "--metrics-port",
                "0",
                *store,
            ],
            cpus=cpus,
            cwd=tree,
            env={"PYTHONPATH": str(tree)},
        )
        proc.wait_http(f"http://127.0.0.1:{port}/readyz", 60)
        return proc, port

    def start_litellm(self, workers: int) -> tuple[Proc, int] | None:
        cfg = self.tmp / "litellm.yaml"
        L.write_config(cfg, {f"bench-{n}": ep for n, (_, ep) in self.up.items() if n.startswith("openai")})
        port = free_port()
        try:
            proc = L.start(cfg, port, workers, self.gw_cpus, self.tmp)
        except Exception as e:
            self.result["litellm"] = {"status": "failed", "error": str(e)[-3000:]}
            print(f"LiteLLM could not run: {e}", file=sys.stderr)
            return None
        self.procs.append(proc)
        ver = subprocess.run(
            [str(L.VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.result["litellm"] = {"status": "ok", "version": ver, "workers": workers}
        return proc, port

    def start_portkey(self) -> tuple[Proc, int] | None:
        port = free_port()
        try:
            proc = PK.start(port, self.gw_cpus, self.tmp)
        except Exception as e:
            self.result["portkey"] = {"status": "failed", "error": str(e)[-3000:]}
            print(f"Portkey could not run: {e}", file=sys.stderr)
            return None
        self.procs.append(proc)
        self.result["portkey"] = {
            "status": "ok",
            "version": PK.installed_version(),
            "workers": 1,
            "note": "Node, one process; bench/portkey_shim.mjs works around Portkey-AI/gateway"
            "#1389 (streams fail on Node otherwise)",
        }
        return proc, port

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    # -- targets --------------------------------------------------------------------------------------------------
    def targets(self, variant: str, stream: bool) -> dict[str, tuple[dict, Proc | None, str]]:
        """path name → (loadgen target, process whose CPU/RSS is measured, baseline path name)."""
        m = self.messages
        gw_body = {"model": None, "messages": m, "max_tokens": TOKENS, "stream": stream}
        out: dict[str, tuple[dict, Proc | None, str]] = {}
        tproc, tep = self.up[f"triton-{variant}"]
        oproc, oep = self.up[f"openai-{variant}"]
        out["direct/triton"] = (
            {"kind": "triton", "url": tep, "prompt": self.rendered, "max_tokens": TOKENS, "stream": stream},
            tproc,
            "",
        )
        port = int(oep.rsplit(":", 1)[1].split("/")[0])
        up_body = {"model": "standin", "max_tokens": TOKENS, "stream": stream, "messages": m}
        if stream:
            up_body["stream_options"] = {"include_usage": True}  # what our gateway and LiteLLM forward
        out["direct/openai"] = (
            {"kind": "http", "host": "127.0.0.1", "port": port, "path": "/v1/chat/completions", "body": up_body},
            oproc,
            "",
        )
        auth = {"authorization": f"Bearer {BENCH_KEY}"}
        for backend in ("triton", "openai"):
            out[f"gateway/{backend}"] = (
                {
                    "kind": "http",
                    "host": "127.0.0.1",
                    "port": self.gw_port,
                    "path": "/v1/chat/completions",
                    "headers": auth,
                    "body": {**gw_body, "model": f"bench/{backend}-{variant}"},
                },
                self.gw,
                f"direct/{backend}",
            )
        if variant == "fast" and not stream and "llama-fast" in self.up:
            out.update(self._agent_targets(auth))
        if self.llm:
            out["litellm/openai"] = (
                {
                    "kind": "http",
                    "host": "127.0.0.1",
                    "port": self.llm_port,
                    "path": "/v1/chat/completions",
                    "headers": {"authorization": f"Bearer {L.MASTER_KEY}"},
                    "body": {**gw_body, "model": f"bench-openai-{variant}"},
                },
                self.llm,
                "direct/openai",
            )
        if self.pk:
            out["portkey/openai"] = (
                {
                    "kind": "http",
                    "host": "127.0.0.1",
                    "port": self.pk_port,
                    "path": "/v1/chat/completions",
                    "headers": PK.headers(oep),
                    "body": {**gw_body, "model": "standin"},
                },
                self.pk,
                "direct/openai",
            )
        return out

    def _agent_targets(self, auth: dict) -> dict[str, tuple[dict, Proc | None, str]]:
        """Rows beside gateway/triton (same run, same stand-in speed): a Llama model (its end-of-turn tokens go as
        stop words), an automatic tool call read in Llama's format, JSON mode (a guide; the stand-in answers an
        object). CPU per request is the comparison; their answers differ from the plain rows', so no floor."""
        base = {
            "kind": "http",
            "host": "127.0.0.1",
            "port": self.gw_port,
            "path": "/v1/chat/completions",
            "headers": auth,
        }
        llama = {"model": "bench/llama-fast", "max_tokens": TOKENS, "stream": False}
        return {
            "gateway/triton-llama": ({**base, "body": {**llama, "messages": self.messages}}, self.gw, ""),
            "gateway/triton+tools": ({**base, "body": {**llama, "messages": TOOL_ASK, "tools": TOOLS}}, self.gw, ""),
            "gateway/triton+json": (
                {
                    **base,
                    "body": {
                        "model": "bench/triton-fast",
                        "messages": self.messages,
                        "max_tokens": TOKENS,
                        "response_format": {"type": "json_object"},
                    },
                },
                self.gw,
                "",
            ),
        }

    def _note(self, path: str, res: dict) -> None:
        agg = self.result["paths"].setdefault(path, {"requests": 0, "errors": 0})
        agg["requests"] += res.get("requests", 0)
        agg["errors"] += res.get("errors", 0)

    def _guard(self, what: str, fn):
        try:
            return fn()
        except Exception as e:
            self.failures.append(f"{what}: {type(e).__name__}: {e}")
            print(f"FAILED {what}: {e}", file=sys.stderr)
            return None

    def _lg(self, target: dict) -> LoadGen:
        return self.lg_grpc if target["kind"] == "triton" else self.lg

    # -- measurements ---------------------------------------------------------------------------------------------
    def measure_throughput(self, targets, workers: int = 1, label: str = "") -> dict[str, float]:
        p, best = self.prof, {}
        for path, (target, proc, _) in targets.items():

            def one(path=path, target=target, proc=proc):  # bound now (called at once, by _guard)
                cpu0 = proc.cpu_s()
                res = self._lg(target).run(
                    {
                        "mode": "closed",
                        "target": target,
                        "concurrency": p.concurrency,
                        "duration": p.tp_duration,
                        "warmup": p.warmup,
                    }
                )
                cpu = proc.cpu_s() - cpu0
                # CPU spent over warm-up + measured window, per request served in both (≈ same rate)
                served = res["ok"] * (p.tp_duration + p.warmup) / p.tp_duration
                res.update(
                    path=path + label,
                    workers=workers,
                    process_cpu_s=round(cpu, 3),
                    cpu_s_per_1k=round(cpu / served * 1000, 3) if served else None,
                )
                self._note(path, res)
                self.result["throughput"].append(res)
                return res

            r = self._guard(f"throughput {path}{label}", one)
            if r:
                best[path] = r["throughput_rps"]
                print(
                    f"  max throughput {path + label:<26} {r['throughput_rps']:8.0f} req/s  "
                    f"errors {r['errors']}  cpu/1k {r['cpu_s_per_1k']} s",
                    flush=True,
                )
        return best

    def measure_latency(self, targets, capacity: dict[str, float]) -> None:
        p = self.prof
        for rate in p.rates:
            for path, (target, proc, _) in targets.items():
                cap = capacity.get(path)
                if cap is not None and rate > cap * 0.9:  # open loop at or past capacity only queues up
                    self.result["latency"].append(
                        {
                            "path": path,
                            "offered_rps": rate,
                            "skipped": f"offered {rate} req/s > measured capacity {cap:.0f} req/s",
                        }
                    )
                    print(f"  latency {path:<18} @{rate:>5} req/s  skipped (capacity {cap:.0f} req/s)", flush=True)
                    continue

                def one(path=path, target=target, proc=proc, rate=rate):  # bound now (called at once, by _guard)
                    cpu0 = proc.cpu_s()
                    res = self._lg(target).run(
                        {"mode": "open", "target": target, "rate": rate, "duration": p.duration, "warmup": p.warmup}
                    )
                    cpu = proc.cpu_s() - cpu0
                    res.update(path=path, cpu_s_per_1k=round(cpu / (rate * (p.duration + p.warmup)) * 1000, 3))
                    self._note(path, res)
                    self.result["latency"].append(res)
                    return res

                r = self._guard(f"latency {path} @{rate}", one)
                if r:
                    print(
                        f"  latency {path:<18} @{rate:>5} req/s  p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:8.3f}"
                        f" ms  err {r['errors']}  lag p99 {r['lag_p99_ms']:.3f} ms",
                        flush=True,
                    )
        # added latency: path minus its floor, same rate
        by = {(r["path"], r["offered_rps"]): r for r in self.result["latency"] if "skipped" not in r}
        for (path, rate), r in by.items():
            base = targets[path][2]
            if base and (base, rate) in by:
                b = by[(base, rate)]
                self.result["overhead"].append(
                    {
                        "path": path,
                        "baseline": base,
                        "offered_rps": rate,
                        "added_p50_ms": round(r["p50_ms"] - b["p50_ms"], 3),
                        "added_p99_ms": round(r["p99_ms"] - b["p99_ms"], 3),
                        "errors": r["errors"],
                    }
                )

    def measure_streams(self, targets) -> None:
        p = self.prof
        res_by = {}
        for path, (target, _proc, _) in targets.items():

            def one(path=path, target=target):  # bound now (called at once, by _guard)
                res = self._lg(target).run(
                    {
                        "mode": "open",
                        "target": target,
                        "rate": p.stream_rate,
                        "duration": p.duration,
                        "warmup": p.warmup,
                    }
                )
                res["path"] = path
                self._note(path, res)
                self.result["streams"].append(res)
                return res

            r = self._guard(f"streams {path}", one)
            if r:
                res_by[path] = r
                print(
                    f"  stream  {path:<18} @{p.stream_rate:>5} req/s  ttft p50 {r['ttft_p50_ms']:7.3f} ms  total "
                    f"p50 {r['p50_ms']:7.3f} ms  events {r['events_mean']:.1f}  err {r['errors']}",
                    flush=True,
                )
        for path, (_, _, base) in targets.items():
            if base and path in res_by and base in res_by:
                r, b = res_by[path], res_by[base]
                body = (r["p50_ms"] - r["ttft_p50_ms"]) - (b["p50_ms"] - b["ttft_p50_ms"])
                self.result["stream_overhead"].append(
                    {
                        "path": path,
                        "baseline": base,
                        "offered_rps": p.stream_rate,
                        "token_delay_ms": p.stream_delay * 1000,
                        "added_ttft_p50_ms": round(r["ttft_p50_ms"] - b["ttft_p50_ms"], 3),
                        "added_ttft_p99_ms": round(r["ttft_p99_ms"] - b["ttft_p99_ms"], 3),
                        "added_per_chunk_ms": round(body / TOKENS, 4),
                    }
                )

    def measure_rss(self, targets) -> None:
        n = self.prof.hold
        for path, (target, proc, _) in targets.items():
            if not path.startswith(("gateway/", "litellm/", "portkey/")):
                continue

            def one(path=path, target=target, proc=proc):  # bound now (called at once, by _guard)
                idle = proc.rss_mb()
                res = self.lg.hold({"target": target, "concurrency": n}, lambda: {"rss_mb": round(proc.rss_mb(), 1)})
                res.update(path=path, rss_idle_mb=round(idle, 1))
                self._note(path, res)
                self.result["rss"].append(res)
                return res

            r = self._guard(f"rss {path}", one)
            if r:
                print(
                    f"  rss     {path:<18} {r['streams_open_at_once']:>5} streams  {r['rss_idle_mb']:.0f} → "
                    f"{r['rss_mb']:.0f} MB  err {r['errors']}",
                    flush=True,
                )

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self) -> int:
        t0 = time.time()
        self.messages, self.rendered = _prompt()
        try:
            kind = "quick" if self.args.quick else "short" if self.args.short else "full"
            peers = [
                name
                for name, off in (("LiteLLM", self.args.no_litellm), ("Portkey", self.args.no_portkey))
                if not (self.args.quick or off)
            ]
            print(
                f"bench ({kind}): starting upstreams, gateway{''.join(', ' + p for p in peers)} (logs: {self.tmp})",
                flush=True,
            )
            self.start_upstreams()
            self.gw, self.gw_port = self.start_gateway(1, self.gw_cpus)
            self.llm = self.llm_port = self.pk = self.pk_port = None
            if "LiteLLM" in peers:
                got = self.start_litellm(1)
                if got:
                    self.llm, self.llm_port = got
            if "Portkey" in peers:
                got = self.start_portkey()
                if got:
                    self.pk, self.pk_port = got
            self.lg = LoadGen(self.lg_cpu, self.tmp)
            # The Triton floor is called with the gateway's own gRPC client, from the core the gateway runs on: the
            # gRPC client's cost is where it would be through the gateway, and only what the gateway adds shows.
            self.lg_grpc = LoadGen(min(self.gw_cpus) if self.gw_cpus else None, self.tmp)
            fast = self.targets("fast", False)
            print(f"max throughput (closed loop, {self.prof.concurrency} connections):", flush=True)
            cap = self.measure_throughput(fast)
            print("added latency (open loop):", flush=True)
            self.measure_latency(fast, cap)
            print(f"streams (fixed {self.prof.stream_delay * 1000:.0f} ms/token upstream):", flush=True)
            self.measure_streams(self.targets("delay", True))
            print(
                f"memory at {self.prof.hold} concurrent streams ({self.prof.slow_delay * 1000:.0f} ms/token upstream):"
            )
            self.measure_rss(self.targets("slow", True))
            if self.args.workers_scaling and not self.args.quick:
                self.gw.stop()
                self.procs.remove(self.gw)
                for peer in (self.llm, self.pk):
                    if peer:
                        peer.stop()
                        self.procs.remove(peer)
                self.llm = self.pk = None
                # With 4+ cores the two workers get two cores of their own (the first, and the one the 1-worker run
                # did not use: load generator and upstreams keep the rest); on 2 cores they share both with them.
                cpus = sorted(os.sched_getaffinity(0))
                two = {cpus[0], cpus[2]} if len(cpus) >= 4 else None
                print(
                    f"multi-worker (gateway --workers 2, {f'on cores {sorted(two)}' if two else 'unpinned'}; "
                    f"{'load generator and upstreams on the others' if two else 'shares the 2 cores with them'}):",
                    flush=True,
                )
                self.gw, self.gw_port = self.start_gateway(2, two)
                t = {k: v for k, v in self.targets("fast", False).items() if k.startswith("gateway/")}
                self.measure_throughput(t, workers=2, label=" (2 workers)")
            self.lg.close()
            self.lg_grpc.close()
        finally:
            self.stop_all()
        self.result["wall_s"] = round(time.time() - t0, 1)
        self.result["targets"] = targets_status(self.result)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.result, indent=1))
        print()
        print(table(self.result))
        print(f"\nwrote {out} in {self.result['wall_s']} s")
        bad = {p: a for p, a in self.result["paths"].items() if a["errors"]}
        if self.failures or bad:
            print(f"ERRORS: {self.failures} {bad}", file=sys.stderr)
            return 1
        shutil.rmtree(self.tmp, ignore_errors=True)
        return 0


PEERS = ("litellm", "portkey")  # every target is a ratio against each peer that ran


def targets_status(r: dict) -> dict:
    """Where we stand against the targets of docs/benchmarks.md, "Against the targets" (None: not measured)."""
    ov = {(o["path"], o["offered_rps"]): o for o in r["overhead"]}
    tp = {t["path"]: t["throughput_rps"] for t in r["throughput"] if t.get("workers", 1) == 1}
    so = {s["path"]: s for s in r["stream_overhead"]}
    out = {}
    measured = {x["path"] for x in r["throughput"] + r["stream_overhead"] + r["overhead"]}
    peers = [p for p in PEERS if f"{p}/openai" in measured]
    rates = sorted(k[1] for k in ov if k[0] == "gateway/openai")
    if rates:
        ours = ov[("gateway/openai", rates[-1])]
        out["added_p50_below_1ms"] = {
            "gateway/triton": (ov.get(("gateway/triton", rates[-1])) or {}).get("added_p50_ms"),
            "gateway/openai": ours["added_p50_ms"],
        }
    for peer in peers:
        # the highest rate both were measured at (open loop past a path's capacity is skipped)
        both = [q for q in rates if (f"{peer}/openai", q) in ov]
        ours = ov[("gateway/openai", both[-1])] if both else None
        theirs = ov[(f"{peer}/openai", both[-1])] if both else None
        if ours and theirs:
            out[f"added_p50_vs_{peer}"] = {
                "offered_rps": ours["offered_rps"],
                "ours_ms": ours["added_p50_ms"],
                f"{peer}_ms": theirs["added_p50_ms"],
                "ratio": round(theirs["added_p50_ms"] / max(ours["added_p50_ms"], 1e-3), 1),
            }
            out[f"added_p99_vs_{peer}"] = {
                "offered_rps": ours["offered_rps"],
                "ours_ms": ours["added_p99_ms"],
                f"{peer}_ms": theirs["added_p99_ms"],
                "ratio": round(theirs["added_p99_ms"] / max(ours["added_p99_ms"], 1e-3), 1),
            }
        if "gateway/openai" in tp and f"{peer}/openai" in tp:
            out[f"throughput_vs_{peer}"] = {
                "ours_rps": round(tp["gateway/openai"]),
                f"{peer}_rps": round(tp[f"{peer}/openai"]),
                "ratio": round(tp["gateway/openai"] / max(tp[f"{peer}/openai"], 1e-9), 1),
            }
        if "gateway/openai" in so and f"{peer}/openai" in so:
            ours_t, theirs_t = so["gateway/openai"]["added_ttft_p50_ms"], so[f"{peer}/openai"]["added_ttft_p50_ms"]
            out[f"added_ttft_p50_vs_{peer}"] = {
                "ours_ms": ours_t,
                f"{peer}_ms": theirs_t,
                "ratio": round(theirs_t / max(ours_t, 1e-3), 1),
            }
    p99 = {k[0]: v["added_p99_ms"] for k, v in ov.items() if k[1] == 500}
    if p99:
        out["added_p99_at_500rps_ms"] = p99
    return out


def _f(v, fmt="{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def table(r: dict) -> str:
    paths = list(r["paths"])
    rates = sorted({x["offered_rps"] for x in r["latency"]})
    lat = {(x["path"], x["offered_rps"]): x for x in r["latency"]}
    ov = {(x["path"], x["offered_rps"]): x for x in r["overhead"]}
    tp = {x["path"]: x for x in r["throughput"]}
    so = {x["path"]: x for x in r["stream_overhead"]}
    st = {x["path"]: x for x in r["streams"]}
    rss = {x["path"]: x for x in r["rss"]}
    head = (
        ["path"]
        + [f"p50/p99 ms @{q}" for q in rates]
        + [f"added p50/p99 @{q}" for q in rates]
        + ["max req/s", "CPU s/1k", "TTFT p50", "+TTFT", "+ms/chunk", "RSS MB (streams)", "errors"]
    )
    rows = [head]
    for p in paths + [x["path"] for x in r["throughput"] if x["path"] not in paths]:
        row = [p]
        for q in rates:
            x = lat.get((p, q))
            row.append("skip" if x and "skipped" in x else "—" if not x else f"{x['p50_ms']:.2f}/{x['p99_ms']:.2f}")
        for q in rates:
            x = ov.get((p, q))
            row.append("—" if not x else f"{x['added_p50_ms']:.2f}/{x['added_p99_ms']:.2f}")
        t = tp.get(p, {})
        row += [
            _f(t.get("throughput_rps"), "{:.0f}"),
            _f(t.get("cpu_s_per_1k"), "{:.3f}"),
            _f(st.get(p, {}).get("ttft_p50_ms")),
            _f(so.get(p, {}).get("added_ttft_p50_ms")),
            _f(so.get(p, {}).get("added_per_chunk_ms"), "{:.3f}"),
            "—"
            if p not in rss
            else f"{rss[p]['rss_idle_mb']:.0f}→{rss[p]['rss_mb']:.0f} ({rss[p]['streams_open_at_once']})",
            str(r["paths"].get(p, {}).get("errors", t.get("errors", 0))),
        ]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    gen = [x for x in r["latency"] if "lag_p99_ms" in x]
    if gen:
        lines.append(
            f"load generator: send lag p99 max {max(x['lag_p99_ms'] for x in gen):.3f} ms, "
            f"max {max(x['lag_max_ms'] for x in gen):.3f} ms (how late it sent vs schedule)"
        )
    for peer in PEERS:
        if r.get(peer):
            lines.append(
                f"{peer}: {r[peer].get('status')} {r[peer].get('version', '')}"
                f"{'' if r[peer].get('status') == 'ok' else ' — ' + r[peer].get('error', '')[:300]}"
            )
    for k, v in r.get("targets", {}).items():
        lines.append(f"target {k}: {v}")
    return "\n".join(lines)
