"""The deployment plan: every Kubernetes object the stack creates, in apply order, each with what it waits for.

One function (`plan`) assembles it from the catalog and the settings; `infra.render` writes it as files and the Pulumi
program (`infra.program`) creates one resource per entry, with `dependsOn` taken from `Entry.needs`. Nothing else
lists Kubernetes objects, so what `modelsvc render` shows is what `pulumi up` creates (tests/infra/test_plan.py holds
the two equal under Pulumi's mocks).

An entry names its prerequisites by key — (kind, namespace, name) — never by position: its namespace, the service
account its pods run as, the build Job a Deployment waits for. The list order is one topological order of those
edges (namespaces first), the order `kubectl apply -f` of the rendered files follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.names import namespace_of, service_names

from .cache import engine_builds, service_cache_key
from .manifests import autoscaling, gateway, monitoring, system, triton
from .manifests.common import TRITON_SERVICE_ACCOUNT
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

Key = tuple[str, str | None, str]  # (kind, namespace, name): unique per cluster

GATEWAY_GROUP = "gateway"


# How long Pulumi awaits each kind of object (seconds). The deploy workflow's time limit must exceed the longest chain
# of them along the dependency graph.
BUILD_TIMEOUT_S = triton.BUILD_BUDGET_S  # a build Job: its activeDeadlineSeconds
TRITON_ROLLOUT_TIMEOUT_S = 40 * 60  # a Triton Deployment: image pull (~20 GB), engine fetch and load


def key_of(obj: dict) -> Key:
    md = obj["metadata"]
    return (obj["kind"], md.get("namespace"), md["name"])


@dataclass(frozen=True)
class Entry:
    """One object and how to create it.

    needs: the entries it must come after (Pulumi `dependsOn`); its namespace is always among them when it has one.
    timeout_s: how long Pulumi awaits it (create and update; `customTimeouts`), None for the provider's default.
    group: the component resource it is created under (grouping in `pulumi preview`; no effect on the object).
    replace_first: delete before re-creating on replacement (a Job's spec is immutable and its name fixed).
    """

    obj: dict
    needs: tuple[Key, ...] = ()
    timeout_s: int | None = None
    group: str | None = None
    replace_first: bool = False

    @property
    def key(self) -> Key:
        return key_of(self.obj)


@dataclass
class Plan:
    entries: list[Entry] = field(default_factory=list)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def objects(self) -> list[dict]:
        return [e.obj for e in self.entries]

    def keys(self) -> list[Key]:
        return [e.key for e in self.entries]

    def entry(self, key: Key) -> Entry:
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyError(key)

    def add(self, obj: dict | None, *needs: Key, **options: Any) -> Key | None:
        """Append obj (None: nothing), after its namespace and `needs`. Every need must already be in the plan, so
        the list stays in apply order; a missing one is a bug here, not in the cluster."""
        if obj is None:
            return None
        entry_key = key_of(obj)
        ns = entry_key[1]
        wanted = ((("Namespace", None, ns),) if ns is not None and ns in self._created_namespaces() else ()) + needs
        known = set(self.keys())
        missing = [k for k in wanted if k not in known]
        if missing:
            raise ValueError(f"{entry_key}: needs {missing}, which the plan does not create before it")
        if entry_key in known:
            raise ValueError(f"{entry_key} is planned twice")
        self.entries.append(Entry(obj, tuple(dict.fromkeys(wanted)), **options))
        return entry_key

    def _created_namespaces(self) -> set[str]:
        return {e.obj["metadata"]["name"] for e in self.entries if e.obj["kind"] == "Namespace"}


def _sa(ns: str, name: str) -> Key:
    return ("ServiceAccount", ns, name)


def plan(catalog: Catalog, settings: Settings, *, usage_store_url: Any = None) -> Plan:
    """Every Kubernetes object for the catalog on settings.target, in apply order, with its dependencies.

    usage_store_url: the usage database's DSN (a Pulumi Output on the eks target, where the stack creates the
    database); with it the plan holds the Secret that carries it to the gateway, and the gateway waits for it.
    """
    service_names(catalog)  # raises on a name clash before anything is produced
    p = Plan()
    for ns in system.all_namespaces(catalog, settings):
        p.add(system.namespace(ns))
    build_sa = p.add(system.build_service_account(settings))
    for ns in system.triton_namespaces(catalog, settings):
        p.add(system.triton_service_account(ns, settings))
        p.add(system.triton_network_policy(ns, settings))
    if settings.deploys_device_plugin:
        p.add(system.device_plugin(settings))

    gw_needs: list[Key] = []
    if usage_store_url is not None:
        secret = gateway.usage_store_secret(usage_store_url, settings)
        gw_needs.append(p.add(secret))
    gw_objs = gateway.gateway_objects(catalog, settings)
    for obj in gw_objs:
        needs = list(gw_needs)
        if obj["kind"] == "Deployment":  # its pods mount the catalog and run as the gateway's account
            needs += [key_of(o) for o in gw_objs if o["kind"] in ("ConfigMap", "ServiceAccount")]
        p.add(obj, *needs, group=GATEWAY_GROUP)

    # One build Job per engine cache key; every Deployment using the key waits for it (Pulumi awaits the Job), so a
    # failed build leaves the old pods serving.
    jobs = {}
    for key, users in engine_builds(catalog, settings).items():
        jobs[key] = p.add(
            triton.engine_job(catalog, key, users, settings),
            build_sa,
            timeout_s=BUILD_TIMEOUT_S,
            replace_first=True,
        )
    for s in deployed_services(catalog):
        ns = namespace_of(s, settings)
        group = s.access_name
        dep = triton.deployment(catalog, s, settings)
        job = jobs[service_cache_key(catalog, s, settings)]
        p.add(dep, _sa(ns, TRITON_SERVICE_ACCOUNT), job, group=group, timeout_s=TRITON_ROLLOUT_TIMEOUT_S)
        p.add(triton.headless_service(catalog, s, settings), group=group)
        p.add(triton.pod_disruption_budget(catalog, s, settings), group=group)
        if s.autoscale is not None:
            p.add(autoscaling.hpa(catalog, s, settings), key_of(dep), group=group)

    # Scaling and monitoring: the adapter's rules and, with the Prometheus Operator, monitors, rules and the dashboard
    # (in the metrics namespace or ours).
    for obj in autoscaling.adapter_objects(catalog, settings) + monitoring.monitoring_objects(catalog, settings):
        p.add(obj)
    return p
