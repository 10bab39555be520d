"""Deployment settings: what the stack config decides (everything else comes from the catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, TypeVar

from modelsvc.catalog.names import NAMESPACE_MODES, NamespaceMode

from . import images


def _version() -> str:
    try:
        return metadata.version("modelsvc")
    except metadata.PackageNotFoundError:
        return "dev"


Target = Literal["eks", "kubeconfig"]
Monitoring = Literal["install", "existing", "annotations"]

TARGETS: tuple[Target, ...] = ("eks", "kubeconfig")
# install: the stack installs kube-prometheus-stack + prometheus-adapter (pinned charts, infra/charts.py);
# existing: the cluster runs the Prometheus Operator and prometheus-adapter already (checked at preview);
# annotations: a Prometheus without the operator scrapes the pods' prometheus.io annotations (no CRD objects).
MONITORING_MODES: tuple[Monitoring, ...] = ("install", "existing", "annotations")

_Choice = TypeVar("_Choice", bound=str)


def one_of(what: str, value: object, allowed: tuple[_Choice, ...]) -> _Choice:
    """`value` as one of `allowed` (a stack config string as its Literal type), or the ValueError that names them."""
    for choice in allowed:
        if value == choice:
            return choice
    raise ValueError(f"{what} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Stack settings. Defaults give a working `render` without any config.

    The role ARNs may be plain strings (render) or Pulumi Outputs (the program passes the IRSA roles' ARNs); the
    manifest functions only place them in a dict, so both work.
    """

    target: Target = "kubeconfig"
    namespace_mode: NamespaceMode = "shared"
    namespace: str = "modelsvc"  # shared mode: everything; per-owner mode: the gateway and shared objects
    triton_version: str = "25.10"  # NGC release of tritonserver:<v>-trtllm-python-py3 (pins TensorRT-LLM)
    # Our images (infra/images.py): a real stack names each by the digest .github/workflows/images.yml pushed; None
    # here means the local `docker build` name (render, kind clusters). See image().
    gateway_image: str | None = None
    build_image: str | None = None  # the build Job's model-repository step
    vision_image: str | None = None  # vision-chat: Triton TensorRT-LLM + NVIDIA's per-model requirements
    diffusion_image: str | None = None  # image-generation: the Triton tutorials' Stable Diffusion image
    gateway_port: int = 8000
    gateway_redis_secret: str | None = None  # Secret (key "url") holding REDIS_URL: limits shared by all replicas
    gateway_usage_secret: str | None = None  # Secret (key "url"): postgresql:// DSN of the usage store
    gateway_drain_s: int = 5  # after SIGTERM: seconds of /readyz=false before the gateway stops accepting
    gateway_grace_s: int = 30  # then: seconds in-flight requests and streams get to finish
    ingress_host: str | None = None
    ingress_class: str | None = None
    engine_cache_uri: str = "s3://modelsvc-engines"  # s3://bucket[/prefix]; engines live under <uri>/engines/<key>/
    build_role_arn: Any = None  # IAM role (IRSA) of the build Jobs: read checkpoints, write engines; None: node's
    triton_role_arn: Any = None  # IAM role (IRSA) of Triton pods: read engines only; None: node credentials
    aws_cli_image: str = "public.ecr.aws/aws-cli/aws-cli:2.27.50"
    build_disk: str = "400Gi"  # ephemeral storage of a build Job: checkpoint + engine (GPU nodes have 500 GiB)
    metrics_namespace: str = "monitoring"  # where Prometheus runs: admitted to Triton's and the gateway's metrics
    gateway_metrics_port: int = 9091  # the gateway's internal port for /metrics and per-service readiness
    device_plugin: bool | None = None  # deploy the NVIDIA device plugin DaemonSet; None: only on eks
    device_plugin_image: str = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    kubernetes_version: str = "1.33"
    cluster_domain: str = "cluster.local"
    region: str = "us-west-2"
    cluster_name: str = "modelsvc"
    extra_labels: dict[str, str] = field(default_factory=dict)
    # Monitoring and autoscaling (docs/infra.md "Autoscaling"; prometheus-adapter's rules and the dashboard go to
    # metrics_namespace): who provides the metrics pipeline (MONITORING_MODES), and the Helm release name of
    # kube-prometheus-stack, i.e. the `release` label its rule/monitor selectors match.
    monitoring: Monitoring = "install"
    prometheus_release: str = "prometheus"
    cluster_autoscaler_role_arn: Any = None  # eks: the cluster autoscaler's IRSA role (the program fills it in)
    # The Pulumi program only (render ignores them): where the catalog is, how to reach the cluster, the eks target's
    # network and system nodes, the usage database it may create.
    catalog: str = "services.yaml"
    kubeconfig: Any = None  # kubeconfig target: the kubeconfig (a secret Output)
    availability_zones: tuple[str, ...] = ()  # eks: default <region>a, <region>b
    vpc_cidr: str = "10.0.0.0/16"
    system_instance_type: str = "m6i.large"
    usage_db_password: Any = None  # eks: with it (a secret), the stack creates RDS for PostgreSQL for usage records
    usage_db_instance_class: str = "db.t4g.medium"
    usage_db_multi_az: bool = True

    def __post_init__(self) -> None:
        one_of("target", self.target, TARGETS)
        one_of("namespace mode", self.namespace_mode, NAMESPACE_MODES)
        one_of("monitoring", self.monitoring, MONITORING_MODES)
        if not self.engine_cache_uri.startswith("s3://"):
            raise ValueError(f"engine cache must be an s3:// URI, got {self.engine_cache_uri!r}")

    @property
    def prometheus_operator(self) -> bool:
        """Whether the Prometheus Operator's CRDs are there (installed by us, or an existing stack's)."""
        return self.monitoring != "annotations"

    @property
    def deploys_device_plugin(self) -> bool:
        """EKS's GPU AMIs lack the device plugin; other clusters usually run NVIDIA's GPU operator."""
        return self.target == "eks" if self.device_plugin is None else self.device_plugin

    def image(self, name: str) -> str:
        """The reference of one of our images (gateway, build-tools, vision, diffusion): the configured one, else
        the local build's name."""
        configured = {
            "gateway": self.gateway_image,
            "build-tools": self.build_image,
            "vision": self.vision_image,
            "diffusion": self.diffusion_image,
        }[name]
        return configured or images.local(name, _version(), self.triton_version)

    @property
    def triton_image(self) -> str:
        return f"nvcr.io/nvidia/tritonserver:{self.triton_version}-trtllm-python-py3"

    @property
    def engine_bucket(self) -> str:
        return self.engine_cache_uri[len("s3://") :].split("/", 1)[0]
