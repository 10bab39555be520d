from infra import labels as L
from infra.cache import service_cache_key
from infra.manifests import triton
from infra.manifests.common import GPU_TAINT_KEY
from infra.names import TRITON_GRPC_PORT, engine_job_name, k8s_name
from infra.settings import Settings

S = Settings()


def pod(obj):
    return obj["spec"]["template"]["spec"]


def test_deployment_replicas_gpus_placement(small):
    svc = small.service("alice/big")
    dep = triton.deployment(small, svc, S)
    assert dep["spec"]["replicas"] == 2
    spec = pod(dep)
    c = spec["containers"][0]
    assert c["image"] == "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert spec["nodeSelector"] == {L.POOL: "h100"}
    assert spec["tolerations"][0]["key"] == GPU_TAINT_KEY and spec["tolerations"][0]["effect"] == "NoSchedule"
    assert {p["containerPort"] for p in c["ports"]} == {8000, 8001, 8002}
    shm = next(v for v in spec["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "TRTLLM_ORCHESTRATOR", "value": "1"} in c["env"]  # multi-GPU → orchestrator mode
    assert pod(triton.deployment(small, small.service("alice/chat"), S))["containers"][0]["env"] == []


def test_probes(small):
    c = pod(triton.deployment(small, small.service("alice/chat"), S))["containers"][0]
    sp = c["startupProbe"]
    assert sp["httpGet"]["path"] == "/v2/health/ready"
    assert sp["periodSeconds"] * sp["failureThreshold"] >= 15 * 60
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_init_container_pulls_the_cached_repository(small):
    svc = small.service("alice/chat")
    init = pod(triton.deployment(small, svc, S))["initContainers"][0]
    env = {e["name"]: e["value"] for e in init["env"]}
    key = service_cache_key(small, svc, S)
    assert env["ENGINE_URI"] == f"s3://modelsvc-engines/engines/{key}"
    assert "/models/" in init["args"][0]


def test_headless_service_selects_the_pods(small):
    svc = small.service("alice/chat")
    s = triton.headless_service(small, svc, S)
    dep = triton.deployment(small, svc, S)
    assert s["spec"]["clusterIP"] == "None"
    assert s["metadata"]["name"] == k8s_name("alice/chat")
    assert s["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert s["spec"]["selector"].items() <= pod_labels(dep).items()
    assert TRITON_GRPC_PORT in [p["port"] for p in s["spec"]["ports"]]


def pod_labels(dep):
    return dep["spec"]["template"]["metadata"]["labels"]


def test_pdb(small):
    pdb = triton.pod_disruption_budget(small, small.service("alice/chat"), S)
    assert pdb["spec"]["maxUnavailable"] == 1


def test_job_name_follows_the_cache_key(small, make_catalog, small_text):
    svc = small.service("alice/chat")
    job = triton.engine_job(small, svc, S)
    key = service_cache_key(small, svc, S)
    assert job["metadata"]["name"] == engine_job_name(k8s_name("alice/chat"), key)
    assert job["metadata"]["labels"][L.CACHE_KEY] == key
    # instances change: same Job (reused); model change: new Job (rebuild)
    more = make_catalog(small_text.replace("instances: 3", "instances: 5"))
    assert triton.engine_job(more, more.service("alice/chat"), S)["metadata"]["name"] == job["metadata"]["name"]
    changed = make_catalog(small_text.replace("s3://example-models/small", "s3://example-models/small-v2"))
    assert triton.engine_job(changed, changed.service("alice/chat"), S)["metadata"]["name"] != job["metadata"]["name"]
    assert pod(job)["restartPolicy"] == "Never"
    build = pod(job)["initContainers"][1]
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "decoupled_mode:true" in build["args"][0]
