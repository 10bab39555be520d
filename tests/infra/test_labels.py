from infra import labels as L


def test_labels_have_recommended_keys_and_service_id():
    lab = L.labels("tritonserver", L.TRITON, "alice--chat", "ms-000000000001", "alice")
    for key in ("name", "instance", "component", "part-of", "managed-by"):
        assert f"app.kubernetes.io/{key}" in lab
    assert lab[L.SERVICE_ID] == "ms-000000000001"
    assert lab["app.kubernetes.io/part-of"] == "modelsvc"


def test_selector_is_subset_of_labels():
    lab = L.labels("tritonserver", L.TRITON, "x", "ms-000000000001")
    sel = L.selector("tritonserver", L.TRITON, "x")
    assert sel.items() <= lab.items()
    assert L.SERVICE_ID not in sel
