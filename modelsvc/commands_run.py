"""The long-running commands: `serve`, `standin`, `dev` (stand-ins + gateway on the local overlay)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def _settings(args):
    from gateway.config import Settings
    from gateway.image_fetch import ImagePolicy

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
    from gateway.config import OverlayError
    from gateway.server import WorkersNeedRedis, serve

    from .catalog import CatalogError

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
    from infra.render import render, write_monitoring_files, write_yaml
    from infra.settings import Settings as InfraSettings

    from .catalog import CatalogError, load

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


def cmd_standin(args) -> int:
    from .standin.__main__ import main

    return main(args.standin_args)


def cmd_dev(args) -> int:
    """Start the stand-in engines named in the local overlay, then the gateway; stop them all on exit."""
    from gateway.config import OverlayError, load_overlay

    from .catalog import CatalogError, load

    try:
        catalog = load(args.config)
        overlay = load_overlay(args.local, catalog)
    except (CatalogError, OverlayError) as e:
        print(e, file=sys.stderr)
        return 1
    procs = []
    try:
        for spec in overlay.standins:
            cmd = [
                sys.executable,
                "-m",
                "modelsvc.standin",
                "--port",
                str(spec.port),
                "--profile",
                spec.profile,
                "--token-delay",
                str(spec.token_delay),
            ]
            if spec.profile == "openai":
                cmd = [
                    sys.executable,
                    "-m",
                    "modelsvc.standin.openai_upstream",
                    "--port",
                    str(spec.port),
                    "--token-delay",
                    str(spec.token_delay),
                ]
            elif not spec.decoupled:
                cmd.append("--no-decoupled")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        for spec, proc in zip(overlay.standins, procs):
            line = proc.stdout.readline()
            if not line:
                print(f"stand-in {spec.name} failed to start", file=sys.stderr)
                return 1
            print(f"[{spec.name}] {line.strip()}")
        base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}/v1"
        if overlay.demo_keys:
            demo = overlay.demo_keys[0]
            svc = next((s for s in catalog.services_of(demo.owner)), None)
            print(f"\nGateway on {base} — demo key for {demo.owner} (local only): {demo.key}")
            if svc:
                print(
                    f"Try it:\n  curl {base}/chat/completions -H 'Authorization: Bearer {demo.key}' "
                    f'-H \'Content-Type: application/json\' -d \'{{"model": "{svc.access_name}", "messages": '
                    f'[{{"role": "user", "content": "Hello!"}}], "temperature": 0.7}}\'\n',
                    flush=True,
                )
        return cmd_serve(args)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


def register(sub) -> None:
    for name, func, helptext in [
        ("serve", cmd_serve, "run the gateway (OpenAI-compatible API) on services.yaml"),
        ("dev", cmd_dev, "start the local stand-in engines from local.yaml, then the gateway"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default=os.environ.get("MODELSVC_CATALOG", "services.yaml"))
        p.add_argument(
            "--local",
            default="local.yaml" if name == "dev" else os.environ.get("MODELSVC_LOCAL"),
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
        p.add_argument(
            "--request-timeout", type=float, default=15.0, help="seconds a client has to send its whole request"
        )
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
        p.set_defaults(func=func)
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
