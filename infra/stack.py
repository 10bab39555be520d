"""The stack config (`modelsvc:*` keys of Pulumi.<stack>.yaml) → Settings, and what a real stack must get right.

One reading of the config for both its readers: the Pulumi program (infra/program.py, through `pulumi.Config`) and
`modelsvc validate --stack Pulumi.<stack>.yaml` (through StackFile, no Pulumi needed), so a placeholder image or an
engine build that cannot fit is refused in the pull request and again at preview, with the same words.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.model import Task
from modelsvc.catalog.names import NAMESPACE_MODES

from . import disk, images
from .charts import CLUSTER_AUTOSCALER
from .settings import MONITORING_MODES, TARGETS, Settings, one_of

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

# Keys an older stack file may still set: refused with what replaced them, never silently ignored.
REPLACED_KEYS = {
    "prometheusOperator": 'set modelsvc:monitoring to "install" (the stack installs kube-prometheus-stack and '
    'prometheus-adapter), "existing" (the cluster has them; checked at preview) or "annotations" (no operator)',
}
# The largest build a GPU node holds: the node group's ephemeral storage as the autoscaler assumes it (infra/aws.py)
EKS_BUILD_DISK_MAX = "440Gi"


class Reader(Protocol):
    def get(self, key: str) -> str | None: ...
    def get_bool(self, key: str) -> bool | None: ...
    def get_object(self, key: str) -> Any: ...
    def get_secret(self, key: str) -> Any: ...


class StackFile:
    """A Pulumi.<stack>.yaml's `modelsvc:` keys, read like pulumi.Config("modelsvc") (secrets stay opaque)."""

    def __init__(self, path: str | Path, namespace: str = "modelsvc"):
        self.path = Path(path)
        self.text = self.path.read_text(encoding="utf-8")
        doc = yaml.safe_load(self.text) or {}
        config = doc.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path}: `config:` is not a mapping")
        self.values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{namespace}:")}
        self.aws_region = config.get("aws:region")
        self.stack = self.path.name.removeprefix("Pulumi.").removesuffix(".yaml")

    def get(self, key: str) -> str | None:
        v = self.values.get(key)
        return None if v is None or isinstance(v, dict) else str(v)

    def get_bool(self, key: str) -> bool | None:
        v = self.values.get(key)
        return v if isinstance(v, bool) or v is None else str(v).lower() == "true"

    def get_object(self, key: str) -> Any:
        return self.values.get(key)

    def get_secret(self, key: str) -> Any:
        v = self.values.get(key)
        return "<secret>" if isinstance(v, dict) and "secure" in v else v


def _flag(c: Reader, key: str, default: bool | None) -> bool | None:
    return c.get_bool(key) if c.get(key) is not None else default


def settings_from(c: Reader, *, aws_region: str | None, stack: str) -> Settings:
    """Stack config → Settings. See Pulumi.dev.yaml and docs/infra.md for every key."""
    for old, new in REPLACED_KEYS.items():
        if c.get(old) is not None:
            raise ValueError(f"modelsvc:{old} is no longer read: {new}")
    d = Settings()
    target = c.get("target") or "eks"
    region = c.get("region") or aws_region or d.region
    cluster_name = c.get("clusterName") or f"modelsvc-{stack}"
    default_cache = f"s3://{cluster_name}-engines-{region}" if target == "eks" else d.engine_cache_uri
    return Settings(
        target=one_of("target", target, TARGETS),
        namespace_mode=one_of("namespace mode", c.get("namespaceMode") or d.namespace_mode, NAMESPACE_MODES),
        namespace=c.get("namespace") or d.namespace,
        triton_version=c.get("tritonVersion") or d.triton_version,
        gateway_image=c.get("gatewayImage") or None,
        build_image=c.get("buildImage") or None,
        vision_image=c.get("visionImage") or None,
        diffusion_image=c.get("diffusionImage") or None,
        gateway_redis_secret=c.get("gatewayRedisSecret") or None,
        gateway_usage_secret=c.get("gatewayUsageSecret") or None,
        ingress_host=c.get("ingressHost") or None,
        ingress_class=c.get("ingressClass") or None,
        engine_cache_uri=c.get("engineCache") or default_cache,
        build_role_arn=c.get("engineRoleArn") or None,
        triton_role_arn=c.get("tritonRoleArn") or None,
        build_disk=c.get("buildDisk") or d.build_disk,
        metrics_namespace=c.get("metricsNamespace") or d.metrics_namespace,
        device_plugin=_flag(c, "devicePlugin", None),
        kubernetes_version=c.get("kubernetesVersion") or d.kubernetes_version,
        region=region,
        cluster_name=cluster_name,
        prometheus_release=c.get("prometheusRelease") or d.prometheus_release,
        monitoring=one_of("monitoring", c.get("monitoring") or d.monitoring, MONITORING_MODES),
        catalog=c.get("catalog") or d.catalog,
        kubeconfig=c.get_secret("kubeconfig") if target == "kubeconfig" else None,
        availability_zones=tuple(c.get_object("availabilityZones") or ()),
        vpc_cidr=c.get("vpcCidr") or d.vpc_cidr,
        system_instance_type=c.get("systemInstanceType") or d.system_instance_type,
        usage_db_password=c.get_secret("usageDbPassword"),
        usage_db_instance_class=c.get("usageDbInstanceClass") or d.usage_db_instance_class,
        usage_db_multi_az=bool(_flag(c, "usageDbMultiAz", d.usage_db_multi_az)),
    )


def problems(catalog: Catalog, settings: Settings) -> list[tuple[str, str]]:
    """What stops this catalog deploying on this real stack: (config key, message) pairs, every one at once."""
    out: list[tuple[str, str]] = []
    tasks = {catalog.model_of(s).task for s in deployed_services(catalog)}
    wanted = [("gatewayImage", settings.gateway_image)]
    if tasks:
        wanted.append(("buildImage", settings.build_image))
    if Task.vision_chat in tasks:
        wanted.append(("visionImage", settings.vision_image))
    if Task.image_generation in tasks:
        wanted.append(("diffusionImage", settings.diffusion_image))
    for key, ref in wanted:
        out += [(key, p) for p in images.problems(ref, key)]
    if settings.target == "eks":
        minor = ".".join(settings.kubernetes_version.split(".")[:2])
        if minor not in CLUSTER_AUTOSCALER:
            out.append(
                (
                    "kubernetesVersion",
                    f"modelsvc:kubernetesVersion {settings.kubernetes_version}: no cluster-autoscaler chart is "
                    f"pinned for it (supported: {', '.join(CLUSTER_AUTOSCALER)})",
                )
            )
        if disk.quantity_bytes(settings.build_disk) > disk.quantity_bytes(EKS_BUILD_DISK_MAX):
            out.append(
                (
                    "buildDisk",
                    f"modelsvc:buildDisk {settings.build_disk} is more than a GPU node offers "
                    f"({EKS_BUILD_DISK_MAX} of its 500 GiB disk): the build Job would never be scheduled",
                )
            )
    for name, model in catalog.models.items():
        if any(s.model == name for s in deployed_services(catalog)):
            if (why := disk.build_disk_problem(model, settings.build_disk)) is not None:
                out.append(("buildDisk", f"model {name!r}: {why}"))
    return out
