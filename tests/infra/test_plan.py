"""The deployment plan is the one list of Kubernetes objects: `render` writes it, the Pulumi program creates it.

Under Pulumi's mocks, the set of (kind, namespace, name) the program creates equals what `render` writes for the same
catalog and settings, for both example catalogs and both targets, and every resource's `dependsOn` is its plan
entry's needs.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pulumi
import pytest

import infra.program
from infra.plan import Plan, key_of, plan
from infra.render import render, render_plan
from infra.settings import Settings
from modelsvc.catalog.names import engine_job_name

from .test_program import Mocks

TARGETS = {
    "eks": Settings(target="eks", cluster_name="modelsvc-test", engine_cache_uri="s3://modelsvc-test-engines"),
    "kubeconfig": Settings(target="kubeconfig", cluster_name="prod-gpu", kubeconfig="kubeconfig-text"),
    "kubeconfig-per-owner": Settings(
        target="kubeconfig", namespace_mode="per-owner", ingress_host="models.example.com", kubeconfig="kubeconfig-text"
    ),
    "kubeconfig-existing-monitoring": Settings(
        target="kubeconfig", monitoring="existing", kubeconfig="kubeconfig-text"
    ),
}


def _created(catalog, settings: Settings, monkeypatch) -> tuple[dict, dict]:
    """Run the program under mocks: the keys of the Kubernetes objects it creates, of the Helm releases it installs
    and of the objects it only reads, and each one's dependsOn (as keys of the plan objects they are)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="modelsvc", stack="test", preview=False)
    real = infra.program.k8s_res.create
    by_resource: dict[int, tuple] = {}
    depends: dict[tuple, set] = {}

    def spy(obj, opts=None):
        res = real(obj, opts)
        by_resource[id(res)] = key_of(obj)
        # plan objects by key; anything else (the eks target's system node group) by its Pulumi type
        depends[key_of(obj)] = {by_resource.get(id(d)) or d.__class__.__name__ for d in (opts.depends_on or [])}
        return res

    real_read = infra.program.k8s_res.read

    def spy_read(obj, opts=None):
        res = real_read(obj, opts)
        by_resource[id(res)] = key_of(obj)
        depends[key_of(obj)] = {by_resource.get(id(d)) or d.__class__.__name__ for d in (opts.depends_on or [])}
        return res

    monkeypatch.setattr(infra.program.k8s_res, "create", spy)
    monkeypatch.setattr(infra.program.k8s_res, "read", spy_read)
    pulumi.runtime.test(lambda: infra.program.build(catalog, settings))()
    k8s = [r for r in mocks.resources if r.typ.startswith("kubernetes:") and r.typ != "pulumi:providers:kubernetes"]
    keys = {
        "objects": {
            (r.inputs["kind"], r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"])
            for r in k8s
            if not r.typ.startswith("kubernetes:helm.sh") and not r.resource_id
        },
        "releases": {
            (r.inputs["namespace"], r.inputs["name"], r.inputs["chart"], r.inputs["version"])
            for r in k8s
            if r.typ == "kubernetes:helm.sh/v3:Release"
        },
        "reads": {(r.typ.split(":")[-1], r.resource_id) for r in k8s if r.resource_id},
    }
    return keys, depends


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("catalog_name", ["example", "small"])
def test_pulumi_creates_exactly_what_render_writes(catalog_name, target, request, monkeypatch):
    catalog = request.getfixturevalue(catalog_name)
    settings = TARGETS[target]
    created, depends = _created(catalog, settings, monkeypatch)
    rendered = [key_of(o) for o in render(catalog, settings.target, settings)]
    assert len(rendered) == len(set(rendered))
    assert created["objects"] == set(rendered)
    p = render_plan(catalog, settings.target, settings)
    assert created["releases"] == {
        (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"], e.obj["spec"]["chart"], e.obj["spec"]["version"])
        for e in p.releases
    }
    assert created["reads"] == {(e.key[0], e.key[2]) for e in p.prerequisites}
    # each resource waits for exactly its entry's needs
    base = {"NodeGroup"} if target == "eks" else set()  # everything waits for the system nodes of a new cluster
    assert {e.key: set(e.needs) | base for e in plan(catalog, settings)} == depends


def test_the_usage_store_secret_is_planned_and_the_gateway_waits_for_it(example):
    p = plan(example, Settings(target="eks"), usage_store_url="postgresql://u:p@db:5432/modelsvc")
    secret = ("Secret", "modelsvc", "gateway-usage-store")
    assert secret in p.keys()
    assert secret in p.entry(("Deployment", "modelsvc", "modelsvc-gateway")).needs
    assert secret not in plan(example, Settings(target="eks")).keys()


def _assert_apply_order(p: Plan) -> None:
    seen: set = set()
    for entry in p:
        assert set(entry.needs) <= seen, f"{entry.key} comes before {set(entry.needs) - seen}"
        seen.add(entry.key)


@pytest.mark.parametrize("target", TARGETS)
def test_the_list_is_in_dependency_order_and_names_what_each_object_needs(example, target):
    settings = TARGETS[target]
    p = plan(example, settings)
    _assert_apply_order(p)
    created_ns = {e.obj["metadata"]["name"] for e in p if e.obj["kind"] == "Namespace"}
    for entry in p:
        ns = entry.obj["metadata"].get("namespace")
        if ns in created_ns:
            assert ("Namespace", None, ns) in entry.needs, entry.key
        pod = entry.obj.get("spec", {}).get("template", {}).get("spec", {})
        sa = pod.get("serviceAccountName")
        if sa and ns in created_ns:
            assert ("ServiceAccount", ns, sa) in entry.needs, entry.key
        if entry.obj["kind"] == "Deployment" and entry.group != "gateway":
            (job,) = [k for k in entry.needs if k[0] == "Job"]
            assert job[2] == engine_job_name(entry.obj["metadata"]["labels"]["modelsvc.io/engine-key"])


def test_plan_refuses_an_object_whose_prerequisite_it_does_not_create(example):
    p = Plan()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}}
    with pytest.raises(ValueError, match="needs"):
        p.add(obj, ("ServiceAccount", "default", "nobody"))
    p.add(obj)
    with pytest.raises(ValueError, match="twice"):
        p.add(dataclasses.replace(p.entries[0]).obj)


