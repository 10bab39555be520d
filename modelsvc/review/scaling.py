"""The autoscaling part of the diff: each service's changed scaling range or target, and GPUs per pool at the minimum
and at the worst case (every autoscaled service at max_instances), before and after."""

from __future__ import annotations

from modelsvc.catalog import Catalog, Service
from modelsvc.catalog.capacity import deployed_gpus, pool_gpus

from .changes import Change, Kind, Section, Value


def _scaling(catalog: Catalog, s: Service) -> dict[str, Value]:
    a = s.autoscale
    return {
        "instances": s.instances,
        "peak": s.peak_instances,
        "metric": a.metric.value if a else None,
        "target": a.target if a else None,
        "scale_down_delay": a.scale_down_delay if a else None,
        "peak_gpus": deployed_gpus(catalog, s, peak=True),
    }


def scaling_changes(base: Catalog, head: Catalog) -> list[Change]:
    """Changes of the Autoscaling section: none when neither side autoscales anything."""
    if not any(s.autoscale for c in (base, head) for s in c.services):
        return []
    out = []
    base_by_id = {s.id: s for s in base.services}
    for s in head.services:
        old = base_by_id.get(s.id)
        if old is None or (old.instances, old.peak_instances, old.autoscale) == (
            s.instances,
            s.peak_instances,
            s.autoscale,
        ):
            continue
        out.append(
            Change(
                Kind.scaling,
                Section.autoscaling,
                old.access_name,
                (s.access_name,),
                before=_scaling(base, old),
                after=_scaling(head, s),
            )
        )
    b, h = pool_gpus(base), pool_gpus(head)
    for pool in sorted(set(b) | set(h)):
        (b_lo, b_hi), (h_lo, h_hi) = b.get(pool, (0, 0)), h.get(pool, (0, 0))
        if (b_lo, b_hi) == (h_lo, h_hi):
            continue  # like the capacity table: unchanged pools stay out
        capacity = head.pools[pool].gpus_per_node * head.pools[pool].max_nodes if pool in head.pools else 0
        out.append(
            Change(
                Kind.pool_peak,
                Section.autoscaling,
                pool,
                before={"min": b_lo, "max": b_hi},
                after={"min": h_lo, "max": h_hi, "capacity": capacity},
            )
        )
    return out
