"""The Pulumi program: stack config + catalog → AWS (eks target) and Kubernetes resources, plus stack outputs.

The Kubernetes part is the deployment plan (infra/plan.py), created entry by entry: one resource per object, its
`dependsOn` the entries it needs, grouped under one component per service and one for the gateway.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelsvc.catalog import load
from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.names import headless_service_host, k8s_name, namespace_of

from . import k8s as k8s_res
from . import stack
from .cache import COMPLETE_MARKER, engine_builds
from .manifests import gateway, system
from .plan import GATEWAY_GROUP, Entry, Key, Plan, plan
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog


def settings_from_config(config: pulumi.Config | None = None, aws_config: pulumi.Config | None = None) -> Settings:
    """Stack config (namespace `modelsvc`, plus `aws:region`) → Settings: the one place the program reads it
    (infra/stack.py, shared with `modelsvc validate --stack`)."""
    c = config or pulumi.Config("modelsvc")
    aws_region = (aws_config or pulumi.Config("aws")).get("region")
    return stack.settings_from(c, aws_region=aws_region, stack=pulumi.get_stack())


def built_engines(catalog: Catalog, settings: Settings) -> set[str]:
    """Cache keys whose engine entry is complete (its `_COMPLETE` marker is in the engine cache), read at preview:
    they get no build Job, so a re-run never asks for GPUs to find its cache. An unreadable cache (a bucket this
    deploy creates, no credentials) reads as nothing built: each build Job's first step checks again, and fails on
    an S3 error instead of building."""
    rest = settings.engine_cache_uri.removeprefix("s3://").rstrip("/")
    bucket, _, prefix = rest.partition("/")
    done = set()
    for key in engine_builds(catalog, settings):
        marker = f"{prefix + '/' if prefix else ''}engines/{key}/{COMPLETE_MARKER}"
        try:
            found = aws.s3.get_objects(bucket=bucket, prefix=marker, max_keys=1, region=settings.region)
        except Exception as e:  # the invoke's errors carry no type of their own
            pulumi.log.warn(f"engine cache {settings.engine_cache_uri} not readable ({e}): planning every build")
            return set()
        if marker in (found.keys or []):
            done.add(key)
    return done


@dataclasses.dataclass
class _Eks:
    """What the eks target hands the Kubernetes part: settings with the IRSA roles, the cluster's kubeconfig, what
    every Kubernetes object waits for and the usage database's DSN (or None)."""

    settings: Settings
    kubeconfig: pulumi.Output
    after: list[pulumi.Resource]
    usage_url: pulumi.Output | None


def _eks(catalog: Catalog, settings: Settings, outputs: dict) -> _Eks:
    from .aws import Cluster, ClusterAutoscaler, ModelStore, Network, NodeGroups, UsageDatabase

    name = settings.cluster_name
    azs = list(settings.availability_zones) or [f"{settings.region}a", f"{settings.region}b"]
    network = Network(name, settings.vpc_cidr, azs, name)
    cluster = Cluster(name, network, settings.kubernetes_version, settings.region)
    nodes = NodeGroups(name, catalog, cluster, network, settings.system_instance_type)
    store = ModelStore(
        f"{name}-models",
        settings.engine_bucket,
        catalog,
        cluster,
        settings.namespace,
        system.triton_namespaces(catalog, settings),
    )
    settings = dataclasses.replace(settings, build_role_arn=store.build_role.arn, triton_role_arn=store.triton_role.arn)
    usage_url = None
    if settings.usage_db_password is not None and not settings.gateway_usage_secret:
        db = UsageDatabase(
            f"{name}-usage",
            network,
            settings.usage_db_password,
            instance_class=settings.usage_db_instance_class,
            multi_az=settings.usage_db_multi_az,
        )
        settings = dataclasses.replace(settings, gateway_usage_secret=gateway.USAGE_SECRET)
        usage_url = db.url
        outputs["usageDatabase"] = db.instance.endpoint
    autoscaler = ClusterAutoscaler(name, cluster)
    settings = dataclasses.replace(settings, cluster_autoscaler_role_arn=autoscaler.role.arn)
    outputs.update(
        clusterName=cluster.cluster.name,
        nodeGroups={p: {"min": s.min, "desired": s.desired, "max": s.max} for p, s in nodes.sizes.items()},
        engineRoleArn=store.build_role.arn,
        tritonRoleArn=store.triton_role.arn,
        clusterAutoscalerRoleArn=autoscaler.role.arn,
    )
    return _Eks(settings, cluster.kubeconfig, [nodes.system], usage_url)


