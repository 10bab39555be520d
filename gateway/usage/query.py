"""OpenAI's usage API shape over the stores' per-minute rows: buckets, grouping and pages, in one place for every
store (the local file and PostgreSQL give the same rows, so they give the same answers)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from ..errors import InvalidRequest
from .record import COMPLETION_ENDPOINTS, IMAGE_ENDPOINTS

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, max) buckets per page, as OpenAI's
GROUP_FIELDS = {"model": 2, "api_key_id": 3}  # → index in a minute row (access name, key id)
KINDS = {"completions": COMPLETION_ENDPOINTS, "images": IMAGE_ENDPOINTS}


@dataclass(frozen=True)
class UsageQuery:
    kind: str  # "completions" | "images"
    start: int  # first bucket's start (aligned to the width)
    end: int  # exclusive
    since: int  # the caller's start_time: records before it are not counted
    width: str
    group_by: tuple[str, ...]
    limit: int
    models: tuple[str, ...] = ()
    api_key_ids: tuple[str, ...] = ()


MAX_TIME = 1 << 36  # unix seconds, year ~4147: anything later is a mistake, not a query


def _int(args, name: str, minimum: int = 0, maximum: int = MAX_TIME) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer", param=name, code="invalid_value") from None
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"'{name}' must be between {minimum} and {maximum}", param=name, code="invalid_value")
    return value


def _required_time(args, name: str) -> int:
    value = _int(args, name)
    if value is None:
        raise InvalidRequest(
            f"'{name}' is required (a Unix time in seconds)", param=name, code="missing_required_parameter"
        )
    return value


def _list(args, name: str) -> tuple[str, ...]:
    """Arrays as the SDKs send them (`name[]=a&name[]=b`, repeated `name=`) or comma-separated."""
    values = list(args.getlist(name, []) or []) + list(args.getlist(name + "[]", []) or [])
    return tuple(v for raw in values for v in raw.split(",") if v)


def parse(kind: str, args, now: float | None = None) -> UsageQuery:
    since = _required_time(args, "start_time")
    end_time = _int(args, "end_time")
    now_s = int(now if now is not None else time.time())
    end = end_time if end_time is not None else now_s + 1
    if end <= since:
        raise InvalidRequest("'end_time' must be after 'start_time'", param="end_time", code="invalid_value")
    width = args.get("bucket_width") or "1d"
    if width not in WIDTHS:
        raise InvalidRequest(
            f"'bucket_width' must be one of {', '.join(WIDTHS)}", param="bucket_width", code="invalid_value"
        )
    group_by = _list(args, "group_by")
    for g in group_by:
        if g not in GROUP_FIELDS:
            raise InvalidRequest(
                f"'group_by' supports {', '.join(GROUP_FIELDS)}; got '{g[:40]}'", param="group_by", code="invalid_value"
            )
    default, most = LIMITS[width]
    asked = _int(args, "limit", minimum=1)
    limit = default if asked is None else asked
    if limit > most:
        raise InvalidRequest(f"'limit' is at most {most} for bucket_width={width}", param="limit", code="invalid_value")
    w = WIDTHS[width]
    start = since // w * w
    page = args.get("page")
    if page:  # the opaque cursor we hand out: the start of the next bucket
        try:
            start = int(page[:16], 16)
        except ValueError:
            raise InvalidRequest(
                "'page' is not a cursor this API returned", param="page", code="invalid_value"
            ) from None
        if start % w or start < since // w * w:
            raise InvalidRequest("'page' is not a cursor this API returned", param="page", code="invalid_value")
    return UsageQuery(
        kind,
        start,
        end,
        since,
        width,
        tuple(dict.fromkeys(group_by)),
        limit,
        _list(args, "models"),
        _list(args, "api_key_ids"),
    )


def window(q: UsageQuery) -> tuple[int, int, bool]:
    """[since, until) of the records this page counts, and whether more buckets follow."""
    w = WIDTHS[q.width]
    n = -(-(q.end - q.start) // w)
    until = min(q.end, q.start + q.limit * w)
    return max(q.since, q.start), until, n > q.limit


def page(q: UsageQuery, rows: list[tuple]) -> dict:
    """OpenAI's page object from the minute rows (minute, service_id, access_name, key_id, endpoint, requests,
    prompt, completion, images) of `window(q)`."""
    w = WIDTHS[q.width]
    _, until, more = window(q)
    endpoints = KINDS[q.kind]
    sums: dict[int, dict[tuple, list[int]]] = collections.defaultdict(
        lambda: collections.defaultdict(lambda: [0, 0, 0, 0])
    )
    for r in rows:
        if (
            r[4] not in endpoints
            or (q.models and r[2] not in q.models)
            or (q.api_key_ids and r[3] not in q.api_key_ids)
        ):
            continue
        s = sums[r[0] // w * w][tuple(r[GROUP_FIELDS[g]] for g in q.group_by)]
        for i in range(4):
            s[i] += r[5 + i]
    data = []
    for b in range(q.start, until, w):
        results = []
        for key, (n, prompt, completion, images) in sorted(sums.get(b, {}).items()):
            grouped = dict(zip(q.group_by, key))
            res: dict = {"object": f"organization.usage.{q.kind}.result"}
            if q.kind == "completions":
                res.update(
                    input_tokens=prompt,
                    output_tokens=completion,
                    input_cached_tokens=0,
                    input_audio_tokens=0,
                    output_audio_tokens=0,
                    num_model_requests=n,
                    batch=None,
                )
            else:
                res.update(images=images, num_model_requests=n, source=None, size=None)
            res.update(project_id=None, user_id=None, api_key_id=grouped.get("api_key_id"), model=grouped.get("model"))
            results.append(res)
        data.append({"object": "bucket", "start_time": b, "end_time": min(b + w, q.end), "results": results})
    return {"object": "page", "data": data, "has_more": more, "next_page": format(until, "x") if more else None}


def service_totals(rows: list[tuple]) -> list[dict]:
    """Invoice lines: one per service id (its access names, requests, tokens and images)."""
    out: dict[str, dict] = {}
    for _, service_id, access_name, _, _endpoint, n, prompt, completion, images in rows:
        t = out.setdefault(
            service_id,
            {
                "service_id": service_id,
                "access_names": set(),
                "requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "images": 0,
            },
        )
        t["access_names"].add(access_name)
        t["requests"] += n
        t["prompt_tokens"] += prompt
        t["completion_tokens"] += completion
        t["images"] += images
    return [
        {**t, "access_names": sorted(t["access_names"]), "total_tokens": t["prompt_tokens"] + t["completion_tokens"]}
        for _, t in sorted(out.items())
    ]
