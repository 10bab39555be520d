"""`python -m bench`'s command line: the whole benchmark (bench/run.py) or CPU per request (bench/paired.py)."""

from __future__ import annotations

import argparse

from . import paired, run
from .procs import ROOT

run_doc = run.__doc__ or ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=run_doc.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="our paths only, small loads (< 1 min; CI)")
    mode.add_argument("--short", action="store_true", help="the quick loads, with the peers (LiteLLM, Portkey)")
    mode.add_argument("--cpu", action="store_true", help="CPU per request of every path, repeated (bench/paired.py)")
    ap.add_argument("--out", help="JSON results (default bench/results/latest.json; cpu.json for --cpu/--against)")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    ap.add_argument("--no-portkey", action="store_true", help="skip Portkey's AI Gateway")
    ap.add_argument("--workers-scaling", action="store_true", help="full run: also measure --workers 2")
    paired.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.cpu or args.against:
        if args.quick or args.short:
            ap.error("--cpu/--against are their own mode (not with --quick or --short)")
        args.out = args.out or str(ROOT / "bench" / "results" / "cpu.json")
        return paired.Paired(args).run()
    args.out = args.out or str(ROOT / "bench" / "results" / "latest.json")
    return run.Bench(args).run()
