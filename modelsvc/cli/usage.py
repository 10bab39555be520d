"""`modelsvc usage export`: invoice lines per service id from the usage store (PostgreSQL or the local file)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import sys

from gateway.usage.postgres import PostgresStore
from gateway.usage.query import service_totals
from gateway.usage.sink import indexed_minute_rows

FIELDS = [
    "service_id",
    "access_names",
    "from",
    "to",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "images",
]


def _when(text: str) -> int:
    """Unix seconds, or an ISO date/time read as UTC (2026-11-01, 2026-11-01T12:00)."""
    if text.isdigit():
        return int(text)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        problem = f"modelsvc usage export: '{text}' is not a date (YYYY-MM-DD[THH:MM]) or Unix seconds"
        raise SystemExit(problem) from None
    return int((t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp())


async def _rows(store: str | None, log_path: str, start: int, end: int) -> list[tuple]:
    if not store:
        return indexed_minute_rows(log_path, None, start, end)
    pg = PostgresStore(store)
    try:
        return await pg.minute_rows(None, start, end)
    finally:
        await pg.close()


def cmd_export(args) -> int:
    start, end = _when(args.from_), _when(args.to)
    if end <= start:
        print("modelsvc usage export: --to must be after --from", file=sys.stderr)
        return 2
    try:
        rows = asyncio.run(_rows(args.store, args.usage_log, start, end))
    except Exception as e:
        print(f"modelsvc usage export: cannot read the usage store: {e}", file=sys.stderr)
        return 1
    lines = [t for t in service_totals(rows) if not args.service or t["service_id"] in args.service]
    iso = lambda s: dt.datetime.fromtimestamp(s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    out = [{**t, "access_names": " ".join(t["access_names"]), "from": iso(start), "to": iso(end)} for t in lines]
    if args.format == "json":
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        w = csv.DictWriter(sys.stdout, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    return 0


def register(sub) -> None:
    u = sub.add_parser("usage", help="usage records: invoice exports")
    usub = u.add_subparsers(dest="usage_command", required=True, metavar="USAGE_COMMAND")
    e = usub.add_parser("export", help="requests, tokens and images per service id in [--from, --to)")
    e.add_argument("--from", dest="from_", required=True, metavar="WHEN", help="YYYY-MM-DD[THH:MM] (UTC) or Unix s")
    e.add_argument("--to", required=True, metavar="WHEN", help="exclusive end, same forms")
    e.add_argument("--format", choices=["csv", "json"], default="csv")
    e.add_argument("--service", action="append", metavar="SERVICE_ID", help="only this service id (repeatable)")
    e.add_argument(
        "--store",
        default=os.environ.get("MODELSVC_USAGE_STORE"),
        help="postgresql://… (default: $MODELSVC_USAGE_STORE; without it, the local --usage-log)",
    )
    e.add_argument("--usage-log", default=os.environ.get("MODELSVC_USAGE_LOG", "var/usage.jsonl"))
    e.set_defaults(func=cmd_export)
