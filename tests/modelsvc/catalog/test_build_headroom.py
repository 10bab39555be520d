"""The capacity rule keeps room for one engine build beside the running instances (a rebuild must never wait for
GPUs that the old pods hold)."""

import pytest

from modelsvc.catalog import CatalogError, loads
from modelsvc.catalog.capacity import nodes_needed

from .samples import VALID, replace


def test_instances_that_fill_the_pool_leave_no_room_to_build():
    # 4 × 4 GPUs fill both 8-GPU nodes exactly: running fits, a rebuild of the 4-GPU engine would not.
    full = replace(
        replace(VALID, "    instances: 2\n", "    instances: 4\n"), "    instances: 1\n", "    instances: 0\n"
    )
    with pytest.raises(CatalogError) as e:
        loads(full)
    assert "pool 'h100' needs 3 nodes for 4 instances (16 GPUs) and room to build a 4-GPU engine" in str(e.value)
    assert "raise max_nodes to 3" in str(e.value)
    loads(replace(full, "    max_nodes: 2\n", "    max_nodes: 3\n"))  # with room for the build it validates


def test_build_room_is_often_free_gpus_on_the_instances_nodes():
    assert nodes_needed([4, 1], 8) == nodes_needed([4, 1], 8, build_gpus=1) == 1
    assert nodes_needed([4, 4], 8, build_gpus=4) == 2
    assert nodes_needed([], 8, build_gpus=2) == 1  # services scaled to 0 still build
