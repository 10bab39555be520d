"""`modelsvc`: validate, review, edit, render and serve services.yaml.

One module per command family; each registers its subcommands with `register(sub)`, listed once in FAMILIES.
"""

from __future__ import annotations

import argparse
import sys

from . import catalog, edits, modelrepo, review, run, usage

FAMILIES = (catalog, review, edits, modelrepo, run, usage)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelsvc", description="GitOps for self-hosted LLM model services.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in FAMILIES:
        family.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tool = {"standin": "devtools.standin", "dev": "devtools.dev"}.get(argv[0] if argv else "")
    if tool is not None:  # everything after it belongs to the tool's own parser
        return run.run_devtool(tool, argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)
