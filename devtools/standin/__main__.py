"""CLI: ``python -m devtools.standin --port 8001 --profile chat [--host H] [--token-delay S] [--no-decoupled]
[--model-repo DIR]``. The models are NVIDIA's real configs as ``infra.modelrepo`` builds them.

Prints one line ("stand-in Triton engine ready ...") once it accepts connections, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from infra.modelrepo import RepoError

from .models import FAMILIES, PROFILES
from .server import MODES, StandInServer


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT, e.g. 64x64") from None
    if not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise argparse.ArgumentTypeError("width and height must be 1..4096")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.standin",
        description="STAND-IN Triton/TensorRT-LLM engine (real Triton gRPC protocol, deterministic fake output).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (0: pick a free one)")
    p.add_argument("--profile", choices=PROFILES, default="chat")
    p.add_argument("--token-delay", type=float, default=0.0, help="seconds per generated token / diffusion step")
    p.add_argument("--no-decoupled", dest="decoupled", action="store_false", help="non-decoupled models (no streaming)")
    p.add_argument(
        "--seed-input",
        choices=("seed", "random_seed", "none"),
        default="seed",
        help="name of the seed input (random_seed: older TensorRT-LLM releases; none: not declared)",
    )
    p.add_argument("--image-size", type=_size, default=(64, 64), metavar="WxH", help="image profile: output size")
    p.add_argument("--steps", type=int, default=4, help="image profile: diffusion steps")
    p.add_argument(
        "--model-repo",
        metavar="DIR",
        help="serve this model repository (written by `modelsvc model-repo`) instead of building the "
        "profile's from the pinned release's templates (MODELSVC_TRITON_TEMPLATES)",
    )
    p.add_argument(
        "--family",
        choices=sorted(FAMILIES),
        default=None,
        help="serve that family's real chat template (built into the configs, as from its tokenizer_config.json)",
    )
    p.add_argument(
        "--no-guided", dest="guided", action="store_false", help="build tensorrt_llm without a guided decoder"
    )
    p.add_argument("--mode", choices=[m for m in MODES if m], default=None, help="failure injection from the start")
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(args) -> None:
    server = StandInServer(
        args.profile,
        decoupled=args.decoupled,
        token_delay=args.token_delay,
        seed_name=None if args.seed_input == "none" else args.seed_input,
        image_width=args.image_size[0],
        image_height=args.image_size[1],
        steps=args.steps,
        mode=args.mode,
        model_repo=args.model_repo,
        family=args.family,
        guided=args.guided,
    )
    port = await server.start(args.host, args.port)
    print(
        f"stand-in Triton engine ready: profile={args.profile} models={','.join(server.models)} "
        f"grpc={args.host}:{port} decoupled={args.decoupled}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    await server.stop(2.0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (OSError, RepoError) as e:
        print(f"stand-in: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
