"""The long-running commands: `serve`, `render`, and the source checkout's `dev` and `standin`.

`dev` and `standin` run the stand-in engines, which are development tools outside the shipped package
(`devtools/`): they are started as `python -m devtools…` from a source checkout, never imported from here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.config import OverlayError, Settings
from gateway.image_fetch import ImagePolicy
from gateway.server import WorkersNeedRedis, serve
from infra.render import render, write_monitoring_files, write_yaml
from infra.settings import Settings as InfraSettings
from modelsvc.catalog import CatalogError, load


def _settings(args):
    images = ImagePolicy(
        max_bytes=args.image_max_bytes,
        timeout_s=args.image_timeout,
        allow_hosts=tuple(h.strip().lower() for h in args.image_hosts.split(",") if h.strip()),
        allow_networks=tuple(n.strip() for n in args.image_allow_networks.split(",") if n.strip()),
    )
    return Settings(
        deadline_s=args.deadline,
        usage_log=args.usage_log or None,
        usage_store=args.usage_store or None,
        usage_spool=args.usage_spool,
        usage_buffer_max=args.usage_buffer_max,
        discovery=args.discovery,
        probe_interval_s=args.probe_interval,
        health_interval_s=args.health_interval,
        reload_poll_s=args.reload_poll,
        redis_url=args.redis_url or None,
        drain_s=args.drain,
        grace_s=args.grace,
        request_timeout_s=args.request_timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.host,
        images=images,
        stream_lease_s=args.stream_lease,
    )


def cmd_serve(args) -> int:
    try:
        serve(args.config, args.local, _settings(args), host=args.host, port=args.port, workers=args.workers)
    except CatalogError as e:
        print(e, file=sys.stderr)
        return 1
    except (OverlayError, WorkersNeedRedis) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def cmd_render(args) -> int:
    try:
        catalog = load(args.config)
    except CatalogError as e:
        print(e, file=sys.stderr)
        return 1
    paths = write_yaml(render(catalog, args.target, InfraSettings()), args.outdir)
    extra = write_monitoring_files(catalog, InfraSettings(), args.outdir)
    print(
        f"wrote {len(paths)} manifests to {args.outdir} (apply with: kubectl apply -f {args.outdir}); "
        f"Prometheus rules and the Grafana dashboard also as plain files: {', '.join(str(p) for p in extra)}"
    )
    return 0


def run_devtool(module: str, argv: list[str]) -> int:
    """Run a development tool of the source checkout (`python -m devtools…`) in this process's place."""
    root = Path.cwd()
    if not (root / "devtools" / "__init__.py").is_file():
        print(
            f"modelsvc: {module} is a development tool of the source checkout; run it from the repository root "
            "(./dev serve starts the stand-ins and the gateway)",
            file=sys.stderr,
        )
        return 2
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])  # its signals reach it directly


def cmd_standin(args) -> int:
    return run_devtool("devtools.standin", args.standin_args)


def cmd_dev(args) -> int:
    """The stand-in engines named in the local overlay, then the gateway (devtools/dev.py)."""
    return run_devtool("devtools.dev", args.dev_args)


