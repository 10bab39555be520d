"""The long-running commands: `serve`, `render`, and the source checkout's `dev` and `standin`.

`dev` and `standin` run the stand-in engines, which are development tools outside the shipped package
(`devtools/`): they are started as `python -m devtools…` from a source checkout, never imported from here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.config import OverlayError, settings_from
from gateway.server import WorkersNeedRedis, serve
from infra.render import APPLY_SCRIPT, render_plan, write_monitoring_files, write_plan
from infra.settings import Settings as InfraSettings
from modelsvc.catalog import CatalogError, load
from modelsvc.catalog.gateway_settings import SETTINGS as GATEWAY_SETTINGS


def cmd_serve(args) -> int:
    try:
        serve(args.config, args.local, settings_from(vars(args)), host=args.host, port=args.port, workers=args.workers)
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
    p = render_plan(catalog, args.target, InfraSettings())
    write_plan(p, args.outdir)
    extra = write_monitoring_files(catalog, InfraSettings(), args.outdir)
    print(
        f"wrote {len(p.objects)} manifests and {len(p.releases)} Helm releases to {args.outdir} "
        f"(apply in dependency order with: sh {Path(args.outdir) / APPLY_SCRIPT}); "
        f"Prometheus rules and the Grafana dashboard also as plain files: {', '.join(str(x) for x in extra)}"
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
    """The gateway's flags, shared by `modelsvc serve` and the checkout's `dev` (devtools/dev.py): one per declared
    setting (modelsvc/catalog/gateway_settings.py), its default from its environment variable."""
    p.add_argument(
        "--local", default=local_default, help="local overlay: endpoints, stand-ins, demo keys (never deployed)"
    )
    for s in GATEWAY_SETTINGS:
        p.add_argument(
            s.flag,
            dest=s.name,
            type=s.parse,
            default=s.from_env(),
            choices=s.choices or None,
            help=f"{s.help} (env {s.env})",
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
