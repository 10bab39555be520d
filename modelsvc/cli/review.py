"""`modelsvc review`: the Markdown review a pull request's services.yaml change gets."""

from __future__ import annotations

import argparse
import sys

from modelsvc.catalog import CatalogError
from modelsvc.review import Confirm, Confirmation, Review, SourceError, name_history, review_git, review_sources


def _confirmations(args: argparse.Namespace) -> list[Confirmation]:
    out = []
    for kind, tokens in ((Confirm.delete, args.confirm_delete), (Confirm.change, args.confirm_change)):
        for t in tokens or []:
            try:
                out.append(Confirmation.parse(kind, t))
            except ValueError as e:
                raise SourceError(f"--confirm-{kind.value.lower()} {t!r}: {e}") from None
    return out


def _run(args: argparse.Namespace) -> Review:
    confirmations = _confirmations(args)
    if args.catalog_from:  # base and head are revisions; the stack file says which file each deploys
        return review_git(
            args.base, args.head, confirmations, stack_file=args.catalog_from, history_days=args.history_days
        )
    history = None
    if ":" in args.base and args.history_days > 0:  # a git revision: who held each name recently
        rev, path = args.base.split(":", 1)
        history = name_history(rev, path, days=args.history_days)
    return review_sources(args.base, args.head, confirmations, history=history)


def cmd_review(args: argparse.Namespace) -> int:
    try:
        r = _run(args)
    except (SourceError, CatalogError) as e:
        print(f"modelsvc review: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(r.markdown)
    if args.comment_output:
        with open(args.comment_output, "w", encoding="utf-8") as f:
            f.write(r.comment)
    if not args.quiet:
        print(r.markdown, end="")
    return 0 if r.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("review", help="Markdown review of a services.yaml change (paths or git REV:PATH)")
    r.add_argument("base", help="path or git REV:PATH (with --catalog-from: a revision)")
    r.add_argument("head", help="path or git REV:PATH (with --catalog-from: a revision or tree)")
    r.add_argument(
        "--confirm-delete",
        action="append",
        metavar="ACCESS_NAME@DIGEST",
        help="confirm the removal of this service, as the review names it (repeatable)",
    )
    r.add_argument(
        "--confirm-change",
        action="append",
        metavar="SUBJECT@DIGEST",
        help="confirm the changes callers will notice on this subject, as the review names them (repeatable)",
    )
    r.add_argument(
        "--catalog-from",
        metavar="STACK_FILE",
        help="review the file this stack file's modelsvc:catalog names at each revision (e.g. Pulumi.prod.yaml)",
    )
    r.add_argument(
        "--history-days",
        type=int,
        default=90,
        metavar="N",
        help="with git revisions: flag an access name another service id held in the base's last N days (0: off)",
    )
    r.add_argument("--output", help="also write the whole review to this file")
    r.add_argument("--comment-output", help="write the pull request comment (summarised when too long) here")
    r.add_argument("--quiet", action="store_true", help="write only the output files, print nothing (CI logs)")
    r.set_defaults(func=cmd_review)
