"""`modelsvc review`: the Markdown review a pull request's services.yaml change gets."""

from __future__ import annotations

import argparse
import sys

from modelsvc.review import SourceError, review_sources


def cmd_review(args) -> int:
    try:
        r = review_sources(args.base, args.head, set(args.confirm_delete or []), set(args.confirm_change or []))
    except SourceError as e:
        print(f"modelsvc review: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(r.markdown)
    if not args.quiet:
        print(r.markdown, end="")
    return 0 if r.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("review", help="Markdown review of a services.yaml change (paths or git REV:PATH)")
    r.add_argument("base")
    r.add_argument("head")
    r.add_argument(
        "--confirm-delete",
        action="append",
        metavar="ACCESS_NAME",
        help="confirm the removal of this service (repeatable)",
    )
    r.add_argument(
        "--confirm-change",
        action="append",
        metavar="ACCESS_NAME_OR_KEY_ID",
        help="confirm the changes callers will notice on this access name or key (repeatable)",
    )
    r.add_argument("--output", help="also write the Markdown to this file")
    r.add_argument("--quiet", action="store_true", help="write only --output, print nothing (CI logs)")
    r.set_defaults(func=cmd_review)