# Awaits outside the plan on a new eks stack, before any Kubernetes object (AWS's own figures: an EKS control plane
# takes ~10-15 minutes, a managed node group and the VPC CNI addon several more), and the workflow's own steps.
EKS_PROVISION_S = 45 * 60
WORKFLOW_STEPS_S = 15 * 60  # checkout, install, credentials, the summary
AWAITED = {"Deployment", "DaemonSet", "StatefulSet", "Job", "Ingress", "HelmRelease"}


def longest_await_s(p: Plan) -> int:
    """The longest chain of Pulumi awaits along the plan's dependencies (each entry's timeout, the provider's
    default for the kinds it awaits without one, a minute for the rest)."""
    from infra.plan import DEFAULT_TIMEOUT_S

    done: dict = {}
    for e in p:  # plan order is a topological order
        own = e.timeout_s or (DEFAULT_TIMEOUT_S if e.obj["kind"] in AWAITED else 60)
        done[e.key] = own + max((done[k] for k in e.needs), default=0)
    return max(done.values())


def test_the_deploy_job_outlasts_every_await_inside_it(example):
    from tests.github.workflow_steps import workflow

    limit_min = workflow("deploy.yml")["jobs"]["up"]["timeout-minutes"]
    chain = longest_await_s(plan(example, TARGETS["eks"]))
    assert chain >= 4 * 3600  # a build Job, then its Deployment's rollout
    assert EKS_PROVISION_S + chain + WORKFLOW_STEPS_S <= limit_min * 60 <= 360 * 60  # GitHub-hosted: 6 h at most


def test_rendering_is_linear_in_the_number_of_services(monkeypatch):
    """Each service's rollout asks for its pool's largest build: answered from one pass over the catalog, not a
    pass per service (3000 services took ~20 s to render before)."""
    from modelsvc.catalog import capacity, loads
    from tests.conftest import SMALL

    head = SMALL.split("services:")[0]

    def catalog(n: int):
        services = "".join(
            f"  - name: S{i}\n    access_name: alice/s{i}\n    id: ms-{i:012d}\n    model: small\n"
            f"    instances: 0\n    pool: h100\n"
            for i in range(1, n + 1)
        )
        return loads(head + "services:\n" + services)

    calls = 0
    real = capacity.is_deployed

    def counted(cat, service):
        nonlocal calls
        calls += 1
        return real(cat, service)

    monkeypatch.setattr(capacity, "is_deployed", counted)
    per_service = []
    for n in (50, 400):
        calls = 0
        assert len([o for o in render(catalog(n)) if o["kind"] == "Deployment"]) >= n
        per_service.append(calls / n)
    assert per_service[1] <= per_service[0] * 1.5, per_service  # quadratic would be 8× more per service
