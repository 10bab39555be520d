"""The edits a pull request carries: create, scale, delete (in place, comments and formatting kept)."""

from __future__ import annotations

import argparse
import os
import sys

from modelsvc.catalog import loads
from modelsvc.catalog.edit import EditError, create, delete, scale
from modelsvc.review import review

from .common import DEFAULT_FILE


def _write_edit(args, do, *, show_review: bool = False) -> int:
    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    try:
        new_text, new = do(text)
    except EditError as e:
        print(f"modelsvc: {e}", file=sys.stderr)
        return 1
    tmp = args.file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new_text)
    os.replace(tmp, args.file)  # atomic: a crash never leaves half a file
    if show_review:  # what the pull request's review will show for this edit
        print(review(loads(text, args.file), new).markdown, end="")
    return 0


def cmd_create(args) -> int:
    rc = _write_edit(
        args,
        lambda t: create(
            t,
            args.file,
            name=args.name,
            owner=args.owner,
            model=args.model,
            instances=args.instances,
            pool=args.pool,
            access_name=args.access_name,
            max_instances=args.max_instances,
        ),
        show_review=True,
    )
    if rc == 0:
        print(f"\nadded to {args.file}; commit it and open a pull request", file=sys.stderr)
    return rc


def cmd_scale(args) -> int:
    rc = _write_edit(
        args, lambda t: scale(t, args.file, args.access_name, to=args.to, add=args.add, max_instances=args.max)
    )
    if rc == 0:
        print(f"{args.access_name}: instances updated in {args.file}")
    return rc


def cmd_delete(args) -> int:
    rc = _write_edit(args, lambda t: delete(t, args.file, args.access_name, args.confirm))
    if rc == 0:
        print(f"{args.access_name}: removed from {args.file}; its review asks for a Confirm-Delete line naming it")
    return rc


def register(sub: argparse._SubParsersAction) -> None:
    cr = sub.add_parser("create", help="append a new service (fresh id) in place; print what the review will show")
    cr.add_argument("--name", required=True, help="display name")
    cr.add_argument("--owner", required=True, help="owner (needs a key under keys:)")
    cr.add_argument("--model", required=True)
    cr.add_argument("--instances", type=int, default=1, metavar="K")
    cr.add_argument("--pool", metavar="P", help="GPU pool (default: the only pool, if there is one)")
    cr.add_argument("--access-name", metavar="OWNER/NAME", help="default: <owner>/<name as a slug>")
    cr.add_argument(
        "--max-instances", type=int, metavar="M", help="autoscale between --instances (the minimum) and M on load"
    )
    cr.add_argument("--file", default=DEFAULT_FILE)
    cr.set_defaults(func=cmd_create)

    s = sub.add_parser("scale", help="change a service's instance count in place")
    s.add_argument("access_name")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--to", type=int, metavar="N", help="instances (an autoscaled service's minimum)")
    g.add_argument("--add", type=int, metavar="N", help="negative to remove instances")
    s.add_argument("--max", type=int, metavar="M", help="an autoscaled service's most instances")
    s.add_argument("--file", default=DEFAULT_FILE)
    s.set_defaults(func=cmd_scale)

    d = sub.add_parser("delete", help="remove a service in place (type its access name to confirm)")
    d.add_argument("access_name")
    d.add_argument("--confirm", required=True, metavar="ACCESS_NAME")
    d.add_argument("--file", default=DEFAULT_FILE)
    d.set_defaults(func=cmd_delete)
