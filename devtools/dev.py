"""`./dev serve` (or `modelsvc dev` in a checkout): the stand-in engines the local overlay names, then the gateway on
services.yaml; every stand-in is stopped when the gateway exits.

    python -m devtools.dev [--local local.yaml] [gateway flags of `modelsvc serve`]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from gateway.config import OverlayError, StandinSpec, load_overlay
from modelsvc.catalog import CatalogError, load
from modelsvc.cli.run import add_serve_arguments, cmd_serve


def standin_command(spec: StandinSpec) -> list[str]:
    if spec.profile == "openai":
        return [sys.executable, "-m", "devtools.standin.openai_upstream", "--port", str(spec.port),
                "--token-delay", str(spec.token_delay)]  # fmt: skip
    cmd = [sys.executable, "-m", "devtools.standin", "--port", str(spec.port), "--profile", spec.profile,
           "--token-delay", str(spec.token_delay)]  # fmt: skip
    if spec.family:
        cmd += ["--family", spec.family]
    return cmd if spec.decoupled else [*cmd, "--no-decoupled"]


def _try_it(args, catalog, overlay) -> None:
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}/v1"
    if not overlay.demo_keys:
        return
    demo = overlay.demo_keys[0]
    svc = next(iter(catalog.services_of(demo.owner)), None)
    print(f"\nGateway on {base} — demo key for {demo.owner} (local only): {demo.key}")
    if svc:
        print(
            f"Try it:\n  curl {base}/chat/completions -H 'Authorization: Bearer {demo.key}' "
            f'-H \'Content-Type: application/json\' -d \'{{"model": "{svc.access_name}", "messages": '
            f'[{{"role": "user", "content": "Hello!"}}], "temperature": 0.7}}\'\n',
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dev", description="stand-in engines from local.yaml, then the gateway")
    add_serve_arguments(p, local_default="local.yaml")
    args = p.parse_args(argv)
    try:
        catalog = load(args.config)
        overlay = load_overlay(args.local, catalog)
    except (CatalogError, OverlayError) as e:
        print(e, file=sys.stderr)
        return 1
    procs: list[subprocess.Popen] = []
    try:
        for spec in overlay.standins:
            procs.append(subprocess.Popen(standin_command(spec), stdout=subprocess.PIPE, text=True))
        for spec, proc in zip(overlay.standins, procs):
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                print(f"stand-in {spec.name} failed to start", file=sys.stderr)
                return 1
            print(f"[{spec.name}] {line.strip()}")
        _try_it(args, catalog, overlay)
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


if __name__ == "__main__":
    sys.exit(main())
