"""The deployment plan: every Kubernetes object the stack creates, in apply order, each with what it waits for.

One function (`plan`) assembles it from the catalog and the settings; `infra.render` writes it as files and the Pulumi
program (`infra.program`) creates one resource per entry, with `dependsOn` taken from `Entry.needs`. Nothing else
lists Kubernetes objects, so what `modelsvc render` shows is what `pulumi up` creates (tests/infra/test_plan.py holds
the two equal under Pulumi's mocks).

The plan is closed under its own dependencies: every namespaced object's namespace, every custom resource's CRD and
the custom-metrics API the HPAs read are either created by an entry before it, or are *prerequisites* — entries
marked `existing`, which the program reads at preview (a missing one stops the preview with its name) and render
checks first in `apply.sh`. Only the namespaces every cluster has are assumed. tests/infra/test_empty_cluster.py
applies the plan, in dependency order, to a model of an empty cluster.

An entry names what it needs by key — (kind, namespace, name) — never by position. The list order is one
topological order of those edges (namespaces first), the order the rendered files are numbered in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.names import namespace_of, service_names

from .cache import engine_builds, service_cache_key
from .manifests import autoscaling, cluster_autoscaler, gateway, helm, monitoring, monitoring_stack, system, triton
from .manifests.common import TRITON_SERVICE_ACCOUNT
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

Key = tuple[str, str | None, str]  # (kind, namespace, name): unique per cluster

GATEWAY_GROUP = "gateway"
BUILTIN_NAMESPACES = ("default", "kube-system")  # what an empty cluster has (and all we assume)

# How long Pulumi awaits each kind of object (seconds). The deploy workflow's time limit must exceed the longest chain
# of them along the dependency graph (tests/infra/test_plan.py adds them up).
BUILD_TIMEOUT_S = triton.BUILD_BUDGET_S  # a build Job: its activeDeadlineSeconds
TRITON_ROLLOUT_TIMEOUT_S = 40 * 60  # a Triton Deployment: GPU node (cluster autoscaler), image pull, engine load
HELM_TIMEOUT_S = 15 * 60  # a chart's workloads ready (kube-prometheus-stack: operator, Prometheus, Grafana)
DEFAULT_TIMEOUT_S = 10 * 60  # pulumi-kubernetes' default await for Deployments and the like


def key_of(obj: dict) -> Key:
    md = obj["metadata"]
    return (obj["kind"], md.get("namespace"), md["name"])


def prerequisite(api_version: str, kind: str, name: str) -> dict:
    """A cluster-scoped object the plan needs but does not create (only its identity: the program reads it)."""
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


@dataclass(frozen=True)
class Entry:
    """One object and how to create it.

    needs: the entries it must come after (Pulumi `dependsOn`); its namespace is always among them when it has one.
    timeout_s: how long Pulumi awaits it (create and update; `customTimeouts`), None for the provider's default.
    group: the component resource it is created under (grouping in `pulumi preview`; no effect on the object).
    replace_first: delete before re-creating on replacement (a Job's spec is immutable and its name fixed).
    existing: a prerequisite: read, never created (the program fails the preview when it is missing).
    """

    obj: dict
    needs: tuple[Key, ...] = ()
    timeout_s: int | None = None
    group: str | None = None
    replace_first: bool = False
    existing: bool = False

    @property
    def key(self) -> Key:
        return key_of(self.obj)

    @property
    def is_release(self) -> bool:
        return helm.is_release(self.obj)


@dataclass
class Plan:
    entries: list[Entry] = field(default_factory=list)
    # key -> entry, kept by add(): a plan of thousands of services checks each object's needs in constant time
    _index: dict[Key, Entry] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def objects(self) -> list[dict]:
        """The Kubernetes objects to create (no prerequisites, no Helm releases), in apply order."""
        return [e.obj for e in self.entries if not e.existing and not e.is_release]

    @property
    def releases(self) -> list[Entry]:
        return [e for e in self.entries if e.is_release]

    @property
    def prerequisites(self) -> list[Entry]:
        return [e for e in self.entries if e.existing]

    def keys(self) -> list[Key]:
        return [e.key for e in self.entries]

    def entry(self, key: Key) -> Entry:
        return self._index[key]

    def add(self, obj: dict | None, *needs: Key | None, **options: Any) -> Key | None:
        """Append obj (None: nothing) after its namespace and `needs` (None ones skipped). Its namespace must be one
        the plan creates or requires, or a built-in one; every need must already be in the plan. So the plan cannot
        name an object it has no way to create, and the list stays in apply order."""
        if obj is None:
            return None
        entry_key = key_of(obj)
        known = self._index
        ns = entry_key[1]
        wanted = tuple(k for k in needs if k is not None)
        if ns is not None and ns not in BUILTIN_NAMESPACES:
            if ("Namespace", None, ns) not in known:
                raise ValueError(f"{entry_key}: namespace {ns!r} is neither created nor required by the plan")
            wanted = (("Namespace", None, ns), *wanted)
        missing = [k for k in wanted if k not in known]
        if missing:
            raise ValueError(f"{entry_key}: needs {missing}, which the plan does not create before it")
        if entry_key in known:
            raise ValueError(f"{entry_key} is planned twice")
        entry = Entry(obj, tuple(dict.fromkeys(wanted)), **options)
        self.entries.append(entry)
        self._index[entry_key] = entry
        return entry_key

    def require(self, obj: dict) -> Key:
        """A prerequisite: an object the cluster must already have."""
        key = self.add(obj, existing=True)
        assert key is not None
        return key


@dataclass(frozen=True)
class _Metrics:
    """What the monitoring objects wait for: the CRDs' provider (a release or the prerequisites), and what serves
    the HPAs' custom metrics."""

    crds: dict[str, Key | None]  # kind → the entry that provides it
    custom_metrics: Key | None


def _monitoring_stack(p: Plan, catalog: Catalog, settings: Settings) -> _Metrics:
    ns = settings.metrics_namespace
    autoscales = bool(autoscaling.autoscaled(catalog))
    if settings.monitoring == "install":
        stack = p.add(monitoring_stack.kube_prometheus_stack(settings), timeout_s=HELM_TIMEOUT_S)
        rules = p.add(autoscaling.adapter_configmap(settings))
        adapter = p.add(monitoring_stack.prometheus_adapter(settings), rules, stack, timeout_s=HELM_TIMEOUT_S)
        return _Metrics({kind: stack for kind in monitoring_stack.CRDS}, adapter)
    # An existing pipeline: what our objects need from it must be there already.
    needs_ns = autoscales or settings.monitoring == "existing"  # the adapter's rules, the dashboard
    if needs_ns and ns not in BUILTIN_NAMESPACES:
        p.require(prerequisite("v1", "Namespace", ns))
    crds: dict[str, Key | None] = {}
    if settings.monitoring == "existing":
        for kind, crd in monitoring_stack.CRDS.items():
            crds[kind] = p.require(prerequisite("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd))
    custom = None
    if autoscales:
        api = prerequisite("apiregistration.k8s.io/v1", "APIService", monitoring_stack.CUSTOM_METRICS_API)
        custom = p.require(api)
        p.add(autoscaling.adapter_configmap(settings))
    return _Metrics(crds, custom)


def plan(catalog: Catalog, settings: Settings, *, usage_store_url: Any = None, built: Collection[str] = ()) -> Plan:
    """Every Kubernetes object for the catalog on settings.target, in apply order, with its dependencies.

    usage_store_url: the usage database's DSN (a Pulumi Output on the eks target, where the stack creates the
    database); with it the plan holds the Secret that carries it to the gateway, and the gateway waits for it.
    built: engine cache keys whose entry is complete (the program reads the cache at preview): they get no build Job,
    so an unchanged engine never asks for a GPU, and their Deployments roll at once.
    """
    service_names(catalog)  # raises on a name clash before anything is produced
    p = Plan()
    namespaces = system.all_namespaces(catalog, settings)
    if settings.monitoring == "install" and settings.metrics_namespace not in (*namespaces, *BUILTIN_NAMESPACES):
        namespaces.append(settings.metrics_namespace)  # the stack installs its monitoring there
    for ns in namespaces:
        p.add(system.namespace(ns))
    build_sa = p.add(system.build_service_account(settings))
    for ns in system.triton_namespaces(catalog, settings):
        p.add(system.triton_service_account(ns, settings))
        p.add(system.triton_network_policy(ns, settings))
    if settings.deploys_device_plugin:
        p.add(system.device_plugin(settings))
    if settings.target == "eks":
        p.add(cluster_autoscaler.release(settings), timeout_s=HELM_TIMEOUT_S)
    metrics = _monitoring_stack(p, catalog, settings)

    gw_needs: list[Key | None] = []
    if usage_store_url is not None:
        gw_needs.append(p.add(gateway.usage_store_secret(usage_store_url, settings)))
    gw_objs = gateway.gateway_objects(catalog, settings)
    for obj in gw_objs:
        needs = list(gw_needs)
        if obj["kind"] == "Deployment":  # its pods mount the catalog and run as the gateway's account
            needs += [key_of(o) for o in gw_objs if o["kind"] in ("ConfigMap", "ServiceAccount")]
        p.add(obj, *needs, group=GATEWAY_GROUP)

    # One build Job per engine cache key not yet built; every Deployment using the key waits for it (Pulumi awaits
    # the Job), so a failed build leaves the old pods serving.
    jobs: dict[str, Key | None] = {}
    for key, users in engine_builds(catalog, settings).items():
        if key in built:
            jobs[key] = None
            continue
        jobs[key] = p.add(
            triton.engine_job(catalog, key, users, settings), build_sa, timeout_s=BUILD_TIMEOUT_S, replace_first=True
        )
    for s in deployed_services(catalog):
        ns = namespace_of(s, settings)
        group = s.access_name
        dep = triton.deployment(catalog, s, settings)
        job = jobs[service_cache_key(catalog, s, settings)]
        triton_sa = ("ServiceAccount", ns, TRITON_SERVICE_ACCOUNT)
        p.add(dep, triton_sa, job, group=group, timeout_s=TRITON_ROLLOUT_TIMEOUT_S)
        p.add(triton.headless_service(catalog, s, settings), group=group)
        p.add(triton.pod_disruption_budget(catalog, s, settings), group=group)
        if s.autoscale is not None:  # the HPA reads custom metrics: whatever serves them comes first
            p.add(autoscaling.hpa(catalog, s, settings), key_of(dep), metrics.custom_metrics, group=group)

    # With the Prometheus Operator: monitors, rules and the dashboard, after what provides their CRDs.
    for obj in monitoring.monitoring_objects(catalog, settings):
        p.add(obj, metrics.crds.get(obj["kind"]))
    return p