def add_serve_arguments(p: argparse.ArgumentParser, *, local_default: str | None) -> None:
    """The gateway's flags, shared by `modelsvc serve` and the checkout's `dev` (devtools/dev.py)."""
    p.add_argument("--config", default=os.environ.get("MODELSVC_CATALOG", "services.yaml"))
    p.add_argument(
        "--local",
        default=local_default,
        help="local overlay: endpoints, stand-ins, demo keys (never deployed)",
    )
    p.add_argument("--host", default=os.environ.get("MODELSVC_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("MODELSVC_PORT", "8080")))
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MODELSVC_METRICS_PORT", "9091")),
        help="internal port for /metrics and per-service /readyz, on the same host (0: off); keep "
        "it off the public load balancer",
    )
    p.add_argument("--workers", type=int, default=int(os.environ.get("MODELSVC_WORKERS", "1")))
    p.add_argument("--deadline", type=float, default=60.0, help="seconds per backend call")
    p.add_argument(
        "--usage-log",
        default=os.environ.get("MODELSVC_USAGE_LOG", "var/usage.jsonl"),
        help="the local usage store: a JSON-lines file (used when --usage-store is not set)",
    )
    p.add_argument(
        "--usage-store",
        default=os.environ.get("MODELSVC_USAGE_STORE"),
        help="postgresql://… : the production usage store (records pass through --usage-spool)",
    )
    p.add_argument(
        "--usage-spool",
        default=os.environ.get("MODELSVC_USAGE_SPOOL", "var/usage-spool"),
        help="directory where records wait until the database has them (a volume in Kubernetes)",
    )
    p.add_argument(
        "--usage-buffer-max",
        type=int,
        default=100_000,
        help="records kept in memory while the disk refuses them; beyond that, 503 (fail closed)",
    )
    p.add_argument(
        "--discovery",
        choices=["static", "dns"],
        default=os.environ.get("MODELSVC_DISCOVERY", "static"),
        help="dns: find each service's pods through its headless Service (in Kubernetes)",
    )
    p.add_argument(
        "--drain",
        type=float,
        default=float(os.environ.get("MODELSVC_DRAIN_SECONDS", "0")),
        help="after SIGTERM, seconds to keep serving with /readyz false (set ~5 in Kubernetes)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("MODELSVC_GRACE_SECONDS", "30")),
        help="then, seconds in-flight requests and streams get to finish",
    )
    p.add_argument("--request-timeout", type=float, default=15.0, help="seconds a client has to send its whole request")
    p.add_argument(
        "--image-hosts",
        default=os.environ.get("MODELSVC_IMAGE_HOSTS", ""),
        help="comma-separated host names image URLs may point at (default: any public host)",
    )
    p.add_argument(
        "--image-allow-networks",
        default=os.environ.get("MODELSVC_IMAGE_ALLOW_NETWORKS", ""),
        help="comma-separated non-public networks image URLs may reach anyway, e.g. 127.0.0.0/8 for "
        "local tests (default: none)",
    )
    p.add_argument("--image-max-bytes", type=int, default=20 * 1024 * 1024, help="largest image accepted")
    p.add_argument("--image-timeout", type=float, default=10.0, help="seconds to fetch one image URL")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="share rate limits and usage totals across gateway replicas (default: in memory)",
    )
    p.add_argument(
        "--stream-lease",
        type=float,
        default=45.0,
        help="seconds a dead replica's open streams keep counting against max_concurrent_streams",
    )
    p.add_argument(
        "--probe-interval", type=float, default=1.0, help="seconds between readiness probes of a failed instance"
    )
    p.add_argument(
        "--health-interval",
        type=float,
        default=5.0,
        help="seconds between readiness checks of healthy instances (0: off)",
    )
    p.add_argument(
        "--reload-poll",
        type=float,
        default=1.0,
        help="seconds between checks of the catalog file for changes (0: SIGHUP only)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gateway (OpenAI-compatible API) on services.yaml")
    add_serve_arguments(p, local_default=os.environ.get("MODELSVC_LOCAL"))
    p.set_defaults(func=cmd_serve)
    d = sub.add_parser(
        "dev", help="(source checkout) start the stand-in engines from local.yaml, then the gateway", add_help=False
    )
    d.add_argument("dev_args", nargs=argparse.REMAINDER)
    d.set_defaults(func=cmd_dev)
    r = sub.add_parser("render", help="write the Kubernetes manifests for services.yaml as YAML files")
    r.add_argument("outdir")
    r.add_argument(
        "--target",
        choices=["kubeconfig"],
        default="kubeconfig",
        help="kubeconfig: the Kubernetes objects for an existing cluster (the eks target adds AWS "
        "resources that only Pulumi creates)",
    )
    r.add_argument("--config", default="services.yaml")
    r.set_defaults(func=cmd_render)
    s = sub.add_parser("standin", help="run a STAND-IN Triton engine (real gRPC protocol, fake output)", add_help=False)
    s.add_argument("standin_args", nargs="*")
    s.set_defaults(func=cmd_standin)
