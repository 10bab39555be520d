"""A model of a Kubernetes cluster for applying a deployment plan: what the API server would refuse, and what would
never become ready (Pulumi awaits readiness, so a deploy would hang and fail on it).

It knows the built-in kinds of Kubernetes 1.33 (those kubernetes-validate has schemas for), the namespaces `default`
and `kube-system`, and what the pinned Helm charts install for the release's values (the facts read from the charts'
own files, tests/infra/helm_facts.py: kube-prometheus-stack's CRD files and the condition installing them,
prometheus-adapter's APIService and its condition). Nothing else exists until an applied object creates it.
"""

from __future__ import annotations

import functools
import random

import kubernetes_validate

from infra.charts import KUBE_PROMETHEUS_STACK, PROMETHEUS_ADAPTER
from infra.plan import Entry, Plan

from . import crds, helm_facts

K8S_VERSION = "1.33"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "APIService", "ClusterRole", "ClusterRoleBinding"}
POD_TEMPLATE_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}
BUILTIN_PRIORITY_CLASSES = {"system-node-critical", "system-cluster-critical"}


class Refused(Exception):
    """The first object the cluster could not create (or that would never become ready)."""


@functools.cache
def _builtin(api_version: str, kind: str) -> bool:
    try:
        kubernetes_validate.validate({"apiVersion": api_version, "kind": kind}, K8S_VERSION, strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True  # a schema exists (the stub object just does not satisfy it)
    return True


def _crd_name(api_version: str, kind: str) -> str | None:
    """The CRD that serves (apiVersion, kind), from the real CRD files: <plural>.<group>."""
    crd = crds.definitions().get((api_version, kind))
    return f"{crd['spec']['names']['plural']}.{crd['spec']['group']}" if crd else None


class Cluster:
    def __init__(
        self,
        namespaces=("default", "kube-system"),
        crds_installed: set[str] | None = None,
        api_services: set[str] | None = None,
    ):
        self.namespaces = set(namespaces)
        self.crds = set(crds_installed or ())
        self.api_services = set(api_services or ())
        self.objects: dict[tuple, dict] = {}
        self.applied: list[tuple] = []

    # -- what the API server checks on create ------------------------------------------------------------------
    def _kind_served(self, obj: dict) -> bool:
        if _builtin(obj["apiVersion"], obj["kind"]):
            return True
        name = _crd_name(obj["apiVersion"], obj["kind"])
        return name is not None and name in self.crds

    def _has(self, kind: str, ns: str | None, name: str) -> bool:  # ns None: cluster-scoped
        if kind == "ServiceAccount" and name == "default":
            return ns in self.namespaces  # the service account controller creates it in every namespace
        return (kind, ns, name) in self.objects

    # -- what readiness needs (Pulumi waits for it) -----------------------------------------------------------
    def _pod_refs(self, obj: dict, ns: str | None) -> list[str]:
        pod = obj["spec"]["template"]["spec"]
        missing = []
        sa = pod.get("serviceAccountName", "default")
        if not self._has("ServiceAccount", ns, sa):
            missing.append(f'serviceaccount "{sa}"')
        for vol in pod.get("volumes", []):
            if "configMap" in vol and not vol["configMap"].get("optional"):
                if not self._has("ConfigMap", ns, vol["configMap"]["name"]):
                    missing.append(f'configmap "{vol["configMap"]["name"]}"')
            if "secret" in vol and not vol["secret"].get("optional"):
                if not self._has("Secret", ns, vol["secret"]["secretName"]):
                    missing.append(f'secret "{vol["secret"]["secretName"]}"')
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional") and not self._has("Secret", ns, ref["name"]):
                    missing.append(f'secret "{ref["name"]}"')
        pc = pod.get("priorityClassName")
        if pc and pc not in BUILTIN_PRIORITY_CLASSES and not self._has("PriorityClass", None, pc):
            missing.append(f'priorityclass "{pc}"')
        return missing

    def _hpa_metrics(self, obj: dict) -> list[str]:
        needs = {"Pods": "custom", "Object": "custom", "External": "external"}
        missing = []
        for m in obj["spec"].get("metrics", []):
            api = needs.get(m["type"])
            if api and f"v1beta1.{api}.metrics.k8s.io" not in self.api_services:
                missing.append(f"APIService v1beta1.{api}.metrics.k8s.io (the {m['type']} metric's source)")
        return missing

    # -- applying -------------------------------------------------------------------------------------------------
    def apply(self, entry: Entry) -> None:
        obj = entry.obj
        kind, ns, name = entry.key
        if entry.existing:
            present = {
                "Namespace": name in self.namespaces,
                "CustomResourceDefinition": name in self.crds,
                "APIService": name in self.api_services,
            }.get(kind, (kind, ns, name) in self.objects)
            if not present:
                raise Refused(f"prerequisite {kind} {name!r} is missing (the preview stops here)")
            return
        if entry.is_release:
            self._install(obj)
            return
        if not self._kind_served(obj):
            raise Refused(f'no matches for kind "{kind}" in version "{obj["apiVersion"]}" (its CRD is not installed)')
        if kind not in CLUSTER_SCOPED:
            if not ns:
                raise Refused(f"{kind} {name}: a namespaced object without a namespace")
            if ns not in self.namespaces:
                raise Refused(f'{kind} {ns}/{name}: namespaces "{ns}" not found')
        if kind in POD_TEMPLATE_KINDS and (missing := self._pod_refs(obj, ns)):
            raise Refused(f"{kind} {ns}/{name} would never become ready: missing {', '.join(missing)}")
        if kind == "HorizontalPodAutoscaler" and (missing := self._hpa_metrics(obj)):
            raise Refused(f"HPA {ns}/{name} would never get its metric: missing {', '.join(missing)}")
        if kind == "Namespace":
            self.namespaces.add(name)
        self.objects[(kind, ns if kind not in CLUSTER_SCOPED else None, name)] = obj
        self.applied.append(entry.key)

    def _install(self, obj: dict) -> None:
        """A Helm release: what its pinned chart installs for the release's values, from the chart's facts."""
        md, spec = obj["metadata"], obj["spec"]
        if md["namespace"] not in self.namespaces:
            raise Refused(f'helm release {md["name"]}: namespaces "{md["namespace"]}" not found')
        chart, values = spec["chart"], spec["values"]
        facts = helm_facts.facts((chart, spec["version"]))  # every release's chart version has facts
        if chart == KUBE_PROMETHEUS_STACK.name and helm_facts.holds(facts["crds"]["when"], facts, values):
            # charts/crds/crds/crd-<plural>.yaml: the operator's CRDs, group monitoring.coreos.com
            for file in facts["crds"]["files"]:
                self.crds.add(f"{file.removeprefix('crd-').removesuffix('.yaml')}.monitoring.coreos.com")
        if chart == PROMETHEUS_ADAPTER.name:
            existing = helm_facts.value(facts, values, "rules.existing")
            if existing and not self._has("ConfigMap", md["namespace"], existing):
                raise Refused(f'helm release {md["name"]} would never become ready: configmap "{existing}" missing')
            api = facts["objects"]["APIService"]  # templates/custom-metrics-apiservice.yaml, and its guard
            if helm_facts.holds(api["when"], facts, values):
                self.api_services.add(api["name"])
        self.applied.append(("HelmRelease", md["namespace"], md["name"]))


def orders(p: Plan, seeds=(1, 2, 3)) -> dict[str, list[Entry]]:
    """Orders Pulumi may create the plan in: any topological order of its dependency graph (it starts a resource as
    soon as what it depends on is done). The plan's own order, an adversarial one (always the ready entry that
    comes last in the plan: as early as the edges allow), and a few random ones."""

    def topo(pick) -> list[Entry]:
        done: set = set()
        left = list(p)
        out = []
        while left:
            ready = [e for e in left if set(e.needs) <= done]
            assert ready, f"a dependency cycle among {[e.key for e in left]}"
            e = pick(ready)
            left.remove(e)
            done.add(e.key)
            out.append(e)
        return out

    result = {"plan": list(p), "latest-ready-first": topo(lambda ready: ready[-1])}
    for seed in seeds:
        rng = random.Random(seed)
        result[f"random-{seed}"] = topo(rng.choice)
    return result


def ancestors(p: Plan, entry: Entry) -> list[Entry]:
    """What entry transitively depends on, in plan order: all Pulumi guarantees exists when it creates entry."""
    by_key = {e.key: e for e in p}
    seen: set = set()
    stack = list(entry.needs)
    while stack:
        k = stack.pop()
        if k not in seen:
            seen.add(k)
            stack.extend(by_key[k].needs)
    return [e for e in p if e.key in seen]


def apply_all(p: Plan, cluster_factory=Cluster) -> None:
    """Apply the plan in every order of `orders`, each to a fresh cluster, and each entry as early as Pulumi may
    create it (right after what it transitively depends on, nothing else); raise Refused on the first refusal."""
    runs = {name: order for name, order in orders(p).items()}
    for entry in p:
        runs[f"earliest {entry.key}"] = [*ancestors(p, entry), entry]
    for name, order in runs.items():
        cluster = cluster_factory()
        for entry in order:
            try:
                cluster.apply(entry)
            except Refused as e:
                raise Refused(f"[{name} order] {e}") from None
