"""The review's autoscaling section: GPUs per pool at the minimum and at the worst case (every autoscaled service at
max_instances), before and after, and each service's changed scaling range."""

from __future__ import annotations

from modelsvc.catalog import Catalog
from modelsvc.catalog.capacity import pool_gpus

from .markdown import code


def _range(s) -> str:
    return f"{s.instances}" if s.autoscale is None else f"{s.instances}–{s.peak_instances}"


def autoscaling_section(base: Catalog, head: Catalog) -> list[tuple[str, list[str]]]:
    """[("Autoscaling", Markdown lines)], or [] when neither side autoscales anything."""
    if not any(s.autoscale for c in (base, head) for s in c.services):
        return []
    lines = []
    base_by_id = {s.id: s for s in base.services}
    for s in head.services:
        old = base_by_id.get(s.id)
        if old is None or (old.instances, old.peak_instances, old.autoscale) == (
            s.instances,
            s.peak_instances,
            s.autoscale,
        ):
            continue
        g = head.model_of(s).gpus
        delta = (s.peak_instances - old.peak_instances) * g
        before, after = _range(old), _range(s)
        what = f"instances {before} → {after}" if before != after else f"instances {after}"
        a, b = old.autoscale, s.autoscale
        if a and b and (a.metric, a.target, a.scale_down_delay) != (b.metric, b.target, b.scale_down_delay):
            what += (
                f"; {a.metric.value} target {a.target:g} → {b.metric.value} target {b.target:g}, "
                f"scale down after {a.scale_down_delay} → {b.scale_down_delay}"
            )
        lines.append(f"- {code(s.access_name)}: {what} ({delta:+d} GPU(s) at peak)")
    b, h = pool_gpus(base), pool_gpus(head)
    rows = []
    for pool in sorted(set(b) | set(h)):
        (b_lo, b_hi), (h_lo, h_hi) = b.get(pool, (0, 0)), h.get(pool, (0, 0))
        if (b_lo, b_hi) == (h_lo, h_hi):
            continue  # like the capacity table: unchanged pools stay out
        capacity = head.pools[pool].gpus_per_node * head.pools[pool].max_nodes if pool in head.pools else 0
        rows.append(f"| {code(pool, cell=True)} | {b_lo} → {b_hi} | {h_lo} → {h_hi} | {h_hi - b_hi:+d} | {capacity} |")
    if not rows:
        return [("Autoscaling", lines + ["- GPUs per pool: no change"])]
    lines += [""] * bool(lines) + [
        "GPUs per pool, min → max (every autoscaled service at max_instances):",
        "",
        "| pool | before | after | worst-case change | pool GPUs at max_nodes |",
        "|---|---|---|---|---|",
        *rows,
    ]
    return [("Autoscaling", lines)]
