import json

import pytest

from infra import labels as L
from infra.cache import engine_builds, service_cache_key
from infra.manifests import scripts, triton
from infra.manifests.common import GPU_TAINT_KEY
from infra.modelrepo import RepoSpec
from infra.plan import key_of, plan
from infra.settings import Settings
from modelsvc.catalog.names import TRITON_GRPC_PORT, engine_job_name, k8s_name

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
    # any value of the taint: clusters usually taint nvidia.com/gpu:NoSchedule without one
    assert spec["tolerations"] == [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "modelsvc-triton"
    assert {p["containerPort"] for p in c["ports"]} == {8000, 8001, 8002}
    shm = next(v for v in spec["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert c["command"][0] == "mpirun"  # multi-GPU → leader mode (test_leader_mode)
    assert "TRTLLM_ORCHESTRATOR" not in str(c["env"])
    single = pod(triton.deployment(small, small.service("alice/chat"), S))["containers"][0]
    # offline: no library in the serving image reaches for the Hugging Face Hub (the diffusion demo's scheduler comes
    # from the cache the build left under /models/hf)
    assert single["command"][0] == "tritonserver" and {e["name"]: e["value"] for e in single["env"]} == {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": "/models/hf",
    }


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
    assert init["args"] == [scripts.FETCH_ENGINE]


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


def job_of(catalog, access, settings=S):
    key = service_cache_key(catalog, catalog.service(access), settings)
    return triton.engine_job(catalog, key, [catalog.service(access)], settings)


def test_job_name_follows_the_cache_key(small, make_catalog, small_text):
    job = job_of(small, "alice/chat")
    key = service_cache_key(small, small.service("alice/chat"), S)
    assert job["metadata"]["name"] == engine_job_name(key) == f"engine-build-{key}"
    assert job["metadata"]["labels"][L.CACHE_KEY] == key
    # instances change: same Job (reused); model change: new Job (rebuild)
    more = make_catalog(small_text.replace("instances: 3", "instances: 5"))
    assert job_of(more, "alice/chat")["metadata"]["name"] == job["metadata"]["name"]
    changed = make_catalog(small_text.replace("s3://example-models/small", "s3://example-models/small-v2"))
    assert job_of(changed, "alice/chat")["metadata"]["name"] != job["metadata"]["name"]
    assert pod(job)["restartPolicy"] == "Never"


def test_services_sharing_a_key_build_once(make_catalog, small_text):
    shared = make_catalog(small_text.replace("gpu_type: l4", "gpu_type: h100"))
    jobs = triton.engine_jobs(shared, S)
    assert len(jobs) == 2  # small (alice/chat + bob/chat) and big
    assert len(triton.engine_jobs(make_catalog(small_text), S)) == 3


def test_a_running_build_is_never_replaced_and_a_failed_one_is_retried(small):
    job = job_of(small, "alice/chat")
    md = job["metadata"]
    # replaceUnready would replace a running build (unready too) on the next deploy: never set
    assert not any(k.startswith("pulumi.com/") for k in md.get("annotations", {}))
    assert md["namespace"] == S.namespace
    # Pulumi waits for the Job as long as the Job may run; a finished one goes after an hour (its logs readable
    # meanwhile), so the next deploy finds the engine cached, or builds a failed one afresh
    assert plan(small, S).entry(key_of(job)).timeout_s == job["spec"]["activeDeadlineSeconds"] >= 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600


def test_the_build_jobs_spec_depends_only_on_what_the_build_needs(small):
    """A gateway release (a new gateway image) changes no build Job: nothing would replace a running build."""
    before = job_of(small, "alice/chat", Settings(gateway_image="ghcr.io/acme/modelsvc-gateway@sha256:" + "1" * 64))
    after = job_of(small, "alice/chat", Settings(gateway_image="ghcr.io/acme/modelsvc-gateway@sha256:" + "2" * 64))
    assert before == after
    images = {c["image"] for c in pod(before)["initContainers"] + pod(before)["containers"]}
    assert images == {S.aws_cli_image, S.triton_image, S.image("build-tools")}


def test_built_engines_get_no_job_and_their_deployments_roll_at_once(small):
    keys = list(engine_builds(small, S))
    p = plan(small, S, built={keys[0]})
    jobs = [e.obj["metadata"]["name"] for e in p if e.obj["kind"] == "Job"]
    assert engine_job_name(keys[0]) not in jobs and len(jobs) == len(keys) - 1
    dep = p.entry(("Deployment", "modelsvc", "alice--chat"))
    if service_cache_key(small, small.service("alice/chat"), S) == keys[0]:
        assert not [n for n in dep.needs if n[0] == "Job"]


def test_job_steps_and_identities(small):
    spec = pod(job_of(small, "alice/big"))
    assert spec["serviceAccountName"] == "modelsvc-engine-build"
    assert [c["name"] for c in spec["initContainers"]] == [
        "fetch-checkpoint",
        "templates",
        "model-repo",
        "build-engine",
    ]
    assert [c["name"] for c in spec["containers"]] == ["upload-engine"]
    steps = {c["name"]: c for c in spec["initContainers"] + spec["containers"]}
    assert steps["fetch-checkpoint"]["args"] == [scripts.FETCH_CHECKPOINT]
    assert steps["upload-engine"]["args"] == [scripts.UPLOAD_ENGINE]
    assert steps["build-engine"]["args"] == [scripts.BUILD_ENGINE]
    assert steps["build-engine"]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    # NVIDIA's templates come from the serving image itself: nothing is downloaded at build time
    assert steps["templates"]["image"] == S.triton_image
    assert 'cp -R "/app/all_models/." /work/templates/' in steps["templates"]["args"][0]
    for text in (str(spec), scripts.BUILD_ENGINE):
        assert "github" not in text.lower() and "codeload" not in text
    # the model repository is written by infra.modelrepo in the build-tools image (that package, nothing else)
    repo = steps["model-repo"]
    assert repo["image"] == S.image("build-tools")
    assert "exec python -m infra.modelrepo" in repo["args"][0]
    assert "--templates /work/templates --out /work/out/repo" in repo["args"][0]
    assert "--tokenizer-config /work/checkpoint/tokenizer_config.json" in repo["args"][0]
    spec_json = json.loads(next(e["value"] for e in repo["env"] if e["name"] == "MODEL_REPO_SPEC"))
    spec = RepoSpec.from_dict(spec_json)  # exactly the builder's spec: no unknown or missing field
    assert (spec.task, spec.max_batch_size, spec.max_input_tokens, spec.max_output_tokens) == ("chat", 64, 4096, 1024)
    assert (spec.engine_dir, spec.tokenizer_dir, spec.served_name) == (
        "/models/engine",
        "/models/tokenizer",
        "ensemble",
    )


def test_job_requests_ephemeral_storage(small):
    spec = pod(job_of(small, "alice/chat", Settings(build_disk="300Gi")))
    for c in spec["initContainers"] + spec["containers"]:
        assert c["resources"]["requests"]["ephemeral-storage"] == "300Gi", c["name"]
        assert c["resources"]["limits"]["ephemeral-storage"] == "300Gi", c["name"]
    work = next(v for v in spec["volumes"] if v["name"] == "work")
    assert work["emptyDir"]["sizeLimit"] == "300Gi"


@pytest.mark.parametrize("max_input, expected", [(4096, 8192), (8192, 8192), (10000, 10048), (16384, 16384)])
def test_max_num_tokens_covers_the_longest_prompt(make_catalog, small_text, max_input, expected):
    limit = f"    gpus: 1\n    max_input_tokens: {max_input}\n"
    catalog = make_catalog(small_text.replace("    gpus: 1\n", limit, 1))
    env = {e["name"]: e["value"] for e in pod(job_of(catalog, "alice/chat"))["initContainers"][3]["env"]}
    assert int(env["MAX_NUM_TOKENS"]) == expected >= max_input and expected % 64 == 0
    assert env["MAX_INPUT_TOKENS"] == str(max_input)


def test_task_recipes_pick_their_serving_image(example):
    by_task = {}
    for key, services in engine_builds(example, S).items():
        job = triton.engine_job(example, key, services, S)
        by_task[example.model_of(services[0]).task.value] = (job, triton.deployment(example, services[0], S))
    assert set(by_task) == {"chat", "vision-chat", "image-generation"}
    job, dep = by_task["image-generation"]
    steps = {c["name"]: c for c in pod(job)["initContainers"]}
    assert steps["build-engine"]["image"] == steps["templates"]["image"] == S.image("diffusion")
    assert '"/workspace/diffusion-models/."' in steps["templates"]["args"][0]
    assert pod(dep)["containers"][0]["image"] == S.image("diffusion")
    env = {e["name"]: e["value"] for e in steps["build-engine"]["env"]}
    assert (env["TASK"], env["TRITON_MODEL"]) == ("image-generation", "stable_diffusion")
    job, dep = by_task["vision-chat"]
    env = {e["name"]: e["value"] for e in pod(job)["initContainers"][3]["env"]}
    # NVIDIA's image with its per-model requirements (qwen-vl-utils) for both the build and the pods
    assert env["TASK"] == "vision-chat" and pod(dep)["containers"][0]["image"] == S.image("vision")
    assert pod(job)["initContainers"][3]["image"] == S.image("vision")


def test_leader_mode(make_catalog, small_text):
    """tp > 1: one mpirun, a tritonserver per rank, as NVIDIA's launch_triton_server.py starts them."""
    cmd = pod(triton.deployment(make_catalog(small_text), make_catalog(small_text).service("alice/big"), S))[
        "containers"
    ][0]["command"]
    assert cmd[:2] == ["mpirun", "--allow-run-as-root"]
    ranks = " ".join(cmd[2:]).split(" : ")
    assert len(ranks) == 4
    for i, rank in enumerate(ranks):
        args = rank.split()
        assert args[:3] == ["-n", "1", "tritonserver"]
        assert "--model-repository=/models/repo" in args and "--disable-auto-complete-config" in args
        assert f"--backend-config=python,shm-region-prefix-name=prefix{i}_" in args
        assert ("--model-control-mode=explicit" in args) is (i > 0)  # other ranks load only the engine model
        assert ("--load-model=tensorrt_llm" in args) is (i > 0)
    vision = make_catalog(small_text.replace("    gpus: 4\n", "    gpus: 4\n    task: vision-chat\n"))
    cmd = " ".join(pod(triton.deployment(vision, vision.service("alice/big"), S))["containers"][0]["command"])
    assert cmd.count("--load-model=multimodal_encoders") == 3
    assert cmd.count("--cuda-memory-pool-byte-size=0:") == 1  # rank 0 only, as launch_triton_server.py does


def test_gpu_request_equals_model_gpus(small):
    r = triton.resources(small.models["big"])
    assert r["limits"]["nvidia.com/gpu"] == "4" == r["requests"]["nvidia.com/gpu"]


def test_rollouts_surge_into_the_build_headroom_and_pods_request_their_engines_disk(small):
    """The validator keeps room for the pool's largest build beside every instance, so a new pod fits there and
    the old ones serve until it is ready; each pod requests its engine's ephemeral storage (no limit: an estimate
    must not kill a pod)."""
    from infra import disk

    for name in ("alice/chat", "alice/big", "bob/chat"):
        svc = small.service(name)
        dep = triton.deployment(small, svc, S)
        assert dep["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        res = pod(dep)["containers"][0]["resources"]
        assert res["requests"]["ephemeral-storage"] == disk.serving_request(small.model_of(svc)), name
        assert "ephemeral-storage" not in res.get("limits", {})
