"""GPU arithmetic: the one place that says what is deployed where and how many nodes it needs.

A service is *deployed* (infra runs Triton pods for it, and they hold GPUs) when its model is triton-backed and it
names a pool; openai-backed services run elsewhere and hold none. Demand of a pool = every instance of every deployed
service on it, each needing its model's `gpus` on ONE node, plus build headroom: room for the pool's largest engine
build beside them, so a rebuild (a changed cache key) never waits for GPUs that the old pods hold. The validator
(rules.py, on the raw file), infra's node groups and the review all count with the functions here, so a catalog that
validates always fits its node groups and the review shows what infra will do.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .model import Backend

if TYPE_CHECKING:
    from . import Catalog
    from .model import Service


@dataclass(frozen=True)
class NodeGroupSize:
    min: int
    desired: int
    max: int


@dataclass(frozen=True)
class PoolUsage:
    instances: int  # deployed instances on the pool (at `instances`, not at the autoscaling peak)
    gpus: int
    nodes: int  # nodes they need, with room for the pool's largest engine build beside them


def is_deployed(catalog: Catalog, service: Service) -> bool:
    """Infra deploys Triton only for triton-backed models on a pool (openai-backed ones run elsewhere). A reference
    the validator refuses (an undefined model or pool: the review still diffs such a file) deploys nothing."""
    model = catalog.models.get(service.model)
    return model is not None and model.backend is Backend.triton and service.pool in catalog.pools


def deployed_services(catalog: Catalog) -> list[Service]:
    return list(_deployed(catalog))


# The last catalog's deployed services and largest build per pool: infra asks for them once per service, and a
# catalog is frozen, so the answers for the same object never change (without this, rendering is quadratic in the
# number of services: ~20 s for 3000).
_memo: tuple[Catalog, tuple[Service, ...], dict[str, int]] | None = None


def _memoized(catalog: Catalog) -> tuple[tuple[Service, ...], dict[str, int]]:
    global _memo
    if _memo is None or _memo[0] is not catalog:
        deployed = tuple(s for s in catalog.services if is_deployed(catalog, s))
        builds: dict[str, int] = {}
        for s in deployed:
            assert s.pool is not None  # deployed
            builds[s.pool] = max(builds.get(s.pool, 0), catalog.model_of(s).gpus)
        _memo = (catalog, deployed, builds)
    return _memo[1], _memo[2]


def _deployed(catalog: Catalog) -> tuple[Service, ...]:
    return _memoized(catalog)[0]


def gpus_per_instance(catalog: Catalog, service: Service) -> int:
    """GPUs one instance of the service holds (0 for a service infra does not deploy)."""
    return catalog.model_of(service).gpus if is_deployed(catalog, service) else 0


def deployed_gpus(catalog: Catalog, service: Service, *, peak: bool = False) -> int:
    """GPUs the service holds: at `instances`, or with peak=True at its autoscaling maximum."""
    return gpus_per_instance(catalog, service) * (service.peak_instances if peak else service.instances)


def gpu_demand(catalog: Catalog) -> dict[str, list[int]]:
    """pool → GPUs of each instance placed on it (every pool present, possibly empty)."""
    out: dict[str, list[int]] = {name: [] for name in catalog.pools}
    for s in _deployed(catalog):
        assert s.pool is not None  # deployed
        out[s.pool].extend([catalog.model_of(s).gpus] * s.instances)
    return out


def pool_gpus(catalog: Catalog) -> dict[str, tuple[int, int]]:
    """pool → (GPUs at instances, GPUs at peak), over the pools some deployed service uses."""
    out: dict[str, tuple[int, int]] = {}
    for s in _deployed(catalog):
        assert s.pool is not None
        low, high = out.get(s.pool, (0, 0))
        out[s.pool] = (low + deployed_gpus(catalog, s), high + deployed_gpus(catalog, s, peak=True))
    return out


def build_gpus(catalog: Catalog, pool_name: str) -> int:
    """GPUs of the largest engine build on the pool (0 when nothing builds there; services at 0 instances build)."""
    return _memoized(catalog)[1].get(pool_name, 0)


def pool_usage(catalog: Catalog) -> dict[str, PoolUsage]:
    """pool → its deployed instances, their GPUs and the nodes they need (with build room), over the pools used."""
    demand = gpu_demand(catalog)
    return {
        p: PoolUsage(len(g), sum(g), nodes_needed(g, catalog.pools[p].gpus_per_node, build_gpus(catalog, p)))
        for p, g in demand.items()
        if g or build_gpus(catalog, p)
    }


def node_group_size(catalog: Catalog, pool_name: str) -> NodeGroupSize:
    """min = nodes the instances need; desired = that plus build headroom, the group's size at creation (GPU nodes
    take minutes to join, so the headroom starts running; it is often free GPUs on the instances' nodes and costs no
    extra node; afterwards the cluster autoscaler owns desired, infra/aws.py); max = the pool's max_nodes (never
    below desired, and at least 1 as EKS requires)."""
    pool = catalog.pools[pool_name]
    demand = gpu_demand(catalog)[pool_name]
    running = nodes_needed(demand, pool.gpus_per_node)
    with_build = nodes_needed(demand, pool.gpus_per_node, build_gpus(catalog, pool_name))
    return NodeGroupSize(min=running, desired=with_build, max=max(pool.max_nodes, with_build, 1))


def node_group_sizes(catalog: Catalog) -> dict[str, NodeGroupSize]:
    return {name: node_group_size(catalog, name) for name in catalog.pools}


def gpu_type(catalog: Catalog, pool_name: str) -> str:
    """The pool's GPU model (part of the engine cache key): its gpu_type, else its name."""
    return catalog.pools[pool_name].gpu_type or pool_name


