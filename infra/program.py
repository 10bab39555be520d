"""The Pulumi program: stack config + catalog → AWS (eks target) and Kubernetes resources, plus stack outputs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from modelsvc.catalog import load
from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.names import headless_service_host, k8s_name, namespace_of, service_names

from . import k8s as k8s_res
from .cache import engine_builds, service_cache_key
from .manifests import autoscaling, gateway, monitoring, system, triton
from .settings import Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog


def settings_from_config(config: pulumi.Config | None = None) -> Settings:
    """Stack config (namespace `modelsvc`) → Settings. See Pulumi.dev.yaml for every key."""
    c = config or pulumi.Config("modelsvc")
    aws_region = pulumi.Config("aws").get("region")
    d = Settings()
    target = c.get("target") or "eks"
    region = c.get("region") or aws_region or d.region
    cluster_name = c.get("clusterName") or f"modelsvc-{pulumi.get_stack()}"
    default_cache = f"s3://{cluster_name}-engines-{region}" if target == "eks" else d.engine_cache_uri
    return Settings(
        target=target,  # type: ignore[arg-type]
        namespace_mode=c.get("namespaceMode") or d.namespace_mode,  # type: ignore[arg-type]
        namespace=c.get("namespace") or d.namespace,
        triton_version=c.get("tritonVersion") or d.triton_version,
        gateway_image=c.get("gatewayImage") or d.gateway_image,
        gateway_redis_secret=c.get("gatewayRedisSecret") or None,
        gateway_usage_secret=c.get("gatewayUsageSecret") or None,
        ingress_host=c.get("ingressHost") or None,
        ingress_class=c.get("ingressClass") or None,
        engine_cache_uri=c.get("engineCache") or default_cache,
        build_role_arn=c.get("engineRoleArn") or None,
        triton_role_arn=c.get("tritonRoleArn") or None,
        diffusion_image=c.get("diffusionImage") or d.diffusion_image,
        build_disk=c.get("buildDisk") or d.build_disk,
        metrics_namespace=c.get("metricsNamespace") or d.metrics_namespace,
        device_plugin=c.get_bool("devicePlugin") if c.get("devicePlugin") is not None else target == "eks",
        kubernetes_version=c.get("kubernetesVersion") or d.kubernetes_version,
        region=region,
        cluster_name=cluster_name,
        prometheus_release=c.get("prometheusRelease") or d.prometheus_release,
        prometheus_operator=(
            c.get_bool("prometheusOperator") if c.get("prometheusOperator") is not None else d.prometheus_operator
        ),
    )


def build(catalog: Catalog, settings: Settings, kubeconfig: pulumi.Input[str] | None = None) -> dict:
    """Create every resource; returns the stack outputs (also exported by __main__)."""
    service_names(catalog)
    outputs: dict = {}
    k8s_depends: list[pulumi.Resource] = []
    usage_db = None
    autoscaler = None
    if settings.target == "eks":
        from .aws import Cluster, ClusterAutoscaler, ModelStore, Network, NodeGroups

        cfg = pulumi.Config("modelsvc")
        azs = cfg.get_object("availabilityZones") or [f"{settings.region}a", f"{settings.region}b"]
        network = Network(settings.cluster_name, cfg.get("vpcCidr") or "10.0.0.0/16", azs, settings.cluster_name)
        cluster = Cluster(settings.cluster_name, network, settings.kubernetes_version, settings.region)
        nodes = NodeGroups(
            settings.cluster_name, catalog, cluster, network, cfg.get("systemInstanceType") or "m6i.large"
        )
        store = ModelStore(
            f"{settings.cluster_name}-models",
            settings.engine_bucket,
            catalog,
            cluster,
            settings.namespace,
            system.triton_namespaces(catalog, settings),
        )
        settings = dataclasses.replace(
            settings, build_role_arn=store.build_role.arn, triton_role_arn=store.triton_role.arn
        )
        usage_db = _usage_database(cfg, settings, network)
        if usage_db is not None:
            settings = dataclasses.replace(settings, gateway_usage_secret=gateway.USAGE_SECRET)
            outputs["usageDatabase"] = usage_db.instance.endpoint
        kubeconfig = cluster.kubeconfig
        k8s_depends = [nodes.system]
        autoscaler = ClusterAutoscaler(settings.cluster_name, cluster, settings.region, settings.kubernetes_version)
        outputs.update(
            clusterName=cluster.cluster.name,
            nodeGroups={p: {"min": s.min, "desired": s.desired, "max": s.max} for p, s in nodes.sizes.items()},
            engineRoleArn=store.build_role.arn,
            tritonRoleArn=store.triton_role.arn,
            clusterAutoscalerRoleArn=autoscaler.role.arn,
        )
    else:
        outputs["clusterName"] = settings.cluster_name
    if kubeconfig is None:
        raise ValueError("the kubeconfig target needs `modelsvc:kubeconfig` (secret) in the stack config")
    provider = k8s.Provider("k8s", kubeconfig=kubeconfig, enable_server_side_apply=True)
    opts = pulumi.ResourceOptions(provider=provider, depends_on=k8s_depends)
    outputs["kubeconfig"] = pulumi.Output.secret(kubeconfig)
    outputs["engineCache"] = settings.engine_cache_uri

    namespaces = {ns: k8s_res.create(system.namespace(ns), opts) for ns in system.all_namespaces(catalog, settings)}

    def in_ns(ns: str, extra: list | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespaces[ns], *(extra or [])]))

    build_account = k8s_res.create(system.build_service_account(settings), in_ns(settings.namespace))
    accounts = {}
    for ns in system.triton_namespaces(catalog, settings):
        accounts[ns] = k8s_res.create(system.triton_service_account(ns, settings), in_ns(ns))
        k8s_res.create(system.triton_network_policy(ns, settings), in_ns(ns))
    if settings.device_plugin:
        k8s_res.create(system.device_plugin(settings), opts)
    if autoscaler is not None:
        autoscaler.install(opts)

    if usage_db is not None:  # the DSN reaches the gateway only through this Secret
        secret = k8s_res.create(gateway.usage_store_secret(usage_db.url, settings), in_ns(settings.namespace))
        gw_opts = in_ns(settings.namespace, [secret])
    else:
        gw_opts = in_ns(settings.namespace)
        if not settings.gateway_usage_secret:
            pulumi.log.warn(
                "no usage database: usage records live on each gateway pod's emptyDir and are lost with "
                "the pod; set modelsvc:gatewayUsageSecret (or, on eks, modelsvc:usageDbPassword)"
            )
    gw = GatewayComponent(catalog, settings, gw_opts)
    # One build Job per engine cache key; every service using the key waits for it (Pulumi awaits the Job).
    jobs = {}
    for key, users in engine_builds(catalog, settings).items():
        jobs[key] = k8s_res.create(
            triton.engine_job(catalog, key, users, settings), in_ns(settings.namespace, [build_account])
        )
    services = {}
    for s in deployed_services(catalog):
        ns = namespace_of(s, settings)
        ModelService(catalog, s, settings, jobs[service_cache_key(catalog, s, settings)], in_ns(ns, [accounts[ns]]))
        services[s.access_name] = {
            "id": s.id,
            "namespace": ns,
            "deployment": k8s_name(s.access_name),
            "host": headless_service_host(s, settings),
            "instances": s.instances,
            **({"max_instances": s.autoscale.max_instances} if s.autoscale else {}),
        }
    # Scaling and monitoring (HPAs are created with their services): the adapter rules and, with the Prometheus
    # Operator, the monitors, rules and dashboard; these live in the monitoring stack's namespace or ours.
    for obj in autoscaling.autoscaling_objects(catalog, settings) + monitoring.monitoring_objects(catalog, settings):
        if obj["kind"] != "HorizontalPodAutoscaler":
            ns = obj["metadata"].get("namespace")
            k8s_res.create(obj, in_ns(ns) if ns in namespaces else opts)
    outputs["gatewayUrl"] = (
        f"https://{settings.ingress_host}/v1" if settings.ingress_host else catalog.gateway.public_url
    )
    outputs["gatewayDeployment"] = {"namespace": settings.namespace, "name": system.GATEWAY_APP}
    outputs["services"] = services
    outputs["_gateway"] = gw
    return outputs


def _usage_database(cfg: pulumi.Config, settings: Settings, network):
    """RDS for PostgreSQL for the usage records, when the stack has a password for it and no existing database."""
    password = cfg.get_secret("usageDbPassword")
    if settings.gateway_usage_secret or password is None:
        return None
    from .aws import UsageDatabase

    return UsageDatabase(
        f"{settings.cluster_name}-usage",
        network,
        password,
        instance_class=cfg.get("usageDbInstanceClass") or "db.t4g.medium",
        multi_az=cfg.get_bool("usageDbMultiAz") if cfg.get("usageDbMultiAz") is not None else True,
    )


class ModelService(pulumi.ComponentResource):
    """One catalog service: Triton Deployment (after its engine's build Job), headless Service, PDB."""

    def __init__(
        self, catalog: Catalog, service, settings: Settings, job: pulumi.Resource, opts: pulumi.ResourceOptions
    ):
        super().__init__(
            "modelsvc:k8s:ModelService",
            service.access_name.replace("/", "--"),
            None,
            pulumi.ResourceOptions(provider=opts.provider),
        )
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        # The Deployment waits for the build (Pulumi awaits the Job): a failed build leaves the old pods serving.
        after_job = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[job]))
        self.deployment = k8s_res.create(triton.deployment(catalog, service, settings), after_job)
        self.service = k8s_res.create(triton.headless_service(catalog, service, settings), child)
        self.pdb = k8s_res.create(triton.pod_disruption_budget(catalog, service, settings), child)
        self.hpa = k8s_res.create(autoscaling.hpa(catalog, service, settings), child) if service.autoscale else None
        self.register_outputs({"deployment": self.deployment.metadata.name})


class GatewayComponent(pulumi.ComponentResource):
    def __init__(self, catalog: Catalog, settings: Settings, opts: pulumi.ResourceOptions):
        super().__init__("modelsvc:k8s:Gateway", "gateway", None, pulumi.ResourceOptions(provider=opts.provider))
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.resources = [k8s_res.create(o, child) for o in gateway.gateway_objects(catalog, settings)]
        self.register_outputs({})


def main() -> None:
    """Entry point for `pulumi up`: read config and the catalog, build, export outputs."""
    c = pulumi.Config("modelsvc")
    settings = settings_from_config(c)
    catalog = load(c.get("catalog") or "services.yaml")
    kubeconfig = c.get_secret("kubeconfig") if settings.target == "kubeconfig" else None
    outputs = build(catalog, settings, kubeconfig)
    outputs.pop("_gateway", None)
    for key, value in outputs.items():
        pulumi.export(key, value)
