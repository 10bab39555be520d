"""Node-group sizes from the services' demand.

Demand of a pool = every instance (instances × one per replica) of every triton-backed service on it, each needing
its model's `gpus` on ONE node, plus build headroom: room for the pool's largest engine build beside them, so a
rebuild (a changed cache key) never waits for GPUs that the old pods hold. The same first-fit-decreasing packing the
catalog validator uses (modelsvc.catalog.rules.nodes_needed) gives the nodes needed, so a catalog that validates
always fits its node groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelsvc.catalog.rules import nodes_needed

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog, Model, Service


@dataclass(frozen=True)
class NodeGroupSize:
    min: int
    desired: int
    max: int


def is_deployed(catalog: Catalog, service: Service) -> bool:
    """Infra deploys Triton only for triton-backed models (openai-backed ones run elsewhere)."""
    return catalog.model_of(service).backend.value == "triton" and service.pool is not None


def triton_services(catalog: Catalog) -> list[Service]:
    return [s for s in catalog.services if is_deployed(catalog, s)]


def gpu_demand(catalog: Catalog) -> dict[str, list[int]]:
    """pool → GPUs of each instance placed on it (every pool present, possibly empty)."""
    out: dict[str, list[int]] = {name: [] for name in catalog.pools}
    for s in triton_services(catalog):
        out[s.pool].extend([catalog.model_of(s).gpus] * s.instances)
    return out


def build_gpus(catalog: Catalog, pool_name: str) -> int:
    """GPUs of the largest engine build on the pool (0 when nothing builds there)."""
    return max((catalog.model_of(s).gpus for s in triton_services(catalog) if s.pool == pool_name), default=0)


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
    return catalog.pools[pool_name].gpu_type or pool_name


def resources(model: Model) -> dict:
    """Container resources of one Triton instance: all its GPUs, plus host CPU/memory sized per GPU."""
    return {
        "limits": {"nvidia.com/gpu": str(model.gpus)},
        "requests": {"nvidia.com/gpu": str(model.gpus), "cpu": str(4 * model.gpus), "memory": f"{16 * model.gpus}Gi"},
    }
