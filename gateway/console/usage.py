"""The console's usage page data: requests and tokens per hour (last 24 hours) and per day (last 30 days) of one
service id, and the month-to-date totals an invoice would show (the same numbers `modelsvc usage export` gives)."""

from __future__ import annotations

import datetime as dt
import time

from .charts import bar_chart

HOUR, DAY = 3600, 86400


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def month_start(now: float) -> int:
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    return int(d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


def window(now: float) -> tuple[int, int]:
    """[start, end) of the records the page needs."""
    end = int(now) // HOUR * HOUR + HOUR
    return min(int(now) // DAY * DAY - 29 * DAY, month_start(now)), end


def summarize(service_id: str, rows: list[tuple], now: float | None = None) -> dict:
    now = time.time() if now is None else now
    hour0 = int(now) // HOUR * HOUR - 23 * HOUR
    day0 = int(now) // DAY * DAY - 29 * DAY
    mstart = month_start(now)
    hourly = {hour0 + i * HOUR: [0, 0] for i in range(24)}
    daily = {day0 + i * DAY: [0, 0] for i in range(30)}
    invoice = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "images": 0}
    for minute, sid, _name, _key, _endpoint, n, prompt, completion, images in rows:
        if sid != service_id:
            continue
        for buckets, width in ((hourly, HOUR), (daily, DAY)):
            b = buckets.get(minute // width * width)
            if b is not None:
                b[0] += n
                b[1] += prompt + completion
        if minute >= mstart:
            invoice["requests"] += n
            invoice["prompt_tokens"] += prompt
            invoice["completion_tokens"] += completion
            invoice["images"] += images
    invoice["total_tokens"] = invoice["prompt_tokens"] + invoice["completion_tokens"]
    return {
        "service_id": service_id,
        "hourly": [{"start": s, "requests": v[0], "tokens": v[1]} for s, v in hourly.items()],
        "daily": [{"start": s, "requests": v[0], "tokens": v[1]} for s, v in daily.items()],
        "invoice": {
            **invoice,
            "from": _iso(mstart),
            "to": _iso(int(now)),
            "month": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m"),
        },
    }


CHARTS = {
    "hourly-requests": ("hourly", "requests", "Requests per hour, last 24 hours (UTC)"),
    "hourly-tokens": ("hourly", "tokens", "Tokens per hour, last 24 hours (UTC)"),
    "daily-requests": ("daily", "requests", "Requests per day, last 30 days (UTC)"),
    "daily-tokens": ("daily", "tokens", "Tokens per day, last 30 days (UTC)"),
}


def chart(summary: dict, name: str) -> str:
    series, field, title = CHARTS[name]
    points = summary[series]
    fmt = "%H:00" if series == "hourly" else "%m-%d"
    labels = [dt.datetime.fromtimestamp(p["start"], dt.UTC).strftime(fmt) for p in points]
    return bar_chart(title, labels, [p[field] for p in points], label_every=3 if series == "hourly" else 5)
