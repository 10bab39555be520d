from modelsvc.catalog.capacity import build_gpus, deployed_services, gpu_demand, node_group_size, node_group_sizes


def test_openai_backed_services_are_not_deployed(small):
    assert [s.access_name for s in deployed_services(small)] == ["alice/chat", "alice/big", "bob/chat"]


def test_demand_per_pool(small):
    demand = gpu_demand(small)
    assert sorted(demand["h100"]) == [1, 1, 1, 4, 4]
    assert demand["l4"] == [1, 1]
    assert demand["idle"] == []


def test_node_group_sizes_bin_pack(small):
    # h100: 4+4 on one node, 1+1+1 on another → 2 nodes; l4: 1+1 on one node; idle pool: 0.
    sizes = node_group_sizes(small)
    assert (sizes["h100"].min, sizes["h100"].desired, sizes["h100"].max) == (2, 2, 4)
    assert (sizes["l4"].min, sizes["l4"].desired, sizes["l4"].max) == (1, 1, 6)
    assert (sizes["idle"].min, sizes["idle"].desired, sizes["idle"].max) == (0, 0, 2)


def test_example_catalog(example):
    # h100: test (1 GPU) + support-bot 2×4 GPUs → 9 GPUs → 2 nodes of 8; l4: 2×1 + 1×1 → 1 node of 4.
    assert node_group_size(example, "h100").desired == 2
    assert node_group_size(example, "l4").desired == 1


def test_build_headroom_beside_the_running_instances(make_catalog, small_text):
    # h100 (8 GPUs/node): alice/big 2×4 fills one node; rebuilding its 4-GPU engine needs room beside them.
    catalog = make_catalog(small_text.replace("instances: 3\n", "instances: 0\n", 1))
    assert build_gpus(catalog, "h100") == 4 and build_gpus(catalog, "idle") == 0
    size = node_group_size(catalog, "h100")
    assert (size.min, size.desired, size.max) == (1, 2, 4)  # min: what runs; desired: + room for one build
