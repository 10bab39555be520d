"""The Pulumi program under pulumi.runtime mocks, for both targets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pulumi
import pytest

from infra.cache import service_cache_key
from infra.settings import Settings
from modelsvc.catalog.capacity import node_group_sizes
from modelsvc.catalog.names import engine_job_name, headless_service_host, k8s_name


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        state = dict(args.inputs)
        name = args.name
        if args.typ == "aws:eks/cluster:Cluster":
            state.update(
                endpoint="https://eks.example",
                certificateAuthority={"data": "Q0E="},
                identities=[{"oidcs": [{"issuer": "https://oidc.eks.us-west-2.amazonaws.com/id/ABC"}]}],
            )
        if args.typ == "aws:eks/nodeGroup:NodeGroup":  # EKS creates one Auto Scaling group per managed node group
            state["resources"] = [{"autoscalingGroups": [{"name": f"eks-{args.inputs['nodeGroupName']}-asg"}]}]
        if args.typ == "aws:rds/instance:Instance":
            state.update(address=f"{name}.db.example", endpoint=f"{name}.db.example:5432")
        if args.typ.startswith("aws:"):
            state.setdefault("arn", f"arn:aws:mock:::{name}")
        if args.typ == "aws:s3/bucket:Bucket":
            state.setdefault("bucket", name)
        return f"{name}-id", state

    built: frozenset[str] = frozenset()  # engine cache markers (bucket/key) the engine cache holds

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:s3/getObjects:getObjects":  # the engine cache, read at preview
            a = args.args
            keys = [a["prefix"]] if f"{a['bucket']}/{a['prefix']}" in self.built else []
            return {"bucket": a["bucket"], "keys": keys, "commonPrefixes": [], "owners": [], "id": a["bucket"]}
        return {}

    def of(self, typ: str) -> list:
        return [r for r in self.resources if r.typ == typ]


@pytest.fixture
def mocks():
    # Pulumi's runtime uses the thread's current event loop; async tests that ran before may have closed theirs.
    asyncio.set_event_loop(asyncio.new_event_loop())
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="modelsvc", stack="test", preview=False)
    return m


def _build(catalog, settings, kubeconfig=None) -> dict:
    """Run the program to completion under the mocks; return its outputs as plain values."""
    from infra.program import build

    resolved: dict = {}
    if kubeconfig is not None:
        settings = dataclasses.replace(settings, kubeconfig=kubeconfig)

    @pulumi.runtime.test
    def program():
        outputs = build(catalog, settings)
        for key, value in outputs.items():
            pulumi.Output.from_input(value).apply(lambda v, key=key: resolved.__setitem__(key, v))

    program()
    return resolved


def test_eks_target(mocks, example):
    settings = Settings(
        target="eks", cluster_name="modelsvc-test", engine_cache_uri="s3://modelsvc-test-engines", device_plugin=True
    )
    outputs = _build(example, settings)

    def check(args):
        cluster_name, kubeconfig, role_arn = args
        groups = mocks.of("aws:eks/nodeGroup:NodeGroup")
        by_name = {g.inputs["nodeGroupName"]: g.inputs for g in groups}
        assert set(by_name) == {"system", "gpu-h100", "gpu-l4"}
        sizes = node_group_sizes(example)
        for pool in ("h100", "l4"):
            ng = by_name[f"gpu-{pool}"]
            sc = ng["scalingConfig"]
            # the floor is 0 (the cluster autoscaler sizes the group; a raised floor could exceed desired), the first
            # desired size the demand with build room, the ceiling the pool's max_nodes
            assert (sc["minSize"], sc["desiredSize"], sc["maxSize"]) == (0, sizes[pool].desired, sizes[pool].max)
            assert ng["amiType"] == "AL2023_x86_64_NVIDIA"
            assert ng["instanceTypes"] == [example.pools[pool].instance_type]
            assert ng["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
            assert ng["labels"]["modelsvc.io/pool"] == pool
            assert ng["labels"]["k8s.amazonaws.com/accelerator"] == (example.pools[pool].gpu_type or pool)
        assert "taints" not in by_name["system"]
        # the cluster autoscaler: discovery tags on every GPU group, an IRSA role for its service account, the chart
        for pool in ("h100", "l4"):
            tags = by_name[f"gpu-{pool}"]["tags"]
            assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
            assert tags["k8s.io/cluster-autoscaler/modelsvc-test"] == "owned"
            # what a node will look like reaches the Auto Scaling group itself (EKS does not copy node group tags)
            on_asg = {
                t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
                for t in mocks.of("aws:autoscaling/tag:Tag")
                if t.inputs["autoscalingGroupName"] == f"eks-gpu-{pool}-asg"
            }
            template = "k8s.io/cluster-autoscaler/node-template"
            assert on_asg[f"{template}/label/modelsvc.io/pool"] == pool
            assert on_asg[f"{template}/taint/nvidia.com/gpu"] == "true:NoSchedule"
            assert on_asg[f"{template}/resources/nvidia.com/gpu"] == str(example.pools[pool].gpus_per_node)
            assert on_asg[f"{template}/resources/ephemeral-storage"] == "440Gi"
            assert all(not t.inputs["tag"]["propagateAtLaunch"] for t in mocks.of("aws:autoscaling/tag:Tag"))
        ca_role = next(r for r in mocks.of("aws:iam/role:Role") if r.name.endswith("-cluster-autoscaler"))
        ca_trust = json.loads(ca_role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
        assert ca_trust["oidc.eks.us-west-2.amazonaws.com/id/ABC:sub"] == (
            "system:serviceaccount:kube-system:cluster-autoscaler"
        )
        releases = {r.inputs["name"]: r.inputs for r in mocks.of("kubernetes:helm.sh/v3:Release")}
        release = releases["cluster-autoscaler"]
        assert (release["chart"], release["namespace"], release["version"]) == (
            "cluster-autoscaler",
            "kube-system",
            "9.51.0",  # the chart for Kubernetes 1.33 (infra/charts.py): its own image, RBAC that fits it
        )
        assert release["values"]["autoDiscovery"] == {"clusterName": "modelsvc-test"}
        assert "image" not in release["values"]
        assert release["values"]["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == (
            "arn:aws:mock:::modelsvc-test-cluster-autoscaler"
        )
        assert len(mocks.of("aws:ec2/subnet:Subnet")) == 4
        assert len(mocks.of("aws:ec2/natGateway:NatGateway")) == 1
        assert len(mocks.of("aws:eks/cluster:Cluster")) == 1
        assert len(mocks.of("aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1
        assert mocks.of("aws:s3/bucket:Bucket")[0].inputs["bucket"] == "modelsvc-test-engines"
        # IRSA: each role trusts exactly its service account, which carries the role ARN; only the build's writes.
        roles = {r.name: r for r in mocks.of("aws:iam/role:Role") if r.name.endswith("-irsa")}
        policies = {r.name: json.loads(r.inputs["policy"]) for r in mocks.of("aws:iam/rolePolicy:RolePolicy")}
        accounts = {
            r.inputs["metadata"]["name"]: r.inputs["metadata"] for r in mocks.of("kubernetes:core/v1:ServiceAccount")
        }
        for part, sa, writes in (("build", "modelsvc-engine-build", True), ("triton", "modelsvc-triton", False)):
            name = f"modelsvc-test-models-{part}-irsa"
            cond = json.loads(roles[name].inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
            assert cond["oidc.eks.us-west-2.amazonaws.com/id/ABC:sub"] == [f"system:serviceaccount:modelsvc:{sa}"]
            actions = {a for s in policies[name]["Statement"] for a in s["Action"]}
            assert ("s3:PutObject" in actions) is writes
            assert accounts[sa]["annotations"]["eks.amazonaws.com/role-arn"] == f"arn:aws:mock:::{name}"
        assert accounts["modelsvc-engine-build"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
        addon = mocks.of("aws:eks/addon:Addon")[0].inputs
        assert addon["addonName"] == "vpc-cni"
        assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}
        assert len(mocks.of("kubernetes:apps/v1:DaemonSet")) == 1  # device plugin
        assert cluster_name == "modelsvc-test"
        assert json.loads(kubeconfig)["clusters"][0]["cluster"]["server"] == "https://eks.example"
        _check_k8s(mocks, example)

    check((outputs["clusterName"], outputs["kubeconfig"], outputs["engineRoleArn"]))


def _check_k8s(mocks, catalog):
    triton = [s for s in catalog.services if catalog.model_of(s).backend.value == "triton"]
    deps = {r.inputs["metadata"]["name"]: r.inputs for r in mocks.of("kubernetes:apps/v1:Deployment")}
    assert set(deps) == {k8s_name(s.access_name) for s in triton} | {"modelsvc-gateway"}
    for s in triton:
        dep = deps[k8s_name(s.access_name)]
        assert dep["spec"].get("replicas") == (None if s.autoscale else s.instances)  # the HPA owns it
        limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == str(catalog.model_of(s).gpus)
    assert deps["modelsvc-gateway"]["spec"]["replicas"] == catalog.gateway.replicas
    # one build Job per engine cache key, and each Deployment waits for its key's Job
    jobs = {r.inputs["metadata"]["name"]: r for r in mocks.of("kubernetes:batch/v1:Job")}
    assert len(jobs) == len({service_cache_key(catalog, s, Settings()) for s in triton})
    for job in jobs.values():
        assert "pulumi.com/replaceUnready" not in job.inputs["metadata"].get("annotations", {})
        assert job.inputs["spec"]["ttlSecondsAfterFinished"] == 3600
        assert job.inputs["metadata"]["namespace"] == "modelsvc"
    for dep in mocks.of("kubernetes:apps/v1:Deployment"):
        if dep.inputs["metadata"]["name"] != "modelsvc-gateway":
            assert engine_job_name(dep.inputs["metadata"]["labels"]["modelsvc.io/engine-key"]) in jobs
    assert len(mocks.of("kubernetes:policy/v1:PodDisruptionBudget")) == len(triton) + 1
    services = [r.inputs for r in mocks.of("kubernetes:core/v1:Service")]
    assert sum(1 for s in services if s["spec"].get("clusterIP") == "None") == len(triton)
    configmaps = sorted(r.inputs["metadata"]["name"] for r in mocks.of("kubernetes:core/v1:ConfigMap"))
    assert configmaps == ["modelsvc-catalog", "modelsvc-dashboard", "modelsvc-prometheus-adapter"]
    autoscaled = [s for s in triton if s.autoscale]
    hpas = {
        r.inputs["metadata"]["name"]: r.inputs["spec"]
        for r in mocks.of("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    }
    assert set(hpas) == {k8s_name(s.access_name) for s in autoscaled} and autoscaled
    for s in autoscaled:
        spec = hpas[k8s_name(s.access_name)]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (s.instances, s.autoscale.max_instances)
    kinds = sorted(
        r.inputs["kind"]
        for r in mocks.of("kubernetes:monitoring.coreos.com/v1:PodMonitor")
        + mocks.of("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    )
    assert kinds == ["PodMonitor", "PodMonitor", "PrometheusRule"]
    assert len(mocks.of("kubernetes:networking.k8s.io/v1:NetworkPolicy")) >= 1
    assert len(mocks.of("pulumi:providers:kubernetes")) == 1


def test_kubeconfig_target(mocks, example):
    settings = Settings(target="kubeconfig", cluster_name="prod-gpu", ingress_host="models.example.com")
    outputs = _build(example, settings, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"))

    def check(args):
        cluster_name, gateway_url, services = args
        assert not [r for r in mocks.resources if r.typ.startswith("aws:")]
        assert not mocks.of("kubernetes:apps/v1:DaemonSet")
        assert len(mocks.of("kubernetes:networking.k8s.io/v1:Ingress")) == 1
        assert cluster_name == "prod-gpu"
        assert gateway_url == "https://models.example.com/v1"
        assert set(services) == {
            "u-8105f7322477/test",
            "u-8105f7322477/support-bot",
            "u-3f9a2c7e51d0/receipts",
            "u-3f9a2c7e51d0/product-images",
        }
        svc = services["u-8105f7322477/test"]
        assert svc == {
            "id": "ms-1d033c426254",
            "namespace": "modelsvc",
            "deployment": "u-8105f7322477--test",
            "host": headless_service_host("u-8105f7322477/test", settings),
            "instances": 1,
        }
        provider = mocks.of("pulumi:providers:kubernetes")[0]
        assert "kubeconfig" in provider.inputs
        _check_k8s(mocks, example)

    check((outputs["clusterName"], outputs["gatewayUrl"], outputs["services"]))


def test_per_owner_namespaces(mocks, example):
    settings = Settings(target="kubeconfig", namespace_mode="per-owner")
    outputs = _build(example, settings, "kubeconfig-text")

    def check(services):
        names = sorted(r.inputs["metadata"]["name"] for r in mocks.of("kubernetes:core/v1:Namespace"))
        assert names == ["modelsvc", "modelsvc-u-3f9a2c7e51d0", "modelsvc-u-8105f7322477", "monitoring"]
        assert services["u-3f9a2c7e51d0/receipts"]["namespace"] == "modelsvc-u-3f9a2c7e51d0"
        # one per Triton namespace, one for the gateway
        assert len(mocks.of("kubernetes:networking.k8s.io/v1:NetworkPolicy")) == 3

    check(outputs["services"])


def test_deployments_wait_for_the_build_job_of_their_key(mocks, make_catalog, small_text, monkeypatch):
    """Two services with one cache key: one Job, and both Deployments depend on it."""
    import infra.program

    catalog = make_catalog(small_text.replace("gpu_type: l4", "gpu_type: h100"))  # bob/chat now shares alice/chat's key
    created: dict[int, str] = {}
    waits: dict[str, list[str]] = {}
    real = infra.program.k8s_res.create

    def spy(obj, opts=None):
        res = real(obj, opts)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        created[id(res)] = name
        waits[name] = [created.get(id(d), "?") for d in (opts.depends_on if opts and opts.depends_on else [])]
        return res

    monkeypatch.setattr(infra.program.k8s_res, "create", spy)
    _build(catalog, Settings(target="kubeconfig"), "kubeconfig-text")
    key = service_cache_key(catalog, catalog.service("alice/chat"), Settings())
    assert service_cache_key(catalog, catalog.service("bob/chat"), Settings()) == key
    jobs = [n for n in waits if n.startswith("Job/")]
    assert len(jobs) == 2  # small + big; bob/chat builds nothing of its own
    for svc in ("alice/chat", "bob/chat"):
        assert f"Job/{engine_job_name(key)}" in waits[f"Deployment/{k8s_name(svc)}"]


def test_kubeconfig_target_requires_a_kubeconfig(mocks, example):
    with pytest.raises(ValueError, match="kubeconfig"):
        _build(example, Settings(target="kubeconfig"))


def test_main_reads_stack_config(mocks, monkeypatch):
    """infra/__main__ path: config → settings → load(catalog) → resources + exports."""
    from infra.program import main

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    pulumi.runtime.set_all_config(
        {
            "modelsvc:target": "kubeconfig",
            "modelsvc:kubeconfig": "kubeconfig-text",
            "modelsvc:catalog": "services.yaml",
            **DIGESTS,
        },
        secret_keys=["modelsvc:kubeconfig"],
    )
    try:
        pulumi.runtime.test(main)()
    finally:
        pulumi.runtime.set_all_config({})
    gw = next(
        r for r in mocks.of("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == "modelsvc-gateway"
    )
    assert gw.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == DIGESTS["modelsvc:gatewayImage"]
    assert len(mocks.of("kubernetes:batch/v1:Job")) == 4
    pods = [j.inputs["spec"]["template"]["spec"] for j in mocks.of("kubernetes:batch/v1:Job")]
    images = {c["image"] for pod in pods for c in pod["initContainers"]}
    assert {
        DIGESTS["modelsvc:buildImage"],
        DIGESTS["modelsvc:visionImage"],
        DIGESTS["modelsvc:diffusionImage"],
    } <= images


DIGESTS = {
    f"modelsvc:{key}": f"ghcr.io/acme/{name}@sha256:{digit * 64}"
    for key, name, digit in (
        ("gatewayImage", "modelsvc-gateway", "1"),
        ("buildImage", "modelsvc-build", "2"),
        ("visionImage", "modelsvc-trtllm-vision", "3"),
        ("diffusionImage", "tritonserver-diffusion", "4"),
    )
}


@pytest.mark.parametrize(
    "image, why",
    [
        (None, "modelsvc:gatewayImage is not set"),
        ("ghcr.io/example/modelsvc-gateway:latest", "is a placeholder"),
        ("ghcr.io/acme/modelsvc-gateway:0.1.0", "not pinned by digest"),
        ("modelsvc-gateway@sha256:" + "1" * 64, "names no registry"),
    ],
)
def test_a_real_stack_refuses_a_placeholder_image(mocks, monkeypatch, image, why):
    from infra.program import main

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    config = {"modelsvc:target": "kubeconfig", "modelsvc:kubeconfig": "k", **DIGESTS}
    config.pop("modelsvc:gatewayImage")
    if image:
        config["modelsvc:gatewayImage"] = image
    pulumi.runtime.set_all_config(config, secret_keys=["modelsvc:kubeconfig"])
    try:
        with pytest.raises(ValueError, match="the stack cannot deploy") as e:
            pulumi.runtime.test(main)()
    finally:
        pulumi.runtime.set_all_config({})
    assert why in str(e.value) and "images.yml" in str(e.value)
    assert not mocks.of("kubernetes:apps/v1:Deployment")  # refused before anything is planned


def test_an_engine_already_in_the_cache_gets_no_build_job(mocks, small):
    settings = Settings(target="kubeconfig", engine_cache_uri="s3://cache/prefix")
    key = service_cache_key(small, small.service("alice/chat"), settings)
    mocks.built = frozenset({f"cache/prefix/engines/{key}/_COMPLETE"})
    _build(small, settings, "kubeconfig-text")
    jobs = {r.inputs["metadata"]["name"] for r in mocks.of("kubernetes:batch/v1:Job")}
    assert engine_job_name(key) not in jobs and len(jobs) == 2  # big and bob/chat (another GPU type) still build


def test_eks_target_creates_the_usage_database(mocks, example):
    """With a password in the stack config: RDS for PostgreSQL in the private subnets, not public, and its DSN only
    in a Secret that the gateway reads."""
    settings = Settings(
        target="eks",
        cluster_name="modelsvc-test",
        engine_cache_uri="s3://modelsvc-test-engines",
        usage_db_password=pulumi.Output.secret("s3cr3t/+pw"),
    )
    outputs = _build(example, settings)

    assert outputs["usageDatabase"] == "modelsvc-test-usage.db.example:5432"
    (db,) = mocks.of("aws:rds/instance:Instance")
    i = db.inputs
    assert i["engine"] == "postgres" and i["publiclyAccessible"] is False and i["storageEncrypted"] is True
    assert i["deletionProtection"] is True and i["backupRetentionPeriod"] >= 7
    (group,) = mocks.of("aws:rds/subnetGroup:SubnetGroup")
    private = {f"{r.name}-id" for r in mocks.of("aws:ec2/subnet:Subnet") if "private" in r.name}
    assert set(group.inputs["subnetIds"]) == private and len(private) == 2
    sg = next(r for r in mocks.of("aws:ec2/securityGroup:SecurityGroup") if r.name == "modelsvc-test-usage")
    assert [(x["fromPort"], x["cidrBlocks"]) for x in sg.inputs["ingress"]] == [(5432, ["10.0.0.0/16"])]
    (secret,) = mocks.of("kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["name"] == "gateway-usage-store"
    data = secret.inputs["stringData"]  # wrapped as a Pulumi secret: encrypted in the state, masked in previews
    assert data[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    assert data["value"]["url"] == (
        "postgresql://modelsvc:s3cr3t%2F%2Bpw@modelsvc-test-usage.db.example:5432/modelsvc?sslmode=require"
    )
    gw = next(
        r for r in mocks.of("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == "modelsvc-gateway"
    )
    env = {e["name"]: e for e in gw.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELSVC_USAGE_STORE"]["valueFrom"]["secretKeyRef"]["name"] == "gateway-usage-store"


def test_without_a_database_the_stack_warns_and_creates_none(mocks, example):
    _build(example, Settings(target="kubeconfig"), "kubeconfig-text")
    assert not mocks.of("kubernetes:core/v1:Secret") and not mocks.of("aws:rds/instance:Instance")


def test_monitoring_settings_from_stack_config(mocks):
    from infra.program import settings_from_config

    pulumi.runtime.set_all_config(
        {
            "modelsvc:target": "kubeconfig",
            "modelsvc:metricsNamespace": "observability",
            "modelsvc:prometheusRelease": "kps",
            "modelsvc:monitoring": "existing",
        }
    )
    try:
        s = settings_from_config(pulumi.Config("modelsvc"))
    finally:
        pulumi.runtime.set_all_config({})
    assert (s.metrics_namespace, s.prometheus_release, s.monitoring) == ("observability", "kps", "existing")
    d = settings_from_config(pulumi.Config("modelsvc"))
    assert (d.metrics_namespace, d.prometheus_release, d.monitoring) == ("monitoring", "prometheus", "install")