class ModelService(pulumi.ComponentResource):
    """One catalog service's objects (Triton Deployment, headless Service, PDB, HPA): grouping only."""

    def __init__(self, access_name: str, opts: pulumi.ResourceOptions):
        super().__init__("modelsvc:k8s:ModelService", access_name.replace("/", "--"), None, opts)


class GatewayComponent(pulumi.ComponentResource):
    def __init__(self, opts: pulumi.ResourceOptions):
        super().__init__("modelsvc:k8s:Gateway", "gateway", None, opts)


def create(p: Plan, opts: pulumi.ResourceOptions) -> dict[Key, pulumi.Resource]:
    """One resource per plan entry, in plan order; each `dependsOn` the resources of its needs (and whatever `opts`
    already waits for). Returns them by key."""
    created: dict[Key, pulumi.Resource] = {}
    groups: dict[str, pulumi.ComponentResource] = {}
    component_opts = pulumi.ResourceOptions(provider=opts.provider)

    def group(name: str) -> pulumi.ComponentResource:
        if name not in groups:
            groups[name] = (
                GatewayComponent(component_opts) if name == GATEWAY_GROUP else ModelService(name, component_opts)
            )
        return groups[name]

    for entry in p:
        options = _options(entry, opts, created, group)
        created[entry.key] = k8s_res.read(entry.obj, options) if entry.existing else k8s_res.create(entry.obj, options)
    for component in groups.values():
        component.register_outputs({})
    return created


def _options(entry: Entry, base: pulumi.ResourceOptions, created: dict, group) -> pulumi.ResourceOptions:
    timeout = f"{entry.timeout_s}s" if entry.timeout_s else None
    own = pulumi.ResourceOptions(
        depends_on=[created[k] for k in entry.needs],
        parent=group(entry.group) if entry.group else None,
        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout) if timeout else None,
        delete_before_replace=entry.replace_first or None,
    )
    return pulumi.ResourceOptions.merge(base, own)


def build(catalog: Catalog, settings: Settings) -> dict:
    """Create every resource; returns the stack outputs (exported by main)."""
    outputs: dict = {}
    after: list[pulumi.Resource] = []
    usage_url = None
    kubeconfig = settings.kubeconfig
    if settings.target == "eks":
        eks = _eks(catalog, settings, outputs)
        settings, kubeconfig, after, usage_url = eks.settings, eks.kubeconfig, eks.after, eks.usage_url
    else:
        outputs["clusterName"] = settings.cluster_name
    if kubeconfig is None:
        raise ValueError("the kubeconfig target needs `modelsvc:kubeconfig` (secret) in the stack config")
    if usage_url is None and not settings.gateway_usage_secret:
        pulumi.log.warn(
            "no usage database: usage records live on each gateway pod's emptyDir and are lost with "
            "the pod; set modelsvc:gatewayUsageSecret (or, on eks, modelsvc:usageDbPassword)"
        )
    provider = k8s.Provider("k8s", kubeconfig=kubeconfig, enable_server_side_apply=True)
    opts = pulumi.ResourceOptions(provider=provider, depends_on=after)
    create(plan(catalog, settings, usage_store_url=usage_url, built=built_engines(catalog, settings)), opts)
    outputs["kubeconfig"] = pulumi.Output.secret(kubeconfig)
    outputs["engineCache"] = settings.engine_cache_uri
    outputs["gatewayUrl"] = (
        f"https://{settings.ingress_host}/v1" if settings.ingress_host else catalog.gateway.public_url
    )
    outputs["gatewayDeployment"] = {"namespace": settings.namespace, "name": system.GATEWAY_APP}
    outputs["services"] = {
        s.access_name: {
            "id": s.id,
            "namespace": namespace_of(s, settings),
            "deployment": k8s_name(s.access_name),
            "host": headless_service_host(s, settings),
            "instances": s.instances,
            **({"max_instances": s.autoscale.max_instances} if s.autoscale else {}),
        }
        for s in deployed_services(catalog)
    }
    return outputs


def main() -> None:
    """Entry point for `pulumi up`: read the stack config once, load the catalog, refuse what cannot deploy (every
    problem at once, as `modelsvc validate --stack` does), build, export outputs."""
    settings = settings_from_config()
    catalog = load(settings.catalog)
    found = stack.problems(catalog, settings)
    if found:
        raise ValueError("the stack cannot deploy:\n" + "\n".join(f"  - {message}" for _, message in found))
    for key, value in build(catalog, settings).items():
        pulumi.export(key, value)