def nodes_needed(gpus_per_instance: list[int], gpus_per_node: int, build_gpus: int = 0) -> int:
    """First-fit decreasing: how many nodes the instances occupy (no instance spans nodes), plus, with build_gpus,
    room for one engine build of that many GPUs beside them.

    The same answer as placing each instance, largest first, on the first node (in opening order) with room, but
    without scanning every node per instance (quadratic: 80,000 instances took seconds). Identical sizes are placed
    in bulk, and open nodes are kept in one min-heap of node indices per free-GPU count, so "the first node with
    room for g" is the smallest heap top among the free counts >= g (at most gpus_per_node + 1 of them)."""
    by_free: dict[int, list[int]] = {}  # free GPUs (> 0) → heap of the indices of the nodes with that many free
    nodes = 0
    sizes = Counter(gpus_per_instance)
    if build_gpus:
        sizes[build_gpus] += 1
    for g, k in sorted(sizes.items(), reverse=True):
        if g <= 0:  # takes no room: fits anywhere, only needs a node to exist
            nodes = max(nodes, 1)
            continue
        while k:
            first = None  # free count whose heap holds the first node with room
            for free, heap in by_free.items():
                if heap and free >= g and (first is None or heap[0] < by_free[first][0]):
                    first = free
            if first is None:  # no room anywhere: open nodes, each filled with as many as fit
                per = gpus_per_node // g
                if per <= 0:  # bigger than a node (validation reports it): one node each, never reused
                    nodes += k
                    break
                full, rest = divmod(k, per)
                for left, count in ((gpus_per_node - per * g, full), (gpus_per_node - rest * g, 1 if rest else 0)):
                    for _ in range(count):
                        if left > 0:
                            heapq.heappush(by_free.setdefault(left, []), nodes)
                        nodes += 1
                break
            node = heapq.heappop(by_free[first])
            placed = min(k, first // g)  # later instances of this size land on the same node while it has room
            k -= placed
            left = first - placed * g
            if left > 0:
                heapq.heappush(by_free.setdefault(left, []), node)
    return nodes
